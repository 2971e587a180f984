import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildReport, consoleReport, describeMachine, markdownReport, updateDoc } from './lib/report.js';
import type { BenchContext, ScenarioResult } from './lib/types.js';
import { backup, type BackupSpec } from './scenarios/backup.js';
import { bootstrap, type BootstrapSpec } from './scenarios/bootstrap.js';
import { ciFastPath } from './scenarios/ci-fast-path.js';
import { daemon, type DaemonSpec } from './scenarios/daemon.js';
import type { LongHistorySpec } from './lib/generate.js';

/**
 * `npm run bench [-- --quick] [-- --only ci,daemon,backup,bootstrap] [-- --runs N] ...`: builds
 * its data (cached in bench/.cache/), runs each scenario against the test forge on loopback with
 * the built CLI as a child process, prints the table, and (full profile) writes bench/results.json
 * and the generated part of docs/benchmarks.md. `--quick` is a smoke run with small data; its
 * results go to bench/.cache/results-quick.json and never into the doc.
 */

const USAGE = `usage: npm run bench [-- options]
  --quick                 small data, 2 runs: a smoke run (results to bench/.cache/results-quick.json)
  --only LIST             scenarios to run, comma-separated: ci,daemon,backup,bootstrap (default: all)
  --runs N                measured rounds per scenario (default 3; quick 2)
  --commits N --size-mb N --tags N   the long-history repo of the CI scenario (default 20000, 100, 5000)
  --pairs N               daemon pairs (default 500)
  --repos N               backup repos at the largest size; N/10 and N/2 are measured too (default 1000)
  --bootstrap-pairs N     bootstrap pairs (default 50)
  --no-write              print only; do not write results.json or the doc`;

const SCENARIOS = ['ci', 'daemon', 'backup', 'bootstrap'] as const;
type ScenarioId = (typeof SCENARIOS)[number];

interface Profile {
  name: string;
  runs: number;
  ci: LongHistorySpec;
  daemon: DaemonSpec;
  backup: BackupSpec;
  bootstrap: BootstrapSpec;
}

function profile(quick: boolean): Profile {
  if (quick) {
    return {
      name: 'quick',
      runs: 2,
      ci: { commits: 2000, sizeMb: 10, tags: 500 },
      daemon: { pairs: 40, scalingPairs: 20, historyPairs: 5, longHistory: 2000, changedRounds: 1, scalingRounds: 1 },
      backup: { sizes: [10, 30, 60], baselineRuns: 1 },
      bootstrap: { pairs: 5, rounds: 2 },
    };
  }
  return {
    name: 'default',
    runs: 3,
    ci: { commits: 20_000, sizeMb: 100, tags: 5000 },
    daemon: {
      pairs: 500,
      scalingPairs: 100,
      historyPairs: 20,
      longHistory: 20_000,
      changedRounds: 3,
      scalingRounds: 3,
    },
    backup: { sizes: [100, 500, 1000], baselineRuns: 1 },
    bootstrap: { pairs: 50, rounds: 2 },
  };
}

