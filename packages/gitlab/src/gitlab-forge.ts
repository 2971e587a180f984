import {
  Branches,
  Commits,
  Groups,
  Namespaces,
  PersonalAccessTokens,
  ProjectVariables,
  Projects,
  ProtectedBranches,
  ProtectedTags,
  RepositoryFiles,
  Users,
  type CommitAction,
} from '@gitbeaker/rest';
import {
  ForgeApiError,
  RefbridgeError,
  UsageError,
  silentLogger,
  type CommitFilesOptions,
  type Forge,
  type ListReposOptions,
  type ListReposResult,
  type Logger,
  type ProtectionRule,
  type RepoInfo,
  type SecretMasker,
  type SecretOptions,
  type TokenInfo,
  type VariableOptions,
  type Visibility,
  type WriteOutcome,
} from '@refbridge/core';
import type { GitCredential } from '@refbridge/core';
import {
  httpDescriptionOf,
  httpStatusOf,
  isGitlabTransportError,
  toForgeApiError,
  type FailureContext,
} from './gitlab-errors.js';
import {
  GitlabHttpError,
  GitlabNetworkError,
  GitlabRequester,
  GitlabTimeoutError,
  isTransientFailure,
  type RetryOptions,
} from './gitlab-requester.js';
import { maskingProblems, variableKeyProblem } from './masking.js';
import { matchesRefPattern, parseRef } from './ref-patterns.js';

export interface GitlabForgeOptions {
  /** Web base, e.g. `https://gitlab.com` or `https://git.example.com/gitlab` (relative URL root). */
  webUrl: string;
  /** REST base; defaults to `<webUrl>/api/v4`. Must end in `/api/v4`, as every GitLab serves it. */
  apiUrl?: string;
  token: string;
  logger?: Logger;
  /** The token is registered here, so every log line and error is masked even if GitLab echoes it. */
  masker: SecretMasker;
  /** Retry policy for 429/5xx/dropped connections; tests shorten the waits. */
  retry?: RetryOptions;
  /** Limit for one API call including its retries (default 300 s, gitbeaker's). */
  timeoutMs?: number;
}

/** A value refbridge will not store as a GitLab secret because GitLab could not mask it. */
export class UnmaskableSecretError extends RefbridgeError {
  readonly problems: readonly string[];
  constructor(name: string, project: string, problems: readonly string[]) {
    super(
      `refusing to store "${name}" in ${project}: GitLab cannot mask this value (${problems.join('; ')}), and an unmasked secret would be printed in job logs`,
      {
        hint: 'use a value of at least 8 characters from A-Z a-z 0-9 + / = @ : . ~ - _ with no whitespace (tokens issued by GitHub and GitLab qualify), or base64-encode it and decode it in the job',
      },
    );
    this.problems = problems;
  }
}

const PER_PAGE = 100;
/** Bounds every listing loop: 100,000 pages of 100 is more than any GitLab instance holds. */
const MAX_PAGES = 100_000;

type Json = Record<string, unknown>;

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function visibilityOf(value: unknown): Visibility {
  return value === 'public' || value === 'internal' ? value : 'private';
}

/** Trims slashes and a `.git` suffix; refuses paths that are not `namespace/…/project`. */
export function normalizeProjectPath(path: string): string {
  const trimmed = path
    .trim()
    .replace(/^\/+|\/+$/g, '')
    .replace(/\.git$/, '');
  const segments = trimmed.split('/');
  if (segments.length < 2 || segments.some((s) => s === '' || s === '.' || s === '..' || /\s/.test(s))) {
    throw new UsageError(
      `"${path}" is not a GitLab project path`,
      'write the full path with its namespace, e.g. `my-group/sub-group/project` or `username/project`',
    );
  }
  return trimmed;
}

function normalizeNamespacePath(path: string): string {
  const trimmed = path.trim().replace(/^\/+|\/+$/g, '');
  if (trimmed === '' || trimmed.split('/').some((s) => s === '' || s === '.' || s === '..' || /\s/.test(s))) {
    throw new UsageError(`"${path}" is not a GitLab group or user`, 'write a group path such as `my-group/sub-group`');
  }
  return trimmed;
}

function stripSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

export function createGitlabForge(options: GitlabForgeOptions): GitlabForge {
  return new GitlabForge(options);
}

export class GitlabForge implements Forge {
  readonly platform = 'gitlab' as const;
  readonly webUrl: string;
  readonly apiUrl: string;

  private readonly token: string;
  private readonly logger: Logger;
  private readonly masker: SecretMasker;
  private readonly http: GitlabRequester;
  private readonly api: {
    branches: InstanceType<typeof Branches<false>>;
    commits: InstanceType<typeof Commits<false>>;
    groups: InstanceType<typeof Groups<false>>;
    namespaces: InstanceType<typeof Namespaces<false>>;
    tokens: InstanceType<typeof PersonalAccessTokens<false>>;
    projects: InstanceType<typeof Projects<false>>;
    protectedBranches: InstanceType<typeof ProtectedBranches<false>>;
    protectedTags: InstanceType<typeof ProtectedTags<false>>;
    files: InstanceType<typeof RepositoryFiles<false>>;
    users: InstanceType<typeof Users<false>>;
    variables: InstanceType<typeof ProjectVariables<false>>;
  };

