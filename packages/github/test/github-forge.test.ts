import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { credentialEnv, ForgeApiError, SecretMasker, UsageError } from '@refbridge/core';
import type { Forge, ListingCache, Logger } from '@refbridge/core';
import { execa } from 'execa';
import { startForge, type RunningForge } from '../../../test/forge/src/server.js';
import type { SeedSpec } from '../../../test/forge/src/seed.js';
import { tempDir } from '../../../test/support/temp.js';
import { createGithubForge } from '../src/github-forge.js';
import type { GithubRetryOptions } from '../src/github-client.js';

/**
 * The adapter against the test forge's GitHub: real @octokit/rest, real HTTP, real git repos
 * behind the API. The forge's request log is the witness for "how many calls, which routes".
 */

const CANARY = 'ghp_canaryREFBRIDGEgithub000000000000001';
const NO_WORKFLOW = 'ghp_canaryREFBRIDGEnoworkflow0000000002';
const REVOKED = 'ghp_canaryREFBRIDGErevoked000000000003';
const TOKENS = [CANARY, NO_WORKFLOW, REVOKED];

const seed: SeedSpec = {
  github: {
    users: ['alice', 'bob'],
    orgs: [
      { login: 'acme', members: ['alice'] },
      { login: 'many', members: ['alice'] },
    ],
    repos: [
      {
        owner: 'alice',
        name: 'widgets',
        files: { 'README.md': '# widgets\n', 'src/a.txt': 'a\n' },
      },
      { owner: 'alice', name: 'diary', private: true, files: { 'notes.txt': 'n\n' } },
      { owner: 'alice', name: 'empty' },
      { owner: 'alice', name: 'empty-single' },
      { owner: 'alice', name: 'vars', files: { 'README.md': 'v\n' } },
      {
        owner: 'alice',
        name: 'guarded',
        files: { 'README.md': '# guarded\n' },
        branches: { open: {}, loose: {} },
        tags: [{ name: 'v1' }],
        protections: { main: { allowForcePushes: false, allowDeletions: false }, loose: { allowForcePushes: true } },
      },
      { owner: 'acme', name: 'tools', files: { 'README.md': 't\n' } },
      { owner: 'many', name: 'bulk-{n}', count: 250 },
      { owner: 'bob', name: 'bobs', files: { 'README.md': 'b\n' } },
    ],
  },
  tokens: [
    { value: CANARY, platform: 'github', user: 'alice', scopes: ['repo', 'workflow', 'read:org'] },
    { value: NO_WORKFLOW, platform: 'github', user: 'alice', scopes: ['repo'] },
    { value: REVOKED, platform: 'github', user: 'alice', scopes: ['repo'], expired: true },
  ],
};

/** Waits measured in milliseconds instead of seconds, so retries cost nothing in the suite. */
const FAST: GithubRetryOptions = {
  retries: 2,
  unitMs: 5,
  writeIntervalMs: 0,
  rateLimitRetries: 2,
  maxWaitSeconds: 120,
};

interface LoggedRequest {
  seq: number;
  method: string;
  route: string;
  path: string;
  status: number;
  fault?: string;
}

let forge: RunningForge;
const lines: string[] = [];
const errorTexts: string[] = [];

/** A logger that does NOT mask: the adapter itself must never hand it a token. */
const logger: Logger = {
  debug: (m) => lines.push(`debug ${m}`),
  info: (m) => lines.push(`info ${m}`),
  warn: (m) => lines.push(`warn ${m}`),
  error: (m) => lines.push(`error ${m}`),
};

function adapter(token = CANARY, retry: GithubRetryOptions = FAST): Forge {
  // No apiUrl: the forge is served like GitHub Enterprise, so <web>/api/v3 must be derived.
  return createGithubForge({ webUrl: forge.urls.github.web, token, logger, masker: new SecretMasker(), retry });
}

/** Awaits a promise that must reject, and keeps the error text for the canary check. */
async function failure(promise: Promise<unknown>): Promise<Error & { status?: number; hint?: string }> {
  try {
    await promise;
  } catch (error) {
    const e = error as Error & { status?: number; hint?: string; describe?: () => string };
    errorTexts.push(e.message, e.hint ?? '', String(e.stack));
    return e;
  }
  throw new Error('expected a rejection');
}

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${forge.urls.github.web}/_forge${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  return text ? (JSON.parse(text) as unknown) : undefined;
}

