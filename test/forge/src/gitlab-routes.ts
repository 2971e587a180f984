import type { ApiRequest, ApiResponse } from './http-kit.js';
import {
  canReadCode,
  canReadProject,
  forbidden,
  invalidParam,
  requireProjectAccess,
  str,
  unauthorized,
  visibleProject,
  type Caller,
  type ExtraScope,
  type Params,
} from './gitlab-access.js';
import * as E from './gitlab-entities.js';
import { repoIsEmpty } from './gitlab-git.js';
import { protectGitlabDefaultBranch } from './repo-factory.js';
import { git, resolveRef, type GitIdentity } from './repo-writer.js';
import type { ForgeContext } from './server.js';
import { now, type ForgeState, type ForgeUser, type GitlabProject } from './state.js';

/**
 * The plumbing the GitLab route modules share: the per-request call context, GitLab's answers
 * for "who may touch this project", and the project rendering every list uses.
 */

export interface RouteOptions {
  /** Anonymous callers get 401 (`/user`, writes) or only public things (reads). */
  auth?: 'required' | 'optional';
  scopes?: ExtraScope[];
}

export interface Call {
  req: ApiRequest;
  state: ForgeState;
  caller: Caller;
  login: string | undefined;
  params: Params;
  view: E.EntityContext;
}

export type CallHandler = (c: Call) => ApiResponse | Promise<ApiResponse>;

export const json = (body: unknown, status = 200, headers?: Record<string, string>): ApiResponse => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});

export type Add = (method: string, pattern: string, options: RouteOptions, handler: CallHandler) => void;

// ---------------------------------------------------------------------------------------------
// Shared helpers

export function touch(p: GitlabProject): void {
  p.lastActivityAt = now();
}

export function userOf(c: Call): ForgeUser {
  if (!c.caller.user) throw unauthorized();
  return c.caller.user;
}

/** A visible project the caller may change: role check, then archived projects are read-only. */
export function writableProject(c: Call, level: number): GitlabProject {
  const p = managedProject(c, level);
  if (p.archived) throw forbidden();
  return p;
}

/** A visible project on which the caller holds `level` (e.g. Maintainer to read CI/CD variables). */
export function managedProject(c: Call, level: number): GitlabProject {
  const p = visibleProject(c.state, c.caller, c.req.params['id'] ?? '');
  requireProjectAccess(c.state, c.caller, p, level);
  return p;
}

export function readableCodeProject(c: Call): GitlabProject {
  const p = visibleProject(c.state, c.caller, c.req.params['id'] ?? '');
  if (!canReadCode(c.state, c.login, p)) throw forbidden();
  return p;
}

export function identityOf(u: ForgeUser, params: Params): GitIdentity {
  return { name: str(params, 'author_name') ?? u.name, email: str(params, 'author_email') ?? u.email };
}

export async function renderProjects(c: Call, list: GitlabProject[], simple: boolean): Promise<unknown[]> {
  return Promise.all(
    list.map(async (p) => (simple ? E.simpleProject(p, c.view) : renderProject(c, p, { withPermissions: false }))),
  );
}

export async function renderProject(c: Call, p: GitlabProject, o: { withPermissions: boolean }): Promise<unknown> {
  const source = p.forkedFromId === null ? undefined : c.state.gitlabProjectById(p.forkedFromId);
  const forkedFrom = source && canReadProject(c.state, c.login, source) ? E.simpleProject(source, c.view) : undefined;
  return E.project(p, c.view, {
    emptyRepo: await repoIsEmpty(p.gitDir),
    withPermissions: o.withPermissions,
    forkedFrom,
  });
}

export function sortDirection(params: Params, fallback: 'asc' | 'desc'): 'asc' | 'desc' {
  const s = str(params, 'sort');
  if (s === undefined) return fallback;
  if (s !== 'asc' && s !== 'desc') throw invalidParam('sort', 'does not have a valid value');
  return s;
}

export async function adoptFirstBranch(ctx: ForgeContext, p: GitlabProject, branch: string): Promise<void> {
  const head = (await git(p.gitDir, ['symbolic-ref', '-q', 'HEAD'], { ok: [1] })).trim();
  const headBranch = head.replace(/^refs\/heads\//, '');
  if (!head || !(await resolveRef(p.gitDir, head))) {
    await git(p.gitDir, ['symbolic-ref', 'HEAD', `refs/heads/${branch}`]);
    p.defaultBranch = branch;
  } else {
    p.defaultBranch = headBranch;
  }
  protectGitlabDefaultBranch(ctx, p);
}