  constructor(options: GitlabForgeOptions) {
    this.webUrl = stripSlash(checkUrl(options.webUrl, 'GitLab web URL'));
    this.apiUrl = stripSlash(checkUrl(options.apiUrl ?? `${this.webUrl}/api/v4`, 'GitLab API URL'));
    if (!this.apiUrl.endsWith('/api/v4')) {
      throw new UsageError(
        `the GitLab API URL ${this.apiUrl} does not end in /api/v4`,
        'set GITLAB_API_URL to <GitLab URL>/api/v4 (e.g. https://gitlab.example.com/api/v4), or set only GITLAB_URL',
      );
    }
    if (!options.token) {
      throw new UsageError(
        'no GitLab token was given',
        'set GITLAB_TOKEN to a personal access token with the `api` scope',
      );
    }
    this.token = options.token;
    this.masker = options.masker;
    this.masker.add(options.token);
    this.logger = options.logger ?? silentLogger;
    this.http = new GitlabRequester({
      logger: this.logger,
      masker: this.masker,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
    });
    // gitbeaker appends /api/v4 to `host` itself.
    const resourceOptions = {
      host: this.apiUrl.slice(0, -'/api/v4'.length),
      token: options.token,
      requesterFn: this.http.requesterFn,
      queryTimeout: options.timeoutMs ?? 300_000,
    };
    this.api = {
      branches: new Branches(resourceOptions),
      commits: new Commits(resourceOptions),
      groups: new Groups(resourceOptions),
      namespaces: new Namespaces(resourceOptions),
      tokens: new PersonalAccessTokens(resourceOptions),
      projects: new Projects(resourceOptions),
      protectedBranches: new ProtectedBranches(resourceOptions),
      protectedTags: new ProtectedTags(resourceOptions),
      files: new RepositoryFiles(resourceOptions),
      users: new Users(resourceOptions),
      variables: new ProjectVariables(resourceOptions),
    };
  }

  /** HTTP requests this forge has sent, retries included. */
  get requestCount(): number {
    return this.http.totalRequests;
  }

  gitUrl(path: string): string {
    return `${this.webUrl}/${normalizeProjectPath(path)}.git`;
  }

  gitCredential(): GitCredential {
    return { url: this.webUrl, username: 'oauth2', token: this.token };
  }

  async tokenInfo(): Promise<TokenInfo> {
    let login: string;
    try {
      const user = (await this.api.users.showCurrentUser()) as Json;
      login = str(user.username) ?? '';
    } catch (error) {
      throw this.fail(error, { action: 'reading the authenticated user (GET /user)' });
    }
    let scopes: string[] | undefined;
    try {
      const token = (await this.api.tokens.show()) as Json;
      scopes = Array.isArray(token.scopes) ? token.scopes.filter((s): s is string => typeof s === 'string') : undefined;
    } catch (error) {
      // Older GitLab (< 15.5), OAuth and job tokens have no /personal_access_tokens/self: the
      // scopes are then unknown, which callers treat as "can't check up front", not as a failure.
      const status = httpStatusOf(error);
      if (status === undefined || ![400, 401, 403, 404].includes(status)) {
        throw this.fail(error, { action: 'reading the token scopes (GET /personal_access_tokens/self)' });
      }
      this.logger.debug(`GitLab does not report this token's scopes (HTTP ${status}); scope checks are skipped`);
    }
    return { login, scopes };
  }

  async getRepo(path: string): Promise<RepoInfo | undefined> {
    const project = normalizeProjectPath(path);
    try {
      return this.toRepoInfo(await this.api.projects.show(project));
    } catch (error) {
      if (httpStatusOf(error) === 404) return undefined;
      throw this.fail(error, {
        action: `reading project "${project}"`,
        hints: {
          403: `the token's user needs at least Reporter access to "${project}" and the token the \`api\` or \`read_api\` scope`,
        },
      });
    }
  }

  async createRepo(path: string, options: { visibility: Visibility; description?: string }): Promise<RepoInfo> {
    const project = normalizeProjectPath(path);
    const segments = project.split('/');
    const name = segments[segments.length - 1] as string;
    const namespacePath = segments.slice(0, -1).join('/');
    const namespaceId = await this.ensureNamespace(namespacePath, options.visibility);
    try {
      return await this.createSafely(
        `create of project ${project}`,
        async () => {
          const created = (await this.api.projects.create({
            name,
            path: name,
            namespaceId,
            visibility: options.visibility,
            ...(options.description === undefined ? {} : { description: options.description }),
          })) as Json;
          this.logger.info(`created GitLab project ${project} (${options.visibility})`);
          return this.toRepoInfo(created);
        },
        async () => {
          const existing = await this.getRepo(project);
          if (existing === undefined) return undefined;
          const differences: string[] = [];
          if (existing.visibility !== options.visibility) {
            differences.push(`visibility ${existing.visibility}, asked ${options.visibility}`);
          }
          if (options.description !== undefined && (existing.description ?? '') !== options.description) {
            differences.push('a different description');
          }
          if (differences.length > 0) {
            throw conflict(
              `GitLab project "${project}"`,
              differences,
              `look at ${this.webUrl}/${project}: if it is the intended target, run again (refbridge uses an existing project as it is); otherwise rename or remove it`,
            );
          }
          return existing;
        },
      );
    } catch (error) {
      if (httpStatusOf(error) === 400 && /already been taken|already exists/i.test(httpDescriptionOf(error))) {
        // Someone (or a parallel run) created it in between: what the caller wanted exists.
        const existing = await this.getRepo(project);
        if (existing) {
          this.logger.info(`GitLab project ${project} already exists; using it`);
          return existing;
        }
      }
      throw this.fail(error, {
        action: `creating project "${project}"`,
        hints: {
          403: `the token's user needs at least Developer (or Maintainer, per the group's project creation setting) in "${namespacePath}", and the token the \`api\` scope`,
        },
      });
    }
  }

