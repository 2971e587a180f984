import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clearStaleGitLocks } from '../../packages/core/src/crash-recovery.js';
import { GitCommandError } from '../../packages/core/src/errors.js';
import { GitRunner, isTransientGitFailure } from '../../packages/core/src/git-runner.js';
import { silentLogger, type Logger } from '../../packages/core/src/logger.js';
import { PairCache } from '../../packages/core/src/pair-cache.js';
import { SecretMasker } from '../../packages/core/src/secret-masker.js';
import { runCli } from '../support/cli.js';
import {
  CANARY,
  branchesAndTags,
  gitIn,
  markPushed,
  startWorld,
  writeCommit,
  type World,
} from '../support/reliability-world.js';

/**
 * The fixes the fault and crash tests led to, each pinned by a deterministic test (the random
 * tests find such states by chance; these build them on purpose):
 *  - transient network failures of git are told apart from final answers, and retried;
 *  - a fetch killed halfway leaves objects without their history, which must count as missing;
 *  - git lock files left by a killed git are cleared, but never under a running one;
 *  - staged push refs left by a killed sync do not block the next push;
 *  - any failure to use the cache is a failure, not a quiet "skipped".
 */

let world: World;
const warnings: string[] = [];
const logger: Logger = { ...silentLogger, warn: (m) => warnings.push(m) };

beforeAll(async () => {
  world = await startWorld({ prefix: 'refbridge-recovery-', pairs: ['one', 'two'] });
}, 60_000);

afterAll(async () => {
  await world?.close();
});

const credentials = () => [
  { url: world.forge.urls.github.web, username: 'x-access-token', token: CANARY.github },
  { url: world.forge.urls.gitlab.web, username: 'oauth2', token: CANARY.gitlab },
];