/** Sequence number to measure from: requests after it are the ones under test. */
async function mark(): Promise<number> {
  const log = (await admin('GET', '/requests?platform=github&kind=api')) as LoggedRequest[];
  return log.length === 0 ? 0 : Math.max(...log.map((e) => e.seq));
}

async function requestsSince(seq: number): Promise<LoggedRequest[]> {
  return (await admin('GET', `/requests?platform=github&kind=api&since=${seq}`)) as LoggedRequest[];
}

const writes = (log: LoggedRequest[]): LoggedRequest[] => log.filter((e) => e.method !== 'GET');

async function gitLog(repo: string, branch: string): Promise<{ count: number; files: string[]; tip: string }> {
  const tmp = await tempDir('refbridge-gh-clone-');
  try {
    const env = {
      ...credentialEnv([{ url: forge.urls.github.web, username: 'x-access-token', token: CANARY }]),
      GIT_TERMINAL_PROMPT: '0',
    };
    await execa('git', ['clone', '-q', '--branch', branch, `${forge.urls.github.web}/${repo}.git`, 'c'], {
      cwd: tmp.path,
      env,
    });
    const cwd = `${tmp.path}/c`;
    const count = Number((await execa('git', ['rev-list', '--count', 'HEAD'], { cwd })).stdout.trim());
    const files = (await execa('git', ['ls-files'], { cwd })).stdout.trim().split('\n');
    const tip = (await execa('git', ['rev-parse', 'HEAD'], { cwd })).stdout.trim();
    return { count, files, tip };
  } finally {
    await tmp.cleanup();
  }
}

class MapCache implements ListingCache {
  readonly map = new Map<string, { etag: string; body: unknown }>();
  get(key: string) {
    return this.map.get(key);
  }
  set(key: string, value: { etag: string; body: unknown }) {
    // Round-trip through JSON, as a cache persisted between runs would.
    this.map.set(key, JSON.parse(JSON.stringify(value)) as { etag: string; body: unknown });
  }
}

beforeAll(async () => {
  forge = await startForge({ seed });
});

afterEach(async () => {
  await admin('DELETE', '/faults');
});

afterAll(async () => {
  await forge?.close();
});

describe('token and repos', () => {
  it('reads the login and the classic scopes from x-oauth-scopes', async () => {
    expect(await adapter().tokenInfo()).toEqual({ login: 'alice', scopes: ['repo', 'workflow', 'read:org'] });
  });

  it('gets a repo, and answers undefined for one that does not exist', async () => {
    const gh = adapter();
    const repo = await gh.getRepo('alice/widgets');
    expect(repo).toMatchObject({
      platform: 'github',
      path: 'alice/widgets',
      defaultBranch: 'main',
      visibility: 'public',
      archived: false,
      fork: false,
      cloneUrl: `${forge.urls.github.web}/alice/widgets.git`,
    });
    expect(typeof repo?.pushedAt).toBe('string');
    expect((await gh.getRepo('alice/diary'))?.visibility).toBe('private');
    expect(await gh.getRepo('alice/nope')).toBeUndefined();
    expect(gh.gitUrl('alice/widgets')).toBe(`${forge.urls.github.web}/alice/widgets.git`);
  });

  it('turns a rejected token into a 401 error that says to create a new token', async () => {
    const gh = adapter(REVOKED);
    const e = await failure(gh.getRepo('alice/widgets'));
    expect(e).toBeInstanceOf(ForgeApiError);
    expect(e.status).toBe(401);
    expect(e.message).toContain('GITHUB_TOKEN was rejected (401 Bad credentials)');
    expect(e.message).toContain('alice/widgets');
    expect(e.hint).toContain('create a new token');
    const t = await failure(gh.tokenInfo());
    expect(t.message).toContain('401');
  });

  it('creates user repos with POST /user/repos and org repos with POST /orgs/:org/repos', async () => {
    const gh = adapter();
    const since = await mark();
    const mine = await gh.createRepo('alice/made-by-refbridge', { visibility: 'private', description: 'mirror' });
    expect(mine).toMatchObject({ path: 'alice/made-by-refbridge', visibility: 'private', description: 'mirror' });
    const org = await gh.createRepo('acme/org-mirror', { visibility: 'internal' });
    expect(org).toMatchObject({ path: 'acme/org-mirror', visibility: 'internal' });
    const routes = writes(await requestsSince(since)).map((e) => `${e.route} ${e.status}`);
    expect(routes).toEqual(['POST /user/repos 201', 'POST /orgs/:org/repos 201']);
    expect((await gh.getRepo('acme/org-mirror'))?.visibility).toBe('internal');
  });

  it('refuses internal for a user repo before calling, and explains an existing name', async () => {
    const gh = adapter();
    const since = await mark();
    expect(await failure(gh.createRepo('alice/internal-try', { visibility: 'internal' }))).toBeInstanceOf(UsageError);
    expect(writes(await requestsSince(since))).toEqual([]);
    const dup = await failure(gh.createRepo('alice/widgets', { visibility: 'public' }));
    expect(dup).toBeInstanceOf(ForgeApiError);
    expect(dup.status).toBe(422);
    expect(dup.message).toMatch(/already exists/);
    const stranger = await failure(gh.createRepo('bob/not-mine', { visibility: 'private' }));
    expect(stranger.message).toContain('neither');
  });
});

