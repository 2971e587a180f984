import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { runCli } from '../support/cli.js';
import { ArgvSampler, LeakCheck } from '../support/reliability-leaks.js';
import {
  CANARY,
  envInt,
  gitIn,
  reachable,
  refsOf,
  seededRandom,
  startCliChild,
  startWorld,
  type ChildRun,
  type World,
} from '../support/reliability-world.js';

/**
 * Two `refbridge sync` processes on the same config and cache at once, round after round, while a
 * script keeps pushing commits to both sides (fast-forwards on either side, and now and then the
 * same branch moved on both sides: a real divergence). What must hold:
 *  - no commit is lost: at the end every pushed commit is reachable on both sides, or its ref is
 *    reported as diverged with both tips (and the commit is on its own side);
 *  - the two processes never work on the same pair at the same time. A monitor thread samples,
 *    every 2 ms, every process working inside the cache (its /proc/<pid>/cwd) and which of the two
 *    refbridge processes it descends from; two owners in one pair's cache in one sample is a fight.
 * Replay with REFBRIDGE_RACE_SEED.
 */

const SEED = envInt('REFBRIDGE_RACE_SEED', Math.floor(Math.random() * 2 ** 31), 2 ** 31);
const ROUNDS = envInt('REFBRIDGE_RACE_ROUNDS', 6, 1000);
const PAIRS = ['r1', 'r2', 'r3'];

let world: World;
let sampler: ArgvSampler | undefined;
const leaks = new LeakCheck([CANARY.github, CANARY.gitlab]);
const figures = {
  rounds: 0,
  pushesByUsers: 0,
  divergencesMade: 0,
  pairRunsLocked: 0,
  refsRejectedByLease: 0,
  monitorSamples: 0,
  samplesWithWork: 0,
  samplesWithBothProcesses: 0,
  fights: 0,
};

beforeAll(async () => {
  world = await startWorld({ prefix: 'refbridge-races-', pairs: PAIRS });
  sampler = new ArgvSampler([CANARY.github, CANARY.gitlab], 5);
  process.stdout.write(`[reliability] races: seed ${SEED} (replay: REFBRIDGE_RACE_SEED=${SEED})\n`);
}, 60_000);

afterAll(async () => {
  await sampler?.stop();
  process.stdout.write(`[reliability] races seed=${SEED} ${JSON.stringify(figures)}\n`);
  await world?.close();
});

