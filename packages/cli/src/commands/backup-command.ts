import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  BackupStateStore,
  ExitCode,
  UsageError,
  compileFilter,
  parseConfig,
  parseShard,
  runBackup,
  type BackupDestinationOptions,
  type BackupOptions,
  type BackupRunResult,
  type Forge,
  type RepoFilter,
  type Shard,
  type Visibility,
} from '@refbridge/core';
import { createGithubForge } from '@refbridge/github';
import { createGitlabForge } from '@refbridge/gitlab';
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
import { createShell, requireTokens, table, type Shell } from '../shell.js';
import { positiveInt } from './sync-command.js';

/**
 * `refbridge backup`: mass mirroring with Holocron's flags (so migrating is one changed command)
 * and without its failure modes; see docs/backup.md. The shell reads the environment, builds the
 * forges and hands one typed options object to the core engine.
 */

interface BackupFlags {
  watch?: boolean;
  interval: string;
  window: string;
  backupOnly?: boolean;
  checkout?: boolean;
  concurrency: string;
  storage: string;
  dryRun?: boolean;
  verbose?: boolean;
  owner?: string[];
  source: string;
  include?: string[];
  exclude?: string[];
  skipForks?: boolean;
  skipArchived?: boolean;
  json?: boolean;
  shard?: string;
  metricsPort?: string;
  metricsHost: string;
  keepDays?: string;
  gitlabNamespace: string;
  gitlabVisibility: string;
  temporarilyAllowForcePush?: boolean;
  ciSkip?: boolean;
  lock: string;
  progress: string;
  apiRetries?: string;
  apiRetryWait?: string;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function registerBackup(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('backup')
    .description(
      'Mirror every repo of users, orgs or groups to local bare mirrors (and on to GitLab unless --backup-only). Holocron-compatible flags; state survives restarts.',
    )
    .option(
      '--watch',
      'keep running, one round every --interval seconds; SIGTERM finishes the repos in hand and exits 0',
    )
    .option('--interval <seconds>', 'seconds between rounds in --watch mode', '60')
    .option(
      '--window <minutes>',
      'minutes after a push during which an unchanged pushed_at/last_activity_at is confirmed with ls-remote (0: trust the timestamps); see docs/backup.md',
      '60',
    )
    .option('--backup-only', 'mirror locally only; do not push to GitLab (no GITLAB_TOKEN needed)')
    .option(
      '--checkout',
      'keep a working tree of the default branch beside each mirror (never overwrites local changes)',
    )
    .option('--concurrency <n>', 'repos worked on in parallel', '5')
    .option('--storage <dir>', 'where mirrors and the state file live', './mirror-data')
    .option('--dry-run', 'list and plan, print what would be done per repo, change nothing')
    .option('-v, --verbose', 'log every API decision and git command (tokens masked), and unchanged repos')
    .option(
      '--owner <name>',
      'a user, org or (GitLab) group to back up; repeatable (default: every repo the token can see)',
      collect,
    )
    .option('--source <platform>', 'where the repos live: github or gitlab', 'github')
    .option(
      '--include <glob>',
      'only repos whose owner/name matches (* within a part, ** across parts); repeatable',
      collect,
    )
    .option('--exclude <glob>', 'leave out repos whose owner/name matches; repeatable; wins over --include', collect)
    .option('--skip-forks', 'leave out forks')
    .option('--skip-archived', 'leave out archived repos')
    .option('--json', 'print the result as JSON on stdout (progress stays on stderr)')
    .option('--shard <K/N>', 'take only the K-th of N slices of the repo list (stable hash; for CI matrices)')
    .option(
      '--metrics-port <port>',
      'with --watch: serve Prometheus metrics on /metrics and a health check on /healthz',
    )
    .option('--metrics-host <host>', 'address the metrics server listens on', '127.0.0.1')
    .option(
      '--keep-days <days>',
      'delete backup refs (old tips kept after force pushes and deletions) older than this (default: keep forever)',
    )
    .option(
      '--gitlab-namespace <group>',
      'GitLab group the owners are mirrored under, e.g. mirrors -> mirrors/<owner>/<repo> (default: none)',
      '',
    )
    .option(
      '--gitlab-visibility <visibility>',
      'visibility of created GitLab projects: private, internal, public or source',
      'private',
    )
    .option(
      '--temporarily-allow-force-push',
      'when a GitLab protected branch refuses a rewritten branch: allow force push on that rule for the one push, then restore it (logged)',
    )
    .option('--ci-skip', 'send the ci.skip push option so GitLab starts no pipeline for mirrored pushes')
    .option('--lock <mode>', 'when another refbridge process holds a repo: skip it or wait for it', 'skip')
    .option(
      '--progress <mode>',
      'auto, live, plain or off (auto: live on a terminal, plain lines in CI and pipes)',
      'auto',
    )
    .option(
      '--api-retries <n>',
      'retries of a failing API request before the listing counts as incomplete (default: 3 GitHub, 5 GitLab)',
    )
    .option('--api-retry-wait <ms>', 'base wait between API retries in milliseconds, grows with each retry', '1000')
    .action(async (flags: BackupFlags) => {
      setExit(await runBackupCommand(io, flags));
    });
}

function wholeNumber(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/** URLs exactly as every other command reads them (GITHUB_SERVER_URL/GITHUB_API_URL, GITLAB_URL/GITLAB_API_URL). */
function endpoints(env: CliIo['env']): {
  github: { url: string; apiUrl: string };
  gitlab: { url: string; apiUrl: string };
} {
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
  metricsPort: number | undefined;
  progress: ProgressMode;
  filter: RepoFilter;
  retries: number | undefined;
  retryWait: number;
}

function readSettings(io: CliIo, flags: BackupFlags): Settings {
  if (flags.source !== 'github' && flags.source !== 'gitlab') {
    throw new UsageError(`--source must be github or gitlab, got "${flags.source}"`);
  }
  if (flags.source === 'gitlab' && !flags.backupOnly) {
    throw new UsageError(
      'GitLab as the source is backed up locally only',
      'add --backup-only (pushing GitLab repos on to a GitLab is what GitLab itself does; use refbridge sync for GitLab -> GitHub)',
    );
  }
  if (!['private', 'internal', 'public', 'source'].includes(flags.gitlabVisibility)) {
    throw new UsageError(
      `--gitlab-visibility must be private, internal, public or source, got "${flags.gitlabVisibility}"`,
    );
  }
  if (flags.lock !== 'skip' && flags.lock !== 'wait')
    throw new UsageError(`--lock must be skip or wait, got "${flags.lock}"`);
  if (flags.metricsPort !== undefined && !flags.watch) {
    throw new UsageError(
      '--metrics-port works with --watch only',
      'a single run reports through its exit code and --json',
    );
  }
  let progress: ProgressMode;
  if (flags.progress === 'auto') progress = autoProgressMode(io.env, io.isTTY === true);
  else if (flags.progress === 'live' || flags.progress === 'plain' || flags.progress === 'off')
    progress = flags.progress;
  else throw new UsageError(`--progress must be auto, live, plain or off, got "${flags.progress}"`);
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
    source: flags.source,
    visibility: flags.gitlabVisibility as Visibility | 'source',
    metricsPort:
      flags.metricsPort === undefined ? undefined : wholeNumber('--metrics-port', flags.metricsPort, 0, 65535),
    progress,
    filter,
    retries: flags.apiRetries === undefined ? undefined : wholeNumber('--api-retries', flags.apiRetries, 0, 20),
    retryWait: wholeNumber('--api-retry-wait', flags.apiRetryWait ?? '1000', 0, 600_000),
  };
}

function buildForges(
  shell: Shell,
  settings: Settings,
  backupOnly: boolean,
): { source: Forge; destination: Forge | undefined } {
  const needed: ('GITHUB_TOKEN' | 'GITLAB_TOKEN')[] =
    settings.source === 'github' ? ['GITHUB_TOKEN'] : ['GITLAB_TOKEN'];
  if (!backupOnly && !needed.includes('GITLAB_TOKEN')) needed.push('GITLAB_TOKEN');
  const tokens = requireTokens(shell, needed) as Partial<Record<'GITHUB_TOKEN' | 'GITLAB_TOKEN', string>>;
  const urls = endpoints(shell.io.env);
  const github = (): Forge =>
    createGithubForge({
      webUrl: urls.github.url,
      apiUrl: urls.github.apiUrl,
      token: tokens.GITHUB_TOKEN ?? '',
      logger: shell.logger,
      masker: shell.masker,
      retry: { unitMs: settings.retryWait, ...(settings.retries === undefined ? {} : { retries: settings.retries }) },
    });
  const gitlab = (): Forge =>
    createGitlabForge({
      webUrl: urls.gitlab.url,
      apiUrl: urls.gitlab.apiUrl,
      token: tokens.GITLAB_TOKEN ?? '',
      logger: shell.logger,
      masker: shell.masker,
      retry: {
        baseDelayMs: settings.retryWait,
        ...(settings.retries === undefined ? {} : { retries: settings.retries }),
      },
    });
  const source = settings.source === 'github' ? github() : gitlab();
  return { source, destination: backupOnly ? undefined : gitlab() };
}

async function runBackupCommand(io: CliIo, flags: BackupFlags): Promise<number> {
  const settings = readSettings(io, flags);
  // Log lines go through the progress display so they never tear the live block.
  let progress: Progress | undefined;
  const routedIo: CliIo = { ...io, stderr: (text) => (progress ? progress.print(text) : io.stderr(text)) };
  const shell = createShell(routedIo, { verbose: flags.verbose ?? false, json: flags.json ?? false });
  const { source, destination } = buildForges(shell, settings, flags.backupOnly ?? false);
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

  const controller = new AbortController();
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    if (controller.signal.aborted) return;
    controller.abort();
    shell.logger.info('refbridge backup: stopping after the repos in hand');
    wake?.();
  };
  let metrics: BackupMetrics | undefined;
  let server: MetricsServer | undefined;
  if (flags.watch) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    if (settings.metricsPort !== undefined) {
      metrics = new BackupMetrics(settings.interval);
      server = await startMetricsServer(metrics, flags.metricsHost, settings.metricsPort);
      shell.logger.info(`refbridge backup: metrics on ${server.url}/metrics, health on ${server.url}/healthz`);
    }
  }
  try {
    for (;;) {
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
        lockMode: flags.lock as 'skip' | 'wait',
        state,
        signal: controller.signal,
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
      if (!flags.watch) return result.exitCode;
      if (controller.signal.aborted) return ExitCode.ok;
      await new Promise<void>((done) => {
        const t = setTimeout(done, settings.interval * 1000);
        wake = () => {
          clearTimeout(t);
          done();
        };
      });
      wake = undefined;
      if (controller.signal.aborted) return ExitCode.ok;
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
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
  if (shell.json) {
    io.stdout(
      masker.mask(
        JSON.stringify({
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
        }) + '\n',
      ),
    );
    return;
  }
  const out = (line: string): void => io.stdout(masker.mask(line));
  if (result.dryRun) {
    for (const r of result.repos)
      if (r.status === 'planned' || r.status === 'failed') out(`plan  ${r.repo}: ${r.detail}\n`);
  }
  const failed = result.repos.filter((r) => r.status === 'failed');
  for (const r of failed) out(`FAILED  ${r.repo}: ${r.error ?? r.detail}\n`);
  for (const r of result.repos.filter((x) => x.status === 'locked')) out(`skipped ${r.repo}: ${r.detail}\n`);
  const c = result.counts;
  const rows = [
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
  ];
  out('\n' + table(['repos', 'count'], rows));
  const took = formatDuration(Date.parse(result.finishedAt) - Date.parse(result.startedAt));
  out(
    `backup of ${result.listing.selected} repo(s) into ${storage}: ${formatBytes(result.bytes)} fetched, ${result.listing.requests} API request(s) (${result.listing.notModified} unchanged pages), ${took}${result.dryRun ? ' (dry run: nothing changed)' : ''}${result.interrupted ? ' (interrupted)' : ''}\n`,
  );
}