  /**
   * Finds the namespace for a new project, creating missing groups one level at a time (GitLab
   * never creates parents implicitly, and flattening `a/b/c` into `a-b-c` is a failure mode of
   * other tools). Walks up from the full path so an existing deep group costs one request.
   */
  private async ensureNamespace(namespacePath: string, visibility: Visibility): Promise<number> {
    const segments = namespacePath.split('/');
    let parentId: number | undefined;
    let existingDepth = 0;
    for (let depth = segments.length; depth >= 1; depth -= 1) {
      const prefix = segments.slice(0, depth).join('/');
      const found = await this.findNamespace(prefix);
      if (!found) continue;
      if (depth === segments.length) return found.id;
      if (found.kind === 'user') {
        throw new ForgeApiError(
          'gitlab',
          `cannot create "${segments.slice(0, depth + 1).join('/')}": "${prefix}" is a user namespace, and users cannot have subgroups`,
          undefined,
          'put the project directly under the user, or under a group',
        );
      }
      parentId = found.id;
      existingDepth = depth;
      break;
    }
    for (let depth = existingDepth + 1; depth <= segments.length; depth += 1) {
      const groupPath = segments.slice(0, depth).join('/');
      const segment = segments[depth - 1] as string;
      parentId = await this.createGroup(groupPath, segment, parentId, visibility);
    }
    return parentId as number;
  }

  private async findNamespace(path: string): Promise<{ id: number; kind: string } | undefined> {
    try {
      const ns = (await this.api.namespaces.show(path)) as Json;
      return { id: Number(ns.id), kind: str(ns.kind) ?? 'group' };
    } catch (error) {
      if (httpStatusOf(error) === 404) return undefined;
      throw this.fail(error, { action: `looking up namespace "${path}"` });
    }
  }

  private async createGroup(
    groupPath: string,
    segment: string,
    parentId: number | undefined,
    visibility: Visibility,
  ): Promise<number> {
    const topLevel = parentId === undefined;
    try {
      return await this.createSafely(
        `create of ${topLevel ? 'group' : 'subgroup'} ${groupPath}`,
        async () => {
          const group = (await this.api.groups.create(segment, segment, {
            visibility,
            ...(topLevel ? {} : { parentId }),
          })) as Json;
          this.logger.info(`created GitLab ${topLevel ? 'group' : 'subgroup'} ${groupPath} (${visibility})`);
          return Number(group.id);
        },
        () => this.recoverGroup(groupPath, parentId, visibility),
      );
    } catch (error) {
      if (error instanceof ForgeApiError) throw error;
      const status = httpStatusOf(error);
      if (status === 400 && /already been taken/i.test(httpDescriptionOf(error))) {
        // Created by a parallel run, or it exists but this user cannot see it.
        const found = await this.findNamespace(groupPath);
        if (found) return found.id;
        throw new ForgeApiError(
          'gitlab',
          `the GitLab group path "${groupPath}" is taken, but the token's user cannot see it`,
          400,
          `ask an owner of "${groupPath}" to add the user (at least Maintainer), or choose another path`,
        );
      }
      if (topLevel) {
        throw this.fail(error, {
          action: `creating the top-level group "${groupPath}"`,
          hints: {
            403: `create the group "${groupPath}" in the GitLab UI (GitLab.com and many instances do not let API tokens create top-level groups), or have an admin allow the user to create groups, then run again`,
            other: `create the group "${groupPath}" in the GitLab UI, or have an admin allow the user to create groups, then run again`,
          },
        });
      }
      const parent = groupPath.split('/').slice(0, -1).join('/');
      throw this.fail(error, {
        action: `creating subgroup "${groupPath}"`,
        hints: {
          403: `the token's user needs the Maintainer or Owner role in "${parent}" (per its subgroup creation setting); or create "${groupPath}" in the GitLab UI and run again`,
        },
      });
    }
  }

  /** The group at `groupPath` if it is the one `createGroup` asked for; throws if it differs. */
  private async recoverGroup(
    groupPath: string,
    parentId: number | undefined,
    visibility: Visibility,
  ): Promise<number | undefined> {
    let group: Json;
    try {
      group = await this.api.groups.show(groupPath);
    } catch (error) {
      if (httpStatusOf(error) === 404) return undefined;
      throw this.fail(error, { action: `looking up group "${groupPath}"` });
    }
    const differences: string[] = [];
    const actualParent =
      group.parent_id === null || group.parent_id === undefined ? undefined : Number(group.parent_id);
    if (actualParent !== parentId) differences.push('a different parent group');
    if (visibilityOf(group.visibility) !== visibility) {
      differences.push(`visibility ${visibilityOf(group.visibility)}, asked ${visibility}`);
    }
    if (differences.length > 0) {
      throw conflict(
        `GitLab group "${groupPath}"`,
        differences,
        `look at ${this.webUrl}/groups/${groupPath}: if it is the intended group, run again (refbridge uses existing groups as they are)`,
      );
    }
    return Number(group.id);
  }

  /** GitLab sends no ETags on project lists, so `options.cache` is not used and `notModified` is 0. */
  async listRepos(options: ListReposOptions = {}): Promise<ListReposResult> {
    const { value: repos, requests } = await this.http.counting(() => this.listProjects(options));
    return { repos, requests, notModified: 0 };
  }

