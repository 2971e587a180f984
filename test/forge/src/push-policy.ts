import { Access, matchingProtections, projectAccess, canReadCode } from './gitlab-access.js';
import type { ForgeContext } from './server.js';
import type { ForgeState, ForgeToken, GithubOrg, GithubRepo, GitlabProject, Platform } from './state.js';

/**
 * Who may read and write a repo over git, and which ref updates each platform refuses. The git
 * transport (git-http.ts and the receive hooks) asks these; the API modules may ask them too where
 * the real platform applies the same rule to API writes.
 */

export const ZERO_OID = '0'.repeat(40);

export interface RefUpdate {
  ref: string;
  old: string;
  new: string;
  /** The new tip does not contain the old one (only computed where a rule needs it). */
  forced: boolean;
  /** New commits in this update change files under `.github/workflows/` (GitHub only). */
  touchesWorkflows: boolean;
  /** Those files, for GitHub's message. */
  workflowFiles?: string[];
}

export type PushDecision =
  | { ok: true; messages?: string[] }
  | {
      ok: false;
      /** Lines the platform prints (they show as `remote: ...`). */
      message: string;
      /** Per-ref reasons shown in git's `! [remote rejected] ref (reason)`. */
      rejected: { ref: string; reason: string }[];
    };

// --------------------------------------------------------------------------------------------
// Tokens

export function tokenUsable(token: ForgeToken | undefined): token is ForgeToken {
  if (!token || token.expired) return false;
  return !(token.expiresAt != null && Date.parse(token.expiresAt) <= Date.now());
}

// --------------------------------------------------------------------------------------------
// GitHub access

export type GithubPermission = 'none' | 'read' | 'write' | 'admin';

/**
 * The user's role on a repo. The forge keeps GitHub's model small: the owning user and members of
 * the owning org administer it; public repos are readable by all, internal ones by signed-in users.
 */
export function githubPermission(state: ForgeState, repo: GithubRepo, login: string | undefined): GithubPermission {
  if (login) {
    const lower = login.toLowerCase();
    if (repo.owner.toLowerCase() === lower) return 'admin';
    const org = state.githubOrgs.get(repo.owner) ?? findOrg(state, repo.owner);
    if (org?.members.some((m) => m.toLowerCase() === lower)) return 'admin';
  }
  if (repo.visibility === 'public') return 'read';
  if (repo.visibility === 'internal' && login) return 'read';
  return 'none';
}

