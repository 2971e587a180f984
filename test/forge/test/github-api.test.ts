import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Octokit } from '@octokit/rest';
import { execa } from 'execa';
import sodium from 'libsodium-wrappers';
import { githubRateLimiter } from '../src/github-api.js';
import { GithubOpenApi } from '../src/github-openapi.js';
import type { SeedSpec } from '../src/seed.js';
import { startForge, type RunningForge } from '../src/server.js';
import type { GithubRepo } from '../src/state.js';

/**
 * Contract test of the forge's GitHub REST API: every endpoint it serves is called through the
 * real @octokit/rest, and every response (status and body) is checked against GitHub's OpenAPI
 * description from @octokit/openapi. A response the description does not allow fails the test.
 */

const ALICE = 'ghp_canaryALICE0000000000000000000000001';
const ALICE_NO_WORKFLOW = 'ghp_canaryALICEnowf000000000000000000002';
const ALICE_PUBLIC = 'ghp_canaryALICEpub0000000000000000000003';
const BOB = 'ghp_canaryBOB000000000000000000000000004';
const UNKNOWN = 'ghp_canaryUNKNOWN00000000000000000000005';

const seed: SeedSpec = {
  github: {
    users: [{ login: 'alice', name: 'Alice Liddell', email: 'alice@example.com' }, 'bob'],
    orgs: [
      { login: 'acme', members: ['alice'] },
      { login: 'bobcorp', members: ['bob'] },
    ],
    repos: [
      {
        owner: 'alice',
        name: 'widgets',
        description: 'Widgets',
        files: { 'README.md': '# widgets\n', 'src/a.txt': 'a\n', 'src/deep/b.txt': 'b\n' },
        branches: { feature: { files: { 'feature.txt': 'f\n' } } },
      },
      { owner: 'alice', name: 'diary', private: true, files: { 'secret.txt': 'shh\n' } },
      { owner: 'alice', name: 'empty' },
      {
        owner: 'alice',
        name: 'gitdata',
        files: { 'README.md': '# git data\n', 'old.txt': 'old\n', 'dir/x.txt': 'x\n' },
      },
      { owner: 'alice', name: 'guarded', files: { 'README.md': '# guarded\n' }, branches: { extra: {} } },
      { owner: 'acme', name: 'bulk-{n}', count: 250 },
      { owner: 'acme', name: 'internal-tools', private: true },
      { owner: 'bob', name: 'bobs', files: { 'README.md': '# bob\n' } },
    ],
  },
  tokens: [
    { value: ALICE, platform: 'github', user: 'alice', scopes: ['repo', 'workflow', 'read:org'] },
    { value: ALICE_NO_WORKFLOW, platform: 'github', user: 'alice', scopes: ['repo'] },
    { value: ALICE_PUBLIC, platform: 'github', user: 'alice', scopes: ['public_repo'] },
    { value: BOB, platform: 'github', user: 'bob', scopes: ['repo'] },
  ],
};

let forge: RunningForge;
let spec: GithubOpenApi;

const client = (auth?: string): Octokit =>
  new Octokit({
    ...(auth ? { auth } : {}),
    baseUrl: forge.urls.github.api,
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
  });

interface Answer {
  status: number;
  data: unknown;
  headers: Record<string, string | number | undefined>;
}

/**
 * Runs one Octokit call, expecting `status`, and validates the answer against the description of
 * `operation` (`METHOD /path/{template}`). Also checks what GitHub sends with every response.
 */
async function expectCall(
  operation: string,
  status: number,
  request: Promise<{ status: number; data: unknown; headers: object }>,
  authed = true,
): Promise<Answer> {
  let answer: Answer;
  try {
    const r = await request;
    answer = { status: r.status, data: r.data, headers: r.headers as Answer['headers'] };
  } catch (error) {
    // Octokit's RequestError (it also throws one for 304 Not Modified).
    const e = error as { status?: unknown; response?: { data?: unknown; headers?: object } };
    if (typeof e.status !== 'number' || e.response === undefined) throw error;
    answer = { status: e.status, data: e.response.data, headers: (e.response.headers ?? {}) as Answer['headers'] };
  }
  const [method, path] = operation.split(' ') as [string, string];
  expect({ operation, status: answer.status, data: answer.status === status ? 'ok' : answer.data }).toEqual({
    operation,
    status,
    data: 'ok',
  });
  const result = spec.check(method, path, answer.status, answer.status === 304 ? undefined : answer.data);
  expect({ against: result.against, problems: result.problems }).toEqual({ against: result.against, problems: [] });
  for (const h of [
    'x-ratelimit-limit',
    'x-ratelimit-remaining',
    'x-ratelimit-used',
    'x-ratelimit-reset',
    'x-ratelimit-resource',
  ]) {
    expect({ operation, header: h, present: answer.headers[h] !== undefined }).toEqual({
      operation,
      header: h,
      present: true,
    });
  }
  if (authed) {
    expect(typeof answer.headers['x-oauth-scopes']).toBe('string');
    expect(typeof answer.headers['x-accepted-oauth-scopes']).toBe('string');
  }
  if (answer.status >= 400) {
    const body = answer.data as Record<string, unknown>;
    expect(typeof body.message).toBe('string');
    expect(body.documentation_url).toMatch(/^https:\/\/docs\.github\.com\/rest/);
    expect(body.status).toBe(String(answer.status));
  }
  return answer;
}

const message = (a: Answer): unknown => (a.data as { message?: unknown }).message;

function repoState(owner: string, name: string): GithubRepo {
  const repo = forge.state.githubRepo(owner, name);
  if (!repo) throw new Error(`no repo ${owner}/${name} in the forge`);
  return repo;
}

async function gitIn(repo: GithubRepo, args: string[]): Promise<string> {
  return (await execa('git', args, { env: { GIT_DIR: repo.gitDir } })).stdout.trim();
}

async function sealFor(key: string, value: string): Promise<string> {
  await sodium.ready;
  const sealed = sodium.crypto_box_seal(
    sodium.from_string(value),
    sodium.from_base64(key, sodium.base64_variants.ORIGINAL),
  );
  return sodium.to_base64(sealed, sodium.base64_variants.ORIGINAL);
}

beforeAll(async () => {
  [spec, forge] = await Promise.all([GithubOpenApi.load(), startForge({ seed })]);
});

afterAll(async () => {
  await forge?.close();
});

