import type { ApiRequest, ApiResponse } from './http-kit.js';
import type { ForgeState, ForgeToken, ForgeUser, GitlabGroup, GitlabProject } from './state.js';

/**
 * Who may do what on the forge's GitLab: token scopes, role levels through group inheritance,
 * visibility, and GitLab's own error bodies. Kept apart from the routes so the rules read in one
 * place, the way GitLab's policies do.
 */

export const Access = { none: 0, guest: 10, reporter: 20, developer: 30, maintainer: 40, owner: 50 } as const;

/** A response GitLab would send instead of the handler's result; thrown from anywhere in a handler. */
export class GitlabError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`GitLab ${status}: ${JSON.stringify(body)}`);
    this.name = 'GitlabError';
  }

  toResponse(): ApiResponse {
    return { status: this.status, body: this.body, headers: this.headers };
  }
}

/** `404 Project Not Found` and friends: GitLab answers 404 both for missing and for invisible things. */
export const notFound = (what?: string): GitlabError =>
  new GitlabError(404, { message: what ? `404 ${what} Not Found` : '404 Not found' });
export const forbidden = (): GitlabError => new GitlabError(403, { message: '403 Forbidden' });
export const unauthorized = (): GitlabError => new GitlabError(401, { message: '401 Unauthorized' });
/** Grape's parameter validation errors use `error`, not `message`. */
export const missingParams = (...names: string[]): GitlabError =>
  new GitlabError(400, { error: names.map((n) => `${n} is missing`).join(', ') });
export const invalidParam = (name: string, why = 'is invalid'): GitlabError =>
  new GitlabError(400, { error: `${name} ${why}` });
/** Service-level failures: `render_api_error!(message, 400)`. */
export const badRequest = (message: unknown): GitlabError => new GitlabError(400, { message });

/**
 * Scopes a route accepts on top of `api` (always) and `read_api` (GET/HEAD only), as GitLab's
 * `allow_access_with_scope` does per API class: `read_user` on the users API, `read_repository`
 * on the repository files API, every scope on `/personal_access_tokens/self`.
 */
export type ExtraScope = 'read_user' | 'read_repository' | 'any';

export interface Caller {
  user: ForgeUser | undefined;
  token: ForgeToken | undefined;
}

export function findGitlabUser(state: ForgeState, loginOrId: string | number): ForgeUser | undefined {
  if (typeof loginOrId === 'number') {
    for (const u of state.gitlabUsers.values()) if (u.id === loginOrId) return u;
    return undefined;
  }
  const direct = state.gitlabUsers.get(loginOrId);
  if (direct) return direct;
  const lower = loginOrId.toLowerCase();
  for (const u of state.gitlabUsers.values()) if (u.login.toLowerCase() === lower) return u;
  return undefined;
}

function tokenExpired(token: ForgeToken): boolean {
  if (token.expired) return true;
  // GitLab tokens expire at the start of their expiry date (UTC).
  return token.expiresAt != null && Date.parse(token.expiresAt) <= Date.now();
}

/**
 * Authenticates the request the way GitLab's API guard does. An unknown token is a plain 401; an
 * expired one gets the OAuth2 error body of `lib/api/api_guard.rb`; a token without a scope this
 * route accepts gets 403 `insufficient_scope` naming every scope registered for the route.
 */
export function authenticate(
  req: ApiRequest,
  state: ForgeState,
  options: { required: boolean; extraScopes?: ExtraScope[] },
): Caller {
  if (req.presentedToken !== undefined && req.presentedToken !== '') {
    const token = req.token;
    if (!token) throw unauthorized();
    if (tokenExpired(token)) {
      const description = 'Token is expired. You can either do re-authorization or token refresh.';
      throw new GitlabError(
        401,
        { error: 'invalid_token', error_description: description },
        { 'www-authenticate': `Bearer realm="The API", error="invalid_token", error_description="${description}"` },
      );
    }
    const user = findGitlabUser(state, token.user);
    if (!user) throw unauthorized();
    const read = req.method === 'GET' || req.method === 'HEAD';
    const extras = options.extraScopes ?? [];
    const allowed = new Set<string>(['api']);
    if (read) allowed.add('read_api');
    if (read && extras.includes('read_user')) allowed.add('read_user');
    if (read && extras.includes('read_repository')) allowed.add('read_repository');
    const ok = extras.includes('any') || token.scopes.some((s) => allowed.has(s));
    if (!ok) {
      const registered = ['api', 'read_api', ...extras.filter((s) => s !== 'any')];
      throw new GitlabError(
        403,
        {
          error: 'insufficient_scope',
          error_description: 'The request requires higher privileges than provided by the access token.',
          scope: registered.join(' '),
        },
        { 'www-authenticate': `Bearer realm="The API", error="insufficient_scope", scope="${registered.join(' ')}"` },
      );
    }
    return { user, token };
  }
  if (options.required) throw unauthorized();
  return { user: undefined, token: undefined };
}

