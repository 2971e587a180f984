import { createHash } from 'node:crypto';
import type {
  BranchSchema,
  CommitSchema,
  CondensedNamespaceSchema,
  ExpandedUserSchema,
  ExtendedProtectedBranchAccessLevelSchema,
  GroupSchema,
  NamespaceSchema,
  PersonalAccessTokenSchema,
  ProjectSchema,
  ProjectVariableSchema,
  ProtectedBranchSchema,
  SimpleProjectSchema,
  SimpleUserSchema,
  TagSchema,
  UserSchema,
} from '@gitbeaker/rest';
import {
  Access,
  groupAccess,
  groupById,
  groupChain,
  projectAccess,
  projectFullPath,
  projectGroup,
} from './gitlab-access.js';
import type { CommitInfo, TagInfo } from './gitlab-git.js';
import type {
  ForgeState,
  ForgeToken,
  ForgeUser,
  GitlabGroup,
  GitlabProject,
  GitlabProtectedBranch,
  GitlabVariable,
} from './state.js';
import { now } from './state.js';

/**
 * GitLab's API entities (`lib/api/entities/*.rb`), typed against gitbeaker's own schema types so
 * the compiler refuses a response that leaves out a field gitbeaker declares. `Wire<T>` keeps
 * every declared key, lets GitLab's real nulls through, names the keys GitLab only sends in some
 * responses (`Loose`) and the few where gitbeaker's type disagrees with what GitLab sends
 * (`Retyped`, e.g. `private_profile` is a boolean on the wire, typed `string` by gitbeaker).
 */

type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };
type Known<T> = Pick<T, KnownKeys<T>>;
type Nullable<T> = { [K in keyof T]: T[K] | null };
export type Wire<T, Loose extends KnownKeys<T> = never, Retyped extends KnownKeys<T> = never> = Nullable<
  Omit<Known<T>, Loose | Retyped>
> &
  Partial<Nullable<Pick<Known<T>, Loose>>> & { [K in Retyped]?: unknown } & Record<string, unknown>;

export interface EntityContext {
  state: ForgeState;
  /** Web base, e.g. http://127.0.0.1:4002 */
  web: string;
  /** Login of the caller, for permissions and visibility of nested objects. */
  login: string | undefined;
}

/** When the forge process started: the creation time of things the seed does not date. */
const FORGE_EPOCH = now();

export const apiBase = (web: string): string => `${web}/api/v4`;

function avatarUrl(email: string): string {
  const hash = createHash('md5').update(email.trim().toLowerCase()).digest('hex');
  return `https://www.gravatar.com/avatar/${hash}?s=80&d=identicon`;
}

// ---------------------------------------------------------------------------------------------
// Users

/** `UserBasic`: what lists and nested authors show. */
export function userBasic(u: ForgeUser, web: string): Wire<SimpleUserSchema, 'created_at'> {
  return {
    id: u.id,
    username: u.login,
    public_email: null,
    name: u.name,
    state: 'active',
    locked: false,
    avatar_url: avatarUrl(u.email),
    web_url: `${web}/${u.login}`,
  };
}

/** `GET /users/:id`. */
export function userPublic(u: ForgeUser, web: string): Wire<UserSchema> {
  return {
    ...userBasic(u, web),
    locked: false,
    created_at: FORGE_EPOCH,
    bio: '',
    bot: false,
    location: '',
    public_email: null,
    skype: '',
    linkedin: '',
    twitter: '',
    discord: '',
    website_url: '',
    organization: '',
    job_title: '',
    pronouns: null,
    work_information: null,
    followers: 0,
    following: 0,
    is_followed: false,
    local_time: null,
  };
}

