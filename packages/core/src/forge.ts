import type { GitCredential } from './git-runner.js';

/**
 * The one interface both platform adapters implement (`@refbridge/github`, `@refbridge/gitlab`),
 * so every feature is written once against it and works in both directions. Paths are the
 * platform's own: `owner/name` on GitHub, `group/subgroup/project` on GitLab.
 */

export type PlatformName = 'github' | 'gitlab';

export type Visibility = 'private' | 'internal' | 'public';

export interface RepoInfo {
  platform: PlatformName;
  /** `owner/name` or the full GitLab path, as the platform spells it. */
  path: string;
  id: number;
  defaultBranch: string | null;
  visibility: Visibility;
  archived: boolean;
  fork: boolean;
  /** GitHub `pushed_at`; GitLab has only `last_activity_at`, which moves on pushes too. */
  pushedAt: string | null;
  /** HTTPS clone URL without credentials. */
  cloneUrl: string;
  description: string | null;
}

export interface TokenInfo {
  login: string;
  /** Scopes the token has (`x-oauth-scopes` on GitHub, `/personal_access_tokens/self` on GitLab). `undefined` when the platform does not say (fine-grained tokens, app tokens). */
  scopes: string[] | undefined;
}

export interface ListReposOptions {
  /** A user, org or group; omitted = everything the token can see. */
  owner?: string;
  /** GitLab groups: include subgroups' projects (default true). */
  includeSubgroups?: boolean;
  /** Cached listing validators, so an unchanged listing costs no rate limit (GitHub ETags). */
  cache?: ListingCache;
}

/** Persisted by the caller between runs; keyed by request URL. */
export interface ListingCache {
  get(key: string): { etag: string; body: unknown } | undefined;
  set(key: string, value: { etag: string; body: unknown }): void;
}

export interface ListReposResult {
  repos: RepoInfo[];
  /** API requests made, for reporting and benchmarks. */
  requests: number;
  /** Pages answered 304 from the cache. */
  notModified: number;
}

export interface SecretOptions {
  /** GitLab only: only exposed to protected refs. */
  protected?: boolean;
}

export interface VariableOptions {
  protected?: boolean;
  masked?: boolean;
}

export type WriteOutcome = 'created' | 'updated' | 'unchanged';

export interface FileToCommit {
  path: string;
  content: string;
}

export interface CommitFilesOptions {
  branch: string;
  message: string;
  files: FileToCommit[];
}

/** A rule on the target that may refuse a ref update; named so reports can say which one. */
export interface ProtectionRule {
  /** `branch protection`, `ruleset "<name>"`, `protected branch "release/*"`. */
  source: string;
  pattern: string;
  allowForcePush: boolean;
  allowDeletion: boolean;
}

export interface Forge {
  readonly platform: PlatformName;
  /** Web base, e.g. https://github.com or https://gitlab.example.com. */
  readonly webUrl: string;
  readonly apiUrl: string;

  /** HTTPS git URL of a repo, without credentials. */
  gitUrl(path: string): string;
  /** Credentials for git over HTTPS on this forge (passed to GitRunner, never put in URLs). */
  gitCredential(): GitCredential;

  tokenInfo(): Promise<TokenInfo>;
  getRepo(path: string): Promise<RepoInfo | undefined>;
  /** Creates the repo (and, on GitLab, missing parent groups where allowed). */
  createRepo(path: string, options: { visibility: Visibility; description?: string }): Promise<RepoInfo>;
  listRepos(options?: ListReposOptions): Promise<ListReposResult>;

  /** GitHub: sealed Actions secret. GitLab: masked (and hidden where supported) CI/CD variable. */
  setSecret(
    path: string,
    name: string,
    value: string,
    options?: SecretOptions,
  ): Promise<Exclude<WriteOutcome, 'unchanged'>>;
  setVariable(path: string, name: string, value: string, options?: VariableOptions): Promise<WriteOutcome>;

  readFile(path: string, branch: string, filePath: string): Promise<string | undefined>;
  /** One commit with all files; creates the branch in an empty repo. Returns the commit SHA. */
  commitFiles(path: string, options: CommitFilesOptions): Promise<string>;

  /** Every rule that applies to `ref` (all matching patterns, not just the default branch). */
  protectionRules(path: string, ref: string): Promise<ProtectionRule[]>;
  /**
   * Changes a rule's force-push permission (used only when the user opted in, and always
   * restored). Returns the previous value. Platforms that cannot do it throw with a hint.
   */
  setForcePushAllowed(path: string, rule: ProtectionRule, allow: boolean): Promise<boolean>;
}
