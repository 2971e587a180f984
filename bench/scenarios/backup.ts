import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SeedSpec } from '../../test/forge/src/seed.js';
import { GH_TOKEN, childEnv, gitAuthEnv, measureOnForge, startBenchForge } from '../lib/forge.js';
import { buildHash, firstRunNote, fixedPorts, restoreSetup, saveSetup, setupKey } from '../lib/setup-cache.js';
import { formatBytes, formatRatio, formatSeconds, median } from '../lib/stats.js';
import type { BenchContext, Sample, ScenarioResult, VariantResult } from '../lib/types.js';

/**
 * Scenario 3, backup: `refbridge backup --backup-only` re-run over accounts whose repos have not
 * changed since the last run: 100, 500 and 1,000 repos (owners bk-a, bk-a + bk-b, all three, in
 * one storage directory). Reported: API calls and git requests from the forge's request log, wall
 * time, peak memory. The baseline is what a fetch-everything mirror does every round: `git fetch`
 * in every mirror (5 at a time, refbridge's default concurrency).
 *
 * The repos' `pushed_at` is set to a fixed past time after seeding, as on a quiet account (and so
 * that the storage of the first run stays valid for later bench runs; see setup-cache.ts).
 */

export interface BackupSpec {
  /** Account sizes, ascending; the largest is the set-up. */
  sizes: number[];
  /** Runs of the full-fetch baseline over the largest size (each takes a git fetch per repo). */
  baselineRuns: number;
}

const GITHUB_PORT = 47813;
const OWNERS = ['bk-a', 'bk-b', 'bk-c'] as const;
const QUIET_SINCE = '2024-01-01T00:00:00Z';
const BASELINE_CONCURRENCY = 5;

interface BackupJson {
  exitCode: number;
  counts: Record<string, number>;
}

interface BackupSetupMeta {
  builtAt: string;
  build: string;
  cold: Sample;
}

