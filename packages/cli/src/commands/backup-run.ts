import { resolve } from 'node:path';
import {
  BackupStateStore,
  UsageError,
  compileFilter,
  parseConfig,
  parseShard,
  runBackup,
  type BackupDestinationOptions,
  type BackupOptions,
  type BackupRunResult,
  type Forge,
  type RefbridgeConfig,
  type RepoFilter,
  type Shard,
  type Visibility,
} from '@refbridge/core';
import { BackupMetrics, startMetricsServer, type MetricsServer } from '../metrics.js';
import type { CliIo } from '../program.js';
import {
  autoProgressMode,
  createProgress,
  formatBytes,
  formatDuration,
  type Progress,
  type ProgressMode,
} from '../progress.js';
import {
  createShell,
  dryRunNote,
  githubForge,
  gitlabForge,
  oneOf,
  positiveInt,
  printSummary,
  requireTokens,
  wholeNumber,
  type ApiRetry,
  type Shell,
} from '../shell.js';
import { watchLoop } from '../watch-loop.js';
import type { BackupFlags } from './backup-command.js';

/** URLs exactly as every other command reads them (GITHUB_SERVER_URL/GITHUB_API_URL, GITLAB_URL/GITLAB_API_URL). */
function endpoints(env: CliIo['env']): Pick<RefbridgeConfig, 'github' | 'gitlab'> {
  // The config parser owns the precedence and derivation rules; a placeholder pair satisfies it.
  const config = parseConfig('pairs:\n  - github: refbridge/backup\n    gitlab: refbridge/backup\n', {
    source: 'environment',
    env,
  });
  return { github: config.github, gitlab: config.gitlab };
}

interface Settings {
  interval: number;
  windowMinutes: number;
  concurrency: number;
  keepDays: number | undefined;
  shard: Shard | undefined;
  source: 'github' | 'gitlab';
  visibility: Visibility | 'source';
  lockMode: 'skip' | 'wait';
  metricsPort: number | undefined;
  progress: ProgressMode;
  filter: RepoFilter;
  retry: ApiRetry;
}

function readSettings(io: CliIo, flags: BackupFlags): Settings {
  const source = oneOf('--source', flags.source, ['github', 'gitlab']);
  if (source === 'gitlab' && !flags.backupOnly) {
    throw new UsageError(
      'GitLab as the source is backed up locally only',
      'add --backup-only (pushing GitLab repos on to a GitLab is what GitLab itself does; use refbridge sync for GitLab -> GitHub)',
    );
  }
  const visibility = oneOf('--gitlab-visibility', flags.gitlabVisibility, ['private', 'internal', 'public', 'source']);
  const lockMode = oneOf('--lock', flags.lock, ['skip', 'wait']);
  if (flags.metricsPort !== undefined && !flags.watch) {
    throw new UsageError(
      '--metrics-port works with --watch only',
      'a single run reports through its exit code and --json',
    );
  }
  const progress = oneOf('--progress', flags.progress, ['auto', 'live', 'plain', 'off']);
  const filter: RepoFilter = {
    include: flags.include ?? [],
    exclude: flags.exclude ?? [],
    skipForks: flags.skipForks ?? false,
    skipArchived: flags.skipArchived ?? false,
  };
  compileFilter(filter); // bad patterns are usage errors before any request
  return {
    interval: positiveInt('--interval', flags.interval, 7 * 24 * 3600),
    windowMinutes: wholeNumber('--window', flags.window, 0, 7 * 24 * 60),
    concurrency: positiveInt('--concurrency', flags.concurrency, 64),
    keepDays: flags.keepDays === undefined ? undefined : positiveInt('--keep-days', flags.keepDays, 100 * 365),
    shard: flags.shard === undefined ? undefined : parseShard(flags.shard),
    source,
    visibility,
    lockMode,
    metricsPort:
      flags.metricsPort === undefined ? undefined : wholeNumber('--metrics-port', flags.metricsPort, 0, 65535),
    progress: progress === 'auto' ? autoProgressMode(io.env, io.isTTY === true) : progress,
    filter,
    retry: {
      ...(flags.apiRetries === undefined ? {} : { retries: wholeNumber('--api-retries', flags.apiRetries, 0, 20) }),
      waitMs: wholeNumber('--api-retry-wait', flags.apiRetryWait ?? '1000', 0, 600_000),
    },
  };
}

