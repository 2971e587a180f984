import { describe, expect, it } from '@jest/globals';
import { parseConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';

// The `lfs` policy: built-in `fail`, `defaults` and per-pair keys, and REFBRIDGE_LFS over all.

const text = `
defaults:
  lfs: pointers
pairs:
  - github: acme/media
    gitlab: acme/media
  - github: acme/app
    gitlab: acme/app
    lfs: fail
`;

function problems(yaml: string, env: Record<string, string> = {}) {
  try {
    parseConfig(yaml, { source: 'refbridge.yaml', env });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('the lfs setting', () => {
  it('is fail unless the file says otherwise', () => {
    const c = parseConfig('pairs: [{ github: acme/app, gitlab: acme/app }]', { source: 'refbridge.yaml', env: {} });
    expect(c.defaults.lfs).toBe('fail');
    expect(c.pairs[0]?.policy.lfs).toBe('fail');
  });

  it('is read from defaults and from each pair', () => {
    const c = parseConfig(text, { source: 'refbridge.yaml', env: {} });
    expect(c.defaults.lfs).toBe('pointers');
    expect(c.pairs.map((p) => [p.name, p.policy.lfs])).toEqual([
      ['media', 'pointers'],
      ['app', 'fail'],
    ]);
  });

  it('REFBRIDGE_LFS overrides the file for every pair', () => {
    const c = parseConfig(text, { source: 'refbridge.yaml', env: { REFBRIDGE_LFS: 'fail' } });
    expect(c.defaults.lfs).toBe('fail');
    expect(c.pairs.map((p) => p.policy.lfs)).toEqual(['fail', 'fail']);
    const p = parseConfig(text, { source: 'refbridge.yaml', env: { REFBRIDGE_LFS: ' pointers ' } });
    expect(p.pairs.map((x) => x.policy.lfs)).toEqual(['pointers', 'pointers']);
    // Runners export unset inputs as empty strings.
    const e = parseConfig(text, { source: 'refbridge.yaml', env: { REFBRIDGE_LFS: '' } });
    expect(e.pairs.map((x) => x.policy.lfs)).toEqual(['pointers', 'fail']);
  });

  it('reports a bad value in the file and in the environment', () => {
    expect(problems('pairs: [{ github: acme/app, gitlab: acme/app, lfs: pointer }]')).toEqual([
      expect.objectContaining({
        key: 'pairs[0].lfs',
        message: 'must be one of fail, pointers; got "pointer"',
        hint: 'did you mean pointers?',
      }),
    ]);
    expect(problems(text, { REFBRIDGE_LFS: 'pointer' })).toEqual([
      {
        source: 'environment',
        key: 'REFBRIDGE_LFS',
        message: 'must be fail or pointers; got "pointer"',
        hint: 'did you mean pointers?',
      },
    ]);
  });
});