function findOrg(state: ForgeState, login: string): GithubOrg | undefined {
  const lower = login.toLowerCase();
  for (const [k, v] of state.githubOrgs) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** Classic scopes: private repos need `repo` even to read; writing public ones needs `public_repo`. */
export function githubCanRead(state: ForgeState, repo: GithubRepo, token: ForgeToken | undefined): boolean {
  const perm = githubPermission(state, repo, token?.user);
  if (perm === 'none') return false;
  if (repo.visibility === 'public') return true;
  return token !== undefined && token.scopes.includes('repo');
}

export function githubCanWrite(state: ForgeState, repo: GithubRepo, token: ForgeToken | undefined): boolean {
  if (!token) return false;
  const perm = githubPermission(state, repo, token.user);
  if (perm !== 'write' && perm !== 'admin') return false;
  return token.scopes.includes('repo') || (repo.visibility === 'public' && token.scopes.includes('public_repo'));
}

// --------------------------------------------------------------------------------------------
// GitLab access (roles come from gitlab-access.ts, shared with the REST API)

const GITLAB_READ_SCOPES = ['api', 'read_repository', 'write_repository'];
const GITLAB_WRITE_SCOPES = ['api', 'write_repository'];

export function gitlabCanReadCode(state: ForgeState, project: GitlabProject, login: string | undefined): boolean {
  return canReadCode(state, login, project);
}

export function gitlabTokenCanRead(token: ForgeToken): boolean {
  return token.scopes.some((s) => GITLAB_READ_SCOPES.includes(s));
}

export function gitlabTokenCanWrite(token: ForgeToken): boolean {
  return token.scopes.some((s) => GITLAB_WRITE_SCOPES.includes(s));
}

export function gitlabAccessLevel(state: ForgeState, project: GitlabProject, login: string | undefined): number {
  return projectAccess(state, login, project);
}

// --------------------------------------------------------------------------------------------
// Push decisions

function branchOf(ref: string): string | undefined {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}

/**
 * Decides a push the way the platform's receive path does. GitHub judges each ref on its own (one
 * protected branch does not sink the other refs of a non-atomic push); GitLab's pre-receive check
 * refuses the whole push at the first violation, with one `GitLab: ...` line.
 */
export function decidePush(
  ctx: Pick<ForgeContext, 'state'>,
  platform: Platform,
  repo: GithubRepo | GitlabProject,
  token: ForgeToken | undefined,
  updates: readonly RefUpdate[],
  _pushOptions: readonly string[] = [],
): PushDecision {
  return platform === 'github'
    ? decideGithub(repo as GithubRepo, token, updates)
    : decideGitlab(ctx.state, repo as GitlabProject, token, updates);
}

function decideGithub(repo: GithubRepo, token: ForgeToken | undefined, updates: readonly RefUpdate[]): PushDecision {
  const lines: string[] = [];
  const rejected: { ref: string; reason: string }[] = [];
  for (const u of updates) {
    const branch = branchOf(u.ref);
    const protection = branch === undefined ? undefined : repo.protections.get(branch);
    if (protection) {
      if (u.new === ZERO_OID && !protection.allowDeletions) {
        lines.push(`error: GH006: Protected branch update failed for ${u.ref}.`, 'error: Cannot delete this branch');
        rejected.push({ ref: u.ref, reason: 'protected branch hook declined' });
        continue;
      }
      if (u.forced && u.old !== ZERO_OID && u.new !== ZERO_OID && !protection.allowForcePushes) {
        lines.push(
          `error: GH006: Protected branch update failed for ${u.ref}.`,
          'error: Cannot force-push to this branch',
        );
        rejected.push({ ref: u.ref, reason: 'protected branch hook declined' });
        continue;
      }
    }
    if (u.touchesWorkflows && !(token?.scopes.includes('workflow') ?? false)) {
      const file = u.workflowFiles?.[0] ?? '.github/workflows';
      rejected.push({
        ref: u.ref,
        reason: `refusing to allow a Personal Access Token to create or update workflow \`${file}\` without \`workflow\` scope`,
      });
    }
  }
  if (rejected.length === 0) return { ok: true };
  return { ok: false, message: lines.join('\n'), rejected };
}

/** GitLab's `Gitlab::Checks::BranchCheck`, in its order: default branch, force push, deletion, push access. */
function decideGitlab(
  state: ForgeState,
  project: GitlabProject,
  token: ForgeToken | undefined,
  updates: readonly RefUpdate[],
): PushDecision {
  const login = token?.user;
  const level = projectAccess(state, login, project);
  const refuse = (ref: string, text: string): PushDecision => ({
    ok: false,
    message: `GitLab: ${text}`,
    // git itself reports every ref of a push refused by pre-receive as "pre-receive hook declined".
    rejected: [ref, ...updates.map((u) => u.ref).filter((r) => r !== ref)].map((r) => ({
      ref: r,
      reason: 'pre-receive hook declined',
    })),
  });
  for (const u of updates) {
    const branch = branchOf(u.ref);
    if (branch === undefined) continue;
    const deletion = u.new === ZERO_OID;
    const creation = u.old === ZERO_OID;
    if (deletion && project.defaultBranch === branch) {
      return refuse(u.ref, 'The default branch of a project cannot be deleted.');
    }
    const rules = matchingProtections(project, branch);
    if (rules.length === 0) continue;
    // A branch may match several rules; GitLab allows a force push when any of them allows it.
    if (u.forced && !creation && !deletion && !rules.some((r) => r.allowForcePush)) {
      return refuse(u.ref, 'You are not allowed to force push code to a protected branch on this project.');
    }
    if (deletion) {
      if (level < Access.maintainer) {
        return refuse(
          u.ref,
          'You are not allowed to delete protected branches from this project. Only a project maintainer or owner can delete a protected branch.',
        );
      }
      return refuse(u.ref, 'You can only delete protected branches using the web interface.');
    }
    const mayPush = rules.some((r) => r.pushAccessLevel > 0 && level >= r.pushAccessLevel);
    if (!mayPush) {
      return refuse(
        u.ref,
        creation
          ? 'You are not allowed to create protected branches on this project.'
          : 'You are not allowed to push code to protected branches on this project.',
      );
    }
  }
  return { ok: true };
}

/** Which refs need the (costly) ancestry check: only those a force-push rule could refuse. */
export function refsNeedingForcedCheck(
  platform: Platform,
  repo: GithubRepo | GitlabProject,
  refs: readonly RefUpdate[],
): string[] {
  return refs
    .filter((u) => u.old !== ZERO_OID && u.new !== ZERO_OID)
    .filter((u) => {
      const branch = branchOf(u.ref);
      if (branch === undefined) return false;
      if (platform === 'github') return (repo as GithubRepo).protections.has(branch);
      return matchingProtections(repo as GitlabProject, branch).length > 0;
    })
    .map((u) => u.ref);
}
