import sodium from 'libsodium-wrappers';
import type { ApiResponse, Router } from './http-kit.js';
import { RepoFactoryError, createGithubRepo } from './repo-factory.js';
import {
  ZERO_SHA,
  commitChanges,
  commitTree,
  git,
  isEmptyRepo,
  listRefs,
  resolveRef,
  writeBlob,
  type GitIdentity,
} from './repo-writer.js';
import type { ForgeContext } from './server.js';
import { now, type GithubRepo } from './state.js';
import {
  GhError,
  GithubRateLimiter,
  githubRoutes,
  hasScope,
  notFound,
  notSupplied,
  paginate,
  type GhCall,
} from './github-kit.js';
import {
  TreeEditError,
  buildTree,
  githubBase64,
  isAncestor,
  isSha,
  isWorkflowPath,
  lsTree,
  objectType,
  readBlob,
  readCommit,
  resolveCommit,
  resolveRefish,
  resolveTree,
  validTreePath,
  workflowPathsIntroduced,
  type TreeEdit,
} from './github-git.js';
import {
  contentBase,
  contentItemFromEntry,
  fileCommitJson,
  findAccount,
  gitCommitJson,
  orgFull,
  orgSimple,
  privateUser,
  protectionJson,
  publicUser,
  repoApi,
  repoJson,
  repoRole,
  restCommitJson,
} from './github-shapes.js';

/**
 * The GitHub REST API refbridge uses, under /api/v3 as on GitHub Enterprise: users and orgs, repo
 * listing and creation, Actions secrets (libsodium sealed boxes) and variables, the contents and
 * Git Data APIs, branches and classic branch protection. Shapes, status codes and error texts
 * follow GitHub; test/forge/test/github-api.test.ts checks them against @octokit/openapi.
 */

// Keyed by the state, which the running forge shares with the context it was built from.
const limiters = new WeakMap<object, GithubRateLimiter>();

/** The forge's GitHub rate-limit bookkeeping; tests may lower the limit and turn enforcement on. */
export function githubRateLimiter(ctx: Pick<ForgeContext, 'state'>): GithubRateLimiter {
  let limiter = limiters.get(ctx.state);
  if (!limiter) {
    limiter = new GithubRateLimiter();
    limiters.set(ctx.state, limiter);
  }
  return limiter;
}

const D = {
  user: 'https://docs.github.com/rest/users/users#get-the-authenticated-user',
  getUser: 'https://docs.github.com/rest/users/users#get-a-user',
  getOrg: 'https://docs.github.com/rest/orgs/orgs#get-an-organization',
  rateLimit: 'https://docs.github.com/rest/rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user',
  userOrgs: 'https://docs.github.com/rest/orgs/orgs#list-organizations-for-the-authenticated-user',
  userRepos: 'https://docs.github.com/rest/repos/repos#list-repositories-for-the-authenticated-user',
  createUserRepo: 'https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user',
  orgRepos: 'https://docs.github.com/rest/repos/repos#list-organization-repositories',
  createOrgRepo: 'https://docs.github.com/rest/repos/repos#create-an-organization-repository',
  reposOfUser: 'https://docs.github.com/rest/repos/repos#list-repositories-for-a-user',
  getRepo: 'https://docs.github.com/rest/repos/repos#get-a-repository',
  publicKey: 'https://docs.github.com/rest/actions/secrets#get-a-repository-public-key',
  listSecrets: 'https://docs.github.com/rest/actions/secrets#list-repository-secrets',
  getSecret: 'https://docs.github.com/rest/actions/secrets#get-a-repository-secret',
  putSecret: 'https://docs.github.com/rest/actions/secrets#create-or-update-a-repository-secret',
  deleteSecret: 'https://docs.github.com/rest/actions/secrets#delete-a-repository-secret',
  listVariables: 'https://docs.github.com/rest/actions/variables#list-repository-variables',
  createVariable: 'https://docs.github.com/rest/actions/variables#create-a-repository-variable',
  getVariable: 'https://docs.github.com/rest/actions/variables#get-a-repository-variable',
  updateVariable: 'https://docs.github.com/rest/actions/variables#update-a-repository-variable',
  deleteVariable: 'https://docs.github.com/rest/actions/variables#delete-a-repository-variable',
  getContent: 'https://docs.github.com/rest/repos/contents#get-repository-content',
  putContent: 'https://docs.github.com/rest/repos/contents#create-or-update-file-contents',
  deleteContent: 'https://docs.github.com/rest/repos/contents#delete-a-file',
  getRef: 'https://docs.github.com/rest/git/refs#get-a-reference',
  matchingRefs: 'https://docs.github.com/rest/git/refs#list-matching-references',
  createRef: 'https://docs.github.com/rest/git/refs#create-a-reference',
  updateRef: 'https://docs.github.com/rest/git/refs#update-a-reference',
  deleteRef: 'https://docs.github.com/rest/git/refs#delete-a-reference',
  getCommit: 'https://docs.github.com/rest/git/commits#get-a-commit-object',
  createCommit: 'https://docs.github.com/rest/git/commits#create-a-commit',
  getTree: 'https://docs.github.com/rest/git/trees#get-a-tree',
  createTree: 'https://docs.github.com/rest/git/trees#create-a-tree',
  createBlob: 'https://docs.github.com/rest/git/blobs#create-a-blob',
  getBlob: 'https://docs.github.com/rest/git/blobs#get-a-blob',
  listBranches: 'https://docs.github.com/rest/branches/branches#list-branches',
  getBranch: 'https://docs.github.com/rest/branches/branches#get-a-branch',
  getProtection: 'https://docs.github.com/rest/branches/branch-protection#get-branch-protection',
  putProtection: 'https://docs.github.com/rest/branches/branch-protection#update-branch-protection',
  deleteProtection: 'https://docs.github.com/rest/branches/branch-protection#delete-branch-protection',
  branchRules: 'https://docs.github.com/rest/repos/rules#get-rules-for-a-branch',
} as const;

const ORG_SCOPES = 'admin:org, read:org, repo, user, write:org';

/** The refusal GitHub gives (on pushes and, with 404, on API writes) without the `workflow` scope. */
export function workflowRefusal(path: string): string {
  return `refusing to allow a Personal Access Token to create or update workflow \`${path}\` without \`workflow\` scope`;
}

// ---------------------------------------------------------------------------------------------
// Access helpers

interface RepoAccess {
  /** Needs push rights (and `repo`, or `public_repo` on a public repo). */
  write?: boolean;
  /** Needs admin rights and the `repo` scope (secrets, variables, protection). */
  admin?: boolean;
}

