import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ZERO, pushPayload, runAction } from '../support/action-runner.js';
import { runCli } from '../support/cli.js';
import { filesContaining } from '../support/forge-git.js';
import { commitFiles, git } from '../support/git.js';
import { jobPath, npmJobEnv, packCli, runGitlabCiLocal, type GitlabCiLocalRun } from '../support/gitlab-ci-local.js';
import { startMirrorWorld, type MirrorWorld } from '../support/mirror-world.js';
import { repoRoot } from '../support/paths.js';

// The GitLab CI/CD component (templates/mirror.yml) run by gitlab-ci-local with the shell executor,
// from a clone of the forge's GitLab project, included exactly as a user writes it:
//   include:
//     - component: $CI_SERVER_FQDN/acme/app/mirror@<sha>
// gitlab-ci-local treats that as a local component (the project path matches `origin` and the ref
// is HEAD) and reads templates/ from the working tree, so the project carries this repo's
// template. The first job installs the CLI from `npm pack` tarballs through npm; later jobs find
// it on PATH, as on an air-gapped instance whose image ships refbridge.

const GH_JOB_CANARY = 'ghp_canaryCOMPONENTjob000000000000000001';
const GH_ACTION_CANARY = 'ghp_canaryCOMPONENTaction0000000000002';
const GL_ACTION_CANARY = 'glpat-canaryCOMPONENTaction00003';
const CANARIES = [GH_JOB_CANARY, GH_ACTION_CANARY, GL_ACTION_CANARY];
const CANARY_FORMS = CANARIES.flatMap((t) => [
  t,
  Buffer.from(`x-access-token:${t}`).toString('base64'),
  Buffer.from(`oauth2:${t}`).toString('base64'),
]);
const JOB = 'refbridge-mirror';

let world: MirrorWorld;
/** The GitLab project's clone where the pipeline runs. */
let project: string;
let tarballs: string[];
let baseEnv: Record<string, string>;
/** node_modules/.bin of the CLI the first job installed. */
let installedBin: string | undefined;
const outputs: string[] = [];

beforeAll(async () => {
  const content = { files: { 'README.md': '# app\n' }, history: 20 };
  world = await startMirrorWorld({
    prefix: 'refbridge-component-e2e-',
    github: content,
    // same seed, same commits: the pair starts in sync
    gitlab: { path: 'acme/app', visibility: 'private', ...content },
    canaries: [
      { value: GH_JOB_CANARY, platform: 'github', user: 'alice', scopes: ['repo'] },
      { value: GH_ACTION_CANARY, platform: 'github', user: 'alice', scopes: ['repo'] },
      { value: GL_ACTION_CANARY, platform: 'gitlab', user: 'carol', scopes: ['write_repository'] },
    ],
  });

  tarballs = await packCli(join(world.root, 'packs'));
  project = join(world.root, 'project');
  await world.glGit(world.root, ['clone', '-q', world.glUrl, project]);
  // gitlab-ci-local derives GITLAB_USER_LOGIN from the committer e-mail
  await git(project, ['config', 'user.email', 'carol@example.com']);
  await git(project, ['config', 'user.name', 'Carol']);
  await mkdir(join(project, 'templates'));
  await copyFile(join(repoRoot, 'templates', 'mirror.yml'), join(project, 'templates', 'mirror.yml'));

  await mkdir(join(world.root, 'home'));
  await mkdir(join(world.root, 'job-tmp'));
  baseEnv = { HOME: join(world.root, 'home'), TMPDIR: join(world.root, 'job-tmp'), ...(await npmJobEnv()) };
}, 180_000);

afterAll(() => world?.close());

// ---- helpers ------------------------------------------------------------------------------

/** The project's .gitlab-ci.yml: the component at the commit being built, as a user writes it. */
async function writeGitlabCi(): Promise<string> {
  const head = await git(project, ['rev-parse', 'HEAD']);
  await writeFile(
    join(project, '.gitlab-ci.yml'),
    [
      'include:',
      `  - component: $CI_SERVER_FQDN/acme/app/mirror@${head}`,
      '    inputs:',
      `      refbridge-package: ${tarballs.join(' ')}`,
      '',
    ].join('\n'),
  );
  return head;
}

