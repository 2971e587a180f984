import { describeLfsLines } from './lfs-attributes.js';
import { stat } from 'node:fs/promises';
import { updateCheckout, type CheckoutResult } from './backup-checkout.js';
import { pushToDestination, type DestinationResult } from './backup-destination.js';
import { compileFilter, type RepoFilter } from './backup-filter.js';
import { pruneMirrorBackups, syncMirror, type MirrorBackup } from './backup-mirror.js';
import { hostDirName, mirrorPaths, repoLockPath, type MirrorPaths } from './backup-paths.js';
import { planRepoSync, sameTips, type SyncDecision } from './backup-plan.js';
import { inShard, type Shard } from './backup-shard.js';
import { BackupStateStore, type BackupRepoState, type DestinationState } from './backup-state.js';
import { checkGitlabProjectPath } from './config.js';
import { RefbridgeError, UsageError } from './errors.js';
import type { Forge, RepoInfo, Visibility } from './forge.js';
import type { GitCredential, GitRunner } from './git-runner.js';
import type { Logger } from './logger.js';
import { acquireLock } from './pair-lock.js';

/**
 * `refbridge backup`: every repo of a user, org or group (or everything a token sees) mirrored to
 * local bare repositories, optionally with a checkout and a push on to GitLab.
 *
 * One run: list (ETag-conditional, never silently partial), select (filters, shard), decide per
 * repo from the state file (see backup-plan.ts), then work through the repos that need anything,
 * at most `concurrency` at a time, each under its own lock. The state is saved at the end. Nothing
 * is ever deleted because a repo is missing from a listing: mirrors of vanished repos stay.
 */

export interface BackupSourceOptions {
  forge: Forge;
  credentials: readonly GitCredential[];
  /** Users, orgs or groups; empty = every repo the token can see (its own, collaborations, its orgs'). */
  owners: readonly string[];
}

export interface BackupDestinationOptions {
  forge: Forge;
  credentials: readonly GitCredential[];
  /** Group path every source owner is placed under ('' = owners become top-level namespaces). */
  namespace: string;
  /** Visibility of created projects; `source` copies the source repo's. */
  visibility: Visibility | 'source';
  pushOptions: readonly string[];
  temporarilyAllowForcePush: boolean;
}

export interface BackupEvents {
  onListed?(info: { listed: number; selected: number; complete: boolean }): void;
  /** A repo that needs work is being worked on (unchanged repos never start). */
  onRepoStart?(repo: { repo: string; action: SyncDecision['action'] }): void;
  onRepoDone?(result: RepoBackupResult): void;
}

export interface BackupOptions {
  git: GitRunner;
  logger: Logger;
  storage: string;
  source: BackupSourceOptions;
  /** Push on to this forge; omitted = local backup only. */
  destination?: BackupDestinationOptions;
  filter: RepoFilter;
  shard?: Shard;
  /** See backup-plan.ts; minutes. */
  windowMinutes: number;
  concurrency: number;
  checkout: boolean;
  /** Delete backup refs older than this many days; undefined keeps them forever. */
  keepDays?: number;
  dryRun: boolean;
  /** Another process holds a repo: `skip` it (default) or `wait` for it. */
  lockMode?: 'skip' | 'wait';
  now?: () => Date;
  events?: BackupEvents;
  /** Aborting stops new repos from starting; those in hand finish. */
  signal?: AbortSignal;
  /** Reused across watch rounds; opened from the storage directory when omitted. */
  state?: BackupStateStore;
}

export type RepoStatus = 'created' | 'updated' | 'unchanged' | 'planned' | 'failed' | 'locked';

export interface RepoBackupResult {
  repo: string;
  platform: RepoInfo['platform'];
  key: string;
  /** Mirror directory relative to the storage directory ('' when the name was refused). */
  gitDir: string;
  action: SyncDecision['action'];
  status: RepoStatus;
  /** Why the action was chosen. */
  reason: string;
  detail: string;
  bytes: number;
  updatedRefs: number;
  deletedRefs: number;
  backups: MirrorBackup[];
  checkout?: CheckoutResult;
  destination?: DestinationResult | { status: 'failed' | 'planned'; path: string; detail: string };
  warnings: string[];
  error?: string;
  /** The listing's activity time, and whether the mirror reflects it after this run. */
  pushedAt: string | null;
  current: boolean;
  durationMs: number;
}

