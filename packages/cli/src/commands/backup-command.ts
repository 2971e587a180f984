import type { Command } from 'commander';
import type { CliIo } from '../program.js';

/**
 * `refbridge backup`: mass mirroring with Holocron's flags (so migrating is one changed command)
 * and without its failure modes; see docs/backup.md. The flags live here; backup-run.ts reads the
 * environment, builds the forges and hands one typed options object to the core engine.
 */

export interface BackupFlags {
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
      // Loaded only now, so other commands, --help and --version never load the engine and clients.
      const { runBackupCommand } = await import('./backup-run.js');
      setExit(await runBackupCommand(io, flags));
    });
}