/** Finds a repo the caller may see; GitHub answers 404 (not 403) for what you may not see. */
function loadRepo(call: GhCall, access: RepoAccess = {}): GithubRepo {
  const repo = call.state.githubRepo(call.req.params.owner ?? '', call.req.params.repo ?? '');
  if (!repo) throw notFound();
  const role = repoRole(call.state, repo, call.user?.login);
  if (repo.private && (role === 'none' || !hasScope(call, 'repo'))) throw notFound();
  if (access.write || access.admin) {
    if (!call.user) throw new GhError(401, 'Requires authentication');
    if (role === 'pull' || role === 'none') {
      if (access.admin) throw new GhError(403, 'Must have admin rights to Repository.');
      throw notFound();
    }
    const scoped = access.admin
      ? hasScope(call, 'repo')
      : hasScope(call, 'repo') || (!repo.private && hasScope(call, 'public_repo'));
    if (!scoped) throw notFound();
    if (access.admin && role !== 'admin') throw new GhError(403, 'Must have admin rights to Repository.');
  }
  return repo;
}

function assertWritable(repo: GithubRepo): void {
  if (repo.archived) throw new GhError(403, 'Repository was archived so is read-only.');
}

async function assertNotEmpty(repo: GithubRepo): Promise<void> {
  if (await isEmptyRepo(repo.gitDir)) throw new GhError(409, 'Git Repository is empty.');
}

function touchPushed(repo: GithubRepo): void {
  const t = now();
  repo.pushedAt = t;
  repo.updatedAt = t;
}

function requireWorkflowScope(call: GhCall, paths: string[]): void {
  const first = paths.find(isWorkflowPath);
  if (first !== undefined && !hasScope(call, 'workflow')) throw new GhError(404, workflowRefusal(first));
}

function str(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  return typeof v === 'string' ? v : undefined;
}

function identityFrom(value: unknown, field: string): GitIdentity | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object')
    throw new GhError(422, `Invalid request.\n\nFor '${field}', ${JSON.stringify(value)} is not an object.`);
  const v = value as Record<string, unknown>;
  if (typeof v.name !== 'string') throw notSupplied('name');
  if (typeof v.email !== 'string') throw notSupplied('email');
  if (v.date !== undefined && (typeof v.date !== 'string' || Number.isNaN(Date.parse(v.date)))) {
    throw new GhError(422, `Invalid request.\n\n${JSON.stringify(v.date)} is not a valid date-time.`);
  }
  return { name: v.name, email: v.email, ...(typeof v.date === 'string' ? { date: v.date } : {}) };
}