describe('listRepos', () => {
  it('pages through 250 org repos and lists again with ETags for 304s only', async () => {
    const gh = adapter();
    const cache = new MapCache();
    let since = await mark();
    const first = await gh.listRepos({ owner: 'many', cache });
    const names = first.repos.map((r) => r.path);
    expect(names).toHaveLength(250);
    expect(new Set(names)).toEqual(new Set(Array.from({ length: 250 }, (_, i) => `many/bulk-${i + 1}`)));
    let log = await requestsSince(since);
    // GET /user (login), GET /users/many (org or user), then 3 pages of 100.
    expect(first.requests).toBe(log.length);
    expect(log.filter((e) => e.route === 'GET /orgs/:org/repos')).toHaveLength(3);
    expect(log.every((e) => e.status === 200)).toBe(true);
    expect(first.notModified).toBe(0);

    since = await mark();
    const second = await gh.listRepos({ owner: 'many', cache });
    log = await requestsSince(since);
    expect(second.repos).toEqual(first.repos);
    expect(log.length).toBe(second.requests);
    expect(log.map((e) => e.status)).toEqual(log.map(() => 304));
    expect(second.notModified).toBe(second.requests);
    expect(log.filter((e) => e.route === 'GET /orgs/:org/repos')).toHaveLength(3);

    // A change shows up: the page that changed is fetched again, the others stay 304.
    await gh.createRepo('many/zz-new', { visibility: 'public' });
    since = await mark();
    const third = await gh.listRepos({ owner: 'many', cache });
    log = await requestsSince(since);
    expect(third.repos.map((r) => r.path)).toContain('many/zz-new');
    expect(third.repos).toHaveLength(251);
    expect(log.some((e) => e.status === 200)).toBe(true);
    expect(third.notModified).toBe(log.filter((e) => e.status === 304).length);
  });

  it('lists the token owner (private repos too), everything visible, and another user', async () => {
    const gh = adapter();
    const own = (await gh.listRepos({ owner: 'alice' })).repos.map((r) => r.path);
    expect(own).toEqual(expect.arrayContaining(['alice/widgets', 'alice/diary', 'alice/empty']));
    expect(own.some((p) => !p.startsWith('alice/'))).toBe(false);
    const all = await gh.listRepos();
    const paths = all.repos.map((r) => r.path);
    expect(paths).toEqual(expect.arrayContaining(['alice/diary', 'acme/tools', 'many/bulk-250']));
    expect(all.requests).toBeGreaterThanOrEqual(3);
    const bobs = (await gh.listRepos({ owner: 'bob' })).repos.map((r) => r.path);
    expect(bobs).toEqual(['bob/bobs']);
  });

  it('fails the whole listing when a page keeps failing, instead of returning part of it', async () => {
    await admin('POST', '/faults', { route: 'GET /orgs/:org/repos', fault: 'status', status: 502, nth: 2, times: 10 });
    const e = await failure(adapter().listRepos({ owner: 'many' }));
    expect(e).toBeInstanceOf(ForgeApiError);
    expect(e.message).toContain('incomplete');
    expect(e.message).toContain('page 2');
    expect(e.message).toContain('502');
  });
});

