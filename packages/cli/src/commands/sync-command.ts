import type { Command } from 'commander';
import {
  ExitCode,
  UsageError,
  loadConfig,
  syncPair,
  type PairSyncResult,
  type RefbridgeConfig,
  type ResolvedPair,
  type Side,
} from '@refbridge/core';
import {
  createShell,
  defaultCacheDir,
  githubForge,
  gitlabForge,
  mapLimit,
  requireTokens,
  table,
  type Shell,
} from '../shell.js';
import type { CliIo } from '../program.js';

interface SyncFlags {
  config?: string;
  watch?: boolean;
  interval: string;
  concurrency: string;
  pair?: string[];
  dryRun?: boolean;
  json?: boolean;
  cache?: string;
  resolve?: string[];
  keep?: string;
  lock: string;
  verbose?: boolean;
}

export function positiveInt(flag: string, value: string, max = 10_000): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new UsageError(`${flag} must be a whole number from 1 to ${max}, got "${value}"`);
  return n;
}

export function registerSync(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('sync')
    .description('Sync every branch and tag of every pair with a stored base; detect divergence; never lose a commit.')
    .option('-c, --config <file>', 'config file (default: ./refbridge.yaml, ./refbridge.yml or ./repos.yaml)')
    .option(
      '--watch',
      'keep running, one round every --interval seconds; SIGTERM finishes the pairs in hand and exits 0',
    )
    .option('--interval <seconds>', 'seconds between rounds in --watch mode', '300')
    .option('--concurrency <n>', 'pairs synced in parallel', '4')
    .option('--pair <name...>', 'only these pairs (by name)')
    .option('--dry-run', 'print the plan per ref and change nothing')
    .option('--json', 'print the result as JSON on stdout')
    .option('--cache <dir>', 'cache directory (one bare repo per pair; holds bases and backups)')
    .option(
      '--resolve <ref...>',
      'repair diverged refs by keeping one side (with --keep); the other side is overwritten under a lease, its tip backed up',
    )
    .option('--keep <side>', 'with --resolve: github or gitlab')
    .option('--lock <mode>', 'when another refbridge holds a pair: wait or skip', 'wait')
    .option('-v, --verbose', 'log every git command (tokens masked)')
    .action(async (flags: SyncFlags) => {
      setExit(await runSync(io, flags));
    });
}

