import type { Command } from 'commander';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { RefbridgeError, renderStarterConfig } from '@refbridge/core';
import type { CliIo } from '../program.js';

export function registerInit(program: Command, io: CliIo): void {
  program
    .command('init')
    .description('Write a commented starter refbridge.yaml')
    .option('-o, --output <file>', 'where to write it', 'refbridge.yaml')
    .option('--force', 'overwrite an existing file')
    .action(async (flags: { output: string; force?: boolean }) => {
      const path = resolve(io.cwd, flags.output);
      try {
        const fh = await open(path, flags.force ? 'w' : 'wx');
        await fh.writeFile(renderStarterConfig());
        await fh.close();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new RefbridgeError(`${path} already exists`, {
            hint: 'edit it, or pass --force to overwrite it',
            exitCode: 2,
          });
        }
        throw error;
      }
      io.stdout(`wrote ${path}: add your pairs, then run \`refbridge sync --dry-run\`\n`);
    });
}
