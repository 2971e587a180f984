import { describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { join } from 'node:path';
import { node24 } from '../support/node24.js';
import { repoRoot } from '../support/paths.js';

describe('the bundled Action under Node 24', () => {
  it('fails with a message naming the missing input, not a stack trace', async () => {
    const r = await execa(node24(), [join(repoRoot, 'dist', 'index.js')], {
      reject: false,
      cwd: repoRoot,
      env: { GITHUB_REPOSITORY: 'acme/widgets' },
      extendEnv: false,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('::error::');
    expect(r.stdout).toContain('Input required and not supplied: gitlab-token');
    expect(r.stdout + r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
  });
});
