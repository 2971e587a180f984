import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { startForge, type RunningForge } from '../src/server.js';
import type { SeedSpec } from '../src/seed.js';
import type { Platform } from '../src/state.js';
import { tempDir } from '../../support/temp.js';

/**
 * The forge's git transport through the real git CLI: what a clone, fetch or push sees, and what
 * each platform refuses, with its own words.
 */

const GH_TOKEN = 'ghp_canaryF1git7f3a9c1e5b0d2468ace';
const GH_WORKFLOW = 'ghp_canaryF1wf0000000000000000000000';
const GH_READONLY = 'ghp_canaryF1ro0000000000000000000000';
const GH_BOB = 'ghp_canaryF1bob000000000000000000000';
const GL_TOKEN = 'glpat-canaryF1git7f3a9c1e5b';
const GL_READ = 'glpat-canaryF1read000000000';
const GL_DEV = 'glpat-canaryF1dev0000000000';
const ALL_TOKENS = [GH_TOKEN, GH_WORKFLOW, GH_READONLY, GH_BOB, GL_TOKEN, GL_READ, GL_DEV];

const seed: SeedSpec = {
  github: {
    users: ['alice', 'bob'],
    orgs: [{ login: 'acme', members: ['alice'] }],
    repos: [
      {
        owner: 'acme',
        name: 'widgets',
        private: true,
        files: { 'README.md': '# widgets\n', '.github/workflows/ci.yml': 'on: push\n' },
        history: 10,
        branches: { stable: {}, release: {}, feature: { files: { 'feature.txt': 'f\n' } } },
        tags: [{ name: 'v1.0.0', message: 'Release 1.0.0' }, { name: 'light' }],
        refs: { 'refs/pull/1/head': 'feature' },
        protections: { main: {}, stable: {}, release: { allowForcePushes: true, allowDeletions: true } },
      },
      { owner: 'acme', name: 'open', visibility: 'public', files: { 'README.md': 'open\n' } },
      { owner: 'acme', name: 'many', private: true, files: { 'README.md': 'many\n' } },
      { owner: 'acme', name: 'race', private: true, files: { 'README.md': 'race\n' } },
      { owner: 'alice', name: 'empty', private: true },
      { owner: 'acme', name: 'frozen', private: true, archived: true, files: { 'README.md': 'x\n' } },
    ],
  },
  gitlab: {
    users: ['carol', 'dave', 'erin'],
    groups: [
      { path: 'acme', members: { carol: 40 } },
      { path: 'acme/platform', members: { dave: 30 } },
    ],
    projects: [
      {
        path: 'acme/platform/api',
        files: { 'README.md': '# api\n' },
        branches: { 'release/1': {}, 'hotfix/1': {}, topic: {} },
        protectedBranches: [
          { name: 'release/*', allowForcePush: false },
          { name: 'hotfix/*', allowForcePush: true, pushAccessLevel: 30 },
          { name: '*fix*', allowForcePush: false, pushAccessLevel: 30 },
        ],
      },
      { path: 'acme/public-docs', visibility: 'public', files: { 'README.md': 'docs\n' } },
      { path: 'acme/fresh' },
      { path: 'carol/personal', files: { 'a.txt': 'a\n' } },
    ],
  },
  tokens: [
    { value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo'] },
    { value: GH_WORKFLOW, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
    { value: GH_READONLY, platform: 'github', user: 'alice', scopes: ['read:org'] },
    { value: GH_BOB, platform: 'github', user: 'bob', scopes: ['repo'] },
    { value: GL_TOKEN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
    { value: GL_READ, platform: 'gitlab', user: 'carol', scopes: ['read_repository'] },
    { value: GL_DEV, platform: 'gitlab', user: 'dave', scopes: ['write_repository'] },
  ],
};

interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

let forge: RunningForge;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let n = 0;

function repoUrl(platform: Platform, path: string): string {
  return `${forge.urls[platform].web}/${path}.git`;
}

/** Credentials the way refbridge passes them: an extra header from the environment, never argv. */
function auth(
  platform: Platform,
  token: string,
  user = platform === 'github' ? 'x-access-token' : 'oauth2',
): Record<string, string> {
  return {
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${forge.urls[platform].web}/.extraheader`,
    GIT_CONFIG_VALUE_0: `AUTHORIZATION: basic ${Buffer.from(`${user}:${token}`).toString('base64')}`,
  };
}

async function git(cwd: string, args: string[], env: Record<string, string> = {}): Promise<GitResult> {
  const r = await execa('git', args, {
    cwd,
    reject: false,
    timeout: 60_000,
    env: {
      GIT_TERMINAL_PROMPT: '0',
      GIT_AUTHOR_NAME: 'Test',
      GIT_AUTHOR_EMAIL: 'test@example.com',
      GIT_COMMITTER_NAME: 'Test',
      GIT_COMMITTER_EMAIL: 'test@example.com',
      GIT_CONFIG_NOSYSTEM: '1',
      ...env,
    },
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function ok(cwd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await git(cwd, args, env);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout.trim();
}

async function clone(platform: Platform, path: string, token: string, extra: string[] = []): Promise<string> {
  const dir = join(tmp.path, `c${++n}`);
  await ok(tmp.path, ['clone', '-q', ...extra, repoUrl(platform, path), dir], auth(platform, token));
  return dir;
}

async function commit(dir: string, files: Record<string, string>, message = 'change'): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  await ok(dir, ['add', '-A']);
  await ok(dir, ['commit', '-q', '--allow-empty', '-m', message]);
  return ok(dir, ['rev-parse', 'HEAD']);
}

async function remoteRefs(platform: Platform, path: string, token: string): Promise<Map<string, string>> {
  const out = await ok(tmp.path, ['ls-remote', repoUrl(platform, path)], auth(platform, token));
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, ref] = line.split('\t');
    if (sha && ref) refs.set(ref, sha);
  }
  return refs;
}

beforeAll(async () => {
  tmp = await tempDir('forge-git-');
  forge = await startForge({ seed });
});

afterAll(async () => {
  await forge?.close();
  await tmp?.cleanup();
});

describe('clone, fetch and push', () => {
  it('clones a private GitHub repo with any user name and the token, with branches, tags and hidden refs', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN);
    expect(await ok(dir, ['rev-list', '--count', 'HEAD'])).toBe('11');
    expect(await ok(dir, ['symbolic-ref', '--short', 'HEAD'])).toBe('main');
    expect(await ok(dir, ['cat-file', '-t', 'v1.0.0'])).toBe('tag');
    expect(await ok(dir, ['cat-file', '-t', 'light'])).toBe('commit');
    const refs = await remoteRefs('github', 'acme/widgets', GH_TOKEN);
    expect(refs.get('refs/pull/1/head')).toBe(refs.get('refs/heads/feature'));
    // Another user name, and the URL without .git, work the same.
    const other = await git(
      tmp.path,
      ['ls-remote', `${forge.urls.github.web}/acme/widgets`],
      auth('github', GH_TOKEN, 'whoever'),
    );
    expect(other.code).toBe(0);
    expect(other.stdout).toContain('refs/heads/main');
  });

  it('clones a GitLab project in a subgroup with oauth2 or the login, and refuses another user name', async () => {
    const dir = await clone('gitlab', 'acme/platform/api', GL_TOKEN);
    expect(await ok(dir, ['ls-files'])).toBe('README.md');
    expect(
      (await git(tmp.path, ['ls-remote', repoUrl('gitlab', 'acme/platform/api')], auth('gitlab', GL_TOKEN, 'carol')))
        .code,
    ).toBe(0);
    const wrong = await git(
      tmp.path,
      ['ls-remote', repoUrl('gitlab', 'acme/platform/api')],
      auth('gitlab', GL_TOKEN, 'mallory'),
    );
    expect(wrong.code).not.toBe(0);
    const raw = await fetch(`${repoUrl('gitlab', 'acme/platform/api')}/info/refs?service=git-upload-pack`, {
      headers: { authorization: `Basic ${Buffer.from(`mallory:${GL_TOKEN}`).toString('base64')}` },
    });
    expect(raw.status).toBe(401);
    expect(raw.headers.get('www-authenticate')).toBe('Basic realm="GitLab"');
    expect(await raw.text()).toContain('HTTP Basic: Access denied');
  });

  it('pushes and fetches new commits, branches and both kinds of tags, and deletes them again', async () => {
    const a = await clone('github', 'acme/widgets', GH_TOKEN);
    const b = await clone('github', 'acme/widgets', GH_TOKEN);
    const before = forge.state.githubRepo('acme', 'widgets')!.pushedAt;
    const sha = await commit(a, { 'new.txt': 'new\n' }, 'add new');
    await ok(a, ['tag', '-a', 'v2.0.0', '-m', 'two']);
    await ok(a, ['tag', 'lw2']);
    const push = await git(
      a,
      ['push', 'origin', 'HEAD:main', 'HEAD:refs/heads/topic', 'v2.0.0', 'lw2'],
      auth('github', GH_TOKEN),
    );
    expect(push.code).toBe(0);
    expect(push.stderr).toContain("Create a pull request for 'topic' on GitHub by visiting:");
    expect(forge.state.githubRepo('acme', 'widgets')!.pushedAt).not.toBeNull();
    expect(forge.state.githubRepo('acme', 'widgets')!.pushedAt! >= (before ?? '')).toBe(true);

    await ok(b, ['fetch', '-q', '--tags', 'origin'], auth('github', GH_TOKEN));
    expect(await ok(b, ['rev-parse', 'origin/main'])).toBe(sha);
    expect(await ok(b, ['rev-parse', 'origin/topic'])).toBe(sha);
    expect(await ok(b, ['cat-file', '-t', 'v2.0.0'])).toBe('tag');
    expect(await ok(b, ['rev-parse', 'lw2'])).toBe(sha);

    const del = await git(
      a,
      ['push', 'origin', ':refs/heads/topic', ':refs/tags/v2.0.0', ':refs/tags/lw2'],
      auth('github', GH_TOKEN),
    );
    expect(del.code).toBe(0);
    const refs = await remoteRefs('github', 'acme/widgets', GH_TOKEN);
    expect(refs.has('refs/heads/topic')).toBe(false);
    expect(refs.has('refs/tags/v2.0.0')).toBe(false);
    expect(refs.has('refs/tags/lw2')).toBe(false);
    expect(refs.get('refs/heads/main')).toBe(sha);
  });

  it('records pushes: refs, push options, bytes received, user; and moves last_activity_at', async () => {
    const dir = await clone('gitlab', 'acme/platform/api', GL_TOKEN);
    const project = forge.state.gitlabProject('acme/platform/api')!;
    project.lastActivityAt = '2000-01-01T00:00:00Z';
    // 64 KiB of random hex: about 32 KiB after compression, so the pack cannot be small.
    const big = randomBytes(32 * 1024).toString('hex');
    const sha = await commit(dir, { 'big.txt': big }, 'big');
    const push = await git(
      dir,
      ['push', '-o', 'ci.skip', '-o', 'ci.variable=A=1', 'origin', 'HEAD:refs/heads/options'],
      auth('gitlab', GL_TOKEN),
    );
    expect(push.code).toBe(0);
    expect(push.stderr).toContain('To create a merge request for options, visit:');
    const entry = forge.state.pushLog.filter((p) => p.repo === 'acme/platform/api').at(-1)!;
    expect(entry).toMatchObject({
      platform: 'gitlab',
      user: 'carol',
      accepted: true,
      pushOptions: ['ci.skip', 'ci.variable=A=1'],
      updates: [{ ref: 'refs/heads/options', old: '0'.repeat(40), new: sha }],
    });
    expect(entry.bytesReceived).toBeGreaterThan(32 * 1024);
    expect(entry.bytesReceived).toBeLessThan(80 * 1024);
    expect(project.lastActivityAt > '2000-01-01T00:00:00Z').toBe(true);
  });

  it('shallow-clones with --depth 1 and deepens', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN, ['--depth', '1', '--branch', 'stable']);
    expect(await ok(dir, ['rev-list', '--count', 'HEAD'])).toBe('1');
    expect(await ok(dir, ['rev-parse', '--is-shallow-repository'])).toBe('true');
    await ok(dir, ['fetch', '-q', '--deepen=3', 'origin'], auth('github', GH_TOKEN));
    expect(await ok(dir, ['rev-list', '--count', 'HEAD'])).toBe('4');
    await ok(dir, ['fetch', '-q', '--unshallow', 'origin'], auth('github', GH_TOKEN));
    expect(await ok(dir, ['rev-list', '--count', 'HEAD'])).toBe('11');
  });

  it('sets the default branch from the first push into an empty repo (and GitLab protects it)', async () => {
    const dir = join(tmp.path, 'fresh');
    await ok(tmp.path, ['init', '-q', '-b', 'trunk', dir]);
    await commit(dir, { 'a.txt': 'a\n' });
    expect(
      (await git(dir, ['push', repoUrl('github', 'alice/empty'), 'HEAD:refs/heads/trunk'], auth('github', GH_TOKEN)))
        .code,
    ).toBe(0);
    expect(forge.state.githubRepo('alice', 'empty')!.defaultBranch).toBe('trunk');
    expect(forge.state.githubRepo('alice', 'empty')!.pushedAt).not.toBeNull();
    expect(
      (await git(dir, ['push', repoUrl('gitlab', 'acme/fresh'), 'HEAD:refs/heads/main'], auth('gitlab', GL_TOKEN)))
        .code,
    ).toBe(0);
    const fresh = forge.state.gitlabProject('acme/fresh')!;
    expect(fresh.defaultBranch).toBe('main');
    expect(fresh.protectedBranches.map((p) => [p.name, p.allowForcePush])).toEqual([['main', false]]);
    const clonedDefault = await clone('github', 'alice/empty', GH_TOKEN);
    expect(await ok(clonedDefault, ['symbolic-ref', '--short', 'HEAD'])).toBe('trunk');
  });
});

describe('what the platforms refuse', () => {
  it('GitHub: force push accepted where allowed, refused by protection with GH006, per ref', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN);
    await ok(dir, ['checkout', '-q', '-b', 'scratch', 'origin/feature']);
    await ok(dir, ['reset', '-q', '--hard', 'HEAD~1']);
    const rewritten = await commit(dir, { 'rewritten.txt': 'r\n' }, 'rewrite');
    // `feature` is unprotected and `release` allows force pushes; `main` does not.
    const r = await git(
      dir,
      [
        'push',
        '--force',
        'origin',
        `${rewritten}:refs/heads/feature`,
        `${rewritten}:refs/heads/release`,
        `${rewritten}:refs/heads/main`,
      ],
      auth('github', GH_TOKEN),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('remote: error: GH006: Protected branch update failed for refs/heads/main.');
    expect(r.stderr).toContain('remote: error: Cannot force-push to this branch');
    expect(r.stderr).toMatch(/! \[remote rejected\] +\S+ -> main \(protected branch hook declined\)/);
    const refs = await remoteRefs('github', 'acme/widgets', GH_TOKEN);
    expect(refs.get('refs/heads/feature')).toBe(rewritten);
    expect(refs.get('refs/heads/release')).toBe(rewritten);
    expect(refs.get('refs/heads/main')).not.toBe(rewritten);
    const entry = forge.state.pushLog.at(-1)!;
    expect(entry.accepted).toBe(false);
    expect(entry.rejected).toEqual([
      expect.objectContaining({ ref: 'refs/heads/main', reason: 'protected branch hook declined' }),
    ]);
  });

  it('GitHub: an atomic push with one refused ref moves nothing', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN);
    await ok(dir, ['reset', '-q', '--hard', 'HEAD~1']);
    const sha = await commit(dir, {}, 'diverge');
    const r = await git(
      dir,
      ['push', '--atomic', '--force', 'origin', `${sha}:refs/heads/main`, `${sha}:refs/heads/atomic-new`],
      auth('github', GH_TOKEN),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('atomic push failure');
    expect((await remoteRefs('github', 'acme/widgets', GH_TOKEN)).has('refs/heads/atomic-new')).toBe(false);
  });

  it('GitHub: deleting a protected branch is refused; an unprotected one goes', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN);
    const r = await git(dir, ['push', 'origin', ':refs/heads/stable'], auth('github', GH_TOKEN));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('remote: error: GH006: Protected branch update failed for refs/heads/stable.');
    expect(r.stderr).toContain('remote: error: Cannot delete this branch');
    expect((await remoteRefs('github', 'acme/widgets', GH_TOKEN)).has('refs/heads/stable')).toBe(true);
    // The default branch cannot be deleted by a push even without protection (git's own rule).
    const open = await clone('github', 'acme/open', GH_TOKEN);
    const current = await git(open, ['push', 'origin', ':refs/heads/main'], auth('github', GH_TOKEN));
    expect(current.stderr).toContain('(deletion of the current branch prohibited)');
  });

  it('GitHub and GitLab: hidden refs refuse pushes', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN);
    const r = await git(dir, ['push', 'origin', 'HEAD:refs/pull/1/head'], auth('github', GH_TOKEN));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('(deny updating a hidden ref)');
    const gl = await clone('gitlab', 'acme/platform/api', GL_TOKEN);
    const r2 = await git(gl, ['push', 'origin', 'HEAD:refs/merge-requests/1/head'], auth('gitlab', GL_TOKEN));
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain('(deny updating a hidden ref)');
    expect(forge.state.pushLog.at(-1)!.rejected).toEqual([
      expect.objectContaining({ reason: 'deny updating a hidden ref' }),
    ]);
  });

  it('GitHub: changing .github/workflows needs the workflow scope; history already there does not', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN);
    // A branch whose history has workflow files, but whose new commits do not touch them: fine.
    await commit(dir, { 'plain.txt': 'p\n' }, 'plain');
    expect(
      (await git(dir, ['push', 'origin', 'HEAD:refs/heads/no-workflow-change'], auth('github', GH_TOKEN))).code,
    ).toBe(0);
    await commit(dir, { '.github/workflows/deploy.yml': 'on: push\n' }, 'add deploy workflow');
    const r = await git(dir, ['push', 'origin', 'HEAD:refs/heads/wf'], auth('github', GH_TOKEN));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'refusing to allow a Personal Access Token to create or update workflow `.github/workflows/deploy.yml` without `workflow` scope',
    );
    const r2 = await git(dir, ['push', 'origin', 'HEAD:refs/heads/wf'], auth('github', GH_WORKFLOW));
    expect(r2.code).toBe(0);
  });

  it('GitHub: in one push of many refs, exactly those whose new commits change workflows are refused', async () => {
    const dir = await clone('github', 'acme/widgets', GH_TOKEN);
    const base = await ok(dir, ['rev-parse', 'HEAD']);
    const plain = await commit(dir, { 'many-plain.txt': 'p\n' }, 'plain');
    const addsWorkflow = await commit(dir, { '.github/workflows/many.yml': 'on: push\n' }, 'add workflow');
    const afterWorkflow = await commit(dir, { 'after.txt': 'a\n' }, 'on top of the workflow change');
    await ok(dir, ['checkout', '-q', '--detach', base]);
    const editsExisting = await commit(dir, { '.github/workflows/ci.yml': 'on: [push]\n' }, 'edit ci');
    const refs: Record<string, string> = {
      'refs/heads/many-plain': plain,
      'refs/heads/many-adds': addsWorkflow,
      'refs/heads/many-after': afterWorkflow,
      'refs/heads/many-edits': editsExisting,
      'refs/tags/many-tag': afterWorkflow,
    };
    // Plenty of refs on commits the repo already has: none of them change anything.
    for (let i = 0; i < 200; i++) refs[`refs/heads/many-old-${i}`] = base;
    const r = await git(
      dir,
      ['push', 'origin', ...Object.entries(refs).map(([ref, sha]) => `${sha}:${ref}`)],
      auth('github', GH_TOKEN),
    );
    expect(r.code).not.toBe(0);
    const reason = (file: string): string =>
      `refusing to allow a Personal Access Token to create or update workflow \`${file}\` without \`workflow\` scope`;
    const entry = forge.state.pushLog.at(-1)!;
    expect(new Map((entry.rejected ?? []).map((x) => [x.ref, x.reason]))).toEqual(
      new Map([
        ['refs/heads/many-adds', reason('.github/workflows/many.yml')],
        ['refs/heads/many-after', reason('.github/workflows/many.yml')],
        ['refs/heads/many-edits', reason('.github/workflows/ci.yml')],
        ['refs/tags/many-tag', reason('.github/workflows/many.yml')],
      ]),
    );
    expect(entry.updates.map((u) => u.ref).sort()).toEqual(
      ['refs/heads/many-plain', ...Array.from({ length: 200 }, (_, i) => `refs/heads/many-old-${i}`)].sort(),
    );
    expect(r.stderr).toContain(
      `! [remote rejected] ${afterWorkflow} -> many-after (${reason('.github/workflows/many.yml')})`,
    );
  });

  it('GitLab: force push and deletion of protected branches are refused with GitLab messages, wildcards included', async () => {
    const dir = await clone('gitlab', 'acme/platform/api', GL_TOKEN);
    await ok(dir, ['commit', '-q', '--amend', '-m', 'amended']);
    const main = await git(dir, ['push', '--force', 'origin', 'HEAD:main'], auth('gitlab', GL_TOKEN));
    expect(main.code).not.toBe(0);
    expect(main.stderr).toContain(
      'remote: GitLab: You are not allowed to force push code to a protected branch on this project.',
    );
    expect(main.stderr).toMatch(/\(pre-receive hook declined\)/);
    const release = await git(dir, ['push', '--force', 'origin', 'HEAD:release/1'], auth('gitlab', GL_TOKEN));
    expect(release.stderr).toContain(
      'GitLab: You are not allowed to force push code to a protected branch on this project.',
    );
    // hotfix/1 matches `hotfix/*` (force allowed) and `*fix*` (not): one allowing rule is enough.
    const hotfix = await git(dir, ['push', '--force', 'origin', 'HEAD:hotfix/1'], auth('gitlab', GL_TOKEN));
    expect(hotfix.code).toBe(0);
    // An unprotected branch takes force pushes.
    expect((await git(dir, ['push', '--force', 'origin', 'HEAD:topic'], auth('gitlab', GL_TOKEN))).code).toBe(0);
    const del = await git(dir, ['push', 'origin', ':release/1'], auth('gitlab', GL_TOKEN));
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain('GitLab: You can only delete protected branches using the web interface.');
    const delDefault = await git(dir, ['push', 'origin', ':main'], auth('gitlab', GL_TOKEN));
    expect(delDefault.stderr).toContain('GitLab: The default branch of a project cannot be deleted.');
    // A whole GitLab push is refused when one ref is: `topic2` did not land either.
    const mixed = await git(
      dir,
      ['push', '--force', 'origin', 'HEAD:refs/heads/topic2', 'HEAD:release/1'],
      auth('gitlab', GL_TOKEN),
    );
    expect(mixed.code).not.toBe(0);
    expect((await remoteRefs('gitlab', 'acme/platform/api', GL_TOKEN)).has('refs/heads/topic2')).toBe(false);
  });

  it('GitLab: a developer cannot push to a branch only maintainers may push to', async () => {
    const dir = await clone('gitlab', 'acme/platform/api', GL_DEV, []);
    await commit(dir, { 'dev.txt': 'd\n' });
    const r = await git(dir, ['push', 'origin', 'HEAD:main'], auth('gitlab', GL_DEV, 'dave'));
    expect(r.stderr).toContain('GitLab: You are not allowed to push code to protected branches on this project.');
    expect(
      (await git(dir, ['push', 'origin', 'HEAD:refs/heads/dave-topic'], auth('gitlab', GL_DEV, 'dave'))).code,
    ).toBe(0);
  });

  it('refuses pushes with read-only tokens (403) and reads without the right scope', async () => {
    const dir = await clone('gitlab', 'acme/platform/api', GL_READ);
    await commit(dir, { 'x.txt': 'x\n' });
    const gl = await git(dir, ['push', 'origin', 'HEAD:refs/heads/ro'], auth('gitlab', GL_READ));
    expect(gl.code).not.toBe(0);
    expect(gl.stderr).toContain('remote: You are not allowed to upload code.');
    expect(gl.stderr).toContain('403');

    const open = await clone('github', 'acme/open', GH_READONLY);
    await commit(open, { 'x.txt': 'x\n' });
    const gh = await git(open, ['push', 'origin', 'HEAD:refs/heads/ro'], auth('github', GH_READONLY));
    expect(gh.stderr).toContain('remote: Permission to acme/open.git denied to alice.');
    expect(gh.stderr).toContain('403');
    // Without `repo`, a private repo does not exist for the token.
    const priv = await git(tmp.path, ['ls-remote', repoUrl('github', 'acme/widgets')], auth('github', GH_READONLY));
    expect(priv.stderr).toContain('remote: Repository not found.');
    // A user outside the org sees nothing either.
    const bob = await git(tmp.path, ['ls-remote', repoUrl('github', 'acme/widgets')], auth('github', GH_BOB));
    expect(bob.stderr).toContain('Repository not found.');

    const status = await fetch(`${repoUrl('gitlab', 'acme/platform/api')}/info/refs?service=git-receive-pack`, {
      headers: { authorization: `Basic ${Buffer.from(`oauth2:${GL_READ}`).toString('base64')}` },
    });
    expect(status.status).toBe(403);
  });

  it('refuses anonymous access to private repos the way each platform does; public ones are readable', async () => {
    const gh = await fetch(`${repoUrl('github', 'acme/widgets')}/info/refs?service=git-upload-pack`);
    expect(gh.status).toBe(401);
    expect(gh.headers.get('www-authenticate')).toBe('Basic realm="GitHub"');
    const gl = await fetch(`${repoUrl('gitlab', 'acme/platform/api')}/info/refs?service=git-upload-pack`);
    expect(gl.status).toBe(401);
    expect(gl.headers.get('www-authenticate')).toBe('Basic realm="GitLab"');
    const unknown = await fetch(`${repoUrl('github', 'acme/nope')}/info/refs?service=git-upload-pack`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${GH_TOKEN}`).toString('base64')}` },
    });
    expect(unknown.status).toBe(404);

    const r = await git(tmp.path, ['ls-remote', repoUrl('github', 'acme/widgets')]);
    expect(r.code).not.toBe(0);
    const pub = await git(tmp.path, [
      'clone',
      '-q',
      repoUrl('gitlab', 'acme/public-docs'),
      join(tmp.path, 'anon-docs'),
    ]);
    expect(pub.code).toBe(0);
    const ghPub = await git(tmp.path, ['clone', '-q', repoUrl('github', 'acme/open'), join(tmp.path, 'anon-open')]);
    expect(ghPub.code).toBe(0);
    // Anonymous pushes are asked for credentials.
    await commit(join(tmp.path, 'anon-open'), { 'y.txt': 'y\n' });
    const push = await git(join(tmp.path, 'anon-open'), ['push', 'origin', 'HEAD:refs/heads/anon']);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/could not read Username|Authentication failed/);
  });

  it('refuses pushes to archived repos', async () => {
    const dir = await clone('github', 'acme/frozen', GH_TOKEN);
    await commit(dir, { 'z.txt': 'z\n' });
    const r = await git(dir, ['push', 'origin', 'HEAD:main'], auth('github', GH_TOKEN));
    expect(r.stderr).toContain('This repository was archived so it is read-only.');
  });
});

