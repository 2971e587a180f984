import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { CrashSuite, jsonOf } from '../support/reliability-crash.js';
import {
  bareReposUnder,
  branchesAndTags,
  deleteRef,
  fsckProblem,
  gitIn,
  gitLockFiles,
  markPushed,
  reachable,
  refsOf,
  writeCommit,
  type World,
} from '../support/reliability-world.js';

/**
 * `refbridge backup` (local mirrors with a checkout, pushed on to GitLab) killed with SIGKILL at
 * random moments.
 * Before each kill the test plays GitHub users (commits, new branches, force pushes, deletions,
 * new and moved tags); after each kill a normal run must converge, and then:
 *  - every commit that was on GitHub when the killed run started is still reachable, upstream or
 *    in the mirror (its refs/refbridge/backup/ included);
 *  - each mirror holds exactly GitHub's refs, and GitLab at least every branch and tag at GitHub's
 *    tip (a deletion is repeated on GitLab only when refbridge knows it put that tip there, so a
 *    crash that lost that record leaves the branch: never deletes what it cannot vouch for);
 *  - each checkout is at the default branch's tip and clean;
 *  - `git fsck` passes on every mirror; no lock, pending ref or unreadable state file is left.
 * How kill moments are chosen, and the loop around them: reliability-crash.ts. Replay with REFBRIDGE_CRASH_SEED, soak longer
 * with REFBRIDGE_CRASH_ITERATIONS.
 */

const REPOS = ['svc-1', 'svc-2', 'svc-3', 'svc-4'];
const suite = new CrashSuite('crash-backup', {});
const { figures, recent } = suite;

let world: World;
let storage: string;

beforeAll(async () => {
  world = await suite.start({
    pairs: [],
    seed: {
      githubRepos: REPOS.map((name) => ({
        owner: 'acme',
        name,
        private: true,
        files: { 'README.md': `# ${name}\n` },
        history: 2,
        branches: { dev: {} },
        tags: [{ name: 'v1', message: 'Release' }],
      })),
      gitlabGroups: [{ path: 'mirrors', members: { carol: 50 } }],
    },
  });
  storage = join(world.root, 'storage');
}, 60_000);

afterAll(() => suite.close());

const backupArgs = [
  'backup',
  '--owner',
  'acme',
  '--storage',
  'storage',
  '--gitlab-namespace',
  'mirrors',
  '--checkout',
  '--concurrency',
  '2',
  '--window',
  '0',
  '--progress',
  'off',
  '--json',
  '--api-retries',
  '2',
  '--api-retry-wait',
  '5',
];

interface BackupJson {
  exitCode: number;
  listing: { complete: boolean };
  repos: { repo: string; status: string; error?: string; detail: string }[];
}

async function converge(context: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    figures.convergeRuns++;
    const r = await suite.run([...backupArgs, '--lock', 'skip'], 'backup');
    const json = jsonOf<BackupJson>(r, context);
    const bad = json.repos.filter((x) => x.status === 'failed' || x.status === 'locked');
    if (r.code === 0 && bad.length === 0 && json.listing.complete) return;
    if (round === 2)
      throw new Error(
        `${context}: backup did not converge (exit ${r.code}):\n${JSON.stringify(bad, null, 1)}\n${r.stderr}`,
      );
  }
}

/** 1-3 GitHub users push something; the listing's pushed_at moves as a push would move it. */
async function userActions(rnd: () => number, iteration: number): Promise<void> {
  const count = 1 + Math.floor(rnd() * 3);
  for (let i = 0; i < count; i++) {
    const name = REPOS[Math.floor(rnd() * REPOS.length)]!;
    const dir = world.githubDir(name);
    const extra = [...(await refsOf(dir, 'refs/heads/')).keys()].filter((r) => r !== 'refs/heads/main');
    const roll = rnd();
    if (roll < 0.3) await writeCommit(dir, rnd() < 0.5 || extra.length === 0 ? 'refs/heads/main' : extra[0]!);
    else if (roll < 0.45) await writeCommit(dir, `refs/heads/topic-${iteration}-${i}`, { from: 'refs/heads/main' });
    else if (roll < 0.62 && extra.length > 0)
      await writeCommit(dir, extra[Math.floor(rnd() * extra.length)]!, { rewrite: true });
    else if (roll < 0.75 && extra.length > 1) await deleteRef(dir, extra[extra.length - 1]!);
    else if (roll < 0.88) {
      const main = await gitIn(dir, ['rev-parse', 'refs/heads/main']);
      await gitIn(dir, ['update-ref', `refs/tags/t-${iteration}-${i}`, main]);
    } else {
      // A moved tag: the old one must survive in the mirror's backups.
      const tip = await writeCommit(dir, 'refs/heads/main');
      await gitIn(dir, ['update-ref', 'refs/tags/moving', tip]);
    }
    markPushed(world, 'acme', name);
  }
}

