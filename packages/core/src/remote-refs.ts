/**
 * Snapshots of a remote's refs (`ls-remote`, see GitRunner.lsRemote): no clone, no named remote, credentials only
 * through the runner. Only the refs asked for come back; hidden refs (`refs/pull/*`,
 * `refs/merge-requests/*`, `HEAD`, ...) never appear unless a pattern names them.
 */
import { RefbridgeError } from './errors.js';
import type { GitCredential, GitRunner } from './git-runner.js';
import { refPatternRegExp } from './git-runner.js';
import type { LsRemoteEntry } from './git-parsers.js';

/** What refbridge syncs: branches and tags. */
export const MIRRORED_REF_PATTERNS: readonly string[] = ['refs/heads/*', 'refs/tags/*'];

export interface ListRemoteRefsOptions {
  credentials?: readonly GitCredential[];
  /**
   * Full ref names or globs (`*` matches any run of characters, `/` included, as in refspecs).
   * Default: branches and tags.
   */
  patterns?: readonly string[];
  /** Directory to run in; ls-remote needs no repository. */
  cwd?: string;
  timeoutMs?: number;
}

function checkPattern(pattern: string): void {
  if (pattern === 'HEAD') return;
  if (!pattern.startsWith('refs/') || /[\s~^:?[\\]/.test(pattern) || pattern.includes('..')) {
    throw new RefbridgeError(`invalid ref pattern ${JSON.stringify(pattern)}`, {
      hint: 'use full ref names or globs such as refs/heads/* or refs/tags/v1.0',
    });
  }
}

/** Whether `ref` matches a pattern as {@link listRemoteRefs} understands them. */
export function matchesRefPattern(ref: string, pattern: string): boolean {
  return refPatternRegExp(pattern).test(ref);
}

/** Branches and tags with valid-looking names: the only refs refbridge pushes. */
export function isMirroredRef(ref: string): boolean {
  const m = /^refs\/(heads|tags)\/(.+)$/.exec(ref);
  if (!m?.[2]) return false;
  const name = m[2];
  return (
    ![...name].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f) &&
    !/[\s~^:?*[\\]/.test(name) &&
    !name.includes('..') &&
    !name.includes('@{') &&
    !name.includes('//') &&
    !name.startsWith('/') &&
    !name.endsWith('/') &&
    !name.endsWith('.') &&
    !name.endsWith('.lock') &&
    name !== '@' &&
    !name.split('/').some((c) => c.startsWith('.') || c.endsWith('.lock'))
  );
}

/** Lists the remote's refs matching the patterns, with peeled ids for annotated tags. */
export async function listRemoteRefEntries(
  git: GitRunner,
  url: string,
  options: ListRemoteRefsOptions = {},
): Promise<LsRemoteEntry[]> {
  const patterns = options.patterns ?? MIRRORED_REF_PATTERNS;
  if (patterns.length === 0) return [];
  for (const p of patterns) checkPattern(p);
  return git.lsRemote(url, {
    patterns,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
}

/** Ref name -> object id (for annotated tags the tag object, as a push would compare). */
export async function listRemoteRefs(
  git: GitRunner,
  url: string,
  options: ListRemoteRefsOptions = {},
): Promise<Map<string, string>> {
  const entries = await listRemoteRefEntries(git, url, options);
  return new Map(entries.map((e) => [e.ref, e.sha]));
}