describe('retries', () => {
  it('retries a 502 with backoff and succeeds', async () => {
    await admin('POST', '/faults', {
      route: 'GET /repos/:owner/:repo',
      fault: 'status',
      status: 502,
      nth: 1,
      times: 2,
    });
    const since = await mark();
    const before = lines.length;
    expect((await adapter().getRepo('alice/widgets'))?.path).toBe('alice/widgets');
    const log = (await requestsSince(since)).filter((e) => e.route === 'GET /repos/:owner/:repo');
    expect(log.map((e) => e.status)).toEqual([502, 502, 200]);
    expect(lines.slice(before).filter((l) => l.startsWith('warn') && l.includes('502'))).toHaveLength(2);
  });

  it('retries a dropped connection', async () => {
    await admin('POST', '/faults', { route: 'GET /repos/:owner/:repo', fault: 'drop', nth: 1 });
    const since = await mark();
    expect((await adapter().getRepo('alice/widgets'))?.path).toBe('alice/widgets');
    const log = (await requestsSince(since)).filter((e) => e.route === 'GET /repos/:owner/:repo');
    expect(log.map((e) => e.fault ?? e.status)).toEqual(['drop', 200]);
  });

  it('abandons a request that hangs past the timeout and retries it', async () => {
    await admin('POST', '/faults', { route: 'GET /repos/:owner/:repo', fault: 'slow', delayMs: 1000, nth: 1 });
    const before = lines.length;
    const gh = adapter(CANARY, { ...FAST, requestTimeoutMs: 150 });
    expect((await gh.getRepo('alice/widgets'))?.path).toBe('alice/widgets');
    expect(lines.slice(before).filter((l) => l.startsWith('warn') && l.includes('failed ('))).toHaveLength(1);
  });

  it('waits out a 429 with Retry-After and the rate-limit reset, then succeeds', async () => {
    await admin('POST', '/faults', {
      route: 'GET /repos/:owner/:repo',
      fault: 'rate-limit',
      retryAfter: 1,
      nth: 1,
      times: 1,
    });
    const since = await mark();
    const before = lines.length;
    expect((await adapter().getRepo('alice/widgets'))?.path).toBe('alice/widgets');
    const log = (await requestsSince(since)).filter((e) => e.route === 'GET /repos/:owner/:repo');
    expect(log.map((e) => e.status)).toEqual([429, 200]);
    expect(lines.slice(before).some((l) => l.startsWith('warn') && l.includes('rate limit'))).toBe(true);
  });

  it('gives up after the bounded number of rate-limit waits with a message saying when it resets', async () => {
    await admin('POST', '/faults', { route: 'GET /repos/:owner/:repo', fault: 'rate-limit', retryAfter: 1 });
    const since = await mark();
    const e = await failure(adapter().getRepo('alice/widgets'));
    expect(e.message).toContain('rate limit exhausted');
    expect((await requestsSince(since)).filter((l) => l.status === 429)).toHaveLength(3);
  });

  it('does not wait longer than maxWaitSeconds', async () => {
    await admin('POST', '/faults', { route: 'GET /repos/:owner/:repo', fault: 'rate-limit', retryAfter: 3600 });
    const since = await mark();
    const e = await failure(adapter(CANARY, { ...FAST, maxWaitSeconds: 30 }).getRepo('alice/widgets'));
    expect(e.status).toBe(429);
    expect((await requestsSince(since)).filter((l) => l.status === 429)).toHaveLength(1);
  });
});