async function runSync(io: CliIo, flags: SyncFlags): Promise<number> {
  const shell = createShell(io, { verbose: flags.verbose ?? false, json: flags.json ?? false });
  const interval = positiveInt('--interval', flags.interval, 7 * 24 * 3600);
  const concurrency = positiveInt('--concurrency', flags.concurrency, 64);
  if (flags.lock !== 'wait' && flags.lock !== 'skip')
    throw new UsageError(`--lock must be wait or skip, got "${flags.lock}"`);
  if (flags.resolve && flags.keep !== 'github' && flags.keep !== 'gitlab') {
    throw new UsageError(
      '--resolve needs --keep github or --keep gitlab',
      "name the side whose tip wins; the other side's tip is kept in the cache backups",
    );
  }
  const config = await loadConfig({
    ...(flags.config === undefined ? { cwd: io.cwd } : { path: flags.config }),
    env: io.env,
  });
  const pairs = selectPairs(config, flags.pair);
  const tokens = requireTokens(shell, ['GITHUB_TOKEN', 'GITLAB_TOKEN']);
  const github = githubForge(shell, config, tokens.GITHUB_TOKEN);
  const gitlab = gitlabForge(shell, config, tokens.GITLAB_TOKEN);
  const cacheDir = flags.cache ?? defaultCacheDir(io.env);

  let stopping = false;
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    stopping = true;
    shell.logger.info('refbridge sync: stopping after the pairs in hand');
    wake?.();
  };
  if (flags.watch) {
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  try {
    for (;;) {
      const started = Date.now();
      const results = await mapLimit(pairs, concurrency, async (pair) => {
        if (stopping) return undefined;
        return syncPair({
          git: shell.git,
          logger: shell.logger,
          cacheDir,
          name: pair.name,
          github: {
            url: github.gitUrl(pair.github.fullName),
            credentials: [github.gitCredential()],
            forge: github,
            repoPath: pair.github.fullName,
          },
          gitlab: {
            url: gitlab.gitUrl(pair.gitlab.path),
            credentials: [gitlab.gitCredential()],
            pushOptions: pair.policy.pushOptions.gitlabCiSkip ? ['ci.skip'] : [],
            forge: gitlab,
            repoPath: pair.gitlab.path,
          },
          policy: pair.policy,
          dryRun: flags.dryRun ?? false,
          lockMode: flags.lock as 'wait' | 'skip',
          temporarilyAllowForcePush: pair.policy.protectedBranches.temporarilyAllowForcePush,
          ...(flags.resolve ? { resolve: { refs: flags.resolve.map(fullRef), keep: flags.keep as Side } } : {}),
        });
      });
      const done = results.filter((r): r is PairSyncResult => r !== undefined);
      report(shell, done, flags.dryRun ?? false, Date.now() - started);
      const code = exitCodeFor(done);
      if (!flags.watch || stopping) return flags.watch ? ExitCode.ok : code;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval * 1000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      if (stopping) return ExitCode.ok;
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

function fullRef(ref: string): string {
  return ref.startsWith('refs/') ? ref : `refs/heads/${ref}`;
}

function selectPairs(config: RefbridgeConfig, names: readonly string[] | undefined): readonly ResolvedPair[] {
  if (!names || names.length === 0) return config.pairs;
  const byName = new Map(config.pairs.map((p) => [p.name.toLowerCase(), p]));
  const unknown = names.filter((n) => !byName.has(n.toLowerCase()));
  if (unknown.length > 0) {
    throw new UsageError(
      `no pair named ${unknown.map((n) => `"${n}"`).join(', ')} in ${config.source}`,
      `known pairs: ${config.pairs.map((p) => p.name).join(', ') || '(none)'}`,
    );
  }
  return names.map((n) => byName.get(n.toLowerCase())!);
}

/** 1 if anything failed, else 3 if anything diverged, else 0 (pairs skipped for a lock are not failures). */
export function exitCodeFor(results: readonly PairSyncResult[]): number {
  if (results.some((r) => r.status === 'failed')) return ExitCode.failure;
  if (results.some((r) => r.status === 'diverged')) return ExitCode.diverged;
  return ExitCode.ok;
}

function report(shell: Shell, results: readonly PairSyncResult[], dryRun: boolean, ms: number): void {
  const { io } = shell;
  if (shell.json) {
    io.stdout(
      JSON.stringify({
        dryRun,
        exitCode: exitCodeFor(results),
        durationMs: ms,
        pairs: results.map((r) => ({
          pair: r.pair,
          status: r.status,
          halted: r.halted,
          ...(r.error === undefined ? {} : { error: shell.masker.mask(r.error) }),
          refs: r.outcomes
            .filter((o) => o.status !== 'nothing' || o.action.kind === 'skipped')
            .map((o) => ({
              ref: o.ref,
              action: o.action,
              status: o.status,
              detail: o.detail,
              ...(o.repair ? { repair: o.repair } : {}),
            })),
        })),
      }) + '\n',
    );
    return;
  }
  const out = (line: string): void => io.stdout(shell.masker.mask(line));
  for (const r of results) {
    if (r.error) out(`${r.pair}: ${r.status === 'locked' ? 'skipped' : 'FAILED'}: ${r.error}\n`);
    for (const o of r.outcomes) {
      if (o.status === 'nothing') continue;
      const tag = dryRun && o.status === 'planned' ? 'plan' : o.status;
      out(`${r.pair}  ${o.ref}  ${tag}: ${o.detail}\n`);
      if (o.repair) out(`    repair: ${o.repair}\n`);
    }
  }
  const rows = results.map((r) => {
    const count = (s: string): number => r.outcomes.filter((o) => o.status === s).length;
    return [
      r.pair,
      r.status,
      String(r.outcomes.length),
      String(count('done') + count('planned')),
      String(count('attention')),
      String(count('failed')),
    ];
  });
  out('\n' + table(['pair', 'status', 'refs', dryRun ? 'planned' : 'changed', 'diverged', 'failed'], rows));
  out(`${results.length} pair(s) in ${(ms / 1000).toFixed(1)} s${dryRun ? ' (dry run: nothing changed)' : ''}\n`);
}
