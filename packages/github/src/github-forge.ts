import { ForgeApiError, RefbridgeError, UsageError } from '@refbridge/core';
import type {
  CommitFilesOptions,
  FileToCommit,
  Forge,
  GitCredential,
  ListReposOptions,
  ListReposResult,
  Logger,
  ProtectionRule,
  RepoInfo,
  SecretMasker,
  TokenInfo,
  Visibility,
  WriteOutcome,
} from '@refbridge/core';
import {
  createGithubClient,
  isHttpError,
  resolveRetryOptions,
  type GithubOctokit,
  type GithubRetryOptions,
  type ResolvedRetryOptions,
} from './github-client.js';
import { githubMessage, toForgeApiError } from './github-errors.js';
import { protectionRulesFor } from './protection.js';
import { parseRepoPath, toRepoInfo, type RepoPath } from './repo-info.js';
import { conditionalGet, listAllPages } from './repo-listing.js';
import { sealSecret } from './secret-box.js';

export interface GithubForgeOptions {
  /** Web base: https://github.com, or a GitHub Enterprise Server such as https://github.example.com. */
  webUrl: string;
  /** REST base; derived from webUrl when omitted (api.github.com, api.<sub>.ghe.com, or <webUrl>/api/v3). */
  apiUrl?: string;
  token: string;
  logger: Logger;
  masker: SecretMasker;
  retry?: GithubRetryOptions;
}

function trimSlashes(url: string): string {
  return url.replace(/\/+$/, '');
}

/** GitHub.com and GHE.com have an API host; GitHub Enterprise Server serves it under /api/v3. */
export function defaultGithubApiUrl(webUrl: string): string {
  const web = trimSlashes(webUrl);
  const host = new URL(web).hostname.toLowerCase();
  if (host === 'github.com' || host === 'www.github.com') return 'https://api.github.com';
  if (host.endsWith('.ghe.com') && !host.startsWith('api.')) return `https://api.${host}`;
  return `${web}/api/v3`;
}

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WORKFLOW_FILE = /^\.github\/workflows\//;
/** Times commitFiles re-reads the branch when someone else moved it between read and update. */
const COMMIT_ATTEMPTS = 3;

function checkName(kind: 'secret' | 'variable', name: string): void {
  if (!SECRET_NAME.test(name) || /^GITHUB_/i.test(name)) {
    throw new UsageError(
      `"${name}" is not a valid GitHub Actions ${kind} name`,
      'use letters, digits and underscores, not starting with a digit or with GITHUB_',
    );
  }
}

function checkFilePath(path: string): void {
  const parts = path.split('/');
  if (
    path === '' ||
    path.startsWith('/') ||
    path.includes('\\') ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new UsageError(
      `"${path}" is not a valid file path inside a repository`,
      'use a relative path such as .github/workflows/mirror.yml',
    );
  }
}

type BranchState = { kind: 'exists'; sha: string } | { kind: 'new'; baseSha: string } | { kind: 'empty' };

/** The GitHub side of refbridge over the REST API (github.com and GitHub Enterprise Server). */
export class GithubForge implements Forge {
  readonly platform = 'github' as const;
  readonly webUrl: string;
  readonly apiUrl: string;
  private readonly token: string;
  private readonly logger: Logger;
  private readonly masker: SecretMasker;
  private readonly octokit: GithubOctokit;
  private readonly retry: ResolvedRetryOptions;
  private tokenInfoPromise: Promise<TokenInfo> | undefined;

  constructor(options: GithubForgeOptions) {
    this.webUrl = trimSlashes(options.webUrl);
    this.apiUrl = trimSlashes(options.apiUrl ?? defaultGithubApiUrl(this.webUrl));
    this.token = options.token;
    this.logger = options.logger;
    this.masker = options.masker;
    // Registered before any request so no error or log line can carry it.
    this.masker.add(options.token);
    this.retry = resolveRetryOptions(options.retry);
    this.octokit = createGithubClient({
      apiUrl: this.apiUrl,
      token: options.token,
      logger: options.logger,
      masker: options.masker,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
    });
  }

  gitUrl(path: string): string {
    const { owner, name } = parseRepoPath(path);
    return `${this.webUrl}/${owner}/${name}.git`;
  }