describe('secrets and variables', () => {
  it('seals a secret the forge can open: 201 created, then 204 updated', async () => {
    const masker = new SecretMasker();
    const gh = createGithubForge({ webUrl: forge.urls.github.web, token: CANARY, logger, masker, retry: FAST });
    const since = await mark();
    expect(await gh.setSecret('alice/widgets', 'GITLAB_TOKEN', 'glpat-first-value-123')).toBe('created');
    expect(await admin('GET', '/secrets/github/alice/widgets')).toEqual({ GITLAB_TOKEN: 'glpat-first-value-123' });
    expect(await gh.setSecret('alice/widgets', 'GITLAB_TOKEN', 'glpat-second-value-456')).toBe('updated');
    expect(await admin('GET', '/secrets/github/alice/widgets')).toEqual({ GITLAB_TOKEN: 'glpat-second-value-456' });
    const puts = writes(await requestsSince(since));
    expect(puts.map((e) => `${e.method} ${e.status}`)).toEqual(['PUT 201', 'PUT 204']);
    expect(masker.mask('value glpat-second-value-456')).toBe('value ***');
    expect(lines.some((l) => l.includes('glpat-first-value-123') || l.includes('glpat-second-value-456'))).toBe(false);
  });

  it('creates a variable, leaves an equal one alone without writing, and updates a changed one', async () => {
    const gh = adapter();
    expect(await gh.setVariable('alice/vars', 'GITLAB_PROJECT', 'group/vars')).toBe('created');
    let since = await mark();
    expect(await gh.setVariable('alice/vars', 'GITLAB_PROJECT', 'group/vars')).toBe('unchanged');
    expect(writes(await requestsSince(since))).toEqual([]);
    since = await mark();
    expect(await gh.setVariable('alice/vars', 'GITLAB_PROJECT', 'group/other')).toBe('updated');
    expect(writes(await requestsSince(since)).map((e) => e.method)).toEqual(['PATCH']);
    expect(await gh.setVariable('alice/vars', 'GITLAB_PROJECT', 'group/other')).toBe('unchanged');
  });

  it('refuses names GitHub would refuse', async () => {
    expect(await failure(adapter().setSecret('alice/vars', 'GITHUB_X', 'value'))).toBeInstanceOf(UsageError);
    expect(await failure(adapter().setVariable('alice/vars', '1ABC', 'value'))).toBeInstanceOf(UsageError);
  });
});

describe('files', () => {
  it('commits several files to an empty repo, creating the branch', async () => {
    const gh = adapter();
    const sha = await gh.commitFiles('alice/empty', {
      branch: 'main',
      message: 'Add refbridge CI',
      files: [
        { path: '.github/workflows/mirror.yml', content: 'on: push\n' },
        { path: '.gitlab-ci.yml', content: 'include: []\n' },
        { path: 'docs/MIRROR.md', content: 'mirrored ü\n' },
      ],
    });
    const cloned = await gitLog('alice/empty', 'main');
    expect(cloned.tip).toBe(sha);
    expect(cloned.files.sort()).toEqual(['.github/workflows/mirror.yml', '.gitlab-ci.yml', 'docs/MIRROR.md']);
    // The contents API makes the first commit (Git Data answers 409 on an empty repo), the rest is one more.
    expect(cloned.count).toBe(2);
    expect(await gh.readFile('alice/empty', 'main', 'docs/MIRROR.md')).toBe('mirrored ü\n');
  });

  it('commits a single file to an empty repo in one commit', async () => {
    const gh = adapter();
    const sha = await gh.commitFiles('alice/empty-single', {
      branch: 'trunk',
      message: 'first',
      files: [{ path: 'README.md', content: 'hi\n' }],
    });
    expect(await gitLog('alice/empty-single', 'trunk')).toEqual({ count: 1, files: ['README.md'], tip: sha });
  });

  it('commits several files to a non-empty branch in one commit on top of the tip', async () => {
    const gh = adapter();
    const before = await gitLog('alice/widgets', 'main');
    const since = await mark();
    const sha = await gh.commitFiles('alice/widgets', {
      branch: 'main',
      message: 'Add mirror files',
      files: [
        { path: 'README.md', content: '# widgets, mirrored\n' },
        { path: '.github/workflows/mirror.yml', content: 'on: push\n' },
        { path: 'ci/gitlab.yml', content: 'stages: []\n' },
      ],
    });
    const after = await gitLog('alice/widgets', 'main');
    expect(after.tip).toBe(sha);
    expect(after.count).toBe(before.count + 1);
    expect(after.files.sort()).toEqual(['.github/workflows/mirror.yml', 'README.md', 'ci/gitlab.yml', 'src/a.txt']);
    expect(writes(await requestsSince(since)).map((e) => e.route)).toEqual([
      'POST /repos/:owner/:repo/git/trees',
      'POST /repos/:owner/:repo/git/commits',
      'PATCH /repos/:owner/:repo/git/refs/*ref',
    ]);
    expect(await gh.readFile('alice/widgets', 'main', 'README.md')).toBe('# widgets, mirrored\n');
    expect(await gh.readFile('alice/widgets', 'main', 'src/a.txt')).toBe('a\n');

    // The same files again change nothing: no commit, same tip.
    const again = await gh.commitFiles('alice/widgets', {
      branch: 'main',
      message: 'Add mirror files',
      files: [{ path: 'ci/gitlab.yml', content: 'stages: []\n' }],
    });
    expect(again).toBe(sha);
    expect((await gitLog('alice/widgets', 'main')).count).toBe(after.count);
  });

  it('starts a missing branch from the default branch', async () => {
    const gh = adapter();
    const main = await gitLog('alice/vars', 'main');
    const sha = await gh.commitFiles('alice/vars', {
      branch: 'refbridge-setup',
      message: 'setup',
      files: [{ path: 'setup.txt', content: 's\n' }],
    });
    const branch = await gitLog('alice/vars', 'refbridge-setup');
    expect(branch).toMatchObject({ tip: sha, count: main.count + 1 });
    expect(branch.files.sort()).toEqual([...main.files, 'setup.txt'].sort());
  });

  it('refuses to write workflows without the workflow scope, before any write', async () => {
    const gh = adapter(NO_WORKFLOW);
    const since = await mark();
    const e = await failure(
      gh.commitFiles('alice/widgets', {
        branch: 'main',
        message: 'x',
        files: [
          { path: 'README.md', content: 'changed\n' },
          { path: '.github/workflows/ci.yml', content: 'on: push\n' },
        ],
      }),
    );
    expect(e).toBeInstanceOf(ForgeApiError);
    expect(e.message).toContain('`workflow` scope');
    expect(e.message).toContain('.github/workflows/ci.yml');
    expect(e.hint).toContain('workflow');
    expect(writes(await requestsSince(since))).toEqual([]);
  });

  it('reads missing files as undefined and refuses directories', async () => {
    const gh = adapter();
    expect(await gh.readFile('alice/widgets', 'main', 'nope.txt')).toBeUndefined();
    expect(await gh.readFile('alice/widgets', 'no-such-branch', 'README.md')).toBeUndefined();
    expect(await failure(gh.readFile('alice/widgets', 'main', 'src'))).toBeInstanceOf(ForgeApiError);
    expect(await failure(gh.readFile('alice/widgets', 'main', '../etc/passwd'))).toBeInstanceOf(UsageError);
  });
});

