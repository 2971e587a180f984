import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { git, writeBlob } from './repo-writer.js';

/**
 * Git reads and tree building for the GitHub Git Data and contents APIs. Everything works on real
 * objects in the bare repo, so what the API answers is exactly what a clone sees.
 */

export interface GitPerson {
  name: string;
  email: string;
  /** ISO 8601 in UTC, the way GitHub prints it (`2014-11-07T22:01:45Z`). */
  date: string;
}

export interface ParsedCommit {
  sha: string;
  tree: string;
  parents: string[];
  author: GitPerson;
  committer: GitPerson;
  message: string;
}

export interface TreeEntry {
  mode: string;
  type: 'blob' | 'tree' | 'commit';
  sha: string;
  /** Blob size; undefined for trees and submodules. */
  size: number | undefined;
  path: string;
}

/** One entry of `POST /git/trees`; `sha: null` deletes the path. */
export interface TreeEdit {
  path: string;
  mode: string;
  type: 'blob' | 'tree' | 'commit';
  sha?: string | null;
  content?: string;
}

export class TreeEditError extends Error {}

const SHA_RE = /^[0-9a-f]{40}$/;

export function isSha(value: unknown): value is string {
  return typeof value === 'string' && SHA_RE.test(value);
}

/** `commit`, `tree`, `blob`, `tag`, or undefined when the object is not in the repo. */
export async function objectType(gitDir: string, rev: string): Promise<string | undefined> {
  if (rev.startsWith('-')) return undefined;
  const out = await git(gitDir, ['cat-file', '-t', rev], { ok: [1, 128] });
  const t = out.trim();
  return t === '' ? undefined : t;
}

/** Resolves a tree-ish (tree, commit, tag or branch name) to its tree SHA. */
export async function resolveTree(gitDir: string, rev: string): Promise<string | undefined> {
  if (rev.startsWith('-')) return undefined;
  const out = await git(gitDir, ['rev-parse', '-q', '--verify', `${rev}^{tree}`], { ok: [1, 128] });
  const sha = out.trim();
  return SHA_RE.test(sha) ? sha : undefined;
}

/** Resolves a commit-ish to a commit SHA. */
export async function resolveCommit(gitDir: string, rev: string): Promise<string | undefined> {
  if (rev.startsWith('-')) return undefined;
  const out = await git(gitDir, ['rev-parse', '-q', '--verify', `${rev}^{commit}`], { ok: [1, 128] });
  const sha = out.trim();
  return SHA_RE.test(sha) ? sha : undefined;
}

/** Branch, tag or SHA, as GitHub resolves the `ref` query of the contents API. */
export async function resolveRefish(gitDir: string, ref: string): Promise<string | undefined> {
  for (const candidate of [`refs/heads/${ref}`, `refs/tags/${ref}`, ref]) {
    const sha = await resolveCommit(gitDir, candidate);
    if (sha) return sha;
  }
  return undefined;
}

export async function readBlob(gitDir: string, sha: string): Promise<Buffer> {
  const r = await execa('git', ['cat-file', 'blob', sha], {
    cwd: gitDir,
    env: { GIT_DIR: gitDir },
    encoding: 'buffer',
    // execa strips a final newline by default, which would change the file.
    stripFinalNewline: false,
  });
  return Buffer.from(r.stdout);
}

