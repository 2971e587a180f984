import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import { ForgeApiError, SecretMasker, type Logger, type ProtectionRule } from '@refbridge/core';
import { startForge, type RunningForge } from '../../../test/forge/src/server.js';
import type { SeedSpec } from '../../../test/forge/src/seed.js';
import type { RequestLogEntry } from '../../../test/forge/src/state.js';
import { UnmaskableSecretError, createGitlabForge, type GitlabForge } from '../src/gitlab-forge.js';

/**
 * The adapter against the test forge, through the real gitbeaker client and real HTTP. Every
 * token below is a canary: the last test fails if any of them shows up in a log line or in any
 * error (message, hint or inspected object graph) raised during the whole file.
 */

const CANARY = 'glpat-canary-7f3a9c1e5b2d4a6f';
const READ_ONLY = 'glpat-canary-readonly-5e6f7a8b';
const REPO_SCOPE_ONLY = 'glpat-canary-reposcope-9c0d1e2f';
const BOB = 'glpat-canary-bob-3a4b5c6d7e';
const UNKNOWN = 'glpat-canary-unknown-0f1e2d3c';
const ALL_TOKENS = [CANARY, READ_ONLY, REPO_SCOPE_ONLY, BOB, UNKNOWN];

const seed: SeedSpec = {
  gitlab: {
    users: ['alice', 'bob'],
    groups: [
      { path: 'acme', members: { alice: 50 } },
      { path: 'acme/platform' },
      { path: 'big', members: { alice: 50 } },
      { path: 'big/a' },
      { path: 'big/a/deep' },
      { path: 'big/b' },
      { path: 'elsewhere', members: { bob: 50 } },
    ],
    projects: [
      {
        path: 'acme/app',
        files: { 'README.md': '# app\n', 'ci/config.yml': 'old: 1\n' },
        branches: { 'release/1.0': {}, '2-0-stable': {} },
        members: { bob: 20 },
        protectedBranches: [
          { name: 'release/*' },
          { name: 'release/1.*', allowForcePush: false },
          { name: '*-stable', allowForcePush: true },
        ],
      },
      { path: 'acme/empty' },
      { path: 'acme/platform/svc', files: { 'README.md': '# svc\n' }, visibility: 'internal' },
      { path: 'alice/personal', files: { 'README.md': '# mine\n' } },
      { path: 'alice/scratch' },
      { path: 'big/p{n}', count: 100 },
      { path: 'big/a/q{n}', count: 90 },
      { path: 'big/a/deep/r{n}', count: 40 },
      { path: 'big/b/s{n}', count: 20 },
      { path: 'elsewhere/hidden', files: { 'README.md': '# not for alice\n' } },
    ],
  },
  tokens: [
    { value: CANARY, platform: 'gitlab', user: 'alice', scopes: ['api'] },
    { value: READ_ONLY, platform: 'gitlab', user: 'alice', scopes: ['read_api'] },
    { value: REPO_SCOPE_ONLY, platform: 'gitlab', user: 'alice', scopes: ['read_repository'] },
    { value: BOB, platform: 'gitlab', user: 'bob', scopes: ['api'] },
  ],
};

let forge: RunningForge;
const logLines: string[] = [];
const waits: number[] = [];
const errors: unknown[] = [];

/** Records raw messages (no masking here), so a token the adapter formats in would be caught. */
const logger: Logger = {
  debug: (m) => logLines.push(`debug ${m}`),
  info: (m) => logLines.push(`info ${m}`),
  warn: (m) => logLines.push(`warn ${m}`),
  error: (m) => logLines.push(`error ${m}`),
};

function gitlab(token = CANARY, retries = 3): GitlabForge {
  return createGitlabForge({
    webUrl: forge.urls.gitlab.web,
    token,
    logger,
    masker: new SecretMasker(),
    // Waits are recorded, not slept: the policy is checked without spending wall-clock time.
    retry: {
      retries,
      baseDelayMs: 10,
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
    },
  });
}

