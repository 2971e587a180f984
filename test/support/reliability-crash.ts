import { runCli } from './cli.js';
import type { LeakCheck } from './reliability-leaks.js';
import { startCliChild, waitForGroupGone, type ChildRun, type World } from './reliability-world.js';

/**
 * The kill half of the crash tests: run the CLI as a child process and SIGKILL it at a random
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