describe('users, orgs and rate limits', () => {
  it('answers GET /user with the private user and the token scopes', async () => {
    const a = await expectCall('GET /user', 200, client(ALICE).rest.users.getAuthenticated());
    expect(a.data).toMatchObject({
      login: 'alice',
      type: 'User',
      name: 'Alice Liddell',
      email: 'alice@example.com',
      user_view_type: 'private',
    });
    expect(a.headers['x-oauth-scopes']).toBe('repo, workflow, read:org');
    expect(a.headers['x-ratelimit-limit']).toBe('5000');
    expect(a.headers['x-ratelimit-resource']).toBe('core');
  });

  it('refuses anonymous and unknown tokens the way GitHub does', async () => {
    const anon = await expectCall('GET /user', 401, client().rest.users.getAuthenticated(), false);
    expect(message(anon)).toBe('Requires authentication');
    expect(anon.headers['x-oauth-scopes']).toBeUndefined();
    expect(anon.headers['x-ratelimit-limit']).toBe('60');
    const bad = await expectCall('GET /user', 401, client(UNKNOWN).rest.users.getAuthenticated(), false);
    expect(bad.data).toEqual({
      message: 'Bad credentials',
      documentation_url: 'https://docs.github.com/rest',
      status: '401',
    });
    // A bad token is refused even where anonymous reads are fine.
    const badPublic = await expectCall(
      'GET /users/{username}',
      401,
      client(UNKNOWN).rest.users.getByUsername({ username: 'bob' }),
      false,
    );
    expect(message(badPublic)).toBe('Bad credentials');
  });

  it('serves users and orgs, anonymously too', async () => {
    const bob = await expectCall(
      'GET /users/{username}',
      200,
      client().rest.users.getByUsername({ username: 'bob' }),
      false,
    );
    expect(bob.data).toMatchObject({ login: 'bob', type: 'User', public_repos: 1 });
    const orgAsUser = await expectCall(
      'GET /users/{username}',
      200,
      client(ALICE).rest.users.getByUsername({ username: 'acme' }),
    );
    expect(orgAsUser.data).toMatchObject({ login: 'acme', type: 'Organization' });
    await expectCall('GET /users/{username}', 404, client(ALICE).rest.users.getByUsername({ username: 'nobody' }));
    const org = await expectCall('GET /orgs/{org}', 200, client(ALICE).rest.orgs.get({ org: 'acme' }));
    expect(org.data).toMatchObject({ login: 'acme', type: 'Organization', public_repos: 250 });
    const notOrg = await expectCall('GET /orgs/{org}', 404, client(ALICE).rest.orgs.get({ org: 'alice' }));
    expect(notOrg.data).toEqual({
      message: 'Not Found',
      documentation_url: 'https://docs.github.com/rest/orgs/orgs#get-an-organization',
      status: '404',
    });
  });

  it('lists the user orgs only with an org-reading scope', async () => {
    const withScope = await expectCall('GET /user/orgs', 200, client(ALICE).rest.orgs.listForAuthenticatedUser());
    expect((withScope.data as { login: string }[]).map((o) => o.login)).toEqual(['acme']);
    const without = await expectCall(
      'GET /user/orgs',
      200,
      client(ALICE_NO_WORKFLOW).rest.orgs.listForAuthenticatedUser(),
    );
    expect(without.data).toEqual([]);
  });

  it('counts requests in x-ratelimit-* and /rate_limit, which itself is free', async () => {
    const octokit = client(BOB);
    const first = await expectCall('GET /rate_limit', 200, octokit.rest.rateLimit.get());
    const again = await expectCall('GET /rate_limit', 200, octokit.rest.rateLimit.get());
    const used = (a: Answer): number => (a.data as { rate: { used: number } }).rate.used;
    expect(used(again)).toBe(used(first));
    const call = await expectCall(
      'GET /users/{username}',
      200,
      octokit.rest.users.getByUsername({ username: 'alice' }),
    );
    expect(Number(call.headers['x-ratelimit-used'])).toBe(used(first) + 1);
    expect(Number(call.headers['x-ratelimit-remaining'])).toBe(5000 - used(first) - 1);
  });

  it('refuses with 403 once the limit is spent, when enforcement is on', async () => {
    const limiter = githubRateLimiter(forge);
    limiter.settings.enforce = true;
    limiter.settings.anonymousLimit = 2;
    limiter.reset();
    try {
      const anon = client();
      await expectCall('GET /users/{username}', 200, anon.rest.users.getByUsername({ username: 'bob' }), false);
      const last = await expectCall(
        'GET /users/{username}',
        200,
        anon.rest.users.getByUsername({ username: 'bob' }),
        false,
      );
      expect(last.headers['x-ratelimit-remaining']).toBe('0');
      const refused = await expectCall(
        'GET /users/{username}',
        403,
        anon.rest.users.getByUsername({ username: 'bob' }),
        false,
      );
      expect(String(message(refused))).toMatch(/^API rate limit exceeded for /);
    } finally {
      limiter.settings.enforce = false;
      limiter.settings.anonymousLimit = 60;
      limiter.reset();
    }
  });
});

