import type { GhCall } from './github-kit.js';
import { nodeId } from './github-kit.js';
import type { ParsedCommit, TreeEntry } from './github-git.js';
import type { ForgeState, GithubBranchProtection, GithubOrg, GithubRepo, ForgeUser } from './state.js';

/**
 * Builders for GitHub's JSON shapes (OpenAPI `simple-user`, `private-user`, `full-repository`,
 * `git-commit`, `content-file`, ...). Field sets follow the schemas in @octokit/openapi; the
 * contract test validates every response against them.
 */

/** The forge has no account creation dates; everything it knows began when it started. */
const FORGE_EPOCH = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export type Account = { kind: 'user'; user: ForgeUser } | { kind: 'org'; org: GithubOrg };

export function findAccount(state: ForgeState, login: string): Account | undefined {
  const lower = login.toLowerCase();
  for (const user of state.githubUsers.values()) if (user.login.toLowerCase() === lower) return { kind: 'user', user };
  for (const org of state.githubOrgs.values()) if (org.login.toLowerCase() === lower) return { kind: 'org', org };
  return undefined;
}

function accountUrls(call: GhCall, login: string, kind: 'user' | 'org'): Record<string, string> {
  const url = `${call.api}/${kind === 'org' ? 'orgs' : 'users'}/${login}`;
  const userUrl = `${call.api}/users/${login}`;
  return {
    avatar_url: `${call.web}/avatars/${login}`,
    gravatar_id: '',
    url: kind === 'org' ? userUrl : url,
    html_url: `${call.web}/${login}`,
    followers_url: `${userUrl}/followers`,
    following_url: `${userUrl}/following{/other_user}`,
    gists_url: `${userUrl}/gists{/gist_id}`,
    starred_url: `${userUrl}/starred{/owner}{/repo}`,
    subscriptions_url: `${userUrl}/subscriptions`,
    organizations_url: `${userUrl}/orgs`,
    repos_url: `${userUrl}/repos`,
    events_url: `${userUrl}/events{/privacy}`,
    received_events_url: `${userUrl}/received_events`,
  };
}

/** `simple-user`; organizations appear in this shape as repo owners. */
export function simpleUser(call: GhCall, account: Account): Record<string, unknown> {
  const login = account.kind === 'user' ? account.user.login : account.org.login;
  const id = account.kind === 'user' ? account.user.id : account.org.id;
  return {
    login,
    id,
    node_id: nodeId(account.kind === 'user' ? 'User' : 'Organization', id),
    ...accountUrls(call, login, account.kind),
    type: account.kind === 'user' ? 'User' : 'Organization',
    user_view_type: 'public',
    site_admin: false,
  };
}

function ownedRepos(state: ForgeState, login: string): GithubRepo[] {
  return [...state.githubRepos.values()].filter((r) => r.owner.toLowerCase() === login.toLowerCase());
}

/** `public-user` (what `GET /users/{username}` answers for anyone). */
export function publicUser(call: GhCall, account: Account): Record<string, unknown> {
  const repos = ownedRepos(call.state, account.kind === 'user' ? account.user.login : account.org.login);
  return {
    ...simpleUser(call, account),
    name: account.kind === 'user' ? account.user.name : account.org.login,
    company: null,
    blog: '',
    location: null,
    email: account.kind === 'user' ? account.user.email || null : null,
    hireable: null,
    bio: null,
    twitter_username: null,
    public_repos: repos.filter((r) => !r.private).length,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: FORGE_EPOCH,
    updated_at: FORGE_EPOCH,
  };
}

/** `private-user`: the authenticated user's own view. */
export function privateUser(call: GhCall, user: ForgeUser): Record<string, unknown> {
  const repos = ownedRepos(call.state, user.login);
  const privateCount = repos.filter((r) => r.private).length;
  return {
    ...publicUser(call, { kind: 'user', user }),
    user_view_type: 'private',
    notification_email: user.email || null,
    private_gists: 0,
    total_private_repos: privateCount,
    owned_private_repos: privateCount,
    disk_usage: 0,
    collaborators: 0,
    two_factor_authentication: false,
    plan: { name: 'pro', space: 976562499, collaborators: 0, private_repos: 9999 },
  };
}

function orgUrls(call: GhCall, org: GithubOrg): Record<string, string> {
  const url = `${call.api}/orgs/${org.login}`;
  return {
    url,
    repos_url: `${url}/repos`,
    events_url: `${url}/events`,
    hooks_url: `${url}/hooks`,
    issues_url: `${url}/issues`,
    members_url: `${url}/members{/member}`,
    public_members_url: `${url}/public_members{/member}`,
    avatar_url: `${call.web}/avatars/${org.login}`,
  };
}

