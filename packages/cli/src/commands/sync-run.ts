import { UsageError, syncPair, type PairSyncResult, type Side } from '@refbridge/core';
import type { CliIo } from '../program.js';
import {
  createShell,
  defaultCacheDir,
  dryRunNote,
  exitCodeFor,
  githubForge,
  gitlabForge,
  loadPairs,
  mapLimit,
  oneOf,
  positiveInt,
  printSummary,
  requireTokens,
  statusTag,
  type Shell,
} from '../shell.js';
import { watchLoop } from '../watch-loop.js';
import type { SyncFlags } from './sync-command.js';

/** `refbridge sync`: one round over every pair (or one every --interval seconds with --watch). */
export async function runSync(io: CliIo, flags: SyncFlags): Promise<number> {
  const shell = createShell(io, flags);
  const interval = positiveInt('--interval', flags.interval, 7 * 24 * 3600);
  const concurrency = positiveInt('--concurrency', flags.concurrency, 64);
  const lockMode = oneOf('--lock', flags.lock, ['wait', 'skip']);
  if (flags.resolve && flags.keep !== 'github' && flags.keep !== 'gitlab') {
    throw new UsageError(
      '--resolve needs --keep github or --keep gitlab',
      "name the side whose tip wins; the other side's tip is kept in the cache backups",
    );
  }
  const { config, pairs } = await loadPairs(io, flags);
  const tokens = requireTokens(shell, ['GITHUB_TOKEN', 'GITLAB_TOKEN']);
  const github = await githubForge(shell, config, tokens.GITHUB_TOKEN);
  const gitlab = await gitlabForge(shell, config, tokens.GITLAB_TOKEN);
  const cacheDir = flags.cache ?? defaultCacheDir(io.env);

  return watchLoop(
    {
      watch: flags.watch ?? false,
      intervalMs: interval * 1000,
      logger: shell.logger,
      stopMessage: 'refbridge sync: stopping after the pairs in hand',
    },
    async (signal) => {
      const started = Date.now();
      const results = await mapLimit(pairs, concurrency, async (pair) => {
        if (signal.aborted) return undefined;
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
          lockMode,
          temporarilyAllowForcePush: pair.policy.protectedBranches.temporarilyAllowForcePush,
          lfs: pair.policy.lfs,
          ...(flags.resolve ? { resolve: { refs: flags.resolve.map(fullRef), keep: flags.keep as Side } } : {}),
        });
      });
      const done = results.filter((r): r is PairSyncResult => r !== undefined);
      report(shell, done, flags.dryRun ?? false, Date.now() - started);
      return exitCodeFor(done);
    },
  );
}

function fullRef(ref: string): string {
  return ref.startsWith('refs/') ? ref : `refs/heads/${ref}`;
}

function report(shell: Shell, results: readonly PairSyncResult[], dryRun: boolean, ms: number): void {
  let details = '';
  for (const r of results) {
    if (r.error) details += `${r.pair}: ${r.status === 'locked' ? 'skipped' : 'FAILED'}: ${r.error}\n`;
    for (const o of r.outcomes) {
      if (o.status === 'nothing') continue;
      details += `${r.pair}  ${o.ref}  ${statusTag(o.status, dryRun)}: ${o.detail}\n`;
      if (o.repair) details += `    repair: ${o.repair}\n`;
    }
  }
  printSummary(shell, {
    json: () => ({
      dryRun,
      exitCode: exitCodeFor(results),
      durationMs: ms,
      pairs: results.map((r) => ({
        pair: r.pair,
        status: r.status,
        halted: r.halted,
        ...(r.error === undefined ? {} : { error: r.error }),
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
    }),
    details,
    headers: ['pair', 'status', 'refs', dryRun ? 'planned' : 'changed', 'diverged', 'failed'],
    rows: results.map((r) => {
      const count = (s: string): number => r.outcomes.filter((o) => o.status === s).length;
      return [
        r.pair,
        r.status,
        String(r.outcomes.length),
        String(count('done') + count('planned')),
        String(count('attention')),
        String(count('failed')),
      ];
    }),
    closing: `${results.length} pair(s) in ${(ms / 1000).toFixed(1)} s${dryRunNote(dryRun)}`,
  });
}