async function mirrorOf(name: string): Promise<string | undefined> {
  return (await bareReposUnder(storage)).find((d) => d.endsWith(`/acme/${name}.git`));
}

async function keptCommits(name: string): Promise<Set<string>> {
  const kept = await reachable(world.githubDir(name));
  const mirror = await mirrorOf(name);
  if (mirror) for (const c of await reachable(mirror)) kept.add(c);
  return kept;
}

/**
 * The checks after converging: each mirror equal to GitHub, GitLab at least at GitHub's tips, the
 * checkouts at the default branch and clean, fsck clean, no lock, pending ref or unreadable state.
 */
async function checkConverged(context: string): Promise<void> {
  for (const name of REPOS) {
    const mirror = await mirrorOf(name);
    if (!mirror) throw new Error(`${context}: no mirror of acme/${name}`);
    const upstream = Object.fromEntries(await refsOf(world.githubDir(name)));
    const local = Object.fromEntries([...(await refsOf(mirror))].filter(([ref]) => !ref.startsWith('refs/refbridge/')));
    if (JSON.stringify(local) !== JSON.stringify(upstream))
      throw new Error(
        `${context}: mirror of ${name} differs from GitHub:\n${JSON.stringify({ local, upstream }, null, 1)}\n${recent.join('\n---\n')}`,
      );
    const pending = await refsOf(mirror, 'refs/refbridge/pending/');
    if (pending.size > 0)
      throw new Error(`${context}: pending refs left in ${mirror}: ${[...pending.keys()].join(', ')}`);
    const dest = world.forge.state.gitlabProject(`mirrors/acme/${name}`);
    if (!dest) throw new Error(`${context}: GitLab mirror mirrors/acme/${name} missing`);
    const onGitlab = await branchesAndTags(dest.gitDir);
    for (const [ref, sha] of Object.entries(await branchesAndTags(world.githubDir(name))))
      if (onGitlab[ref] !== sha)
        throw new Error(
          `${context}: GitLab's ${ref} of ${name} is ${onGitlab[ref] ?? 'missing'}, GitHub's ${sha}\n${recent.join('\n---\n')}`,
        );
    for (const repo of [mirror, dest.gitDir]) {
      const fsck = await fsckProblem(repo);
      if (fsck) throw new Error(`${context}: git fsck of ${repo}: ${fsck}`);
    }
    const gitLocks = await gitLockFiles(mirror);
    if (gitLocks.length > 0) throw new Error(`${context}: git lock files left: ${gitLocks.join(', ')}`);
    // The checkout beside the mirror: at the default branch's tip, clean, no lock left.
    const worktree = mirror.slice(0, -'.git'.length);
    const head = await gitIn(join(worktree, '.git'), ['rev-parse', 'HEAD']);
    const status = await execa('git', ['status', '--porcelain'], { cwd: worktree });
    if (head !== upstream['refs/heads/main'] || status.stdout !== '')
      throw new Error(
        `${context}: checkout of ${name} at ${head}, status ${JSON.stringify(status.stdout)}\n${recent.join('\n---\n')}`,
      );
    const worktreeLocks = await gitLockFiles(join(worktree, '.git'));
    if (worktreeLocks.length > 0)
      throw new Error(`${context}: lock files left in the checkout: ${worktreeLocks.join(', ')}`);
  }
  const locks = (await readdir(join(storage, '.refbridge', 'locks')).catch(() => [] as string[])).filter((f) =>
    f.endsWith('.lock'),
  );
  if (locks.length > 0) throw new Error(`${context}: refbridge locks left after a finished run: ${locks.join(', ')}`);
  const stateFiles = await readdir(join(storage, '.refbridge'));
  const state = JSON.parse(await readFile(join(storage, '.refbridge', 'backup-state.json'), 'utf8')) as {
    repos: object;
  };
  expect(Object.keys(state.repos)).toHaveLength(REPOS.length);
  if (stateFiles.some((f) => f.includes('unreadable')))
    throw new Error(`${context}: the state file was unreadable after a kill: ${stateFiles.join(', ')}`);
}

describe('refbridge backup under SIGKILL', () => {
  it(`converges after every kill, losing no commit (${suite.iterations} kills)`, async () => {
    await converge('initial backup');
    await suite.killLoop({
      names: REPOS,
      userActions,
      // A commit users drop before refbridge ever saw it is theirs to lose.
      onForge: (name) => reachable(world.githubDir(name)),
      kept: keptCommits,
      args: () => backupArgs,
      converge,
      check: checkConverged,
      explainLoss: (_name, lost) => `${lost.join(', ')}\n${recent.join('\n---\n')}`,
    });
  }, 900_000);

  it('leaks no token: outputs, mirrors, state, argv of every process while the runs went on', () =>
    suite.expectNoLeaks());
});
