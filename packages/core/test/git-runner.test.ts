import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GitCommandError, GitRunner, SecretMasker, credentialEnv, parseGitVersion, redactUrl } from '@refbridge/core';
import { commitFiles, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';

const CANARY = 'canary-token-7f3a9c1e5b';

describe('parseGitVersion', () => {
  it('reads the versions git prints', () => {
    expect(parseGitVersion('git version 2.39.5')).toEqual([2, 39, 5]);
    expect(parseGitVersion('git version 2.45.1.windows.1')).toEqual([2, 45, 1]);
    expect(parseGitVersion('git version 2.50')).toEqual([2, 50, 0]);
    expect(parseGitVersion('not git')).toBeUndefined();
  });
});

describe('credentialEnv', () => {
  it('resets inherited extra headers before adding the token header, per origin', () => {
    const env = credentialEnv([
      { url: 'https://gitlab.example.com:8443/group/p.git', username: 'oauth2', token: 't0k3n' },
    ]);
    expect(env).toEqual({
      GIT_CONFIG_COUNT: '2',
      GIT_CONFIG_KEY_0: 'http.https://gitlab.example.com:8443/.extraheader',
      GIT_CONFIG_VALUE_0: '',
      GIT_CONFIG_KEY_1: 'http.https://gitlab.example.com:8443/.extraheader',
      GIT_CONFIG_VALUE_1: `AUTHORIZATION: basic ${Buffer.from('oauth2:t0k3n').toString('base64')}`,
    });
  });
});

describe('redactUrl', () => {
  it('removes userinfo from URLs inside text', () => {
    expect(redactUrl('fatal: unable to access https://user:secret@host/x.git/')).toBe(
      'fatal: unable to access https://***@host/x.git/',
    );
  });
});

describe('GitRunner against a real HTTP endpoint', () => {
  let server: Server;
  let port: number;
  const seen: IncomingHttpHeaders[] = [];
  let tmp: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    tmp = await tempDir();
    server = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(403, { 'content-type': 'text/plain' });
      res.end('denied\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await tmp.cleanup();
  });

  it('sends the token as a Basic header from the environment and keeps it out of errors and config', async () => {
    const masker = new SecretMasker();
    const runner = new GitRunner({ masker });
    const repo = join(tmp.path, 'repo');
    await initRepo(repo);
    await commitFiles(repo, { 'a.txt': 'a' });
    const url = `http://127.0.0.1:${port}/owner/repo.git`;
    const error = await runner
      .run(['ls-remote', url], { cwd: repo, credentials: [{ url, username: 'x-access-token', token: CANARY }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitCommandError);
    const auth = seen.map((h) => h.authorization).filter(Boolean);
    expect(auth).toContain(`basic ${Buffer.from(`x-access-token:${CANARY}`).toString('base64')}`);
    const text = (error as GitCommandError).describe() + JSON.stringify(error);
    expect(text).not.toContain(CANARY);
    expect(text).not.toContain(Buffer.from(`x-access-token:${CANARY}`).toString('base64'));
    expect(await readFile(join(repo, '.git', 'config'), 'utf8')).not.toContain(CANARY);
  });

  it('returns answers for allowed exit codes instead of throwing', async () => {
    const runner = new GitRunner({ masker: new SecretMasker() });
    const repo = join(tmp.path, 'anc');
    await initRepo(repo);
    const a = await commitFiles(repo, { 'a.txt': 'a' });
    const b = await commitFiles(repo, { 'b.txt': 'b' });
    const yes = await runner.run(['merge-base', '--is-ancestor', a, b], { cwd: repo, okExitCodes: [1] });
    const no = await runner.run(['merge-base', '--is-ancestor', b, a], { cwd: repo, okExitCodes: [1] });
    expect([yes.exitCode, no.exitCode]).toEqual([0, 1]);
    // 128 (object missing) is never an answer unless asked for: it must surface as an error.
    await expect(
      runner.run(['merge-base', '--is-ancestor', 'f'.repeat(40), b], { cwd: repo, okExitCodes: [1] }),
    ).rejects.toMatchObject({ gitExitCode: 128 });
  });

  it('fails clearly when git is missing', async () => {
    const runner = new GitRunner({ masker: new SecretMasker(), gitPath: '/nonexistent/git' });
    await expect(runner.run(['status'])).rejects.toThrow(/git was not found/);
  });
});
