import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startForge, type RunningForge } from '../forge/src/server.js';
import { runCli } from '../support/cli.js';
import { filesContaining, forgeGit } from '../support/forge-git.js';
import { commitFiles, git } from '../support/git.js';
import { tempDir } from '../support/temp.js';

// `refbridge sync` end to end: the real CLI, real git, the real adapters, against the test forge.

const GH_TOKEN = 'ghp_canarySYNCgithub0000000000000000000001';
const GL_TOKEN = 'glpat-canarySYNCgitlab00000000002';

let forge: RunningForge;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let env: Record<string, string>;
let cache: string;
let ghGit: ReturnType<typeof forgeGit>;
let glGit: ReturnType<typeof forgeGit>;

const seedRepo = { files: { 'README.md': '# app\n' }, history: 3, defaultBranch: 'main' };

beforeAll(async () => {
  tmp = await tempDir('refbridge-sync-e2e-');
  cache = join(tmp.path, 'cache');
  forge = await startForge({
    seed: {
      github: {
        users: ['alice', 'mallory'],
        orgs: [{ login: 'acme', members: ['alice'] }],
        repos: [
          {
            owner: 'acme',
            name: 'app',
            private: true,
            ...seedRepo,
            branches: { develop: {} },
            tags: [{ name: 'v1.0.0', message: 'Release' }, { name: 'light' }],
            refs: { 'refs/pull/1/head': 'develop' },
          },
          { owner: 'acme', name: 'policy', private: true, ...seedRepo, branches: { feature: {}, other: {} } },
          { owner: 'acme', name: 'split', private: true, ...seedRepo, branches: { a: {}, b: {} } },
          { owner: 'acme', name: 'guarded', private: true, ...seedRepo },
          { owner: 'acme', name: 'tags', private: true, ...seedRepo },
          { owner: 'acme', name: 'relaxed', private: true, ...seedRepo },
          { owner: 'mallory', name: 'secret', private: true, ...seedRepo },
        ],
      },
      gitlab: {
        users: ['carol'],
        groups: [{ path: 'acme', members: { carol: 50 } }, { path: 'acme/mirror' }],
        projects: [
          { path: 'acme/mirror/app' },
          { path: 'acme/mirror/policy' },
          { path: 'acme/mirror/split' },
          { path: 'acme/mirror/guarded', ...seedRepo },
          { path: 'acme/mirror/tags' },
          { path: 'acme/mirror/relaxed', ...seedRepo },
          { path: 'acme/mirror/secret' },
        ],
      },
      tokens: [
        { value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
        { value: GL_TOKEN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
      ],
    },
  });
  env = {
    GITHUB_TOKEN: GH_TOKEN,
    GITLAB_TOKEN: GL_TOKEN,
    HOME: tmp.path,
    PATH: process.env['PATH'] ?? '',
    REFBRIDGE_GITHUB_WRITE_INTERVAL_MS: '0',
  };
  ghGit = forgeGit(forge.urls.github.web, GH_TOKEN);
  glGit = forgeGit(forge.urls.gitlab.web, GL_TOKEN, 'oauth2');
  const pair = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    github: `acme/${name}`,
    gitlab: `acme/mirror/${name}`,
    ...extra,
  });
  const config = {
    github: { url: forge.urls.github.web, apiUrl: forge.urls.github.api },
    gitlab: { url: forge.urls.gitlab.web },
    pairs: [
      pair('app'),
      pair('policy', { deletions: 'ignore', rewrites: 'deny' }),
      pair('split', { divergence: 'halt-pair' }),
      pair('guarded', { rewrites: 'allow' }),
      pair('tags'),
      pair('relaxed', { rewrites: 'allow', protectedBranches: { temporarilyAllowForcePush: true } }),
      { name: 'secret', github: 'mallory/secret', gitlab: 'acme/mirror/secret' },
    ],
  };
  await writeFile(join(tmp.path, 'refbridge.yaml'), JSON.stringify(config, null, 2));
}, 120_000);