describe('protection', () => {
  it('names branch protection that blocks force pushes and deletion, per branch and not just the default', async () => {
    const gh = adapter();
    const main = await gh.protectionRules('alice/guarded', 'refs/heads/main');
    expect(main).toContainEqual({
      source: 'branch protection',
      pattern: 'main',
      allowForcePush: false,
      allowDeletion: false,
    });
    expect(main.every((r) => !r.allowForcePush && !r.allowDeletion)).toBe(true);
    const loose = await gh.protectionRules('alice/guarded', 'loose');
    expect(loose).toContainEqual({
      source: 'branch protection',
      pattern: 'loose',
      allowForcePush: true,
      allowDeletion: false,
    });
    expect(await gh.protectionRules('alice/guarded', 'refs/heads/open')).toEqual([]);
    expect(await gh.protectionRules('alice/guarded', 'refs/tags/v1')).toEqual([]);
  });

  it('refuses to weaken protection and says how to let the bot through', async () => {
    const gh = adapter();
    const [rule] = await gh.protectionRules('alice/guarded', 'refs/heads/main');
    const e = await failure(gh.setForcePushAllowed('alice/guarded', rule!, true));
    expect(e.hint).toMatch(/bypass list|specified actors/);
    expect((await gh.protectionRules('alice/guarded', 'refs/heads/main'))[0]?.allowForcePush).toBe(false);
  });
});

describe('canary', () => {
  it('never puts a token in a log line or an error', () => {
    expect(lines.length).toBeGreaterThan(0);
    expect(errorTexts.length).toBeGreaterThan(0);
    for (const token of TOKENS) {
      expect(lines.filter((l) => l.includes(token))).toEqual([]);
      expect(errorTexts.filter((t) => t.includes(token))).toEqual([]);
      const basic = Buffer.from(`x-access-token:${token}`).toString('base64');
      expect(lines.filter((l) => l.includes(basic))).toEqual([]);
    }
  });
});