function callerIdentity(call: GhCall): GitIdentity {
  const user = call.user!;
  return {
    name: user.name || user.login,
    email: user.email || `${user.id}+${user.login}@users.noreply.${new URL(call.web).hostname}`,
  };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse => ({
  status,
  body,
  headers,
});

// ---------------------------------------------------------------------------------------------
// Routes

export function registerGithubApi(router: Router, ctx: ForgeContext): void {
  const route = githubRoutes(router, githubRateLimiter(ctx));
  registerAccountRoutes(route, ctx);
  registerRepoRoutes(route, ctx);
  registerSecretRoutes(route);
  registerVariableRoutes(route);
  registerContentRoutes(route);
  registerGitDataRoutes(route);
  registerBranchRoutes(route);
}

type Route = ReturnType<typeof githubRoutes>;

function registerAccountRoutes(route: Route, ctx: ForgeContext): void {
  route('GET', '/user', { docs: D.user, auth: true }, (call) => json(200, privateUser(call, call.user!)));

  route('GET', '/users/:username', { docs: D.getUser }, (call) => {
    const account = findAccount(call.state, call.req.params.username ?? '');
    if (!account) throw notFound();
    return json(200, publicUser(call, account));
  });

  route('GET', '/orgs/:org', { docs: D.getOrg, accepted: ORG_SCOPES }, (call) => {
    const account = findAccount(call.state, call.req.params.org ?? '');
    if (account?.kind !== 'org') throw notFound();
    return json(200, orgFull(call, account.org));
  });

  route('GET', '/user/orgs', { docs: D.userOrgs, auth: true, accepted: ORG_SCOPES }, (call) => {
    // Without an org-reading scope GitHub lists only what the token may act on: nothing here.
    const visible = hasScope(call, 'read:org', 'write:org', 'admin:org', 'user');
    const login = call.user!.login.toLowerCase();
    const orgs = visible
      ? [...call.state.githubOrgs.values()].filter((o) => o.members.some((m) => m.toLowerCase() === login))
      : [];
    orgs.sort((a, b) => a.id - b.id);
    const page = paginate(call, orgs);
    return json(
      200,
      page.items.map((o) => orgSimple(call, o)),
      page.headers,
    );
  });

  route('GET', '/rate_limit', { docs: D.rateLimit, free: true }, (call) => {
    const limiter = githubRateLimiter(ctx);
    const { limit, bucket } = limiter.bucket(call.user?.login);
    const core = { limit, used: bucket.used, remaining: Math.max(0, limit - bucket.used), reset: bucket.reset };
    const other = (l: number) => ({ limit: l, used: 0, remaining: l, reset: bucket.reset });
    return json(200, {
      resources: {
        core,
        search: other(call.user ? 30 : 10),
        graphql: other(call.user ? 5000 : 0),
        integration_manifest: other(5000),
        code_search: other(call.user ? 10 : 0),
      },
      rate: core,
    });
  });
}

function sortRepos(repos: GithubRepo[], sort: string, direction: string | null): GithubRepo[] {
  const dir = direction === 'asc' || direction === 'desc' ? direction : sort === 'full_name' ? 'asc' : 'desc';
  const key = (r: GithubRepo): string =>
    sort === 'created'
      ? r.createdAt
      : sort === 'updated'
        ? r.updatedAt
        : sort === 'pushed'
          ? (r.pushedAt ?? r.createdAt)
          : `${r.owner}/${r.name}`.toLowerCase();
  const sorted = [...repos].sort((a, b) => {
    const c = key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a.id - b.id;
    return dir === 'asc' ? c : -c;
  });
  return sorted;
}

function isOrgMember(call: GhCall, orgLogin: string): boolean {
  if (!call.user) return false;
  const account = findAccount(call.state, orgLogin);
  const login = call.user.login.toLowerCase();
  return account?.kind === 'org' && account.org.members.some((m) => m.toLowerCase() === login);
}

function listResponse(call: GhCall, repos: GithubRepo[]): ApiResponse {
  const page = paginate(call, repos);
  return json(
    200,
    page.items.map((r) => repoJson(call, r)),
    page.headers,
  );
}

const REPO_NAME_RE = /^[A-Za-z0-9._-]+$/;

async function createRepo(call: GhCall, ctx: ForgeContext, owner: string, docs: string): Promise<ApiResponse> {
  const body = call.body;
  const failed = (error: Record<string, unknown>): GhError =>
    new GhError(422, 'Repository creation failed.', { errors: [error] }, docs);
  const rawName = str(body, 'name');
  if (rawName === undefined || rawName.trim() === '')
    throw failed({ resource: 'Repository', code: 'missing_field', field: 'name' });
  // GitHub turns runs of unsupported characters into '-'; '.' and '..' are reserved.
  const name = rawName.trim().replace(/[^A-Za-z0-9._-]+/g, '-');
  if (!REPO_NAME_RE.test(name) || name === '.' || name === '..' || name.toLowerCase().endsWith('.git')) {
    throw failed({ resource: 'Repository', code: 'custom', field: 'name', message: 'name is invalid' });
  }
  const visibilityRaw = str(body, 'visibility');
  if (visibilityRaw !== undefined && !['public', 'private', 'internal'].includes(visibilityRaw)) {
    throw new GhError(
      422,
      `Invalid request.\n\n${JSON.stringify(visibilityRaw)} is not a member of ["public", "private", "internal"].`,
      {},
      docs,
    );
  }
  const account = findAccount(call.state, owner);
  if (visibilityRaw === 'internal' && account?.kind !== 'org') {
    throw failed({
      resource: 'Repository',
      code: 'custom',
      field: 'visibility',
      message: 'visibility can only be internal for organization owned repositories',
    });
  }
  const visibility = (visibilityRaw ?? (body.private === true ? 'private' : 'public')) as GithubRepo['visibility'];
  const isPrivate = visibility !== 'public';
  // Creating a private repo needs `repo`; a public one `public_repo` or `repo`. Classic tokens are told 404.
  if (!hasScope(call, 'repo') && !(visibility === 'public' && hasScope(call, 'public_repo')))
    throw new GhError(404, 'Not Found', {}, docs);
  if (call.state.githubRepo(owner, name)) {
    throw failed({
      resource: 'Repository',
      code: 'custom',
      field: 'name',
      message: 'name already exists on this account',
    });
  }
  const description = str(body, 'description');
  let repo: GithubRepo;
  try {
    repo = await createGithubRepo(ctx, {
      owner: account?.kind === 'org' ? account.org.login : account?.kind === 'user' ? account.user.login : owner,
      name,
      private: isPrivate,
      visibility,
      ...(description !== undefined ? { description } : {}),
      autoInit: body.auto_init === true,
      author: callerIdentity(call),
    });
  } catch (error) {
    if (error instanceof RepoFactoryError && error.code === 'exists') {
      throw failed({
        resource: 'Repository',
        code: 'custom',
        field: 'name',
        message: 'name already exists on this account',
      });
    }
    if (error instanceof RepoFactoryError && error.code === 'invalid-name') {
      throw failed({ resource: 'Repository', code: 'custom', field: 'name', message: 'name is invalid' });
    }
    throw error;
  }
  return json(201, repoJson(call, repo), { location: repoApi(call, repo) });
}

function registerRepoRoutes(route: Route, ctx: ForgeContext): void {
  route('GET', '/user/repos', { docs: D.userRepos, auth: true }, (call) => {
    const q = call.req.query;
    const type = q.get('type');
    const affiliationRaw = q.get('affiliation');
    const visibility = q.get('visibility') ?? 'all';
    if (type !== null && (affiliationRaw !== null || q.get('visibility') !== null)) {
      throw new GhError(422, 'If you specify visibility or affiliation, you cannot specify type.', {
        errors: [{ resource: 'Search', field: 'q', code: 'invalid' }],
      });
    }
    if (!['all', 'public', 'private'].includes(visibility)) {
      throw new GhError(422, 'Validation Failed', {
        errors: [{ resource: 'Repository', field: 'visibility', code: 'invalid' }],
      });
    }
    const affiliation = new Set(
      (affiliationRaw ?? 'owner,collaborator,organization_member').split(',').map((s) => s.trim()),
    );
    const login = call.user!.login.toLowerCase();
    const canSeePrivate = hasScope(call, 'repo');
    const repos = [...call.state.githubRepos.values()].filter((r) => {
      const owned = r.ownerType === 'User' && r.owner.toLowerCase() === login;
      const member = r.ownerType === 'Organization' && isOrgMember(call, r.owner);
      if (r.private && !canSeePrivate) return false;
      if (type !== null) {
        if (type === 'owner') return owned;
        if (type === 'member') return member;
        if (type === 'public') return (owned || member) && !r.private;
        if (type === 'private') return (owned || member) && r.private;
        return owned || member;
      }
      if (visibility === 'public' && r.private) return false;
      if (visibility === 'private' && !r.private) return false;
      return (affiliation.has('owner') && owned) || (affiliation.has('organization_member') && member);
    });
    return listResponse(call, sortRepos(repos, q.get('sort') ?? 'full_name', q.get('direction')));
  });

  route('GET', '/orgs/:org/repos', { docs: D.orgRepos, accepted: 'repo' }, (call) => {
    const account = findAccount(call.state, call.req.params.org ?? '');
    if (account?.kind !== 'org') throw notFound();
    const type = call.req.query.get('type') ?? 'all';
    const member = isOrgMember(call, account.org.login) && hasScope(call, 'repo');
    const repos = [...call.state.githubRepos.values()].filter((r) => {
      if (r.owner.toLowerCase() !== account.org.login.toLowerCase()) return false;
      if (r.private && !member) return false;
      if (type === 'public') return !r.private;
      if (type === 'private') return r.private;
      if (type === 'forks') return r.fork;
      if (type === 'sources') return !r.fork;
      return true;
    });
    return listResponse(
      call,
      sortRepos(repos, call.req.query.get('sort') ?? 'created', call.req.query.get('direction')),
    );
  });

  route('GET', '/users/:username/repos', { docs: D.reposOfUser }, (call) => {
    const account = findAccount(call.state, call.req.params.username ?? '');
    if (!account) throw notFound();
    const login = (account.kind === 'user' ? account.user.login : account.org.login).toLowerCase();
    const type = call.req.query.get('type') ?? 'owner';
    // Only public repos, as GitHub documents; `member` repos are not modelled beyond org ownership.
    const repos = [...call.state.githubRepos.values()].filter(
      (r) => !r.private && type !== 'member' && r.owner.toLowerCase() === login,
    );
    return listResponse(
      call,
      sortRepos(repos, call.req.query.get('sort') ?? 'full_name', call.req.query.get('direction')),
    );
  });

  route('POST', '/user/repos', { docs: D.createUserRepo, auth: true, accepted: 'public_repo, repo' }, (call) =>
    createRepo(call, ctx, call.user!.login, D.createUserRepo),
  );

  route('POST', '/orgs/:org/repos', { docs: D.createOrgRepo, auth: true, accepted: 'public_repo, repo' }, (call) => {
    const account = findAccount(call.state, call.req.params.org ?? '');
    if (account?.kind !== 'org') throw notFound();
    if (!isOrgMember(call, account.org.login)) throw notFound();
    return createRepo(call, ctx, account.org.login, D.createOrgRepo);
  });

  route('GET', '/repos/:owner/:repo', { docs: D.getRepo, accepted: 'repo' }, (call) =>
    json(200, repoJson(call, loadRepo(call))),
  );
}

// ---------------------------------------------------------------------------------------------
// Actions secrets and variables

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$/;

/** Secret and variable names are case-insensitive; GitHub stores them upper-cased. */
function keyOf<T>(map: Map<string, T>, name: string): string | undefined {
  const upper = name.toUpperCase();
  if (map.has(upper)) return upper;
  for (const key of map.keys()) if (key.toUpperCase() === upper) return key;
  return undefined;
}

function validEnvName(name: string): boolean {
  return ENV_NAME_RE.test(name) && !name.toUpperCase().startsWith('GITHUB_');
}

function registerSecretRoutes(route: Route): void {
  route('GET', '/repos/:owner/:repo/actions/secrets/public-key', { docs: D.publicKey, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call);
    if (!call.user) throw new GhError(401, 'Requires authentication');
    return json(200, { key_id: repo.secretKey.keyId, key: repo.secretKey.publicKey });
  });

  route('GET', '/repos/:owner/:repo/actions/secrets', { docs: D.listSecrets, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call, { admin: true });
    const all = [...repo.secrets.values()].sort((a, b) => a.name.localeCompare(b.name));
    const page = paginate(call, all);
    return json(
      200,
      {
        total_count: all.length,
        secrets: page.items.map((s) => ({ name: s.name, created_at: s.createdAt, updated_at: s.updatedAt })),
      },
      page.headers,
    );
  });

  route('GET', '/repos/:owner/:repo/actions/secrets/:name', { docs: D.getSecret, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call, { admin: true });
    const secret = repo.secrets.get(keyOf(repo.secrets, call.req.params.name ?? '') ?? '');
    if (!secret) throw notFound();
    return json(200, { name: secret.name, created_at: secret.createdAt, updated_at: secret.updatedAt });
  });

  route('PUT', '/repos/:owner/:repo/actions/secrets/:name', { docs: D.putSecret, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call, { admin: true });
    const name = (call.req.params.name ?? '').toUpperCase();
    if (!validEnvName(name)) throw new GhError(422, 'Failed to add secret. Name is invalid.');
    const encrypted = call.body.encrypted_value;
    const keyId = call.body.key_id;
    if (encrypted === undefined) throw notSupplied('encrypted_value');
    if (keyId === undefined) throw notSupplied('key_id');
    if (typeof encrypted !== 'string' || !BASE64_RE.test(encrypted)) {
      throw new GhError(
        422,
        `Invalid request.\n\n${JSON.stringify(encrypted)} does not match ${BASE64_RE.toString()}.`,
      );
    }
    const improper = (): GhError =>
      new GhError(422, 'Bad request - validation failed due to an improperly encrypted secret');
    if (typeof keyId !== 'string' || keyId !== repo.secretKey.keyId) throw improper();
    await sodium.ready;
    let decrypted: string;
    try {
      const opened = sodium.crypto_box_seal_open(
        Buffer.from(encrypted, 'base64'),
        Buffer.from(repo.secretKey.publicKey, 'base64'),
        Buffer.from(repo.secretKey.privateKey, 'base64'),
      );
      decrypted = Buffer.from(opened).toString('utf8');
    } catch {
      throw improper();
    }
    const existingKey = keyOf(repo.secrets, name);
    const existing = repo.secrets.get(existingKey ?? '');
    if (existingKey !== undefined) repo.secrets.delete(existingKey);
    const t = now();
    repo.secrets.set(name, {
      name,
      encryptedValue: encrypted,
      keyId,
      decrypted,
      createdAt: existing?.createdAt ?? t,
      updatedAt: t,
    });
    return existing ? { status: 204 } : json(201, {});
  });

  route('DELETE', '/repos/:owner/:repo/actions/secrets/:name', { docs: D.deleteSecret, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call, { admin: true });
    if (!repo.secrets.delete(keyOf(repo.secrets, call.req.params.name ?? '') ?? '')) throw notFound();
    return { status: 204 };
  });
}