  gitCredential(): GitCredential {
    return { url: this.webUrl, username: 'x-access-token', token: this.token };
  }

  /** Runs one API call; anything it throws (after retries) becomes a ForgeApiError naming the action. */
  private async call<T>(action: string, repo: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw this.fail(error, action, repo);
    }
  }

  private fail(error: unknown, action: string, repo?: string): ForgeApiError {
    return toForgeApiError(
      error,
      { action, ...(repo === undefined ? {} : { repo }), apiUrl: this.apiUrl, retries: this.retry.retries },
      this.masker,
    );
  }

  tokenInfo(): Promise<TokenInfo> {
    // The token does not change during a run; one GET /user serves every caller.
    this.tokenInfoPromise ??= this.fetchTokenInfo().catch((error: unknown) => {
      this.tokenInfoPromise = undefined;
      throw error;
    });
    return this.tokenInfoPromise;
  }

  private async fetchTokenInfo(): Promise<TokenInfo> {
    try {
      const res = await this.octokit.rest.users.getAuthenticated();
      const header = res.headers['x-oauth-scopes'];
      // Classic tokens always send the header (empty = no scopes); fine-grained and app tokens never do.
      const scopes =
        header === undefined
          ? undefined
          : String(header)
              .split(',')
              .map((s) => s.trim())
              .filter((s) => s.length > 0);
      return { login: res.data.login, scopes };
    } catch (error) {
      // App installation tokens (including Actions' GITHUB_TOKEN) have no user behind them.
      if (
        isHttpError(error) &&
        error.status === 403 &&
        /resource not accessible by integration/i.test(githubMessage(error))
      ) {
        this.logger.debug('GitHub token is an app installation token: no user, scopes unknown');
        return { login: '', scopes: undefined };
      }
      throw this.fail(error, 'checking the token (GET /user)');
    }
  }

  async getRepo(path: string): Promise<RepoInfo | undefined> {
    const { owner, name } = parseRepoPath(path);
    try {
      const res = await this.octokit.rest.repos.get({ owner, repo: name });
      return toRepoInfo(res.data, (p) => this.gitUrl(p));
    } catch (error) {
      if (isHttpError(error) && error.status === 404) return undefined;
      throw this.fail(error, 'reading the repository', path);
    }
  }

  async createRepo(path: string, options: { visibility: Visibility; description?: string }): Promise<RepoInfo> {
    const { owner, name } = parseRepoPath(path);
    const me = await this.tokenInfo();
    const forUser = me.login !== '' && me.login.toLowerCase() === owner.toLowerCase();
    const description = options.description === undefined ? {} : { description: options.description };
    if (forUser) {
      if (options.visibility === 'internal') {
        throw new UsageError(
          `cannot create ${path} as internal: internal visibility exists only for organization repositories`,
          'use visibility private (or public) for repositories owned by a user',
        );
      }
      const res = await this.call(`creating the repository under user ${owner}`, path, () =>
        this.octokit.rest.repos.createForAuthenticatedUser({
          name,
          private: options.visibility !== 'public',
          auto_init: false,
          ...description,
        }),
      );
      this.logger.info(`created GitHub repository ${res.data.full_name} (${options.visibility})`);
      return toRepoInfo(res.data, (p) => this.gitUrl(p));
    }
    try {
      // The published OpenAPI omits `internal` (it exists on Enterprise Cloud and Server), hence the cast.
      const res = await this.octokit.rest.repos.createInOrg({
        org: owner,
        name,
        visibility: options.visibility as 'public' | 'private',
        auto_init: false,
        ...description,
      });
      this.logger.info(`created GitHub repository ${res.data.full_name} (${options.visibility})`);
      return toRepoInfo(res.data, (p) => this.gitUrl(p));
    } catch (error) {
      if (isHttpError(error) && error.status === 404) {
        throw new ForgeApiError(
          'github',
          this.masker.mask(
            `cannot create ${path}: ${owner} is neither the token's user (${me.login || 'an app token'}) nor an organization the token can see`,
          ),
          404,
          "check the owner name; to create it in another user account, use that user's token; for an organization, the token's user must be a member allowed to create repositories",
          error,
        );
      }
      throw this.fail(error, `creating the repository in organization ${owner}`, path);
    }
  }

  async listRepos(options: ListReposOptions = {}): Promise<ListReposResult> {
    let requests = 0;
    let notModified = 0;
    let firstUrl: string;
    let what: string;
    const owner = options.owner;
    if (owner === undefined) {
      firstUrl = `${this.apiUrl}/user/repos?affiliation=owner,collaborator,organization_member&per_page=100`;
      what = 'the repositories the token can see';
    } else {
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(owner)) {
        throw new UsageError(
          `"${owner}" is not a GitHub user or organization name`,
          'use the login as shown in the GitHub URL',
        );
      }
      const cachedInfo = this.tokenInfoPromise !== undefined;
      const me = await this.tokenInfo();
      if (!cachedInfo) requests++;
      what = `the repositories of ${owner}`;
      if (me.login !== '' && me.login.toLowerCase() === owner.toLowerCase()) {
        // /users/:u/repos shows only public repos; the owner's own token sees private ones here.
        firstUrl = `${this.apiUrl}/user/repos?affiliation=owner&per_page=100`;
      } else {
        const kind = await this.ownerKind(owner, options);
        requests++;
        if (kind.notModified) notModified++;
        firstUrl =
          kind.type === 'Organization'
            ? `${this.apiUrl}/orgs/${owner}/repos?type=all&per_page=100`
            : `${this.apiUrl}/users/${owner}/repos?type=owner&per_page=100`;
      }
    }
    const result = await listAllPages({
      octokit: this.octokit,
      apiUrl: this.apiUrl,
      firstUrl,
      what,
      cache: options.cache,
      masker: this.masker,
      errorContext: { action: `listing ${what}`, apiUrl: this.apiUrl, retries: this.retry.retries },
      cloneUrl: (p) => this.gitUrl(p),
    });
    this.logger.debug(
      `listed ${result.repos.length} GitHub repositories (${result.requests} pages, ${result.notModified} unchanged)`,
    );
    return {
      repos: result.repos,
      requests: requests + result.requests,
      notModified: notModified + result.notModified,
    };
  }

  /** User or organization? Asked with the listing cache too, so an unchanged run stays at 304s. */
  private async ownerKind(
    owner: string,
    options: ListReposOptions,
  ): Promise<{ type: 'User' | 'Organization'; notModified: boolean }> {
    const url = `${this.apiUrl}/users/${owner}`;
    const cached = options.cache?.get(url);
    const cachedType = (cached?.body as { type?: unknown } | undefined)?.type;
    const usable = cachedType === 'User' || cachedType === 'Organization' ? cached : undefined;
    try {
      const result = await conditionalGet(this.octokit, url, usable?.etag);
      if (result.notModified) return { type: cachedType as 'User' | 'Organization', notModified: true };
      const type = (result.data as { type?: unknown }).type === 'Organization' ? 'Organization' : 'User';
      if (options.cache !== undefined && result.etag !== undefined)
        options.cache.set(url, { etag: result.etag, body: { type } });
      return { type, notModified: false };
    } catch (error) {
      if (isHttpError(error) && error.status === 404) {
        throw new ForgeApiError(
          'github',
          `GitHub has no user or organization named ${owner}`,
          404,
          'check the owner name',
          error,
        );
      }
      throw this.fail(error, `looking up owner ${owner}`);
    }
  }

  async setSecret(path: string, name: string, value: string): Promise<Exclude<WriteOutcome, 'unchanged'>> {
    // GitHub secrets have no `protected` flag (that is GitLab's); the option is accepted and ignored.
    const repo = parseRepoPath(path);
    checkName('secret', name);
    this.masker.add(value);
    const key = await this.call('reading the Actions public key', path, () =>
      this.octokit.rest.actions.getRepoPublicKey({ owner: repo.owner, repo: repo.name }),
    );
    const encrypted = await sealSecret(key.data.key, value);
    const res = await this.call(`setting Actions secret ${name}`, path, () =>
      this.octokit.rest.actions.createOrUpdateRepoSecret({
        owner: repo.owner,
        repo: repo.name,
        secret_name: name,
        encrypted_value: encrypted,
        key_id: key.data.key_id,
      }),
    );
    const outcome = res.status === 201 ? 'created' : 'updated';
    this.logger.info(`GitHub secret ${name} ${outcome} on ${path}`);
    return outcome;
  }

  async setVariable(path: string, name: string, value: string): Promise<WriteOutcome> {
    // Actions variables are plain and unprotected on GitHub; `protected`/`masked` apply to GitLab only.
    const repo = parseRepoPath(path);
    checkName('variable', name);
    let current: string | undefined;
    try {
      const res = await this.octokit.rest.actions.getRepoVariable({ owner: repo.owner, repo: repo.name, name });
      current = res.data.value;
    } catch (error) {
      if (!(isHttpError(error) && error.status === 404))
        throw this.fail(error, `reading Actions variable ${name}`, path);
    }
    if (current === value) {
      this.logger.debug(`GitHub variable ${name} on ${path} already has that value`);
      return 'unchanged';
    }
    if (current === undefined) {
      await this.call(`creating Actions variable ${name}`, path, () =>
        this.octokit.rest.actions.createRepoVariable({ owner: repo.owner, repo: repo.name, name, value }),
      );
      this.logger.info(`GitHub variable ${name} created on ${path}`);
      return 'created';
    }
    await this.call(`updating Actions variable ${name}`, path, () =>
      this.octokit.rest.actions.updateRepoVariable({ owner: repo.owner, repo: repo.name, name, value }),
    );
    this.logger.info(`GitHub variable ${name} updated on ${path}`);
    return 'updated';
  }

  async readFile(path: string, branch: string, filePath: string): Promise<string | undefined> {
    const repo = parseRepoPath(path);
    checkFilePath(filePath);
    let data: unknown;
    try {
      const res = await this.octokit.rest.repos.getContent({
        owner: repo.owner,
        repo: repo.name,
        path: filePath,
        ref: branch,
      });
      data = res.data;
    } catch (error) {
      // No such file, branch, or an empty repository: all "not there".
      if (isHttpError(error) && error.status === 404) return undefined;
      throw this.fail(error, `reading ${filePath} on ${branch}`, path);
    }
    const file = data as { type?: string; content?: string; encoding?: string; sha?: string; size?: number };
    if (Array.isArray(data) || file.type !== 'file') {
      throw new ForgeApiError(
        'github',
        `${filePath} on ${branch} in ${path} is ${Array.isArray(data) ? 'a directory' : `a ${file.type ?? 'non-file'}`}, not a file`,
        undefined,
        'move it out of the way or choose another path',
      );
    }
    if (file.encoding === 'base64' && typeof file.content === 'string') {
      return Buffer.from(file.content, 'base64').toString('utf8');
    }
    // Files over 1 MB come without content; the blob API serves them (up to 100 MB).
    const sha = file.sha ?? '';
    const blob = await this.call(`reading ${filePath} on ${branch}`, path, () =>
      this.octokit.rest.git.getBlob({ owner: repo.owner, repo: repo.name, file_sha: sha }),
    );
    return Buffer.from(blob.data.content, 'base64').toString('utf8');
  }

  async commitFiles(path: string, options: CommitFilesOptions): Promise<string> {
    const repo = parseRepoPath(path);
    if (options.files.length === 0) {
      throw new UsageError(`nothing to commit to ${path}`, 'pass at least one file');
    }
    for (const f of options.files) checkFilePath(f.path);
    await this.checkWorkflowScope(path, options.files);

    for (let attempt = 1; ; attempt++) {
      const state = await this.branchState(repo, path, options.branch);
      if (state.kind === 'empty') return this.commitToEmptyRepo(repo, path, options);
      const parent = state.kind === 'exists' ? state.sha : state.baseSha;
      const commit = await this.createCommit(
        repo,
        path,
        parent,
        options.message,
        options.files,
        state.kind === 'exists',
      );
      if (commit === parent) return parent;
      try {
        if (state.kind === 'exists') {
          await this.octokit.rest.git.updateRef({
            owner: repo.owner,
            repo: repo.name,
            ref: `heads/${options.branch}`,
            sha: commit,
            force: false,
          });
        } else {
          await this.octokit.rest.git.createRef({
            owner: repo.owner,
            repo: repo.name,
            ref: `refs/heads/${options.branch}`,
            sha: commit,
          });
        }
        this.logger.info(
          `committed ${options.files.length} file(s) to ${path}@${options.branch} (${commit.slice(0, 12)})`,
        );
        return commit;
      } catch (error) {
        // Someone pushed between our read and update (422 "not a fast forward" / "already exists"): redo on the new tip.
        const raced = isHttpError(error) && (error.status === 422 || error.status === 409);
        if (!raced || attempt >= COMMIT_ATTEMPTS) throw this.fail(error, `updating branch ${options.branch}`, path);
        this.logger.warn(
          `${path}@${options.branch} moved while committing (${githubMessage(error)}); retrying on the new tip`,
        );
      }
    }
  }

  /**
   * GitHub refuses workflow files from classic tokens without the `workflow` scope, but only at
   * the last step; checking first means nothing is half-written (peers fail late, mid-bootstrap).
   * Fine-grained and app tokens do not list scopes, so for them GitHub's own answer decides.
   */
  private async checkWorkflowScope(path: string, files: readonly FileToCommit[]): Promise<void> {
    const workflows = files.filter((f) => WORKFLOW_FILE.test(f.path)).map((f) => f.path);
    if (workflows.length === 0) return;
    const info = await this.tokenInfo();
    if (info.scopes === undefined || info.scopes.includes('workflow')) return;
    throw new ForgeApiError(
      'github',
      `refusing to write ${workflows.join(', ')} to ${path}: the token lacks the \`workflow\` scope, which GitHub requires to create or update files under .github/workflows (its scopes: ${info.scopes.join(', ') || 'none'})`,
      undefined,
      'add the `workflow` scope to the classic token (Settings > Developer settings > Personal access tokens), or use a fine-grained token with Workflows: read and write, then run again',
    );
  }

  private async branchState(repo: RepoPath, path: string, branch: string): Promise<BranchState> {
    const head = await this.refSha(repo, path, branch);
    if (head.kind === 'sha') return { kind: 'exists', sha: head.sha };
    if (head.kind === 'empty') return { kind: 'empty' };
    // A new branch in a non-empty repo starts from the default branch, as on GitHub's web editor.
    const info = await this.getRepo(path);
    if (!info) {
      throw new ForgeApiError(
        'github',
        `repo ${path} not found on GitHub, or the token cannot see it, while committing files`,
        404,
        'create the repository first (refbridge bootstrap does) and check the token has access',
      );
    }
    // No default branch tip either: nothing to build on, so treat it like an empty repo.
    const base = info.defaultBranch === null ? undefined : await this.refSha(repo, path, info.defaultBranch);
    if (base?.kind !== 'sha') return { kind: 'empty' };
    return { kind: 'new', baseSha: base.sha };
  }

  private async refSha(
    repo: RepoPath,
    path: string,
    branch: string,
  ): Promise<{ kind: 'sha'; sha: string } | { kind: 'missing' } | { kind: 'empty' }> {
    try {
      const res = await this.octokit.rest.git.getRef({ owner: repo.owner, repo: repo.name, ref: `heads/${branch}` });
      return { kind: 'sha', sha: res.data.object.sha };
    } catch (error) {
      // GitHub answers 409 "Git Repository is empty." for any Git Data call before the first commit.
      if (isHttpError(error) && error.status === 409) return { kind: 'empty' };
      if (isHttpError(error) && error.status === 404) return { kind: 'missing' };
      throw this.fail(error, `reading branch ${branch}`, path);
    }
  }

  /** Tree on top of `parent` via the Git Data API; returns the new commit, or `parent` when nothing changes. */
  private async createCommit(
    repo: RepoPath,
    path: string,
    parent: string,
    message: string,
    files: readonly FileToCommit[],
    skipIfUnchanged: boolean,
  ): Promise<string> {
    const o = { owner: repo.owner, repo: repo.name };
    const base = await this.call('reading the branch tip', path, () =>
      this.octokit.rest.git.getCommit({ ...o, commit_sha: parent }),
    );
    const tree = await this.call('writing the file tree', path, () =>
      this.octokit.rest.git.createTree({
        ...o,
        base_tree: base.data.tree.sha,
        tree: files.map((f) => ({ path: f.path, mode: '100644' as const, type: 'blob' as const, content: f.content })),
      }),
    );
    // Re-running bootstrap must not pile up empty commits.
    if (skipIfUnchanged && tree.data.sha === base.data.tree.sha) {
      this.logger.info(`${path}: files already up to date, nothing committed`);
      return parent;
    }
    const commit = await this.call('creating the commit', path, () =>
      this.octokit.rest.git.createCommit({ ...o, message, tree: tree.data.sha, parents: [parent] }),
    );
    return commit.data.sha;
  }

  /**
   * GitHub's Git Data API answers 409 "Git Repository is empty." until the repo has a commit, and
   * the contents API is the documented way to make the first one. So the first file goes in
   * through it (creating the branch), the rest in one Git Data commit on top: two commits when
   * several files land in an empty repo. Squashing them would need a force update of a branch
   * someone may already have pushed to, which refbridge never does.
   */
  private async commitToEmptyRepo(repo: RepoPath, path: string, options: CommitFilesOptions): Promise<string> {
    const [first, ...rest] = options.files as [FileToCommit, ...FileToCommit[]];
    const created = await this.call(`creating ${first.path} in the empty repository`, path, () =>
      this.octokit.rest.repos.createOrUpdateFileContents({
        owner: repo.owner,
        repo: repo.name,
        path: first.path,
        message: options.message,
        content: Buffer.from(first.content, 'utf8').toString('base64'),
        branch: options.branch,
      }),
    );
    const sha = created.data.commit.sha;
    if (sha === undefined) {
      throw new ForgeApiError(
        'github',
        `GitHub created ${first.path} in ${path} but did not return the commit`,
        undefined,
        'run again',
      );
    }
    if (rest.length === 0) {
      this.logger.info(`created ${path}@${options.branch} with ${first.path} (${sha.slice(0, 12)})`);
      return sha;
    }
    const commit = await this.createCommit(repo, path, sha, options.message, rest, false);
    await this.call(`updating branch ${options.branch}`, path, () =>
      this.octokit.rest.git.updateRef({
        owner: repo.owner,
        repo: repo.name,
        ref: `heads/${options.branch}`,
        sha: commit,
        force: false,
      }),
    );
    this.logger.info(`created ${path}@${options.branch} with ${options.files.length} files (${commit.slice(0, 12)})`);
    return commit;
  }

  async protectionRules(path: string, ref: string): Promise<ProtectionRule[]> {
    const repo = parseRepoPath(path);
    return protectionRulesFor(
      { octokit: this.octokit, repo, fail: (error, action) => this.fail(error, action, path) },
      ref,
    );
  }

  /**
   * Refused on GitHub by design. GitHub's protection is shared by everyone on the repo: turning
   * `allow_force_pushes` on, even briefly, lets any writer rewrite the branch during that window,
   * and rulesets cannot be relaxed for one push at all. GitHub has a precise tool for exactly
   * this instead: the bypass list. So refbridge never weakens GitHub protection and says how to
   * let only the mirror bot through.
   */
  setForcePushAllowed(path: string, rule: ProtectionRule, allow: boolean): Promise<boolean> {
    return Promise.reject(
      new RefbridgeError(
        `refbridge does not change GitHub ${rule.source} on ${path} (pattern ${rule.pattern}) to ${allow ? 'allow' : 'forbid'} force pushes`,
        {
          hint:
            rule.source === 'branch protection'
              ? `let only the mirror bot force-push: in ${path} Settings > Branches, edit the rule for ${rule.pattern} and enable "Allow force pushes" for specified actors (the mirror bot user), or move the rule to a ruleset with the bot in its bypass list`
              : `let only the mirror bot through: in ${path} Settings > Rules > Rulesets, open ${rule.source} and add the mirror bot user (or its app) to the bypass list`,
        },
      ),
    );
  }
}

export function createGithubForge(options: GithubForgeOptions): Forge {
  return new GithubForge(options);
}
