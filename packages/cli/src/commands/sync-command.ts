import type { Command } from 'commander';
import type { CliIo } from '../program.js';

export interface SyncFlags {
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
      // Loaded only now, so other commands, --help and --version never load the engine and clients.
      const { runSync } = await import('./sync-run.js');
      setExit(await runSync(io, flags));
    });
}
