import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ZERO,
  pushPayload as githubPushPayload,
  runAction as runActionStep,
  type ActionRun,
} from '../support/action-runner.js';
import { filesContaining } from '../support/forge-git.js';
import { commitFiles, git } from '../support/git.js';
import { startMirrorWorld, type MirrorWorld } from '../support/mirror-world.js';

// The bundled Action (dist/index.js) run the way the GitHub runner runs it: Node 24, inputs as
// INPUT_<NAME> (hyphens kept), the event payload in a file, outputs and the job summary written to
// the files the runner hands over, from a depth-1 checkout of a repo with long history. GitHub and
// GitLab are the test forge; the tokens the Action gets are canaries that must never surface (the
// test's own git uses other tokens, so any canary found anywhere came from the Action).

const GH_CANARY = 'ghp_canaryACTIONgithub00000000000000000001';
const GL_CANARY = 'glpat-canaryACTIONgitlab000000001';
const CANARY_FORMS = [
  GH_CANARY,
  GL_CANARY,
  Buffer.from(`x-access-token:${GH_CANARY}`).toString('base64'),
  Buffer.from(`oauth2:${GL_CANARY}`).toString('base64'),
];
const HISTORY = 300;

let world: MirrorWorld;
/** A full clone of the GitHub repo where the test makes the pushes the Action then mirrors. */
let dev: string;
let runs = 0;

beforeAll(async () => {
  world = await startMirrorWorld({
    prefix: 'refbridge-action-e2e-',
    github: { files: { 'README.md': '# app\n' }, history: HISTORY },
    githubUsers: ['mirror-bot'],
    gitlab: { path: 'acme/mirror/app' },
    gitlabGroups: [{ path: 'acme/mirror' }],
    canaries: [
      { value: GH_CANARY, platform: 'github', user: 'alice', scopes: ['repo'] },
      { value: GL_CANARY, platform: 'gitlab', user: 'carol', scopes: ['write_repository'] },
    ],
  });
  dev = join(world.root, 'dev');
  await world.ghGit(world.root, ['clone', '-q', world.ghUrl, dev]);
}, 120_000);

afterAll(() => world?.close());

// ---- the runner ---------------------------------------------------------------------------

interface RunOptions {
  event: 'push' | 'delete';
  payload: Record<string, unknown>;
  workspace: string;
  inputs?: Record<string, string>;
  actor?: string;
}

/** One step of the Action with the workflow's inputs (ci-templates/github-mirror.yml) plus `o.inputs`. */
async function runAction(o: RunOptions): Promise<ActionRun> {
  return runActionStep({
    runnerDir: join(world.root, `runner-${++runs}`),
    event: o.event,
    payload: o.payload,
    workspace: o.workspace,
    inputs: {
      'gitlab-url': world.forge.urls.gitlab.web,
      'gitlab-repo': 'acme/mirror/app',
      'gitlab-token': GL_CANARY,
      'github-token': GH_CANARY,
      'bot-user': 'mirror-bot',
      'skip-ci': 'false',
      deletions: 'propagate',
      force: 'false',
      'dry-run': 'false',
      ...o.inputs,
    },
    repository: 'acme/app',
    serverUrl: world.forge.urls.github.web,
    apiUrl: world.forge.urls.github.api,
    actor: o.actor ?? 'alice',
    pathPrefix: [world.argv.binDir],
  });
}

/**
 * The runner masks what `::add-mask::` names, but our code must not print tokens in the first
 * place: the only lines allowed to carry one are those commands themselves. Files: none.
 */
async function expectNoCanary(run: ActionRun): Promise<void> {
  for (const form of CANARY_FORMS) {
    const printed = `${run.stdout}\n${run.stderr}`.split('\n').filter((l) => l.includes(form));
    expect(printed.filter((l) => l !== `::add-mask::${form}`)).toEqual([]);
    expect(run.summary).not.toContain(form);
    expect(Object.values(run.outputs).join('\n')).not.toContain(form);
    for (const dir of run.dirs) expect(await filesContaining(dir, form)).toEqual([]);
  }
  // the raw tokens were masked (the runner can only hide what it was told about)
  expect(run.stdout).toContain(`::add-mask::${GH_CANARY}`);
  expect(run.stdout).toContain(`::add-mask::${GL_CANARY}`);
  // and no git command line ever carried one
  const commands = await readFile(world.argv.log, 'utf8');
  expect(commands).toMatch(/^git /m);
  for (const form of CANARY_FORMS) expect(commands).not.toContain(form);
}

// ---- the checkout and the forge -----------------------------------------------------------

