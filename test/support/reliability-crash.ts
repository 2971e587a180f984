import { expect } from '@jest/globals';
import { runCli } from './cli.js';
import { ArgvSampler, LeakCheck } from './reliability-leaks.js';
import {
  CANARY,
  envInt,
  seededRandom,
  startCliChild,
  startWorld,
  waitForGroupGone,
  type ChildRun,
  type World,
  type WorldOptions,
} from './reliability-world.js';

/**
 * The kill half of the crash tests (and, in CrashSuite at the end, the loop around it): run the CLI as a child process and SIGKILL it at a random
 * moment, spread over what a run does. A quarter of the kills land before the first network
 * request (lock, cache or state set-up, node still starting); the rest land a random time after the
 * first git request reached the forge (listing, fetching, pushing, writing refs and state). Half
 * kill the whole process group (a crash of the machine or container: git dies mid-write too), half
 * kill only node (the OOM killer: its git children finish as orphans, which the test waits for).
 */

export interface CrashFigures {
  kills: number;
  /** The run ended on its own before the kill landed (a kill that came too late). */
  finishedBeforeKill: number;
  earlyKills: number;
  groupKills: number;
  nodeKills: number;
  /** How far killed runs got, judged from the forge's request log. */
  phase: { beforeNetwork: number; listingOrFetch: number; push: number };
  convergeRuns: number;
  commitsChecked: number;
  /** Commits the test's users dropped themselves (force push, deletion) before refbridge saw them. */
  droppedByUsers: number;
  ms: { actions: number; killed: number; converge: number; checks: number };
}

export function newCrashFigures(): CrashFigures {
  return {
    kills: 0,
    finishedBeforeKill: 0,
    earlyKills: 0,
    groupKills: 0,
    nodeKills: 0,
    phase: { beforeNetwork: 0, listingOrFetch: 0, push: 0 },
    convergeRuns: 0,
    commitsChecked: 0,
    droppedByUsers: 0,
    ms: { actions: 0, killed: 0, converge: 0, checks: 0 },
  };
}

/** Durations seen so far (smoothed), so kill moments follow the machine's actual speed. */
export class RunTiming {
  /** Spawn of the CLI to its first git request at the forge (node starting, lock, cache). */
  startup = 500;
  /** The work of a run (what the converging run after a kill takes). */
  work = 1500;

  observeStartup(ms: number | undefined): void {
    if (ms !== undefined) this.startup = Math.round(this.startup * 0.7 + ms * 0.3);
  }

  observeWork(ms: number): void {
    this.work = Math.round(this.work * 0.7 + ms * 0.3);
  }
}

/** Ms until the forge logs a git request after `seq`; undefined if the child exits first. */
export async function firstGitRequest(
  world: World,
  seq: number,
  child: { exited: () => boolean },
): Promise<number | undefined> {
  const start = Date.now();
  const seen = (): boolean => world.forge.state.requestLog.some((e) => e.seq > seq && e.kind === 'git');
  while (!child.exited() && Date.now() - start < 60_000) {
    if (seen()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 5));
  }
  return undefined;
}

/** Waits `ms`, or less if the child exits first. */
export async function sleepWhileRunning(ms: number, child?: { exited: () => boolean }): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until && !child?.exited())
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(5, until - Date.now()))));
}

function phaseOf(world: World, fromSeq: number): keyof CrashFigures['phase'] {
  const git = world.forge.state.requestLog.filter((e) => e.seq > fromSeq && e.kind === 'git');
  if (git.some((e) => e.route.includes('receive-pack'))) return 'push';
  return git.length > 0 ? 'listingOrFetch' : 'beforeNetwork';
}