describe('listing repos', () => {
  it('follows Link headers over 251 org repos with octokit.paginate', async () => {
    const octokit = client(ALICE);
    const seen: string[] = [];
    let pages = 0;
    for await (const page of octokit.paginate.iterator(octokit.rest.repos.listForOrg, { org: 'acme', per_page: 100 })) {
      pages++;
      const check = spec.check('GET', '/orgs/{org}/repos', page.status, page.data);
      expect(check.problems).toEqual([]);
      seen.push(...page.data.map((r) => r.full_name));
      expect(pages).toBeLessThan(10);
    }
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(251);
    expect(seen).toContain('acme/internal-tools');
    // Outsiders see only the public ones.
    const outsider = await client(BOB).paginate(client(BOB).rest.repos.listForOrg, { org: 'acme', per_page: 100 });
    expect(outsider).toHaveLength(250);
  });

  it('writes prev/next/last/first links with absolute URLs', async () => {
    const octokit = client(ALICE);
    const first = await expectCall(
      'GET /orgs/{org}/repos',
      200,
      octokit.rest.repos.listForOrg({ org: 'acme', per_page: 100, sort: 'full_name' }),
    );
    const links = (a: Answer): Record<string, string> =>
      Object.fromEntries(
        String(a.headers.link ?? '')
          .split(', ')
          .filter(Boolean)
          .map((part) => {
            const m = /^<([^>]+)>; rel="(\w+)"$/.exec(part);
            return [m?.[2] ?? '?', m?.[1] ?? '?'];
          }),
      );
    const api = forge.urls.github.api;
    expect(links(first)).toEqual({
      next: `${api}/orgs/acme/repos?per_page=100&sort=full_name&page=2`,
      last: `${api}/orgs/acme/repos?per_page=100&sort=full_name&page=3`,
    });
    const middle = await expectCall(
      'GET /orgs/{org}/repos',
      200,
      octokit.rest.repos.listForOrg({ org: 'acme', per_page: 100, sort: 'full_name', page: 2 }),
    );
    expect(Object.keys(links(middle)).sort()).toEqual(['first', 'last', 'next', 'prev']);
    expect(links(middle).prev).toMatch(/[?&]page=1$/);
    const last = await expectCall(
      'GET /orgs/{org}/repos',
      200,
      octokit.rest.repos.listForOrg({ org: 'acme', per_page: 100, sort: 'full_name', page: 3 }),
    );
    expect(Object.keys(links(last)).sort()).toEqual(['first', 'prev']);
    expect(last.data).toHaveLength(51);
    // Default page size 30, at most 100.
    const defaults = await expectCall('GET /orgs/{org}/repos', 200, octokit.rest.repos.listForOrg({ org: 'acme' }));
    expect(defaults.data).toHaveLength(30);
    const clamped = await expectCall(
      'GET /orgs/{org}/repos',
      200,
      octokit.rest.repos.listForOrg({ org: 'acme', per_page: 1000 }),
    );
    expect(clamped.data).toHaveLength(100);
  });

  it('filters /user/repos by affiliation and visibility, and refuses type with them', async () => {
    const octokit = client(ALICE);
    const owned = await octokit.paginate(octokit.rest.repos.listForAuthenticatedUser, {
      affiliation: 'owner',
      per_page: 100,
    });
    expect(owned.map((r) => r.full_name).sort()).toEqual([
      'alice/diary',
      'alice/empty',
      'alice/gitdata',
      'alice/guarded',
      'alice/widgets',
    ]);
    const page = await expectCall(
      'GET /user/repos',
      200,
      octokit.rest.repos.listForAuthenticatedUser({ visibility: 'private', per_page: 100 }),
    );
    expect((page.data as { full_name: string }[]).map((r) => r.full_name).sort()).toEqual([
      'acme/internal-tools',
      'alice/diary',
    ]);
    const widgets = (owned.find((r) => r.name === 'widgets') ?? {}) as Record<string, unknown>;
    expect(widgets).toMatchObject({
      owner: { login: 'alice', type: 'User' },
      private: false,
      visibility: 'public',
      clone_url: `${forge.urls.github.web}/alice/widgets.git`,
      html_url: `${forge.urls.github.web}/alice/widgets`,
      default_branch: 'main',
      permissions: { admin: true, push: true, pull: true },
    });
    const refused = await expectCall(
      'GET /user/repos',
      422,
      octokit.rest.repos.listForAuthenticatedUser({ type: 'owner', affiliation: 'owner' }),
    );
    expect(message(refused)).toBe('If you specify visibility or affiliation, you cannot specify type.');
    // A public_repo token does not see private repos.
    const publicOnly = await client(ALICE_PUBLIC).paginate(client(ALICE_PUBLIC).rest.repos.listForAuthenticatedUser, {
      affiliation: 'owner',
    });
    expect(publicOnly.map((r) => r.name)).not.toContain('diary');
  });

  it('sorts by pushed_at for early-stopping consumers', async () => {
    const guarded = repoState('alice', 'guarded');
    guarded.pushedAt = '2099-01-01T00:00:00Z';
    const a = await expectCall(
      'GET /user/repos',
      200,
      client(ALICE).rest.repos.listForAuthenticatedUser({ affiliation: 'owner', sort: 'pushed', direction: 'desc' }),
    );
    expect((a.data as { name: string; pushed_at: string }[])[0]).toMatchObject({
      name: 'guarded',
      pushed_at: '2099-01-01T00:00:00Z',
    });
  });

  it('lists a user public repos', async () => {
    const a = await expectCall(
      'GET /users/{username}/repos',
      200,
      client().rest.repos.listForUser({ username: 'alice' }),
      false,
    );
    const names = (a.data as { name: string }[]).map((r) => r.name);
    expect(names).toContain('widgets');
    expect(names).not.toContain('diary');
  });
});

describe('ETag and conditional requests', () => {
  it('answers If-None-Match with 304 and does not charge authorized 304s', async () => {
    const octokit = client(ALICE);
    const first = await expectCall('GET /user', 200, octokit.rest.users.getAuthenticated());
    const etag = String(first.headers.etag);
    expect(etag).toMatch(/^W\/"[0-9a-f]+"$/);
    const cached = await expectCall(
      'GET /user',
      304,
      octokit.rest.users.getAuthenticated({ headers: { 'if-none-match': etag } }),
    );
    expect(cached.headers.etag).toBe(etag);
    expect(cached.headers['x-ratelimit-used']).toBe(first.headers['x-ratelimit-used']);
    // The list changes when a repo is added, and so does its ETag.
    const list = await expectCall(
      'GET /user/repos',
      200,
      octokit.rest.repos.listForAuthenticatedUser({ affiliation: 'owner' }),
    );
    await expectCall(
      'GET /user/repos',
      304,
      octokit.rest.repos.listForAuthenticatedUser({
        affiliation: 'owner',
        headers: { 'if-none-match': String(list.headers.etag) },
      }),
    );
    await expectCall('POST /user/repos', 201, octokit.rest.repos.createForAuthenticatedUser({ name: 'etag-probe' }));
    const changed = await expectCall(
      'GET /user/repos',
      200,
      octokit.rest.repos.listForAuthenticatedUser({
        affiliation: 'owner',
        headers: { 'if-none-match': String(list.headers.etag) },
      }),
    );
    expect(changed.headers.etag).not.toBe(list.headers.etag);
  });
});

