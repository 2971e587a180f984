import { open, readFile, rename, rm, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { LockedError } from './errors.js';

/**
 * A lock file per pair (or backed-up repo) so two refbridge processes never work on the same refs
 * at once. Created atomically with O_EXCL; a lock left by a process that died (same host, pid no
 * longer alive) is taken over, because a SIGKILLed run must never block the next one forever.
 */

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
  token: string;
}

export interface LockHandle {
  path: string;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** `wait`: retry until `timeoutMs`; `skip`: fail at once with LockedError. */
  mode: 'wait' | 'skip';
  timeoutMs?: number;
  pollMs?: number;
  /** Label for messages, e.g. the pair name. */
  label: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM means the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

async function tryCreate(path: string, owner: LockOwner): Promise<boolean> {
  try {
    const fh = await open(path, 'wx');
    try {
      await fh.writeFile(JSON.stringify(owner));
      await fh.sync();
    } finally {
      await fh.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/**
 * Removes a dead owner's lock. Renaming to a unique name first means two processes that both see
 * the same stale lock cannot both delete a *new* lock the other just created.
 */
async function breakIfStale(path: string): Promise<boolean> {
  const owner = await readOwner(path);
  if (owner && (owner.host !== hostname() || alive(owner.pid))) return false;
  if (!owner) {
    // Unreadable: a writer may be between create and write; treat as held unless it stays so.
    await new Promise((r) => setTimeout(r, 50));
    const again = await readOwner(path);
    if (again) return false;
  }
  const aside = `${path}.stale-${process.pid}-${Date.now()}`;
  try {
    await rename(path, aside);
  } catch {
    return false;
  }
  const moved = await readOwner(aside);
  if (moved && owner && moved.token !== owner.token) {
    // We moved a lock someone else created in between: put it back.
    await rename(aside, path).catch(() => undefined);
    return false;
  }
  await rm(aside, { force: true });
  return true;
}

export async function acquireLock(path: string, options: AcquireOptions): Promise<LockHandle> {
  await mkdir(dirname(path), { recursive: true });
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    token: `${process.pid}-${Math.random().toString(36).slice(2)}`,
  };
  const deadline = Date.now() + (options.mode === 'wait' ? (options.timeoutMs ?? 10 * 60_000) : 0);
  for (;;) {
    if (await tryCreate(path, owner)) break;
    if (await breakIfStale(path)) continue;
    if (Date.now() >= deadline) {
      const holder = await readOwner(path);
      throw new LockedError(
        `${options.label} is being synced by another refbridge process${holder ? ` (pid ${holder.pid} on ${holder.host} since ${holder.startedAt})` : ''}`,
        {
          hint: `wait for it to finish; if no such process exists, remove ${path}`,
        },
      );
    }
    await new Promise((r) => setTimeout(r, options.pollMs ?? 200));
  }
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      const current = await readOwner(path);
      if (current?.token === owner.token) await rm(path, { force: true });
    },
  };
}