/** One pipeline for HEAD with the project's CI/CD variables, as GitLab would start it for a push. */
async function runPipeline(
  variables: Record<string, string>,
  unset: string[] = [],
  args: string[] = [],
): Promise<GitlabCiLocalRun> {
  await writeGitlabCi();
  const run = await runGitlabCiLocal({
    cwd: project,
    jobs: [JOB],
    variables: {
      GITHUB_URL: world.forge.urls.github.web,
      GITHUB_REPO: 'acme/app',
      GITHUB_TOKEN: GH_JOB_CANARY,
      ...variables,
    },
    unset,
    args,
    env: { ...baseEnv, PATH: jobPath([world.argv.binDir, ...(installedBin ? [installedBin] : [])]) },
  });
  outputs.push(run.output);
  for (const form of CANARY_FORMS) expect(run.output).not.toContain(form);
  return run;
}

/** A commit on the project's main, pushed to GitLab the way a developer pushes. */
async function pushToGitlab(file: string): Promise<[string, string]> {
  const before = await git(project, ['rev-parse', 'HEAD']);
  const after = await commitFiles(project, { [file]: `${file}\n` }, `Add ${file}`);
  await world.glGit(project, ['push', '-q', 'origin', 'HEAD:refs/heads/main']);
  return [before, after];
}

// ---- the scenarios ------------------------------------------------------------------------

