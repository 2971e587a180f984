import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readlink, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import type { GitRunner } from './git-runner.js';
import type { Logger } from './logger.js';

/**
 * What a refbridge run killed at any moment (SIGKILL, the OOM killer, a power cut) can leave
 * behind, and how the next run gets past it without anyone's help. Callers hold refbridge's own
 * lock for the repository concerned, so no other refbridge run is using it.
 *
 * Git's own lock files (`packed-refs.lock`, `refs/heads/x.lock`, ...) left in a repository that
 * only refbridge writes (a sync cache, a backup mirror) by a git process that was killed: every
 * later git command that writes refs then fails with "Unable to create '...lock': File exists"
 * until someone removes the file by hand. Callers hold refbridge's own lock for the repository, so
 * no other refbridge run is using it; what remains is a git process orphaned by a refbridge that
 * died (the OOM killer takes node, not its children). Such a process works with the repository as
 * its working directory, so on Linux the check is exact (/proc/<pid>/cwd); elsewhere only lock
 * files older than a minute, far longer than git holds any of them, are taken as stale.
 * Removing a stale lock is safe: git writes the new content to the lock file and renames it over
 * the old file, so the old file is intact.
 */

const STALE_AFTER_MS = 60_000;

async function lockFiles(dir: string, depth = 0): Promise<string[]> {
  if (depth > 12) return [];
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      // Objects never carry lock files git would wait on; skip the biggest directory.
      if (!(depth === 0 && e.name === 'objects')) found.push(...(await lockFiles(p, depth + 1)));
    } else if (e.name.endsWith('.lock')) found.push(p);
  }
  return found;
}

/** Whether a live process has its working directory inside `dir`; undefined when /proc cannot tell. */
async function inUse(dir: string): Promise<boolean | undefined> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
  } catch {
    return undefined;
  }
  const root = await realpath(dir).catch(() => dir);
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
    if (cwd !== undefined && (cwd === root || cwd.startsWith(root + sep))) return true;
  }
  return false;
}

/**
 * Removes git lock files left in `gitDir` by a killed git process, and says so. Returns the files
 * removed. Leaves everything alone while a process still works in the repository (or in
 * `workDir`, the working tree a `.git` directory belongs to).
 */
export async function clearStaleGitLocks(
  gitDir: string,
  logger: Logger,
  label: string,
  workDir: string = gitDir,
): Promise<string[]> {
  const locks = await lockFiles(gitDir);
  if (locks.length === 0) return [];
  const busy = await inUse(workDir);
  if (busy === true) {
    logger.warn(
      `${label}: git lock files in ${gitDir} belong to a git process still running there (an interrupted refbridge run's); leaving them`,
    );
    return [];
  }
  const removed: string[] = [];
  for (const file of locks) {
    if (busy === undefined) {
      const age = await stat(file).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age < STALE_AFTER_MS) continue;
    }
    await rm(file, { force: true });
    removed.push(file);
  }
  if (removed.length > 0) {
    logger.warn(
      `${label}: removed ${removed.length} git lock file(s) left by an interrupted run: ${removed.map((f) => f.slice(gitDir.length + 1)).join(', ')}`,
    );
  }
  return removed;
}

/** Marks temporary siblings; `~` is in no GitHub or GitLab name and in no refbridge cache name. */
const TMP_MARK = '~refbridge-tmp-';

/** Removes temporaries an interrupted run left beside `path` (see {@link createAtomically}). */
export async function removeLeftovers(path: string): Promise<void> {
  const parent = dirname(path);
  const prefix = basename(path) + TMP_MARK;
  for (const name of await readdir(parent).catch(() => [] as string[]))
    if (name.startsWith(prefix)) await rm(join(parent, name), { recursive: true, force: true });
}

/**
 * Builds a directory (a repository, a checkout) under a temporary name beside `path` and renames
 * it into place, so a crash never leaves half of one where refbridge looks: a half-initialised
 * repository would be refused as "not a repository" on every later run, and a clone killed before
 * its checkout would look like a tree whose files were all deleted. `path` must not exist, or be an
 * empty directory.
 */
export async function createAtomically(path: string, build: (tmp: string) => Promise<void>): Promise<void> {
  await removeLeftovers(path);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}${TMP_MARK}${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    await build(tmp);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
}

/** `git init --bare` of `path`, made atomic with {@link createAtomically}; `configure` runs on the new repository before it appears. */
export async function initBareRepo(
  git: GitRunner,
  path: string,
  configure: (gitDir: string) => Promise<void>,
): Promise<void> {
  await createAtomically(path, async (tmp) => {
    await git.run(['init', '--bare', '-q', tmp]);
    await configure(tmp);
  });
}