  private async listProjects(options: ListReposOptions): Promise<RepoInfo[]> {
    if (options.owner === undefined) {
      // Offset pagination here too, one code path for every listing; GitLab caps /projects offset
      // pagination at 50,000 projects, far above any one token's memberships.

      return this.paginate('the projects the token is a member of', (page) =>
        this.api.projects.all({
          membership: true,
          pagination: 'offset',
          page,
          perPage: PER_PAGE,
          showExpanded: true,
        }),
      );
    }
    const owner = normalizeNamespacePath(options.owner);
    const includeSubgroups = options.includeSubgroups ?? true;
    const groupPage = (page: number) =>
      this.api.groups.allProjects(owner, {
        includeSubgroups,
        withShared: false,
        pagination: 'offset',
        page,
        perPage: PER_PAGE,
        showExpanded: true,
      });
    // The first group page doubles as the "is it a group?" check, so a group costs no extra request.
    let first: Awaited<ReturnType<typeof groupPage>> | undefined;
    try {
      first = await groupPage(1);
    } catch (error) {
      if (httpStatusOf(error) !== 404) throw this.listingFailure(error, `group "${owner}"`, 1);
    }
    if (first) return this.paginate(`group "${owner}"`, groupPage, first);

    const userId = await this.findUserId(owner);
    if (userId === undefined) {
      throw new ForgeApiError(
        'gitlab',
        `no GitLab group or user "${owner}" is visible at ${this.webUrl}`,
        404,
        "check the spelling; private groups are visible only to their members, so the token's user may need to be added",
      );
    }
    return this.paginate(`user "${owner}"`, (page) =>
      this.api.users.allProjects(userId, {
        pagination: 'offset',
        page,
        perPage: PER_PAGE,
        showExpanded: true,
      }),
    );
  }

  private async findUserId(username: string): Promise<number | undefined> {
    if (username.includes('/')) return undefined;
    try {
      const users = (await this.api.users.all({ username })) as Json[];
      const match = users.find((u) => str(u.username)?.toLowerCase() === username.toLowerCase());
      return match === undefined ? undefined : Number(match.id);
    } catch (error) {
      throw this.fail(error, { action: `looking up user "${username}"` });
    }
  }

  /**
   * Offset pagination following `x-next-page` (GitLab's group and user project lists have no
   * keyset mode). A page that still fails after the requester's retries aborts the whole listing:
   * callers delete and skip based on it, so a silently partial list is worse than none.
   */
  private async paginate(
    what: string,
    fetchPage: (page: number) => Promise<{ data: unknown[]; paginationInfo: { next: number | null } }>,
    first?: { data: unknown[]; paginationInfo: { next: number | null } },
  ): Promise<RepoInfo[]> {
    const byId = new Map<number, RepoInfo>();
    let page = 1;
    let response = first;
    for (let pages = 0; pages < MAX_PAGES; pages += 1) {
      if (!response) {
        try {
          response = await fetchPage(page);
        } catch (error) {
          throw this.listingFailure(error, what, page);
        }
      }
      // Offset pages shift when projects are created meanwhile; the id keeps each project once.
      for (const item of response.data) {
        const info = this.toRepoInfo(item as Json);
        byId.set(info.id, info);
      }
      const next = response.paginationInfo.next;
      if (!next || next <= page || response.data.length === 0) return [...byId.values()];
      page = next;
      response = undefined;
    }
    throw new ForgeApiError(
      'gitlab',
      `listing the projects of ${what} did not end after ${MAX_PAGES} pages`,
      undefined,
      'the server keeps announcing a next page; this is a GitLab or proxy bug, report it',
    );
  }

  private listingFailure(error: unknown, what: string, page: number): ForgeApiError {
    const status = httpStatusOf(error);
    if (page === 1 && (status === 401 || status === 403)) {
      return this.fail(error, { action: `listing the projects of ${what}` });
    }
    let why: string;
    if (error instanceof GitlabHttpError) {
      const tries = error.attempts > 1 ? ` after ${error.attempts} attempts` : '';
      why = `HTTP ${error.status}${tries}${error.description ? ` (${error.description})` : ''}`;
    } else if (error instanceof GitlabNetworkError) {
      why = `${error.reason}${error.attempts > 1 ? ` after ${error.attempts} attempts` : ''}`;
    } else if (error instanceof GitlabTimeoutError) {
      why = 'no answer in time';
    } else {
      return this.fail(error, { action: `listing the projects of ${what}` });
    }
    return this.masked(
      new ForgeApiError(
        'gitlab',
        `the listing of ${what} is incomplete: page ${page} failed with ${why}`,
        status,
        'nothing was acted on; refbridge never works from a partial listing. Run again later (GitLab was failing or rate limiting)',
      ),
    );
  }

