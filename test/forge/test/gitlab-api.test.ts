import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  GitbeakerRequestError,
  Gitlab,
  type BranchSchema,
  type CommitSchema,
  type CondensedNamespaceSchema,
  type ExpandedUserSchema,
  type GroupSchema,
  type NamespaceSchema,
  type PersonalAccessTokenSchema,
  type ProjectSchema,
  type ProjectVariableSchema,
  type ProtectedBranchSchema,
  type RepositoryFileExpandedSchema,
  type SimpleUserSchema,
  type TagSchema,
  type UserSchema,
} from '@gitbeaker/rest';
import { execa } from 'execa';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../../support/temp.js';
import { COUNT_LIMIT, paginate } from '../src/gitlab-pagination.js';
import type { ApiRequest } from '../src/http-kit.js';
import type { SeedSpec } from '../src/seed.js';
import { startForge, type RunningForge } from '../src/server.js';

/**
 * The forge's GitLab REST API, exercised through the real @gitbeaker/rest client and typed with
 * gitbeaker's own schema types. Shapes are asserted field by field (present, right type), error
 * bodies byte for byte where GitLab documents them.
 */

const T = {
  alice: 'glpat-canaryALICEapi0000000',
  aliceRead: 'glpat-canaryALICEreadapi000',
  aliceRepo: 'glpat-canaryALICEreadrepo00',
  aliceExpired: 'glpat-canaryALICEexpired000',
  bob: 'glpat-canaryBOBapi000000000',
  carol: 'glpat-canaryCAROLapi0000000',
};

const seed: SeedSpec = {
  gitlab: {
    users: [
      { login: 'alice', name: 'Alice Liddell', email: 'alice@example.com' },
      { login: 'bob', name: 'Bob Builder', email: 'bob@example.com' },
      { login: 'carol', name: 'Carol Danvers', email: 'carol@example.com' },
    ],
    groups: [
      { path: 'acme', name: 'Acme', visibility: 'private', members: { alice: 50, bob: 30 } },
      { path: 'acme/tools', name: 'Tools', visibility: 'private' },
      { path: 'other', name: 'Other', visibility: 'private', members: { carol: 50 } },
      { path: 'bulk', name: 'Bulk', visibility: 'private', members: { alice: 40 } },
      { path: 'open', name: 'Open', visibility: 'public', members: { carol: 50 } },
    ],
    projects: [
      {
        path: 'acme/widgets',
        name: 'Widgets',
        files: { 'README.md': '# Widgets\n', 'src/a.txt': 'a\n', 'src/b.txt': 'b\n', 'bin/run.sh': 'echo run\n' },
        branches: { 'feature/x': { files: { 'x.txt': 'x\n' } }, 'release/1.0': {} },
        tags: [{ name: 'v0.9' }, { name: 'v1.0', message: 'Release 1.0' }],
      },
      { path: 'acme/tools/hammer', files: { 'README.md': '# Hammer\n' } },
      { path: 'acme/archive', archived: true, files: { 'README.md': 'old\n' } },
      { path: 'alice/personal', visibility: 'private', files: { 'README.md': 'mine\n' } },
      { path: 'alice/empty', visibility: 'private' },
      { path: 'other/secret', visibility: 'private', files: { 'README.md': 'secret\n' } },
      { path: 'other/shared', visibility: 'private', files: { 'README.md': 'shared\n' } },
      { path: 'open/public-thing', visibility: 'public', files: { 'README.md': 'hello\n' } },
      { path: 'bulk/p{n}', count: 250 },
    ],
  },
  tokens: [
    { value: T.alice, platform: 'gitlab', user: 'alice', scopes: ['api'], name: 'alice-api' },
    { value: T.aliceRead, platform: 'gitlab', user: 'alice', scopes: ['read_api'], name: 'alice-read' },
    { value: T.aliceRepo, platform: 'gitlab', user: 'alice', scopes: ['read_repository'], name: 'alice-repo' },
    { value: T.aliceExpired, platform: 'gitlab', user: 'alice', scopes: ['api'], name: 'old', expired: true },
    { value: T.bob, platform: 'gitlab', user: 'bob', scopes: ['api'], name: 'bob-api' },
    { value: T.carol, platform: 'gitlab', user: 'carol', scopes: ['api'], name: 'carol-api' },
  ],
};

let forge: RunningForge;
let web: string;
let api: Gitlab<false>;
let asBob: Gitlab<false>;
let asRead: Gitlab<false>;

const client = (token: string): Gitlab<false> => new Gitlab<false>({ host: web, token });

beforeAll(async () => {
  forge = await startForge({ seed });
  web = forge.urls.gitlab.web;
  api = client(T.alice);
  asBob = client(T.bob);
  asRead = client(T.aliceRead);
  // Sharing is not part of the seed format: share other/shared with acme (Developer).
  const acme = forge.state.gitlabGroups.get('acme')!;
  forge.state.gitlabProject('other/shared')!.sharedWithGroups = [{ groupId: acme.id, accessLevel: 30 }];
});

afterAll(async () => {
  await forge?.close();
});

/** What GitLab answered when gitbeaker threw: status and the `message`/`error` it extracted. */
async function failure(p: Promise<unknown>): Promise<{ status: number; description: string }> {
  try {
    await p;
  } catch (error) {
    if (error instanceof GitbeakerRequestError && error.cause) {
      return { status: error.cause.response.status, description: error.cause.description };
    }
    throw error;
  }
  throw new Error('expected the request to fail');
}

/** A raw request, for exact bodies and headers. */
async function raw(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token) headers['private-token'] = options.token;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${forge.urls.gitlab.api}${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await r.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // raw file contents
  }
  return { status: r.status, body, headers: r.headers };
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

function expectNamespace(ns: CondensedNamespaceSchema, kind: 'group' | 'user', fullPath: string): void {
  expect(ns).toEqual(
    expect.objectContaining({
      id: expect.any(Number),
      name: expect.any(String),
      path: fullPath.split('/').pop(),
      kind,
      full_path: fullPath,
      web_url: expect.any(String),
    }),
  );
}

function expectProject(p: ProjectSchema, fullPath: string): void {
  expect(typeof p.id).toBe('number');
  expect(p.path_with_namespace).toBe(fullPath);
  expect(p.path).toBe(fullPath.split('/').pop());
  expect(typeof p.name).toBe('string');
  expect(typeof p.name_with_namespace).toBe('string');
  expect(p.http_url_to_repo).toBe(`${web}/${fullPath}.git`);
  expect(p.web_url).toBe(`${web}/${fullPath}`);
  expect(typeof p.ssh_url_to_repo).toBe('string');
  expect(p.last_activity_at).toMatch(ISO);
  expect(p.created_at).toMatch(ISO);
  expect(typeof p.default_branch).toBe('string');
  expect(['private', 'internal', 'public']).toContain(p.visibility);
  expect(typeof p.archived).toBe('boolean');
  expect(typeof p.empty_repo).toBe('boolean');
  expect(typeof p.creator_id).toBe('number');
  expect(p._links.self).toBe(`${web}/api/v4/projects/${p.id}`);
  expectNamespace(
    p.namespace,
    fullPath.split('/').length > 2 || !['alice', 'bob', 'carol'].includes(fullPath.split('/')[0]!) ? 'group' : 'user',
    fullPath.split('/').slice(0, -1).join('/'),
  );
}

