import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GH_TOKEN, GL_TOKEN, childEnv, measureOnForge, startBenchForge, type BenchForge } from '../lib/forge.js';
import { formatRatio, formatSeconds, median } from '../lib/stats.js';
import type { BenchContext, Sample, ScenarioResult, VariantResult } from '../lib/types.js';

/**
 * Scenario 4, bootstrap: `refbridge bootstrap` of N pairs whose GitHub repos exist and whose
 * GitLab projects do not. The first run creates the projects, stores the secrets and variables on
 * both sides and commits the CI files (one commit, pushed to the other side); the second run must
 * find everything in place and write nothing. Every first run needs pairs never set up, so each
 * round has its own GitHub org and GitLab group.
 *
 * GitHub asks API clients to space writes at least 1 s apart, and refbridge does so by default;
 * against the forge the spacing is turned off (REFBRIDGE_GITHUB_WRITE_INTERVAL_MS=0), so these
 * times are refbridge's own work, not a politeness delay. Against github.com the first run takes
 * at least (GitHub writes per pair) x pairs / concurrency seconds more.
 */

export interface BootstrapSpec {
  pairs: number;
  /** First runs (each on pairs never set up) and as many idempotent second runs. */
  rounds: number;
}

interface BootstrapJson {
  exitCode: number;
  pairs: { pair: string; status: string; error?: string; steps: { status: string }[] }[];
}

export async function bootstrap(ctx: BenchContext, spec: BootstrapSpec): Promise<ScenarioResult> {
  const started = Date.now();
  const rounds = spec.rounds;
  const sets = Array.from({ length: rounds }, (_, i) => `boot${i + 1}`);
  ctx.log(`bootstrap: seeding ${rounds} x ${spec.pairs} GitHub repos`);
  const bench = await startBenchForge(ctx.cacheDir, {
    github: {
      users: ['alice', 'ghbot'],
      orgs: sets.map((login) => ({ login, members: ['alice'] })),
      repos: sets.map((owner) => ({
        owner,
        name: 'app-{n}',
        count: spec.pairs,
        private: true,
        files: { 'README.md': '# app\n' },
        history: 25,
      })),
    },
    gitlab: {
      users: ['carol', 'glbot'],
      groups: sets.map((path) => ({ path, members: { carol: 50 } })),
      projects: [],
    },
    tokens: [
      { value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
      { value: GL_TOKEN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
    ],
  });
  const work = await mkdtemp(join(ctx.cacheDir, 'tmp', 'bootstrap-'));
  try {
    const home = join(work, 'home');
    await mkdir(home, { recursive: true });
    const env = childEnv(home, {
      GITHUB_TOKEN: GH_TOKEN,
      GITLAB_TOKEN: GL_TOKEN,
      REFBRIDGE_GITHUB_WRITE_INTERVAL_MS: '0',
    });
    const configs = await Promise.all(sets.map((set) => writeConfig(bench, work, set, spec.pairs)));

    const runBootstrap = async (config: string, want: string): Promise<Sample> => {
      const { measured, sample, pushBytes } = await measureOnForge(
        bench,
        'refbridge bootstrap',
        process.execPath,
        [ctx.cli, 'bootstrap', '--config', config, '--json'],
        { cwd: work, env },
      );
      const out = JSON.parse(measured.stdout) as BootstrapJson;
      for (const p of out.pairs) {
        if (p.status !== want)
          throw new Error(`bootstrap: pair ${p.pair} is ${p.status}, expected ${want}: ${p.error ?? ''}`);
      }
      if (out.pairs.length !== spec.pairs)
        throw new Error(`bootstrap: ${out.pairs.length} pairs reported, expected ${spec.pairs}`);
      return { ...sample, pushBytes };
    };

    const first: Sample[] = [];
    const githubWrites: number[] = [];
    const second: Sample[] = [];
    let writesSecond = 0;
    for (let round = 0; round < rounds; round++) {
      const firstMark = bench.mark();
      first.push(await runBootstrap(configs[round]!, 'set-up'));
      githubWrites.push(
        bench.requestsSince(firstMark).filter((e) => e.platform === 'github' && e.kind === 'api' && e.method !== 'GET')
          .length,
      );
      const mark = bench.mark();
      // The idempotent run, always over the first set: nothing may be written.
      second.push(await runBootstrap(configs[0]!, 'already-set-up'));
      writesSecond += bench.requestsSince(mark).filter((e) => e.kind === 'api' && e.method !== 'GET').length;
      writesSecond += bench.pushesSince(mark).length;
      ctx.log(
        `bootstrap: round ${round + 1}/${rounds}: first run ${formatSeconds(first.at(-1)!.seconds)} (${first.at(-1)!.apiCalls} API calls), second ${formatSeconds(second.at(-1)!.seconds)} (${second.at(-1)!.apiCalls} API calls)`,
      );
    }
    const variants: VariantResult[] = [
      { name: `first run, ${spec.pairs} pairs`, label: 'first run', samples: first },
      {
        name: `second run (idempotent), ${spec.pairs} pairs`,
        samples: second,
        baselines: [`first run, ${spec.pairs} pairs`],
      },
    ];
    const apiFirst = median(first.map((s) => s.apiCalls ?? NaN));
    const apiSecond = median(second.map((s) => s.apiCalls ?? NaN));
    return {
      id: 'bootstrap',
      title: `4. Bootstrap: ${spec.pairs} pairs`,
      params: { ...spec, githubWriteIntervalMs: 0, githubWritesPerFirstRun: githubWrites },
      variants,
      targets: [
        {
          target: 'second run writes nothing',
          measured: `${writesSecond} writes (non-GET API calls and pushes) over ${rounds} second runs`,
          met: writesSecond === 0,
        },
        {
          target: '(no target) API calls per pair, first / second run',
          measured: `${(apiFirst / spec.pairs).toFixed(1)} / ${(apiSecond / spec.pairs).toFixed(1)}; second run takes ${formatRatio(median(second.map((s, i) => s.seconds / first[i]!.seconds)))} the first's time`,
          met: null,
        },
      ],
      notes: [
        `REFBRIDGE_GITHUB_WRITE_INTERVAL_MS=0 against the forge. Real GitHub needs the default 1 s between writes (its secondary rate limits), and refbridge spaces all GitHub writes of a process that way: a first run here made ${median(githubWrites)} GitHub writes, so on github.com it takes at least ${median(githubWrites)} s (${(median(githubWrites) / spec.pairs).toFixed(1)} s per pair). The second run makes no writes and is unaffected.`,
      ],
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await bench.close();
    await rm(work, { recursive: true, force: true });
  }
}

async function writeConfig(bench: BenchForge, dir: string, set: string, pairs: number): Promise<string> {
  const file = join(dir, `${set}.yaml`);
  const config = {
    github: { url: bench.forge.urls.github.web, apiUrl: bench.forge.urls.github.api },
    gitlab: { url: bench.forge.urls.gitlab.web },
    pairs: Array.from({ length: pairs }, (_, i) => ({
      name: `app-${i + 1}`,
      github: `${set}/app-${i + 1}`,
      gitlab: `${set}/app-${i + 1}`,
    })),
  };
  await writeFile(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}
