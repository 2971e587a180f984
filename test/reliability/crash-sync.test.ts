import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CrashSuite, jsonOf, type InProcessRun } from '../support/reliability-crash.js';
import {
  bareReposUnder,
  branchesAndTags,
  deleteRef,
  fsckProblem,
  gitIn,
  gitLockFiles,
  reachable,
  refsOf,
  writeCommit,
  type World,
} from '../support/reliability-world.js';

/**
 * `refbridge sync` killed with SIGKILL at random moments, many times. Before each kill the test
 * plays users (commits, new branches, force pushes, deletions, tags, now and then a divergence) on
 * both sides; after each kill a normal run must converge, and then:
 *  - every commit that was on either side when the killed run started is still reachable, on a
 *    forge or in the cache's refs/refbridge/backup/;
 *  - `git fsck` passes on every cache repo, and no git or refbridge lock is left behind;
 *  - both sides hold the same branches and tags.
 * Now and then the kill lands on a brand-new cache (as for a newly added pair). How kill moments
 * are chosen, and the loop around them: reliability-crash.ts. Replay a failure with REFBRIDGE_CRASH_SEED; run a longer soak
 * with REFBRIDGE_CRASH_ITERATIONS.
 */

const PAIRS = ['alpha', 'beta', 'gamma'];
const suite = new CrashSuite('crash-sync', { freshCaches: 0, resolves: 0 });
const { figures, recent } = suite;

let world: World;
let cacheDir = '';
const cacheDirs: string[] = [];

beforeAll(async () => {
  world = await suite.start({
    pairs: PAIRS,
    gitlabContent: () => ({ protectDefaultBranch: false }),
    config: { defaults: { rewrites: 'allow' } },
  });
  cacheDir = world.cacheDir;
  cacheDirs.push(cacheDir);
}, 60_000);

afterAll(() => suite.close());

function syncArgs(...extra: string[]): string[] {
  return ['sync', '--config', world.configPath, '--cache', cacheDir, '--json', ...extra];
}

function run(args: string[]): Promise<InProcessRun> {
  return suite.run(args, `sync ${args.slice(5).join(' ')}`);
}

interface SyncJson {
  exitCode: number;
  pairs: { pair: string; status: string; error?: string; refs: { ref: string; status: string }[] }[];
}

/** Plays 1-3 user actions on random pairs. */
async function userActions(rnd: () => number, iteration: number): Promise<void> {
  const count = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < count; i++) {
    const pair = PAIRS[Math.floor(rnd() * PAIRS.length)]!;
    const side = rnd() < 0.5 ? 'github' : 'gitlab';
    const dir = side === 'github' ? world.githubDir(pair) : world.gitlabDir(pair);
    const heads = [...(await refsOf(dir, 'refs/heads/')).keys()];
    const extra = heads.filter((r) => r !== 'refs/heads/main');
    const roll = rnd();
    if (roll < 0.35 || heads.length === 0)
      await writeCommit(
        dir,
        heads.includes('refs/heads/main') && rnd() < 0.5 ? 'refs/heads/main' : (extra[0] ?? 'refs/heads/main'),
      );
    else if (roll < 0.5) await writeCommit(dir, `refs/heads/topic-${iteration}-${i}`, { from: 'refs/heads/main' });
    else if (roll < 0.62 && extra.length > 0)
      await writeCommit(dir, extra[Math.floor(rnd() * extra.length)]!, { rewrite: true });
    else if (roll < 0.72 && extra.length > 1) await deleteRef(dir, extra[extra.length - 1]!);
    else if (roll < 0.82) await gitTag(dir, `t-${iteration}-${i}`);
    else if (roll < 0.9) {
      // Both sides move the same branch differently: a divergence the converge step resolves.
      await writeCommit(world.githubDir(pair), 'refs/heads/main');
      await writeCommit(world.gitlabDir(pair), 'refs/heads/main');
    } else await writeCommit(dir, 'refs/heads/main');
  }
}

async function gitTag(dir: string, name: string): Promise<void> {
  const main = await gitIn(dir, ['rev-parse', 'refs/heads/main']);
  await gitIn(dir, ['update-ref', `refs/tags/${name}`, main]);
}

async function forgeCommits(pair: string): Promise<Set<string>> {
  return new Set([...(await reachable(world.githubDir(pair))), ...(await reachable(world.gitlabDir(pair)))]);
}

/** Commits on either forge side or in a backup ref of any cache the pair had. */
async function keptCommits(pair: string): Promise<Set<string>> {
  const kept = await forgeCommits(pair);
  for (const dir of cacheDirs) {
    const repo = await cacheRepoOf(pair, dir);
    if (repo) for (const c of await reachable(repo, ['refs/refbridge/backup/*'])) kept.add(c);
  }
  return kept;
}

async function cacheRepoOf(pair: string, dir = cacheDir): Promise<string | undefined> {
  const dirs = await readdir(join(dir, 'pairs')).catch(() => [] as string[]);
  const name = dirs.find((d) => d.startsWith(`${pair}-`) && d.endsWith('.git'));
  return name ? join(dir, 'pairs', name) : undefined;
}

