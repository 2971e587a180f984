import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { stateDir, stateFilePath } from './backup-paths.js';
import { RefbridgeError } from './errors.js';
import type { ListingCache, PlatformName } from './forge.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import { acquireLock } from './pair-lock.js';

/**
 * The backup's memory between runs, one JSON file in the storage directory. It is what makes
 * "fetch exactly the repos that changed, whether refbridge was running or not" work: the
 * `pushed_at` seen at the last successful fetch is compared with the listing's, so a restart or a
 * week of downtime loses nothing (holocron kept this in memory and forgot it on restart).
 *
 * Written atomically (temp file + fsync + rename), so a crash leaves the old file or the new one,
 * never half of one. Two processes sharing a storage directory (a misconfigured CI matrix, a cron
 * run overlapping a watcher) each merge only the entries they touched into the file on disk, under
 * a lock, so neither erases the other's work.
 */

export const BACKUP_STATE_VERSION = 1;

export interface DestinationState {
  /** Project path on the destination. */
  path: string;
  /** Branch and tag tips refbridge last pushed there (and saw accepted). */
  tips: Record<string, string>;
  lastSuccessAt?: string;
  lastError?: string;
}

export interface BackupRepoState {
  platform: PlatformName;
  /** The path as the platform spells it. */
  path: string;
  id: number;
  /** Mirror directory, relative to the storage directory. */
  gitDir: string;
  /** The listing's `pushed_at` (GitLab: `last_activity_at`) when the mirror was last brought up to date. */
  pushedAt: string | null;
  /** When refbridge last started a successful fetch or ls-remote of this repo (this machine's clock). */
  verifiedAt?: string;
  /** Branch and tag tips after the last successful fetch. */
  tips: Record<string, string>;
  defaultBranch: string | null;
  lastSuccessAt?: string;
  lastAttemptAt?: string;
  /** Set while the repo is failing; cleared by the next success. */
  lastError?: string;
  /** Consecutive failures. */
  failures: number;
  /** The checkout beside the mirror, as refbridge last left it. */
  checkout?: { branch: string; tip: string };
  destination?: DestinationState;
}

export interface LastRunState {
  startedAt: string;
  finishedAt: string;
  /** Last run whose listing was complete and in which no repo failed. */
  lastSuccessAt?: string;
  complete: boolean;
  failed: number;
}

export interface BackupStateData {
  version: typeof BACKUP_STATE_VERSION;
  repos: Record<string, BackupRepoState>;
  /** ETag validators and bodies of listing pages, keyed by request URL. */
  listings: Record<string, { etag: string; body: unknown }>;
  lastRun?: LastRunState;
}

function emptyState(): BackupStateData {
  return { version: BACKUP_STATE_VERSION, repos: {}, listings: {} };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses the file; `undefined` when it is not a refbridge backup state at all. */
export function parseBackupState(text: string, source: string): BackupStateData | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(raw) || !isRecord(raw['repos'])) return undefined;
  const version = raw['version'];
  if (typeof version === 'number' && version > BACKUP_STATE_VERSION) {
    throw new RefbridgeError(`${source} was written by a newer refbridge (state version ${version})`, {
      hint: 'upgrade refbridge, or point --storage elsewhere; refusing to overwrite it',
    });
  }
  if (version !== BACKUP_STATE_VERSION) return undefined;
  const repos: Record<string, BackupRepoState> = {};
  for (const [key, value] of Object.entries(raw['repos'])) {
    // Entries that do not look right are dropped: that repo is then re-checked, which is safe.
    if (
      isRecord(value) &&
      (value['platform'] === 'github' || value['platform'] === 'gitlab') &&
      typeof value['path'] === 'string' &&
      typeof value['gitDir'] === 'string' &&
      (value['pushedAt'] === null || typeof value['pushedAt'] === 'string') &&
      isRecord(value['tips'])
    ) {
      const entry = value as unknown as BackupRepoState;
      repos[key] = {
        ...entry,
        failures: typeof entry.failures === 'number' ? entry.failures : 0,
        defaultBranch: typeof entry.defaultBranch === 'string' ? entry.defaultBranch : null,
        id: typeof entry.id === 'number' ? entry.id : 0,
      };
    }
  }
  const listings: BackupStateData['listings'] = {};
  if (isRecord(raw['listings'])) {
    for (const [url, value] of Object.entries(raw['listings'])) {
      if (isRecord(value) && typeof value['etag'] === 'string')
        listings[url] = { etag: value['etag'], body: value['body'] };
    }
  }
  const lastRun = isRecord(raw['lastRun']) ? (raw['lastRun'] as unknown as LastRunState) : undefined;
  return { version: BACKUP_STATE_VERSION, repos, listings, ...(lastRun ? { lastRun } : {}) };
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (error) {
    // A half-written temp file (a full disk) must not stay behind taking space.
    await rm(tmp, { force: true });
    throw error;
  }
}