function parsePerson(value: string): GitPerson {
  const m = /^(.*) <([^>]*)> (\d+) ([+-]\d{4})$/.exec(value);
  if (!m) return { name: value, email: '', date: new Date(0).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  const date = new Date(Number(m[3]) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return { name: m[1] ?? '', email: m[2] ?? '', date };
}

export async function readCommit(gitDir: string, sha: string): Promise<ParsedCommit | undefined> {
  if ((await objectType(gitDir, sha)) !== 'commit') return undefined;
  const full = (await git(gitDir, ['rev-parse', '--verify', `${sha}^{commit}`])).trim();
  const raw = await git(gitDir, ['cat-file', 'commit', full]);
  const split = raw.indexOf('\n\n');
  const header = split >= 0 ? raw.slice(0, split) : raw;
  const message = split >= 0 ? raw.slice(split + 2) : '';
  let tree = '';
  const parents: string[] = [];
  let author: GitPerson | undefined;
  let committer: GitPerson | undefined;
  for (const line of header.split('\n')) {
    // Continuation lines belong to multi-line headers such as gpgsig.
    if (line.startsWith(' ')) continue;
    const i = line.indexOf(' ');
    const key = line.slice(0, i);
    const value = line.slice(i + 1);
    if (key === 'tree') tree = value;
    else if (key === 'parent') parents.push(value);
    else if (key === 'author') author = parsePerson(value);
    else if (key === 'committer') committer = parsePerson(value);
  }
  const fallback = parsePerson('');
  return {
    sha: full,
    tree,
    parents,
    author: author ?? fallback,
    committer: committer ?? author ?? fallback,
    // GitHub shows the message without git's trailing newline.
    message: message.endsWith('\n') ? message.slice(0, -1) : message,
  };
}

/** Lists a tree (optionally recursively, trees included as GitHub does) or one path's entry. */
export async function lsTree(
  gitDir: string,
  treeish: string,
  options: { recursive?: boolean; path?: string } = {},
): Promise<TreeEntry[]> {
  const args = ['ls-tree', '-l', '-z'];
  if (options.recursive) args.push('-r', '-t');
  args.push(treeish);
  if (options.path !== undefined) args.push('--', options.path);
  const out = await git(gitDir, args);
  const entries: TreeEntry[] = [];
  for (const record of out.split('\0')) {
    const m = /^(\d{6}) (blob|tree|commit) ([0-9a-f]{40}) +(-|\d+)\t([\s\S]*)$/.exec(record);
    if (!m) continue;
    entries.push({
      mode: m[1]!,
      type: m[2] as TreeEntry['type'],
      sha: m[3]!,
      size: m[4] === '-' ? undefined : Number(m[4]),
      path: m[5]!,
    });
  }
  return entries;
}

export async function isAncestor(gitDir: string, ancestor: string, descendant: string): Promise<boolean> {
  const r = await execa('git', ['merge-base', '--is-ancestor', ancestor, descendant], {
    cwd: gitDir,
    env: { GIT_DIR: gitDir },
    reject: false,
  });
  return r.exitCode === 0;
}

/** Workflow files touched by commits reachable from `tip` but from no existing ref. */
export async function workflowPathsIntroduced(gitDir: string, tip: string): Promise<string[]> {
  if ((await objectType(gitDir, tip)) !== 'commit') return [];
  const out = await git(gitDir, [
    'log',
    '--format=',
    '--name-only',
    '--no-renames',
    tip,
    '--not',
    '--all',
    '--',
    '.github/workflows/',
  ]);
  return [...new Set(out.split('\n').filter((p) => p.startsWith('.github/workflows/')))].sort();
}

export function isWorkflowPath(path: string): boolean {
  return path.startsWith('.github/workflows/') || path === '.github/workflows';
}

/** Rejects paths GitHub rejects and paths that could escape the tree. */
export function validTreePath(path: string): boolean {
  if (path === '' || path.startsWith('/') || path.endsWith('/') || path.includes('\0')) return false;
  return path.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..' && seg.toLowerCase() !== '.git');
}

const MODE_TYPES: Record<string, TreeEdit['type']> = {
  '100644': 'blob',
  '100755': 'blob',
  '120000': 'blob',
  '040000': 'tree',
  '160000': 'commit',
};

/**
 * Builds a tree the way `POST /git/trees` does: start from `baseTree` (or nothing), apply the
 * edits in order, write the result. Works on a flat path map, then writes it through a private
 * index, so the repo's own index is never touched.
 */
export async function buildTree(gitDir: string, baseTree: string | undefined, edits: TreeEdit[]): Promise<string> {
  const files = new Map<string, { mode: string; sha: string }>();
  if (baseTree) {
    for (const e of await lsTree(gitDir, baseTree, { recursive: true })) {
      if (e.type !== 'tree') files.set(e.path, { mode: e.mode, sha: e.sha });
    }
  }
  const removeUnder = (path: string): void => {
    for (const key of [...files.keys()]) if (key === path || key.startsWith(`${path}/`)) files.delete(key);
    // A file at an ancestor path would turn into a directory.
    const segs = path.split('/');
    for (let i = 1; i < segs.length; i++) files.delete(segs.slice(0, i).join('/'));
  };
  for (const edit of edits) {
    if (!validTreePath(edit.path)) throw new TreeEditError(`tree.path contains a malformed path component`);
    const expected = MODE_TYPES[edit.mode];
    if (!expected) throw new TreeEditError(`tree.mode ${edit.mode} is not a valid mode`);
    if (edit.type !== expected) throw new TreeEditError(`tree.type ${edit.type} does not match mode ${edit.mode}`);
    if (edit.sha === null) {
      removeUnder(edit.path);
      continue;
    }
    if (edit.content !== undefined) {
      if (edit.type !== 'blob') throw new TreeEditError('tree.content can only be used with blobs');
      const sha = await writeBlob(gitDir, edit.content);
      removeUnder(edit.path);
      files.set(edit.path, { mode: edit.mode, sha });
      continue;
    }
    if (!isSha(edit.sha)) throw new TreeEditError('Must supply either tree.sha or tree.content');
    if (edit.type === 'commit') {
      removeUnder(edit.path);
      files.set(edit.path, { mode: edit.mode, sha: edit.sha });
      continue;
    }
    const actual = await objectType(gitDir, edit.sha);
    if (actual !== edit.type) throw new TreeEditError(`tree.sha ${edit.sha} is not a valid ${edit.type}`);
    removeUnder(edit.path);
    if (edit.type === 'blob') {
      files.set(edit.path, { mode: edit.mode, sha: edit.sha });
    } else {
      for (const e of await lsTree(gitDir, edit.sha, { recursive: true })) {
        if (e.type !== 'tree') files.set(`${edit.path}/${e.path}`, { mode: e.mode, sha: e.sha });
      }
    }
  }
  return writeTreeFromMap(gitDir, files);
}

async function writeTreeFromMap(gitDir: string, files: Map<string, { mode: string; sha: string }>): Promise<string> {
  // `mktree` needs one call per directory; a throwaway index does the whole tree in two calls.
  const dir = await mkdtemp(join(tmpdir(), 'forge-tree-'));
  const env = { GIT_INDEX_FILE: join(dir, 'index') };
  try {
    const lines = [...files].map(([path, e]) => `${e.mode} ${e.sha}\t${path}\0`).join('');
    await git(gitDir, ['read-tree', '--empty'], { env });
    if (lines) await git(gitDir, ['update-index', '--add', '-z', '--index-info'], { env, input: lines });
    return (await git(gitDir, ['write-tree', '--missing-ok'], { env })).trim();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Base64 wrapped at 60 columns with a trailing newline, as GitHub sends file and blob content. */
export function githubBase64(content: Buffer): string {
  const b64 = content.toString('base64');
  if (b64 === '') return '';
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 60) lines.push(b64.slice(i, i + 60));
  return `${lines.join('\n')}\n`;
}