/** Runs sync until nothing is left to do; diverged refs are resolved keeping GitLab's tip (GitLab protects main against force pushes). */
async function converge(context: string): Promise<void> {
  for (let round = 0; round < 4; round++) {
    figures.convergeRuns++;
    const r = await run(syncArgs('--lock', 'skip'));
    const json = jsonOf<SyncJson>(r, `${context}, converge run ${round + 1}`);
    const bad = json.pairs.filter((p) => p.status === 'failed' || p.status === 'locked');
    if (bad.length > 0) {
      throw new Error(
        `${context}: the run after the kill did not converge (exit ${r.code}): ${JSON.stringify(bad, null, 1)}\n${r.stderr}`,
      );
    }
    const diverged = json.pairs.filter((p) => p.status === 'diverged');
    if (diverged.length === 0) {
      expect(r.code).toBe(0);
      return;
    }
    for (const p of diverged) {
      const refs = p.refs.filter((x) => x.status === 'attention').map((x) => x.ref);
      figures.resolves++;
      const fix = await run(syncArgs('--pair', p.pair, '--resolve', ...refs, '--keep', 'gitlab'));
      if (fix.code !== 0)
        throw new Error(`${context}: --resolve failed (exit ${fix.code}):\n${fix.stdout}\n${fix.stderr}`);
    }
  }
  throw new Error(`${context}: still not converged after 4 runs`);
}

/** What the repos know about lost commits, and what the last runs printed: enough to debug a replay. */
async function explainLoss(pair: string, lost: readonly string[]): Promise<string> {
  const lines: string[] = [];
  const repos = [
    ['github', world.githubDir(pair)],
    ['gitlab', world.gitlabDir(pair)],
    ...(await Promise.all(cacheDirs.map(async (d) => ['cache', (await cacheRepoOf(pair, d)) ?? ''] as const))),
  ].filter(([, dir]) => dir);
  for (const c of lost) {
    for (const [label, dir] of repos) {
      const type = await gitIn(dir, ['cat-file', '-t', c], { ok: [1, 128] });
      const containing = type ? await gitIn(dir, ['for-each-ref', '--contains', c, '--format=%(refname)']) : '';
      lines.push(
        `  ${c.slice(0, 12)} in ${label}: ${type || 'absent'}${containing ? ` (refs: ${containing.split('\n').join(', ')})` : ''}`,
      );
    }
  }
  for (const [label, dir] of repos)
    lines.push(
      `  refs of ${label}:\n    ${[...(await refsOf(dir))].map(([r, v]) => `${v.slice(0, 12)} ${r}`).join('\n    ')}`,
    );
  lines.push(...recent.map((r) => `  --- ${r}`));
  return lines.join('\n');
}

/** The checks after converging, for every pair: both sides equal, a clean cache, no lock left. */
async function checkConverged(context: string): Promise<void> {
  for (const pair of PAIRS) {
    const gh = await branchesAndTags(world.githubDir(pair));
    const gl = await branchesAndTags(world.gitlabDir(pair));
    if (JSON.stringify(gh) !== JSON.stringify(gl)) throw new Error(`${context}: ${pair} differs after converging`);
    const cache = await cacheRepoOf(pair);
    if (!cache) throw new Error(`${context}: no cache repo for ${pair}`);
    const fsck = await fsckProblem(cache);
    if (fsck) throw new Error(`${context}: git fsck of ${cache}: ${fsck}`);
    const locks = await gitLockFiles(cache);
    if (locks.length > 0) throw new Error(`${context}: git lock files left: ${locks.join(', ')}`);
  }
  const leftLocks = (await readdir(join(cacheDir, 'pairs'))).filter((f) => f.endsWith('.lock'));
  if (leftLocks.length > 0)
    throw new Error(`${context}: refbridge locks left after a finished run: ${leftLocks.join(', ')}`);
}

describe('refbridge sync under SIGKILL', () => {
  it(`converges after every kill, losing no commit (${suite.iterations} kills)`, async () => {
    await converge('initial sync');
    await suite.killLoop({
      names: PAIRS,
      userActions,
      onForge: forgeCommits,
      kept: keptCommits,
      beforeKill: (rnd, i) => {
        if (i > 0 && rnd() < 0.1) {
          // A new cache (as for a newly added pair): the kill may land while it is being created.
          cacheDir = join(world.root, `cache-${i}`);
          cacheDirs.push(cacheDir);
          figures.freshCaches++;
        }
      },
      args: () => syncArgs(),
      converge,
      check: checkConverged,
      explainLoss,
    });
    for (const dir of cacheDirs)
      for (const repo of await bareReposUnder(dir)) expect(await fsckProblem(repo)).toBeUndefined();
  }, 600_000);

  it('leaks no token: outputs, cache files, argv of every process while the runs went on', () => suite.expectNoLeaks());
});