/** Runs `fn`, expects a rejection, keeps it for the canary check and returns it. */
async function failure(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    errors.push(error);
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

async function admin(method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${forge.urls.gitlab.web}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  if (!response.ok) throw new Error(`forge admin ${method} ${path}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? undefined : response.json();
}

async function apiRequests(): Promise<RequestLogEntry[]> {
  return (await admin('GET', '/_forge/requests?platform=gitlab&kind=api')) as RequestLogEntry[];
}

const writes = (log: RequestLogEntry[]): RequestLogEntry[] => log.filter((e) => e.method !== 'GET');

beforeAll(async () => {
  forge = await startForge({ seed });
});

afterAll(async () => {
  await forge?.close();
});

beforeEach(async () => {
  await admin('POST', '/_forge/requests/reset');
  await admin('DELETE', '/_forge/faults');
  waits.length = 0;
});

describe('identity', () => {
  it('reads the login and the token scopes', async () => {
    await expect(gitlab().tokenInfo()).resolves.toEqual({ login: 'alice', scopes: ['api'] });
    await expect(gitlab(READ_ONLY).tokenInfo()).resolves.toEqual({ login: 'alice', scopes: ['read_api'] });
  });

  it('builds git URLs and the oauth2 credential from the web URL', () => {
    const g = gitlab();
    expect(g.apiUrl).toBe(`${forge.urls.gitlab.web}/api/v4`);
    expect(g.gitUrl('acme/platform/svc')).toBe(`${forge.urls.gitlab.web}/acme/platform/svc.git`);
    expect(g.gitCredential()).toEqual({ url: forge.urls.gitlab.web, username: 'oauth2', token: CANARY });
  });

  it('says the token was rejected on 401, without the token', async () => {
    const error = await failure(() => gitlab(UNKNOWN).tokenInfo());
    expect(error).toBeInstanceOf(ForgeApiError);
    expect((error as ForgeApiError).status).toBe(401);
    expect(error.message).toContain('rejected the token');
    expect((error as ForgeApiError).hint).toContain('GITLAB_TOKEN');
  });
});

describe('getRepo', () => {
  it('maps a project, with last_activity_at as pushedAt', async () => {
    const repo = await gitlab().getRepo('acme/platform/svc');
    const state = forge.state.gitlabProject('acme/platform/svc');
    expect(repo).toEqual({
      platform: 'gitlab',
      path: 'acme/platform/svc',
      id: state?.id,
      defaultBranch: 'main',
      visibility: 'internal',
      archived: false,
      fork: false,
      pushedAt: state?.lastActivityAt,
      cloneUrl: `${forge.urls.gitlab.web}/acme/platform/svc.git`,
      description: null,
    });
  });

  it('answers undefined for a missing project and for one the user cannot see', async () => {
    await expect(gitlab().getRepo('acme/nope')).resolves.toBeUndefined();
    await expect(gitlab().getRepo('elsewhere/hidden')).resolves.toBeUndefined();
  });

  it('names the project and the missing right on 403', async () => {
    const error = await failure(() => gitlab(REPO_SCOPE_ONLY).getRepo('acme/app'));
    expect(error).toBeInstanceOf(ForgeApiError);
    expect((error as ForgeApiError).status).toBe(403);
    expect(error.message).toContain('reading project "acme/app"');
    expect(error.message).toContain('insufficient_scope');
    expect((error as ForgeApiError).hint).toContain('read_api');
  });
});

describe('createRepo', () => {
  it('creates missing nested subgroups one level at a time, then the project', async () => {
    const repo = await gitlab().createRepo('acme/new-team/tools/deep/widget', {
      visibility: 'private',
      description: 'made by a test',
    });
    expect(repo.path).toBe('acme/new-team/tools/deep/widget');
    expect(repo.description).toBe('made by a test');
    expect(repo.defaultBranch === null || typeof repo.defaultBranch === 'string').toBe(true);

    const teams = forge.state.gitlabGroups;
    const acme = teams.get('acme');
    const team = teams.get('acme/new-team');
    const tools = teams.get('acme/new-team/tools');
    const deep = teams.get('acme/new-team/tools/deep');
    expect(team?.parentId).toBe(acme?.id);
    expect(tools?.parentId).toBe(team?.id);
    expect(deep?.parentId).toBe(tools?.id);
    expect(forge.state.gitlabProject('acme/new-team/tools/deep/widget')?.namespaceId).toBe(deep?.id);

    const log = writes(await apiRequests());
    expect(log.map((e) => `${e.route} ${e.status}`)).toEqual([
      'POST /groups 201',
      'POST /groups 201',
      'POST /groups 201',
      'POST /projects 201',
    ]);
    expect(logLines.filter((l) => l.includes('created GitLab subgroup acme/new-team'))).not.toHaveLength(0);
    await expect(gitlab().getRepo('acme/new-team/tools/deep/widget')).resolves.toMatchObject({ id: repo.id });
  });

  it('uses an existing deep group with one lookup', async () => {
    await gitlab().createRepo('acme/platform/api', { visibility: 'private' });
    const log = await apiRequests();
    expect(log.map((e) => e.route)).toEqual(['GET /namespaces/:id', 'POST /projects']);
    expect(forge.state.gitlabProject('acme/platform/api')?.namespace).toBe('acme/platform');
  });

  it('creates into the user namespace', async () => {
    const repo = await gitlab().createRepo('alice/side-project', { visibility: 'public' });
    expect(repo).toMatchObject({ path: 'alice/side-project', visibility: 'public' });
  });

  it('explains a refused top-level group: create it or grant the right', async () => {
    const error = await failure(() => gitlab(READ_ONLY).createRepo('brand-new-top/app', { visibility: 'private' }));
    expect(error).toBeInstanceOf(ForgeApiError);
    expect(error.message).toContain('creating the top-level group "brand-new-top"');
    expect((error as ForgeApiError).hint).toMatch(/create the group "brand-new-top" in the GitLab UI/);
    expect(forge.state.gitlabGroups.has('brand-new-top')).toBe(false);
  });

  it('says when a group path exists but is invisible to the user', async () => {
    const error = await failure(() => gitlab().createRepo('elsewhere/mine', { visibility: 'private' }));
    expect(error.message).toContain('"elsewhere" is taken');
  });
});

describe('listRepos', () => {
  it('lists a group with its subgroups over 3 pages, not shared projects', async () => {
    const result = await gitlab().listRepos({ owner: 'big' });
    expect(result.repos).toHaveLength(250);
    expect(new Set(result.repos.map((r) => r.path)).size).toBe(250);
    expect(result.repos.some((r) => r.path === 'big/a/deep/r40')).toBe(true);
    expect(result.requests).toBe(3);
    expect(result.notModified).toBe(0);
    const log = await apiRequests();
    expect(log).toHaveLength(3);
    for (const entry of log) {
      expect(entry.route).toBe('GET /groups/:id/projects');
      expect(entry.path).toContain('include_subgroups=true');
      expect(entry.path).toContain('with_shared=false');
      expect(entry.path).toContain('per_page=100');
    }
  });

  it('lists only the group itself when subgroups are excluded', async () => {
    const result = await gitlab().listRepos({ owner: 'big', includeSubgroups: false });
    expect(result.repos).toHaveLength(100);
    expect(result.repos.every((r) => /^big\/p\d+$/.test(r.path))).toBe(true);
  });

  it('lists a user through /users/:id/projects', async () => {
    const result = await gitlab().listRepos({ owner: 'alice' });
    expect(result.repos.map((r) => r.path).sort()).toEqual(expect.arrayContaining(['alice/personal', 'alice/scratch']));
    expect(result.repos.every((r) => r.path.startsWith('alice/'))).toBe(true);
    const routes = (await apiRequests()).map((e) => e.route);
    expect(routes).toContain('GET /users/:id/projects');
  });

  it('lists what the token is a member of when no owner is given', async () => {
    const result = await gitlab().listRepos();
    const paths = result.repos.map((r) => r.path);
    expect(paths).toEqual(expect.arrayContaining(['acme/app', 'alice/personal', 'big/b/s20']));
    expect(paths).not.toContain('elsewhere/hidden');
    expect(result.requests).toBe(Math.ceil(result.repos.length / 100));
  });

  it('says when an owner is neither a group nor a user', async () => {
    const error = await failure(() => gitlab().listRepos({ owner: 'nobody-here' }));
    expect((error as ForgeApiError).status).toBe(404);
    expect(error.message).toContain('no GitLab group or user "nobody-here"');
  });

  it('retries injected 502s and 429s, honouring Retry-After, and counts every request', async () => {
    await admin('POST', '/_forge/faults', [
      { route: 'GET /groups/:id/projects', fault: 'status', status: 502, nth: 2, times: 2 },
      { route: 'GET /groups/:id/projects', fault: 'rate-limit', retryAfter: 7, nth: 5, times: 1 },
    ]);
    const result = await gitlab().listRepos({ owner: 'big' });
    expect(result.repos).toHaveLength(250);
    // 3 pages + 2 failed tries of page 2 + 1 rate-limited try of page 3.
    expect(result.requests).toBe(6);
    expect(waits).toEqual([10, 20, 7000]);
    const faults = (await apiRequests()).filter((e) => e.fault !== undefined).map((e) => e.status);
    expect(faults).toEqual([502, 502, 429]);
    expect(logLines.some((l) => l.startsWith('warn') && l.includes('answered 429 (rate limited)'))).toBe(true);
  });

  it('fails the whole listing when a page still fails after the retries', async () => {
    await admin('POST', '/_forge/faults', [
      { route: 'GET /groups/:id/projects', fault: 'status', status: 503, nth: 2, times: 100 },
    ]);
    const error = await failure(() => gitlab(CANARY, 2).listRepos({ owner: 'big' }));
    expect(error).toBeInstanceOf(ForgeApiError);
    expect(error.message).toBe(
      'the listing of group "big" is incomplete: page 2 failed with HTTP 503 after 3 attempts (503 Service Unavailable)',
    );
    expect((error as ForgeApiError).hint).toContain('never works from a partial listing');
    expect(await apiRequests()).toHaveLength(4);
  });

  it('retries a dropped connection on a read', async () => {
    await admin('POST', '/_forge/faults', [{ route: 'GET /projects/:id', fault: 'drop', nth: 1, times: 1 }]);
    await expect(gitlab().getRepo('acme/app')).resolves.toMatchObject({ path: 'acme/app' });
    expect(waits).toEqual([10]);
  });

  it('repeats a create whose connection dropped only after finding it was not applied', async () => {
    await admin('POST', '/_forge/faults', [{ route: 'POST /projects/:id/variables', fault: 'drop', nth: 1, times: 1 }]);
    await expect(gitlab().setVariable('acme/app', 'DROPPED', 'value')).resolves.toBe('created');
    expect(waits).toEqual([10]);
    expect((await apiRequests()).map((e) => `${e.method} ${e.status}`)).toEqual([
      'GET 404', // is it there? no: create
      'POST 0', // dropped before GitLab applied it
      'GET 404', // still not there: safe to send again
      'POST 201',
    ]);
  });

  it('says GitLab was unreachable when a create keeps failing, after the bounded retries', async () => {
    await admin('POST', '/_forge/faults', [{ route: 'POST /projects/:id/variables', fault: 'drop' }]);
    const error = await failure(() => gitlab(CANARY, 2).setVariable('acme/app', 'NEVER', 'value'));
    expect(error).toBeInstanceOf(ForgeApiError);
    expect(error.message).toContain(`could not reach GitLab at ${forge.urls.gitlab.api}`);
    expect(error.message).toContain('(3 attempts)');
    expect(waits).toEqual([10, 20]);
    expect((await apiRequests()).filter((e) => e.method === 'POST')).toHaveLength(3);
    expect(forge.state.gitlabProject('acme/app')?.variables.some((v) => v.key === 'NEVER')).toBe(false);
  });
});

describe('setSecret', () => {
  const value = 'ghp_16C7e42F292c6912E7710c838347Ae178B4a';

  it('creates a masked, hidden, raw, unprotected variable, then updates it keeping it hidden', async () => {
    await expect(gitlab().setSecret('acme/app', 'MIRROR_TOKEN', value)).resolves.toBe('created');
    const stored = forge.state.gitlabProject('acme/app')?.variables.find((v) => v.key === 'MIRROR_TOKEN');
    expect(stored).toMatchObject({
      value,
      masked: true,
      hidden: true,
      raw: true,
      protected: false,
      environmentScope: '*',
    });

    const next = `${value}x`;
    await expect(gitlab().setSecret('acme/app', 'MIRROR_TOKEN', next, { protected: true })).resolves.toBe('updated');
    const updated = forge.state.gitlabProject('acme/app')?.variables.find((v) => v.key === 'MIRROR_TOKEN');
    expect(updated).toMatchObject({ value: next, masked: true, hidden: true, raw: true, protected: true });
    expect(writes(await apiRequests()).map((e) => e.route)).toEqual([
      'POST /projects/:id/variables',
      'PUT /projects/:id/variables/:key',
    ]);
  });

  it('refuses a value GitLab cannot mask before sending anything', async () => {
    const error = await failure(() => gitlab().setSecret('acme/app', 'SHORT', 'abc def'));
    expect(error).toBeInstanceOf(UnmaskableSecretError);
    expect(error.message).toContain('GitLab cannot mask this value');
    expect(error.message).toContain('needs at least 8');
    expect(error.message).toContain('whitespace');
    expect(error.message).not.toContain('abc def');
    expect(await apiRequests()).toHaveLength(0);
    expect(forge.state.gitlabProject('acme/app')?.variables.some((v) => v.key === 'SHORT')).toBe(false);
  });

  it('names the project and the role on 403', async () => {
    const error = await failure(() => gitlab(BOB).setSecret('acme/app', 'MIRROR_TOKEN', value));
    expect((error as ForgeApiError).status).toBe(403);
    expect(error.message).toContain('"acme/app"');
    expect((error as ForgeApiError).hint).toContain('Maintainer');
  });
});

describe('setVariable', () => {
  it('creates, leaves an identical variable alone without writing, and updates a changed one', async () => {
    const g = gitlab();
    await expect(g.setVariable('acme/app', 'GITHUB_REPO', 'acme/app')).resolves.toBe('created');
    await admin('POST', '/_forge/requests/reset');

    await expect(g.setVariable('acme/app', 'GITHUB_REPO', 'acme/app')).resolves.toBe('unchanged');
    const log = await apiRequests();
    expect(log.map((e) => e.route)).toEqual(['GET /projects/:id/variables/:key']);
    expect(writes(log)).toHaveLength(0);

    await expect(g.setVariable('acme/app', 'GITHUB_REPO', 'acme/app2')).resolves.toBe('updated');
    await expect(g.setVariable('acme/app', 'GITHUB_REPO', 'acme/app2', { protected: true })).resolves.toBe('updated');
    const stored = forge.state.gitlabProject('acme/app')?.variables.find((v) => v.key === 'GITHUB_REPO');
    expect(stored).toMatchObject({ value: 'acme/app2', protected: true, masked: false, raw: true });
    // Flags left out keep their values.
    await expect(g.setVariable('acme/app', 'GITHUB_REPO', 'acme/app2')).resolves.toBe('unchanged');
  });

  it('checks masking when asked to mask', async () => {
    const error = await failure(() => gitlab().setVariable('acme/app', 'X', 'short', { masked: true }));
    expect(error).toBeInstanceOf(UnmaskableSecretError);
    expect(await apiRequests()).toHaveLength(0);
  });
});

describe('files and commits', () => {
  it('reads files, and answers undefined for missing files and branches', async () => {
    const g = gitlab();
    await expect(g.readFile('acme/app', 'main', 'README.md')).resolves.toBe('# app\n');
    await expect(g.readFile('acme/app', 'main', 'nope.txt')).resolves.toBeUndefined();
    await expect(g.readFile('acme/app', 'no-such-branch', 'README.md')).resolves.toBeUndefined();
    const error = await failure(() => g.readFile('acme/missing', 'main', 'README.md'));
    expect((error as ForgeApiError).status).toBe(404);
  });

  it('commits to an empty project, creating the branch', async () => {
    const g = gitlab();
    const sha = await g.commitFiles('acme/empty', {
      branch: 'main',
      message: 'Add mirror CI',
      files: [
        { path: '.gitlab-ci.yml', content: 'include: []\n' },
        { path: 'ci/mirror.yml', content: 'mirror: true\n' },
      ],
    });
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(writes(await apiRequests()).map((e) => e.route)).toEqual(['POST /projects/:id/repository/commits']);
    await expect(g.readFile('acme/empty', 'main', 'ci/mirror.yml')).resolves.toBe('mirror: true\n');
    await expect(g.getRepo('acme/empty')).resolves.toMatchObject({ defaultBranch: 'main' });
  });

  it('creates and updates files in one commit on an existing branch, and skips a no-op', async () => {
    const g = gitlab();
    const sha = await g.commitFiles('acme/app', {
      branch: 'main',
      message: 'Update CI',
      files: [
        { path: 'ci/config.yml', content: 'new: 2\n' },
        { path: '.gitlab-ci.yml', content: 'stages: [mirror]\n' },
      ],
    });
    const log = await apiRequests();
    const commits = writes(log);
    expect(commits.map((e) => e.route)).toEqual(['POST /projects/:id/repository/commits']);
    await expect(g.readFile('acme/app', 'main', 'ci/config.yml')).resolves.toBe('new: 2\n');
    await expect(g.readFile('acme/app', sha, '.gitlab-ci.yml')).resolves.toBe('stages: [mirror]\n');
    expect(
      logLines.some((l) => l.includes(`committed ${sha.slice(0, 12)}`) && l.includes('1 created, 1 updated')),
    ).toBe(true);

    await admin('POST', '/_forge/requests/reset');
    const again = await g.commitFiles('acme/app', {
      branch: 'main',
      message: 'Update CI',
      files: [{ path: 'ci/config.yml', content: 'new: 2\n' }],
    });
    expect(again).toBe(sha);
    expect(writes(await apiRequests())).toHaveLength(0);
  });

  it('starts a new branch from the default branch', async () => {
    const g = gitlab();
    await g.commitFiles('acme/platform/svc', {
      branch: 'ci-setup',
      message: 'CI',
      files: [{ path: 'README.md', content: '# svc v2\n' }],
    });
    await expect(g.readFile('acme/platform/svc', 'ci-setup', 'README.md')).resolves.toBe('# svc v2\n');
    await expect(g.readFile('acme/platform/svc', 'main', 'README.md')).resolves.toBe('# svc\n');
  });
});

describe('protected branches', () => {
  it('returns every rule matching the branch, wildcards included', async () => {
    const g = gitlab();
    const release = await g.protectionRules('acme/app', 'refs/heads/release/1.0');
    expect(release).toEqual([
      { source: 'protected branch "release/*"', pattern: 'release/*', allowForcePush: false, allowDeletion: false },
      { source: 'protected branch "release/1.*"', pattern: 'release/1.*', allowForcePush: false, allowDeletion: false },
    ]);
    await expect(g.protectionRules('acme/app', 'refs/heads/2-0-stable')).resolves.toEqual([
      { source: 'protected branch "*-stable"', pattern: '*-stable', allowForcePush: true, allowDeletion: false },
    ]);
    const main = await g.protectionRules('acme/app', 'main');
    expect(main.map((r) => r.pattern)).toEqual(['main']);
    await expect(g.protectionRules('acme/app', 'refs/heads/feature/x')).resolves.toEqual([]);
  });

  it('allows force push and restores it, returning the previous value and logging both', async () => {
    const g = gitlab();
    const [rule] = await g.protectionRules('acme/app', 'refs/heads/release/2.0');
    expect(rule?.pattern).toBe('release/*');
    const r = rule as ProtectionRule;
    const stateRule = () =>
      forge.state.gitlabProject('acme/app')?.protectedBranches.find((p) => p.name === 'release/*');

    await expect(g.setForcePushAllowed('acme/app', r, true)).resolves.toBe(false);
    expect(stateRule()?.allowForcePush).toBe(true);
    await expect(g.setForcePushAllowed('acme/app', r, false)).resolves.toBe(true);
    expect(stateRule()?.allowForcePush).toBe(false);

    const patches = writes(await apiRequests());
    expect(patches.map((e) => `${e.route} ${e.status}`)).toEqual([
      'PATCH /projects/:id/protected_branches/:name 200',
      'PATCH /projects/:id/protected_branches/:name 200',
    ]);
    const warnings = logLines.filter((l) => l.startsWith('warn') && l.includes('protected branch "release/*"'));
    expect(warnings.slice(-2)).toEqual([
      'warn GitLab acme/app: protected branch "release/*" allow_force_push changed from false to true',
      'warn GitLab acme/app: protected branch "release/*" allow_force_push changed from true to false',
    ]);
  });

  it('refuses protected tags with a hint', async () => {
    const error = await failure(() =>
      gitlab().setForcePushAllowed(
        'acme/app',
        { source: 'protected tag "v*"', pattern: 'v*', allowForcePush: false, allowDeletion: false },
        true,
      ),
    );
    expect(error.message).toContain('cannot allow force pushes for protected tag');
  });

  it('says 403 for a user who cannot change protection', async () => {
    const rule: ProtectionRule = {
      source: 'protected branch "release/*"',
      pattern: 'release/*',
      allowForcePush: false,
      allowDeletion: false,
    };
    const error = await failure(() => gitlab(BOB).setForcePushAllowed('acme/app', rule, true));
    expect((error as ForgeApiError).status).toBe(403);
    expect((error as ForgeApiError).hint).toContain('Maintainer');
  });
});

describe('timeouts', () => {
  // Last before the canary check, so the forge's handling of the abandoned request can never
  // land in another test's exact request counts.
  it('gives up on a slow answer after the timeout', async () => {
    const delayMs = 300;
    await admin('POST', '/_forge/faults', [{ route: 'GET /projects/:id', fault: 'slow', delayMs, nth: 1 }]);
    const slow = createGitlabForge({
      webUrl: forge.urls.gitlab.web,
      token: CANARY,
      logger,
      masker: new SecretMasker(),
      timeoutMs: 50,
    });
    const error = await failure(() => slow.getRepo('acme/app'));
    expect(error.message).toContain('did not answer in time while reading project "acme/app"');
    // Let the forge's delay timer run out, so closing it leaves no timer behind in the worker.
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  });
});

/**
 * Creates (POST) are not idempotent: a 5xx or dropped connection may come after GitLab did the
 * work. `afterApply` faults make the forge apply the request and then lose the answer.
 */
describe('creates that fail in transit', () => {
  const fault = (route: string, extra: Record<string, unknown>) => ({
    platform: 'gitlab',
    kind: 'api',
    route,
    fault: 'status',
    status: 502,
    nth: 1,
    ...extra,
  });
  const posts = async (route: string) =>
    (await apiRequests()).filter((e) => e.method === 'POST' && e.route === route).map((e) => e.status);
  const recoveredLines = () => logLines.filter((l) => l.startsWith('info') && l.includes('recovered after'));

  /** A client whose first backoff wait runs `meanwhile`: another actor writing while we wait. */
  function interleaved(meanwhile: () => Promise<unknown>): GitlabForge {
    let done = false;
    return createGitlabForge({
      webUrl: forge.urls.gitlab.web,
      token: CANARY,
      logger,
      masker: new SecretMasker(),
      retry: {
        retries: 3,
        baseDelayMs: 10,
        sleep: async (ms) => {
          waits.push(ms);
          if (!done) {
            done = true;
            await meanwhile();
          }
        },
      },
    });
  }

  beforeEach(() => {
    logLines.length = 0;
  });

  it('retries a project create refused with 502 before GitLab applied it, creating it once', async () => {
    await admin('POST', '/_forge/faults', [fault('re:^POST /projects$', {})]);
    const repo = await gitlab().createRepo('acme/retry-before', { visibility: 'private' });
    expect(repo.path).toBe('acme/retry-before');
    expect(await posts('POST /projects')).toEqual([502, 201]);
    expect(waits).toEqual([10]);
    expect([...forge.state.gitlabProjects.values()].filter((p) => p.path === 'retry-before')).toHaveLength(1);
    expect(recoveredLines()).toEqual([]);
  });

  it('recognises a project whose create answer was lost, without sending it again', async () => {
    await admin('POST', '/_forge/faults', [fault('re:^POST /projects$', { afterApply: true })]);
    const repo = await gitlab().createRepo('alice/retry-lost', { visibility: 'internal', description: 'lost' });
    expect(repo).toMatchObject({ path: 'alice/retry-lost', visibility: 'internal', description: 'lost' });
    expect(repo.id).toBe(forge.state.gitlabProject('alice/retry-lost')?.id);
    expect(await posts('POST /projects')).toEqual([502]);
    expect(recoveredLines()).toEqual([
      'info GitLab create of project alice/retry-lost: recovered after HTTP 502; GitLab had applied it, so it was not sent again',
    ]);
  });

  it('recognises groups whose create answer was lost (dropped connection), then creates the project', async () => {
    await admin('POST', '/_forge/faults', [fault('POST /groups', { fault: 'drop', times: 2, afterApply: true })]);
    const repo = await gitlab().createRepo('acme/lost-team/lost-sub/app', { visibility: 'private' });
    expect(repo.path).toBe('acme/lost-team/lost-sub/app');
    const team = forge.state.gitlabGroups.get('acme/lost-team');
    expect(forge.state.gitlabGroups.get('acme/lost-team/lost-sub')?.parentId).toBe(team?.id);
    expect(await posts('POST /groups')).toEqual([0, 0]);
    expect(await posts('POST /projects')).toEqual([201]);
    expect(recoveredLines()).toHaveLength(2);
  });

  it('refuses to adopt a project someone else created differently meanwhile', async () => {
    await admin('POST', '/_forge/faults', [fault('re:^POST /projects$', {})]);
    const g = interleaved(() => gitlab().createRepo('alice/retry-taken', { visibility: 'internal' }));
    const error = await failure(() => g.createRepo('alice/retry-taken', { visibility: 'private' }));
    expect(error).toBeInstanceOf(ForgeApiError);
    expect(error.message).toBe(
      'GitLab project "alice/retry-taken" is not what refbridge created (visibility internal, asked private): a create failed in transit, and someone else made this meanwhile; refbridge left it alone',
    );
    expect((error as ForgeApiError).hint).toContain(`${forge.urls.gitlab.web}/alice/retry-taken`);
    expect(forge.state.gitlabProject('alice/retry-taken')?.visibility).toBe('internal');
    expect(await posts('POST /projects')).toEqual([502, 201]);
  });

  it('recognises a variable and a hidden secret whose create answers were lost', async () => {
    await admin('POST', '/_forge/faults', [fault('POST /projects/:id/variables', { times: 2, afterApply: true })]);
    const g = gitlab();
    await expect(g.setVariable('acme/app', 'LOST_VAR', 'some-value', { protected: true })).resolves.toBe('created');
    const secret = 'glpat-lost-secret-1234567890ab';
    await expect(g.setSecret('acme/app', 'LOST_SECRET', secret)).resolves.toBe('created');
    expect(await posts('POST /projects/:id/variables')).toEqual([502, 502]);
    const vars = forge.state.gitlabProject('acme/app')!.variables;
    expect(vars.filter((v) => v.key === 'LOST_VAR')).toEqual([
      expect.objectContaining({ value: 'some-value', protected: true, masked: false }),
    ]);
    expect(vars.filter((v) => v.key === 'LOST_SECRET')).toEqual([
      expect.objectContaining({ value: secret, masked: true, hidden: true }),
    ]);
    expect(recoveredLines()).toHaveLength(2);
    expect(logLines.some((l) => l.includes(secret))).toBe(false);
  });

  it('refuses a variable someone else set to another value meanwhile', async () => {
    await admin('POST', '/_forge/faults', [fault('POST /projects/:id/variables', { status: 503 })]);
    const g = interleaved(() => gitlab().setVariable('acme/app', 'RACED', 'theirs'));
    const error = await failure(() => g.setVariable('acme/app', 'RACED', 'ours'));
    expect(error.message).toContain(
      'CI/CD variable "RACED" (environment scope *) in "acme/app" is not what refbridge created (another value)',
    );
    expect(forge.state.gitlabProject('acme/app')!.variables.find((v) => v.key === 'RACED')?.value).toBe('theirs');
  });

  it('retries a commit refused before GitLab applied it, and recognises one whose answer was lost', async () => {
    const g = gitlab();
    await g.createRepo('alice/retry-commits', { visibility: 'private' });
    await admin('POST', '/_forge/faults', [fault('POST /projects/:id/repository/commits', {})]);
    const first = await g.commitFiles('alice/retry-commits', {
      branch: 'main',
      message: 'Add CI',
      files: [{ path: '.gitlab-ci.yml', content: 'one: 1\n' }],
    });
    expect(await posts('POST /projects/:id/repository/commits')).toEqual([502, 201]);

    await admin('POST', '/_forge/requests/reset');
    await admin('POST', '/_forge/faults', [fault('POST /projects/:id/repository/commits', { afterApply: true })]);
    const second = await g.commitFiles('alice/retry-commits', {
      branch: 'main',
      message: 'Update CI',
      files: [
        { path: '.gitlab-ci.yml', content: 'one: 2\n' },
        { path: 'ci/new.yml', content: 'new: true\n' },
      ],
    });
    expect(await posts('POST /projects/:id/repository/commits')).toEqual([502]);
    const head = await branchCommit('alice/retry-commits', 'main');
    expect(head).toMatchObject({ id: second, parent_ids: [first], message: 'Update CI' });
    await expect(g.readFile('alice/retry-commits', 'main', 'ci/new.yml')).resolves.toBe('new: true\n');
    expect(recoveredLines()).toEqual([
      'info GitLab commit to alice/retry-commits@main: recovered after HTTP 502; GitLab had applied it, so it was not sent again',
    ]);
  });

  it('refuses to build on a branch someone else moved while a commit failed in transit', async () => {
    const g = gitlab();
    await g.createRepo('alice/raced-commits', { visibility: 'private' });
    await g.commitFiles('alice/raced-commits', {
      branch: 'main',
      message: 'init',
      files: [{ path: 'a', content: '1\n' }],
    });
    await admin('POST', '/_forge/faults', [fault('POST /projects/:id/repository/commits', {})]);
    const other = () =>
      gitlab().commitFiles('alice/raced-commits', {
        branch: 'main',
        message: 'theirs',
        files: [{ path: 'b', content: 'x\n' }],
      });
    const error = await failure(() =>
      interleaved(other).commitFiles('alice/raced-commits', {
        branch: 'main',
        message: 'ours',
        files: [{ path: 'a', content: '2\n' }],
      }),
    );
    expect(error.message).toMatch(
      /^the head of main in "alice\/raced-commits" \([0-9a-f]{12}\) is not what refbridge created \(another message\)/,
    );
    expect((error as ForgeApiError).hint).toContain('run again to commit on top of their change');
    expect((await branchCommit('alice/raced-commits', 'main'))?.message).toBe('theirs');
  });
});

async function branchCommit(project: string, branch: string): Promise<Record<string, unknown> | undefined> {
  const response = await fetch(
    `${forge.urls.gitlab.api}/projects/${encodeURIComponent(project)}/repository/branches/${encodeURIComponent(branch)}`,
    { headers: { 'private-token': CANARY } },
  );
  return ((await response.json()) as { commit?: Record<string, unknown> }).commit;
}

describe('canary tokens', () => {
  it('never appear in a log line or an error', () => {
    expect(errors.length).toBeGreaterThan(5);
    expect(logLines.length).toBeGreaterThan(10);
    const haystack = [
      ...logLines,
      ...errors.map((e) => {
        const err = e as Error & { hint?: string };
        return `${err.message}\n${err.hint ?? ''}\n${err.stack ?? ''}\n${inspect(err, { depth: 10 })}`;
      }),
    ].join('\n');
    for (const token of ALL_TOKENS) {
      expect(haystack).not.toContain(token);
      expect(haystack).not.toContain(Buffer.from(`oauth2:${token}`).toString('base64'));
    }
  });
});
