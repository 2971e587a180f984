import { execa } from 'execa';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

/**
 * Git plumbing for the forge's own writes: seeding repos and the contents, Git Data and commits
 * APIs. All writes go through real git objects in the bare repo, so what the API creates is exactly
 * what a clone sees.
 */

export const ZERO_SHA = '0'.repeat(40);

export interface GitIdentity {
  name: string;
  email: string;
  date?: string;
}

const defaultIdentity: GitIdentity = { name: 'Forge', email: 'forge@forge.invalid' };

export async function git(
  gitDir: string,
  args: string[],
  options: { input?: string | Buffer; env?: Record<string, string>; ok?: number[] } = {},
): Promise<string> {
  const r = await execa('git', args, {
    cwd: gitDir,
    env: { GIT_DIR: gitDir, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0', ...(options.env ?? {}) },
    reject: false,
    stripFinalNewline: false,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    encoding: 'utf8',
  });
  if (r.exitCode !== 0 && !(options.ok ?? []).includes(r.exitCode ?? -1)) {
    throw new Error(`git ${args.join(' ')} failed (${r.exitCode}): ${String(r.stderr)}`);
  }
  return String(r.stdout);
}

export async function resolveRef(gitDir: string, ref: string): Promise<string | undefined> {
  const out = await git(gitDir, ['rev-parse', '-q', '--verify', `${ref}^{object}`], { ok: [1, 128] });
  const sha = out.trim();
  return /^[0-9a-f]{40}$/.test(sha) ? sha : undefined;
}

export async function listRefs(gitDir: string, pattern = 'refs/'): Promise<Map<string, string>> {
  const out = await git(gitDir, ['for-each-ref', '--format=%(objectname) %(refname)', pattern]);
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, ref] = line.split(' ');
    if (sha && ref) refs.set(ref, sha);
  }
  return refs;
}

export async function isEmptyRepo(gitDir: string): Promise<boolean> {
  return (await listRefs(gitDir, 'refs/heads/')).size === 0;
}

export async function writeBlob(gitDir: string, content: Buffer | string): Promise<string> {
  return (await git(gitDir, ['hash-object', '-w', '--stdin'], { input: content })).trim();
}

export interface FileChange {
  path: string;
  /** New content; `null` deletes the path. */
  content: Buffer | string | null;
  mode?: '100644' | '100755' | '120000';
}

/**
 * Creates a commit on `branch` applying `changes` on top of `parent` (undefined: the branch's
 * current tip; null: a root commit) and moves the branch with a compare-and-swap so concurrent
 * writers fail instead of losing each other's commits. Returns the new commit's SHA.
 */
export async function commitChanges(
  gitDir: string,
  options: {
    branch: string;
    parent?: string | null;
    changes: FileChange[];
    message: string;
    author?: GitIdentity;
    committer?: GitIdentity;
  },
): Promise<string> {
  const ref = `refs/heads/${options.branch}`;
  const current = await resolveRef(gitDir, ref);
  const parent = options.parent === undefined ? current : options.parent;
  const indexDir = join(tmpdir(), `forge-index-${randomUUID()}`);
  await mkdir(indexDir, { recursive: true });
  const env = { GIT_INDEX_FILE: join(indexDir, 'index') };
  try {
    if (parent) await git(gitDir, ['read-tree', parent], { env });
    else await git(gitDir, ['read-tree', '--empty'], { env });
    for (const change of options.changes) {
      if (change.content === null) {
        // `--force-remove` wants a work tree; an index-info line with mode 0 removes the path without one.
        await git(gitDir, ['update-index', '-z', '--index-info'], { env, input: `0 ${ZERO_SHA}\t${change.path}\0` });
      } else {
        const blob = await writeBlob(gitDir, change.content);
        await git(
          gitDir,
          ['update-index', '--add', '--cacheinfo', `${change.mode ?? '100644'},${blob},${change.path}`],
          { env },
        );
      }
    }
    const tree = (await git(gitDir, ['write-tree'], { env })).trim();
    const commit = await commitTree(gitDir, {
      tree,
      parents: parent ? [parent] : [],
      message: options.message,
      author: options.author,
      committer: options.committer,
    });
    await git(gitDir, ['update-ref', ref, commit, current ?? ZERO_SHA]);
    return commit;
  } finally {
    await rm(indexDir, { recursive: true, force: true });
  }
}

export async function commitTree(
  gitDir: string,
  options: {
    tree: string;
    parents: string[];
    message: string;
    author?: GitIdentity | undefined;
    committer?: GitIdentity | undefined;
  },
): Promise<string> {
  const a = options.author ?? defaultIdentity;
  const c = options.committer ?? a;
  const env: Record<string, string> = {
    GIT_AUTHOR_NAME: a.name,
    GIT_AUTHOR_EMAIL: a.email,
    GIT_COMMITTER_NAME: c.name,
    GIT_COMMITTER_EMAIL: c.email,
    ...(a.date ? { GIT_AUTHOR_DATE: a.date } : {}),
    ...(c.date ? { GIT_COMMITTER_DATE: c.date } : {}),
  };
  const args = ['commit-tree', options.tree, ...options.parents.flatMap((p) => ['-p', p])];
  return (await git(gitDir, args, { input: options.message, env })).trim();
}

/** Reads a file at `rev`; undefined when the path does not exist there. */
export async function readFileAt(
  gitDir: string,
  rev: string,
  path: string,
): Promise<{ content: Buffer; sha: string; mode: string } | undefined> {
  const out = await git(gitDir, ['ls-tree', '-z', rev, '--', path], { ok: [128] });
  const entry = out.split('\0')[0];
  if (!entry) return undefined;
  const m = /^(\d+) (\w+) ([0-9a-f]{40})\t/.exec(entry);
  if (!m || m[2] !== 'blob') return undefined;
  // stripFinalNewline: execa would otherwise drop the file's last newline.
  const r = await execa('git', ['cat-file', 'blob', m[3]!], {
    cwd: gitDir,
    env: { GIT_DIR: gitDir },
    encoding: 'buffer',
    stripFinalNewline: false,
  });
  return { content: Buffer.from(r.stdout), sha: m[3]!, mode: m[1]! };
}