function expectGroup(g: GroupSchema, fullPath: string): void {
  expect(g).toEqual(
    expect.objectContaining({
      id: expect.any(Number),
      name: expect.any(String),
      path: fullPath.split('/').pop(),
      full_path: fullPath,
      full_name: expect.any(String),
      web_url: `${web}/groups/${fullPath}`,
      visibility: expect.stringMatching(/^(private|internal|public)$/),
      created_at: expect.stringMatching(ISO),
      description: expect.any(String),
    }),
  );
  expect(g.parent_id === null || typeof g.parent_id === 'number').toBe(true);
}

function expectCommit(c: CommitSchema): void {
  expect(c.id).toMatch(/^[0-9a-f]{40}$/);
  expect(c.short_id).toBe(c.id.slice(0, 8));
  expect(typeof c.title).toBe('string');
  expect(typeof c.message).toBe('string');
  expect(typeof c.author_name).toBe('string');
  expect(typeof c.author_email).toBe('string');
  expect(c.authored_date).toMatch(ISO);
  expect(c.committed_date).toMatch(ISO);
  expect(c.created_at).toMatch(ISO);
  expect(Array.isArray(c.parent_ids)).toBe(true);
  expect(c.web_url).toContain(`/-/commit/${c.id}`);
}

function expectProtectedBranch(pb: ProtectedBranchSchema): void {
  expect(typeof pb.id).toBe('number');
  expect(typeof pb.name).toBe('string');
  expect(typeof pb.allow_force_push).toBe('boolean');
  expect(typeof pb.code_owner_approval_required).toBe('boolean');
  for (const list of [pb.push_access_levels, pb.merge_access_levels, pb.unprotect_access_levels]) {
    expect(list).toHaveLength(1);
    expect(list![0]).toEqual(
      expect.objectContaining({
        id: expect.any(Number),
        access_level: expect.any(Number),
        access_level_description: expect.any(String),
      }),
    );
  }
}

function expectVariable(v: ProjectVariableSchema): void {
  expect(typeof v.key).toBe('string');
  expect(['env_var', 'file']).toContain(v.variable_type);
  expect(typeof v.protected).toBe('boolean');
  expect(typeof v.masked).toBe('boolean');
  expect(typeof v['hidden']).toBe('boolean');
  expect(typeof v['raw']).toBe('boolean');
  expect(typeof v.environment_scope).toBe('string');
  expect('description' in v).toBe(true);
  expect(v.value === null || typeof v.value === 'string').toBe(true);
}

// -----------------------------------------------------------------------------------------------

describe('users, tokens and namespaces', () => {
  it('GET /user returns the expanded current user', async () => {
    const me: ExpandedUserSchema = await api.Users.showCurrentUser();
    expect(me).toEqual(
      expect.objectContaining({
        id: expect.any(Number),
        username: 'alice',
        name: 'Alice Liddell',
        email: 'alice@example.com',
        state: 'active',
        web_url: `${web}/alice`,
        avatar_url: expect.any(String),
        can_create_group: true,
        can_create_project: true,
      }),
    );
  });

  it('GET /users?username= finds one user or none, GET /users/:id shows one', async () => {
    const found: SimpleUserSchema[] = await api.Users.all({ username: 'bob' });
    expect(found).toHaveLength(1);
    expect(found[0]).toEqual(
      expect.objectContaining({ id: expect.any(Number), username: 'bob', name: 'Bob Builder', state: 'active' }),
    );
    expect(await api.Users.all({ username: 'nobody' })).toEqual([]);
    const bob: UserSchema = await api.Users.show(found[0]!.id);
    expect(bob.username).toBe('bob');
    expect(bob.created_at).toMatch(ISO);
    expect(await failure(api.Users.show(987654))).toEqual({ status: 404, description: '404 User Not Found' });
  });

  it('GET /personal_access_tokens/self describes the presented token, whatever its scope', async () => {
    const self: PersonalAccessTokenSchema = await api.PersonalAccessTokens.show();
    expect(self).toEqual(
      expect.objectContaining({
        id: expect.any(Number),
        name: 'alice-api',
        scopes: ['api'],
        active: true,
        revoked: false,
      }),
    );
    const me = await api.Users.showCurrentUser();
    expect(self.user_id).toBe(me.id);
    expect('expires_at' in self).toBe(true);
    const viaRepoToken = await client(T.aliceRepo).PersonalAccessTokens.show();
    expect(viaRepoToken.scopes).toEqual(['read_repository']);
  });

  it('GET /namespaces/:id takes an id or an encoded path, and hides what the user is not in', async () => {
    const tools: NamespaceSchema = await api.Namespaces.show('acme/tools');
    expect(tools).toEqual(
      expect.objectContaining({ kind: 'group', full_path: 'acme/tools', path: 'tools', parent_id: expect.any(Number) }),
    );
    const byId = await api.Namespaces.show(tools.id);
    expect(byId.full_path).toBe('acme/tools');
    const me = await api.Users.showCurrentUser();
    const mine = await api.Namespaces.show(me.id);
    expect(mine).toEqual(expect.objectContaining({ kind: 'user', full_path: 'alice', path: 'alice' }));
    expect(await failure(api.Namespaces.show('other'))).toEqual({
      status: 404,
      description: '404 Namespace Not Found',
    });
    const searched = await api.Namespaces.all({ search: 'acme' });
    expect(searched.map((n) => n.full_path).sort()).toEqual(['acme', 'acme/tools']);
  });
});