afterAll(async () => {
  await forge?.close();
  await tmp?.cleanup();
});

async function sync(...args: string[]) {
  return runCli(['sync', '--config', join(tmp.path, 'refbridge.yaml'), '--cache', cache, ...args], env, tmp.path);
}

async function refs(platform: 'github' | 'gitlab', path: string): Promise<Record<string, string>> {
  const url = `${forge.urls[platform].web}/${path}.git`;
  const out = await (platform === 'github' ? ghGit : glGit)(tmp.path, ['ls-remote', url]);
  return Object.fromEntries(
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t').reverse() as [string, string]),
  );
}

async function clone(
  platform: 'github' | 'gitlab',
  path: string,
  dir: string,
): Promise<(args: string[]) => Promise<string>> {
  const g = platform === 'github' ? ghGit : glGit;
  await g(tmp.path, ['clone', '-q', `${forge.urls[platform].web}/${path}.git`, join(tmp.path, dir)]);
  return (args) => g(join(tmp.path, dir), args);
}

/**
 * Each side answered one ref listing (protocol v2 `ls-refs` is one POST to git-upload-pack) and
 * nothing else: no fetch (a second upload-pack POST) and no push.
 */
async function expectOnlyRefListings(): Promise<void> {
  const log = (await (await fetch(`${forge.urls.github.web}/_forge/requests?kind=git`)).json()) as {
    route: string;
    path: string;
  }[];
  expect(log.filter((e) => e.route.includes('receive-pack'))).toEqual([]);
  const uploads = log.filter((e) => e.route === 'POST git-upload-pack').map((e) => e.path);
  expect(uploads.length).toBe(2);
  expect(new Set(uploads).size).toBe(2);
}

interface JsonResult {
  exitCode: number;
  pairs: {
    pair: string;
    status: string;
    error?: string;
    refs: { ref: string; status: string; action: { kind: string }; detail: string; repair?: string }[];
  }[];
}

