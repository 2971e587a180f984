import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clearStaleGitLocks } from '../../packages/core/src/git-locks.js';
import { GitCommandError } from '../../packages/core/src/errors.js';
import { GitRunner, isTransientGitFailure } from '../../packages/core/src/git-runner.js';
import { silentLogger, type Logger } from '../../packages/core/src/logger.js';
import { PairCache } from '../../packages/core/src/pair-cache.js';
import { SecretMasker } from '../../packages/core/src/secret-masker.js';
import { runCli } from '../support/cli.js';
import { CANARY, branchesAndTags, gitIn, startWorld, writeCommit, type World } from '../support/reliability-world.js';

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
    const { execa } = await import('execa');
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
    const { execa } = await import('execa');
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