describe('groups', () => {
  it('GET /groups/:id by id and by encoded path', async () => {
    const acme: GroupSchema = await api.Groups.show('acme');
    expectGroup(acme, 'acme');
    expect(acme.parent_id).toBeNull();
    const tools: GroupSchema = await api.Groups.show('acme/tools');
    expectGroup(tools, 'acme/tools');
    expect(tools.parent_id).toBe(acme.id);
    expect(tools.full_name).toBe('Acme / Tools');
    expect((await api.Groups.show(tools.id)).full_path).toBe('acme/tools');
    expect(await failure(api.Groups.show('other'))).toEqual({ status: 404, description: '404 Group Not Found' });
  });

  it('POST /groups creates a subgroup with parent_id, refuses duplicates and non-maintainers', async () => {
    const acme = await api.Groups.show('acme');
    const created = await api.Groups.create('Gadgets', 'gadgets', {
      parentId: acme.id,
      visibility: 'private',
      showExpanded: true,
    });
    expect(created.status).toBe(201);
    expectGroup(created.data, 'acme/gadgets');
    expect(created.data.parent_id).toBe(acme.id);

    const dup = await raw('POST', '/groups', {
      token: T.alice,
      body: { name: 'Gadgets', path: 'gadgets', parent_id: acme.id },
    });
    expect(dup).toMatchObject({ status: 400, body: { message: { path: ['has already been taken'] } } });

    expect(await failure(asBob.Groups.create('Bobs', 'bobs', { parentId: acme.id }))).toEqual({
      status: 403,
      description: '403 Forbidden',
    });
    const tooOpen = await raw('POST', '/groups', {
      token: T.alice,
      body: { name: 'Loud', path: 'loud', parent_id: acme.id, visibility: 'public' },
    });
    expect(tooOpen.status).toBe(400);
    expect(tooOpen.body).toEqual({
      message: { visibility_level: ['public is not allowed since the parent group has a private visibility.'] },
    });
    expect((await raw('POST', '/groups', { token: T.alice, body: { name: 'x' } })).body).toEqual({
      error: 'path is missing',
    });

    const top = await api.Groups.create('Fresh Top', 'fresh-top');
    expect(top.parent_id).toBeNull();
  });

  it('GET /groups/:id/subgroups lists direct children; GET /groups filters by access', async () => {
    const subgroups = await api.Groups.allSubgroups('acme');
    expect(subgroups.map((g) => g.full_path).sort()).toEqual(['acme/gadgets', 'acme/tools']);
    const mine = await api.Groups.all();
    expect(mine.map((g) => g.full_path)).not.toContain('other');
    expect(mine.map((g) => g.full_path)).toContain('acme/tools');
    const owned = await api.Groups.all({ minAccessLevel: 50 });
    expect(owned.map((g) => g.full_path)).not.toContain('bulk');
    expect(owned.map((g) => g.full_path)).toContain('acme');
    const available = await api.Groups.all({ allAvailable: true });
    expect(available.map((g) => g.full_path)).toContain('open');
    expect(available.map((g) => g.full_path)).not.toContain('other');
    const bobs = await asBob.Groups.all();
    expect(bobs.map((g) => g.full_path)).not.toContain('bulk');
  });

  it('GET /groups/:id/projects honours include_subgroups, with_shared and archived', async () => {
    // AllGroupProjectsOptions: includeSubgroups, withShared, archived (overloads make a plain object easiest).
    const paths = async (o: Record<string, boolean> = {}): Promise<string[]> =>
      (await api.Groups.allProjects('acme', o as never)).map((p) => p.path_with_namespace).sort();
    expect(await paths()).toEqual(['acme/archive', 'acme/widgets', 'other/shared']);
    expect(await paths({ includeSubgroups: true })).toEqual([
      'acme/archive',
      'acme/tools/hammer',
      'acme/widgets',
      'other/shared',
    ]);
    expect(await paths({ withShared: false })).toEqual(['acme/archive', 'acme/widgets']);
    expect(await paths({ archived: false, withShared: false })).toEqual(['acme/widgets']);
    expect(await paths({ archived: true })).toEqual(['acme/archive']);
    const simple = (await api.Groups.allProjects('acme', { simple: true } as never)) as Record<string, unknown>[];
    expect(simple[0]).toHaveProperty('path_with_namespace');
    expect(simple[0]).not.toHaveProperty('_links');
  });
});