/** What actions/checkout does with `fetch-depth: 1` and `persist-credentials: false`. */
async function checkout(ref: string): Promise<string> {
  const dir = join(world.root, `ws-${++runs}`);
  await mkdir(dir);
  const local = ref.startsWith('refs/tags/') ? ref : ref.replace('refs/heads/', 'refs/remotes/origin/');
  await git(dir, ['init', '-q']);
  await git(dir, ['remote', 'add', 'origin', world.ghUrl]);
  await world.ghGit(dir, ['fetch', '-q', '--no-tags', '--depth=1', 'origin', `+${ref}:${local}`]);
  await git(dir, ['checkout', '-q', '--detach', local]);
  expect(await git(dir, ['rev-parse', '--is-shallow-repository'])).toBe('true');
  return dir;
}

/** A push to acme/app by alice, as GitHub sends its event. */
function pushPayload(ref: string, before: string, after: string): Record<string, unknown> {
  return githubPushPayload({
    ref,
    before,
    after,
    repository: 'acme/app',
    serverUrl: world.forge.urls.github.web,
    pusher: 'alice',
  });
}

interface LoggedPush {
  repo: string;
  bytesReceived: number;
  accepted: boolean;
  pushOptions: string[];
  updates: { ref: string; old: string; new: string }[];
}

async function resetLogs(): Promise<void> {
  await world.admin('requests/reset', 'POST');
  await world.admin('pushes/reset', 'POST');
}

/** Pushes a new commit on `branch` of the GitHub repo (from the dev clone) and returns [before, after]. */
async function pushToGithub(branch: string, files: Record<string, string>): Promise<[string, string]> {
  const before = await git(dev, ['rev-parse', 'HEAD']);
  const after = await commitFiles(dev, files, `change ${files ? Object.keys(files).join(' ') : ''}`);
  await world.ghGit(dev, ['push', '-q', 'origin', `HEAD:refs/heads/${branch}`]);
  return [before, after];
}

/** Size of the pack holding exactly the objects `after` adds to `before`. */
async function packSize(cwd: string, revs: string): Promise<number> {
  const r = await execa('git', ['pack-objects', '--revs', '--stdout'], { cwd, input: revs, encoding: 'buffer' });
  return r.stdout.length;
}

// ---- the scenarios ------------------------------------------------------------------------