export class BackupStateStore {
  private data: BackupStateData;
  private readonly touchedRepos = new Set<string>();
  private readonly touchedListings = new Set<string>();
  private lastRunTouched = false;
  private saving: Promise<void> | undefined;

  private constructor(
    readonly storage: string,
    data: BackupStateData,
    private readonly logger: Logger,
  ) {
    this.data = data;
  }

  get path(): string {
    return stateFilePath(this.storage);
  }

  /** Reads the state file; a missing file is an empty state, an unreadable one is set aside with a warning. */
  static async open(storage: string, logger: Logger = silentLogger): Promise<BackupStateStore> {
    const path = stateFilePath(storage);
    const data = await BackupStateStore.read(path, logger, true);
    return new BackupStateStore(storage, data ?? emptyState(), logger);
  }

  private static async read(path: string, logger: Logger, setAside: boolean): Promise<BackupStateData | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new RefbridgeError(`cannot read the backup state ${path}: ${(error as Error).message}`, {
        hint: 'check the permissions of the storage directory',
        cause: error,
      });
    }
    const parsed = parseBackupState(text, path);
    if (parsed) return parsed;
    if (setAside) {
      const aside = `${path}.unreadable-${Date.now()}`;
      await rename(path, aside).catch(() => undefined);
      // Safe to start over: mirrors stay, and each is compared ref by ref on its next fetch.
      logger.warn(
        `the backup state ${path} could not be read; moved it to ${aside} and starting with an empty state (every mirror is re-checked once)`,
      );
    }
    return undefined;
  }

  repo(key: string): BackupRepoState | undefined {
    return this.data.repos[key];
  }

  setRepo(key: string, value: BackupRepoState): void {
    this.data.repos[key] = value;
    this.touchedRepos.add(key);
  }

  repoKeys(): string[] {
    return Object.keys(this.data.repos);
  }

  get lastRun(): LastRunState | undefined {
    return this.data.lastRun;
  }

  setLastRun(run: LastRunState): void {
    this.data.lastRun = run;
    this.lastRunTouched = true;
  }

  /** The adapters' ETag cache, persisted with the state. */
  readonly listingCache: ListingCache = {
    get: (key) => this.data.listings[key],
    set: (key, value) => {
      this.data.listings[key] = value;
      this.touchedListings.add(key);
    },
  };

  /**
   * Merges what this process changed into the file on disk and writes it atomically. Safe to call
   * while repos are still being recorded: what is set during the write is saved next time.
   */
  async save(): Promise<void> {
    if (this.saving) {
      await this.saving;
      return this.save();
    }
    if (this.touchedRepos.size === 0 && this.touchedListings.size === 0 && !this.lastRunTouched) return;
    this.saving = this.write();
    try {
      await this.saving;
    } finally {
      this.saving = undefined;
    }
  }

  private async write(): Promise<void> {
    const repoKeys = [...this.touchedRepos];
    const listingKeys = [...this.touchedListings];
    const runTouched = this.lastRunTouched;
    this.touchedRepos.clear();
    this.touchedListings.clear();
    this.lastRunTouched = false;
    let lock;
    try {
      await mkdir(stateDir(this.storage), { recursive: true });
      lock = await acquireLock(join(stateDir(this.storage), 'state.lock'), {
        mode: 'wait',
        timeoutMs: 120_000,
        pollMs: 50,
        label: `the backup state in ${this.storage}`,
      });
      const onDisk = (await BackupStateStore.read(this.path, this.logger, false)) ?? emptyState();
      for (const key of repoKeys) {
        const value = this.data.repos[key];
        if (value) onDisk.repos[key] = value;
      }
      for (const key of listingKeys) {
        const value = this.data.listings[key];
        if (value) onDisk.listings[key] = value;
      }
      if (runTouched && this.data.lastRun) onDisk.lastRun = this.data.lastRun;
      await writeAtomic(this.path, JSON.stringify(onDisk));
      // Continue from the merged view (a watcher then sees what another process recorded), except
      // for entries set while this write was running: those are newer and still to be saved.
      for (const [key, value] of Object.entries(onDisk.repos))
        if (!this.touchedRepos.has(key)) this.data.repos[key] = value;
      for (const [key, value] of Object.entries(onDisk.listings)) {
        if (!this.touchedListings.has(key)) this.data.listings[key] = value;
      }
      if (!this.lastRunTouched && onDisk.lastRun) this.data.lastRun = onDisk.lastRun;
    } catch (error) {
      for (const key of repoKeys) this.touchedRepos.add(key);
      for (const key of listingKeys) this.touchedListings.add(key);
      this.lastRunTouched ||= runTouched;
      if (error instanceof RefbridgeError) throw error;
      // A full or read-only disk: say which file, and that the mirrors are not the problem.
      throw new RefbridgeError(
        `cannot save the backup state ${this.path}: ${String((error as { message?: unknown }).message ?? error)}`,
        {
          hint: 'free some space or fix the permissions of the storage directory; the mirrors are fine, and the next run re-checks what this one could not record',
          cause: error,
        },
      );
    } finally {
      await lock?.release();
    }
  }
}