describe('repos', () => {
  it('gets public and private repos, hiding private ones with 404', async () => {
    const a = await expectCall(
      'GET /repos/{owner}/{repo}',
      200,
      client(ALICE).rest.repos.get({ owner: 'alice', repo: 'diary' }),
    );
    expect(a.data).toMatchObject({ full_name: 'alice/diary', private: true, visibility: 'private' });
    await expectCall('GET /repos/{owner}/{repo}', 404, client(BOB).rest.repos.get({ owner: 'alice', repo: 'diary' }));
    await expectCall(
      'GET /repos/{owner}/{repo}',
      404,
      client().rest.repos.get({ owner: 'alice', repo: 'diary' }),
      false,
    );
    // Without the repo scope a private repo does not exist, even for its owner.
    await expectCall(
      'GET /repos/{owner}/{repo}',
      404,
      client(ALICE_PUBLIC).rest.repos.get({ owner: 'alice', repo: 'diary' }),
    );
    const anon = await expectCall(
      'GET /repos/{owner}/{repo}',
      200,
      client().rest.repos.get({ owner: 'ALICE', repo: 'Widgets' }),
      false,
    );
    expect(anon.data).toMatchObject({ full_name: 'alice/widgets', description: 'Widgets' });
    expect((anon.data as Record<string, unknown>).permissions).toBeUndefined();
  });

  it('creates user repos (auto_init, private) and refuses duplicates with GitHub error shape', async () => {
    const octokit = client(ALICE);
    const created = await expectCall(
      'POST /user/repos',
      201,
      octokit.rest.repos.createForAuthenticatedUser({
        name: 'fresh',
        private: true,
        auto_init: true,
        description: 'new',
      }),
    );
    expect(created.data).toMatchObject({
      full_name: 'alice/fresh',
      private: true,
      visibility: 'private',
      description: 'new',
      default_branch: 'main',
    });
    expect(created.headers.location).toBe(`${forge.urls.github.api}/repos/alice/fresh`);
    const readme = await expectCall(
      'GET /repos/{owner}/{repo}/contents/{path}',
      200,
      octokit.rest.repos.getContent({ owner: 'alice', repo: 'fresh', path: 'README.md' }),
    );
    expect(readme.data).toMatchObject({ type: 'file', name: 'README.md' });
    expect(repoState('alice', 'fresh').pushedAt).not.toBeNull();
    const dup = await expectCall(
      'POST /user/repos',
      422,
      octokit.rest.repos.createForAuthenticatedUser({ name: 'fresh' }),
    );
    expect(dup.data).toEqual({
      message: 'Repository creation failed.',
      errors: [
        { resource: 'Repository', code: 'custom', field: 'name', message: 'name already exists on this account' },
      ],
      documentation_url: 'https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user',
      status: '422',
    });
    const internal = await expectCall(
      'POST /user/repos',
      422,
      octokit.rest.repos.createForAuthenticatedUser({ name: 'x', visibility: 'internal' }),
    );
    expect(message(internal)).toBe('Repository creation failed.');
    // public_repo may create public repos only.
    await expectCall(
      'POST /user/repos',
      201,
      client(ALICE_PUBLIC).rest.repos.createForAuthenticatedUser({ name: 'open' }),
    );
    await expectCall(
      'POST /user/repos',
      404,
      client(ALICE_PUBLIC).rest.repos.createForAuthenticatedUser({ name: 'closed', private: true }),
    );
    await expectCall('POST /user/repos', 401, client().rest.repos.createForAuthenticatedUser({ name: 'anon' }), false);
  });

  it('creates org repos for members only', async () => {
    const created = await expectCall(
      'POST /orgs/{org}/repos',
      201,
      client(ALICE).rest.repos.createInOrg({ org: 'acme', name: 'service', visibility: 'internal' } as never),
    );
    expect(created.data).toMatchObject({
      full_name: 'acme/service',
      private: true,
      visibility: 'internal',
      owner: { login: 'acme', type: 'Organization' },
      organization: { login: 'acme' },
    });
    const outsider = await expectCall(
      'POST /orgs/{org}/repos',
      404,
      client(BOB).rest.repos.createInOrg({ org: 'acme', name: 'intruder' }),
    );
    expect(message(outsider)).toBe('Not Found');
    await expectCall(
      'POST /orgs/{org}/repos',
      404,
      client(ALICE).rest.repos.createInOrg({ org: 'no-such-org', name: 'x' }),
    );
    expect(forge.state.githubRepo('acme', 'intruder')).toBeUndefined();
  });
});

describe('Actions secrets and variables', () => {
  it('round-trips a sealed-box secret: 201 created, 204 updated, decrypted by the forge', async () => {
    const octokit = client(ALICE);
    const key = await expectCall(
      'GET /repos/{owner}/{repo}/actions/secrets/public-key',
      200,
      octokit.rest.actions.getRepoPublicKey({ owner: 'alice', repo: 'widgets' }),
    );
    const { key_id, key: publicKey } = key.data as { key_id: string; key: string };
    const put = (name: string, value: string) =>
      sealFor(publicKey, value).then((encrypted_value) =>
        octokit.rest.actions.createOrUpdateRepoSecret({
          owner: 'alice',
          repo: 'widgets',
          secret_name: name,
          encrypted_value,
          key_id,
        }),
      );
    await expectCall(
      'PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}',
      201,
      put('deploy_token', 'first value'),
    );
    await expectCall(
      'PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}',
      204,
      put('DEPLOY_TOKEN', 'second välue'),
    );
    expect(repoState('alice', 'widgets').secrets.get('DEPLOY_TOKEN')?.decrypted).toBe('second välue');
    const admin = await fetch(`${forge.urls.github.web}/_forge/secrets/github/alice/widgets`);
    expect(admin.status).toBe(200);
    expect(await admin.json()).toEqual({ DEPLOY_TOKEN: 'second välue' });
    const list = await expectCall(
      'GET /repos/{owner}/{repo}/actions/secrets',
      200,
      octokit.rest.actions.listRepoSecrets({ owner: 'alice', repo: 'widgets' }),
    );
    expect(list.data).toMatchObject({ total_count: 1, secrets: [{ name: 'DEPLOY_TOKEN' }] });
    const one = await expectCall(
      'GET /repos/{owner}/{repo}/actions/secrets/{secret_name}',
      200,
      octokit.rest.actions.getRepoSecret({ owner: 'alice', repo: 'widgets', secret_name: 'deploy_token' }),
    );
    expect(Object.keys(one.data as object).sort()).toEqual(['created_at', 'name', 'updated_at']);
    await expectCall(
      'DELETE /repos/{owner}/{repo}/actions/secrets/{secret_name}',
      204,
      octokit.rest.actions.deleteRepoSecret({ owner: 'alice', repo: 'widgets', secret_name: 'DEPLOY_TOKEN' }),
    );
    await expectCall(
      'GET /repos/{owner}/{repo}/actions/secrets/{secret_name}',
      404,
      octokit.rest.actions.getRepoSecret({ owner: 'alice', repo: 'widgets', secret_name: 'DEPLOY_TOKEN' }),
    );
    await expectCall(
      'DELETE /repos/{owner}/{repo}/actions/secrets/{secret_name}',
      404,
      octokit.rest.actions.deleteRepoSecret({ owner: 'alice', repo: 'widgets', secret_name: 'DEPLOY_TOKEN' }),
    );
  });

  it('refuses incomplete, mis-keyed and undecryptable secrets with 422', async () => {
    const octokit = client(ALICE);
    const repo = repoState('alice', 'widgets');
    const sealed = await sealFor(repo.secretKey.publicKey, 'v');
    const op = 'PUT /repos/{owner}/{repo}/actions/secrets/{secret_name}';
    const args = { owner: 'alice', repo: 'widgets', secret_name: 'BROKEN' };
    const noKey = await expectCall(
      op,
      422,
      octokit.rest.actions.createOrUpdateRepoSecret({ ...args, encrypted_value: sealed } as never),
    );
    expect(message(noKey)).toBe('Invalid request.\n\n"key_id" wasn\'t supplied.');
    const noValue = await expectCall(
      op,
      422,
      octokit.rest.actions.createOrUpdateRepoSecret({ ...args, key_id: repo.secretKey.keyId } as never),
    );
    expect(message(noValue)).toBe('Invalid request.\n\n"encrypted_value" wasn\'t supplied.');
    await expectCall(
      op,
      422,
      octokit.rest.actions.createOrUpdateRepoSecret({ ...args, encrypted_value: sealed, key_id: '1' }),
    );
    const garbage = Buffer.alloc(64, 7).toString('base64');
    const bad = await expectCall(
      op,
      422,
      octokit.rest.actions.createOrUpdateRepoSecret({
        ...args,
        encrypted_value: garbage,
        key_id: repo.secretKey.keyId,
      }),
    );
    expect(message(bad)).toBe('Bad request - validation failed due to an improperly encrypted secret');
    expect(repo.secrets.has('BROKEN')).toBe(false);
    // Writing secrets needs admin rights; a reader of a public repo is refused.
    const reader = await expectCall(
      op,
      403,
      client(BOB).rest.actions.createOrUpdateRepoSecret({
        ...args,
        encrypted_value: sealed,
        key_id: repo.secretKey.keyId,
      }),
    );
    expect(message(reader)).toBe('Must have admin rights to Repository.');
    await expectCall(
      op,
      404,
      client(BOB).rest.actions.createOrUpdateRepoSecret({
        owner: 'alice',
        repo: 'diary',
        secret_name: 'X',
        encrypted_value: sealed,
        key_id: 'k',
      }),
    );
  });

  it('creates, conflicts, updates and deletes variables (201/409/204)', async () => {
    const octokit = client(ALICE);
    const base = { owner: 'alice', repo: 'widgets' };
    await expectCall(
      'POST /repos/{owner}/{repo}/actions/variables',
      201,
      octokit.rest.actions.createRepoVariable({ ...base, name: 'target_url', value: 'https://a' }),
    );
    const dup = await expectCall(
      'POST /repos/{owner}/{repo}/actions/variables',
      409,
      octokit.rest.actions.createRepoVariable({ ...base, name: 'TARGET_URL', value: 'x' }),
    );
    expect(message(dup)).toBe('Already exists');
    const got = await expectCall(
      'GET /repos/{owner}/{repo}/actions/variables/{name}',
      200,
      octokit.rest.actions.getRepoVariable({ ...base, name: 'TARGET_URL' }),
    );
    expect(got.data).toMatchObject({ name: 'TARGET_URL', value: 'https://a' });
    await expectCall(
      'PATCH /repos/{owner}/{repo}/actions/variables/{name}',
      204,
      octokit.rest.actions.updateRepoVariable({ ...base, name: 'TARGET_URL', value: 'https://b' }),
    );
    const list = await expectCall(
      'GET /repos/{owner}/{repo}/actions/variables',
      200,
      octokit.rest.actions.listRepoVariables(base),
    );
    expect(list.data).toMatchObject({ total_count: 1, variables: [{ name: 'TARGET_URL', value: 'https://b' }] });
    await expectCall(
      'PATCH /repos/{owner}/{repo}/actions/variables/{name}',
      404,
      octokit.rest.actions.updateRepoVariable({ ...base, name: 'MISSING', value: 'v' }),
    );
    await expectCall(
      'DELETE /repos/{owner}/{repo}/actions/variables/{name}',
      204,
      octokit.rest.actions.deleteRepoVariable({ ...base, name: 'TARGET_URL' }),
    );
    await expectCall(
      'GET /repos/{owner}/{repo}/actions/variables/{name}',
      404,
      octokit.rest.actions.getRepoVariable({ ...base, name: 'TARGET_URL' }),
    );
  });
});

