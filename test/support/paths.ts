import { execa } from 'execa';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Builds the packages, unless this runs under `npm test`, whose pretest just did. Building again
 * there would rewrite packages/cli/dist while other suites run the bin from it.
 */
export async function buildUnlessPretest(): Promise<void> {
  if (process.env['npm_lifecycle_event'] === 'test') return;
  await execa('npm', ['run', '-s', 'build'], { cwd: repoRoot });
}