function registerVariableRoutes(route: Route): void {
  const variableJson = (v: { name: string; value: string; createdAt: string; updatedAt: string }) => ({
    name: v.name,
    value: v.value,
    created_at: v.createdAt,
    updated_at: v.updatedAt,
  });

  route('GET', '/repos/:owner/:repo/actions/variables', { docs: D.listVariables, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call, { admin: true });
    const all = [...repo.variables.values()].sort((a, b) => a.name.localeCompare(b.name));
    const page = paginate(call, all, { defaultPerPage: 10, maxPerPage: 30 });
    return json(200, { total_count: all.length, variables: page.items.map(variableJson) }, page.headers);
  });

  route('POST', '/repos/:owner/:repo/actions/variables', { docs: D.createVariable, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call, { admin: true });
    const rawName = str(call.body, 'name');
    const value = str(call.body, 'value');
    if (rawName === undefined) throw notSupplied('name');
    if (value === undefined) throw notSupplied('value');
    const name = rawName.toUpperCase();
    if (!validEnvName(name)) throw new GhError(422, 'Failed to create variable. Name is invalid.');
    if (keyOf(repo.variables, name) !== undefined) throw new GhError(409, 'Already exists');
    const t = now();
    repo.variables.set(name, { name, value, createdAt: t, updatedAt: t });
    return json(201, {});
  });

  route('GET', '/repos/:owner/:repo/actions/variables/:name', { docs: D.getVariable, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call, { admin: true });
    const v = repo.variables.get(keyOf(repo.variables, call.req.params.name ?? '') ?? '');
    if (!v) throw notFound();
    return json(200, variableJson(v));
  });

  route(
    'PATCH',
    '/repos/:owner/:repo/actions/variables/:name',
    { docs: D.updateVariable, accepted: 'repo' },
    (call) => {
      const repo = loadRepo(call, { admin: true });
      const key = keyOf(repo.variables, call.req.params.name ?? '') ?? '';
      const v = repo.variables.get(key);
      if (!v) throw notFound();
      const newName = str(call.body, 'name')?.toUpperCase();
      const value = str(call.body, 'value');
      if (newName !== undefined && newName !== key) {
        if (!validEnvName(newName)) throw new GhError(422, 'Failed to update variable. Name is invalid.');
        const clash = keyOf(repo.variables, newName);
        if (clash !== undefined && clash !== key) throw new GhError(409, 'Already exists');
        repo.variables.delete(key);
        v.name = newName;
        repo.variables.set(newName, v);
      }
      if (value !== undefined) v.value = value;
      v.updatedAt = now();
      return { status: 204 };
    },
  );

  route(
    'DELETE',
    '/repos/:owner/:repo/actions/variables/:name',
    { docs: D.deleteVariable, accepted: 'repo' },
    (call) => {
      const repo = loadRepo(call, { admin: true });
      if (!repo.variables.delete(keyOf(repo.variables, call.req.params.name ?? '') ?? '')) throw notFound();
      return { status: 204 };
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Contents API

function contentPath(call: GhCall): string {
  return (call.req.params.path ?? '').replace(/^\/+|\/+$/g, '');
}

async function getContent(call: GhCall): Promise<ApiResponse> {
  const repo = loadRepo(call);
  if (await isEmptyRepo(repo.gitDir)) throw new GhError(404, 'This repository is empty.');
  const ref = call.req.query.get('ref') ?? repo.defaultBranch;
  const commit = await resolveRefish(repo.gitDir, ref);
  if (!commit) throw new GhError(404, `No commit found for the ref ${ref}`);
  const path = contentPath(call);
  if (path !== '' && !validTreePath(path)) throw notFound();
  const listDir = async (treeish: string, prefix: string): Promise<ApiResponse> => {
    const entries = await lsTree(repo.gitDir, treeish);
    return json(
      200,
      entries.map((e) =>
        contentBase(call, repo, contentItemFromEntry(e, prefix ? `${prefix}/${e.path}` : e.path), ref),
      ),
    );
  };
  if (path === '') return listDir(commit, '');
  const [entry] = await lsTree(repo.gitDir, commit, { path });
  if (!entry || entry.path !== path) throw notFound();
  if (entry.type === 'tree') return listDir(entry.sha, path);
  const item = contentItemFromEntry(entry, path);
  const base = contentBase(call, repo, item, ref);
  if (item.type === 'submodule') {
    return json(200, { ...base, submodule_git_url: `${call.web}/${repo.owner}/${repo.name}.git` });
  }
  const content = await readBlob(repo.gitDir, entry.sha);
  if (item.type === 'symlink') return json(200, { ...base, target: content.toString('utf8') });
  return json(200, { ...base, content: githubBase64(content), encoding: 'base64' });
}

async function writeContent(call: GhCall, kind: 'put' | 'delete'): Promise<ApiResponse> {
  const repo = loadRepo(call, { write: true });
  assertWritable(repo);
  const path = contentPath(call);
  if (!validTreePath(path)) throw new GhError(422, 'path contains a malformed path component');
  const message = str(call.body, 'message');
  if (message === undefined) throw notSupplied('message');
  let content: Buffer | null = null;
  if (kind === 'put') {
    const raw = call.body.content;
    if (raw === undefined) throw notSupplied('content');
    if (typeof raw !== 'string' || !/^[A-Za-z0-9+/=\s]*$/.test(raw))
      throw new GhError(422, 'content is not valid Base64');
    content = Buffer.from(raw, 'base64');
  }
  const sha = call.body.sha;
  if (kind === 'delete' && sha === undefined) throw notSupplied('sha');
  requireWorkflowScope(call, [path]);
  const committer = identityFrom(call.body.committer, 'committer') ?? callerIdentity(call);
  const author = identityFrom(call.body.author, 'author') ?? committer;

  const empty = await isEmptyRepo(repo.gitDir);
  const branch = str(call.body, 'branch') ?? repo.defaultBranch;
  let parent: string | null = null;
  let existing: { sha: string } | undefined;
  if (!empty) {
    const tip = await resolveRef(repo.gitDir, `refs/heads/${branch}`);
    if (!tip) throw new GhError(404, `Branch ${branch} not found`);
    parent = tip;
    const [entry] = await lsTree(repo.gitDir, tip, { path });
    if (entry && entry.path === path && entry.type === 'tree') throw new GhError(422, `path ${path} is a directory`);
    existing = entry && entry.path === path ? { sha: entry.sha } : undefined;
  } else if (kind === 'delete') {
    throw notFound();
  }
  if (existing) {
    if (sha === undefined) throw notSupplied('sha');
    if (sha !== existing.sha)
      throw new GhError(409, `${path} does not match ${typeof sha === 'string' ? sha : JSON.stringify(sha)}`);
  } else if (kind === 'delete') {
    throw notFound();
  }
  let commitSha: string;
  try {
    commitSha = await commitChanges(repo.gitDir, {
      branch,
      parent,
      changes: [{ path, content }],
      message,
      author,
      committer,
    });
  } catch (error) {
    // commitChanges moves the branch with compare-and-swap; a concurrent writer wins, this one conflicts.
    const current = await resolveRef(repo.gitDir, `refs/heads/${branch}`);
    if (current !== (parent ?? undefined))
      throw new GhError(409, `refs/heads/${branch} expected to be at ${parent ?? ZERO_SHA}`);
    throw error;
  }
  touchPushed(repo);
  const commit = (await readCommit(repo.gitDir, commitSha))!;
  let contentJson: Record<string, unknown> | null = null;
  if (kind === 'put') {
    const [entry] = await lsTree(repo.gitDir, commitSha, { path });
    const item = contentItemFromEntry(entry!, path);
    contentJson = contentBase(call, repo, item, branch);
  }
  return json(kind === 'put' && !existing ? 201 : 200, {
    content: contentJson,
    commit: fileCommitJson(call, repo, commit),
  });
}

function registerContentRoutes(route: Route): void {
  route('GET', '/repos/:owner/:repo/contents', { docs: D.getContent, accepted: 'repo' }, getContent);
  route('GET', '/repos/:owner/:repo/contents/*path', { docs: D.getContent, accepted: 'repo' }, getContent);
  route('PUT', '/repos/:owner/:repo/contents/*path', { docs: D.putContent, accepted: 'repo' }, (call) =>
    writeContent(call, 'put'),
  );
  route('DELETE', '/repos/:owner/:repo/contents/*path', { docs: D.deleteContent, accepted: 'repo' }, (call) =>
    writeContent(call, 'delete'),
  );
}

// ---------------------------------------------------------------------------------------------
// Git Data API

async function refJson(call: GhCall, repo: GithubRepo, ref: string, sha: string): Promise<Record<string, unknown>> {
  const api = repoApi(call, repo);
  const type = (await objectType(repo.gitDir, sha)) ?? 'commit';
  const plural = type === 'commit' ? 'commits' : type === 'tag' ? 'tags' : type === 'tree' ? 'trees' : 'blobs';
  return {
    ref,
    node_id: Buffer.from(`04:Ref${repo.id}:${ref}`).toString('base64'),
    url: `${api}/git/${ref}`,
    object: { sha, type, url: `${api}/git/${plural}/${sha}` },
  };
}

function protectionFor(repo: GithubRepo, ref: string) {
  return ref.startsWith('refs/heads/') ? repo.protections.get(ref.slice('refs/heads/'.length)) : undefined;
}

/** Refuses ref updates that bring in workflow changes the token may not make. */
async function checkWorkflowCommits(call: GhCall, repo: GithubRepo, sha: string): Promise<void> {
  if (hasScope(call, 'workflow')) return;
  const paths = await workflowPathsIntroduced(repo.gitDir, sha);
  if (paths.length > 0) throw new GhError(404, workflowRefusal(paths[0]!));
}

function treeEntryJson(
  call: GhCall,
  repo: GithubRepo,
  e: { mode: string; type: string; sha: string; size: number | undefined; path: string },
) {
  const api = repoApi(call, repo);
  return {
    path: e.path,
    mode: e.mode,
    type: e.type,
    sha: e.sha,
    ...(e.size !== undefined ? { size: e.size } : {}),
    ...(e.type === 'blob'
      ? { url: `${api}/git/blobs/${e.sha}` }
      : e.type === 'tree'
        ? { url: `${api}/git/trees/${e.sha}` }
        : {}),
  };
}

async function treeJson(
  call: GhCall,
  repo: GithubRepo,
  tree: string,
  recursive: boolean,
): Promise<Record<string, unknown>> {
  const entries = await lsTree(repo.gitDir, tree, { recursive });
  return {
    sha: tree,
    url: `${repoApi(call, repo)}/git/trees/${tree}`,
    tree: entries.map((e) => treeEntryJson(call, repo, e)),
    truncated: false,
  };
}

function registerGitDataRoutes(route: Route): void {
  route('GET', '/repos/:owner/:repo/git/ref/*ref', { docs: D.getRef, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call);
    await assertNotEmpty(repo);
    const ref = `refs/${call.req.params.ref ?? ''}`;
    const sha = (await listRefs(repo.gitDir, ref)).get(ref);
    if (!sha) throw notFound();
    return json(200, await refJson(call, repo, ref, sha));
  });

  const matching = async (call: GhCall): Promise<ApiResponse> => {
    const repo = loadRepo(call);
    await assertNotEmpty(repo);
    const prefix = `refs/${call.req.params.ref ?? ''}`;
    const refs = [...(await listRefs(repo.gitDir))]
      .filter(([ref]) => ref.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const out: Record<string, unknown>[] = [];
    for (const [ref, sha] of refs) out.push(await refJson(call, repo, ref, sha));
    return json(200, out);
  };
  route('GET', '/repos/:owner/:repo/git/matching-refs', { docs: D.matchingRefs, accepted: 'repo' }, matching);
  route('GET', '/repos/:owner/:repo/git/matching-refs/*ref', { docs: D.matchingRefs, accepted: 'repo' }, matching);

  route('POST', '/repos/:owner/:repo/git/refs', { docs: D.createRef, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call, { write: true });
    assertWritable(repo);
    await assertNotEmpty(repo);
    const ref = str(call.body, 'ref');
    const sha = str(call.body, 'sha');
    if (ref === undefined) throw notSupplied('ref');
    if (sha === undefined) throw notSupplied('sha');
    if (!ref.startsWith('refs/') || ref.split('/').length < 3) {
      throw new GhError(422, "Reference name must start with 'refs/' and have at least two slashes.");
    }
    if (!(await refFormatOk(repo.gitDir, ref))) throw new GhError(422, `${ref} is not a valid ref name.`);
    if (ref.startsWith('refs/pull/')) throw new GhError(422, 'Reference update failed');
    if (!isSha(sha) || !(await objectType(repo.gitDir, sha))) throw new GhError(422, 'Object does not exist');
    if ((await listRefs(repo.gitDir, ref)).has(ref)) throw new GhError(422, 'Reference already exists');
    await checkWorkflowCommits(call, repo, sha);
    const r = await git(repo.gitDir, ['update-ref', ref, sha, ZERO_SHA], { ok: [128] }).then(
      () => true,
      () => false,
    );
    if (!r || (await resolveRef(repo.gitDir, ref)) !== sha) throw new GhError(422, 'Reference already exists');
    touchPushed(repo);
    return json(201, await refJson(call, repo, ref, sha), { location: `${repoApi(call, repo)}/git/${ref}` });
  });

  route('PATCH', '/repos/:owner/:repo/git/refs/*ref', { docs: D.updateRef, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call, { write: true });
    assertWritable(repo);
    await assertNotEmpty(repo);
    const ref = `refs/${(call.req.params.ref ?? '').replace(/^refs\//, '')}`;
    const sha = str(call.body, 'sha');
    if (sha === undefined) throw notSupplied('sha');
    const force = call.body.force === true;
    const old = (await listRefs(repo.gitDir, ref)).get(ref);
    if (!old) throw new GhError(422, 'Reference does not exist');
    if (!isSha(sha) || !(await objectType(repo.gitDir, sha))) throw new GhError(422, 'Object does not exist');
    const fastForward = old === sha || (await isAncestor(repo.gitDir, old, sha));
    if (!fastForward) {
      if (!force) throw new GhError(422, 'Update is not a fast forward');
      const protection = protectionFor(repo, ref);
      if (protection && !protection.allowForcePushes) throw new GhError(422, 'Cannot force-push to this branch');
    }
    await checkWorkflowCommits(call, repo, sha);
    const moved = await git(repo.gitDir, ['update-ref', ref, sha, old], { ok: [128] }).then(
      async () => (await resolveRef(repo.gitDir, ref)) === sha,
      () => false,
    );
    if (!moved) throw new GhError(422, 'Reference cannot be updated');
    touchPushed(repo);
    return json(200, await refJson(call, repo, ref, sha));
  });

  route('DELETE', '/repos/:owner/:repo/git/refs/*ref', { docs: D.deleteRef, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call, { write: true });
    assertWritable(repo);
    await assertNotEmpty(repo);
    const ref = `refs/${(call.req.params.ref ?? '').replace(/^refs\//, '')}`;
    const old = (await listRefs(repo.gitDir, ref)).get(ref);
    if (!old) throw new GhError(422, 'Reference does not exist');
    const protection = protectionFor(repo, ref);
    if (protection && !protection.allowDeletions) throw new GhError(422, 'Cannot delete this branch');
    // The description lists "an attempt was made to delete the default branch" as a 422.
    if (ref === `refs/heads/${repo.defaultBranch}`) throw new GhError(422, 'Cannot delete the default branch');
    await git(repo.gitDir, ['update-ref', '-d', ref, old]);
    touchPushed(repo);
    return { status: 204 };
  });

  route('GET', '/repos/:owner/:repo/git/commits/:sha', { docs: D.getCommit, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call);
    await assertNotEmpty(repo);
    const sha = call.req.params.sha ?? '';
    const commit = /^[0-9a-f]{4,40}$/.test(sha) ? await readCommit(repo.gitDir, sha) : undefined;
    if (!commit) throw notFound();
    return json(200, gitCommitJson(call, repo, commit));
  });

  route('POST', '/repos/:owner/:repo/git/commits', { docs: D.createCommit, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call, { write: true });
    assertWritable(repo);
    await assertNotEmpty(repo);
    const message = str(call.body, 'message');
    const tree = str(call.body, 'tree');
    if (message === undefined) throw notSupplied('message');
    if (tree === undefined) throw notSupplied('tree');
    const parentsRaw = call.body.parents ?? [];
    if (!Array.isArray(parentsRaw) || parentsRaw.some((p) => typeof p !== 'string')) {
      throw new GhError(422, "Invalid request.\n\nFor 'properties/parents', parents is not an array of strings.");
    }
    if (!isSha(tree) || (await objectType(repo.gitDir, tree)) !== 'tree')
      throw new GhError(422, 'Tree SHA does not exist');
    const parents: string[] = [];
    for (const p of parentsRaw as string[]) {
      const full = isSha(p) ? await resolveCommit(repo.gitDir, p) : undefined;
      if (!full) throw new GhError(422, 'Parent SHA does not exist or is not a commit object');
      parents.push(full);
    }
    const author = identityFrom(call.body.author, 'author') ?? callerIdentity(call);
    const committer = identityFrom(call.body.committer, 'committer') ?? author;
    const sha = await commitTree(repo.gitDir, { tree, parents, message, author, committer });
    const commit = (await readCommit(repo.gitDir, sha))!;
    return json(201, gitCommitJson(call, repo, commit), { location: `${repoApi(call, repo)}/git/commits/${sha}` });
  });

  route('GET', '/repos/:owner/:repo/git/trees/:sha', { docs: D.getTree, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call);
    await assertNotEmpty(repo);
    const rev = call.req.params.sha ?? '';
    const tree = await resolveTree(repo.gitDir, rev);
    if (!tree) throw notFound();
    const recursive = call.req.query.get('recursive');
    return json(
      200,
      await treeJson(
        call,
        repo,
        tree,
        recursive !== null && recursive !== '' && recursive !== '0' && recursive !== 'false',
      ),
    );
  });

  route('POST', '/repos/:owner/:repo/git/trees', { docs: D.createTree, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call, { write: true });
    assertWritable(repo);
    await assertNotEmpty(repo);
    const entries = call.body.tree;
    if (entries === undefined) throw notSupplied('tree');
    if (!Array.isArray(entries))
      throw new GhError(422, "Invalid request.\n\nFor 'properties/tree', it is not an array.");
    const baseRaw = call.body.base_tree;
    let base: string | undefined;
    if (baseRaw !== undefined && baseRaw !== null) {
      base = typeof baseRaw === 'string' ? await resolveTree(repo.gitDir, baseRaw) : undefined;
      if (!base) throw new GhError(422, 'Invalid request.\n\nbase_tree is not a valid tree.');
    }
    const edits: TreeEdit[] = [];
    for (const raw of entries as unknown[]) {
      const e = (raw ?? {}) as Record<string, unknown>;
      if (typeof e.path !== 'string') throw notSupplied('path');
      if (typeof e.mode !== 'string') throw notSupplied('mode');
      if (typeof e.type !== 'string') throw notSupplied('type');
      if (!['blob', 'tree', 'commit'].includes(e.type))
        throw new GhError(
          422,
          `Invalid request.\n\n${JSON.stringify(e.type)} is not a member of ["blob", "tree", "commit"].`,
        );
      const edit: TreeEdit = { path: e.path, mode: e.mode, type: e.type as TreeEdit['type'] };
      if ('content' in e && e.content !== undefined) {
        if (typeof e.content !== 'string') throw new GhError(422, 'tree.content must be a string');
        edit.content = e.content;
      } else if ('sha' in e) {
        if (e.sha !== null && typeof e.sha !== 'string') throw new GhError(422, 'tree.sha must be a string or null');
        edit.sha = e.sha;
      } else {
        throw new GhError(422, 'Must supply either tree.sha or tree.content');
      }
      edits.push(edit);
    }
    requireWorkflowScope(
      call,
      edits.map((e) => e.path),
    );
    let tree: string;
    try {
      tree = await buildTree(repo.gitDir, base, edits);
    } catch (error) {
      if (error instanceof TreeEditError) throw new GhError(422, error.message);
      throw error;
    }
    return json(201, await treeJson(call, repo, tree, false), { location: `${repoApi(call, repo)}/git/trees/${tree}` });
  });

  route('POST', '/repos/:owner/:repo/git/blobs', { docs: D.createBlob, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call, { write: true });
    assertWritable(repo);
    await assertNotEmpty(repo);
    const content = call.body.content;
    if (content === undefined) throw notSupplied('content');
    if (typeof content !== 'string')
      throw new GhError(422, "Invalid request.\n\nFor 'properties/content', it is not a string.");
    const encoding = str(call.body, 'encoding') ?? 'utf-8';
    let data: Buffer;
    if (encoding === 'base64') data = Buffer.from(content, 'base64');
    else if (encoding === 'utf-8' || encoding === 'utf8') data = Buffer.from(content, 'utf8');
    else throw new GhError(422, `encoding must be "utf-8" or "base64", not ${JSON.stringify(encoding)}`);
    const sha = await writeBlob(repo.gitDir, data);
    const url = `${repoApi(call, repo)}/git/blobs/${sha}`;
    return json(201, { sha, url }, { location: url });
  });

  route('GET', '/repos/:owner/:repo/git/blobs/:sha', { docs: D.getBlob, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call);
    await assertNotEmpty(repo);
    const sha = call.req.params.sha ?? '';
    if (!isSha(sha) || (await objectType(repo.gitDir, sha)) !== 'blob') throw notFound();
    const content = await readBlob(repo.gitDir, sha);
    return json(200, {
      sha,
      node_id: Buffer.from(`04:Blob${repo.id}:${sha}`).toString('base64'),
      size: content.length,
      url: `${repoApi(call, repo)}/git/blobs/${sha}`,
      content: githubBase64(content),
      encoding: 'base64',
    });
  });
}