/** `organization-simple` (`GET /user/orgs`). */
export function orgSimple(call: GhCall, org: GithubOrg): Record<string, unknown> {
  return {
    login: org.login,
    id: org.id,
    node_id: nodeId('Organization', org.id),
    ...orgUrls(call, org),
    description: null,
  };
}

/** `organization-full` (`GET /orgs/{org}`). */
export function orgFull(call: GhCall, org: GithubOrg): Record<string, unknown> {
  const repos = ownedRepos(call.state, org.login);
  return {
    ...orgSimple(call, org),
    // company, blog, location and email are optional strings in the description: left out.
    name: org.login,
    is_verified: false,
    has_organization_projects: true,
    has_repository_projects: true,
    public_repos: repos.filter((r) => !r.private).length,
    public_gists: 0,
    followers: 0,
    following: 0,
    html_url: `${call.web}/${org.login}`,
    type: 'Organization',
    created_at: FORGE_EPOCH,
    updated_at: FORGE_EPOCH,
    archived_at: null,
  };
}

export type RepoRole = 'admin' | 'push' | 'pull' | 'none';

/** The caller's role on a repo: owners and org members administer, everyone else reads public repos. */
export function repoRole(state: ForgeState, repo: GithubRepo, login: string | undefined): RepoRole {
  if (login !== undefined) {
    const lower = login.toLowerCase();
    if (repo.ownerType === 'User' && repo.owner.toLowerCase() === lower) return 'admin';
    if (repo.ownerType === 'Organization') {
      const org =
        state.githubOrgs.get(repo.owner) ??
        [...state.githubOrgs.values()].find((o) => o.login.toLowerCase() === repo.owner.toLowerCase());
      if (org?.members.some((m) => m.toLowerCase() === lower)) return 'admin';
    }
  }
  return repo.private ? 'none' : 'pull';
}

export function repoOwnerAccount(state: ForgeState, repo: GithubRepo): Account {
  const found = findAccount(state, repo.owner);
  if (found) return found;
  // A repo whose owner is not declared still needs an owner object; synthesize it.
  return repo.ownerType === 'Organization'
    ? { kind: 'org', org: { id: 0, login: repo.owner, members: [] } }
    : { kind: 'user', user: { id: 0, login: repo.owner, name: repo.owner, email: '' } };
}

/** `full-repository`, a superset of `repository` and `minimal-repository`, used by every repo route. */
export function repoJson(call: GhCall, repo: GithubRepo): Record<string, unknown> {
  const fullName = `${repo.owner}/${repo.name}`;
  const url = `${call.api}/repos/${fullName}`;
  const host = new URL(call.web).host;
  const owner = repoOwnerAccount(call.state, repo);
  const role = repoRole(call.state, repo, call.user?.login);
  const json: Record<string, unknown> = {
    id: repo.id,
    node_id: nodeId('Repository', repo.id),
    name: repo.name,
    full_name: fullName,
    private: repo.private,
    owner: simpleUser(call, owner),
    html_url: `${call.web}/${fullName}`,
    description: repo.description,
    fork: repo.fork,
    url,
    forks_url: `${url}/forks`,
    keys_url: `${url}/keys{/key_id}`,
    collaborators_url: `${url}/collaborators{/collaborator}`,
    teams_url: `${url}/teams`,
    hooks_url: `${url}/hooks`,
    issue_events_url: `${url}/issues/events{/number}`,
    events_url: `${url}/events`,
    assignees_url: `${url}/assignees{/user}`,
    branches_url: `${url}/branches{/branch}`,
    tags_url: `${url}/tags`,
    blobs_url: `${url}/git/blobs{/sha}`,
    git_tags_url: `${url}/git/tags{/sha}`,
    git_refs_url: `${url}/git/refs{/sha}`,
    trees_url: `${url}/git/trees{/sha}`,
    statuses_url: `${url}/statuses/{sha}`,
    languages_url: `${url}/languages`,
    stargazers_url: `${url}/stargazers`,
    contributors_url: `${url}/contributors`,
    subscribers_url: `${url}/subscribers`,
    subscription_url: `${url}/subscription`,
    commits_url: `${url}/commits{/sha}`,
    git_commits_url: `${url}/git/commits{/sha}`,
    comments_url: `${url}/comments{/number}`,
    issue_comment_url: `${url}/issues/comments{/number}`,
    contents_url: `${url}/contents/{+path}`,
    compare_url: `${url}/compare/{base}...{head}`,
    merges_url: `${url}/merges`,
    archive_url: `${url}/{archive_format}{/ref}`,
    downloads_url: `${url}/downloads`,
    issues_url: `${url}/issues{/number}`,
    pulls_url: `${url}/pulls{/number}`,
    milestones_url: `${url}/milestones{/number}`,
    notifications_url: `${url}/notifications{?since,all,participating}`,
    labels_url: `${url}/labels{/name}`,
    releases_url: `${url}/releases{/id}`,
    deployments_url: `${url}/deployments`,
    created_at: repo.createdAt,
    updated_at: repo.updatedAt,
    // GitHub reports the creation time for a repo nobody has pushed to yet.
    pushed_at: repo.pushedAt ?? repo.createdAt,
    git_url: `git://${host}/${fullName}.git`,
    ssh_url: `git@${host}:${fullName}.git`,
    clone_url: `${call.web}/${fullName}.git`,
    svn_url: `${call.web}/${fullName}`,
    homepage: null,
    size: 0,
    stargazers_count: 0,
    watchers_count: 0,
    language: null,
    has_issues: true,
    has_projects: true,
    has_downloads: true,
    has_wiki: true,
    has_pages: false,
    has_discussions: false,
    forks_count: 0,
    mirror_url: null,
    archived: repo.archived,
    disabled: false,
    open_issues_count: 0,
    license: null,
    allow_forking: true,
    is_template: false,
    web_commit_signoff_required: false,
    topics: [],
    visibility: repo.visibility,
    forks: 0,
    open_issues: 0,
    watchers: 0,
    default_branch: repo.defaultBranch,
    network_count: 0,
    subscribers_count: 0,
  };
  if (call.user) {
    json.permissions = {
      admin: role === 'admin',
      maintain: role === 'admin',
      push: role === 'admin' || role === 'push',
      triage: role === 'admin' || role === 'push',
      pull: role !== 'none',
    };
  }
  if (owner.kind === 'org') json.organization = simpleUser(call, owner);
  return json;
}