/** `GET /user`: the caller's own, fuller record. */
export function currentUser(u: ForgeUser, web: string): Wire<ExpandedUserSchema, never, 'private_profile'> {
  return {
    ...userPublic(u, web),
    is_admin: false,
    bot: false,
    last_sign_in_at: FORGE_EPOCH,
    confirmed_at: FORGE_EPOCH,
    last_activity_on: FORGE_EPOCH.slice(0, 10),
    email: u.email,
    commit_email: u.email,
    theme_id: 1,
    color_scheme_id: 1,
    projects_limit: 100000,
    current_sign_in_at: FORGE_EPOCH,
    note: null,
    identities: [],
    can_create_group: true,
    can_create_project: true,
    two_factor_enabled: false,
    external: false,
    private_profile: false,
    namespace_id: u.id,
    created_by: null,
  };
}

/** `GET /personal_access_tokens/self` (`Entities::PersonalAccessTokenWithLastUsedIps`). */
export function personalAccessToken(
  t: ForgeToken,
  user: ForgeUser,
  expired: boolean,
): Wire<PersonalAccessTokenSchema, 'token'> {
  return {
    id: t.id,
    name: t.name,
    revoked: false,
    created_at: FORGE_EPOCH,
    description: null,
    scopes: t.scopes,
    user_id: user.id,
    last_used_at: now(),
    active: !expired,
    expires_at: t.expiresAt ? t.expiresAt.slice(0, 10) : null,
    last_used_ips: ['127.0.0.1'],
  };
}

// ---------------------------------------------------------------------------------------------
// Namespaces and groups

export const groupWebUrl = (web: string, g: GitlabGroup): string => `${web}/groups/${g.fullPath}`;

/** A user's personal namespace shares the user's id: the forge's ids are unique across kinds. */
export const userNamespaceId = (u: ForgeUser): number => u.id;

export function condensedGroupNamespace(g: GitlabGroup, web: string): CondensedNamespaceSchema {
  return {
    id: g.id,
    name: g.name,
    path: g.path,
    kind: 'group',
    full_path: g.fullPath,
    parent_id: g.parentId,
    avatar_url: null,
    web_url: groupWebUrl(web, g),
  };
}

export function condensedUserNamespace(u: ForgeUser, web: string): CondensedNamespaceSchema {
  return {
    id: userNamespaceId(u),
    name: u.name,
    path: u.login,
    kind: 'user',
    full_path: u.login,
    parent_id: null,
    avatar_url: avatarUrl(u.email),
    web_url: `${web}/${u.login}`,
  };
}

function projectsUnder(state: ForgeState, group: GitlabGroup): GitlabProject[] {
  const ids = new Set(
    [...state.gitlabGroups.values()]
      .filter((g) => groupChain(state, g).some((a) => a.id === group.id))
      .map((g) => g.id),
  );
  return [...state.gitlabProjects.values()].filter((p) => p.namespaceKind === 'group' && ids.has(p.namespaceId));
}

export function groupNamespace(g: GitlabGroup, ctx: EntityContext): Wire<NamespaceSchema> {
  const members = new Set<string>();
  for (const sub of ctx.state.gitlabGroups.values()) {
    if (groupChain(ctx.state, sub).some((a) => a.id === g.id)) for (const m of sub.members.keys()) members.add(m);
  }
  return {
    ...condensedGroupNamespace(g, ctx.web),
    members_count_with_descendants: members.size,
    billable_members_count: members.size,
    root_repository_size: 0,
    projects_count: [...ctx.state.gitlabProjects.values()].filter(
      (p) => p.namespaceKind === 'group' && p.namespaceId === g.id,
    ).length,
    plan: 'free',
    trial_ends_on: null,
    trial: false,
  };
}

export function userNamespace(u: ForgeUser, ctx: EntityContext): Wire<NamespaceSchema> {
  return {
    ...condensedUserNamespace(u, ctx.web),
    members_count_with_descendants: 1,
    billable_members_count: 1,
    projects_count: [...ctx.state.gitlabProjects.values()].filter(
      (p) => p.namespaceKind === 'user' && p.namespace.toLowerCase() === u.login.toLowerCase(),
    ).length,
    plan: 'free',
    trial_ends_on: null,
    trial: false,
  };
}