async function refFormatOk(gitDir: string, ref: string): Promise<boolean> {
  const out = await git(gitDir, ['check-ref-format', '--normalize', ref], { ok: [1] });
  return out.trim() === ref;
}

// ---------------------------------------------------------------------------------------------
// Branches and protection

/** The short protection summary branch listings carry (`enabled` and the required checks). */
function protectionSummary(repo: GithubRepo, branch: string): Record<string, unknown> {
  const p = repo.protections.get(branch);
  const checks = p?.raw.required_status_checks as
    { contexts?: string[]; checks?: { context: string }[] } | null | undefined;
  const contexts = checks ? (checks.contexts ?? (checks.checks ?? []).map((c) => c.context)) : [];
  return {
    enabled: p !== undefined,
    required_status_checks: {
      enforcement_level: !checks ? 'off' : p?.enforceAdmins ? 'everyone' : 'non_admins',
      contexts,
      checks: contexts.map((context) => ({ context, app_id: null })),
    },
  };
}

function branchParam(call: GhCall): string {
  return call.req.params.branch ?? '';
}

function registerBranchRoutes(route: Route): void {
  route('GET', '/repos/:owner/:repo/branches', { docs: D.listBranches, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call);
    const heads = [...(await listRefs(repo.gitDir, 'refs/heads/'))].map(([ref, sha]) => ({
      name: ref.slice('refs/heads/'.length),
      sha,
    }));
    heads.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const filter = call.req.query.get('protected');
    const filtered = heads.filter((h) => filter === null || (filter === 'true') === repo.protections.has(h.name));
    const page = paginate(call, filtered);
    const api = repoApi(call, repo);
    return json(
      200,
      page.items.map((h) => ({
        name: h.name,
        commit: { sha: h.sha, url: `${api}/commits/${h.sha}` },
        protected: repo.protections.has(h.name),
        protection: protectionSummary(repo, h.name),
        protection_url: `${api}/branches/${encodeURIComponent(h.name)}/protection`,
      })),
      page.headers,
    );
  });

  // Registered before `/branches/*branch` so `main/protection` is not read as a branch name.
  route(
    'GET',
    '/repos/:owner/:repo/branches/*branch/protection',
    { docs: D.getProtection, accepted: 'repo' },
    async (call) => {
      const repo = loadRepo(call, { admin: true });
      const branch = branchParam(call);
      if (!(await resolveRef(repo.gitDir, `refs/heads/${branch}`))) throw new GhError(404, 'Branch not found');
      const protection = repo.protections.get(branch);
      if (!protection) throw new GhError(404, 'Branch not protected');
      return json(200, protectionJson(call, repo, branch, protection));
    },
  );

  route(
    'PUT',
    '/repos/:owner/:repo/branches/*branch/protection',
    { docs: D.putProtection, accepted: 'repo' },
    async (call) => {
      const repo = loadRepo(call, { admin: true });
      assertWritable(repo);
      const branch = branchParam(call);
      const body = call.body;
      const required = ['required_status_checks', 'enforce_admins', 'required_pull_request_reviews', 'restrictions'];
      const missing = required.filter((k) => !(k in body));
      if (missing.length > 0) {
        throw new GhError(422, `Invalid request.\n\n${missing.map((k) => `"${k}" wasn't supplied.`).join('\n')}`);
      }
      for (const key of [
        'allow_force_pushes',
        'allow_deletions',
        'required_linear_history',
        'block_creations',
        'required_conversation_resolution',
        'lock_branch',
        'allow_fork_syncing',
      ]) {
        const v = body[key];
        if (v !== undefined && v !== null && typeof v !== 'boolean') {
          throw new GhError(422, `Invalid request.\n\nFor '${key}', ${JSON.stringify(v)} is not a boolean or null.`);
        }
      }
      if (body.enforce_admins !== null && typeof body.enforce_admins !== 'boolean') {
        throw new GhError(
          422,
          `Invalid request.\n\nFor 'enforce_admins', ${JSON.stringify(body.enforce_admins)} is not a boolean or null.`,
        );
      }
      const checks = body.required_status_checks;
      if (
        checks !== null &&
        (typeof checks !== 'object' || !('strict' in checks) || !('contexts' in checks || 'checks' in checks))
      ) {
        throw new GhError(422, 'Invalid request.\n\n"strict" and "contexts" are required in required_status_checks.');
      }
      if (body.restrictions !== null && repo.ownerType !== 'Organization') {
        throw new GhError(422, 'Only organization repositories can have users and team restrictions');
      }
      if (!(await resolveRef(repo.gitDir, `refs/heads/${branch}`))) throw new GhError(404, 'Branch not found');
      const protection = {
        allowForcePushes: body.allow_force_pushes === true,
        allowDeletions: body.allow_deletions === true,
        enforceAdmins: body.enforce_admins === true,
        raw: { ...body },
      };
      repo.protections.set(branch, protection);
      repo.updatedAt = now();
      return json(200, protectionJson(call, repo, branch, protection));
    },
  );

  route(
    'DELETE',
    '/repos/:owner/:repo/branches/*branch/protection',
    { docs: D.deleteProtection, accepted: 'repo' },
    (call) => {
      const repo = loadRepo(call, { admin: true });
      assertWritable(repo);
      if (!repo.protections.delete(branchParam(call))) throw new GhError(404, 'Branch not protected');
      return { status: 204 };
    },
  );

  route('GET', '/repos/:owner/:repo/branches/*branch', { docs: D.getBranch, accepted: 'repo' }, async (call) => {
    const repo = loadRepo(call);
    const branch = branchParam(call);
    const sha = await resolveRef(repo.gitDir, `refs/heads/${branch}`);
    if (!sha) throw new GhError(404, 'Branch not found');
    const commit = (await readCommit(repo.gitDir, sha))!;
    const api = repoApi(call, repo);
    const protection = repo.protections.get(branch);
    return json(200, {
      name: branch,
      commit: restCommitJson(call, repo, commit),
      _links: {
        self: `${api}/branches/${encodeURIComponent(branch)}`,
        html: `${call.web}/${repo.owner}/${repo.name}/tree/${branch}`,
      },
      protected: protection !== undefined,
      protection: protectionSummary(repo, branch),
      protection_url: `${api}/branches/${encodeURIComponent(branch)}/protection`,
    });
  });

  route('GET', '/repos/:owner/:repo/rules/branches/*branch', { docs: D.branchRules, accepted: 'repo' }, (call) => {
    const repo = loadRepo(call);
    const protection = repo.protections.get(branchParam(call));
    // The forge's only rule source is classic protection; it reports what it enforces on pushes.
    const source = {
      ruleset_source_type: 'Repository',
      ruleset_source: `${repo.owner}/${repo.name}`,
      ruleset_id: repo.id,
    };
    const rules: Record<string, unknown>[] = [];
    if (protection && !protection.allowDeletions) rules.push({ type: 'deletion', ...source });
    if (protection && !protection.allowForcePushes) rules.push({ type: 'non_fast_forward', ...source });
    const page = paginate(call, rules);
    return json(200, page.items, page.headers);
  });
}