export function repoApi(call: GhCall, repo: GithubRepo): string {
  return `${call.api}/repos/${repo.owner}/${repo.name}`;
}

const VERIFICATION = { verified: false, reason: 'unsigned', signature: null, payload: null, verified_at: null };

/** `git-commit` (Git Data API). */
export function gitCommitJson(call: GhCall, repo: GithubRepo, c: ParsedCommit): Record<string, unknown> {
  const api = repoApi(call, repo);
  const html = `${call.web}/${repo.owner}/${repo.name}`;
  return {
    sha: c.sha,
    node_id: nodeId('Commit', parseInt(c.sha.slice(0, 8), 16)),
    url: `${api}/git/commits/${c.sha}`,
    html_url: `${html}/commit/${c.sha}`,
    author: c.author,
    committer: c.committer,
    tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
    message: c.message,
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/git/commits/${p}`, html_url: `${html}/commit/${p}` })),
    verification: VERIFICATION,
  };
}

/** A user whose email matches a commit identity, as GitHub links commits to accounts. */
function userByEmail(state: ForgeState, email: string): ForgeUser | undefined {
  const lower = email.toLowerCase();
  for (const u of state.githubUsers.values()) if (u.email && u.email.toLowerCase() === lower) return u;
  return undefined;
}

/** `commit` (the REST commit object embedded in `branch-with-protection`). */
export function restCommitJson(call: GhCall, repo: GithubRepo, c: ParsedCommit): Record<string, unknown> {
  const api = repoApi(call, repo);
  const html = `${call.web}/${repo.owner}/${repo.name}`;
  const linked = (email: string): Record<string, unknown> | null => {
    const u = userByEmail(call.state, email);
    return u ? simpleUser(call, { kind: 'user', user: u }) : null;
  };
  return {
    sha: c.sha,
    node_id: nodeId('Commit', parseInt(c.sha.slice(0, 8), 16)),
    commit: {
      author: c.author,
      committer: c.committer,
      message: c.message,
      tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
      url: `${api}/git/commits/${c.sha}`,
      comment_count: 0,
      verification: VERIFICATION,
    },
    url: `${api}/commits/${c.sha}`,
    html_url: `${html}/commit/${c.sha}`,
    comments_url: `${api}/commits/${c.sha}/comments`,
    author: linked(c.author.email),
    committer: linked(c.committer.email),
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/commits/${p}`, html_url: `${html}/commit/${p}` })),
  };
}