// ---------------------------------------------------------------------------------------------
// Groups and namespaces

export function groupById(state: ForgeState, id: number): GitlabGroup | undefined {
  return state.gitlabGroupById(id);
}

export function groupByPath(state: ForgeState, fullPath: string): GitlabGroup | undefined {
  return state.gitlabGroups.get(fullPath.toLowerCase());
}

/** `:id` is a numeric id or a URL-encoded full path (already decoded by the router). */
export function groupByRef(state: ForgeState, ref: string): GitlabGroup | undefined {
  return /^\d+$/.test(ref) ? groupById(state, Number(ref)) : groupByPath(state, ref);
}

/** The group and its ancestors, nearest first. */
export function groupChain(state: ForgeState, group: GitlabGroup): GitlabGroup[] {
  const chain: GitlabGroup[] = [];
  let g: GitlabGroup | undefined = group;
  for (let i = 0; g && i < 100; i++) {
    chain.push(g);
    g = g.parentId == null ? undefined : groupById(state, g.parentId);
  }
  return chain;
}

/** Membership is inherited downwards: a Maintainer of `acme` is a Maintainer of `acme/tools`. */
export function groupAccess(state: ForgeState, login: string | undefined, group: GitlabGroup): number {
  if (!login) return Access.none;
  let level: number = Access.none;
  for (const g of groupChain(state, group)) level = Math.max(level, memberLevel(g.members, login));
  return level;
}

function memberLevel(members: Map<string, number>, login: string): number {
  const direct = members.get(login);
  if (direct !== undefined) return direct;
  const lower = login.toLowerCase();
  for (const [k, v] of members) if (k.toLowerCase() === lower) return v;
  return Access.none;
}

export function isDescendant(state: ForgeState, group: GitlabGroup, ancestor: GitlabGroup): boolean {
  return groupChain(state, group).some((g) => g.id === ancestor.id);
}

/**
 * Groups are visible when public, internal to signed-in users, or when the user belongs to the
 * group, an ancestor, or anything below it (GitLab shows members of a subgroup its parents).
 */