describe('scale and concurrency of the transport', () => {
  it('pushes 2,000 refs in one push and lists them', async () => {
    const dir = await clone('github', 'acme/many', GH_TOKEN);
    const head = await ok(dir, ['rev-parse', 'HEAD']);
    const lines = Array.from(
      { length: 2000 },
      (_, i) => `create refs/heads/bulk/b${String(i).padStart(4, '0')} ${head}\n`,
    ).join('');
    const r = await execa('git', ['update-ref', '--stdin'], { cwd: dir, input: lines });
    expect(r.exitCode).toBe(0);
    const push = await git(
      dir,
      ['push', '-q', 'origin', 'refs/heads/bulk/*:refs/heads/bulk/*'],
      auth('github', GH_TOKEN),
    );
    expect(push.code).toBe(0);
    const refs = await remoteRefs('github', 'acme/many', GH_TOKEN);
    expect([...refs.keys()].filter((k) => k.startsWith('refs/heads/bulk/'))).toHaveLength(2000);
    expect(forge.state.pushLog.at(-1)!.updates).toHaveLength(2000);
    // Protocol v2 ref prefixes: a fetch of one branch still works among 2,000.
    const one = await git(
      tmp.path,
      ['ls-remote', repoUrl('github', 'acme/many'), 'refs/heads/bulk/b1999'],
      auth('github', GH_TOKEN),
    );
    expect(one.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('lands 8 concurrent pushes to different branches; of two racing on one branch exactly one wins', async () => {
    const dir = await clone('github', 'acme/race', GH_TOKEN);
    const base = await ok(dir, ['rev-parse', 'HEAD']);
    const shas: string[] = [];
    for (let i = 0; i < 10; i++) {
      await ok(dir, ['checkout', '-q', '--detach', base]);
      shas.push(await commit(dir, { [`file-${i}.txt`]: `${i}\n` }, `commit ${i}`));
    }
    const url = repoUrl('github', 'acme/race');
    const parallel = await Promise.all(
      shas
        .slice(0, 8)
        .map((sha, i) => git(dir, ['push', url, `${sha}:refs/heads/parallel-${i}`], auth('github', GH_TOKEN))),
    );
    expect(parallel.map((p) => p.code)).toEqual(Array(8).fill(0));
    const refs = await remoteRefs('github', 'acme/race', GH_TOKEN);
    shas.slice(0, 8).forEach((sha, i) => expect(refs.get(`refs/heads/parallel-${i}`)).toBe(sha));

    const racers = [shas[8]!, shas[9]!];
    const race = await Promise.all(
      racers.map((sha) => git(dir, ['push', url, `${sha}:refs/heads/main`], auth('github', GH_TOKEN))),
    );
    const winners = race.map((r, i) => (r.code === 0 ? racers[i] : undefined)).filter((x) => x !== undefined);
    expect(winners).toHaveLength(1);
    const loser = race.find((r) => r.code !== 0)!;
    expect(loser.stderr).toMatch(/rejected|failed to update ref|cannot lock ref|fetch first/);
    expect((await remoteRefs('github', 'acme/race', GH_TOKEN)).get('refs/heads/main')).toBe(winners[0]);
  });
});

describe('secrets stay secret', () => {
  it('never writes a token value into the request log, the push log or the admin state', async () => {
    const state = await (await fetch(`${forge.urls.github.web}/_forge/state?refs=1`)).text();
    const logs = JSON.stringify([forge.state.requestLog, forge.state.pushLog]) + state;
    expect(forge.state.requestLog.filter((e) => e.kind === 'git').length).toBeGreaterThan(20);
    for (const token of ALL_TOKENS) {
      expect(logs).not.toContain(token);
      expect(logs).not.toContain(Buffer.from(`x-access-token:${token}`).toString('base64'));
      expect(logs).not.toContain(Buffer.from(`oauth2:${token}`).toString('base64'));
    }
  });
});