describe('transient git failures', () => {
  // What git 2.39 printed against the forge's faults (see test/forge/src/faults.ts).
  it.each([
    ["fatal: unable to access 'http://h/acme/r.git/': The requested URL returned error: 503", true],
    ["fatal: unable to access 'http://h/acme/r.git/': The requested URL returned error: 502", true],
    ["remote: Retry later\nfatal: unable to access 'http://h/r.git/': The requested URL returned error: 429", true],
    ["fatal: unable to access 'http://h/acme/r.git/': Empty reply from server", true],
    [
      'error: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500\nfatal: expected flush after ref listing',
      true,
    ],
    [
      'error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502\nsend-pack: unexpected disconnect while reading sideband packet\nfatal: the remote end hung up unexpectedly',
      true,
    ],
    ["fatal: unable to access 'http://h/r.git/': Failed to connect to h port 80: Connection refused", true],
    ["fatal: unable to access 'http://h/r.git/': The requested URL returned error: 403", false],
    ["fatal: unable to access 'http://h/r.git/': The requested URL returned error: 404", false],
    ["fatal: could not read Username for 'http://h': terminal prompts disabled", false],
    ["remote: Repository not found.\nfatal: repository 'http://h/r.git/' not found", false],
    ["fatal: unable to access 'http://nope.invalid/r.git/': Could not resolve host: nope.invalid", false],
    ['remote: GitLab: You are not allowed to force push code to a protected branch on this project.', false],
  ])('%s -> %s', (stderr, transient) => {
    expect(isTransientGitFailure(stderr)).toBe(transient);
  });

  function runner(retries: number, sleeps: number[]): GitRunner {
    return new GitRunner({
      masker: new SecretMasker(),
      logger,
      networkRetry: { retries, baseDelayMs: 7 },
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
    });
  }

  it('retries an ls-remote that met a 503, with backoff, and says so', async () => {
    const url = `${world.forge.urls.github.web}/acme/one.git`;
    world.forge.faults.set([{ kind: 'git', path: '/acme/one.git', fault: 'status', status: 503, nth: 1, times: 2 }]);
    const sleeps: number[] = [];
    const out = await runner(3, sleeps).output(['ls-remote', '--', url], {
      credentials: credentials(),
      retryTransient: true,
    });
    world.forge.faults.clear();
    expect(out).toMatch(/refs\/heads\/main/);
    expect(sleeps).toEqual([7, 14]);
    expect(warnings.at(-1)).toMatch(
      /git ls-remote http:\/\/.*\/acme\/one\.git failed \(.*503\); retry 2 of 3 in 14 ms/,
    );
  });

  it('does not retry without retryTransient, nor an answer that will not change', async () => {
    const url = `${world.forge.urls.github.web}/acme/one.git`;
    world.forge.faults.set([{ kind: 'git', path: '/acme/one.git', fault: 'status', status: 503, nth: 1 }]);
    const sleeps: number[] = [];
    await expect(runner(3, sleeps).run(['ls-remote', '--', url], { credentials: credentials() })).rejects.toThrow(
      GitCommandError,
    );
    world.forge.faults.clear();
    const refused = runner(3, sleeps).run(['ls-remote', '--', `${world.forge.urls.github.web}/acme/nope.git`], {
      credentials: credentials(),
      retryTransient: true,
    });
    await expect(refused).rejects.toThrow(/not found/i);
    expect(sleeps).toEqual([]);
  });

  it('retries a push whose connection broke (git exits 1 with no ref status), and the push lands once', async () => {
    const gitDir = join(world.root, 'push-src.git');
    await execa('git', ['init', '-q', '--bare', gitDir]);
    const tip = await writeCommit(gitDir, 'refs/heads/pushed');
    const url = `${world.forge.urls.gitlab.web}/acme/one.git`;
    world.forge.faults.set([{ kind: 'git', route: 'POST git-receive-pack', fault: 'status', status: 502, nth: 1 }]);
    const sleeps: number[] = [];
    const r = await runner(3, sleeps).run(['push', '--porcelain', '--', url, `${tip}:refs/heads/pushed`], {
      cwd: gitDir,
      env: { GIT_DIR: gitDir },
      credentials: credentials(),
      okExitCodes: [1],
      retryTransient: true,
    });
    world.forge.faults.clear();
    expect(sleeps).toEqual([7]);
    expect(r.stdout).toMatch(/refs\/heads\/pushed\s+\[new branch\]/);
    expect((await branchesAndTags(world.gitlabDir('one')))['refs/heads/pushed']).toBe(tip);
  });
});