export function group(g: GitlabGroup, ctx: EntityContext): Wire<GroupSchema> {
  const chain = groupChain(ctx.state, g).reverse();
  return {
    id: g.id,
    web_url: groupWebUrl(ctx.web, g),
    name: g.name,
    path: g.path,
    description: '',
    visibility: g.visibility,
    share_with_group_lock: false,
    require_two_factor_authentication: false,
    two_factor_grace_period: 48,
    project_creation_level: 'maintainer',
    auto_devops_enabled: null,
    subgroup_creation_level: 'maintainer',
    emails_disabled: false,
    emails_enabled: true,
    mentions_disabled: null,
    lfs_enabled: true,
    default_branch: null,
    default_branch_protection: 2,
    default_branch_protection_defaults: {
      allowed_to_push: [{ access_level: Access.maintainer }],
      allow_force_push: false,
      allowed_to_merge: [{ access_level: Access.maintainer }],
    },
    avatar_url: null,
    request_access_enabled: true,
    full_name: chain.map((c) => c.name).join(' / '),
    full_path: g.fullPath,
    created_at: g.createdAt,
    parent_id: g.parentId,
    organization_id: 1,
    shared_runners_setting: 'enabled',
    ldap_cn: null,
    ldap_access: null,
    wiki_access_level: 'enabled',
    marked_for_deletion_on: null,
    archived: false,
  };
}

// ---------------------------------------------------------------------------------------------
// Projects

export function projectNamespace(p: GitlabProject, ctx: EntityContext): CondensedNamespaceSchema {
  if (p.namespaceKind === 'group') {
    const g = projectGroup(ctx.state, p);
    if (g) return condensedGroupNamespace(g, ctx.web);
  } else {
    for (const u of ctx.state.gitlabUsers.values()) {
      if (u.login.toLowerCase() === p.namespace.toLowerCase()) return condensedUserNamespace(u, ctx.web);
    }
  }
  const last = p.namespace.split('/').pop() ?? p.namespace;
  return {
    id: p.namespaceId,
    name: last,
    path: last,
    kind: p.namespaceKind,
    full_path: p.namespace,
    parent_id: null,
    avatar_url: null,
    web_url: `${ctx.web}/${p.namespace}`,
  };
}

export const projectWebUrl = (web: string, p: GitlabProject): string => `${web}/${projectFullPath(p)}`;

/** GitLab shows the configured default (`main`) for a project that has no branch yet. */
export const defaultBranchOf = (p: GitlabProject): string => p.defaultBranch ?? 'main';

/** `Entities::BasicProjectDetails`, what `simple=true` lists return. */
export function simpleProject(p: GitlabProject, ctx: EntityContext): Wire<SimpleProjectSchema> {
  const full = projectFullPath(p);
  const ns = projectNamespace(p, ctx);
  const host = new URL(ctx.web).hostname;
  return {
    id: p.id,
    description: p.description,
    name: p.name,
    name_with_namespace: `${namespaceTitle(p, ctx)} / ${p.name}`,
    path: p.path,
    path_with_namespace: full,
    created_at: p.createdAt,
    default_branch: defaultBranchOf(p),
    tag_list: [],
    topics: [],
    ssh_url_to_repo: `git@${host}:${full}.git`,
    http_url_to_repo: `${ctx.web}/${full}.git`,
    web_url: projectWebUrl(ctx.web, p),
    readme_url: null,
    forks_count: [...ctx.state.gitlabProjects.values()].filter((f) => f.forkedFromId === p.id).length,
    avatar_url: null,
    star_count: 0,
    last_activity_at: p.lastActivityAt,
    visibility: p.visibility,
    namespace: ns,
  };
}

function namespaceTitle(p: GitlabProject, ctx: EntityContext): string {
  const g = projectGroup(ctx.state, p);
  if (g)
    return groupChain(ctx.state, g)
      .reverse()
      .map((c) => c.name)
      .join(' / ');
  for (const u of ctx.state.gitlabUsers.values())
    if (u.login.toLowerCase() === p.namespace.toLowerCase()) return u.name;
  return p.namespace;
}