describe('refbridge sync against the forge', () => {
  it('first run copies branches and both kinds of tags, never hidden refs; the pair without access fails alone', async () => {
    const r = await sync('--json', '--pair', 'app', 'secret');
    const json = JSON.parse(r.stdout) as JsonResult;
    expect(r.code).toBe(1);
    const app = json.pairs.find((p) => p.pair === 'app')!;
    const secret = json.pairs.find((p) => p.pair === 'secret')!;
    expect(app.status).toBe('synced');
    expect(secret.status).toBe('failed');
    expect(secret.error).toMatch(/mallory\/secret/);
    const gh = await refs('github', 'acme/app');
    const gl = await refs('gitlab', 'acme/mirror/app');
    for (const ref of ['refs/heads/main', 'refs/heads/develop', 'refs/tags/v1.0.0', 'refs/tags/light']) {
      expect(gl[ref]).toBe(gh[ref]);
    }
    expect(gl['refs/tags/v1.0.0^{}']).toBe(gh['refs/tags/v1.0.0^{}']);
    expect(gl['refs/tags/v1.0.0']).not.toBe(gl['refs/tags/v1.0.0^{}']);
    expect(Object.keys(gl).some((k) => k.startsWith('refs/pull/'))).toBe(false);
  });

  it('a second run is a no-op that pushes nothing', async () => {
    await fetch(`${forge.urls.github.web}/_forge/requests/reset`, { method: 'POST' });
    const r = await sync('--pair', 'app');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/app\s+in-sync/);
    await expectOnlyRefListings();
  });

  it('syncs new branches and commits made on either side', async () => {
    const gh = await clone('github', 'acme/app', 'app-gh');
    await gh(['checkout', '-q', '-b', 'from-github']);
    await commitFiles(join(tmp.path, 'app-gh'), { 'gh.txt': 'gh\n' });
    await gh(['push', '-q', 'origin', 'from-github']);
    const gl = await clone('gitlab', 'acme/mirror/app', 'app-gl');
    await gl(['checkout', '-q', '-b', 'from-gitlab']);
    const glTip = await commitFiles(join(tmp.path, 'app-gl'), { 'gl.txt': 'gl\n' });
    await gl(['push', '-q', 'origin', 'from-gitlab']);
    const r = await sync('--pair', 'app');
    expect(r.code).toBe(0);
    expect((await refs('github', 'acme/app'))['refs/heads/from-gitlab']).toBe(glTip);
    expect((await refs('gitlab', 'acme/mirror/app'))['refs/heads/from-github']).toBeDefined();
  });

  it('leaves a deletion alone under deletions: ignore, and a rewrite blocked under rewrites: deny', async () => {
    expect((await sync('--pair', 'policy')).code).toBe(0);
    const gh = await clone('github', 'acme/policy', 'policy-gh');
    await gh(['push', '-q', 'origin', ':feature']);
    await gh(['checkout', '-q', 'other']);
    await gh(['reset', '-q', '--hard', 'HEAD~1']);
    await commitFiles(join(tmp.path, 'policy-gh'), { 'rewrite.txt': 'x\n' });
    await gh(['push', '-q', '--force', 'origin', 'other']);
    const before = await refs('gitlab', 'acme/mirror/policy');
    const r = await sync('--pair', 'policy', '--json');
    const json = JSON.parse(r.stdout) as JsonResult;
    expect(r.code).toBe(3);
    const byRef = Object.fromEntries(json.pairs[0]!.refs.map((x) => [x.ref, x]));
    expect(byRef['refs/heads/feature']?.action.kind).toBe('skipped');
    expect(byRef['refs/heads/other']?.action.kind).toBe('blocked');
    expect(await refs('gitlab', 'acme/mirror/policy')).toEqual(before);
  });

  it('reports divergence with both tips and a repair command, halting the whole pair under halt-pair', async () => {
    expect((await sync('--pair', 'split')).code).toBe(0);
    const gh = await clone('github', 'acme/split', 'split-gh');
    await gh(['checkout', '-q', 'a']);
    const ghTip = await commitFiles(join(tmp.path, 'split-gh'), { 'a.txt': 'github\n' });
    await gh(['push', '-q', 'origin', 'a']);
    await gh(['checkout', '-q', 'b']);
    await commitFiles(join(tmp.path, 'split-gh'), { 'b.txt': 'b\n' });
    await gh(['push', '-q', 'origin', 'b']);
    const gl = await clone('gitlab', 'acme/mirror/split', 'split-gl');
    await gl(['checkout', '-q', 'a']);
    const glTip = await commitFiles(join(tmp.path, 'split-gl'), { 'a.txt': 'gitlab\n' });
    await gl(['push', '-q', 'origin', 'a']);
    const glBefore = await refs('gitlab', 'acme/mirror/split');

    const r = await sync('--pair', 'split');
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(ghTip.slice(0, 12));
    expect(r.stdout).toContain(glTip.slice(0, 12));
    expect(r.stdout).toContain('merge base');
    expect(r.stdout).toContain('--resolve refs/heads/a');
    // halt-pair: b's fast-forward waits too.
    expect(await refs('gitlab', 'acme/mirror/split')).toEqual(glBefore);

    const fixed = await sync('--pair', 'split', '--resolve', 'refs/heads/a', '--keep', 'github');
    expect(fixed.code).toBe(0);
    expect((await refs('gitlab', 'acme/mirror/split'))['refs/heads/a']).toBe(ghTip);
    expect((await sync('--pair', 'split')).code).toBe(0);
    const final = await refs('gitlab', 'acme/mirror/split');
    expect(final['refs/heads/b']).toBe((await refs('github', 'acme/split'))['refs/heads/b']);
  });

  it('names the protected-branch rule that refuses a rewrite', async () => {
    expect((await sync('--pair', 'guarded')).code).toBe(0);
    const gh = await clone('github', 'acme/guarded', 'guarded-gh');
    await gh(['reset', '-q', '--hard', 'HEAD~1']);
    await commitFiles(join(tmp.path, 'guarded-gh'), { 'new.txt': 'rewritten\n' });
    await gh(['push', '-q', '--force', 'origin', 'main']);
    const r = await sync('--pair', 'guarded');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/protected branch/i);
    expect(r.stdout).toMatch(/rule: protected branch "main"/);
  });

  it('with the opt-in, relaxes a GitLab protected branch for one push, restores it and logs both changes', async () => {
    expect((await sync('--pair', 'relaxed')).code).toBe(0);
    const gh = await clone('github', 'acme/relaxed', 'relaxed-gh');
    await gh(['reset', '-q', '--hard', 'HEAD~1']);
    const rewritten = await commitFiles(join(tmp.path, 'relaxed-gh'), { 'new.txt': 'rewritten\n' });
    await gh(['push', '-q', '--force', 'origin', 'main']);
    const r = await sync('--pair', 'relaxed');
    expect(r.code).toBe(0);
    expect((await refs('gitlab', 'acme/mirror/relaxed'))['refs/heads/main']).toBe(rewritten);
    expect(r.stderr).toMatch(/temporarily allowed force push on gitlab acme\/mirror\/relaxed/);
    expect(r.stderr).toMatch(/restored "no force push"/);
    const state = (await (await fetch(`${forge.urls.gitlab.web}/_forge/state`)).json()) as {
      gitlab: { projects: { fullPath: string; protectedBranches: { name: string; allowForcePush: boolean }[] }[] };
    };
    const project = state.gitlab.projects.find((p) => p.fullPath === 'acme/mirror/relaxed')!;
    expect(project.protectedBranches.find((b) => b.name === 'main')?.allowForcePush).toBe(false);
  });

  it('--watch finishes the round in hand on SIGTERM and exits 0', async () => {
    const { execa } = await import('execa');
    const { repoRoot } = await import('../support/paths.js');
    const child = execa(
      process.execPath,
      [
        join(repoRoot, 'packages/cli/dist/bin.js'),
        'sync',
        '--config',
        join(tmp.path, 'refbridge.yaml'),
        '--cache',
        cache,
        '--pair',
        'app',
        '--watch',
        '--interval',
        '3600',
      ],
      { env, extendEnv: false, reject: false },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 300 && !out.includes('pair(s) in'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('pair(s) in');
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
  });

  it('syncs 5,000 tags and re-checks them without transferring anything', async () => {
    const dir = join(tmp.path, 'tags-gh');
    const gh = await clone('github', 'acme/tags', 'tags-gh');
    const head = await git(dir, ['rev-parse', 'HEAD']);
    const lines = Array.from({ length: 5000 }, (_, i) => `create refs/tags/t${String(i).padStart(5, '0')} ${head}`);
    const { execa } = await import('execa');
    await execa('git', ['update-ref', '--stdin'], { cwd: dir, input: lines.join('\n') + '\n' });
    await gh(['push', '-q', 'origin', '--tags']);
    const first = await sync('--pair', 'tags');
    expect(first.code).toBe(0);
    expect(Object.keys(await refs('gitlab', 'acme/mirror/tags')).filter((r) => r.startsWith('refs/tags/')).length).toBe(
      5000,
    );
    await fetch(`${forge.urls.github.web}/_forge/requests/reset`, { method: 'POST' });
    const again = await sync('--pair', 'tags');
    expect(again.code).toBe(0);
    await expectOnlyRefListings();
  }, 240_000);

  it('never writes a token to the cache or prints it', async () => {
    expect(await filesContaining(cache, GH_TOKEN)).toEqual([]);
    expect(await filesContaining(cache, GL_TOKEN)).toEqual([]);
    const r = await sync('--json');
    expect(r.stdout + r.stderr).not.toContain(GH_TOKEN);
    expect(r.stdout + r.stderr).not.toContain(GL_TOKEN);
  });
});
