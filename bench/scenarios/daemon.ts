import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  GH_TOKEN,
  GL_TOKEN,
  childEnv,
  commitInForgeRepo,
  measureOnForge,
  startBenchForge,
  type BenchForge,
} from '../lib/forge.js';
import { buildHash, firstRunNote, fixedPorts, restoreSetup, saveSetup, setupKey } from '../lib/setup-cache.js';
import { formatRatio, formatSeconds, median } from '../lib/stats.js';
import type { BenchContext, Sample, ScenarioResult, VariantResult } from '../lib/types.js';
import type { SeedSpec } from '../../test/forge/src/seed.js';

/**
 * Scenario 2, the daemon: `refbridge sync` over many pairs that are already in sync (the common
 * case of every round), then with 10% of them changed (one new commit on GitHub each, to be pushed
 * to GitLab). Then the same number of pairs with a short and with a long history, in sync and all
 * changed, to show that the cost follows what changed rather than history size.
 *
 * Both sides of a pair are seeded with the same content, which gives the same commits (the forge
 * seeds with fixed dates), so the pairs start in sync. The first run fills refbridge's cache and
 * records the bases; it is reported, but the targets are about the runs after it, and the cache it
 * leaves is saved and restored by later bench runs (see setup-cache.ts). `--concurrency` 1, 4 (the
 * default) and 8 are compared on the first `scalingPairs` pairs.
 */

export interface DaemonSpec {
  pairs: number;
  /** Pairs of the `--concurrency` comparison (the first ones of the main set). */
  scalingPairs: number;
  /** Pairs in each group of the history comparison. */
  historyPairs: number;
  /** Commits of the long-history group (the short one has 30). */
  longHistory: number;
  /** Rounds with 10% changed (each costs a full sync with pushes); at most `runs`. */
  changedRounds: number;
  /** Rounds of the concurrency comparison; at most `runs`. */
  scalingRounds: number;
}

const SHORT_HISTORY = 30;
const DEFAULT_CONCURRENCY = 4;
/** Fixed so the URLs, and with them refbridge's pair cache keys, are the same on every run. */
const GITHUB_PORT = 47811;

interface SyncJson {
  exitCode: number;
  pairs: { pair: string; status: string; error?: string }[];
}

interface DaemonSetupMeta {
  builtAt: string;
  build: string;
  cold: Sample;
  coldShort: Sample;
  coldLong: Sample;
}

