import type { Command } from 'commander';
import type { CliIo } from '../program.js';

/** Tokens stored for the CI when set (a bot's tokens, the recommended set-up); see bootstrap-run.ts. */
export const MIRROR_TOKEN_ENV = {
  github: 'REFBRIDGE_MIRROR_GITHUB_TOKEN',
  gitlab: 'REFBRIDGE_MIRROR_GITLAB_TOKEN',
} as const;

export interface BootstrapFlags {
  config?: string;
  pair?: string[];
  dryRun?: boolean;
  json?: boolean;
  concurrency: string;
  verbose?: boolean;
}

export function registerBootstrap(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('bootstrap')
    .description(
      'Set up every pair on both platforms: create or adopt the repos, store the tokens and variables the CI needs, and commit the CI files (one commit, the same on both sides). Safe to run again: unchanged things are not rewritten.',
    )
    .option('-c, --config <file>', 'config file (default: ./refbridge.yaml, ./refbridge.yml or ./repos.yaml)')
    .option('--pair <name...>', 'only these pairs (by name)')
    .option('--dry-run', 'print the plan per pair and change nothing')
    .option('--json', 'print the result as JSON on stdout')
    .option('--concurrency <n>', 'pairs set up in parallel', '4')
    .option('-v, --verbose', 'log every API call and git command (tokens masked)')
    .addHelpText(
      'after',
      `
Tokens (environment only):
  GITHUB_TOKEN, GITLAB_TOKEN      used by bootstrap (GitHub: repo + workflow; GitLab: api)
  ${MIRROR_TOKEN_ENV.github}   stored in GitLab as GITHUB_TOKEN (default: GITHUB_TOKEN)
  ${MIRROR_TOKEN_ENV.gitlab}   stored on GitHub as GITLAB_TOKEN (default: GITLAB_TOKEN)

Exit codes: 0 done or already set up, 1 a pair failed, 2 usage, config or token scope problem
(nothing changed), 3 a pair's branch differs on the two sides (CI files not committed).`,
    )
    .action(async (flags: BootstrapFlags) => {
      // Loaded only now, so other commands, --help and --version never load the engine and clients.
      const { runBootstrap } = await import('./bootstrap-run.js');
      setExit(await runBootstrap(io, flags));
    });
}
