import { findLfsTips, type LfsAttributeLine } from './lfs-attributes.js';
import { readdir, stat } from 'node:fs/promises';
import { GitCommandError, RefbridgeError } from './errors.js';
import type { GitCredential, GitResult, GitRunner, GitRunOptions } from './git-runner.js';
import { clearStaleGitLocks, initBareRepo } from './crash-recovery.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

/**
 * One local backup mirror: a bare repository holding every ref of the upstream repo, brought up to
 * date without ever losing a commit.
 *
 * Not `clone --mirror` + `fetch --prune`: that overwrites force-pushed refs and deletes vanished
 * ones, and with them the only copy of their commits. Instead:
 *   1. `ls-remote` the upstream (every ref, and HEAD for the default branch);
 *   2. compare with the mirror's refs; nothing differs -> done, nothing fetched;
 *   3. park every tip about to be overwritten or deleted under refs/refbridge/pending/ (so even a
 *      crash halfway keeps it);
 *   4. delete the vanished refs, fetch exactly the changed ones (`--atomic`, refspecs on stdin);
 *   5. turn each parked tip whose commits are no longer reachable from any other ref into
 *      refs/refbridge/backup/<utc>/<ref>; drop the rest (a merged-then-deleted branch loses nothing).
 * Upstream refs under refs/refbridge/ are never fetched, so nothing upstream can overwrite a backup.
 * Credentials reach git only through the runner; the config holds the plain URL.
 */

export const PENDING_NS = 'refs/refbridge/pending/';
export const MIRROR_BACKUP_NS = 'refs/refbridge/backup/';
const OWN_NS = 'refs/refbridge/';

/** Refs the platforms recompute on their own; their old values are not history anyone wrote. */
const SYNTHETIC = [/^refs\/pull\/\d+\/merge$/, /^refs\/merge-requests\/\d+\/(?:merge|train)$/];

export function isBackupEligible(ref: string): boolean {
  return !SYNTHETIC.some((re) => re.test(ref));
}

/** `20240131T235959Z`: sortable, no characters refs or file systems dislike. */
export function backupStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** `refs/heads/main` backed up at `d` -> `refs/refbridge/backup/20240131T235959Z/heads/main`. */
export function backupRefName(stamp: string, ref: string): string {
  return `${MIRROR_BACKUP_NS}${stamp}/${ref.slice('refs/'.length)}`;
}

/** The time a backup ref was taken, from its name; undefined for names refbridge did not write. */
export function backupRefTime(backupRef: string): Date | undefined {
  const m = /^refs\/refbridge\/backup\/(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-\d+)?\//.exec(backupRef);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  return new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
}

export interface MirrorBackup {
  /** The upstream ref that was rewritten or deleted. */
  ref: string;
  /** Where its old tip is kept. */
  backupRef: string;
  sha: string;
  reason: 'rewritten' | 'deleted' | 'interrupted';
}

export interface MirrorSyncResult {
  created: boolean;
  /** Refs created or moved. */
  updated: string[];
  deleted: string[];
  backups: MirrorBackup[];
  /** Growth of the object store, as `git count-objects` sees it. */
  bytes: number;
  /** Branch and tag tips after the sync. */
  tips: Record<string, string>;
  /** Upstream's default branch (from its HEAD), null for an empty repo. */
  defaultBranch: string | null;
  /** Refs in the mirror after the sync (refbridge's own not counted). */
  refCount: number;
  /**
   * When refs moved and the default branch's root `.gitattributes` stores files with Git LFS: its
   * LFS lines. A mirror holds git objects only, so such a backup has the pointer files, not their
   * content (asked only when something was fetched: an unchanged repo costs nothing).
   */
  lfs?: LfsAttributeLine[];
}

export interface SyncMirrorOptions {
  git: GitRunner;
  gitDir: string;
  /** Upstream clone URL without credentials. */
  url: string;
  credentials: readonly GitCredential[];
  now: Date;
  logger?: Logger;
  /** For messages. */
  label: string;
}

class Mirror {
  constructor(
    readonly git: GitRunner,
    readonly gitDir: string,
  ) {}

  run(args: string[], options: Omit<GitRunOptions, 'cwd'> = {}): Promise<GitResult> {
    return this.git.run(args, { ...options, cwd: this.gitDir, env: { ...(options.env ?? {}), GIT_DIR: this.gitDir } });
  }

  async refs(prefix = 'refs/'): Promise<Map<string, string>> {
    const { stdout } = await this.run(['for-each-ref', '--format=%(objectname) %(refname)', prefix]);
    const refs = new Map<string, string>();
    for (const line of stdout.split('\n')) {
      const space = line.indexOf(' ');
      if (space > 0) refs.set(line.slice(space + 1), line.slice(0, space));
    }
    return refs;
  }