export interface ListingReport {
  complete: boolean;
  listed: number;
  selected: number;
  filtered: number;
  otherShards: number;
  requests: number;
  notModified: number;
  errors: string[];
}

export interface BackupRunResult {
  startedAt: string;
  finishedAt: string;
  dryRun: boolean;
  listing: ListingReport;
  repos: RepoBackupResult[];
  /** Aborted before every selected repo was looked at (watch mode shutting down). */
  interrupted: boolean;
  counts: Record<RepoStatus, number>;
  /** Bytes fetched in total. */
  bytes: number;
  exitCode: 0 | 1;
}

function describe(error: unknown): string {
  if (error instanceof RefbridgeError) return error.describe();
  return error instanceof Error ? error.message : String(error);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** `acme/widgets` under namespace `mirrors` -> `mirrors/acme/widgets`; checked as a GitLab path. */
export function destinationPath(sourcePath: string, namespace: string): string {
  const ns = namespace.replace(/^\/+|\/+$/g, '');
  const path = ns ? `${ns}/${sourcePath}` : sourcePath;
  const problem = checkGitlabProjectPath(path);
  if (problem) {
    throw new UsageError(
      `cannot mirror ${sourcePath} to GitLab as ${path}: ${problem.message}`,
      problem.hint ?? 'GitLab paths take letters, digits, ".", "-" and "_"; rename the repo or exclude it',
    );
  }
  return path;
}

interface Discovery {
  repos: RepoInfo[];
  report: Omit<ListingReport, 'selected' | 'filtered' | 'otherShards'>;
}

async function discover(options: BackupOptions, state: BackupStateStore): Promise<Discovery> {
  const owners: (string | undefined)[] = options.source.owners.length > 0 ? [...options.source.owners] : [undefined];
  const byKey = new Map<string, RepoInfo>();
  const errors: string[] = [];
  let requests = 0;
  let notModified = 0;
  for (const owner of owners) {
    try {
      const r = await options.source.forge.listRepos({
        ...(owner === undefined ? {} : { owner }),
        includeSubgroups: true,
        cache: state.listingCache,
      });
      requests += r.requests;
      notModified += r.notModified;
      for (const repo of r.repos) byKey.set(`${repo.platform}:${repo.id}`, repo);
    } catch (error) {
      // The adapters retried already; a listing that still fails is reported, never guessed.
      errors.push(`${owner ?? 'the repositories the token can see'}: ${describe(error)}`);
    }
  }
  const repos = [...byKey.values()].sort((a, b) => a.path.localeCompare(b.path));
  return { repos, report: { complete: errors.length === 0, listed: repos.length, requests, notModified, errors } };
}

function emptyCounts(): Record<RepoStatus, number> {
  return { created: 0, updated: 0, unchanged: 0, planned: 0, failed: 0, locked: 0 };
}

export async function runBackup(options: BackupOptions): Promise<BackupRunResult> {
  const now = options.now ?? (() => new Date());
  const startedAt = now().toISOString();
  if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
    throw new UsageError(`concurrency must be a whole number of at least 1, got ${options.concurrency}`);
  }
  const state = options.state ?? (await BackupStateStore.open(options.storage, options.logger));
  const hostDir = hostDirName(options.source.forge.webUrl);
  const filter = compileFilter(options.filter);

  const discovery = await discover(options, state);
  const selected: RepoInfo[] = [];
  let filtered = 0;
  let otherShards = 0;
  for (const repo of discovery.repos) {
    const why = filter.reason(repo);
    if (why !== undefined) {
      filtered++;
      options.logger.debug(`${repo.path}: left out: ${why}`);
      continue;
    }
    if (!inShard(`${hostDir}/${repo.path}`.toLowerCase(), options.shard)) {
      otherShards++;
      continue;
    }
    selected.push(repo);
  }
  const listing: ListingReport = { ...discovery.report, selected: selected.length, filtered, otherShards };
  options.events?.onListed?.({ listed: listing.listed, selected: selected.length, complete: listing.complete });

  const results: RepoBackupResult[] = [];
  let next = 0;
  let interrupted = false;
  // Checkpoints during long runs, so a crash hours into a first backup does not forget it all.
  let lastSave = Date.now();
  let sinceSave = 0;
  let pendingSave: Promise<void> | undefined;
  const checkpoint = (): void => {
    if (options.dryRun) return;
    sinceSave++;
    if (pendingSave !== undefined || (sinceSave < 100 && Date.now() - lastSave < 30_000)) return;
    sinceSave = 0;
    lastSave = Date.now();
    pendingSave = state
      .save()
      .catch((error: unknown) => options.logger.warn(`could not save the backup state yet: ${describe(error)}`))
      .finally(() => {
        pendingSave = undefined;
      });
  };
  const worker = async (): Promise<void> => {
    while (next < selected.length) {
      if (options.signal?.aborted) {
        interrupted = true;
        return;
      }
      const repo = selected[next++] as RepoInfo;
      const result = await backupOne(options, state, hostDir, repo, now);
      results.push(result);
      options.events?.onRepoDone?.(result);
      checkpoint();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, selected.length)) }, worker));
  await pendingSave;
  results.sort((a, b) => a.repo.localeCompare(b.repo));

  const counts = emptyCounts();
  let bytes = 0;
  for (const r of results) {
    counts[r.status]++;
    bytes += r.bytes;
  }
  const finishedAt = now().toISOString();
  const success = listing.complete && counts.failed === 0 && !interrupted;
  if (!options.dryRun) {
    const lastSuccessAt = success ? finishedAt : state.lastRun?.lastSuccessAt;
    state.setLastRun({
      startedAt,
      finishedAt,
      complete: listing.complete,
      failed: counts.failed,
      ...(lastSuccessAt === undefined ? {} : { lastSuccessAt }),
    });
    await state.save();
  }
  return {
    startedAt,
    finishedAt,
    dryRun: options.dryRun,
    listing,
    repos: results,
    interrupted,
    counts,
    bytes,
    exitCode: listing.complete && counts.failed === 0 ? 0 : 1,
  };
}