describe('contents API', () => {
  const base = { owner: 'alice', repo: 'widgets' };

  it('reads files and directories', async () => {
    const octokit = client(ALICE);
    const file = await expectCall(
      'GET /repos/{owner}/{repo}/contents/{path}',
      200,
      octokit.rest.repos.getContent({ ...base, path: 'src/deep/b.txt' }),
    );
    const data = file.data as { content: string; encoding: string; sha: string; path: string };
    expect(data).toMatchObject({ type: 'file', encoding: 'base64', path: 'src/deep/b.txt', name: 'b.txt', size: 2 });
    expect(Buffer.from(data.content, 'base64').toString()).toBe('b\n');
    expect(data.sha).toBe(await gitIn(repoState('alice', 'widgets'), ['rev-parse', 'main:src/deep/b.txt']));
    const dir = await expectCall(
      'GET /repos/{owner}/{repo}/contents/{path}',
      200,
      octokit.rest.repos.getContent({ ...base, path: 'src' }),
    );
    expect((dir.data as { name: string; type: string }[]).map((e) => `${e.type}:${e.name}`)).toEqual([
      'file:a.txt',
      'dir:deep',
    ]);
    const root = await expectCall(
      'GET /repos/{owner}/{repo}/contents/{path}',
      200,
      octokit.rest.repos.getContent({ ...base, path: '' }),
    );
    expect((root.data as { name: string }[]).map((e) => e.name)).toEqual(['README.md', 'src']);
    const onBranch = await expectCall(
      'GET /repos/{owner}/{repo}/contents/{path}',
      200,
      octokit.rest.repos.getContent({ ...base, path: 'feature.txt', ref: 'feature' }),
    );
    expect(onBranch.data).toMatchObject({ name: 'feature.txt' });
    await expectCall(
      'GET /repos/{owner}/{repo}/contents/{path}',
      404,
      octokit.rest.repos.getContent({ ...base, path: 'feature.txt' }),
    );
    const empty = await expectCall(
      'GET /repos/{owner}/{repo}/contents/{path}',
      404,
      octokit.rest.repos.getContent({ owner: 'alice', repo: 'empty', path: 'x' }),
    );
    expect(message(empty)).toBe('This repository is empty.');
  });

  it('creates (201), updates (200), refuses missing or stale sha (422/409) and deletes', async () => {
    const octokit = client(ALICE);
    const repo = repoState('alice', 'widgets');
    repo.pushedAt = '2000-01-01T00:00:00Z';
    const op = 'PUT /repos/{owner}/{repo}/contents/{path}';
    const put = (content: string, sha?: string) =>
      octokit.rest.repos.createOrUpdateFileContents({
        ...base,
        path: 'docs/new file.md',
        message: 'add docs',
        content: Buffer.from(content).toString('base64'),
        ...(sha ? { sha } : {}),
      });
    const created = await expectCall(op, 201, put('one\n'));
    const first = created.data as {
      content: { sha: string; path: string };
      commit: { sha: string; message: string; author: { name: string } };
    };
    expect(first.content.path).toBe('docs/new file.md');
    expect(first.commit).toMatchObject({ message: 'add docs', author: { name: 'Alice Liddell' } });
    expect(await gitIn(repo, ['rev-parse', 'refs/heads/main'])).toBe(first.commit.sha);
    expect(repo.pushedAt).not.toBe('2000-01-01T00:00:00Z');
    const noSha = await expectCall(op, 422, put('two\n'));
    expect(message(noSha)).toBe('Invalid request.\n\n"sha" wasn\'t supplied.');
    const stale = await expectCall(op, 409, put('two\n', 'a'.repeat(40)));
    expect(message(stale)).toBe(`docs/new file.md does not match ${'a'.repeat(40)}`);
    const updated = await expectCall(op, 200, put('two\n', first.content.sha));
    const second = updated.data as { commit: { sha: string; parents: { sha: string }[] } };
    expect(second.commit.parents.map((p) => p.sha)).toEqual([first.commit.sha]);
    expect(await gitIn(repo, ['show', 'main:docs/new file.md'])).toBe('two');
    const current = await octokit.rest.repos.getContent({ ...base, path: 'docs/new file.md' });
    const sha = (current.data as { sha: string }).sha;
    await expectCall(
      'DELETE /repos/{owner}/{repo}/contents/{path}',
      409,
      octokit.rest.repos.deleteFile({ ...base, path: 'docs/new file.md', message: 'rm', sha: first.content.sha }),
    );
    const deleted = await expectCall(
      'DELETE /repos/{owner}/{repo}/contents/{path}',
      200,
      octokit.rest.repos.deleteFile({ ...base, path: 'docs/new file.md', message: 'rm', sha }),
    );
    expect((deleted.data as { content: unknown }).content).toBeNull();
    await expectCall(
      'DELETE /repos/{owner}/{repo}/contents/{path}',
      404,
      octokit.rest.repos.deleteFile({ ...base, path: 'docs/new file.md', message: 'rm', sha }),
    );
    await expectCall(
      op,
      404,
      octokit.rest.repos.createOrUpdateFileContents({
        ...base,
        path: 'x.txt',
        message: 'm',
        content: 'eA==',
        branch: 'no-such-branch',
      }),
    );
  });

  it('needs the workflow scope for .github/workflows files', async () => {
    const args = {
      ...base,
      path: '.github/workflows/ci.yml',
      message: 'ci',
      content: Buffer.from('on: push\n').toString('base64'),
    };
    const refused = await expectCall(
      'PUT /repos/{owner}/{repo}/contents/{path}',
      404,
      client(ALICE_NO_WORKFLOW).rest.repos.createOrUpdateFileContents(args),
    );
    expect(message(refused)).toBe(
      'refusing to allow a Personal Access Token to create or update workflow `.github/workflows/ci.yml` without `workflow` scope',
    );
    await expectCall(
      'PUT /repos/{owner}/{repo}/contents/{path}',
      201,
      client(ALICE).rest.repos.createOrUpdateFileContents(args),
    );
  });

  it('makes the first commit and branch of an empty repo', async () => {
    const repo = repoState('alice', 'empty');
    const created = await expectCall(
      'PUT /repos/{owner}/{repo}/contents/{path}',
      201,
      client(ALICE).rest.repos.createOrUpdateFileContents({
        owner: 'alice',
        repo: 'empty',
        path: 'README.md',
        message: 'first',
        content: Buffer.from('hi\n').toString('base64'),
      }),
    );
    const commit = (created.data as { commit: { sha: string; parents: unknown[] } }).commit;
    expect(commit.parents).toEqual([]);
    expect(await gitIn(repo, ['rev-parse', 'refs/heads/main'])).toBe(commit.sha);
    expect(repo.pushedAt).not.toBeNull();
    // Git Data API on an empty repo was 409 before; it works now.
    await expectCall(
      'GET /repos/{owner}/{repo}/git/ref/{ref}',
      200,
      client(ALICE).rest.git.getRef({ owner: 'alice', repo: 'empty', ref: 'heads/main' }),
    );
  });
});