describe('the Action under the runner (node24 dist/index.js)', () => {
  let main0: string;

  it('seeds an empty GitLab project with the full history on the first push', async () => {
    const [before, after] = await pushToGithub('main', { 'first.txt': 'first\n' });
    main0 = after;
    const ws = await checkout('refs/heads/main');
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/main', before, after),
      workspace: ws,
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'created', 'target-sha': after });
    expect((await world.lsRemote('gitlab'))['refs/heads/main']).toBe(after);
    // the target got everything: a clone of it has all HISTORY + 2 commits and is complete
    const gl = join(world.root, 'gl-first');
    await world.glGit(world.root, ['clone', '-q', '--bare', world.glUrl, gl]);
    expect(await git(gl, ['rev-list', '--count', 'refs/heads/main'])).toBe(String(HISTORY + 2));
    expect(await git(gl, ['fsck', '--connectivity-only', '--no-dangling'])).toBe('');
    expect(run.summary).toContain('<td>refs/heads/main</td>');
    expect(run.summary).toContain(`<td>${after.slice(0, 12)}</td>`);
    expect(run.summary).toContain('<td>created</td>');
    expect(run.summary).toMatch(/<th>ref<\/th><th>before<\/th><th>after<\/th><th>action<\/th><th>time<\/th>/);
    await expectNoCanary(run);
  });

  it('does nothing, and receives no push, when GitLab already has the tip', async () => {
    const ws = await checkout('refs/heads/main');
    const before = await git(dev, ['rev-parse', 'HEAD~1']);
    await resetLogs();
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/main', before, main0),
      workspace: ws,
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'up-to-date', 'target-sha': main0 });
    expect((await world.gitRoutes('gitlab')).filter((r) => r.includes('receive-pack'))).toEqual([]);
    // nor any fetch from GitHub: the checkout had all it needed
    expect((await world.gitRoutes('github')).filter((r) => r === 'POST git-upload-pack')).toEqual([]);
    expect(run.summary).toContain('<td>up-to-date</td>');
    await expectNoCanary(run);
  });

  it('fast-forwards one commit, sending about that commit and not the repository', async () => {
    const [before, after] = await pushToGithub('main', {
      'notes/ff.txt': Array.from({ length: 200 }, (_, i) => `line ${i} of the fast-forward commit`).join('\n'),
    });
    const ws = await checkout('refs/heads/main');
    await resetLogs();
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/main', before, after),
      workspace: ws,
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'pushed', 'target-sha': after });
    expect((await world.lsRemote('gitlab'))['refs/heads/main']).toBe(after);

    const pushes = await world.admin<LoggedPush[]>('pushes?platform=gitlab');
    expect(pushes).toHaveLength(1);
    expect(pushes[0]).toMatchObject({
      repo: 'acme/mirror/app',
      accepted: true,
      updates: [{ ref: 'refs/heads/main', old: before, new: after }],
    });
    const commitPack = await packSize(dev, `${after}\n^${before}\n`);
    const repoPack = await packSize(dev, `${after}\n`);
    const sent = pushes[0]!.bytesReceived;
    // the request also carries the ref update line and capabilities: a few hundred bytes
    expect(sent).toBeLessThan(2 * commitPack + 1024);
    expect(sent).toBeGreaterThan(commitPack / 2);
    expect(sent * 10).toBeLessThan(repoPack);
    expect(pushes[0]!.pushOptions).toEqual([]);
    await expectNoCanary(run);
  });

  it('creates a new branch with one new commit, connecting it to what GitLab has', async () => {
    await git(dev, ['checkout', '-q', '-b', 'feature']);
    const [, after] = await pushToGithub('feature', { 'feature.txt': 'feature work\n' });
    const ws = await checkout('refs/heads/feature');
    await resetLogs();
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/feature', ZERO, after),
      workspace: ws,
      inputs: { 'skip-ci': 'true' },
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'created', 'target-sha': after });
    expect((await world.lsRemote('gitlab'))['refs/heads/feature']).toBe(after);
    const pushes = await world.admin<LoggedPush[]>('pushes?platform=gitlab');
    expect(pushes).toHaveLength(1);
    expect(pushes[0]!.pushOptions).toEqual(['ci.skip']);
    const parent = await git(dev, ['rev-parse', `${after}~1`]);
    expect(pushes[0]!.bytesReceived).toBeLessThan(2 * (await packSize(dev, `${after}\n^${parent}\n`)) + 1024);
    await git(dev, ['checkout', '-q', 'main']);
    await expectNoCanary(run);
  });

  it('mirrors an annotated tag as an annotated tag (after = the tag object, as GitHub sends it)', async () => {
    await git(dev, ['tag', '-a', 'v1.0.0', '-m', 'Release 1.0.0', 'HEAD']);
    const tagObject = await git(dev, ['rev-parse', 'refs/tags/v1.0.0']);
    const commit = await git(dev, ['rev-parse', 'refs/tags/v1.0.0^{commit}']);
    expect(tagObject).not.toBe(commit);
    await world.ghGit(dev, ['push', '-q', 'origin', 'refs/tags/v1.0.0']);
    const ws = await checkout('refs/tags/v1.0.0');
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/tags/v1.0.0', ZERO, tagObject),
      workspace: ws,
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'created', 'target-sha': tagObject });
    const gl = await world.lsRemote('gitlab');
    expect(gl['refs/tags/v1.0.0']).toBe(tagObject);
    expect(gl['refs/tags/v1.0.0^{}']).toBe(commit);
    await expectNoCanary(run);
  });

  it('keeps an annotated tag annotated when the event names its commit', async () => {
    await git(dev, ['tag', '-a', 'v1.0.1', '-m', 'Release 1.0.1', 'HEAD~1']);
    const tagObject = await git(dev, ['rev-parse', 'refs/tags/v1.0.1']);
    const commit = await git(dev, ['rev-parse', 'refs/tags/v1.0.1^{commit}']);
    await world.ghGit(dev, ['push', '-q', 'origin', 'refs/tags/v1.0.1']);
    // the checkout has no tag ref at all: the source's tag says it is annotated
    const ws = await checkout('refs/heads/main');
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/tags/v1.0.1', ZERO, commit),
      workspace: ws,
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'created', 'target-sha': tagObject });
    const gl = await world.lsRemote('gitlab');
    expect(gl['refs/tags/v1.0.1']).toBe(tagObject);
    expect(gl['refs/tags/v1.0.1^{}']).toBe(commit);
    await expectNoCanary(run);
  });

  it('mirrors a lightweight tag on an older commit', async () => {
    const old = await git(dev, ['rev-parse', 'HEAD~3']);
    await git(dev, ['tag', 'light', old]);
    await world.ghGit(dev, ['push', '-q', 'origin', 'refs/tags/light']);
    const ws = await checkout('refs/tags/light');
    const run = await runAction({ event: 'push', payload: pushPayload('refs/tags/light', ZERO, old), workspace: ws });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'created', 'target-sha': old });
    const gl = await world.lsRemote('gitlab');
    expect(gl['refs/tags/light']).toBe(old);
    expect(gl['refs/tags/light^{}']).toBeUndefined();
    await expectNoCanary(run);
  });

  it('deletes a branch on a push event with deleted: true', async () => {
    const tip = (await world.lsRemote('github'))['refs/heads/feature']!;
    await world.ghGit(dev, ['push', '-q', 'origin', ':refs/heads/feature']);
    const ws = await checkout('refs/heads/main');
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/feature', tip, ZERO),
      workspace: ws,
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'deleted', 'target-sha': '' });
    expect((await world.lsRemote('gitlab'))['refs/heads/feature']).toBeUndefined();
    expect(run.summary).toContain('<td>deleted</td>');
    await expectNoCanary(run);
  });

  it('deletes a branch on a delete event (ref and ref_type only)', async () => {
    const tip = await git(dev, ['rev-parse', 'HEAD']);
    await world.ghGit(dev, ['push', '-q', world.ghUrl, `${tip}:refs/heads/topic`]);
    await world.glGit(dev, ['push', '-q', world.glUrl, `${tip}:refs/heads/topic`]);
    await world.ghGit(dev, ['push', '-q', world.ghUrl, ':refs/heads/topic']);
    const ws = await checkout('refs/heads/main');
    const run = await runAction({
      event: 'delete',
      payload: { ref: 'topic', ref_type: 'branch', pusher_type: 'user', sender: { login: 'alice' } },
      workspace: ws,
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'deleted', 'target-sha': '' });
    expect((await world.lsRemote('gitlab'))['refs/heads/topic']).toBeUndefined();
    await expectNoCanary(run);
  });

  it('skips a push made by the mirror bot without touching either side', async () => {
    const [before, after] = await pushToGithub('main', { 'bot.txt': 'from GitLab\n' });
    const ws = await checkout('refs/heads/main');
    await resetLogs();
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/main', before, after),
      workspace: ws,
      actor: 'mirror-bot',
    });
    expect(run.code).toBe(0);
    expect(run.outputs).toEqual({ result: 'skipped', 'target-sha': '' });
    expect(await world.gitRoutes('gitlab')).toEqual([]);
    expect(await world.gitRoutes('github')).toEqual([]);
    expect((await world.lsRemote('gitlab'))['refs/heads/main']).toBe(before);
    expect(run.summary).toContain('skipped');
    await expectNoCanary(run);
  });

  it('plans without pushing in a dry run', async () => {
    const before = (await world.lsRemote('gitlab'))['refs/heads/main']!;
    const after = await git(dev, ['rev-parse', 'HEAD']);
    const ws = await checkout('refs/heads/main');
    await resetLogs();
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/main', before, after),
      workspace: ws,
      inputs: { 'dry-run': 'true' },
    });
    expect(run.code).toBe(0);
    expect(run.outputs['result']).toBe('pushed');
    expect(run.summary).toContain('(dry run)');
    expect((await world.gitRoutes('gitlab')).filter((r) => r.includes('receive-pack'))).toEqual([]);
    expect((await world.lsRemote('gitlab'))['refs/heads/main']).toBe(before);
    await expectNoCanary(run);
  });

  it('fails the step on a diverged target and overwrites nothing', async () => {
    // someone pushed straight to GitLab's main...
    const gl = join(world.root, 'gl-work');
    await world.glGit(world.root, ['clone', '-q', world.glUrl, gl]);
    const theirs = await commitFiles(gl, { 'gitlab-only.txt': 'made on GitLab\n' }, 'GitLab-only change');
    await world.glGit(gl, ['push', '-q', 'origin', 'HEAD:refs/heads/main']);
    // ...while GitHub's main moved elsewhere
    const [before, after] = await pushToGithub('main', { 'github-only.txt': 'made on GitHub\n' });
    const ws = await checkout('refs/heads/main');
    const run = await runAction({
      event: 'push',
      payload: pushPayload('refs/heads/main', before, after),
      workspace: ws,
    });
    expect(run.code).toBe(1);
    expect(run.outputs).toEqual({ result: 'diverged', 'target-sha': theirs });
    expect(run.stdout).toMatch(/^::error::refbridge: refs\/heads\/main has diverged/m);
    expect(run.stdout).toContain('refbridge sync');
    expect((await world.lsRemote('gitlab'))['refs/heads/main']).toBe(theirs);
    expect(run.summary).toContain('<td>diverged</td>');
    await expectNoCanary(run);
  });
});
