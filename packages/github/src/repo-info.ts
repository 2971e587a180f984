import { UsageError } from '@refbridge/core';
import type { RepoInfo, Visibility } from '@refbridge/core';

/** `owner/name`, split and checked before it goes into a URL or, later, a file path. */
export interface RepoPath {
  owner: string;
  name: string;
}

// GitHub logins are letters, digits and hyphens; Enterprise Managed Users add `_shortcode`.
const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$/;
const NAME = /^[A-Za-z0-9._-]+$/;

export function isValidRepoPath(path: string): boolean {
  const parts = path.split('/');
  if (parts.length !== 2) return false;
  const [owner = '', name = ''] = parts;
  return OWNER.test(owner) && NAME.test(name) && name !== '.' && name !== '..';
}

export function parseRepoPath(path: string): RepoPath {
  if (!isValidRepoPath(path)) {
    throw new UsageError(
      `"${path}" is not a GitHub repository path`,
      'write GitHub repos as owner/name (letters, digits, ".", "_", "-"), e.g. acme/api',
    );
  }
  const [owner = '', name = ''] = path.split('/');
  return { owner, name };
}

/** The fields of GitHub's repository object refbridge reads (full and minimal shapes both have them). */
export interface GithubRepoJson {
  id: number;
  full_name: string;
  private: boolean;
  visibility?: string | undefined;
  default_branch?: string | undefined;
  archived?: boolean | undefined;
  fork: boolean;
  pushed_at?: string | null | undefined;
  clone_url?: string | undefined;
  description: string | null;
}

function visibilityOf(repo: GithubRepoJson): Visibility {
  if (repo.visibility === 'public' || repo.visibility === 'private' || repo.visibility === 'internal') {
    return repo.visibility;
  }
  return repo.private ? 'private' : 'public';
}

export function toRepoInfo(repo: GithubRepoJson, fallbackCloneUrl: (path: string) => string): RepoInfo {
  return {
    platform: 'github',
    path: repo.full_name,
    id: repo.id,
    defaultBranch: repo.default_branch ?? null,
    visibility: visibilityOf(repo),
    archived: repo.archived ?? false,
    fork: repo.fork,
    pushedAt: repo.pushed_at ?? null,
    cloneUrl: repo.clone_url ?? fallbackCloneUrl(repo.full_name),
    description: repo.description,
  };
}

/** Cached listing pages hold mapped RepoInfo; anything else in the cache (older format, corruption) is ignored. */
export function isRepoInfo(value: unknown): value is RepoInfo {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v['platform'] === 'github' &&
    typeof v['path'] === 'string' &&
    typeof v['id'] === 'number' &&
    typeof v['cloneUrl'] === 'string' &&
    typeof v['fork'] === 'boolean' &&
    typeof v['archived'] === 'boolean' &&
    (v['visibility'] === 'public' || v['visibility'] === 'private' || v['visibility'] === 'internal')
  );
}