describe('what a killed run leaves behind', () => {
  it('a commit whose tree never arrived counts as missing, so it is fetched again', async () => {
    const dir = join(world.root, 'cache-broken.git');
    const git = new GitRunner({ masker: new SecretMasker() });
    const cache = new PairCache(git, dir);
    await cache.ensure();
    const good = await writeCommit(dir, 'refs/refbridge/github/heads/main');
    // Written loose without its tree, as an interrupted unpack-objects leaves it.
    const broken = await gitIn(dir, ['hash-object', '-t', 'commit', '-w', '--stdin'], {
      input: `tree ${'1'.repeat(40)}\nparent ${good}\nauthor a <a@a> 1 +0000\ncommitter a <a@a> 1 +0000\n\nhalf\n`,
    });
    expect(await gitIn(dir, ['cat-file', '-t', broken])).toBe('commit');
    const missing = await cache.missing([good, broken, 'f'.repeat(40)]);
    expect([...missing].sort()).toEqual([broken, 'f'.repeat(40)].sort());
  });

  it('clears git lock files nobody holds, keeps them while a process works in the repository', async () => {
    const dir = join(world.root, 'locked.git');
    await execa('git', ['init', '-q', '--bare', dir]);
    await writeCommit(dir, 'refs/heads/main');
    await writeFile(join(dir, 'packed-refs.lock'), '');
    await mkdir(join(dir, 'refs', 'heads', 'x'), { recursive: true });
    await writeFile(join(dir, 'refs', 'heads', 'x', 'y.lock'), '');
    const blocked = async (): Promise<string[]> =>
      Promise.all(
        [
          ['pack-refs', '--all'],
          ['update-ref', 'refs/heads/x/y', 'refs/heads/main'],
        ].map(async (args) => (await execa('git', args, { env: { GIT_DIR: dir }, reject: false })).stderr),
      );
    for (const stderr of await blocked()) expect(stderr).toMatch(/\.lock': File exists/);

    // A git orphaned by a killed refbridge still works there: leave its locks alone.
    const orphan = spawn('sleep', ['2'], { cwd: dir });
    try {
      await new Promise((r) => setTimeout(r, 100));
      expect(await clearStaleGitLocks(dir, logger, 'locked')).toEqual([]);
      expect(warnings.at(-1)).toMatch(/still running there/);
    } finally {
      orphan.kill('SIGKILL');
      await new Promise((r) => orphan.on('close', r));
    }
    const removed = await clearStaleGitLocks(dir, logger, 'locked');
    expect(removed.map((f) => f.slice(dir.length + 1)).sort()).toEqual(['packed-refs.lock', 'refs/heads/x/y.lock']);
    expect(warnings.at(-1)).toMatch(/removed 2 git lock file\(s\) left by an interrupted run/);
    expect(await blocked()).toEqual(['', '']);
  });

  it('sync pushes again what a killed run had staged under refs/refbridge/out/', async () => {
    const sync = ['sync', '--config', world.configPath, '--cache', world.cacheDir, '--pair', 'two', '--json'];
    expect((await runCli(sync, world.env, world.root)).code).toBe(0);
    const tip = await writeCommit(world.githubDir('two'), 'refs/heads/main');
    const cacheRepo = join(
      world.cacheDir,
      'pairs',
      (await readdir(join(world.cacheDir, 'pairs'))).find((d) => d.startsWith('two-') && d.endsWith('.git'))!,
    );
    // The killed run had fetched the tip and staged it for the push to GitLab, then died.
    await gitIn(cacheRepo, [
      'fetch',
      '-q',
      world.githubDir('two'),
      `+refs/heads/main:refs/refbridge/github/heads/main`,
    ]);
    await gitIn(cacheRepo, ['update-ref', 'refs/refbridge/out/gitlab/heads/main', tip]);
    await gitIn(cacheRepo, ['update-ref', 'refs/refbridge/out/gitlab/heads/gone', tip]);
    const r = await runCli(sync, world.env, world.root);
    expect(r.code).toBe(0);
    expect((await branchesAndTags(world.gitlabDir('two')))['refs/heads/main']).toBe(tip);
    // The leftover that this run did not stage again was cleared, not pushed.
    expect((await branchesAndTags(world.gitlabDir('two')))['refs/heads/gone']).toBeUndefined();
    expect(await gitIn(cacheRepo, ['for-each-ref', 'refs/refbridge/out/'])).toBe('');
  });

  it('a cache or mirror being created when the run died is started afresh, not refused', async () => {
    const cacheDir = join(world.root, 'cache-interrupted');
    const first = await runCli(
      ['sync', '--config', world.configPath, '--cache', cacheDir, '--pair', 'one'],
      world.env,
      world.root,
    );
    expect(first.code).toBe(0);
    const pairs = join(cacheDir, 'pairs');
    const name = (await readdir(pairs)).find((d) => d.endsWith('.git'))!;
    // As a kill during `git init --bare` leaves it: the real directory absent, a half-made temporary beside it.
    await rm(join(pairs, name), { recursive: true });
    await mkdir(join(pairs, `${name}~refbridge-tmp-999-abcdef`, 'refs'), { recursive: true });
    const again = await runCli(
      ['sync', '--config', world.configPath, '--cache', cacheDir, '--pair', 'one'],
      world.env,
      world.root,
    );
    expect(again.code).toBe(0);
    expect((await readdir(pairs)).filter((d) => d.includes('~refbridge-tmp-'))).toEqual([]);
    expect(await gitIn(join(pairs, name), ['rev-parse', '--is-bare-repository'])).toBe('true');
  });

  it('a checkout whose creation or update was interrupted is completed on the next run', async () => {
    const storage = join(world.root, 'storage-checkout');
    const backup = [
      'backup',
      '--owner',
      'acme',
      '--include',
      'acme/one',
      '--backup-only',
      '--checkout',
      '--storage',
      storage,
      '--window',
      '0',
      '--progress',
      'off',
    ];
    expect((await runCli(backup, world.env, world.root)).code).toBe(0);
    const mirror = (await readdir(join(storage), { recursive: true })).find((p) => p.endsWith('acme/one.git'))!;
    const worktree = join(storage, mirror.slice(0, -'.git'.length));
    // A checkout killed mid-way leaves index.lock; the next push must still reach the tree.
    await writeFile(join(worktree, '.git', 'index.lock'), '');
    const tip = await writeCommit(world.githubDir('one'), 'refs/heads/main');
    markPushed(world, 'acme', 'one');
    const r = await runCli(backup, world.env, world.root);
    expect(r.code).toBe(0);
    expect(await gitIn(join(worktree, '.git'), ['rev-parse', 'HEAD'])).toBe(tip);
    expect(r.stderr).toMatch(/removed 1 git lock file\(s\) left by an interrupted run: index\.lock/);
    // A run killed in the middle of `git checkout` of a new tip, after the files and the index were
    // written, before HEAD moved: the tree holds the new tip's content, which must not pass for
    // local changes (the state file still has the old tip: it is saved at the end of a run).
    const next = await writeCommit(world.githubDir('one'), 'refs/heads/main');
    markPushed(world, 'acme', 'one');
    await execa('git', ['fetch', '-q', world.githubDir('one'), '+refs/heads/main:refs/remotes/origin/main'], {
      cwd: worktree,
    });
    await execa('git', ['read-tree', '-u', '--reset', next], { cwd: worktree }); // files + index, not HEAD
    expect((await execa('git', ['status', '--porcelain'], { cwd: worktree })).stdout).not.toBe('');
    const finished = await runCli([...backup, '--json'], world.env, world.root);
    expect(finished.code).toBe(0);
    expect(finished.stdout).toMatch(/"checkout":\{"status":"updated"/);
    expect(await gitIn(join(worktree, '.git'), ['rev-parse', 'HEAD'])).toBe(next);
    expect((await execa('git', ['status', '--porcelain'], { cwd: worktree })).stdout).toBe('');
    // Real local changes are still kept.
    await writeFile(join(worktree, 'mine.txt'), 'local work\n');
    await writeCommit(world.githubDir('one'), 'refs/heads/main');
    markPushed(world, 'acme', 'one');
    const kept = await runCli([...backup, '--json'], world.env, world.root);
    expect(kept.stdout).toMatch(/"checkout":\{"status":"kept-local-changes"/);
    await rm(join(worktree, 'mine.txt'));
    // A clone killed before its checkout: only a temporary beside it, removed when the checkout is made.
    await rm(worktree, { recursive: true });
    await mkdir(`${worktree}~refbridge-tmp-999-abcdef`, { recursive: true });
    expect((await runCli(backup, world.env, world.root)).code).toBe(0);
    expect(await gitIn(join(worktree, '.git'), ['rev-parse', 'HEAD'])).toBe(
      await gitIn(world.githubDir('one'), ['rev-parse', 'refs/heads/main']),
    );
    expect(await stat(`${worktree}~refbridge-tmp-999-abcdef`).catch(() => undefined)).toBeUndefined();
  });

  it('a cache path that cannot be used fails the pair (exit 1), it is never a quiet skip', async () => {
    const file = join(world.root, 'not-a-dir');
    await writeFile(file, 'x\n');
    const r = await runCli(['sync', '--config', world.configPath, '--cache', file, '--json'], world.env, world.root);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as { pairs: { status: string; error: string }[] };
    for (const p of json.pairs) {
      expect(p.status).toBe('failed');
      expect(p.error).toContain(`cannot use the cache directory ${file}`);
    }
    expect((await stat(file)).isFile()).toBe(true);
  });
});