export interface InProcessRun {
  code: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/**
 * Runs the CLI in the test's own process (`main()` from packages/cli/src): the converging runs
 * after each kill, which need no crash of their own and so skip node's start-up. Output goes
 * through the leak check; the duration feeds the kill timing.
 */
export async function inProcessRun(
  world: World,
  args: string[],
  timing: RunTiming,
  leaks: LeakCheck,
  label: string,
): Promise<InProcessRun> {
  const started = Date.now();
  const r = await runCli(args, world.env, world.root);
  const durationMs = Date.now() - started;
  timing.observeWork(durationMs);
  leaks.text(`${label} stdout`, r.stdout);
  leaks.text(`${label} stderr`, r.stderr);
  return { ...r, durationMs };
}

/** Starts the CLI and SIGKILLs it at a random moment; returns once it and any orphans are gone. */
export async function killedRun(
  world: World,
  args: readonly string[],
  rnd: () => number,
  timing: RunTiming,
  figures: CrashFigures,
  leaks: LeakCheck,
  label: string,
): Promise<ChildRun> {
  const mode = rnd() < 0.5 ? 'group' : 'node';
  const early = rnd() < 0.25;
  const seq = world.forge.state.nextSeq();
  const child = startCliChild(args, { env: world.env, cwd: world.root, timeoutMs: 120_000 });
  if (early) {
    figures.earlyKills++;
    await sleepWhileRunning(Math.floor(rnd() * timing.startup * 1.1), child);
  } else {
    timing.observeStartup(await firstGitRequest(world, seq, child));
    await sleepWhileRunning(Math.floor(rnd() * Math.max(200, timing.work)), child);
  }
  child.kill(mode);
  const run = await child.done;
  leaks.text(`${label} (killed) stdout`, run.stdout);
  leaks.text(`${label} (killed) stderr`, run.stderr);
  figures.kills++;
  if (!run.killed || run.signal !== 'SIGKILL') figures.finishedBeforeKill++;
  else {
    figures[mode === 'group' ? 'groupKills' : 'nodeKills']++;
    figures.phase[phaseOf(world, seq)]++;
  }
  // Orphaned git children of a node-only kill finish on their own (bounded wait).
  if (mode === 'node' && !(await waitForGroupGone(run.pid, 30_000))) {
    throw new Error(`${label}: git processes of the killed run were still running after 30 s`);
  }
  return run;
}

/** The CLI's `--json` report of a run; a run that printed none fails the test with its output. */
export function jsonOf<T>(r: InProcessRun, context: string): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`${context}: no JSON result (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** What one crash test plays and checks around each kill; the loop itself is `CrashSuite.killLoop`. */
export interface KillLoop {
  /** The pairs or repos whose commits are followed. */
  names: readonly string[];
  /** Users push (commits, branches, force pushes, deletions, tags) before a kill. */
  userActions(rnd: () => number, iteration: number): Promise<void>;
  /** Commits on the forge now: refbridge answers for each of them from the next run on. */
  onForge(name: string): Promise<Set<string>>;
  /** Commits still kept anywhere: on the forge, in a cache or mirror, in a backup ref. */
  kept(name: string): Promise<Set<string>>;
  /** Called right before the kill, after the users' actions (e.g. to switch to a fresh cache). */
  beforeKill?(rnd: () => number, iteration: number): void;
  /** Arguments of the run that gets killed. */
  args(): readonly string[];
  /** Normal runs after the kill until refbridge is done; throws when it cannot get there. */
  converge(context: string): Promise<void>;
  /** The checks after converging (repos equal, fsck, locks, state), besides the lost-commit check. */
  check(context: string): Promise<void>;
  /** What to print about lost commits, to debug a replay. */
  explainLoss(name: string, lost: readonly string[]): Promise<string> | string;
}

/**
 * What the crash tests share: the seed (replayable) and iteration count from the environment, one
 * world with an argv sampler watching every process for tokens while the runs go on, the leak check
 * every run's output passes through, the figures printed at the end, and the kill loop.
 */
export class CrashSuite<E extends Record<string, number> = Record<never, never>> {
  readonly iterations = envInt('REFBRIDGE_CRASH_ITERATIONS', 30, 100_000);
  readonly seed = envInt('REFBRIDGE_CRASH_SEED', Math.floor(Math.random() * 2 ** 31), 2 ** 31);
  readonly leaks = new LeakCheck([CANARY.github, CANARY.gitlab]);
  readonly timing = new RunTiming();
  readonly figures: CrashFigures & E;
  /** Output of the runs of the current iteration, for failure messages. */
  readonly recent: string[] = [];
  private world: World | undefined;
  private sampler: ArgvSampler | undefined;

  /** `name` labels output and temp dirs (`crash-sync`); `extraFigures` are the test's own counters. */
  constructor(
    readonly name: string,
    extraFigures: E,
  ) {
    this.figures = { ...newCrashFigures(), ...extraFigures };
  }

  /** Starts the forge and the argv sampler (for beforeAll). */
  async start(options: Omit<WorldOptions, 'prefix'>): Promise<World> {
    process.stdout.write(`[reliability] ${this.name}: seed ${this.seed} (replay: REFBRIDGE_CRASH_SEED=${this.seed})\n`);
    this.world = await startWorld({ prefix: `refbridge-${this.name}-`, ...options });
    this.sampler = new ArgvSampler([CANARY.github, CANARY.gitlab], 5);
    return this.world;
  }

  /** Prints the figures and removes the world (for afterAll). */
  async close(): Promise<void> {
    const report = await this.sampler?.stop();
    this.sampler = undefined;
    process.stdout.write(
      `[reliability] ${this.name} seed=${this.seed} iterations=${this.iterations} ${JSON.stringify(this.figures)}${report ? ` argv samples=${report.samples}` : ''}\n`,
    );
    await this.world?.close();
  }

  private started(): World {
    if (!this.world) throw new Error(`${this.name}: start() has not run`);
    return this.world;
  }

  /**
   * The leak test: every file of the world and everything the argv sampler saw hold no token, and
   * the sampler did see the runs (processes, git talking to the forge) while they went on.
   */
  async expectNoLeaks(): Promise<void> {
    await this.leaks.tree(this.started().root);
    if (!this.sampler) throw new Error(`${this.name}: the argv sampler is not running`);
    const report = await this.sampler.stop();
    this.sampler = undefined;
    this.leaks.sampler(report, this.name);
    process.stdout.write(
      `[reliability] ${this.name} argv sampler: ${report.samples} samples, ${report.processes} processes, ${report.gitNetworkProcesses} git network processes\n`,
    );
    expect(report.samples).toBeGreaterThan(10);
    expect(report.gitNetworkProcesses).toBeGreaterThan(0);
    expect(this.leaks.describe()).toBeUndefined();
  }

  /** A run to its end in the test's process; its output is kept in `recent` for failure messages. */
  async run(args: string[], label: string): Promise<InProcessRun> {
    const r = await inProcessRun(this.started(), args, this.timing, this.leaks, label);
    this.recent.push(`${label} -> ${r.code}\n${r.stdout.slice(0, 3000)}\n${r.stderr.slice(0, 3000)}`);
    return r;
  }

  /**
   * `iterations` times: users act, the run is killed at a random moment, normal runs converge,
   * then every check passes and every commit that existed when the killed run started is kept.
   */
  async killLoop(loop: KillLoop): Promise<void> {
    const world = this.started();
    const figures = this.figures;
    const rnd = seededRandom(this.seed);
    const mustKeep = new Map<string, Set<string>>(loop.names.map((n) => [n, new Set<string>()]));
    for (let i = 0; i < this.iterations; i++) {
      const context = `${this.name} seed ${this.seed} iteration ${i + 1}/${this.iterations}`;
      let t = Date.now();
      await loop.userActions(rnd, i);
      for (const name of loop.names) {
        // What the users themselves just dropped (a force push or deletion) is theirs to lose;
        // refbridge answers for everything that existed when its run started.
        const now = await loop.kept(name);
        const keep = mustKeep.get(name)!;
        for (const c of keep) {
          if (now.has(c)) continue;
          keep.delete(c);
          figures.droppedByUsers++;
        }
        for (const c of await loop.onForge(name)) keep.add(c);
      }
      loop.beforeKill?.(rnd, i);
      figures.ms.actions += Date.now() - t;
      t = Date.now();
      this.recent.length = 0;
      const killed = await killedRun(world, loop.args(), rnd, this.timing, figures, this.leaks, context);
      this.recent.push(
        `killed run after ${killed.durationMs} ms (${killed.signal ?? killed.code}):\n${killed.stdout.slice(0, 3000)}\n${killed.stderr.slice(0, 3000)}`,
      );
      figures.ms.killed += Date.now() - t;
      t = Date.now();
      await loop.converge(context);
      figures.ms.converge += Date.now() - t;
      t = Date.now();
      await loop.check(context);
      for (const name of loop.names) {
        const kept = await loop.kept(name);
        const keep = mustKeep.get(name)!;
        const lost = [...keep].filter((c) => !kept.has(c));
        figures.commitsChecked += keep.size;
        if (lost.length > 0)
          throw new Error(`${context}: ${name} lost ${lost.length} commit(s):\n${await loop.explainLoss(name, lost)}`);
      }
      figures.ms.checks += Date.now() - t;
    }
  }
}