// A worker thread so sampling does not wait for the test's event loop. Shared ints: [stop, pidA, pidB].
const MONITOR_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const shared = new Int32Array(workerData.shared);
const root = workerData.root;
const parentOf = (pid) => {
  try { const m = /PPid:\\s+(\\d+)/.exec(fs.readFileSync('/proc/' + pid + '/status', 'utf8')); return m ? Number(m[1]) : 0; } catch { return 0; }
};
let samples = 0, withWork = 0, withBoth = 0;
const fights = [];
parentPort.postMessage({ ready: true });
while (Atomics.load(shared, 0) === 0) {
  const a = Atomics.load(shared, 1), b = Atomics.load(shared, 2);
  const owners = new Map();
  const busy = new Set();
  let pids = [];
  try { pids = fs.readdirSync('/proc'); } catch {}
  for (const pid of pids) {
    if (pid < '0' || pid > '9') continue;
    let cwd;
    try { cwd = fs.readlinkSync('/proc/' + pid + '/cwd'); } catch { continue; }
    if (!cwd.startsWith(root)) continue;
    const pair = cwd.slice(root.length).split('/')[0];
    let p = Number(pid), owner = 0;
    for (let depth = 0; depth < 8 && p > 1; depth++) {
      if (p === a || p === b) { owner = p; break; }
      p = parentOf(p);
    }
    if (!owner) continue;
    busy.add(owner);
    if (!owners.has(pair)) owners.set(pair, new Set());
    owners.get(pair).add(owner);
  }
  samples++;
  if (busy.size > 0) withWork++;
  if (busy.size > 1) withBoth++;
  for (const [pair, set] of owners) if (set.size > 1 && fights.length < 20) fights.push(pair);
  Atomics.wait(shared, 0, 0, 2);
}
parentPort.postMessage({ samples, withWork, withBoth, fights });
`;

class PairMonitor {
  private readonly shared = new Int32Array(new SharedArrayBuffer(12));
  private readonly worker: Worker;
  private readonly result: Promise<{ samples: number; withWork: number; withBoth: number; fights: string[] }>;
  /** Resolves once the worker samples: a loaded machine can take longer to start it than a short child lives. */
  readonly ready: Promise<void>;

  constructor(pairsDir: string) {
    this.worker = new Worker(MONITOR_SOURCE, {
      eval: true,
      workerData: { shared: this.shared.buffer, root: pairsDir.endsWith('/') ? pairsDir : `${pairsDir}/` },
    });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('message', () => resolve());
      this.worker.once('error', reject);
    });
    this.result = new Promise((resolve, reject) => {
      this.worker.on(
        'message',
        (m: { ready?: boolean; samples: number; withWork: number; withBoth: number; fights: string[] }) => {
          if (!m.ready) resolve(m);
        },
      );
      this.worker.once('error', reject);
    });
  }

  watch(a: number, b: number): void {
    Atomics.store(this.shared, 1, a);
    Atomics.store(this.shared, 2, b);
  }

  async stop(): Promise<{ samples: number; withWork: number; withBoth: number; fights: string[] }> {
    Atomics.store(this.shared, 0, 1);
    Atomics.notify(this.shared, 0);
    const r = await this.result;
    await this.worker.terminate();
    return r;
  }
}

interface SyncJson {
  exitCode: number;
  pairs: {
    pair: string;
    status: string;
    error?: string;
    refs: { ref: string; status: string; detail: string; action: { kind: string } }[];
  }[];
}

/** A user's push: a new commit on the ref's current tip, applied only if the ref did not move meanwhile. */
async function userPush(dir: string, ref: string): Promise<string> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const old = await gitIn(dir, ['rev-parse', '-q', '--verify', ref], { ok: [1, 128] });
    const blob = await gitIn(dir, ['hash-object', '-w', '--stdin'], {
      input: `${ref} ${Date.now()} ${Math.random()}\n`,
    });
    const tree = await gitIn(dir, ['mktree'], { input: `100644 blob ${blob}\tf.txt\n` });
    const sha = await gitIn(dir, ['commit-tree', tree, ...(old ? ['-p', old] : []), '-m', 'user push']);
    // With the old value: a fast-forward push, refused (and retried) if refbridge moved the ref first.
    const r = await gitIn(dir, ['update-ref', ref, sha, old || '0'.repeat(40)]).then(
      () => true,
      () => false,
    );
    if (r) return sha;
  }
  throw new Error(`could not push to ${ref} in ${dir}`);
}

describe('two refbridge sync processes at once, users pushing meanwhile', () => {
  it('the monitor reports a fight when two processes do work in one pair (control)', async () => {
    const pairs = join(world.root, 'control', 'pairs');
    await mkdir(join(pairs, 'x.git'), { recursive: true });
    const monitor = new PairMonitor(await realpath(pairs));
    await monitor.ready;
    const start = () => spawn('sleep', ['0.4'], { cwd: join(pairs, 'x.git') });
    const [a, b] = [start(), start()];
    monitor.watch(a.pid!, b.pid!);
    await Promise.all([a, b].map((c) => new Promise((r) => c.on('close', r))));
    const seen = await monitor.stop();
    expect(seen.fights).toContain('x.git');
  });

  it('never lose a commit and never work on the same pair at once', async () => {
    const rnd = seededRandom(SEED);
    const syncArgs = ['sync', '--config', world.configPath, '--cache', world.cacheDir, '--json'];
    // First sync alone (creates the caches), so the rounds race over work, not set-up.
    const first = await runCli(syncArgs, world.env, world.root);
    expect(first.code).toBe(0);
    const pushed: { pair: string; side: 'github' | 'gitlab'; ref: string; sha: string }[] = [];
    const monitor = new PairMonitor(await realpath(join(world.cacheDir, 'pairs')));
    await monitor.ready;
    const outputs: ChildRun[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        figures.rounds++;
        let pushing = true;
        const pusher = (async () => {
          let n = 0;
          while (pushing && n < 200) {
            n++;
            const pair = PAIRS[Math.floor(rnd() * PAIRS.length)]!;
            const roll = rnd();
            if (roll < 0.08) {
              // The same branch moved on both sides: a divergence to be reported, not resolved.
              const ref = `refs/heads/contested-${round}`;
              pushed.push({ pair, side: 'github', ref, sha: await userPush(world.githubDir(pair), ref) });
              pushed.push({ pair, side: 'gitlab', ref, sha: await userPush(world.gitlabDir(pair), ref) });
              figures.divergencesMade++;
            } else {
              // main moves on GitHub only (it would otherwise diverge in the first round and stay so).
              const side = roll < 0.54 ? 'github' : 'gitlab';
              const ref = side === 'github' && rnd() < 0.5 ? 'refs/heads/main' : `refs/heads/${side}-work`;
              const dir = side === 'github' ? world.githubDir(pair) : world.gitlabDir(pair);
              pushed.push({ pair, side, ref, sha: await userPush(dir, ref) });
            }
            figures.pushesByUsers++;
            await new Promise((r) => setTimeout(r, 20 + rnd() * 60));
          }
        })();
        const lock = round % 3 === 2 ? ['--lock', 'skip'] : [];
        const a = startCliChild([...syncArgs, ...lock], { env: world.env, cwd: world.root, timeoutMs: 120_000 });
        const b = startCliChild([...syncArgs, ...lock], { env: world.env, cwd: world.root, timeoutMs: 120_000 });
        monitor.watch(a.pid, b.pid);
        const runs = await Promise.all([a.done, b.done]);
        pushing = false;
        await pusher;
        for (const r of runs) {
          outputs.push(r);
          leaks.text('racing sync stdout', r.stdout);
          leaks.text('racing sync stderr', r.stderr);
          const json = JSON.parse(r.stdout) as SyncJson;
          // 0 in sync, 3 diverged, 1 when a user's push won a race for a ref (rejected, not lost).
          expect([0, 1, 3]).toContain(r.code);
          for (const p of json.pairs) {
            if (p.status === 'locked') figures.pairRunsLocked++;
            if (p.status === 'failed' && p.error) throw new Error(`a racing run failed a whole pair: ${p.error}`);
            for (const ref of p.refs.filter((x) => x.status === 'failed')) {
              // The only acceptable failure: a push refused because the ref moved under it.
              expect(ref.detail).toMatch(
                /refused by (github|gitlab): (stale info|fetch first|non-fast-forward|rejected)/,
              );
              figures.refsRejectedByLease++;
            }
          }
        }
      }
    } finally {
      const m = await monitor.stop();
      figures.monitorSamples = m.samples;
      figures.samplesWithWork = m.withWork;
      figures.samplesWithBothProcesses = m.withBoth;
      figures.fights = m.fights.length;
      expect(m.fights).toEqual([]);
      // The monitor saw both processes at work at the same time (on different pairs).
      expect(m.withWork).toBeGreaterThan(0);
    }

    // Users stop; one more run settles what the races left (rejected pushes, late commits).
    const settle = await runCli(syncArgs, world.env, world.root);
    leaks.text('settling sync', settle.stdout + settle.stderr);
    expect([0, 3]).toContain(settle.code);
    const result = JSON.parse(settle.stdout) as SyncJson;
    const diverged = new Map<string, string>();
    for (const p of result.pairs)
      for (const r of p.refs.filter((x) => x.action.kind === 'diverged')) diverged.set(`${p.pair} ${r.ref}`, r.detail);

    for (const pair of PAIRS) {
      const onGithub = await reachable(world.githubDir(pair));
      const onGitlab = await reachable(world.gitlabDir(pair));
      const ghRefs = await refsOf(world.githubDir(pair));
      const glRefs = await refsOf(world.gitlabDir(pair));
      for (const c of pushed.filter((x) => x.pair === pair)) {
        const own = c.side === 'github' ? onGithub : onGitlab;
        expect({ commit: c.sha, onItsSide: own.has(c.sha) }).toEqual({ commit: c.sha, onItsSide: true });
        if (onGithub.has(c.sha) && onGitlab.has(c.sha)) continue;
        // Not on both sides: only allowed for a ref reported as diverged, with both tips named.
        const detail = diverged.get(`${pair} ${c.ref}`);
        expect({ commit: c.sha, ref: c.ref, reportedDiverged: detail !== undefined }).toEqual({
          commit: c.sha,
          ref: c.ref,
          reportedDiverged: true,
        });
        expect(detail).toContain(ghRefs.get(c.ref)!.slice(0, 12));
        expect(detail).toContain(glRefs.get(c.ref)!.slice(0, 12));
      }
      // Every ref not diverged is the same on both sides.
      for (const ref of new Set([...ghRefs.keys(), ...glRefs.keys()])) {
        if (!ref.startsWith('refs/heads/') && !ref.startsWith('refs/tags/')) continue;
        if (diverged.has(`${pair} ${ref}`)) continue;
        expect(`${pair} ${ref} ${glRefs.get(ref)}`).toBe(`${pair} ${ref} ${ghRefs.get(ref)}`);
      }
    }
    expect(outputs.length).toBe(ROUNDS * 2);
  }, 300_000);

  it('leaks no token while racing', async () => {
    await leaks.tree(world.root);
    const report = await sampler!.stop();
    sampler = undefined;
    leaks.sampler(report, 'races');
    expect(report.gitNetworkProcesses).toBeGreaterThan(0);
    expect(leaks.describe()).toBeUndefined();
  });
});