/** The `commit` half of `file-commit` (contents API writes). */
export function fileCommitJson(call: GhCall, repo: GithubRepo, c: ParsedCommit): Record<string, unknown> {
  const g = gitCommitJson(call, repo, c);
  return { ...g, html_url: `${call.web}/${repo.owner}/${repo.name}/commit/${c.sha}` };
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

export interface ContentItem {
  type: 'file' | 'dir' | 'symlink' | 'submodule';
  name: string;
  path: string;
  sha: string;
  size: number;
}

export function contentItemFromEntry(entry: TreeEntry, fullPath: string): ContentItem {
  const type =
    entry.type === 'tree'
      ? 'dir'
      : entry.type === 'commit'
        ? 'submodule'
        : entry.mode === '120000'
          ? 'symlink'
          : 'file';
  return { type, name: fullPath.split('/').pop() ?? fullPath, path: fullPath, sha: entry.sha, size: entry.size ?? 0 };
}

/** The fields every contents API item carries (URLs and `_links`). */
export function contentBase(call: GhCall, repo: GithubRepo, item: ContentItem, ref: string): Record<string, unknown> {
  const api = repoApi(call, repo);
  const html = `${call.web}/${repo.owner}/${repo.name}`;
  const self = `${api}/contents/${encodePath(item.path)}?ref=${encodeURIComponent(ref)}`;
  const gitUrl =
    item.type === 'dir'
      ? `${api}/git/trees/${item.sha}`
      : item.type === 'submodule'
        ? null
        : `${api}/git/blobs/${item.sha}`;
  const htmlUrl =
    item.type === 'submodule'
      ? null
      : `${html}/${item.type === 'dir' ? 'tree' : 'blob'}/${ref}/${encodePath(item.path)}`;
  const download =
    item.type === 'file' || item.type === 'symlink' ? `${html}/raw/${ref}/${encodePath(item.path)}` : null;
  return {
    name: item.name,
    path: item.path,
    sha: item.sha,
    size: item.size,
    url: self,
    html_url: htmlUrl,
    git_url: gitUrl,
    download_url: download,
    type: item.type,
    _links: { self, git: gitUrl, html: htmlUrl },
  };
}

/** `protected-branch` / `branch-protection`: what PUT and GET protection answer. */
export function protectionJson(
  call: GhCall,
  repo: GithubRepo,
  branch: string,
  p: GithubBranchProtection,
): Record<string, unknown> {
  const url = `${repoApi(call, repo)}/branches/${encodeURIComponent(branch)}/protection`;
  const raw = p.raw;
  const json: Record<string, unknown> = { url };
  const checks = raw.required_status_checks as
    { strict?: boolean; contexts?: string[]; checks?: { context: string; app_id?: number }[] } | null | undefined;
  if (checks) {
    const contexts = checks.contexts ?? (checks.checks ?? []).map((c) => c.context);
    json.required_status_checks = {
      url: `${url}/required_status_checks`,
      strict: checks.strict ?? false,
      contexts,
      contexts_url: `${url}/required_status_checks/contexts`,
      checks: (checks.checks ?? contexts.map((context) => ({ context, app_id: undefined }))).map((c) => ({
        context: c.context,
        app_id: c.app_id ?? null,
      })),
    };
  }
  const reviews = raw.required_pull_request_reviews as Record<string, unknown> | null | undefined;
  if (reviews) {
    json.required_pull_request_reviews = {
      url: `${url}/required_pull_request_reviews`,
      dismiss_stale_reviews: reviews.dismiss_stale_reviews === true,
      require_code_owner_reviews: reviews.require_code_owner_reviews === true,
      required_approving_review_count:
        typeof reviews.required_approving_review_count === 'number' ? reviews.required_approving_review_count : 1,
      require_last_push_approval: reviews.require_last_push_approval === true,
    };
  }
  if (raw.restrictions && repo.ownerType === 'Organization') {
    json.restrictions = {
      url: `${url}/restrictions`,
      users_url: `${url}/restrictions/users`,
      teams_url: `${url}/restrictions/teams`,
      apps_url: `${url}/restrictions/apps`,
      users: [],
      teams: [],
      apps: [],
    };
  }
  const flag = (key: string): { enabled: boolean } => ({ enabled: raw[key] === true });
  Object.assign(json, {
    required_signatures: { url: `${url}/required_signatures`, enabled: false },
    enforce_admins: { url: `${url}/enforce_admins`, enabled: p.enforceAdmins },
    required_linear_history: flag('required_linear_history'),
    allow_force_pushes: { enabled: p.allowForcePushes },
    allow_deletions: { enabled: p.allowDeletions },
    block_creations: flag('block_creations'),
    required_conversation_resolution: flag('required_conversation_resolution'),
    lock_branch: flag('lock_branch'),
    allow_fork_syncing: flag('allow_fork_syncing'),
  });
  return json;
}