  async updateRefs(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.run(['update-ref', '--stdin'], { input: ['start', ...lines, 'prepare', 'commit'].join('\n') + '\n' });
  }

  async objectBytes(): Promise<number> {
    const { stdout } = await this.run(['count-objects', '-v']);
    let kib = 0;
    for (const line of stdout.split('\n')) {
      const m = /^(size|size-pack): (\d+)$/.exec(line.trim());
      if (m) kib += Number(m[2]);
    }
    return kib * 1024;
  }
}

async function isEmptyDir(path: string): Promise<boolean> {
  return (await readdir(path)).length === 0;
}

/** Creates the bare mirror on first use; refuses a directory that exists but is something else. */
export async function ensureMirror(git: GitRunner, gitDir: string, url: string): Promise<boolean> {
  const exists = await stat(gitDir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (exists && !(await isEmptyDir(gitDir))) {
    const r = await git
      .run(['rev-parse', '--is-bare-repository'], { cwd: gitDir, env: { GIT_DIR: gitDir } })
      .catch(() => undefined);
    if (r?.stdout.trim() !== 'true') {
      throw new RefbridgeError(`${gitDir} exists but is not a bare git repository`, {
        hint: 'move it out of the storage directory; refbridge never overwrites what it did not create',
      });
    }
    return false;
  }
  // Atomic: a run killed while creating the mirror must not leave a directory it then refuses.
  await initBareRepo(git, gitDir, async (dir) => {
    const m = new Mirror(git, dir);
    // The plain URL, for people who want to look; never credentials (they go through the environment).
    await m.run(['config', 'remote.origin.url', url]);
    // Foreground gc, so no background process outlives the run and holds the repository.
    await m.run(['config', 'gc.autoDetach', 'false']);
    await m.run(['config', 'core.logAllRefUpdates', 'false']);
  });
  return true;
}

/** Brings the mirror up to date with upstream, keeping every tip that would otherwise be lost. */
export async function syncMirror(options: SyncMirrorOptions): Promise<MirrorSyncResult> {
  const created = await ensureMirror(options.git, options.gitDir, options.url);
  // A run killed mid-write leaves git's lock files; the caller holds the repo's lock, so they are stale.
  if (!created) await clearStaleGitLocks(options.gitDir, options.logger ?? silentLogger, options.label);
  try {
    return await syncOnce(options, created);
  } catch (error) {
    // A ref deleted between ls-remote and fetch: look again once rather than fail the repo.
    if (error instanceof GitCommandError && /couldn't find remote ref/i.test(error.stderr)) {
      (options.logger ?? silentLogger).debug(`${options.label}: upstream changed during the fetch; looking again`);
      return syncOnce(options, created);
    }
    throw error;
  }
}

async function syncOnce(options: SyncMirrorOptions, created: boolean): Promise<MirrorSyncResult> {
  const m = new Mirror(options.git, options.gitDir);
  const logger = options.logger ?? silentLogger;

  // A previous run that died between parking and sorting left these: sort them first.
  const leftover = new Map<string, { sha: string; reason: MirrorBackup['reason'] }>();
  for (const [name, sha] of await m.refs(PENDING_NS)) {
    leftover.set(`refs/${name.slice(PENDING_NS.length)}`, { sha, reason: 'interrupted' });
  }
  const recovered = await settlePending(m, leftover, options.now);
  const pending = new Map<string, { sha: string; reason: MirrorBackup['reason'] }>();

  const entries = await options.git.lsRemote(options.url, {
    symref: true,
    cwd: options.gitDir,
    env: { GIT_DIR: options.gitDir },
    credentials: options.credentials,
  });
  const remote = new Map<string, string>();
  let defaultBranch: string | null = null;
  for (const e of entries) {
    if (e.ref === 'HEAD' && e.symref?.startsWith('refs/heads/')) defaultBranch = e.symref.slice('refs/heads/'.length);
    if (!e.ref.startsWith('refs/')) continue;
    if (e.ref.startsWith(OWN_NS)) {
      logger.debug(`${options.label}: ignoring upstream ref ${e.ref} (refbridge's own namespace)`);
      continue;
    }
    remote.set(e.ref, e.sha);
  }

  const all = await m.refs();
  const local = new Map([...all].filter(([ref]) => !ref.startsWith(OWN_NS)));
  const updated = [...remote].filter(([ref, sha]) => local.get(ref) !== sha).map(([ref]) => ref);
  const deleted = [...local.keys()].filter((ref) => !remote.has(ref));

  // Park the tips about to change before anything moves.
  const park: string[] = [];
  for (const ref of [...updated, ...deleted]) {
    const old = local.get(ref);
    if (old === undefined || !isBackupEligible(ref)) continue;
    pending.set(ref, { sha: old, reason: remote.has(ref) ? 'rewritten' : 'deleted' });
    park.push(`update ${PENDING_NS}${ref.slice('refs/'.length)} ${old}`);
  }
  await m.updateRefs(park);

  // Deletions first: `a` deleted and `a/b` created upstream would otherwise clash in the fetch.
  await m.updateRefs(deleted.map((ref) => `delete ${ref} ${local.get(ref) ?? ''}`.trimEnd()));

  let bytes = 0;
  if (updated.length > 0) {
    const before = await m.objectBytes();
    await m.run(['fetch', '--quiet', '--atomic', '--no-tags', '--no-write-fetch-head', '--stdin', '--', options.url], {
      input: updated.map((ref) => `+${ref}:${ref}`).join('\n') + '\n',
      credentials: options.credentials,
      hint: 'check that the token can still read the repository; the mirror was left as it was',
      retryTransient: true,
    });
    bytes = Math.max(0, (await m.objectBytes()) - before);
  }

  const backups = [...recovered, ...(await settlePending(m, pending, options.now))];

  if (defaultBranch !== null) {
    const head = await m.run(['symbolic-ref', '-q', 'HEAD'], { okExitCodes: [1] });
    if (head.stdout.trim() !== `refs/heads/${defaultBranch}`)
      await m.run(['symbolic-ref', 'HEAD', `refs/heads/${defaultBranch}`]);
  }

  const after = await m.refs();
  const tips: Record<string, string> = {};
  let refCount = 0;
  for (const [ref, sha] of after) {
    if (ref.startsWith(OWN_NS)) continue;
    refCount++;
    if (ref.startsWith('refs/heads/') || ref.startsWith('refs/tags/')) tips[ref] = sha;
  }
  const result: MirrorSyncResult = { created, updated, deleted, backups, bytes, tips, defaultBranch, refCount };
  const head = defaultBranch === null ? undefined : tips[`refs/heads/${defaultBranch}`];
  if (updated.length > 0 && head !== undefined) {
    const lfs = (await findLfsTips(options.git, [head], { cwd: options.gitDir, env: { GIT_DIR: options.gitDir } })).get(
      head,
    );
    if (lfs !== undefined) result.lfs = lfs;
  }
  return result;
}

/**
 * Keeps a parked tip as a dated backup when something would be lost without it: any moved or
 * deleted tag (the tag object itself), or commits no other ref reaches. Everything else is dropped.
 */
async function settlePending(
  m: Mirror,
  pending: Map<string, { sha: string; reason: MirrorBackup['reason'] }>,
  now: Date,
): Promise<MirrorBackup[]> {
  if (pending.size === 0) return [];
  const stamp = backupStamp(now);
  const taken = new Set(
    [...(await m.refs(MIRROR_BACKUP_NS)).keys()].filter((r) => r.startsWith(`${MIRROR_BACKUP_NS}${stamp}`)),
  );
  const lines: string[] = [];
  const backups: MirrorBackup[] = [];
  const current = await m.refs();
  for (const [ref, { sha, reason }] of pending) {
    const pendingRef = `${PENDING_NS}${ref.slice('refs/'.length)}`;
    lines.push(`delete ${pendingRef}`);
    if (current.get(ref) === sha) continue; // it did not move after all
    let keep = ref.startsWith('refs/tags/');
    if (!keep) {
      const r = await m.run(['rev-list', '-n', '1', sha, '--not', `--exclude=${OWN_NS}*`, '--all']);
      keep = r.stdout.trim() !== '';
    }
    if (!keep) continue;
    let name = backupRefName(stamp, ref);
    for (let n = 2; taken.has(name); n++) name = backupRefName(`${stamp}-${n}`, ref);
    taken.add(name);
    lines.push(`create ${name} ${sha}`);
    backups.push({ ref, backupRef: name, sha, reason });
  }
  await m.updateRefs(lines);
  return backups;
}

/** Deletes backup refs older than `keepDays`; returns how many. Refs it cannot date are kept. */
export async function pruneMirrorBackups(git: GitRunner, gitDir: string, keepDays: number, now: Date): Promise<number> {
  const m = new Mirror(git, gitDir);
  const cutoff = now.getTime() - keepDays * 86_400_000;
  const old = [...(await m.refs(MIRROR_BACKUP_NS)).keys()].filter((ref) => {
    const t = backupRefTime(ref);
    return t !== undefined && t.getTime() < cutoff;
  });
  await m.updateRefs(old.map((ref) => `delete ${ref}`));
  return old.length;
}

/** Branch and tag tips of a mirror (local only, no network). */
export async function mirrorTips(git: GitRunner, gitDir: string): Promise<Record<string, string>> {
  const m = new Mirror(git, gitDir);
  const tips: Record<string, string> = {};
  for (const [ref, sha] of await m.refs())
    if (ref.startsWith('refs/heads/') || ref.startsWith('refs/tags/')) tips[ref] = sha;
  return tips;
}