  /**
   * Stores a secret as a project CI/CD variable: masked, hidden where the server supports it
   * (GitLab 17.4+, on creation only; an update keeps what the variable has), raw (so a `$` in a
   * token is never expanded), scope `*`.
   *
   * `protected` defaults to false. That is a trade-off: a protected variable is exposed only to
   * pipelines on protected branches and tags, which keeps it from jobs on arbitrary branches, but
   * a mirror job triggered by a push to an unprotected branch would then run without the token and
   * fail. Set `protected: true` when only protected refs are mirrored from GitLab.
   */
  async setSecret(
    path: string,
    name: string,
    value: string,
    options: SecretOptions = {},
  ): Promise<Exclude<WriteOutcome, 'unchanged'>> {
    const project = normalizeProjectPath(path);
    this.checkVariableKey(name, project);
    // Checked before any request: an unmaskable secret is never sent, masked or not.
    const problems = maskingProblems(value);
    if (problems.length > 0) throw new UnmaskableSecretError(name, project, problems);
    this.masker.add(value);

    const isProtected = options.protected ?? false;
    const existing = await this.readVariable(project, name);
    const action = `setting CI/CD variable "${name}" in "${project}"`;
    if (existing === undefined) {
      try {
        return await this.createSafely(
          `create of CI/CD variable ${name} in ${project}`,
          async () => {
            const created = (await this.api.variables.create(project, name, value, {
              variableType: 'env_var',
              protected: isProtected,
              masked: true,
              // GitLab 17.4+: hidden from the UI and API too. Older servers ignore the field.
              masked_and_hidden: true,
              raw: true,
              environmentScope: '*',
            })) as Json;
            if (created.hidden !== true) {
              this.logger.info(`GitLab masked "${name}" in ${project} but did not hide it (hiding needs GitLab 17.4+)`);
            }
            this.logger.info(`created masked CI/CD variable ${name} in ${project}${isProtected ? ' (protected)' : ''}`);
            return 'created' as const;
          },
          async () => {
            const found = await this.recoverVariable(project, name, value, { masked: true, protected: isProtected });
            if (found === undefined) return undefined;
            if (found.hidden === true) {
              // A hidden value cannot be read back to compare; writing it again (PUT, safe to
              // repeat) makes the variable hold exactly what was asked, as a re-run would.
              await this.api.variables.edit(project, name, value, {
                protected: isProtected,
                masked: true,
                raw: true,
                filter: { environment_scope: '*' },
              });
            }
            return 'created' as const;
          },
        );
      } catch (error) {
        throw this.fail(error, { action, hints: this.variableHints(project) });
      }
    }
    if (existing.hidden !== true && existing.masked !== true) {
      this.logger.warn(
        `CI/CD variable ${name} in ${project} existed unmasked; it is masked now, but GitLab cannot hide an existing variable (delete it and run again to get a hidden one)`,
      );
    }
    try {
      // masked_and_hidden is accepted on create only; a hidden variable stays hidden on update.
      await this.api.variables.edit(project, name, value, {
        protected: isProtected,
        masked: true,
        raw: true,
        filter: { environment_scope: '*' },
      });
      this.logger.info(`updated masked CI/CD variable ${name} in ${project}${isProtected ? ' (protected)' : ''}`);
      return 'updated';
    } catch (error) {
      throw this.fail(error, { action, hints: this.variableHints(project) });
    }
  }

  async setVariable(path: string, name: string, value: string, options: VariableOptions = {}): Promise<WriteOutcome> {
    const project = normalizeProjectPath(path);
    this.checkVariableKey(name, project);
    if (options.masked === true) {
      const problems = maskingProblems(value);
      if (problems.length > 0) throw new UnmaskableSecretError(name, project, problems);
    }
    const existing = await this.readVariable(project, name);
    const action = `setting CI/CD variable "${name}" in "${project}"`;
    if (existing === undefined) {
      const flags = { protected: options.protected ?? false, masked: options.masked ?? false };
      try {
        return await this.createSafely(
          `create of CI/CD variable ${name} in ${project}`,
          async () => {
            await this.api.variables.create(project, name, value, {
              variableType: 'env_var',
              ...flags,
              raw: true,
              environmentScope: '*',
            });
            this.logger.info(`created CI/CD variable ${name} in ${project}`);
            return 'created' as const;
          },
          async () => ((await this.recoverVariable(project, name, value, flags)) ? ('created' as const) : undefined),
        );
      } catch (error) {
        throw this.fail(error, { action, hints: this.variableHints(project) });
      }
    }
    // Flags left out keep what the variable has, so a re-run never undoes a deliberate setting.
    const wantProtected = options.protected ?? existing.protected === true;
    const wantMasked = options.masked ?? existing.masked === true;
    const same =
      existing.hidden !== true &&
      existing.value === value &&
      (existing.protected === true) === wantProtected &&
      (existing.masked === true) === wantMasked &&
      (existing.raw === undefined || existing.raw === true);
    if (same) {
      this.logger.debug(`CI/CD variable ${name} in ${project} is already up to date`);
      return 'unchanged';
    }
    if (wantMasked) {
      const problems = maskingProblems(value);
      if (problems.length > 0) throw new UnmaskableSecretError(name, project, problems);
    }
    try {
      await this.api.variables.edit(project, name, value, {
        protected: wantProtected,
        masked: wantMasked,
        raw: true,
        filter: { environment_scope: '*' },
      });
      this.logger.info(`updated CI/CD variable ${name} in ${project}`);
      return 'updated';
    } catch (error) {
      throw this.fail(error, { action, hints: this.variableHints(project) });
    }
  }

  /**
   * The `*`-scoped variable `name` if it is what a create asked for (a hidden value cannot be
   * compared, so only its flags are); throws if it exists with another value or flags.
   */
  private async recoverVariable(
    project: string,
    name: string,
    value: string,
    flags: { masked: boolean; protected: boolean },
  ): Promise<Json | undefined> {
    const found = await this.readVariable(project, name);
    if (found === undefined) return undefined;
    const differences: string[] = [];
    if (found.hidden !== true && found.value !== value) differences.push('another value');
    if ((found.masked === true) !== flags.masked) differences.push(`masked=${found.masked === true}`);
    if ((found.protected === true) !== flags.protected) differences.push(`protected=${found.protected === true}`);
    if (found.raw === false) differences.push('raw=false');
    const type = str(found.variable_type);
    if (type !== undefined && type !== 'env_var') differences.push(`type ${type}`);
    if (differences.length > 0) {
      throw conflict(
        `CI/CD variable "${name}" (environment scope *) in "${project}"`,
        differences,
        `check who set it in ${this.webUrl}/${project}/-/settings/ci_cd; delete it to let refbridge create it, or run again to update it`,
      );
    }
    return found;
  }