export async function backup(ctx: BenchContext, spec: BackupSpec): Promise<ScenarioResult> {
  const started = Date.now();
  const sizes = spec.sizes;
  if (sizes.length !== OWNERS.length) throw new Error(`backup: give ${OWNERS.length} sizes, got ${sizes.length}`);
  const perOwner = sizes.map((n, i) => n - (i === 0 ? 0 : sizes[i - 1]!));
  const seed: SeedSpec = {
    github: {
      users: ['alice'],
      orgs: OWNERS.map((login) => ({ login, members: ['alice'] })),
      // History makes fast-import write a pack, which the copies of `count` share.
      repos: OWNERS.map((owner, i) => ({
        owner,
        name: 'r-{n}',
        count: perOwner[i]!,
        files: { 'README.md': `# ${owner}\n` },
        history: 25,
        branches: { develop: {} },
        tags: [{ name: 'v1.0.0', message: 'Release' }],
      })),
    },
    tokens: [{ value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo', 'read:org'] }],
  };
  ctx.log(`backup: seeding ${sizes.at(-1)} repos`);
  const ports = await fixedPorts(GITHUB_PORT);
  const bench = await startBenchForge(ctx.cacheDir, seed, ports);
  for (const repo of bench.forge.state.githubRepos.values()) {
    repo.pushedAt = QUIET_SINCE;
    repo.updatedAt = QUIET_SINCE;
  }
  const work = await mkdtemp(join(ctx.cacheDir, 'tmp', 'backup-'));
  try {
    const home = join(work, 'home');
    await mkdir(home, { recursive: true });
    const storage = join(work, 'storage');
    const env = childEnv(home, {
      GITHUB_TOKEN: GH_TOKEN,
      GITHUB_API_URL: bench.forge.urls.github.api,
      GITHUB_SERVER_URL: bench.forge.urls.github.web,
      CI: 'true',
    });
    const owners = (size: number): string[] => OWNERS.slice(0, sizes.indexOf(size) + 1).flatMap((o) => ['--owner', o]);

    const run = async (size: number, expect: 'created' | 'unchanged'): Promise<Sample> => {
      const { measured, sample, counts } = await measureOnForge(
        bench,
        'refbridge backup',
        process.execPath,
        [ctx.cli, 'backup', '--backup-only', ...owners(size), '--storage', storage, '--json', '--progress', 'off'],
        { cwd: work, env },
      );
      const out = JSON.parse(measured.stdout) as BackupJson;
      if (out.counts[expect] !== size) {
        throw new Error(`backup over ${size} repos: ${JSON.stringify(out.counts)}, expected ${size} ${expect}`);
      }
      if (expect === 'unchanged' && counts.git > 0) {
        throw new Error(
          `backup re-run over ${size} unchanged repos made ${counts.git} git requests (expected none; is the restored set-up stale? remove bench/.cache/setup)`,
        );
      }
      return sample;
    };

    const largest = sizes.at(-1)!;
    const key = await setupKey(ctx.root, { scenario: 'backup', seed, ports, QUIET_SINCE });
    const build = await buildHash(ctx.root);
    let meta: BackupSetupMeta | undefined;
    if (ports) {
      const snap = await restoreSetup<BackupSetupMeta>(ctx.cacheDir, 'backup', key, storage);
      meta = snap.meta;
      if (snap.restored) ctx.log(`backup: restored the storage of the first run (built ${meta?.builtAt ?? '?'})`);
    }
    if (!meta) {
      ctx.log(`backup: first run over ${largest} repos (clones every repo; minutes)`);
      meta = { builtAt: new Date().toISOString(), build, cold: await run(largest, 'created') };
      ctx.log(`backup: first run ${formatSeconds(meta.cold.seconds)}`);
      if (ports) await saveSetup(ctx.cacheDir, 'backup', key, storage, meta);
    }

    const reruns = new Map<number, Sample[]>(sizes.map((n) => [n, []]));
    for (let round = 1; round <= ctx.runs; round++) {
      for (let i = 0; i < sizes.length; i++) {
        const size = sizes[(i + round) % sizes.length]!;
        reruns.get(size)!.push(await run(size, 'unchanged'));
      }
      ctx.log(
        `backup: round ${round}/${ctx.runs}: ` +
          sizes
            .map((n) => {
              const s = reruns.get(n)!.at(-1)!;
              return `${n} repos ${formatSeconds(s.seconds)} ${formatBytes(s.peakRssBytes)} ${s.apiCalls} API`;
            })
            .join(', '),
      );
    }

    // The baseline: git fetch in every mirror refbridge made (nothing is new, so nothing changes).
    const hostDir = (await readdir(storage)).find((d) => !d.startsWith('.'));
    if (!hostDir) throw new Error('backup: no mirrors in the storage directory');
    const baseline: Sample[] = [];
    const baseEnv = childEnv(
      home,
      gitAuthEnv([{ url: bench.forge.urls.github.web, username: 'x-access-token', token: GH_TOKEN }]),
    );
    for (let i = 0; i < spec.baselineRuns; i++) {
      const { sample, counts } = await measureOnForge(
        bench,
        'full-fetch baseline',
        'sh',
        [
          '-c',
          `cd "$1" && ls -d */*.git | xargs -P ${BASELINE_CONCURRENCY} -I{} git -C {} fetch -q origin '+refs/*:refs/*'`,
          'sh',
          join(storage, hostDir),
        ],
        { env: baseEnv },
      );
      baseline.push(sample);
      ctx.log(
        `backup: full-fetch baseline over ${largest} repos ${formatSeconds(sample.seconds)} (${counts.git} git requests)`,
      );
    }

    const name = (n: number): string => `re-run, ${n} unchanged repos`;
    const baseName = `baseline: git fetch in each of ${largest} mirrors`;
    const variants: VariantResult[] = [
      {
        name: `first run, ${largest} repos (clones)`,
        samples: [meta.cold],
        note: firstRunNote(meta, build),
      },
      ...sizes.map((n) => ({
        name: name(n),
        samples: reruns.get(n)!,
        ...(n === largest ? { baselines: [baseName] } : {}),
      })),
      { name: baseName, label: 'git fetch per repo', samples: baseline },
    ];
    const big = reruns.get(largest)!;
    const small = reruns.get(sizes[0]!)!;
    const rss = (s: readonly Sample[]): number => median(s.map((x) => x.peakRssBytes ?? NaN));
    const growth = rss(big) / rss(small);
    const pages = perOwner.reduce((n, k) => n + Math.max(1, Math.ceil(k / 100)), 0);
    const api = median(big.map((s) => s.apiCalls ?? NaN));
    const git = Math.max(...sizes.flatMap((n) => reruns.get(n)!.map((s) => s.gitRequests ?? 0)));
    const wall = median(big.map((s) => s.seconds));
    const vsBaseline = median(baseline.map((b) => b.seconds)) / wall;
    return {
      id: 'backup',
      title: `3. Backup: re-run over ${largest} unchanged repos`,
      params: {
        ...spec,
        listingPages: pages,
        rounds: ctx.runs,
        setupBuiltAt: meta.builtAt,
        setupBuild: meta.build,
        build,
      },
      variants,
      targets: [
        {
          target: 'no git transfer on a re-run over unchanged repos',
          measured: `${git} git requests (largest over all re-runs)`,
          met: git === 0,
        },
        {
          target: 'O(pages) API calls',
          measured: `${api} API calls for ${largest} repos (${pages} listing pages of 100)`,
          met: api <= pages + 10,
        },
        {
          target: 'finishes in seconds (≤ 10 s)',
          measured: `${formatSeconds(wall)}; the full-fetch baseline takes ${formatRatio(vsBaseline)} as long`,
          met: wall <= 10,
        },
        {
          target: `peak memory flat in the number of repos (≤ 1.25x from ${sizes[0]} to ${largest})`,
          measured: `${sizes.map((n) => formatBytes(rss(reruns.get(n)!))).join(' / ')} (${formatRatio(growth)})`,
          met: growth <= 1.25,
        },
      ],
      notes: [
        `Peak memory is the largest resident set of the command's processes (GNU time); a re-run starts no git process, so it is refbridge's own. All three sizes use one storage directory and state file (the state holds ${largest} repos in every run).`,
        `The baseline fetches with git's own negotiation: one ls-refs round trip per repo when nothing changed (${median(baseline.map((b) => b.gitRequests ?? NaN))} git requests per round).`,
      ],
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await bench.close();
    await rm(work, { recursive: true, force: true });
  }
}