describe('Git Data API', () => {
  const base = { owner: 'alice', repo: 'gitdata' };

  it('builds a multi-file commit: blob, tree with base_tree and deletions, commit, ref updates', async () => {
    const octokit = client(ALICE);
    const repo = repoState('alice', 'gitdata');
    const ref = await expectCall(
      'GET /repos/{owner}/{repo}/git/ref/{ref}',
      200,
      octokit.rest.git.getRef({ ...base, ref: 'heads/main' }),
    );
    const tip = (ref.data as { object: { sha: string; type: string }; ref: string }).object;
    expect(tip.type).toBe('commit');
    expect(tip.sha).toBe(await gitIn(repo, ['rev-parse', 'refs/heads/main']));
    const commit = await expectCall(
      'GET /repos/{owner}/{repo}/git/commits/{commit_sha}',
      200,
      octokit.rest.git.getCommit({ ...base, commit_sha: tip.sha }),
    );
    const tree = (commit.data as { tree: { sha: string } }).tree.sha;
    const full = await expectCall(
      'GET /repos/{owner}/{repo}/git/trees/{tree_sha}',
      200,
      octokit.rest.git.getTree({ ...base, tree_sha: tree, recursive: 'true' }),
    );
    expect((full.data as { tree: { path: string }[] }).tree.map((e) => e.path)).toEqual([
      'README.md',
      'dir',
      'dir/x.txt',
      'old.txt',
    ]);

    const blob = await expectCall(
      'POST /repos/{owner}/{repo}/git/blobs',
      201,
      octokit.rest.git.createBlob({
        ...base,
        content: Buffer.from([0, 1, 2, 255]).toString('base64'),
        encoding: 'base64',
      }),
    );
    const blobSha = (blob.data as { sha: string }).sha;
    const readBack = await expectCall(
      'GET /repos/{owner}/{repo}/git/blobs/{file_sha}',
      200,
      octokit.rest.git.getBlob({ ...base, file_sha: blobSha }),
    );
    expect(Buffer.from((readBack.data as { content: string }).content, 'base64')).toEqual(Buffer.from([0, 1, 2, 255]));

    const newTree = await expectCall(
      'POST /repos/{owner}/{repo}/git/trees',
      201,
      octokit.rest.git.createTree({
        ...base,
        base_tree: tree,
        tree: [
          { path: 'bin/data.bin', mode: '100644', type: 'blob', sha: blobSha },
          { path: 'notes/hello.txt', mode: '100644', type: 'blob', content: 'hello\n' },
          { path: 'old.txt', mode: '100644', type: 'blob', sha: null },
        ],
      }),
    );
    const treeSha = (newTree.data as { sha: string }).sha;
    expect(await gitIn(repo, ['ls-tree', '-r', '--name-only', treeSha])).toBe(
      ['README.md', 'bin/data.bin', 'dir/x.txt', 'notes/hello.txt'].join('\n'),
    );

    const created = await expectCall(
      'POST /repos/{owner}/{repo}/git/commits',
      201,
      octokit.rest.git.createCommit({
        ...base,
        message: 'api commit',
        tree: treeSha,
        parents: [tip.sha],
        author: { name: 'Bot', email: 'bot@example.com', date: '2024-05-01T12:00:00Z' },
      }),
    );
    const newCommit = created.data as {
      sha: string;
      author: { date: string; name: string };
      parents: { sha: string }[];
    };
    expect(newCommit).toMatchObject({
      author: { name: 'Bot', date: '2024-05-01T12:00:00Z' },
      parents: [{ sha: tip.sha }],
    });

    repo.pushedAt = '2000-01-01T00:00:00Z';
    const moved = await expectCall(
      'PATCH /repos/{owner}/{repo}/git/refs/{ref}',
      200,
      octokit.rest.git.updateRef({ ...base, ref: 'heads/main', sha: newCommit.sha }),
    );
    expect((moved.data as { object: { sha: string } }).object.sha).toBe(newCommit.sha);
    expect(await gitIn(repo, ['rev-parse', 'refs/heads/main'])).toBe(newCommit.sha);
    expect(repo.pushedAt).not.toBe('2000-01-01T00:00:00Z');

    // Going back is not a fast-forward without force.
    const nonFf = await expectCall(
      'PATCH /repos/{owner}/{repo}/git/refs/{ref}',
      422,
      octokit.rest.git.updateRef({ ...base, ref: 'heads/main', sha: tip.sha }),
    );
    expect(message(nonFf)).toBe('Update is not a fast forward');
    await expectCall(
      'PATCH /repos/{owner}/{repo}/git/refs/{ref}',
      200,
      octokit.rest.git.updateRef({ ...base, ref: 'heads/main', sha: tip.sha, force: true }),
    );
    expect(await gitIn(repo, ['rev-parse', 'refs/heads/main'])).toBe(tip.sha);

    const topic = await expectCall(
      'POST /repos/{owner}/{repo}/git/refs',
      201,
      octokit.rest.git.createRef({ ...base, ref: 'refs/heads/topic', sha: newCommit.sha }),
    );
    expect(topic.data).toMatchObject({ ref: 'refs/heads/topic', object: { sha: newCommit.sha } });
    const again = await expectCall(
      'POST /repos/{owner}/{repo}/git/refs',
      422,
      octokit.rest.git.createRef({ ...base, ref: 'refs/heads/topic', sha: newCommit.sha }),
    );
    expect(message(again)).toBe('Reference already exists');
    await expectCall(
      'POST /repos/{owner}/{repo}/git/refs',
      422,
      octokit.rest.git.createRef({ ...base, ref: 'refs/heads/nothing', sha: 'b'.repeat(40) }),
    );
    await expectCall(
      'POST /repos/{owner}/{repo}/git/refs',
      201,
      octokit.rest.git.createRef({ ...base, ref: 'refs/tags/v1', sha: tip.sha }),
    );
    const matching = await expectCall(
      'GET /repos/{owner}/{repo}/git/matching-refs/{ref}',
      200,
      octokit.rest.git.listMatchingRefs({ ...base, ref: 'heads/' }),
    );
    expect((matching.data as { ref: string }[]).map((r) => r.ref)).toEqual(['refs/heads/main', 'refs/heads/topic']);
    const all = await expectCall(
      'GET /repos/{owner}/{repo}/git/matching-refs/{ref}',
      200,
      octokit.rest.git.listMatchingRefs({ ...base, ref: '' }),
    );
    expect((all.data as { ref: string }[]).map((r) => r.ref)).toEqual([
      'refs/heads/main',
      'refs/heads/topic',
      'refs/tags/v1',
    ]);
    await expectCall(
      'DELETE /repos/{owner}/{repo}/git/refs/{ref}',
      204,
      octokit.rest.git.deleteRef({ ...base, ref: 'heads/topic' }),
    );
    const gone = await expectCall(
      'DELETE /repos/{owner}/{repo}/git/refs/{ref}',
      422,
      octokit.rest.git.deleteRef({ ...base, ref: 'heads/topic' }),
    );
    expect(message(gone)).toBe('Reference does not exist');
    const defaultBranch = await expectCall(
      'DELETE /repos/{owner}/{repo}/git/refs/{ref}',
      422,
      octokit.rest.git.deleteRef({ ...base, ref: 'heads/main' }),
    );
    expect(message(defaultBranch)).toBe('Cannot delete the default branch');
    await expectCall(
      'GET /repos/{owner}/{repo}/git/ref/{ref}',
      404,
      octokit.rest.git.getRef({ ...base, ref: 'heads/topic' }),
    );
    await expectCall(
      'GET /repos/{owner}/{repo}/git/commits/{commit_sha}',
      404,
      octokit.rest.git.getCommit({ ...base, commit_sha: 'c'.repeat(40) }),
    );
  });

  it('refuses workflow changes in trees without the workflow scope', async () => {
    const octokit = client(ALICE_NO_WORKFLOW);
    const refused = await expectCall(
      'POST /repos/{owner}/{repo}/git/trees',
      404,
      octokit.rest.git.createTree({
        ...base,
        tree: [{ path: '.github/workflows/x.yml', mode: '100644', type: 'blob', content: 'on: push\n' }],
      }),
    );
    expect(message(refused)).toBe(
      'refusing to allow a Personal Access Token to create or update workflow `.github/workflows/x.yml` without `workflow` scope',
    );
    const bad = await expectCall(
      'POST /repos/{owner}/{repo}/git/trees',
      422,
      octokit.rest.git.createTree({
        ...base,
        tree: [{ path: '../escape', mode: '100644', type: 'blob', content: 'x' }],
      }),
    );
    expect(message(bad)).toBe('tree.path contains a malformed path component');
  });

  it('answers 409 "Git Repository is empty." on an empty repo', async () => {
    const octokit = client(ALICE);
    await expectCall('POST /user/repos', 201, octokit.rest.repos.createForAuthenticatedUser({ name: 'void' }));
    const empty = { owner: 'alice', repo: 'void' };
    const calls: [string, Promise<{ status: number; data: unknown; headers: object }>][] = [
      ['GET /repos/{owner}/{repo}/git/ref/{ref}', octokit.rest.git.getRef({ ...empty, ref: 'heads/main' })],
      [
        'GET /repos/{owner}/{repo}/git/matching-refs/{ref}',
        octokit.rest.git.listMatchingRefs({ ...empty, ref: 'heads' }),
      ],
      ['POST /repos/{owner}/{repo}/git/blobs', octokit.rest.git.createBlob({ ...empty, content: 'x' })],
      [
        'POST /repos/{owner}/{repo}/git/trees',
        octokit.rest.git.createTree({ ...empty, tree: [{ path: 'a', mode: '100644', type: 'blob', content: 'a' }] }),
      ],
      [
        'POST /repos/{owner}/{repo}/git/commits',
        octokit.rest.git.createCommit({ ...empty, message: 'm', tree: '4b825dc642cb6eb9a060e54bf8d69288fbee4904' }),
      ],
      [
        'POST /repos/{owner}/{repo}/git/refs',
        octokit.rest.git.createRef({
          ...empty,
          ref: 'refs/heads/main',
          sha: '4b825dc642cb6eb9a060e54bf8d69288fbee4904',
        }),
      ],
    ];
    for (const [op, call] of calls) {
      const a = await expectCall(op, 409, call);
      expect(a.data).toMatchObject({ message: 'Git Repository is empty.', status: '409' });
    }
  });
});