  private checkVariableKey(name: string, project: string): void {
    const problem = variableKeyProblem(name);
    if (problem) {
      throw new UsageError(
        `cannot set CI/CD variable "${name}" in ${project}: ${problem}`,
        'GitLab variable names are 1-255 characters of A-Z a-z 0-9 _',
      );
    }
  }

  private variableHints(project: string): FailureContext['hints'] {
    return {
      403: `managing CI/CD variables needs the Maintainer role in "${project}" and a token with the \`api\` scope`,
      404: `the project "${project}" does not exist or the token's user cannot see it`,
    };
  }

  /** The `*`-scoped variable, or undefined; the filter avoids GitLab's 409 when a key has several scopes. */
  private async readVariable(project: string, name: string): Promise<Json | undefined> {
    try {
      return await this.api.variables.show(project, name, { filter: { environment_scope: '*' } });
    } catch (error) {
      if (httpStatusOf(error) === 404 && !/project/i.test(httpDescriptionOf(error))) return undefined;
      throw this.fail(error, {
        action: `reading CI/CD variable "${name}" in "${project}"`,
        hints: this.variableHints(project),
      });
    }
  }

  async readFile(path: string, branch: string, filePath: string): Promise<string | undefined> {
    const project = normalizeProjectPath(path);
    const file = normalizeFilePath(filePath);
    const found = await this.readFileEntry(project, branch, file);
    return found?.content;
  }

  private async readFileEntry(
    project: string,
    ref: string,
    file: string,
  ): Promise<{ content: string; lastCommitId: string | undefined } | undefined> {
    try {
      const entry = (await this.api.files.show(project, file, ref)) as Json;
      const raw = str(entry.content) ?? '';
      const content = entry.encoding === 'base64' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
      return { content, lastCommitId: str(entry.last_commit_id) };
    } catch (error) {
      // "404 File Not Found" and "404 Commit Not Found" (no such branch) mean "no file here";
      // a missing project is an error the caller must hear about.
      if (httpStatusOf(error) === 404 && !/project/i.test(httpDescriptionOf(error))) return undefined;
      throw this.fail(error, { action: `reading ${file} on ${ref} in "${project}"` });
    }
  }

  async commitFiles(path: string, options: CommitFilesOptions): Promise<string> {
    const project = normalizeProjectPath(path);
    if (options.files.length === 0) {
      throw new UsageError(`nothing to commit to ${project}`, 'pass at least one file');
    }
    const files = options.files.map((f) => ({ path: normalizeFilePath(f.path), content: f.content }));
    const seen = new Set<string>();
    for (const f of files) {
      if (seen.has(f.path)) throw new UsageError(`${f.path} is listed twice in one commit to ${project}`);
      seen.add(f.path);
    }

    let info: Json;
    try {
      info = await this.api.projects.show(project);
    } catch (error) {
      throw this.fail(error, { action: `reading project "${project}" before committing` });
    }
    const empty = info.empty_repo === true;
    const defaultBranch = str(info.default_branch);
    let branchHead: string | undefined;
    let startBranch: string | undefined;
    if (!empty) {
      branchHead = await this.branchHead(project, options.branch);
      // A new branch in a non-empty repo starts from the default branch, as `git checkout -b` would.
      if (branchHead === undefined) startBranch = defaultBranch;
    }
    const ref = branchHead === undefined ? startBranch : options.branch;

    const actions: CommitAction[] = [];
    for (const f of files) {
      const current = ref === undefined ? undefined : await this.readFileEntry(project, ref, f.path);
      if (current === undefined) {
        actions.push({ action: 'create', filePath: f.path, content: f.content, encoding: 'text' });
      } else if (current.content !== f.content) {
        actions.push({
          action: 'update',
          filePath: f.path,
          content: f.content,
          encoding: 'text',
          // GitLab refuses the commit if the file changed since we read it, instead of overwriting.
          ...(current.lastCommitId === undefined ? {} : { lastCommitId: current.lastCommitId }),
        });
      }
    }
    if (actions.length === 0 && branchHead !== undefined) {
      this.logger.info(`${project}@${options.branch} already has these files; no commit made`);
      return branchHead;
    }

    try {
      return await this.createSafely(
        `commit to ${project}@${options.branch}`,
        async () => {
          const commit = (await this.api.commits.create(project, options.branch, options.message, actions, {
            ...(startBranch === undefined ? {} : { startBranch }),
          })) as Json;
          const sha = str(commit.id) ?? '';
          const created = actions.filter((a) => a.action === 'create').length;
          this.logger.info(
            `committed ${sha.slice(0, 12)} to ${project}@${options.branch}: ${created} created, ${actions.length - created} updated`,
          );
          return sha;
        },
        () => this.recoverCommit(project, options.branch, options.message, branchHead, startBranch, files),
      );
    } catch (error) {
      if (error instanceof ForgeApiError) throw error;
      throw this.fail(error, {
        action: `committing ${actions.length} file(s) to ${options.branch} in "${project}"`,
        hints: {
          403: `committing needs the Developer role in "${project}" and the \`api\` scope; a protected "${options.branch}" may also allow only Maintainers to push`,
          other:
            'GitLab refused the commit; if a file changed on the branch meanwhile, run again to commit on top of it',
        },
      });
    }
  }

