import { createHash } from 'node:crypto';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { checkGithubRepo, checkGitlabProjectPath } from './config.js';
import { RefbridgeError } from './errors.js';
import type { PlatformName } from './forge.js';

/**
 * Where `refbridge backup` keeps things below `--storage`:
 *
 *   <storage>/<host>/<owner>/<repo>.git     bare mirror, every ref
 *   <storage>/<host>/<owner>/<repo>/        optional checkout (`--checkout`)
 *   <storage>/<host>/<group>/<sub>/<p>.git  GitLab keeps its nesting
 *   <storage>/.refbridge/backup-state.json  state (pushed_at, tips, listing ETags)
 *   <storage>/.refbridge/locks/             one lock per repo
 *
 * Names come from an API, so they are checked before they touch the filesystem: no `..`, no
 * absolute paths, nothing that resolves outside the storage directory. Names are used verbatim
 * (never "cleaned" by stripping `.git` substrings, which turns `user.github.io` into `userhub.io`
 * in other tools); the `.git` suffix is only ever appended.
 */

export const STATE_DIR_NAME = '.refbridge';
export const STATE_FILE_NAME = 'backup-state.json';

/** A repo name from an API that refbridge will not turn into a path. */
export class UnsafeRepoNameError extends RefbridgeError {}

/**
 * The directory for one forge instance: its host, plus port and path prefix when present
 * (`127.0.0.1:4001` -> `127.0.0.1_4001`, `git.example.com/gitlab` -> `git.example.com_gitlab`), so
 * two instances never share a tree and no directory name carries a `:` (which git would read as
 * `host:path` in a relative URL, and Windows refuses).
 */
export function hostDirName(webUrl: string): string {
  const url = new URL(webUrl);
  const host = url.hostname.toLowerCase();
  // IPv6 literals arrive as `[::1]`: keep the address, lose the brackets and colons.
  const parts = [host.startsWith('[') ? `ipv6-${host.replace(/[[\]]/g, '').replace(/:/g, '-')}` : host];
  if (url.port) parts.push(url.port);
  const prefix = url.pathname.replace(/^\/+|\/+$/g, '');
  if (prefix) parts.push(...prefix.split('/'));
  const name = parts.join('_');
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name) || name.includes('..')) {
    throw new UnsafeRepoNameError(`cannot derive a storage directory name from ${webUrl}`, {
      hint: 'use a plain http(s) base URL such as https://github.example.com',
    });
  }
  return name;
}

/** Why `path` must not become a directory, or undefined when it is safe. */
export function repoPathProblem(platform: PlatformName, path: string): string | undefined {
  const problem = platform === 'github' ? checkGithubRepo(path) : checkGitlabProjectPath(path);
  if (problem) return problem.message;
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `has an empty, "." or ".." part`;
    // A leading dot is fine (`.github`), but a segment that *is* our own directory is not.
    if (segment.toLowerCase() === STATE_DIR_NAME) return `uses the reserved name ${STATE_DIR_NAME}`;
  }
  return undefined;
}

export interface MirrorPaths {
  /** Identity of the repo in state, locks and shards: `<host dir>/<path>`, lower-cased (both platforms ignore case). */
  key: string;
  /** Absolute path of the bare mirror. */
  gitDir: string;
  /** Absolute path of the checkout beside it. */
  worktree: string;
  /** `gitDir` relative to the storage directory, with `/` separators (for reports and state). */
  relativeGitDir: string;
}

export function repoKey(hostDir: string, path: string): string {
  return `${hostDir}/${path}`.toLowerCase();
}

function inside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

/** Paths of one repo's mirror and checkout; throws UnsafeRepoNameError for names that are not safe. */
export function mirrorPaths(storage: string, hostDir: string, platform: PlatformName, path: string): MirrorPaths {
  const problem = repoPathProblem(platform, path);
  if (problem) {
    throw new UnsafeRepoNameError(`refusing to back up ${JSON.stringify(path)}: the name ${problem}`, {
      hint: 'the platform returned a name refbridge cannot store safely; report it (nothing was written)',
    });
  }
  const root = resolve(storage);
  const segments = path.split('/');
  const last = segments.pop() as string;
  const parent = join(root, hostDir, ...segments);
  const gitDir = join(parent, `${last}.git`);
  const worktree = join(parent, last);
  // Belt and braces: whatever the checks above missed must still land inside the storage dir.
  if (!inside(root, gitDir) || !inside(root, worktree)) {
    throw new UnsafeRepoNameError(`refusing to back up ${JSON.stringify(path)}: it resolves outside ${root}`);
  }
  return {
    key: repoKey(hostDir, path),
    gitDir,
    worktree,
    relativeGitDir: relative(root, gitDir).split(sep).join('/'),
  };
}

export function stateDir(storage: string): string {
  return join(resolve(storage), STATE_DIR_NAME);
}

export function stateFilePath(storage: string): string {
  return join(stateDir(storage), STATE_FILE_NAME);
}

/** One lock file per repo; hashed so any key length and case maps to a short, safe name. */
export function repoLockPath(storage: string, key: string): string {
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 24);
  return join(stateDir(storage), 'locks', `${hash}.lock`);
}
