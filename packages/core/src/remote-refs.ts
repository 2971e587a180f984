/**
 * Snapshots of a remote's refs through `git ls-remote`: no clone, no named remote, credentials only
 * through the runner. Only the refs asked for come back; hidden refs (`refs/pull/*`,
 * `refs/merge-requests/*`, `HEAD`, ...) never appear unless a pattern names them.
 */
import { RefbridgeError } from './errors.js';
import type { GitCredential, GitRunner } from './git-runner.js';
import type { LsRemoteEntry } from './git-parsers.js';
import { parseLsRemote } from './git-parsers.js';

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

function patternRegExp(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** Whether `ref` matches a pattern as {@link listRemoteRefs} understands them. */
export function matchesRefPattern(ref: string, pattern: string): boolean {
  return patternRegExp(pattern).test(ref);
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

/**
 * `git ls-remote` arguments for the patterns. Git matches patterns against the *tail* of ref
 * names and lists `<tag>^{}` only for glob matches, so exact names also ask for their peeled line,
 * and the result is filtered again here with exact semantics. `--heads`/`--tags` let protocol v2
 * servers send only those namespaces (GitHub repositories can have many thousands of
 * `refs/pull/*`).
 */
function lsRemoteArgs(url: string, patterns: readonly string[]): string[] {
  const args = ['ls-remote'];
  const heads = patterns.some((p) => p.startsWith('refs/heads/'));
  const tags = patterns.some((p) => p.startsWith('refs/tags/'));
  const onlyHeadsAndTags = patterns.every((p) => p.startsWith('refs/heads/') || p.startsWith('refs/tags/'));
  if (onlyHeadsAndTags) {
    if (heads) args.push('--heads');
    if (tags) args.push('--tags');
  }
  // `--` first: a URL from a config file must never be read as an option.
  args.push('--', url);
  for (const p of patterns) {
    args.push(p);
    if (!p.includes('*') && p.startsWith('refs/tags/')) args.push(`${p}^{}`);
  }
  return args;
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
  const { stdout } = await git.run(lsRemoteArgs(url, patterns), {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    hint: 'check the repository URL and that the token can read the repository',
    retryTransient: true,
  });
  const regexps = patterns.map(patternRegExp);
  return parseLsRemote(stdout).filter((e) => regexps.some((r) => r.test(e.ref)));
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