export async function daemon(ctx: BenchContext, spec: DaemonSpec): Promise<ScenarioResult> {
  const started = Date.now();
  const content = (history: number) => ({
    files: { 'README.md': '# bench pair\n' },
    history,
    branches: { develop: {} },
    tags: [{ name: 'v1.0.0', message: 'Release' }, { name: 'v1.0.1' }],
  });
  const seed: SeedSpec = {
    github: {
      users: ['alice'],
      orgs: [{ login: 'bench', members: ['alice'] }],
      repos: [
        { owner: 'bench', name: 'p-{n}', count: spec.pairs, ...content(SHORT_HISTORY) },
        { owner: 'bench', name: 'short-{n}', count: spec.historyPairs, ...content(SHORT_HISTORY) },
        { owner: 'bench', name: 'long-{n}', count: spec.historyPairs, ...content(spec.longHistory) },
      ],
    },
    gitlab: {
      users: ['carol'],
      groups: [{ path: 'bench', members: { carol: 50 } }],
      projects: [
        { path: 'bench/p-{n}', count: spec.pairs, ...content(SHORT_HISTORY) },
        { path: 'bench/short-{n}', count: spec.historyPairs, ...content(SHORT_HISTORY) },
        { path: 'bench/long-{n}', count: spec.historyPairs, ...content(spec.longHistory) },
      ],
    },
    tokens: [
      { value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
      { value: GL_TOKEN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
    ],
  };
  ctx.log(`daemon: seeding ${spec.pairs} + ${2 * spec.historyPairs} pairs on both sides`);
  const ports = await fixedPorts(GITHUB_PORT);
  const bench = await startBenchForge(ctx.cacheDir, seed, ports);
  const work = await mkdtemp(join(ctx.cacheDir, 'tmp', 'daemon-'));
  try {
    const home = join(work, 'home');
    await mkdir(home, { recursive: true });
    const cache = join(work, 'cache');
    const env = childEnv(home, {
      GITHUB_TOKEN: GH_TOKEN,
      GITLAB_TOKEN: GL_TOKEN,
      REFBRIDGE_GITHUB_WRITE_INTERVAL_MS: '0',
    });
    const names = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);
    const configs = {
      all: await writeConfig(bench, work, 'all', names('p', spec.pairs)),
      scaling: await writeConfig(bench, work, 'scaling', names('p', spec.scalingPairs)),
      short: await writeConfig(bench, work, 'short', names('short', spec.historyPairs)),
      long: await writeConfig(bench, work, 'long', names('long', spec.historyPairs)),
    };

    const sync = async (
      config: string,
      pairs: number,
      changed: ReadonlySet<string>,
      concurrency?: number,
    ): Promise<Sample> => {
      const { measured, sample, counts, pushBytes } = await measureOnForge(
        bench,
        'refbridge sync',
        process.execPath,
        [
          ctx.cli,
          'sync',
          '--config',
          config,
          '--cache',
          cache,
          '--json',
          ...(concurrency === undefined ? [] : ['--concurrency', String(concurrency)]),
        ],
        { cwd: work, env },
      );
      const out = JSON.parse(measured.stdout) as SyncJson;
      if (out.pairs.length !== pairs) throw new Error(`sync: ${out.pairs.length} pairs reported, expected ${pairs}`);
      for (const p of out.pairs) {
        const want = changed.has(p.pair) ? 'synced' : 'in-sync';
        if (p.status !== want)
          throw new Error(`sync: pair ${p.pair} is ${p.status}, expected ${want}: ${p.error ?? ''}`);
      }
      return { ...sample, gitPosts: counts.gitPosts, pushBytes };
    };
    /**
     * A warm in-sync round lists both sides of every pair and does nothing else: one ls-refs POST
     * per side and pair (a GET only where a POST got no v2 answer, which the forge always gives).
     * Any fetch or push would show as more POSTs.
     */
    const warm = (what: string, sample: Sample, pairs: number): Sample => {
      const listings = 2 * pairs;
      const slack = 2 * 8;
      if (
        (sample.gitPosts ?? 0) !== listings ||
        (sample.gitRequests ?? 0) > listings + slack ||
        (sample.pushBytes ?? 0) > 0
      ) {
        throw new Error(
          `${what}: ${sample.gitRequests} git requests (${sample.gitPosts} POSTs) and ${sample.pushBytes} bytes pushed for ${pairs} pairs in sync; a warm round makes ${listings} ls-refs POSTs and no push (is the restored set-up stale? remove bench/.cache/setup)`,
        );
      }
      return sample;
    };

    // Changes: one commit on GitHub's main in each chosen pair, different pairs every round.
    let changeRound = 0;
    const change = async (pool: readonly string[], n: number): Promise<Set<string>> => {
      changeRound++;
      const chosen = new Set<string>();
      const step = Math.max(1, Math.floor(pool.length / n));
      for (let i = 0; chosen.size < n && i < pool.length * 2; i++)
        chosen.add(pool[(i * step + changeRound) % pool.length]!);
      for (const name of chosen) {
        await commitInForgeRepo(bench.githubGitDir(`bench/${name}`), 'main', 'CHANGES.md', `change ${changeRound}\n`);
      }
      return chosen;
    };

    const none = new Set<string>();
    const key = await setupKey(ctx.root, { scenario: 'daemon', seed, ports });
    const build = await buildHash(ctx.root);
    let meta: DaemonSetupMeta | undefined;
    if (ports) {
      const snap = await restoreSetup<DaemonSetupMeta>(ctx.cacheDir, 'daemon', key, cache);
      meta = snap.meta;
      if (snap.restored) ctx.log(`daemon: restored the pair cache of the first run (built ${meta?.builtAt ?? '?'})`);
    }
    if (!meta) {
      ctx.log(`daemon: first run over ${spec.pairs} pairs (fills refbridge's cache; minutes)`);
      const cold = await sync(configs.all, spec.pairs, none);
      const coldShort = await sync(configs.short, spec.historyPairs, none);
      const coldLong = await sync(configs.long, spec.historyPairs, none);
      meta = { builtAt: new Date().toISOString(), build, cold, coldShort, coldLong };
      ctx.log(
        `daemon: first run ${formatSeconds(cold.seconds)}; history groups ${formatSeconds(coldShort.seconds)} / ${formatSeconds(coldLong.seconds)}`,
      );
      if (ports) await saveSetup(ctx.cacheDir, 'daemon', key, cache, meta);
    }

    const series = new Map<string, Sample[]>();
    const add = (name: string, sample: Sample): Sample => {
      series.set(name, [...(series.get(name) ?? []), sample]);
      return sample;
    };
    const p = spec.pairs;
    const sp = spec.scalingPairs;
    const h = spec.historyPairs;
    const tenth = Math.max(1, Math.round(p / 10));
    const N = {
      inSync: `in sync, ${p} pairs (--concurrency ${DEFAULT_CONCURRENCY}, default)`,
      changed: `10% changed (${tenth} of ${p} pairs), default concurrency`,
      c1: `in sync, ${sp} pairs, --concurrency 1`,
      c4: `in sync, ${sp} pairs, --concurrency ${DEFAULT_CONCURRENCY} (default)`,
      c8: `in sync, ${sp} pairs, --concurrency 8`,
      shortInSync: `in sync, ${h} pairs x ${SHORT_HISTORY} commits`,
      longInSync: `in sync, ${h} pairs x ${spec.longHistory} commits`,
      shortChanged: `all ${h} changed, ${SHORT_HISTORY} commits`,
      longChanged: `all ${h} changed, ${spec.longHistory} commits`,
    };
    for (let round = 1; round <= ctx.runs; round++) {
      const inSync = add(N.inSync, warm(N.inSync, await sync(configs.all, p, none), p));
      const changed =
        round <= spec.changedRounds
          ? add(N.changed, await sync(configs.all, p, await change(names('p', p), tenth)))
          : undefined;
      const levels = round <= spec.scalingRounds ? [1, DEFAULT_CONCURRENCY, 8] : [];
      for (let i = 0; i < levels.length; i++) {
        const c = levels[(i + round) % levels.length]!;
        const name = c === 1 ? N.c1 : c === 8 ? N.c8 : N.c4;
        add(name, warm(name, await sync(configs.scaling, sp, none, c), sp));
      }
      add(N.shortInSync, warm(N.shortInSync, await sync(configs.short, h, none), h));
      add(N.longInSync, warm(N.longInSync, await sync(configs.long, h, none), h));
      add(N.shortChanged, await sync(configs.short, h, await change(names('short', h), h)));
      add(N.longChanged, await sync(configs.long, h, await change(names('long', h), h)));
      const last = (name: string): string => formatSeconds(series.get(name)!.at(-1)!.seconds);
      ctx.log(
        `daemon: round ${round}/${ctx.runs}: ${p} in sync ${formatSeconds(inSync.seconds)}` +
          (changed ? `, 10% changed ${formatSeconds(changed.seconds)}` : '') +
          (levels.length > 0 ? `; ${sp} in sync at concurrency 1/4/8: ${last(N.c1)}/${last(N.c4)}/${last(N.c8)}` : '') +
          `; history ${SHORT_HISTORY}/${spec.longHistory}: in sync ${last(N.shortInSync)}/${last(N.longInSync)}, changed ${last(N.shortChanged)}/${last(N.longChanged)}`,
      );
    }

    const cached = firstRunNote(meta, build);
    const get = (name: string): Sample[] => series.get(name) ?? [];
    const variants: VariantResult[] = [
      { name: `first run, ${p} pairs (empty cache)`, samples: [meta.cold], note: cached },
      { name: N.inSync, label: 'in sync', samples: get(N.inSync) },
      { name: N.changed, samples: get(N.changed), baselines: [N.inSync] },
      { name: N.c1, label: 'concurrency 1', samples: get(N.c1) },
      { name: N.c4, samples: get(N.c4), baselines: [N.c1] },
      { name: N.c8, samples: get(N.c8), baselines: [N.c1] },
      { name: `first run, ${h} pairs x ${SHORT_HISTORY} commits`, samples: [meta.coldShort], note: cached },
      { name: `first run, ${h} pairs x ${spec.longHistory} commits`, samples: [meta.coldLong], note: cached },
      { name: N.shortInSync, label: `${SHORT_HISTORY} commits`, samples: get(N.shortInSync) },
      { name: N.longInSync, samples: get(N.longInSync), baselines: [N.shortInSync] },
      { name: N.shortChanged, label: `${SHORT_HISTORY} commits`, samples: get(N.shortChanged) },
      { name: N.longChanged, samples: get(N.longChanged), baselines: [N.shortChanged] },
    ];
    const med = (name: string): number => median(get(name).map((x) => x.seconds));
    const paired = (a: string, b: string): number =>
      median(get(a).map((x, i) => x.seconds / (get(b)[i]?.seconds ?? NaN)));
    const inSync = med(N.inSync);
    const longVsShort = paired(N.longChanged, N.shortChanged);
    const longVsShortInSync = paired(N.longInSync, N.shortInSync);
    const cpu = median(get(N.inSync).map((x) => x.cpuSeconds ?? NaN));
    const forgeCpu = median(get(N.inSync).map((x) => x.forgeCpuSeconds ?? NaN));
    return {
      id: 'daemon',
      title: `2. Daemon: refbridge sync over ${p} pairs`,
      params: {
        ...spec,
        shortHistory: SHORT_HISTORY,
        changedPairs: tenth,
        rounds: ctx.runs,
        setupBuiltAt: meta.builtAt,
        setupBuild: meta.build,
        build,
      },
      variants,
      targets: [
        {
          target: '500 pairs in sync checked in ≤ 10 s (2 cores)',
          measured: `${formatSeconds(inSync)} for ${p} pairs`,
          met: p >= 500 ? inSync <= 10 : null,
        },
        {
          target: 'cost grows with what changed, not history size',
          measured: `${spec.longHistory}- vs ${SHORT_HISTORY}-commit pairs: ${formatRatio(longVsShort)} (all changed), ${formatRatio(longVsShortInSync)} (in sync); 10% changed costs ${formatRatio(paired(N.changed, N.inSync))} an in-sync round`,
          // Within 1.5x counts as "not growing with history": the histories differ by ~700x.
          met: longVsShort <= 1.5 && longVsShortInSync <= 1.5,
        },
        {
          target: '(no target) --concurrency scaling, in sync',
          measured: `${sp} pairs: concurrency 1 ${formatSeconds(med(N.c1))}, 4 ${formatSeconds(med(N.c4))} (${formatRatio(paired(N.c1, N.c4))} faster), 8 ${formatSeconds(med(N.c8))}`,
          met: null,
        },
      ],
      notes: [
        `Each pair: main, develop, an annotated and a lightweight tag on both sides. A change is one commit on GitHub's main, written into the forge's repo directly (set-up, not timed); sync then fetches it and pushes it to GitLab.`,
        `An in-sync round lists both sides of every pair: one ls-refs request per side, made in-process (${median(get(N.inSync).map((x) => x.gitRequests ?? NaN))} git requests, ${median(get(N.inSync).map((x) => x.apiCalls ?? NaN))} API calls for ${p} pairs). The CPU of an in-sync round: refbridge and any git processes it started ${formatSeconds(cpu)} (${((cpu / p) * 1000).toFixed(0)} ms per pair), the forge serving the listings on the same two cores ${formatSeconds(forgeCpu)} (${((forgeCpu / p) * 1000).toFixed(0)} ms per pair). Two cores give at most 2 CPU-seconds per second, so these bound the wall time from below.`,
      ],
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await bench.close();
    await rm(work, { recursive: true, force: true });
  }
}

async function writeConfig(bench: BenchForge, dir: string, name: string, repos: readonly string[]): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  const config = {
    github: { url: bench.forge.urls.github.web, apiUrl: bench.forge.urls.github.api },
    gitlab: { url: bench.forge.urls.gitlab.web },
    pairs: repos.map((r) => ({ name: r, github: `bench/${r}`, gitlab: `bench/${r}` })),
  };
  await writeFile(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}