  /**
   * Whether a commit whose answer was lost landed. The branch still at `before`: it did not, and
   * sending it again is safe (same parent, same `lastCommitId`s). The branch moved to a commit
   * with our message, our parent and our file contents: it did. Moved to anything else: someone
   * else pushed meanwhile, and committing on top of what we have not read could undo their work.
   */
  private async recoverCommit(
    project: string,
    branch: string,
    message: string,
    before: string | undefined,
    startBranch: string | undefined,
    files: readonly { path: string; content: string }[],
  ): Promise<string | undefined> {
    const head = await this.branchHead(project, branch);
    if (head === undefined || head === before) return undefined;
    // The parent our commit has: the old head, else the start branch's head, else none (empty repo).
    const parent = before ?? (startBranch === undefined ? undefined : await this.branchHead(project, startBranch));
    let commit: Json;
    try {
      commit = await this.api.commits.show(project, head);
    } catch (error) {
      throw this.fail(error, { action: `reading commit ${head.slice(0, 12)} of "${project}"` });
    }
    const parents = Array.isArray(commit.parent_ids) ? commit.parent_ids : [];
    const differences: string[] = [];
    if (str(commit.message)?.trimEnd() !== message.trimEnd()) differences.push('another message');
    if (parents.length !== (parent === undefined ? 0 : 1) || (parent !== undefined && parents[0] !== parent)) {
      differences.push('another parent');
    }
    if (differences.length === 0) {
      for (const f of files) {
        const entry = await this.readFileEntry(project, head, f.path);
        if (entry?.content !== f.content) {
          differences.push(`another content of ${f.path}`);
          break;
        }
      }
    }
    if (differences.length > 0) {
      throw conflict(
        `the head of ${branch} in "${project}" (${head.slice(0, 12)})`,
        differences,
        `someone pushed to ${branch} while refbridge was committing; run again to commit on top of their change`,
      );
    }
    return head;
  }

  private async branchHead(project: string, branch: string): Promise<string | undefined> {
    try {
      const b = (await this.api.branches.show(project, branch)) as Json;
      const commit = b.commit as Json | undefined;
      return str(commit?.id);
    } catch (error) {
      if (httpStatusOf(error) === 404 && !/project/i.test(httpDescriptionOf(error))) return undefined;
      throw this.fail(error, { action: `reading branch ${branch} of "${project}"` });
    }
  }

  async protectionRules(path: string, ref: string): Promise<ProtectionRule[]> {
    const project = normalizeProjectPath(path);
    const parsed = parseRef(ref);
    if (parsed.kind === 'other') return [];
    const action = `reading the protected ${parsed.kind}es of "${project}"`;
    let rules: Json[];
    try {
      rules =
        parsed.kind === 'branch'
          ? await this.api.protectedBranches.all(project, { perPage: PER_PAGE })
          : await this.api.protectedTags.all(project, { perPage: PER_PAGE });
    } catch (error) {
      throw this.fail(error, {
        action,
        hints: { 403: `reading protected ${parsed.kind}es needs the Maintainer role in "${project}"` },
      });
    }
    const out: ProtectionRule[] = [];
    for (const rule of rules) {
      const pattern = str(rule.name);
      if (pattern === undefined || !matchesRefPattern(pattern, parsed.name)) continue;
      out.push(
        parsed.kind === 'branch'
          ? {
              source: `protected branch "${pattern}"`,
              pattern,
              allowForcePush: rule.allow_force_push === true,
              // GitLab refuses every push that deletes a protected branch ("only … using the web interface").
              allowDeletion: false,
            }
          : // Protected tags can be created by the allowed roles but never moved or deleted by a push.
            { source: `protected tag "${pattern}"`, pattern, allowForcePush: false, allowDeletion: false },
      );
    }
    return out;
  }

  async setForcePushAllowed(path: string, rule: ProtectionRule, allow: boolean): Promise<boolean> {
    const project = normalizeProjectPath(path);
    if (!rule.source.startsWith('protected branch')) {
      throw new ForgeApiError(
        'gitlab',
        `GitLab cannot allow force pushes for ${rule.source} in ${project}`,
        undefined,
        'protected tags never accept moved or deleted tags by push; unprotect the tag in Settings > Repository, push, and protect it again',
      );
    }
    const hints = {
      403: `changing protected branches needs the Maintainer role in "${project}" and the \`api\` scope`,
      404: `"${rule.pattern}" is no longer a protected branch in "${project}"; list the rules again`,
    };
    let previous: boolean;
    try {
      const current = (await this.api.protectedBranches.show(project, rule.pattern)) as Json;
      previous = current.allow_force_push === true;
    } catch (error) {
      throw this.fail(error, { action: `reading protected branch "${rule.pattern}" of "${project}"`, hints });
    }
    if (previous === allow) {
      this.logger.debug(`protected branch "${rule.pattern}" in ${project} already has allow_force_push=${allow}`);
      return previous;
    }
    try {
      const updated = (await this.api.protectedBranches.edit(project, rule.pattern, { allowForcePush: allow })) as Json;
      if (updated.allow_force_push !== allow) {
        throw new ForgeApiError(
          'gitlab',
          `GitLab accepted the change of protected branch "${rule.pattern}" in ${project} but still reports allow_force_push=${String(updated.allow_force_push)}`,
          undefined,
          'check the branch in Settings > Repository > Protected branches',
        );
      }
    } catch (error) {
      if (error instanceof ForgeApiError) throw error;
      throw this.fail(error, {
        action: `setting allow_force_push=${allow} on protected branch "${rule.pattern}" of "${project}"`,
        hints,
      });
    }
    this.logger.warn(
      `GitLab ${project}: protected branch "${rule.pattern}" allow_force_push changed from ${previous} to ${allow}`,
    );
    return previous;
  }