describe('projects', () => {
  it('GET /projects/:id by id and by URL-encoded path, in GitLab’s shape', async () => {
    const p: ProjectSchema = await api.Projects.show('acme/widgets');
    expectProject(p, 'acme/widgets');
    expect(p.default_branch).toBe('main');
    expect(p.empty_repo).toBe(false);
    expect(p.archived).toBe(false);
    expect(p.namespace.kind).toBe('group');
    expect(p.permissions.group_access?.access_level).toBe(50);
    expect(p).not.toHaveProperty('forked_from_project');
    expect(p).not.toHaveProperty('owner');
    const byId = await api.Projects.show(p.id);
    expect(byId.path_with_namespace).toBe('acme/widgets');
    const nested = await api.Projects.show('acme/tools/hammer');
    expectProject(nested, 'acme/tools/hammer');
    const rawEncoded = await raw('GET', '/projects/acme%2Ftools%2Fhammer', { token: T.alice });
    expect((rawEncoded.body as ProjectSchema).id).toBe(nested.id);

    const personal = await api.Projects.show('alice/personal');
    expectProject(personal, 'alice/personal');
    expect(personal.namespace.kind).toBe('user');
    expect(personal.owner).toEqual(expect.objectContaining({ id: expect.any(Number), name: 'Alice Liddell' }));
    expect((await api.Projects.show('alice/empty')).empty_repo).toBe(true);
  });

  it('shows forked_from_project when the project is a fork', async () => {
    const source = await api.Projects.show('acme/widgets');
    forge.state.gitlabProject('alice/personal')!.forkedFromId = source.id;
    try {
      const fork = await api.Projects.show('alice/personal');
      expect(fork['forked_from_project']).toEqual(
        expect.objectContaining({
          id: source.id,
          path_with_namespace: 'acme/widgets',
          http_url_to_repo: `${web}/acme/widgets.git`,
        }),
      );
    } finally {
      forge.state.gitlabProject('alice/personal')!.forkedFromId = null;
    }
  });

  it('answers 404 Project Not Found for missing and for invisible projects alike', async () => {
    const expected = { status: 404, body: { message: '404 Project Not Found' } };
    expect(await raw('GET', '/projects/other%2Fsecret', { token: T.alice })).toMatchObject(expected);
    expect(await raw('GET', '/projects/nope%2Fnothing', { token: T.alice })).toMatchObject(expected);
    expect(await raw('GET', '/projects/999999', { token: T.alice })).toMatchObject(expected);
    expect(await raw('GET', '/no/such/route', { token: T.alice })).toMatchObject({
      status: 404,
      body: { error: '404 Not Found' },
    });
  });

  it('POST /projects creates in a group with README and default branch, protected against force push', async () => {
    const acme = await api.Groups.show('acme');
    expect(
      await failure(api.Projects.create({ name: 'Too Open', namespaceId: acme.id, visibility: 'internal' })),
    ).toEqual({
      status: 400,
      description: JSON.stringify({ visibility_level: ['internal is not allowed in a private group.'] }),
    });
    const before = Date.now();
    const res = await api.Projects.create({
      name: 'New Thing',
      namespaceId: acme.id,
      visibility: 'private',
      initializeWithReadme: true,
      defaultBranch: 'trunk',
      description: 'made by the API',
      showExpanded: true,
    });
    expect(res.status).toBe(201);
    const p = res.data;
    expectProject(p, 'acme/new-thing');
    expect(p).toMatchObject({ name: 'New Thing', visibility: 'private', default_branch: 'trunk', empty_repo: false });
    expect(p.description).toBe('made by the API');
    expect(Date.parse(p.last_activity_at)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    const rules = await api.ProtectedBranches.all(p.id);
    expect(rules.map((r) => [r.name, r.allow_force_push])).toEqual([['trunk', false]]);
    expect(rules[0]!.push_access_levels![0]!.access_level).toBe(40);
    const readme = await api.RepositoryFiles.show(p.id, 'README.md', 'trunk');
    expect(Buffer.from(readme.content, 'base64').toString()).toContain('New Thing');
  });

  it('POST /projects in the personal namespace by path only; an empty project has no protection yet', async () => {
    const p = await api.Projects.create({ path: 'scratch' });
    expectProject(p, 'alice/scratch');
    expect(p.name).toBe('scratch');
    expect(p.visibility).toBe('private');
    expect(p.empty_repo).toBe(true);
    expect(await api.ProtectedBranches.all(p.id)).toEqual([]);
  });

  it('POST /projects refuses duplicates, bad paths and namespaces the user cannot create in', async () => {
    const dup = await raw('POST', '/projects', {
      token: T.alice,
      body: { name: 'Widgets', path: 'widgets', namespace_id: 'acme' },
    });
    expect(dup.status).toBe(400);
    expect(dup.body).toEqual({ message: { name: ['has already been taken'], path: ['has already been taken'] } });
    const pathOnly = await raw('POST', '/projects', {
      token: T.alice,
      body: { name: 'Something Else', path: 'widgets', namespace_id: 'acme' },
    });
    expect(pathOnly.body).toEqual({ message: { path: ['has already been taken'] } });
    const acme = await api.Groups.show('acme');
    const notAllowed = await failure(asBob.Projects.create({ name: 'bobs', namespaceId: acme.id }));
    expect(notAllowed).toEqual({ status: 400, description: JSON.stringify({ namespace: ['is not valid'] }) });
    const noName = await raw('POST', '/projects', { token: T.alice, body: {} });
    expect(noName).toMatchObject({
      status: 400,
      body: { error: 'name, path are missing, at least one parameter must be provided' },
    });
    const badPath = await raw('POST', '/projects', { token: T.alice, body: { path: '-bad' } });
    expect(badPath.status).toBe(400);
    expect((badPath.body as { message: { path: string[] } }).message.path[0]).toMatch(/can contain only letters/);
    expect(
      (await raw('POST', '/projects', { token: T.alice, body: { path: 'q', namespace_id: 424242 } })).body,
    ).toEqual({
      message: '404 Namespace Not Found',
    });
  });

  it('GET /projects filters by membership, owned, search and archived; anonymous sees public only', async () => {
    const membership: ProjectSchema[] = await api.Projects.all({ membership: true, perPage: 100, maxPages: 10 });
    const paths = membership.map((p) => p.path_with_namespace);
    expect(paths).toContain('acme/widgets');
    expect(paths).toContain('other/shared');
    expect(paths).not.toContain('other/secret');
    const owned: ProjectSchema[] = await api.Projects.all({ owned: true, perPage: 100, maxPages: 10 });
    expect(owned.map((p) => p.path_with_namespace)).toContain('alice/personal');
    expect(owned.map((p) => p.path_with_namespace)).toContain('acme/widgets');
    expect(owned.map((p) => p.path_with_namespace)).not.toContain('bulk/p1');
    const searched: ProjectSchema[] = await api.Projects.all({ search: 'hammer' });
    expect(searched.map((p) => p.path_with_namespace)).toEqual(['acme/tools/hammer']);
    const archived: ProjectSchema[] = await api.Projects.all({ archived: true });
    expect(archived.map((p) => p.path_with_namespace)).toEqual(['acme/archive']);
    const anonymous = await raw('GET', '/projects');
    expect((anonymous.body as ProjectSchema[]).map((p) => p.path_with_namespace)).toEqual(['open/public-thing']);
    expect(await raw('GET', '/projects/acme%2Fwidgets')).toMatchObject({ status: 404 });
  });

  it('GET /users/:id/projects lists a personal namespace by id or username', async () => {
    const me = await api.Users.showCurrentUser();
    const byId: ProjectSchema[] = await api.Users.allProjects(me.id);
    const byName: ProjectSchema[] = await api.Projects.all({ userId: 'alice' });
    expect(byId.map((p) => p.path_with_namespace).sort()).toEqual(byName.map((p) => p.path_with_namespace).sort());
    expect(byId.map((p) => p.path_with_namespace)).toContain('alice/personal');
    expect(byId.every((p) => p.namespace.kind === 'user')).toBe(true);
    expect(await failure(api.Users.allProjects(987654))).toEqual({ status: 404, description: '404 User Not Found' });
  });
});

describe('pagination', () => {
  it('pages 250 group projects with gitbeaker maxPages and showExpanded', async () => {
    const two = await api.Groups.allProjects('bulk', {
      perPage: 100,
      maxPages: 2,
      showExpanded: true,
      pagination: 'offset',
    });
    expect(two.data).toHaveLength(200);
    expect(two.paginationInfo).toEqual({ total: 250, next: 3, current: 2, previous: 1, perPage: 100, totalPages: 3 });
    const all: ProjectSchema[] = await api.Groups.allProjects('bulk', { perPage: 100 });
    expect(all).toHaveLength(250);
    expect(new Set(all.map((p) => p.id)).size).toBe(250);
    // Default order is created_at desc, ties broken by id: newest first.
    expect(all[0]!.id).toBeGreaterThan(all[249]!.id);
    const byName: ProjectSchema[] = await api.Groups.allProjects('bulk', {
      perPage: 100,
      orderBy: 'name',
      sort: 'asc',
    });
    expect(byName.map((p) => p.name)).toEqual([...byName.map((p) => p.name)].sort((a, b) => a.localeCompare(b, 'en')));
  });

  it('sends GitLab’s offset headers and Link, and clamps per_page to 100', async () => {
    const last = await raw('GET', '/groups/bulk/projects?per_page=100&page=3&simple=true', { token: T.alice });
    expect(last.status).toBe(200);
    expect(last.body).toHaveLength(50);
    const h = last.headers;
    expect([h.get('x-page'), h.get('x-per-page'), h.get('x-next-page'), h.get('x-prev-page')]).toEqual([
      '3',
      '100',
      '',
      '2',
    ]);
    expect([h.get('x-total'), h.get('x-total-pages')]).toEqual(['250', '3']);
    const link = h.get('link') ?? '';
    const base = `${web}/api/v4/groups/bulk/projects`;
    expect(link).toContain(`<${base}?page=2&per_page=100&simple=true>; rel="prev"`);
    expect(link).toContain(`<${base}?page=1&per_page=100&simple=true>; rel="first"`);
    expect(link).toContain(`<${base}?page=3&per_page=100&simple=true>; rel="last"`);
    expect(link).not.toContain('rel="next"');
    const clamped = await raw('GET', '/groups/bulk/projects?per_page=500&simple=true', { token: T.alice });
    expect(clamped.body).toHaveLength(100);
    expect(clamped.headers.get('x-per-page')).toBe('100');
    expect(clamped.headers.get('x-next-page')).toBe('2');
    const dflt = await raw('GET', '/groups/bulk/projects?simple=true', { token: T.alice });
    expect(dflt.body).toHaveLength(20);
  });

  it('offers keyset pagination on /projects (order_by=id)', async () => {
    const offset: ProjectSchema[] = await api.Projects.all({ perPage: 100 });
    const keyset: ProjectSchema[] = await api.Projects.all({
      pagination: 'keyset',
      orderBy: 'id',
      sort: 'asc',
      perPage: 100,
    });
    expect(keyset.map((p) => p.id)).toEqual(offset.map((p) => p.id).sort((a, b) => a - b));
    const first = await raw('GET', '/projects?pagination=keyset&order_by=id&sort=asc&per_page=100&simple=true', {
      token: T.alice,
    });
    expect(first.headers.get('x-total')).toBeNull();
    expect(first.headers.get('link')).toMatch(/id_after=\d+.*rel="next"/);
  });

  it('leaves out x-total, x-total-pages and rel="last" above 10,000 results', async () => {
    const items = Array.from({ length: COUNT_LIMIT + 1 }, (_, i) => i);
    const req = {
      query: new URLSearchParams('per_page=100&page=2'),
      path: '/projects',
      baseUrl: 'http://127.0.0.1:1',
    } as unknown as ApiRequest;
    const r = await paginate(req, items, (slice) => slice);
    expect(r.body).toHaveLength(100);
    expect(r.headers?.['x-total']).toBeUndefined();
    expect(r.headers?.['x-total-pages']).toBeUndefined();
    expect(r.headers?.['x-next-page']).toBe('3');
    expect(r.headers?.['link']).not.toContain('rel="last"');
    const small = await paginate(req, items.slice(0, COUNT_LIMIT), (slice) => slice);
    expect(small.headers?.['x-total']).toBe(String(COUNT_LIMIT));
  });
});

describe('protected branches', () => {
  it('lists the default protection, protects a wildcard, edits and unprotects it', async () => {
    const initial = await api.ProtectedBranches.all('acme/widgets');
    expect(initial.map((r) => r.name)).toEqual(['main']);
    initial.forEach(expectProtectedBranch);

    const created = await api.ProtectedBranches.create('acme/widgets', 'release/*', {
      pushAccessLevel: 40,
      mergeAccessLevel: 30,
      allowForcePush: false,
      showExpanded: true,
    });
    expect(created.status).toBe(201);
    expectProtectedBranch(created.data);
    expect(created.data).toMatchObject({ name: 'release/*', allow_force_push: false });
    expect(created.data.merge_access_levels![0]).toMatchObject({
      access_level: 30,
      access_level_description: 'Developers + Maintainers',
    });

    const dup = await raw('POST', '/projects/acme%2Fwidgets/protected_branches?name=release%2F*', { token: T.alice });
    expect(dup).toMatchObject({ status: 409, body: { message: "Protected branch 'release/*' already exists" } });

    const shown = await api.ProtectedBranches.show('acme/widgets', 'release/*');
    expect(shown.id).toBe(created.data.id);
    const branch: BranchSchema = await api.Branches.show('acme/widgets', 'release/1.0');
    expect(branch.protected).toBe(true);

    const edited = await api.ProtectedBranches.edit('acme/widgets', 'release/*', {
      allowForcePush: true,
      codeOwnerApprovalRequired: true,
      showExpanded: true,
    });
    expect(edited.status).toBe(200);
    expect(edited.data).toMatchObject({ allow_force_push: true, code_owner_approval_required: true });
    expect(
      forge.state.gitlabProject('acme/widgets')!.protectedBranches.find((r) => r.name === 'release/*')!.allowForcePush,
    ).toBe(true);

    const viaAllowed = await api.ProtectedBranches.create('acme/widgets', 'hotfix/*', {
      allowedToPush: [{ accessLevel: 30 }],
    });
    expect(viaAllowed.push_access_levels![0]!.access_level).toBe(30);
    await api.ProtectedBranches.remove('acme/widgets', 'hotfix/*');
    expect(await failure(asBob.ProtectedBranches.create('acme/widgets', 'hotfix/*'))).toEqual({
      status: 403,
      description: '403 Forbidden',
    });

    const removed = await api.ProtectedBranches.remove('acme/widgets', 'release/*', { showExpanded: true });
    expect(removed.status).toBe(204);
    expect(
      await raw('GET', '/projects/acme%2Fwidgets/protected_branches/release%2F*', { token: T.alice }),
    ).toMatchObject({
      status: 404,
      body: { message: '404 Not found' },
    });
    expect((await api.Branches.show('acme/widgets', 'release/1.0')).protected).toBe(false);
  });
});

describe('branches and tags', () => {
  it('lists and shows branches with their commit and flags', async () => {
    const branches = await api.Branches.all('acme/widgets');
    expect(branches.map((b) => b.name)).toEqual(['feature/x', 'main', 'release/1.0']);
    const main = branches.find((b) => b.name === 'main')!;
    expect(main).toMatchObject({ default: true, protected: true, merged: false, can_push: true });
    expectCommit(main.commit as CommitSchema);
    expect(branches.find((b) => b.name === 'release/1.0')).toMatchObject({ default: false, merged: true });
    expect(branches.find((b) => b.name === 'feature/x')).toMatchObject({ merged: false });
    expect((await asBob.Branches.show('acme/widgets', 'main')).can_push).toBe(false);
    expect(await failure(api.Branches.show('acme/widgets', 'nope'))).toEqual({
      status: 404,
      description: '404 Branch Not Found',
    });
  });

  it('creates and deletes branches', async () => {
    const main = await api.Branches.show('acme/widgets', 'main');
    const created = await api.Branches.create('acme/widgets', 'topic/new', 'main', { showExpanded: true });
    expect(created.status).toBe(201);
    expect(created.data).toMatchObject({ name: 'topic/new', default: false, protected: false });
    expect(created.data.commit.id).toBe(main.commit.id);
    expect(await failure(api.Branches.create('acme/widgets', 'topic/new', 'main'))).toEqual({
      status: 400,
      description: 'Branch already exists',
    });
    expect(await failure(api.Branches.create('acme/widgets', 'topic/bad', 'no-such-ref'))).toEqual({
      status: 400,
      description: 'Invalid reference name: no-such-ref',
    });
    expect((await api.Branches.remove('acme/widgets', 'topic/new', { showExpanded: true })).status).toBe(204);
    expect(await failure(api.Branches.remove('acme/widgets', 'main'))).toEqual({
      status: 400,
      description: 'The default branch of a project cannot be deleted.',
    });
  });

  it('lists tags, annotated and lightweight', async () => {
    const tags: TagSchema[] = await api.Tags.all('acme/widgets');
    expect(tags.map((t) => t.name).sort()).toEqual(['v0.9', 'v1.0']);
    const annotated = tags.find((t) => t.name === 'v1.0')!;
    const light = tags.find((t) => t.name === 'v0.9')!;
    expect(annotated.message).toBe('Release 1.0');
    expect(annotated.target).not.toBe(annotated.commit.id);
    expect(light.target).toBe(light.commit.id);
    expectCommit(annotated.commit);
    expect(typeof annotated.protected).toBe('boolean');
  });
});

describe('CI/CD variables', () => {
  const P = 'acme/widgets';

  it('creates plain, masked, hidden, protected, raw and file variables', async () => {
    const plain = await api.ProjectVariables.create(P, 'PLAIN', 'hello world', { showExpanded: true });
    expect(plain.status).toBe(201);
    expectVariable(plain.data);
    expect(plain.data).toMatchObject({
      key: 'PLAIN',
      value: 'hello world',
      variable_type: 'env_var',
      protected: false,
      masked: false,
      hidden: false,
      raw: false,
      environment_scope: '*',
      description: null,
    });

    const masked = await api.ProjectVariables.create(P, 'TOKEN', 'glpat-abc_DEF.123~x@y:z', {
      masked: true,
      protected: true,
    });
    expect(masked).toMatchObject({ masked: true, protected: true, hidden: false, value: 'glpat-abc_DEF.123~x@y:z' });

    const hidden = await api.ProjectVariables.create(P, 'HIDDEN', 'c2VjcmV0LXZhbHVl', { masked_and_hidden: true });
    expect(hidden).toMatchObject({ masked: true, hidden: true, value: null });
    const shownHidden = await api.ProjectVariables.show(P, 'HIDDEN');
    expect(shownHidden.value).toBeNull();
    expect(shownHidden['hidden']).toBe(true);
    expect(forge.state.gitlabProject(P)!.variables.find((v) => v.key === 'HIDDEN')!.value).toBe('c2VjcmV0LXZhbHVl');

    // Raw variables may be masked with characters outside the Base64 alphabet, not with whitespace.
    const rawMasked = await api.ProjectVariables.create(P, 'RAW_SECRET', 'p@$$!word#{}', { masked: true, raw: true });
    expect(rawMasked).toMatchObject({ masked: true, raw: true, value: 'p@$$!word#{}' });

    const file = await api.ProjectVariables.create(P, 'KUBECONFIG', 'apiVersion: v1\nkind: Config\n', {
      variableType: 'file',
      description: 'cluster',
    });
    expect(file).toMatchObject({ variable_type: 'file', description: 'cluster' });

    const all = await api.ProjectVariables.all(P);
    expect(all.map((v) => v.key).sort()).toEqual(['HIDDEN', 'KUBECONFIG', 'PLAIN', 'RAW_SECRET', 'TOKEN']);
    all.forEach(expectVariable);
  });

  it('rejects values that cannot be masked, bad keys and duplicates with GitLab’s bodies', async () => {
    const invalid = { status: 400, body: { message: { value: ['is invalid'] } } };
    for (const value of ['short', 'has space in it', 'dollar$sign1', 'line\nbreak12', 'pipe|char99']) {
      expect(
        await raw('POST', `/projects/${encodeURIComponent(P)}/variables`, {
          token: T.alice,
          body: { key: 'M', value, masked: true },
        }),
      ).toMatchObject(invalid);
    }
    expect(
      await raw('POST', `/projects/${encodeURIComponent(P)}/variables`, {
        token: T.alice,
        body: { key: 'M', value: 'has space in it', masked: true, raw: true },
      }),
    ).toMatchObject(invalid);
    expect(
      await raw('POST', `/projects/${encodeURIComponent(P)}/variables`, {
        token: T.alice,
        body: { key: 'M', value: 'short', masked_and_hidden: true },
      }),
    ).toMatchObject(invalid);
    expect(await failure(api.ProjectVariables.create(P, 'PLAIN', 'again'))).toEqual({
      status: 400,
      description: JSON.stringify({ key: ['(PLAIN) has already been taken'] }),
    });
    expect(await failure(api.ProjectVariables.create(P, 'BAD-KEY', 'v'))).toEqual({
      status: 400,
      description: JSON.stringify({ key: ["can contain only letters, digits and '_'."] }),
    });
    expect(await failure(api.ProjectVariables.create(P, 'K'.repeat(256), 'v'))).toEqual({
      status: 400,
      description: JSON.stringify({ key: ['is too long (maximum is 255 characters)'] }),
    });
    expect(await failure(asBob.ProjectVariables.all(P))).toEqual({ status: 403, description: '403 Forbidden' });
  });

  it('updates, scopes by environment with filter[environment_scope], and deletes', async () => {
    const updated = await api.ProjectVariables.edit(P, 'PLAIN', 'new value', { protected: true } as never);
    expect(updated).toMatchObject({ key: 'PLAIN', value: 'new value', protected: true });
    expect(await failure(api.ProjectVariables.edit(P, 'PLAIN', 'bad value', { masked: true } as never))).toEqual({
      status: 400,
      description: JSON.stringify({ value: ['is invalid'] }),
    });

    await api.ProjectVariables.create(P, 'SCOPED', 'prod', { environmentScope: 'production' });
    await api.ProjectVariables.create(P, 'SCOPED', 'stage', { environmentScope: 'staging' });
    expect(await raw('GET', `/projects/${encodeURIComponent(P)}/variables/SCOPED`, { token: T.alice })).toMatchObject({
      status: 409,
      body: {
        message: "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'",
      },
    });
    const staging = await api.ProjectVariables.show(P, 'SCOPED', { filter: { environment_scope: 'staging' } });
    expect(staging.value).toBe('stage');
    const edited = await api.ProjectVariables.edit(P, 'SCOPED', 'stage2', { filter: { environment_scope: 'staging' } });
    expect(edited).toMatchObject({ value: 'stage2', environment_scope: 'staging' });
    const del = await api.ProjectVariables.remove(P, 'SCOPED', {
      filter: { environment_scope: 'production' },
      showExpanded: true,
    });
    expect(del.status).toBe(204);
    expect((await api.ProjectVariables.show(P, 'SCOPED')).value).toBe('stage2');
    await api.ProjectVariables.remove(P, 'SCOPED');
    expect(await failure(api.ProjectVariables.show(P, 'SCOPED'))).toEqual({
      status: 404,
      description: '404 Variable Not Found',
    });
  });
});

describe('repository files', () => {
  const P = 'acme/widgets';

  it('shows a file with base64 content, blob id and last commit, and its raw form', async () => {
    const f: RepositoryFileExpandedSchema = await api.RepositoryFiles.show(P, 'src/a.txt', 'main');
    expect(f).toMatchObject({ file_name: 'a.txt', file_path: 'src/a.txt', encoding: 'base64', ref: 'main', size: 2 });
    expect(Buffer.from(f.content, 'base64').toString()).toBe('a\n');
    expect(f.blob_id).toMatch(/^[0-9a-f]{40}$/);
    expect(f.last_commit_id).toMatch(/^[0-9a-f]{40}$/);
    expect(f.commit_id).toBe((await api.Branches.show(P, 'main')).commit.id);
    expect(f.content_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await api.RepositoryFiles.showRaw(P, 'src/a.txt', 'main')).toBe('a\n');
    expect(await failure(api.RepositoryFiles.show(P, 'nope.txt', 'main'))).toEqual({
      status: 404,
      description: '404 File Not Found',
    });
    expect(await failure(api.RepositoryFiles.show(P, 'src/a.txt', 'no-such-ref'))).toEqual({
      status: 404,
      description: '404 Commit Not Found',
    });
    expect(
      (await raw('GET', `/projects/${encodeURIComponent(P)}/repository/files/src%2Fa.txt`, { token: T.alice })).body,
    ).toEqual({
      error: 'ref is missing',
    });
  });

  it('creates, updates and deletes files with GitLab’s errors', async () => {
    // Back-date the activity so the write's move is visible without waiting for the clock.
    const before = '2020-01-01T00:00:00Z';
    forge.state.gitlabProject(P)!.lastActivityAt = before;
    const created = await api.RepositoryFiles.create(P, 'docs/new.md', 'feature/x', '# new\n', 'Add docs', {
      showExpanded: true,
    });
    expect(created.status).toBe(201);
    expect(created.data).toEqual({ file_path: 'docs/new.md', branch: 'feature/x' });
    expect(Date.parse(forge.state.gitlabProject(P)!.lastActivityAt)).toBeGreaterThan(Date.parse(before));
    expect(await failure(api.RepositoryFiles.create(P, 'docs/new.md', 'feature/x', 'again', 'Again'))).toEqual({
      status: 400,
      description: 'A file with this name already exists',
    });
    const stale = (await api.RepositoryFiles.show(P, 'docs/new.md', 'feature/x')).last_commit_id;
    const edited = await api.RepositoryFiles.edit(
      P,
      'docs/new.md',
      'feature/x',
      Buffer.from('# edited\n').toString('base64'),
      'Edit docs',
      {
        encoding: 'base64',
        lastCommitId: stale,
      },
    );
    expect(edited).toEqual({ file_path: 'docs/new.md', branch: 'feature/x' });
    expect(await api.RepositoryFiles.showRaw(P, 'docs/new.md', 'feature/x')).toBe('# edited\n');
    expect(
      await failure(api.RepositoryFiles.edit(P, 'docs/new.md', 'feature/x', 'x', 'Edit', { lastCommitId: stale })),
    ).toEqual({
      status: 400,
      description: 'You are attempting to update a file that has changed since you started editing it.',
    });
    expect(await failure(api.RepositoryFiles.edit(P, 'docs/none.md', 'feature/x', 'x', 'Edit'))).toEqual({
      status: 400,
      description: "A file with this name doesn't exist",
    });
    const removed = await api.RepositoryFiles.remove(P, 'docs/new.md', 'feature/x', 'Remove docs', {
      showExpanded: true,
    });
    expect(removed.status).toBe(204);
    expect(await failure(api.RepositoryFiles.remove(P, 'docs/new.md', 'feature/x', 'Again'))).toEqual({
      status: 400,
      description: "A file with this name doesn't exist",
    });
  });
});

describe('commits API', () => {
  const P = 'acme/widgets';

  it('commits several actions at once, and the result is what a clone over HTTP sees', async () => {
    const tip = (await api.Branches.show(P, 'main')).commit.id;
    const lastA = (await api.RepositoryFiles.show(P, 'src/a.txt', 'main')).last_commit_id;
    const res = await api.Commits.create(
      P,
      'main',
      'Several changes\n\nIn one commit.',
      [
        { action: 'create', filePath: 'new/file.txt', content: 'created\n' },
        {
          action: 'create',
          filePath: 'bin/data.bin',
          content: Buffer.from([0, 1, 2, 255]).toString('base64'),
          encoding: 'base64',
        },
        { action: 'update', filePath: 'src/a.txt', content: 'updated a\n', lastCommitId: lastA },
        { action: 'delete', filePath: 'src/b.txt' },
        { action: 'move', filePath: 'README.markdown', previousPath: 'README.md' },
        { action: 'chmod', filePath: 'bin/run.sh', execute_filemode: true },
      ],
      { authorName: 'Ann Author', authorEmail: 'ann@example.com', showExpanded: true },
    );
    expect(res.status).toBe(201);
    const c = res.data;
    expectCommit(c);
    expect(c.parent_ids).toEqual([tip]);
    expect(c.title).toBe('Several changes');
    expect(c.message).toBe('Several changes\n\nIn one commit.');
    expect(c).toMatchObject({
      author_name: 'Ann Author',
      author_email: 'ann@example.com',
      committer_name: 'Alice Liddell',
    });
    expect(c['stats']).toEqual({
      additions: expect.any(Number),
      deletions: expect.any(Number),
      total: expect.any(Number),
    });
    expect(c['project_id']).toBe((await api.Projects.show(P)).id);

    const shown = await api.Commits.show(P, c.id);
    expect(shown.id).toBe(c.id);
    const log = await api.Commits.all(P, { refName: 'main', perPage: 2 });
    expect(log.map((x) => x.id)).toEqual([c.id, tip]);

    // A real clone through the forge's git over HTTP sees exactly this tree.
    const dir = await tempDir('forge-gl-clone-');
    try {
      const auth = Buffer.from(`oauth2:${T.alice}`).toString('base64');
      await execa('git', ['clone', '-q', `${web}/${P}.git`, join(dir.path, 'w')], {
        env: {
          GIT_TERMINAL_PROMPT: '0',
          GIT_CONFIG_COUNT: '1',
          GIT_CONFIG_KEY_0: `http.${web}/.extraheader`,
          GIT_CONFIG_VALUE_0: `Authorization: Basic ${auth}`,
        },
      });
      const w = join(dir.path, 'w');
      const head = (await execa('git', ['rev-parse', 'HEAD'], { cwd: w })).stdout.trim();
      expect(head).toBe(c.id);
      expect(await readFile(join(w, 'new/file.txt'), 'utf8')).toBe('created\n');
      expect([...(await readFile(join(w, 'bin/data.bin')))]).toEqual([0, 1, 2, 255]);
      expect(await readFile(join(w, 'src/a.txt'), 'utf8')).toBe('updated a\n');
      await expect(stat(join(w, 'src/b.txt'))).rejects.toThrow();
      await expect(stat(join(w, 'README.md'))).rejects.toThrow();
      expect(await readFile(join(w, 'README.markdown'), 'utf8')).toBe('# Widgets\n');
      expect((await stat(join(w, 'bin/run.sh'))).mode & 0o111).not.toBe(0);
    } finally {
      await dir.cleanup();
    }
  });

  it('answers GitLab’s messages for bad actions and branches', async () => {
    const fail = (branch: string, actions: Parameters<typeof api.Commits.create>[3], options = {}) =>
      failure(api.Commits.create(P, branch, 'msg', actions, options));
    expect(await fail('main', [{ action: 'create', filePath: 'new/file.txt', content: 'x' }])).toEqual({
      status: 400,
      description: 'A file with this name already exists',
    });
    expect(await fail('main', [{ action: 'update', filePath: 'missing.txt', content: 'x' }])).toEqual({
      status: 400,
      description: "A file with this name doesn't exist",
    });
    expect(await fail('main', [{ action: 'delete', filePath: 'missing.txt' }])).toEqual({
      status: 400,
      description: "A file with this name doesn't exist",
    });
    expect(
      await fail('main', [{ action: 'update', filePath: 'src/a.txt', content: 'x', lastCommitId: '0'.repeat(40) }]),
    ).toEqual({
      status: 400,
      description: 'The file has changed since you started editing it: src/a.txt',
    });
    expect(await fail('no-such-branch', [{ action: 'create', filePath: 'n.txt', content: 'x' }])).toEqual({
      status: 400,
      description: 'You can only create or edit files when you are on a branch',
    });
    expect(
      await fail('x', [{ action: 'create', filePath: 'n.txt', content: 'x' }], {
        startBranch: 'main',
        startSha: 'abc1234',
      }),
    ).toEqual({
      status: 400,
      description: "You can't pass both start_branch and start_sha",
    });
    expect(
      await fail('feature/x', [{ action: 'create', filePath: 'n.txt', content: 'x' }], { startBranch: 'main' }),
    ).toEqual({
      status: 400,
      description: "A branch called 'feature/x' already exists. Switch to that branch in order to make changes",
    });
    // The default branch is protected against force pushes: `force` may not rewrite it.
    expect(
      await fail('main', [{ action: 'create', filePath: 'f.txt', content: 'x' }], {
        startBranch: 'feature/x',
        force: true,
      }),
    ).toEqual({
      status: 400,
      description: 'You are not allowed to force push code to a protected branch on this project.',
    });
    // Developers may not push to a branch only Maintainers push to, but may to an open one.
    expect(
      await failure(asBob.Commits.create(P, 'main', 'msg', [{ action: 'create', filePath: 'bob.txt', content: 'x' }])),
    ).toEqual({
      status: 400,
      description: 'You are not allowed to push into this branch',
    });
    const bobs = await asBob.Commits.create(P, 'feature/x', 'Bob was here', [
      { action: 'create', filePath: 'bob.txt', content: 'x' },
    ]);
    expect(bobs.author_name).toBe('Bob Builder');
    expect(
      await failure(
        api.Commits.create('acme/archive', 'main', 'm', [{ action: 'create', filePath: 'a', content: 'x' }]),
      ),
    ).toEqual({
      status: 403,
      description: '403 Forbidden',
    });
  });

  it('starts a new branch from start_branch or start_sha, and force-updates an open branch', async () => {
    const main = (await api.Branches.show(P, 'main')).commit.id;
    const fromBranch = await api.Commits.create(
      P,
      'topic/a',
      'from branch',
      [{ action: 'create', filePath: 'a.txt', content: 'a' }],
      {
        startBranch: 'main',
      },
    );
    expect(fromBranch.parent_ids).toEqual([main]);
    const fromSha = await api.Commits.create(
      P,
      'topic/b',
      'from sha',
      [{ action: 'create', filePath: 'b.txt', content: 'b' }],
      {
        startSha: main,
      },
    );
    expect(fromSha.parent_ids).toEqual([main]);
    const forced = await api.Commits.create(
      P,
      'topic/a',
      'forced',
      [{ action: 'create', filePath: 'c.txt', content: 'c' }],
      {
        startBranch: 'topic/b',
        force: true,
      },
    );
    expect(forced.parent_ids).toEqual([fromSha.id]);
    expect((await api.Branches.show(P, 'topic/a')).commit.id).toBe(forced.id);
  });

  it('creates the first branch of an empty project, which becomes its protected default', async () => {
    const p = await api.Projects.create({ path: 'first-commit', defaultBranch: 'main' });
    expect(p.empty_repo).toBe(true);
    const c = await api.Commits.create(p.id, 'main', 'Initial', [
      { action: 'create', filePath: 'README.md', content: '# first\n' },
    ]);
    expect(c.parent_ids).toEqual([]);
    const after = await api.Projects.show(p.id);
    expect(after).toMatchObject({ empty_repo: false, default_branch: 'main' });
    const rules = await api.ProtectedBranches.all(p.id);
    expect(rules.map((r) => [r.name, r.allow_force_push])).toEqual([['main', false]]);
    expect(await api.RepositoryFiles.showRaw(p.id, 'README.md', 'main')).toBe('# first\n');
  });
});

describe('authentication and token scopes', () => {
  it('accepts PRIVATE-TOKEN, Authorization: Bearer and ?private_token=', async () => {
    expect((await raw('GET', '/user', { token: T.alice })).status).toBe(200);
    expect((await raw('GET', '/user', { headers: { authorization: `Bearer ${T.alice}` } })).status).toBe(200);
    expect((await raw('GET', `/user?private_token=${T.alice}`)).status).toBe(200);
    const bearer = new Gitlab<false>({ host: web, oauthToken: T.alice });
    expect((await bearer.Users.showCurrentUser()).username).toBe('alice');
  });

  it('401s unknown and expired tokens and anonymous calls that need a user', async () => {
    expect(await raw('GET', '/user', { token: 'glpat-canary-unknown' })).toMatchObject({
      status: 401,
      body: { message: '401 Unauthorized' },
    });
    expect(await raw('GET', '/user')).toMatchObject({ status: 401, body: { message: '401 Unauthorized' } });
    expect(await raw('POST', '/projects', { body: { path: 'x' } })).toMatchObject({
      status: 401,
      body: { message: '401 Unauthorized' },
    });
    const expired = await raw('GET', '/projects/acme%2Fwidgets', { token: T.aliceExpired });
    expect(expired.status).toBe(401);
    expect(expired.body).toEqual({
      error: 'invalid_token',
      error_description: 'Token is expired. You can either do re-authorization or token refresh.',
    });
    expect(expired.headers.get('www-authenticate')).toMatch(/^Bearer realm="The API", error="invalid_token"/);
    expect((await failure(client(T.aliceExpired).Users.showCurrentUser())).status).toBe(401);
  });

  it('lets read_api read but not write; read_repository only reads files', async () => {
    const p = await asRead.Projects.show('acme/widgets');
    expect(p.path_with_namespace).toBe('acme/widgets');
    const denied = await raw('POST', '/projects', { token: T.aliceRead, body: { path: 'nope' } });
    expect(denied.status).toBe(403);
    expect(denied.body).toEqual({
      error: 'insufficient_scope',
      error_description: 'The request requires higher privileges than provided by the access token.',
      scope: 'api read_api',
    });
    expect(
      await failure(
        asRead.Commits.create('acme/widgets', 'main', 'm', [{ action: 'create', filePath: 'z', content: 'z' }]),
      ),
    ).toEqual({
      status: 403,
      description: 'insufficient_scope',
    });
    expect(forge.state.gitlabProject('alice/nope')).toBeUndefined();

    const repoOnly = client(T.aliceRepo);
    expect(await repoOnly.RepositoryFiles.showRaw('acme/widgets', 'src/a.txt', 'main')).toBe(
      await api.RepositoryFiles.showRaw('acme/widgets', 'src/a.txt', 'main'),
    );
    const noProject = await raw('GET', '/projects/acme%2Fwidgets', { token: T.aliceRepo });
    expect(noProject).toMatchObject({ status: 403, body: { error: 'insufficient_scope', scope: 'api read_api' } });
    const noUser = await raw('GET', '/user', { token: T.aliceRepo });
    expect(noUser).toMatchObject({ status: 403, body: { scope: 'api read_api read_user' } });
  });

  it('never echoes the token in a response', async () => {
    const responses = await Promise.all([
      raw('GET', '/user', { token: T.alice }),
      raw('GET', '/personal_access_tokens/self', { token: T.alice }),
      raw('GET', '/user', { token: T.aliceExpired }),
    ]);
    for (const r of responses) expect(JSON.stringify(r.body)).not.toContain('canary');
  });
});
