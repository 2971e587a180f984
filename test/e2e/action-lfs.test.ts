import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startForge, type RunningForge } from '../forge/src/server.js';
import { pushPayload, runAction as runActionStep, type ActionRun } from '../support/action-runner.js';
import { forgeGit } from '../support/forge-git.js';
import { git } from '../support/git.js';
import { tempDir } from '../support/temp.js';

// The bundled Action (dist/index.js) under the runner's conditions (see action.test.ts) with a
// push whose .gitattributes tracks *.bin with Git LFS. The .gitattributes and the pointer file
// are written by hand with fast-import, so no git-lfs binary is needed; the checkout skips
// smudging as actions/checkout does with `lfs: false`.

const GH_TOKEN = 'ghp_canaryLFSgithub0000000000000000000001';
const GL_TOKEN = 'glpat-canaryLFSgitlab00000000001';
const TRACK = '*.bin filter=lfs diff=lfs merge=lfs -text\n';
const POINTER =
  'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 104857600\n';

let forge: RunningForge;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let ghGit: ReturnType<typeof forgeGit>;
let glGit: ReturnType<typeof forgeGit>;
let dev: string;
let ghUrl: string;
let glUrl: string;
let runs = 0;

beforeAll(async () => {
  tmp = await tempDir('refbridge-action-lfs-');
  forge = await startForge({
    seed: {
      github: {
        users: ['alice'],
        orgs: [{ login: 'acme', members: ['alice'] }],
        repos: [{ owner: 'acme', name: 'media', private: true, files: { 'README.md': '# media\n' }, history: 3 }],
      },
      gitlab: {
        users: ['carol'],
        groups: [{ path: 'acme', members: { carol: 50 } }],
        projects: [{ path: 'acme/media' }],
      },
      tokens: [
        { value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo'] },
        { value: GL_TOKEN, platform: 'gitlab', user: 'carol', scopes: ['api', 'write_repository'] },
      ],
    },
  });
  ghGit = forgeGit(forge.urls.github.web, GH_TOKEN);
  glGit = forgeGit(forge.urls.gitlab.web, GL_TOKEN, 'oauth2');
  ghUrl = `${forge.urls.github.web}/acme/media.git`;
  glUrl = `${forge.urls.gitlab.web}/acme/media.git`;
  dev = join(tmp.path, 'dev');
  await ghGit(tmp.path, ['clone', '-q', '--bare', ghUrl, dev]);
}, 120_000);

afterAll(async () => {
  await forge?.close();
  await tmp?.cleanup();
});

async function runAction(ref: string, before: string, after: string, inputs: Record<string, string> = {}) {
  const workspace = await checkout(ref);
  return runActionStep({
    runnerDir: join(tmp.path, `runner-${++runs}`),
    event: 'push',
    payload: pushPayload({
      ref,
      before,
      after,
      repository: 'acme/media',
      serverUrl: forge.urls.github.web,
      pusher: 'alice',
    }),
    workspace,
    inputs: {
      'gitlab-url': forge.urls.gitlab.web,
      'gitlab-repo': 'acme/media',
      'gitlab-token': GL_TOKEN,
      'github-token': GH_TOKEN,
      'bot-user': '',
      'skip-ci': 'false',
      deletions: 'propagate',
      force: 'false',
      'dry-run': 'false',
      ...inputs,
    },
    repository: 'acme/media',
    serverUrl: forge.urls.github.web,
    apiUrl: forge.urls.github.api,
    actor: 'alice',
  });
}

/** actions/checkout with `fetch-depth: 1`, `persist-credentials: false` and `lfs: false`. */
async function checkout(ref: string): Promise<string> {
  const dir = join(tmp.path, `ws-${++runs}`);
  await mkdir(dir);
  const local = ref.replace('refs/heads/', 'refs/remotes/origin/');
  await git(dir, ['init', '-q']);
  await ghGit(dir, ['fetch', '-q', '--no-tags', '--depth=1', ghUrl, `+${ref}:${local}`]);
  await git(dir, ['checkout', '-q', '--detach', local], { GIT_LFS_SKIP_SMUDGE: '1' });
  return dir;
}

/** A commit on GitHub's `branch` adding `files` (fast-import: no clean filter runs). */
async function pushCommit(branch: string, files: Record<string, string>): Promise<[string, string]> {
  const before = await git(dev, ['rev-parse', `refs/heads/${branch}`]);
  let stream = `commit refs/heads/${branch}\ncommitter Test <test@example.com> 1700000000 +0000\ndata 7\nchange\nfrom ${before}\n`;
  for (const [path, content] of Object.entries(files)) {
    stream += `M 644 inline ${path}\ndata ${Buffer.byteLength(content)}\n${content}\n`;
  }
  await execa('git', ['fast-import', '--quiet'], { cwd: dev, input: stream });
  const after = await git(dev, ['rev-parse', `refs/heads/${branch}`]);
  await ghGit(dev, ['push', '-q', ghUrl, `refs/heads/${branch}:refs/heads/${branch}`]);
  return [before, after];
}

async function gitlabMain(): Promise<string | undefined> {
  const out = await glGit(tmp.path, ['ls-remote', glUrl, 'refs/heads/main']);
  return out.split('\t')[0] || undefined;
}

async function receivePacks(): Promise<number> {
  const res = await fetch(`${forge.urls.github.web}/_forge/requests?kind=git&platform=gitlab`);
  const requests = (await res.json()) as { route: string }[];
  return requests.filter((r) => r.route.includes('receive-pack')).length;
}

function errors(run: ActionRun): string {
  return run.stdout
    .split('\n')
    .filter((l) => l.startsWith('::error::'))
    .join('\n');
}

function expectNoToken(run: ActionRun): void {
  for (const token of [GH_TOKEN, GL_TOKEN]) {
    const lines = `${run.stdout}\n${run.stderr}`.split('\n').filter((l) => l.includes(token));
    expect(lines.filter((l) => l !== `::add-mask::${token}`)).toEqual([]);
  }
}

describe('the Action and Git LFS', () => {
  let base: string;
  let lfsTip: string;

  it('mirrors a repository without LFS as before', async () => {
    const [before, after] = await pushCommit('main', { '.gitattributes': '*.sh text eol=lf\n', 'run.sh': 'echo\n' });
    const run = await runAction('refs/heads/main', before, after);
    expect(errors(run)).toBe('');
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'created', 'target-sha': after });
    expect(run.stdout).not.toMatch(/^::warning::/m);
    base = after;
  });

  it('by default fails the step, names the ref and .gitattributes, says what to do, and pushes nothing', async () => {
    [, lfsTip] = await pushCommit('main', { '.gitattributes': TRACK, 'assets/big.bin': POINTER });
    const pushesBefore = await receivePacks();
    const run = await runAction('refs/heads/main', base, lfsTip);
    expect(run.code).toBe(1);
    const error = errors(run);
    expect(error).toContain(`refs/heads/main of ${ghUrl} stores files with Git LFS`);
    expect(error).toContain('.gitattributes line 1 ("*.bin filter=lfs diff=lfs merge=lfs -text")');
    expect(error).toContain('refbridge copies git objects only, not LFS objects');
    expect(error).toContain('refs/heads/main was not pushed');
    expect(error).toContain(`git lfs fetch --all ${ghUrl} && git lfs push --all ${glUrl}`);
    expect(error).toContain('lfs: pointers');
    expect(await gitlabMain()).toBe(base);
    expect(await receivePacks()).toBe(pushesBefore);
    expectNoToken(run);
  });

  it('refuses an unknown lfs input before doing anything', async () => {
    const run = await runAction('refs/heads/main', base, lfsTip, { lfs: 'skip' });
    expect(run.code).toBe(1);
    expect(errors(run)).toContain('lfs: must be fail or pointers, got "skip"');
    expect(await gitlabMain()).toBe(base);
  });

  it('with lfs: pointers mirrors the git data, pointer included, with a warning naming the ref', async () => {
    const run = await runAction('refs/heads/main', base, lfsTip, { lfs: 'pointers' });
    expect(errors(run)).toBe('');
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'pushed', 'target-sha': lfsTip });
    const warnings = run.stdout.split('\n').filter((l) => l.startsWith('::warning::'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('refs/heads/main: stores files with Git LFS (.gitattributes line 1');
    expect(warnings[0]).toContain('lfs: pointers');
    expect(await gitlabMain()).toBe(lfsTip);
    const clone = join(tmp.path, 'gl-clone');
    await glGit(tmp.path, ['clone', '-q', '--bare', glUrl, clone]);
    expect(await git(clone, ['cat-file', '-p', `${lfsTip}:assets/big.bin`])).toBe(POINTER.trim());
    expectNoToken(run);
  });
});
