import { readdir, readlink, realpath, rm, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Logger } from './logger.js';

/**
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
 * removed. Leaves everything alone while a process still works in the repository.
 */
export async function clearStaleGitLocks(gitDir: string, logger: Logger, label: string): Promise<string[]> {
  const locks = await lockFiles(gitDir);
  if (locks.length === 0) return [];
  const busy = await inUse(gitDir);
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
