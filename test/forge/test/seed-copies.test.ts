import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { join } from 'node:path';
import { startForge, type RunningForge } from '../src/server.js';
import type { SeedSpec } from '../src/seed.js';
import type { Platform } from '../src/state.js';
import { tempDir } from '../../support/temp.js';

/**
 * Seed entries with `count` create the first repo with `git fast-import` and copy it for the rest.
 * A small repo's objects are what a copy can lose (fast-import leaves small imports loose), so
 * these clone a later copy and check it holds everything the first one does.
 */

const GH_TOKEN = 'ghp_canarySeedCopies000000000000000';
const GL_TOKEN = 'glpat-canarySeedCopies0000';

const seed: SeedSpec = {
  github: {
    users: ['alice'],
    orgs: [{ login: 'acme', members: ['alice'] }],
    repos: [
      {
        owner: 'acme',
        name: 'small-{n}',
        count: 3,
        private: true,
        files: { 'README.md': '# small\n' },
        history: 2,
        branches: { feature: { files: { 'f.txt': 'f\n' } } },
        tags: [{ name: 'v1', message: 'one' }, { name: 'light' }],
      },
    ],
  },
  gitlab: {
    users: ['carol'],
    groups: [{ path: 'acme', members: { carol: 40 } }],
    projects: [{ path: 'acme/small-{n}', count: 2, files: { 'README.md': '# small\n' } }],
  },
  tokens: [
    { value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo'] },
    { value: GL_TOKEN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
  ],
};

let forge: RunningForge;
let tmp: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  tmp = await tempDir('forge-seed-copies-');
  forge = await startForge({ seed });
});

afterAll(async () => {
  await forge?.close();
  await tmp?.cleanup();
});

async function git(cwd: string, args: string[], platform?: Platform, token?: string): Promise<string> {
  const user = platform === 'gitlab' ? 'oauth2' : 'x-access-token';
  const r = await execa('git', args, {
    cwd,
    timeout: 60_000,
    env: {
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      ...(platform && token
        ? {
            GIT_CONFIG_COUNT: '1',
            GIT_CONFIG_KEY_0: `http.${forge.urls[platform].web}/.extraheader`,
            GIT_CONFIG_VALUE_0: `AUTHORIZATION: basic ${Buffer.from(`${user}:${token}`).toString('base64')}`,
          }
        : {}),
    },
  });
  return String(r.stdout).trim();
}

/** Every ref and every object of a clone, for comparing two copies. */
async function cloneContent(platform: Platform, path: string, token: string): Promise<string> {
  const dir = join(tmp.path, `${platform}-${path.replace(/\//g, '-')}`);
  await git(tmp.path, ['clone', '-q', '--mirror', `${forge.urls[platform].web}/${path}.git`, dir], platform, token);
  // fsck proves the clone is complete; the lists prove it is the same as the first copy.
  await git(dir, ['fsck', '--strict', '--no-dangling']);
  const refs = await git(dir, ['for-each-ref', '--format=%(objectname) %(refname)']);
  const objects = await git(dir, ['rev-list', '--objects', '--all']);
  return `${refs}\n--\n${objects.split('\n').sort().join('\n')}`;
}

describe('seeded copies (count)', () => {
  it('a later GitHub copy of a small repo clones with every branch, tag and object of the first', async () => {
    const first = await cloneContent('github', 'acme/small-1', GH_TOKEN);
    const second = await cloneContent('github', 'acme/small-2', GH_TOKEN);
    expect(second).toBe(first);
    expect(first).toContain('refs/heads/feature');
    expect(first).toContain('refs/tags/v1');
    expect(first).toContain('f.txt');
    // The last copy too, and a working clone of it checks out.
    const work = join(tmp.path, 'small-3-work');
    await git(tmp.path, ['clone', '-q', `${forge.urls.github.web}/acme/small-3.git`, work], 'github', GH_TOKEN);
    expect(await git(work, ['rev-list', '--count', 'HEAD'])).toBe('3');
    expect(await git(work, ['show', 'HEAD:README.md'])).toBe('# small');
  });

  it('a later GitLab copy of a small project clones', async () => {
    const first = await cloneContent('gitlab', 'acme/small-1', GL_TOKEN);
    expect(await cloneContent('gitlab', 'acme/small-2', GL_TOKEN)).toBe(first);
    expect(first).toContain('README.md');
  });
});