describe('branches and protection', () => {
  const base = { owner: 'alice', repo: 'guarded' };

  it('lists and gets branches', async () => {
    const octokit = client(ALICE);
    const list = await expectCall('GET /repos/{owner}/{repo}/branches', 200, octokit.rest.repos.listBranches(base));
    expect((list.data as { name: string; protected: boolean }[]).map((b) => [b.name, b.protected])).toEqual([
      ['extra', false],
      ['main', false],
    ]);
    const main = await expectCall(
      'GET /repos/{owner}/{repo}/branches/{branch}',
      200,
      octokit.rest.repos.getBranch({ ...base, branch: 'main' }),
    );
    expect(main.data).toMatchObject({
      name: 'main',
      protected: false,
      commit: { sha: await gitIn(repoState('alice', 'guarded'), ['rev-parse', 'main']) },
    });
    await expectCall(
      'GET /repos/{owner}/{repo}/branches/{branch}',
      404,
      octokit.rest.repos.getBranch({ ...base, branch: 'nope' }),
    );
  });

  it('puts, gets and deletes protection, with the rules endpoint and ref enforcement following', async () => {
    const octokit = client(ALICE);
    const repo = repoState('alice', 'guarded');
    const incomplete = await expectCall(
      'PUT /repos/{owner}/{repo}/branches/{branch}/protection',
      422,
      octokit.request('PUT /repos/{owner}/{repo}/branches/{branch}/protection', {
        ...base,
        branch: 'main',
        enforce_admins: true,
      } as never),
    );
    expect(String(message(incomplete))).toContain('"required_status_checks" wasn\'t supplied.');
    const put = await expectCall(
      'PUT /repos/{owner}/{repo}/branches/{branch}/protection',
      200,
      octokit.rest.repos.updateBranchProtection({
        ...base,
        branch: 'main',
        required_status_checks: { strict: true, contexts: ['ci'] },
        enforce_admins: true,
        required_pull_request_reviews: null,
        restrictions: null,
        allow_force_pushes: false,
        allow_deletions: false,
      }),
    );
    expect(put.data).toMatchObject({
      allow_force_pushes: { enabled: false },
      allow_deletions: { enabled: false },
      enforce_admins: { enabled: true },
    });
    expect(repo.protections.get('main')).toMatchObject({
      allowForcePushes: false,
      allowDeletions: false,
      enforceAdmins: true,
    });
    const got = await expectCall(
      'GET /repos/{owner}/{repo}/branches/{branch}/protection',
      200,
      octokit.rest.repos.getBranchProtection({ ...base, branch: 'main' }),
    );
    expect(got.data).toMatchObject({
      required_status_checks: { strict: true, contexts: ['ci'] },
      allow_force_pushes: { enabled: false },
    });
    const rules = await expectCall(
      'GET /repos/{owner}/{repo}/rules/branches/{branch}',
      200,
      octokit.rest.repos.getBranchRules({ ...base, branch: 'main' }),
    );
    expect((rules.data as { type: string }[]).map((r) => r.type).sort()).toEqual(['deletion', 'non_fast_forward']);
    const listed = await expectCall(
      'GET /repos/{owner}/{repo}/branches',
      200,
      octokit.rest.repos.listBranches({ ...base, protected: true }),
    );
    expect(listed.data).toMatchObject([
      {
        name: 'main',
        protected: true,
        protection: { enabled: true, required_status_checks: { enforcement_level: 'everyone', contexts: ['ci'] } },
      },
    ]);

    // The API's own ref writes obey it: force moves and deletions of main are refused.
    const tip = await gitIn(repo, ['rev-parse', 'main']);
    const side = await octokit.rest.git.createCommit({
      ...base,
      message: 'side',
      tree: await gitIn(repo, ['rev-parse', 'main^{tree}']),
      parents: [],
    });
    const force = await expectCall(
      'PATCH /repos/{owner}/{repo}/git/refs/{ref}',
      422,
      octokit.rest.git.updateRef({ ...base, ref: 'heads/main', sha: side.data.sha, force: true }),
    );
    expect(message(force)).toBe('Cannot force-push to this branch');
    const del = await expectCall(
      'DELETE /repos/{owner}/{repo}/git/refs/{ref}',
      422,
      octokit.rest.git.deleteRef({ ...base, ref: 'heads/main' }),
    );
    expect(message(del)).toBe('Cannot delete this branch');
    expect(await gitIn(repo, ['rev-parse', 'main'])).toBe(tip);

    await expectCall(
      'PUT /repos/{owner}/{repo}/branches/{branch}/protection',
      200,
      octokit.rest.repos.updateBranchProtection({
        ...base,
        branch: 'main',
        required_status_checks: null,
        enforce_admins: null,
        required_pull_request_reviews: null,
        restrictions: null,
        allow_force_pushes: true,
        allow_deletions: true,
      }),
    );
    const relaxed = await expectCall(
      'GET /repos/{owner}/{repo}/rules/branches/{branch}',
      200,
      octokit.rest.repos.getBranchRules({ ...base, branch: 'main' }),
    );
    expect(relaxed.data).toEqual([]);
    await expectCall(
      'DELETE /repos/{owner}/{repo}/branches/{branch}/protection',
      204,
      octokit.rest.repos.deleteBranchProtection({ ...base, branch: 'main' }),
    );
    const none = await expectCall(
      'GET /repos/{owner}/{repo}/branches/{branch}/protection',
      404,
      octokit.rest.repos.getBranchProtection({ ...base, branch: 'main' }),
    );
    expect(message(none)).toBe('Branch not protected');
    expect(repo.protections.has('main')).toBe(false);
    // Only admins may protect.
    const outsider = await expectCall(
      'PUT /repos/{owner}/{repo}/branches/{branch}/protection',
      403,
      client(BOB).rest.repos.updateBranchProtection({
        ...base,
        branch: 'main',
        required_status_checks: null,
        enforce_admins: null,
        required_pull_request_reviews: null,
        restrictions: null,
      }),
    );
    expect(message(outsider)).toBe('Must have admin rights to Repository.');
  });
});

describe('request log', () => {
  it('records GitHub API calls by route pattern and never logs token values', () => {
    const routes = new Set(
      forge.state.requestLog.filter((e) => e.platform === 'github' && e.kind === 'api').map((e) => e.route),
    );
    expect(routes).toContain('GET /repos/:owner/:repo');
    expect(routes).toContain('PUT /repos/:owner/:repo/actions/secrets/:name');
    const text = JSON.stringify(forge.state.requestLog);
    for (const token of [ALICE, ALICE_NO_WORKFLOW, ALICE_PUBLIC, BOB, UNKNOWN]) expect(text).not.toContain(token);
  });
});