describe('the GitLab component under gitlab-ci-local', () => {
  it('mirrors a GitLab push to GitHub with the CLI installed from the npm pack tarballs', async () => {
    const [before, after] = await pushToGitlab('from-gitlab.txt');
    const run = await runPipeline({ CI_COMMIT_BEFORE_SHA: before });
    expect(run.output).toMatch(/added \d+ packages/);
    expect(run.output).toContain(`refs/heads/main: pushed: fast-forwarded refs/heads/main from ${before.slice(0, 12)}`);
    expect(run.output).toMatch(/PASS\s+refbridge-mirror/);
    expect(run.code).toBe(0);
    expect((await world.lsRemote('github'))['refs/heads/main']).toBe(after);

    const installs = (await readdir(baseEnv['TMPDIR']!)).filter((n) => n.startsWith('refbridge-cli-'));
    expect(installs).toHaveLength(1);
    installedBin = join(baseEnv['TMPDIR']!, installs[0]!, 'node_modules', '.bin');
  });

  it('is a no-op for a push the Action mirrored from GitHub (the bounce ends after one job)', async () => {
    // a push on GitHub, mirrored to GitLab by the Action from a depth-1 checkout
    const dev = join(world.root, 'dev');
    await world.ghGit(world.root, ['clone', '-q', world.ghUrl, dev]);
    const before = await git(dev, ['rev-parse', 'HEAD']);
    const after = await commitFiles(dev, { 'from-github.txt': 'made on GitHub\n' }, 'GitHub change');
    await world.ghGit(dev, ['push', '-q', 'origin', 'HEAD:refs/heads/main']);
    const ws = join(world.root, 'workspace');
    await world.ghGit(world.root, ['clone', '-q', '--depth=1', '--no-tags', world.ghUrl, ws]);
    const action = await runAction({
      runnerDir: join(world.root, 'runner'),
      event: 'push',
      payload: pushPayload({
        ref: 'refs/heads/main',
        before,
        after,
        repository: 'acme/app',
        serverUrl: world.forge.urls.github.web,
        pusher: 'alice',
      }),
      workspace: ws,
      inputs: {
        'gitlab-url': world.forge.urls.gitlab.web,
        'gitlab-repo': 'acme/app',
        'gitlab-token': GL_ACTION_CANARY,
        'github-token': GH_ACTION_CANARY,
        'bot-user': '',
      },
      repository: 'acme/app',
      serverUrl: world.forge.urls.github.web,
      apiUrl: world.forge.urls.github.api,
      actor: 'alice',
      pathPrefix: [world.argv.binDir],
    });
    expect(action.outputs).toEqual({ result: 'pushed', 'target-sha': after });
    expect(action.code).toBe(0);
    outputs.push(action.stdout.replace(/^::add-mask::.*$/gm, ''), action.stderr);

    // GitLab starts the pipeline for that push: HEAD is the mirrored commit
    await world.glGit(project, ['pull', '-q', '--ff-only', 'origin', 'main']);
    expect(await git(project, ['rev-parse', 'HEAD'])).toBe(after);
    await world.admin('requests/reset', 'POST');
    const run = await runPipeline({ CI_COMMIT_BEFORE_SHA: before });
    expect(run.output).toContain(`refs/heads/main: up-to-date: refs/heads/main is already at ${after.slice(0, 12)}`);
    // the CLI came from PATH this time (an image that ships refbridge): no npm install
    expect(run.output).not.toMatch(/added \d+ packages/);
    expect(run.code).toBe(0);
    expect((await world.gitRoutes('github')).filter((r) => r.includes('receive-pack'))).toEqual([]);
  });

  it('mirrors an annotated tag from a tag pipeline (CI_COMMIT_SHA is its commit) as an annotated tag', async () => {
    await git(project, ['tag', '-a', 'v2.0.0', '-m', 'Release 2.0.0']);
    await world.glGit(project, ['push', '-q', 'origin', 'refs/tags/v2.0.0']);
    const tagObject = await git(project, ['rev-parse', 'refs/tags/v2.0.0']);
    const commit = await git(project, ['rev-parse', 'HEAD']);
    // a tag pipeline: no CI_COMMIT_BRANCH, before is all zeros
    const run = await runPipeline(
      { CI_COMMIT_TAG: 'v2.0.0', CI_COMMIT_REF_NAME: 'v2.0.0', CI_COMMIT_BEFORE_SHA: ZERO },
      ['CI_COMMIT_BRANCH'],
      ['--ignore-predefined-vars', 'CI_COMMIT_REF_NAME'],
    );
    expect(run.output).toContain(`refs/tags/v2.0.0: created: created refs/tags/v2.0.0 at ${tagObject.slice(0, 12)}`);
    expect(run.code).toBe(0);
    const gh = await world.lsRemote('github');
    expect(gh['refs/tags/v2.0.0']).toBe(tagObject);
    expect(gh['refs/tags/v2.0.0^{}']).toBe(commit);
  });

  it("skips a push made by the mirror bot and doesn't contact GitHub", async () => {
    const [before] = await pushToGitlab('from-bot.txt');
    const githubMain = (await world.lsRemote('github'))['refs/heads/main'];
    await world.admin('requests/reset', 'POST');
    const run = await runPipeline({
      CI_COMMIT_BEFORE_SHA: before,
      MIRROR_BOT_USER: 'mirror-bot',
      GITLAB_USER_LOGIN: 'mirror-bot',
    });
    expect(run.output).toContain('refbridge: pushed by the mirror bot mirror-bot; not mirroring it back');
    expect(run.code).toBe(0);
    expect(await world.gitRoutes('github')).toEqual([]);
    expect((await world.lsRemote('github'))['refs/heads/main']).toBe(githubMain);
  });

  it('`refbridge mirror` takes flags on any other CI (here: mirroring the bot commit the job skipped)', async () => {
    const head = await git(project, ['rev-parse', 'HEAD']);
    const githubMain = (await world.lsRemote('github'))['refs/heads/main']!;
    const cli = await runCli(
      [
        'mirror',
        '--source-url',
        world.glUrl,
        '--target-url',
        world.ghUrl,
        '--source-token-env',
        'SOURCE_TOKEN',
        '--target-token-env',
        'TARGET_TOKEN',
        '--ref',
        'refs/heads/main',
        '--before',
        githubMain,
        '--after',
        head,
        '--workdir',
        project,
        '--json',
      ],
      {
        PATH: jobPath([world.argv.binDir]),
        HOME: baseEnv['HOME'],
        SOURCE_TOKEN: GL_ACTION_CANARY,
        TARGET_TOKEN: GH_JOB_CANARY,
      },
      project,
    );
    outputs.push(cli.stdout, cli.stderr);
    expect(cli.stderr).not.toMatch(/error/i);
    expect(JSON.parse(cli.stdout)).toMatchObject({
      ci: 'flags',
      result: 'pushed',
      ref: 'refs/heads/main',
      targetAfter: head,
    });
    expect(cli.code).toBe(0);
    expect((await world.lsRemote('github'))['refs/heads/main']).toBe(head);
  });

  it('leaves no token in any output, git command line or file', async () => {
    expect(outputs.length).toBeGreaterThanOrEqual(7);
    const commands = await readFile(world.argv.log, 'utf8');
    expect(commands).toContain('git push');
    for (const form of CANARY_FORMS) {
      for (const out of outputs) expect(out).not.toContain(form);
      expect(commands).not.toContain(form);
      // the project (with gitlab-ci-local's state and the jobs' copies), HOME, TMPDIR (the
      // installed CLI), the Action's runner files and workspace
      expect(await filesContaining(world.root, form)).toEqual([]);
    }
  });
});