export function canReadGroup(state: ForgeState, login: string | undefined, group: GitlabGroup): boolean {
  if (group.visibility === 'public') return true;
  if (group.visibility === 'internal' && login) return true;
  if (!login) return false;
  if (groupAccess(state, login, group) >= Access.guest) return true;
  for (const g of state.gitlabGroups.values()) {
    if (g.id !== group.id && isDescendant(state, g, group) && memberLevel(g.members, login) >= Access.guest)
      return true;
  }
  for (const p of state.gitlabProjects.values()) {
    const ns = projectGroup(state, p);
    if (ns && isDescendant(state, ns, group) && memberLevel(p.members, login) >= Access.guest) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Projects

export function projectByRef(state: ForgeState, ref: string): GitlabProject | undefined {
  return /^\d+$/.test(ref) ? state.gitlabProjectById(Number(ref)) : state.gitlabProject(ref);
}

export function projectFullPath(p: GitlabProject): string {
  return `${p.namespace}/${p.path}`;
}

export function projectGroup(state: ForgeState, p: GitlabProject): GitlabGroup | undefined {
  return p.namespaceKind === 'group' ? (groupById(state, p.namespaceId) ?? groupByPath(state, p.namespace)) : undefined;
}

/** The user's effective role: personal namespace owner, direct member, inherited, or via a share. */
export function projectAccess(state: ForgeState, login: string | undefined, p: GitlabProject): number {
  if (!login) return Access.none;
  if (p.namespaceKind === 'user' && p.namespace.toLowerCase() === login.toLowerCase()) return Access.owner;
  let level = memberLevel(p.members, login);
  const group = projectGroup(state, p);
  if (group) level = Math.max(level, groupAccess(state, login, group));
  for (const share of p.sharedWithGroups ?? []) {
    const g = groupById(state, share.groupId);
    if (g) level = Math.max(level, Math.min(share.accessLevel, groupAccess(state, login, g)));
  }
  return level;
}

export function canReadProject(state: ForgeState, login: string | undefined, p: GitlabProject): boolean {
  if (p.visibility === 'public') return true;
  if (p.visibility === 'internal' && login) return true;
  return projectAccess(state, login, p) >= Access.guest;
}

/** Guests of private projects see the project but not its code. */
export function canReadCode(state: ForgeState, login: string | undefined, p: GitlabProject): boolean {
  if (p.visibility !== 'private' && canReadProject(state, login, p)) return true;
  return projectAccess(state, login, p) >= Access.reporter;
}

/** Finds a project the caller can see, or throws GitLab's 404 (never 403, so nothing leaks). */
export function visibleProject(state: ForgeState, caller: Caller, ref: string): GitlabProject {
  const p = projectByRef(state, ref);
  if (!p || !canReadProject(state, caller.user?.login, p)) throw notFound('Project');
  return p;
}

/** Requires a role on a visible project: 403 for members below it, as GitLab's `authorize!`. */
export function requireProjectAccess(state: ForgeState, caller: Caller, p: GitlabProject, level: number): void {
  if (!caller.user) throw unauthorized();
  if (projectAccess(state, caller.user.login, p) < level) throw forbidden();
}

// ---------------------------------------------------------------------------------------------
// Protected branches

/** GitLab's wildcard: `*` matches any run of characters, slashes included. */
export function protectedPatternMatches(pattern: string, branch: string): boolean {
  if (!pattern.includes('*')) return pattern === branch;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`).test(branch);
}

export function matchingProtections(p: GitlabProject, branch: string): GitlabProject['protectedBranches'] {
  return p.protectedBranches.filter((pb) => protectedPatternMatches(pb.name, branch));
}

/** Whether the user may push (or commit through the API) to `branch`. Level 0 means no one. */
export function canPushToBranch(
  state: ForgeState,
  login: string | undefined,
  p: GitlabProject,
  branch: string,
): boolean {
  const level = projectAccess(state, login, p);
  const rules = matchingProtections(p, branch);
  if (rules.length === 0) return level >= Access.developer;
  return rules.some((r) => r.pushAccessLevel > 0 && level >= r.pushAccessLevel);
}

// ---------------------------------------------------------------------------------------------
// Parameters: Grape merges query and body parameters, so do we (gitbeaker sends some POSTs'
// parameters in the query string, e.g. protected branches).

export type Params = Record<string, unknown>;

export function mergedParams(req: ApiRequest): Params {
  const out: Params = {};
  for (const [k, v] of req.query) out[k] = v;
  if (req.body && typeof req.body === 'object' && !Array.isArray(req.body)) Object.assign(out, req.body as Params);
  return out;
}

export function str(params: Params, name: string): string | undefined {
  const v = params[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw invalidParam(name);
}

/** Grape's Boolean coercion: true/false/1/0/yes/no, anything else is `is invalid`. */
export function bool(params: Params, name: string): boolean | undefined {
  const v = params[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string' && typeof v !== 'number') throw invalidParam(name);
  const s = String(v).toLowerCase();
  if (['true', '1', 't', 'yes', 'y'].includes(s)) return true;
  if (['false', '0', 'f', 'no', 'n'].includes(s)) return false;
  throw invalidParam(name);
}

export function int(params: Params, name: string): number | undefined {
  const v = params[name];
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n)) throw invalidParam(name);
  return n;
}

export function requireParams(params: Params, ...names: string[]): void {
  const missing = names.filter((n) => params[n] === undefined || params[n] === null);
  if (missing.length > 0) throw missingParams(...missing);
}

/** `filter[environment_scope]` arrives flat in a query string and nested in a JSON body. */
export function environmentScopeFilter(params: Params): string | undefined {
  const flat = params['filter[environment_scope]'];
  if (typeof flat === 'string') return flat;
  const nested = params['filter'];
  if (nested && typeof nested === 'object') {
    const v = (nested as Record<string, unknown>)['environment_scope'];
    if (typeof v === 'string') return v;
  }
  return undefined;
}
