import type { Command } from 'commander';
import type { CliIo } from '../program.js';

export interface InitFlags {
  output: string;
  force?: boolean;
}

export function registerInit(program: Command, io: CliIo): void {
  program
    .command('init')
    .description('Write a commented starter refbridge.yaml')
    .option('-o, --output <file>', 'where to write it', 'refbridge.yaml')
    .option('--force', 'overwrite an existing file')
    .action(async (flags: InitFlags) => {
      // Loaded only now, so other commands, --help and --version never load the config module.
      const { runInit } = await import('./init-run.js');
      await runInit(io, flags);
    });
}