async function buildForges(
  shell: Shell,
  settings: Settings,
  backupOnly: boolean,
): Promise<{ source: Forge; destination: Forge | undefined }> {
  const needed: ('GITHUB_TOKEN' | 'GITLAB_TOKEN')[] =
    settings.source === 'github' ? ['GITHUB_TOKEN'] : ['GITLAB_TOKEN'];
  if (!backupOnly && !needed.includes('GITLAB_TOKEN')) needed.push('GITLAB_TOKEN');
  const tokens = requireTokens(shell, needed) as Partial<Record<'GITHUB_TOKEN' | 'GITLAB_TOKEN', string>>;
  const urls = endpoints(shell.io.env);
  const gitlab = (): Promise<Forge> => gitlabForge(shell, urls, tokens.GITLAB_TOKEN ?? '', settings.retry);
  const source =
    settings.source === 'github'
      ? await githubForge(shell, urls, tokens.GITHUB_TOKEN ?? '', settings.retry)
      : await gitlab();
  return { source, destination: backupOnly ? undefined : await gitlab() };
}

export async function runBackupCommand(io: CliIo, flags: BackupFlags): Promise<number> {
  const settings = readSettings(io, flags);
  // Log lines go through the progress display so they never tear the live block.
  let progress: Progress | undefined;
  const routedIo: CliIo = { ...io, stderr: (text) => (progress ? progress.print(text) : io.stderr(text)) };
  const shell = createShell(routedIo, flags);
  const { source, destination } = await buildForges(shell, settings, flags.backupOnly ?? false);
  const storage = resolve(io.cwd, flags.storage);
  const state = await BackupStateStore.open(storage, shell.logger);

  const dest: BackupDestinationOptions | undefined = destination
    ? {
        forge: destination,
        credentials: [destination.gitCredential()],
        namespace: flags.gitlabNamespace,
        visibility: settings.visibility,
        pushOptions: flags.ciSkip ? ['ci.skip'] : [],
        temporarilyAllowForcePush: flags.temporarilyAllowForcePush ?? false,
      }
    : undefined;
  if (dest?.temporarilyAllowForcePush) {
    shell.logger.warn(
      'refbridge backup: --temporarily-allow-force-push is on: protected branches on GitLab that refuse a rewritten branch are relaxed for that one push and restored',
    );
  }

  let metrics: BackupMetrics | undefined;
  let server: MetricsServer | undefined;
  if (flags.watch && settings.metricsPort !== undefined) {
    metrics = new BackupMetrics(settings.interval);
    server = await startMetricsServer(metrics, flags.metricsHost, settings.metricsPort);
    shell.logger.info(`refbridge backup: metrics on ${server.url}/metrics, health on ${server.url}/healthz`);
  }
  try {
    return await watchLoop(
      {
        watch: flags.watch ?? false,
        intervalMs: settings.interval * 1000,
        logger: shell.logger,
        stopMessage: 'refbridge backup: stopping after the repos in hand',
      },
      async (signal) => {
        progress = createProgress(settings.progress, io.stderr, { verbose: flags.verbose ?? false });
        const p = progress;
        const options: BackupOptions = {
          git: shell.git,
          logger: shell.logger,
          storage,
          source: { forge: source, credentials: [source.gitCredential()], owners: flags.owner ?? [] },
          ...(dest ? { destination: dest } : {}),
          filter: settings.filter,
          ...(settings.shard ? { shard: settings.shard } : {}),
          windowMinutes: settings.windowMinutes,
          concurrency: settings.concurrency,
          checkout: flags.checkout ?? false,
          ...(settings.keepDays === undefined ? {} : { keepDays: settings.keepDays }),
          dryRun: flags.dryRun ?? false,
          lockMode: settings.lockMode,
          state,
          signal,
          events: {
            onListed: (info) => p.listed(info),
            onRepoStart: (r) => p.start(r.repo, r.action),
            onRepoDone: (r) => p.done(r),
          },
        };
        let result: BackupRunResult;
        try {
          result = await runBackup(options);
        } finally {
          p.stop();
          progress = undefined;
        }
        metrics?.record(result);
        report(shell, result, storage);
        return result.exitCode;
      },
    );
  } finally {
    await server?.close();
  }
}