export interface ProjectRenderOptions {
  emptyRepo: boolean;
  /** `permissions` is only part of `GET /projects/:id`. */
  withPermissions?: boolean;
  /** Rendered source of a fork, when the caller can see it. */
  forkedFrom?: Wire<SimpleProjectSchema> | undefined;
}

/** `Entities::Project` (and `ProjectWithAccess` for a single project). */
export function project(
  p: GitlabProject,
  ctx: EntityContext,
  o: ProjectRenderOptions,
): Wire<
  ProjectSchema,
  | 'license'
  | 'license_url'
  | 'permissions'
  | 'runners_token'
  | 'mirror_user_id'
  | 'mirror_trigger_builds'
  | 'only_mirror_protected_branches'
  | 'mirror_overwrites_diverged_branches'
  | 'marked_for_deletion_on',
  'container_expiration_policy' | 'ci_pipeline_variables_minimum_override_role' | 'owner'
> {
  const simple = simpleProject(p, ctx);
  const api = apiBase(ctx.web);
  const creator = [...ctx.state.gitlabUsers.values()].find((u) => u.login.toLowerCase() === p.creator.toLowerCase());
  const owner =
    p.namespaceKind === 'user'
      ? [...ctx.state.gitlabUsers.values()].find((u) => u.login.toLowerCase() === p.namespace.toLowerCase())
      : undefined;
  const body: ReturnType<typeof project> = {
    ...simple,
    description_html: p.description
      ? `<p data-sourcepos="1:1-1:${p.description.length}" dir="auto">${escapeHtml(p.description)}</p>`
      : '',
    _links: {
      self: `${api}/projects/${p.id}`,
      issues: `${api}/projects/${p.id}/issues`,
      merge_requests: `${api}/projects/${p.id}/merge_requests`,
      repo_branches: `${api}/projects/${p.id}/repository/branches`,
      labels: `${api}/projects/${p.id}/labels`,
      events: `${api}/projects/${p.id}/events`,
      members: `${api}/projects/${p.id}/members`,
      cluster_agents: `${api}/projects/${p.id}/cluster_agents`,
    },
    packages_enabled: true,
    empty_repo: o.emptyRepo,
    archived: p.archived,
    visibility: p.visibility,
    ...(owner ? { owner: { ...userBasic(owner, ctx.web), created_at: FORGE_EPOCH } } : {}),
    resolve_outdated_diff_discussions: false,
    container_expiration_policy: {
      cadence: '1d',
      enabled: false,
      keep_n: 10,
      older_than: '90d',
      name_regex: '.*',
      name_regex_keep: null,
      next_run_at: p.createdAt,
    },
    repository_object_format: 'sha1',
    issues_enabled: true,
    merge_requests_enabled: true,
    wiki_enabled: true,
    jobs_enabled: true,
    snippets_enabled: true,
    container_registry_enabled: true,
    service_desk_enabled: false,
    service_desk_address: null,
    can_create_merge_request_in: projectAccess(ctx.state, ctx.login, p) >= Access.developer,
    issues_access_level: 'enabled',
    repository_access_level: 'enabled',
    merge_requests_access_level: 'enabled',
    forking_access_level: 'enabled',
    wiki_access_level: 'enabled',
    builds_access_level: 'enabled',
    snippets_access_level: 'enabled',
    pages_access_level: 'private',
    analytics_access_level: 'enabled',
    container_registry_access_level: 'enabled',
    security_and_compliance_access_level: 'private',
    releases_access_level: 'enabled',
    environments_access_level: 'enabled',
    feature_flags_access_level: 'enabled',
    infrastructure_access_level: 'enabled',
    monitor_access_level: 'enabled',
    model_experiments_access_level: 'enabled',
    model_registry_access_level: 'enabled',
    emails_disabled: false,
    emails_enabled: true,
    shared_runners_enabled: true,
    lfs_enabled: true,
    creator_id: creator?.id ?? 0,
    import_url: null,
    import_type: null,
    import_status: 'none',
    import_error: null,
    open_issues_count: 0,
    updated_at: p.lastActivityAt,
    ci_default_git_depth: 20,
    ci_forward_deployment_enabled: true,
    ci_forward_deployment_rollback_allowed: true,
    ci_job_token_scope_enabled: false,
    ci_separated_caches: true,
    ci_allow_fork_pipelines_to_run_in_parent_project: true,
    ci_id_token_sub_claim_components: ['project_path', 'ref_type', 'ref'],
    build_git_strategy: 'fetch',
    keep_latest_artifact: true,
    restrict_user_defined_variables: true,
    ci_pipeline_variables_minimum_override_role: 'developer',
    runner_token_expiration_interval: null,
    group_runners_enabled: true,
    auto_cancel_pending_pipelines: 'enabled',
    build_timeout: 3600,
    auto_devops_enabled: false,
    auto_devops_deploy_strategy: 'continuous',
    ci_config_path: null,
    public_jobs: true,
    shared_with_groups: (p.sharedWithGroups ?? []).flatMap((s) => {
      const g = groupById(ctx.state, s.groupId);
      return g
        ? [
            {
              group_id: g.id,
              group_name: g.name,
              group_full_path: g.fullPath,
              group_access_level: s.accessLevel,
              expires_at: null,
            },
          ]
        : [];
    }),
    only_allow_merge_if_pipeline_succeeds: false,
    allow_merge_on_skipped_pipeline: null,
    request_access_enabled: true,
    only_allow_merge_if_all_discussions_are_resolved: false,
    remove_source_branch_after_merge: true,
    printing_merge_request_link_enabled: true,
    printing_merge_requests_link_enabled: true,
    merge_method: 'merge',
    squash_option: 'default_off',
    enforce_auth_checks_on_uploads: true,
    suggestion_commit_message: null,
    merge_commit_template: null,
    squash_commit_template: null,
    issue_branch_template: '',
    warn_about_potentially_unwanted_characters: true,
    autoclose_referenced_issues: true,
    max_artifacts_size: null,
    external_authorization_classification_label: '',
    requirements_enabled: false,
    requirements_access_level: 'enabled',
    security_and_compliance_enabled: true,
    compliance_frameworks: [],
    container_registry_image_prefix: `registry.${new URL(ctx.web).hostname}/${projectFullPath(p)}`,
    repository_storage: 'default',
    ci_restrict_pipeline_cancellation_role: 'developer',
    mirror: false,
    ...(p.forkedFromId !== null && o.forkedFrom ? { forked_from_project: o.forkedFrom } : {}),
  };
  if (o.withPermissions) body.permissions = permissions(p, ctx);
  return body;
}

