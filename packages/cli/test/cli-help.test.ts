import { describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { join } from 'node:path';
import { repoRoot } from '../../../test/support/paths.js';

// Runs the built bin as a user would (`npm test` builds first).
const bin = join(repoRoot, 'packages', 'cli', 'dist', 'bin.js');

describe('refbridge bin', () => {
  it('prints help and version', async () => {
    const help = await execa(process.execPath, [bin, '--help']);
    expect(help.stdout).toContain('Usage: refbridge');
    const version = await execa(process.execPath, [bin, '--version']);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('exits 2 on usage errors', async () => {
    const r = await execa(process.execPath, [bin, '--no-such-flag'], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown option');
  });
});
