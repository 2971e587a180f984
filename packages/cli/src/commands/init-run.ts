import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { RefbridgeError, renderStarterConfig } from '@refbridge/core';
import type { CliIo } from '../program.js';
import type { InitFlags } from './init-command.js';

export async function runInit(io: CliIo, flags: InitFlags): Promise<void> {
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
}
