/**
 * `refbridge mirror --lfs`: the flag and REFBRIDGE_LFS reach mirrorRef, bad values are usage
 * errors, and a tip that tracks files with Git LFS is refused by default and pushed with
 * `pointers`. Real repos (file:// URLs), the CLI run in-process.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runCli } from '../../../test/support/cli.js';
import { commitFiles, git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';

let dir: { path: string; cleanup: () => Promise<void> };
let checkout: string;
let target: string;
let before: string;
let after: string;

beforeAll(async () => {
  dir = await tempDir('refbridge-mirror-lfs-');
  const work = join(dir.path, 'work');
  await initRepo(work);
  before = await commitFiles(work, { 'README.md': '# lfs\n' }, 'first');
  target = join(dir.path, 'target.git');
  await initRepo(target, { bare: true });
  await git(work, ['push', '-q', target, 'HEAD:refs/heads/main']);
  after = await commitFiles(
    work,
    {
      '.gitattributes': '*.bin filter=lfs diff=lfs merge=lfs -text\n',
      'big.bin': 'version https://git-lfs.github.com/spec/v1\noid sha256:' + 'a'.repeat(64) + '\nsize 9\n',
    },
    'track binaries with LFS',
  );
  checkout = work;
});
afterAll(async () => {
  await dir.cleanup();
});

function mirror(extra: string[], env: Record<string, string> = {}) {
  return runCli(
    [
      'mirror',
      '--source-url',
      pathToFileURL(checkout).href,
      '--target-url',
      pathToFileURL(target).href,
      '--ref',
      'refs/heads/main',
      '--before',
      before,
      '--after',
      after,
      '--workdir',
      checkout,
      ...extra,
    ],
    { PATH: process.env['PATH'], HOME: dir.path, ...env },
    checkout,
  );
}

describe('refbridge mirror --lfs', () => {
  it('rejects a policy it does not know, from the flag or the environment', async () => {
    const flag = await mirror(['--lfs', 'skip']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--lfs must be fail or pointers, got "skip"');
    const env = await mirror([], { REFBRIDGE_LFS: 'ignore' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('REFBRIDGE_LFS must be fail or pointers, got "ignore"');
    expect(await git(target, ['rev-parse', 'refs/heads/main'])).toBe(before);
  });

  it('refuses an LFS tip by default and pushes nothing', async () => {
    const r = await mirror([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Git LFS/);
    expect(r.stderr).toContain('*.bin');
    expect(await git(target, ['rev-parse', 'refs/heads/main'])).toBe(before);
  });

  it('the flag wins over the environment: --lfs fail refuses even with REFBRIDGE_LFS=pointers', async () => {
    const r = await mirror(['--lfs', 'fail'], { REFBRIDGE_LFS: 'pointers' });
    expect(r.code).toBe(1);
    expect(await git(target, ['rev-parse', 'refs/heads/main'])).toBe(before);
  });

  it('pushes the git data with --lfs pointers and warns', async () => {
    const r = await mirror(['--lfs', 'pointers', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'pushed', lfsPointers: [{ line: 1, pattern: '*.bin' }] });
    expect(r.stderr).toMatch(/LFS/);
    expect(await git(target, ['rev-parse', 'refs/heads/main'])).toBe(after);
  });
});
