/**
 * The in-process ref listing (smart-http.ts via GitRunner.lsRemote) against the test forge's real
 * `git http-backend`: it must answer exactly what `git ls-remote` answers, in protocol v2 and v0,
 * fail in git's words, retry what git would retry, and step aside for git where the machine's
 * git set-up (a proxy) could change how git reaches the server.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GitCommandError } from '../src/errors.js';
import type { GitCredential } from '../src/git-runner.js';
import { GitRunner } from '../src/git-runner.js';
import { SecretMasker } from '../src/secret-masker.js';
import { forgetSmartHttpServers } from '../src/smart-http.js';
import { startForge, type RunningForge } from '../../../test/forge/src/server.js';
import type { SeedSpec } from '../../../test/forge/src/seed.js';

const TOKEN = 'ghp_canary_smart_http_0000000000000000000';
const seed: SeedSpec = {
  github: {
    users: ['alice'],
    orgs: [{ login: 'acme', members: ['alice'] }],
    repos: [
      {
        owner: 'acme',
        name: 'widgets',
        private: true,
        defaultBranch: 'main',
        files: { 'README.md': '# widgets\n' },
        history: 3,
        branches: { develop: {}, 'feature/x': { files: { 'x.txt': 'x\n' }, message: 'x' } },
        tags: [{ name: 'v1.0.0', message: 'Release' }, { name: 'nightly', ref: 'develop' }, { name: 'v1.0.1' }],
        refs: { 'refs/pull/1/head': 'feature/x' },
      },
      { owner: 'acme', name: 'empty', private: true },
    ],
  },
  tokens: [{ value: TOKEN, platform: 'github', user: 'alice', scopes: ['repo'] }],
};

let forge: RunningForge;
let url: string;
let creds: GitCredential[];

function runner(env: Record<string, string> = {}): GitRunner {
  return new GitRunner({ masker: new SecretMasker(), env, networkRetry: { baseDelayMs: 10 } });
}

function gitRequests(): { method: string; route: string }[] {
  return forge.state.requestLog.filter((r) => r.kind === 'git').map((r) => ({ method: r.method, route: r.route }));
}

beforeAll(async () => {
  forge = await startForge({ seed });
  url = `${forge.urls.github.web}/acme/widgets.git`;
  creds = [{ url, username: 'x-access-token', token: TOKEN }];
});
afterAll(async () => {
  await forge.close();
});
beforeEach(() => {
  forgetSmartHttpServers();
  forge.state.requestLog.length = 0;
  forge.faults.clear();
});

const cases: { name: string; options: { patterns?: string[]; symref?: boolean } }[] = [
  { name: 'branches and tags', options: { patterns: ['refs/heads/*', 'refs/tags/*'] } },
  { name: 'one exact tag (with its peeled id)', options: { patterns: ['refs/tags/v1.0.0'] } },
  { name: 'a branch glob', options: { patterns: ['refs/heads/feature/*'] } },
  { name: 'everything with HEAD and its target', options: { symref: true } },
  { name: 'everything', options: {} },
];

describe('in-process listing answers what git ls-remote answers', () => {
  it.each(cases)('$name', async ({ options }) => {
    const viaHttp = await runner().lsRemote(url, { ...options, credentials: creds });
    const viaGit = await runner({ REFBRIDGE_GIT_HTTP: 'git' }).lsRemote(url, { ...options, credentials: creds });
    expect(viaHttp).toEqual(viaGit);
    expect(viaHttp.length).toBeGreaterThan(0);
  });

  it('lists nothing for an empty repository', async () => {
    const empty = `${forge.urls.github.web}/acme/empty.git`;
    const credentials = [{ url: empty, username: 'x-access-token', token: TOKEN }];
    expect(await runner().lsRemote(empty, { credentials })).toEqual(
      await runner({ REFBRIDGE_GIT_HTTP: 'git' }).lsRemote(empty, { credentials }),
    );
  });

  it('posts ls-refs straight away: one request per listing', async () => {
    const git = runner();
    await git.lsRemote(url, { patterns: ['refs/heads/*'], credentials: creds });
    await git.lsRemote(url, { patterns: ['refs/tags/*'], credentials: creds });
    expect(gitRequests()).toEqual([
      { method: 'POST', route: 'POST git-upload-pack' },
      { method: 'POST', route: 'POST git-upload-pack' },
    ]);
  });
});

describe('a server that answers protocol v0', () => {
  let proxy: Server;
  let proxyUrl: string;
  beforeAll(async () => {
    // Drops the Git-Protocol header on the way, as some proxies do: http-backend then answers v0.
    const target = new URL(forge.urls.github.web);
    proxy = createServer((req, res) => {
      const headers = { ...req.headers };
      delete headers['git-protocol'];
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/acme/widgets.git`;
  });
  afterAll(async () => {
    proxy.closeAllConnections();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });

  it.each(cases)('$name', async ({ options }) => {
    const credentials = [{ url: proxyUrl, username: 'x-access-token', token: TOKEN }];
    const viaGit = await runner({ REFBRIDGE_GIT_HTTP: 'git' }).lsRemote(url, { ...options, credentials: creds });
    forge.state.requestLog.length = 0;
    forgetSmartHttpServers();
    const git = runner();
    expect(await git.lsRemote(proxyUrl, { ...options, credentials })).toEqual(viaGit);
    // The ls-refs POST gets no v2 answer, so the listing starts again with the GET, whose v0
    // advertisement is the answer; later listings of that server start with the GET.
    expect(gitRequests()).toEqual([
      { method: 'POST', route: 'POST git-upload-pack' },
      { method: 'GET', route: 'GET info/refs?service=git-upload-pack' },
    ]);
    forge.state.requestLog.length = 0;
    expect(await git.lsRemote(proxyUrl, { ...options, credentials })).toEqual(viaGit);
    expect(gitRequests()).toEqual([{ method: 'GET', route: 'GET info/refs?service=git-upload-pack' }]);
  });
});

describe('kept-alive connections', () => {
  it('a connection the server dropped while idle is replaced at once, not reported or retried later', async () => {
    // Answers the first request of each connection (through to the forge) and drops the
    // connection at the second: what a server that timed an idle connection out looks like.
    const target = new URL(forge.urls.github.web);
    const seen = new WeakMap<object, number>();
    let dropped = 0;
    const proxy = createServer((req, res) => {
      const n = (seen.get(req.socket) ?? 0) + 1;
      seen.set(req.socket, n);
      if (n > 1) {
        dropped++;
        req.socket.destroy();
        return;
      }
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          // Hop-by-hop headers are the proxy's own business: its client connection stays open.
          const { connection: _c, 'keep-alive': _k, 'transfer-encoding': _t, ...headers } = answer.headers;
          res.writeHead(answer.statusCode ?? 502, headers);
          answer.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const proxied = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/acme/widgets.git`;
      const credentials = [{ url: proxied, username: 'x-access-token', token: TOKEN }];
      const warnings: string[] = [];
      const git = new GitRunner({
        masker: new SecretMasker(),
        networkRetry: { baseDelayMs: 10 },
        logger: {
          debug: () => undefined,
          info: () => undefined,
          warn: (m: string) => warnings.push(m),
          error: () => undefined,
        },
      });
      const first = await git.lsRemote(proxied, { patterns: ['refs/heads/*'], credentials });
      const second = await git.lsRemote(proxied, { patterns: ['refs/heads/*'], credentials });
      expect(second).toEqual(first);
      expect(dropped).toBe(1);
      expect(warnings).toEqual([]);
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});

describe('failures read like git', () => {
  it('a missing repository is not found, with the hint, and never retried', async () => {
    const missing = `${forge.urls.github.web}/acme/nope.git`;
    const error = await runner()
      .lsRemote(missing, { credentials: [{ url: missing, username: 'x-access-token', token: TOKEN }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitCommandError);
    const e = error as GitCommandError;
    expect(e.stderr).toContain(`repository '${missing}/' not found`);
    expect(e.describe()).toContain('check the repository URL and that the token can read the repository');
    expect(e.describe()).not.toContain(TOKEN);
    expect(gitRequests()).toHaveLength(1);
  });

  it('a refused token says what HTTP 401 means and does not show the token', async () => {
    const bad = 'ghp_canary_not_a_token_0000000000000000000';
    const error = (await runner()
      .lsRemote(url, { credentials: [{ url, username: 'x-access-token', token: bad }] })
      .catch((e: unknown) => e)) as GitCommandError;
    expect(error).toBeInstanceOf(GitCommandError);
    expect(error.describe()).toMatch(/HTTP 401|not found/);
    expect(error.describe()).not.toContain(bad);
    expect(JSON.stringify(error)).not.toContain(bad);
  });

  it('retries a 503 and a dropped connection like git does, then answers', async () => {
    // POST dropped -> the GET is asked (503) -> retry 1: POST dropped again -> GET fine -> POST 503
    // -> retry 2: POST answers.
    forge.faults.set([
      { kind: 'git', route: 'info/refs', fault: 'status', status: 503, nth: 1 },
      { kind: 'git', route: 'POST git-upload-pack', fault: 'drop', nth: 1, times: 2 },
      { kind: 'git', route: 'POST git-upload-pack', fault: 'status', status: 503, nth: 3 },
    ]);
    const warnings: string[] = [];
    const git = new GitRunner({
      masker: new SecretMasker(),
      networkRetry: { baseDelayMs: 10 },
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: (m: string) => warnings.push(m),
        error: () => undefined,
      },
    });
    const entries = await git.lsRemote(url, { patterns: ['refs/heads/*'], credentials: creds });
    expect(entries.map((e) => e.ref)).toContain('refs/heads/main');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/returned error: 503\); retry 1 of 3/);
    expect(warnings[1]).toMatch(/returned error: 503\); retry 2 of 3/);
    expect(forge.faults.list().map((r) => r.fired)).toEqual([1, 2, 1]);
  });

  it('gives up after the configured retries with the last failure', async () => {
    forge.faults.set([{ kind: 'git', fault: 'status', status: 502 }]);
    const error = (await runner()
      .lsRemote(url, { credentials: creds })
      .catch((e: unknown) => e)) as GitCommandError;
    expect(error).toBeInstanceOf(GitCommandError);
    expect(error.stderr).toContain('The requested URL returned error: 502');
    // Each of the 4 attempts: the POST, then the GET.
    expect(gitRequests()).toHaveLength(8);
  });
});

describe('git set-ups the in-process listing cannot honour go through git', () => {
  it('a proxy in the environment is used (git reaches for it)', async () => {
    // Nothing listens on port 9: git must fail to reach the proxy, where an in-process listing
    // that ignored the setting would have answered.
    const error = (await runner({ http_proxy: 'http://127.0.0.1:9', REFBRIDGE_GIT_HTTP: '' })
      .lsRemote(url, { credentials: creds })
      .catch((e: unknown) => e)) as GitCommandError;
    expect(error).toBeInstanceOf(GitCommandError);
    expect(error.stderr).toMatch(/127\.0\.0\.1 port 9|Failed to connect|Connection refused/);
  });

  it('a proxy in the environment of one listing is used too', async () => {
    const error = (await runner()
      .lsRemote(url, { credentials: creds, env: { http_proxy: 'http://127.0.0.1:9' } })
      .catch((e: unknown) => e)) as GitCommandError;
    expect(error).toBeInstanceOf(GitCommandError);
    expect(error.stderr).toMatch(/127\.0\.0\.1 port 9|Failed to connect|Connection refused/);
  });
});