function needsPush(entry: BackupRepoState | undefined, targetPath: string): boolean {
  const d = entry?.destination;
  return d === undefined || d.path !== targetPath || d.lastError !== undefined || !sameTips(entry?.tips, d.tips);
}

async function backupOne(
  options: BackupOptions,
  state: BackupStateStore,
  hostDir: string,
  repo: RepoInfo,
  now: () => Date,
): Promise<RepoBackupResult> {
  const started = Date.now();
  const base = {
    repo: repo.path,
    platform: repo.platform,
    bytes: 0,
    updatedRefs: 0,
    deletedRefs: 0,
    backups: [] as MirrorBackup[],
    warnings: [] as string[],
    pushedAt: repo.pushedAt,
  };
  const done = (
    r: Omit<RepoBackupResult, 'durationMs' | keyof typeof base> & Partial<typeof base>,
  ): RepoBackupResult => ({
    ...base,
    ...r,
    durationMs: Date.now() - started,
  });

  let paths: MirrorPaths;
  try {
    paths = mirrorPaths(options.storage, hostDir, repo.platform, repo.path);
  } catch (error) {
    return done({
      key: `${hostDir}/${repo.path}`.toLowerCase(),
      gitDir: '',
      action: 'skip',
      status: 'failed',
      reason: 'unsafe name',
      detail: describe(error),
      error: describe(error),
      current: false,
    });
  }
  const entry = state.repo(paths.key);
  const decision = planRepoSync({
    platform: repo.platform,
    listedPushedAt: repo.pushedAt,
    entry,
    mirrorExists: await exists(paths.gitDir),
    now: now(),
    windowMs: options.windowMinutes * 60_000,
  });

  let targetPath: string | undefined;
  let targetError: string | undefined;
  if (options.destination) {
    try {
      targetPath = destinationPath(repo.path, options.destination.namespace);
    } catch (error) {
      targetError = describe(error);
    }
  }
  const defaultRef = entry?.defaultBranch ? `refs/heads/${entry.defaultBranch}` : undefined;
  const wantCheckout =
    options.checkout &&
    (decision.action !== 'skip' ||
      (defaultRef !== undefined &&
        entry?.tips[defaultRef] !== undefined &&
        entry.checkout?.tip !== entry.tips[defaultRef]) ||
      (defaultRef !== undefined && !(await exists(paths.worktree))));
  const wantPush =
    options.destination !== undefined &&
    (targetError !== undefined ||
      decision.action !== 'skip' ||
      (targetPath !== undefined && needsPush(entry, targetPath)));
  const common = { key: paths.key, gitDir: paths.relativeGitDir, action: decision.action, reason: decision.reason };

  if (decision.action === 'skip' && !wantCheckout && !wantPush) {
    const detail = decision.verifyAfter
      ? `unchanged (one confirmation due after ${decision.verifyAfter})`
      : 'unchanged';
    return done({ ...common, status: 'unchanged', detail, current: true });
  }
  if (options.dryRun) {
    const parts = [decision.action === 'skip' ? 'mirror unchanged' : `would ${decision.action} (${decision.reason})`];
    if (wantCheckout) parts.push('would update the checkout');
    if (options.destination) parts.push(targetPath ? `would push to ${targetPath}` : `cannot push: ${targetError}`);
    return done({
      ...common,
      status: 'planned',
      detail: parts.join('; '),
      current: decision.action === 'skip',
      ...(options.destination
        ? { destination: { status: 'planned' as const, path: targetPath ?? '', detail: parts.at(-1) ?? '' } }
        : {}),
    });
  }

  let lock;
  try {
    lock = await acquireLock(repoLockPath(options.storage, paths.key), {
      mode: options.lockMode ?? 'skip',
      timeoutMs: 30 * 60_000,
      label: `repo ${repo.path}`,
    });
  } catch (error) {
    return done({ ...common, status: 'locked', detail: `skipped: ${describe(error)}`, current: false });
  }
  options.events?.onRepoStart?.({ repo: repo.path, action: decision.action });
  const label = repo.path;
  try {
    const attemptAt = now();
    let next: BackupRepoState = entry ?? {
      platform: repo.platform,
      path: repo.path,
      id: repo.id,
      gitDir: paths.relativeGitDir,
      pushedAt: null,
      tips: {},
      defaultBranch: repo.defaultBranch,
      failures: 0,
    };
    next = {
      ...next,
      path: repo.path,
      id: repo.id,
      gitDir: paths.relativeGitDir,
      lastAttemptAt: attemptAt.toISOString(),
    };
    let status: RepoStatus = 'unchanged';
    const details: string[] = [];
    const warnings: string[] = [];
    let failure: string | undefined;
    let bytes = 0;
    let updatedRefs = 0;
    let deletedRefs = 0;
    let backups: MirrorBackup[] = [];

    if (decision.action !== 'skip') {
      try {
        const sync = await syncMirror({
          git: options.git,
          gitDir: paths.gitDir,
          // Built from the forge's web URL, the origin its credential is keyed to.
          url: options.source.forge.gitUrl(repo.path),
          credentials: options.source.credentials,
          now: attemptAt,
          logger: options.logger,
          label,
        });
        bytes = sync.bytes;
        updatedRefs = sync.updated.length;
        deletedRefs = sync.deleted.length;
        backups = sync.backups;
        status = sync.created ? 'created' : sync.updated.length + sync.deleted.length > 0 ? 'updated' : 'unchanged';
        details.push(
          sync.created
            ? `cloned ${sync.refCount} ref(s)`
            : status === 'updated'
              ? `${sync.updated.length} ref(s) updated, ${sync.deleted.length} deleted`
              : decision.action === 'verify'
                ? 'confirmed: nothing changed'
                : 'nothing to fetch',
        );
        if (backups.length > 0) details.push(`kept ${backups.length} old tip(s) under refs/refbridge/backup/`);
        if (sync.lfs) {
          warnings.push(
            `stores files with Git LFS (${describeLfsLines(sync.lfs)}); LFS objects are not backed up${options.destination ? ' or copied to the destination' : ''}, only their pointer files: fetch them separately, e.g. \`git lfs fetch --all\` in a clone of ${paths.gitDir}`,
          );
        }
        const { lastError: _cleared, ...rest } = next;
        next = {
          ...rest,
          pushedAt: repo.pushedAt,
          verifiedAt: attemptAt.toISOString(),
          tips: sync.tips,
          defaultBranch: sync.defaultBranch ?? repo.defaultBranch,
          lastSuccessAt: now().toISOString(),
          failures: 0,
        };
      } catch (error) {
        failure = describe(error);
        next = { ...next, lastError: failure, failures: next.failures + 1 };
      }
    }

    if (failure === undefined && options.keepDays !== undefined) {
      const pruned = await pruneMirrorBackups(options.git, paths.gitDir, options.keepDays, attemptAt);
      if (pruned > 0) details.push(`removed ${pruned} backup ref(s) older than ${options.keepDays} day(s)`);
    }

    let checkout: CheckoutResult | undefined;
    if (failure === undefined && options.checkout) {
      try {
        checkout = await updateCheckout({
          git: options.git,
          gitDir: paths.gitDir,
          worktree: paths.worktree,
          branch: next.defaultBranch,
          logger: options.logger,
        });
        if (checkout.branch !== undefined && checkout.tip !== undefined)
          next = { ...next, checkout: { branch: checkout.branch, tip: checkout.tip } };
        if (checkout.status === 'kept-local-changes' || checkout.status === 'not-a-checkout')
          warnings.push(`checkout: ${checkout.detail}`);
        else if (checkout.status === 'created' || checkout.status === 'updated')
          details.push(`checkout ${checkout.detail}`);
      } catch (error) {
        failure = `checkout: ${describe(error)}`;
      }
    }

    let destination: RepoBackupResult['destination'];
    if (failure === undefined && options.destination) {
      const dest = options.destination;
      if (targetPath === undefined) {
        destination = { status: 'failed', path: '', detail: targetError ?? 'no destination path' };
        failure = `destination: ${destination.detail}`;
      } else if (needsPush(next, targetPath)) {
        try {
          const pushed = await pushToDestination({
            git: options.git,
            logger: options.logger,
            gitDir: paths.gitDir,
            label,
            target: {
              forge: dest.forge,
              credentials: dest.credentials,
              path: targetPath,
              visibility: dest.visibility === 'source' ? repo.visibility : dest.visibility,
              description: `Backup mirror of ${options.source.forge.webUrl}/${repo.path} (refbridge)`,
              pushOptions: dest.pushOptions,
              temporarilyAllowForcePush: dest.temporarilyAllowForcePush,
            },
            sourceTips: next.tips,
            defaultBranch: next.defaultBranch,
            previouslyPushed: next.destination?.path === targetPath ? next.destination.tips : undefined,
          });
          destination = pushed;
          const destState: DestinationState = { path: targetPath, tips: pushed.tips };
          if (pushed.status === 'failed' || pushed.status === 'partial') {
            destState.lastError = pushed.detail;
            failure = `destination ${targetPath}: ${pushed.detail}`;
          } else {
            destState.lastSuccessAt = now().toISOString();
            if (pushed.status !== 'unchanged')
              details.push(`${pushed.created ? 'created and pushed' : 'pushed'} ${targetPath}: ${pushed.detail}`);
          }
          next = { ...next, destination: destState };
        } catch (error) {
          const message = describe(error);
          destination = { status: 'failed', path: targetPath, detail: message };
          next = { ...next, destination: { path: targetPath, tips: next.destination?.tips ?? {}, lastError: message } };
          failure = `destination ${targetPath}: ${message}`;
        }
      }
    }

    state.setRepo(paths.key, next);
    for (const w of warnings) options.logger.warn(`${label}: ${w}`);
    const changedSomething =
      status === 'unchanged' &&
      (checkout?.status === 'created' ||
        checkout?.status === 'updated' ||
        (destination && 'updated' in destination && destination.status !== 'unchanged'));
    return done({
      ...common,
      status: failure !== undefined ? 'failed' : changedSomething ? 'updated' : status,
      detail: [...details, ...(failure ? [failure] : [])].join('; ') || 'unchanged',
      bytes,
      updatedRefs,
      deletedRefs,
      backups,
      warnings,
      ...(checkout ? { checkout } : {}),
      ...(destination ? { destination } : {}),
      ...(failure ? { error: failure } : {}),
      current: next.lastError === undefined && next.pushedAt === repo.pushedAt,
    });
  } finally {
    await lock.release();
  }
}