function permissions(p: GitlabProject, ctx: EntityContext): NonNullable<ProjectSchema['permissions']> | null {
  const login = ctx.login;
  const direct = login ? [...p.members].find(([k]) => k.toLowerCase() === login.toLowerCase())?.[1] : undefined;
  const personal =
    p.namespaceKind === 'user' && login !== undefined && p.namespace.toLowerCase() === login.toLowerCase();
  const g = projectGroup(ctx.state, p);
  const viaGroup = g && login ? groupAccess(ctx.state, login, g) : 0;
  const entry = (level: number): { access_level: number; notification_level: number } => ({
    access_level: level,
    notification_level: 3,
  });
  return {
    project_access: (direct ?? (personal ? Access.owner : 0)) > 0 ? entry(direct ?? Access.owner) : null,
    group_access: viaGroup > 0 ? entry(viaGroup) : null,
  } as unknown as NonNullable<ProjectSchema['permissions']>;
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

// ---------------------------------------------------------------------------------------------
// Protected branches and variables

const ACCESS_DESCRIPTIONS: Record<number, string> = {
  0: 'No one',
  30: 'Developers + Maintainers',
  40: 'Maintainers',
  60: 'Admins',
};

export const accessLevelDescription = (level: number): string => ACCESS_DESCRIPTIONS[level] ?? 'Maintainers';

export function protectedBranch(pb: GitlabProtectedBranch): Wire<ProtectedBranchSchema> {
  type Level = ExtendedProtectedBranchAccessLevelSchema & { deploy_key_id?: number | null };
  // Access-level rows have ids of their own in GitLab; derive stable ones from the rule's id.
  const level = (offset: number, accessLevel: number, push: boolean): Level[] => [
    {
      id: pb.id * 10 + offset,
      access_level: accessLevel,
      access_level_description: accessLevelDescription(accessLevel),
      ...(push ? { deploy_key_id: null } : {}),
      user_id: null,
      group_id: null,
    },
  ];
  return {
    id: pb.id,
    name: pb.name,
    push_access_levels: level(1, pb.pushAccessLevel, true),
    merge_access_levels: level(2, pb.mergeAccessLevel, false),
    unprotect_access_levels: level(3, pb.unprotectAccessLevel, false),
    allow_force_push: pb.allowForcePush,
    code_owner_approval_required: pb.codeOwnerApprovalRequired,
    inherited: false,
  };
}

/** `Entities::Ci::Variable`: a hidden variable's value is never returned (`Ci::VariableValue`). */
export function variable(v: GitlabVariable): Wire<ProjectVariableSchema> {
  return {
    variable_type: v.variableType,
    key: v.key,
    value: v.hidden ? null : v.value,
    hidden: v.hidden,
    protected: v.protected,
    masked: v.masked,
    raw: v.raw,
    environment_scope: v.environmentScope,
    description: v.description,
  };
}

// ---------------------------------------------------------------------------------------------
// Commits, branches, tags

export function commit(c: CommitInfo, p: GitlabProject, web: string): Wire<CommitSchema> {
  const title = c.message.split('\n')[0] ?? '';
  return {
    id: c.id,
    short_id: c.id.slice(0, 8),
    created_at: c.committedDate,
    parent_ids: c.parentIds,
    title,
    message: c.message,
    author_name: c.authorName,
    author_email: c.authorEmail,
    authored_date: c.authoredDate,
    committer_name: c.committerName,
    committer_email: c.committerEmail,
    committed_date: c.committedDate,
    trailers: {},
    extended_trailers: {},
    web_url: `${projectWebUrl(web, p)}/-/commit/${c.id}`,
  };
}

/** `Entities::CommitDetail`: what `POST /repository/commits` and `GET .../commits/:sha` return. */
export function commitDetail(
  c: CommitInfo,
  p: GitlabProject,
  web: string,
  stats: { additions: number; deletions: number; total: number } | undefined,
): Wire<CommitSchema> {
  return {
    ...commit(c, p, web),
    ...(stats ? { stats } : {}),
    status: null,
    project_id: p.id,
    last_pipeline: null,
  };
}

export function branch(
  name: string,
  c: CommitInfo,
  p: GitlabProject,
  ctx: EntityContext,
  flags: {
    merged: boolean;
    protected: boolean;
    canPush: boolean;
    developersCanPush: boolean;
    developersCanMerge: boolean;
  },
): Wire<BranchSchema> {
  return {
    name,
    commit: commit(c, p, ctx.web) as unknown as BranchSchema['commit'],
    merged: flags.merged,
    protected: flags.protected,
    developers_can_push: flags.developersCanPush,
    developers_can_merge: flags.developersCanMerge,
    can_push: flags.canPush,
    default: name === defaultBranchOf(p),
    web_url: `${projectWebUrl(ctx.web, p)}/-/tree/${name}`,
  };
}

export function tag(t: TagInfo, c: CommitInfo | undefined, p: GitlabProject, web: string): Wire<TagSchema> {
  return {
    name: t.name,
    message: t.message,
    target: t.target,
    commit: c ? (commit(c, p, web) as unknown as CommitSchema) : null,
    release: null,
    protected: false,
    created_at: t.createdAt,
  };
}

export const projectsUnderGroup = projectsUnder;