function positive(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a whole number of at least 1, got "${value}"`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      runs: { type: 'string' },
      commits: { type: 'string' },
      'size-mb': { type: 'string' },
      tags: { type: 'string' },
      pairs: { type: 'string' },
      repos: { type: 'string' },
      'bootstrap-pairs': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const cli = join(root, 'packages', 'cli', 'dist', 'bin.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first (npm run bench does)`);
  const only = (values.only?.split(',').map((s) => s.trim()) ?? [...SCENARIOS]) as ScenarioId[];
  const unknown = only.filter((s) => !SCENARIOS.includes(s));
  if (unknown.length > 0)
    throw new Error(`unknown scenario(s) ${unknown.join(', ')}; choose from ${SCENARIOS.join(', ')}`);

  const p = profile(values.quick);
  const runs = positive('--runs', values.runs) ?? p.runs;
  p.ci = {
    commits: positive('--commits', values.commits) ?? p.ci.commits,
    sizeMb: positive('--size-mb', values['size-mb']) ?? p.ci.sizeMb,
    tags: positive('--tags', values.tags) ?? p.ci.tags,
  };
  const pairs = positive('--pairs', values.pairs);
  if (pairs !== undefined) {
    p.daemon.pairs = pairs;
    p.daemon.scalingPairs = Math.max(1, Math.min(p.daemon.scalingPairs, Math.round(pairs / 5)));
  }
  const repos = positive('--repos', values.repos);
  if (repos !== undefined)
    p.backup.sizes = [Math.max(1, Math.round(repos / 10)), Math.max(2, Math.round(repos / 2)), Math.max(3, repos)];
  p.bootstrap.pairs = positive('--bootstrap-pairs', values['bootstrap-pairs']) ?? p.bootstrap.pairs;
  p.daemon.changedRounds = Math.min(p.daemon.changedRounds, runs);
  p.daemon.scalingRounds = Math.min(p.daemon.scalingRounds, runs);

  const cacheDir = join(root, 'bench', '.cache');
  // Forge data dirs and work dirs of an interrupted run are never reused.
  await rm(join(cacheDir, 'tmp'), { recursive: true, force: true });
  await mkdir(join(cacheDir, 'tmp'), { recursive: true });
  const started = Date.now();
  const ctx: BenchContext = {
    root,
    cacheDir,
    quick: values.quick,
    runs,
    cli,
    log: (m) => {
      const t = Math.round((Date.now() - started) / 1000);
      process.stderr.write(
        `[bench ${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}] ${m}\n`,
      );
    },
  };
  const machine = await describeMachine();
  ctx.log(
    `profile ${p.name}, ${runs} rounds; ${machine.cpus} CPUs, load average ${machine.loadAverageStart.join(' ')}`,
  );

  const results: ScenarioResult[] = [];
  const steps: Record<ScenarioId, () => Promise<ScenarioResult>> = {
    ci: () => ciFastPath(ctx, p.ci),
    daemon: () => daemon(ctx, p.daemon),
    backup: () => backup(ctx, p.backup),
    bootstrap: () => bootstrap(ctx, p.bootstrap),
  };
  let failed = false;
  for (const id of SCENARIOS.filter((s) => only.includes(s))) {
    const t0 = Date.now();
    try {
      const r = await steps[id]();
      ctx.log(`${id}: done in ${Math.round(r.seconds)} s`);
      results.push(r);
    } catch (error) {
      failed = true;
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      ctx.log(`${id}: FAILED: ${message}`);
      results.push({
        id,
        title: `${id}: failed`,
        params: {},
        variants: [],
        targets: [{ target: 'the scenario runs to the end', measured: message.split('\n')[0] ?? '', met: false }],
        notes: [],
        seconds: (Date.now() - t0) / 1000,
      });
    }
  }
  machine.loadAverageEnd = loadavg().map((l) => Math.round(l * 100) / 100);

  const args = process.argv.slice(2);
  const report = buildReport({
    command: `npm run bench${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`,
    profile: p.name,
    durationSeconds: (Date.now() - started) / 1000,
    machine,
    scenarios: results,
  });
  process.stdout.write(consoleReport(report));
  process.stdout.write(`\n${Math.round(report.durationSeconds)} s in all\n`);
  if (!values['no-write']) {
    const json = JSON.stringify(report, null, 2) + '\n';
    if (values.quick || only.length !== SCENARIOS.length) {
      // Partial or smoke runs never replace the committed results.
      const file = join(cacheDir, values.quick ? 'results-quick.json' : 'results-partial.json');
      await writeFile(file, json);
      ctx.log(`wrote ${file} (bench/results.json and docs/benchmarks.md are only written by a full default run)`);
    } else {
      await writeFile(join(root, 'bench', 'results.json'), json);
      await updateDoc(join(root, 'docs', 'benchmarks.md'), markdownReport(report));
      ctx.log('wrote bench/results.json and docs/benchmarks.md');
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    process.exit(2);
  },
);