  private toRepoInfo(p: Json): RepoInfo {
    const path = str(p.path_with_namespace) ?? '';
    const forked = p.forked_from_project;
    return {
      platform: 'gitlab',
      path,
      id: Number(p.id),
      defaultBranch: str(p.default_branch) || null,
      visibility: visibilityOf(p.visibility),
      archived: p.archived === true,
      fork: forked !== undefined && forked !== null,
      // GitLab has no pushed_at; last_activity_at moves on pushes (and on other activity).
      pushedAt: str(p.last_activity_at) ?? null,
      // Built from webUrl rather than taken from http_url_to_repo: the credential is keyed to
      // webUrl's origin, and instances behind proxies often report a different external URL.
      cloneUrl: path ? `${this.webUrl}/${path}.git` : (str(p.http_url_to_repo) ?? ''),
      description: str(p.description) ?? null,
    };
  }

  /**
   * Sends a create (a POST GitLab does not deduplicate) and survives transient failures safely:
   * after a 5xx, a dropped connection or a timeout the create may have been applied with only
   * its answer lost, so before sending it again `recover` looks the object up by its identity
   * (path, key + scope, branch head). Found and as asked: done, as if the answer had arrived.
   * Found but different: `recover` throws, since someone else made it and refbridge must not
   * take it over. Not found: the create is sent again, with the requester's backoff and bound.
   * A 429 is refused before any work, so it is retried without a lookup.
   */
  private async createSafely<T>(
    what: string,
    create: () => Promise<T>,
    recover: () => Promise<T | undefined>,
  ): Promise<T> {
    let lastFailure: string | undefined;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.http.once(create);
      } catch (error) {
        // A repeat refused as a duplicate means an earlier try was applied after all.
        if (lastFailure !== undefined && httpStatusOf(error) === 400 && TAKEN.test(httpDescriptionOf(error))) {
          const found = await recover();
          if (found !== undefined) return this.recovered(what, lastFailure, found);
        }
        if (!isTransientFailure(error)) throw error;
        const failure = describeFailure(error);
        const applied = httpStatusOf(error) !== 429;
        if (attempt >= this.http.retries) {
          // The last answer may be the lost one too: look once more before giving up.
          const found = applied ? await recover() : undefined;
          if (found !== undefined) return this.recovered(what, failure, found);
          throw withAttempts(error, attempt + 1);
        }
        const wait = this.http.waitAfter(error, attempt);
        this.logger.warn(
          `GitLab ${what} failed (${failure}); ${applied ? 'checking whether it was applied, then ' : ''}retry ${attempt + 1} of ${this.http.retries} in ${formatWait(wait)}`,
        );
        await this.http.sleep(wait);
        if (applied) {
          const found = await recover();
          if (found !== undefined) return this.recovered(what, failure, found);
        }
        lastFailure = failure;
      }
    }
  }

  private recovered<T>(what: string, failure: string, value: T): T {
    this.logger.info(`GitLab ${what}: recovered after ${failure}; GitLab had applied it, so it was not sent again`);
    return value;
  }

  private context(action: string, hints?: FailureContext['hints']): FailureContext {
    return { action, webUrl: this.webUrl, apiUrl: this.apiUrl, ...(hints === undefined ? {} : { hints }) };
  }

  private fail(error: unknown, ctx: { action: string; hints?: FailureContext['hints'] }): ForgeApiError {
    if (!isGitlabTransportError(error) && !(error instanceof ForgeApiError)) {
      this.logger.debug(`unexpected error while ${ctx.action}: ${this.masker.mask(String(error))}`);
    }
    return this.masked(toForgeApiError(error, this.context(ctx.action, ctx.hints)));
  }

  private masked(error: ForgeApiError): ForgeApiError {
    error.message = this.masker.mask(error.message);
    return error;
  }
}

function checkUrl(url: string, what: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`the ${what} "${url}" is not a URL`, 'write it as https://gitlab.example.com');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new UsageError(`the ${what} ${url} is not http(s)`, 'write it as https://gitlab.example.com');
  }
  if (parsed.username || parsed.password) {
    throw new UsageError(`the ${what} must not contain credentials`, 'pass the token in GITLAB_TOKEN instead');
  }
  return url;
}

/** Repository file paths relative to the root; no `..`, no absolute paths. */
function normalizeFilePath(path: string): string {
  const trimmed = path.replace(/^\.\//, '');
  if (
    trimmed === '' ||
    trimmed.startsWith('/') ||
    trimmed.split('/').some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new UsageError(
      `"${path}" is not a file path inside a repository`,
      'use a relative path such as `.gitlab-ci.yml`',
    );
  }
  return trimmed;
}

/** GitLab's answer to a create whose name/path/key is in use. */
const TAKEN = /already been taken|already exists/i;

function describeFailure(error: unknown): string {
  if (error instanceof GitlabHttpError) return `HTTP ${error.status}`;
  if (error instanceof GitlabNetworkError) return error.reason;
  if (error instanceof GitlabTimeoutError) return 'no answer in time';
  return String(error);
}

/** The same failure, counting every try the caller made (each `once` call is one attempt). */
function withAttempts(error: unknown, attempts: number): unknown {
  if (error instanceof GitlabHttpError) {
    return new GitlabHttpError(
      error.method,
      error.endpoint,
      error.status,
      error.description,
      attempts,
      error.retryAfterMs,
    );
  }
  if (error instanceof GitlabNetworkError) {
    return new GitlabNetworkError(error.method, error.endpoint, error.reason, attempts);
  }
  return error;
}

function formatWait(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

/** Thrown by a recovery lookup that found the object refbridge was creating, made differently. */
function conflict(what: string, differences: readonly string[], hint: string): ForgeApiError {
  return new ForgeApiError(
    'gitlab',
    `${what} is not what refbridge created (${differences.join('; ')}): a create failed in transit, and someone else made this meanwhile; refbridge left it alone`,
    409,
    hint,
  );
}