function report(shell: Shell, result: BackupRunResult, storage: string): void {
  const { io, masker } = shell;
  if (!result.listing.complete) {
    // Said on stderr even with --json: this is the one thing nobody may miss.
    io.stderr(
      masker.mask(
        `refbridge backup: the repository list is INCOMPLETE, so this run did not see every repo:\n${result.listing.errors
          .map((e) => `  - ${e}`)
          .join(
            '\n',
          )}\n  nothing was deleted (refbridge never deletes a mirror because a repo is missing from a list); run again when the API answers\n`,
      ),
    );
  }
  let details = '';
  if (result.dryRun) {
    for (const r of result.repos)
      if (r.status === 'planned' || r.status === 'failed') details += `plan  ${r.repo}: ${r.detail}\n`;
  }
  for (const r of result.repos.filter((x) => x.status === 'failed'))
    details += `FAILED  ${r.repo}: ${r.error ?? r.detail}\n`;
  for (const r of result.repos.filter((x) => x.status === 'locked')) details += `skipped ${r.repo}: ${r.detail}\n`;
  const c = result.counts;
  const took = formatDuration(Date.parse(result.finishedAt) - Date.parse(result.startedAt));
  printSummary(shell, {
    json: () => ({
      dryRun: result.dryRun,
      exitCode: result.exitCode,
      storage,
      startedAt: result.startedAt,
      finishedAt: result.finishedAt,
      interrupted: result.interrupted,
      listing: result.listing,
      counts: result.counts,
      bytes: result.bytes,
      repos: result.repos.map((r) => ({
        repo: r.repo,
        platform: r.platform,
        gitDir: r.gitDir,
        action: r.action,
        status: r.status,
        reason: r.reason,
        detail: r.detail,
        bytes: r.bytes,
        updatedRefs: r.updatedRefs,
        deletedRefs: r.deletedRefs,
        backups: r.backups,
        ...(r.checkout ? { checkout: r.checkout } : {}),
        ...(r.destination ? { destination: r.destination } : {}),
        ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}),
        ...(r.error ? { error: r.error } : {}),
      })),
    }),
    details,
    headers: ['repos', 'count'],
    rows: [
      ['listed', String(result.listing.listed)],
      ['selected', String(result.listing.selected)],
      ...(result.listing.filtered ? [['filtered out', String(result.listing.filtered)]] : []),
      ...(result.listing.otherShards ? [['other shards', String(result.listing.otherShards)]] : []),
      ...(result.dryRun
        ? [['planned', String(c.planned)]]
        : [
            ['created', String(c.created)],
            ['updated', String(c.updated)],
          ]),
      ['unchanged', String(c.unchanged)],
      ['failed', String(c.failed)],
      ...(c.locked ? [['locked (skipped)', String(c.locked)]] : []),
    ],
    closing: `backup of ${result.listing.selected} repo(s) into ${storage}: ${formatBytes(result.bytes)} fetched, ${result.listing.requests} API request(s) (${result.listing.notModified} unchanged pages), ${took}${dryRunNote(result.dryRun)}${result.interrupted ? ' (interrupted)' : ''}`,
  });
}
