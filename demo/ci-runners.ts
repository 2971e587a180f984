import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { credentialEnv } from '@refbridge/core';
import type { RunningForge } from '../test/forge/src/server.js';
import { prepareActionStep, pushPayload } from '../test/support/action-runner.js';
import { DemoFailure, type Narrator } from './narrator.js';

/**
 * Plays the two CI systems the way they run refbridge for real, so the demo exercises what users
 * install: GitHub's runner running the bundled Action (dist/index.js, Node 24, INPUT_* and
 * GITHUB_* environment, the event payload file: test/support/action-runner.ts, which the e2e tests
 * use too; a depth-1 checkout without persisted credentials), and GitLab's runner running the job of the CI/CD component (templates/mirror.yml,
 * its inputs at their defaults, the project's CI/CD variables, a shallow checkout).
 *
 * What the runners take from the platforms, they take from the forge: the workflow file is the
 * one bootstrap committed, `vars.*` are the repository's Actions variables, `secrets.*` the
 * sealed secret as the forge decrypts it (GitHub does the same inside the runner).
 */

export interface CiWorld {
  forge: RunningForge;
  narrator: Narrator;
  repoRoot: string;
  /** Scratch space for checkouts, event files and outputs. */
  work: string;
  /** PATH and HOME for every process (never the caller's own tokens). */
  baseEnv: Record<string, string>;
  gitEnv: Record<string, string>;
}

export interface PushEvent {
  /** GitHub `owner/name` or GitLab project path. */
  repo: string;
  actor: string;
  branch: string;
  before: string;
  after: string;
}

async function git(
  world: CiWorld,
  cwd: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<string> {
  const r = await world.narrator.run('git', args, {
    cwd,
    env: { ...world.baseEnv, ...world.gitEnv, ...extraEnv },
    quiet: true,
  });
  return r.stdout.trim();
}

/** `git show <rev>:<path>` in a forge bare repo: what the platform itself would read. */
async function showFile(world: CiWorld, gitDir: string, rev: string, path: string): Promise<string> {
  return git(world, world.work, ['--git-dir', gitDir, 'show', `${rev}:${path}`]);
}

/** A fresh checkout of one commit, as the runners make it: init, fetch just that commit, check out. */
async function checkout(
  world: CiWorld,
  dir: string,
  url: string,
  credential: { url: string; username: string; token: string },
  sha: string,
  branch: string,
  depth: number,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(world, dir, ['init', '-q', '-b', branch]);
  await git(world, dir, ['remote', 'add', 'origin', url]);
  await git(
    world,
    dir,
    ['fetch', '-q', '--no-tags', `--depth=${depth}`, 'origin', `+${sha}:refs/remotes/origin/${branch}`],
    credentialEnv([credential]),
  );
  await git(world, dir, ['checkout', '-q', '--force', '-B', branch, `refs/remotes/origin/${branch}`]);
}

/** GitHub Actions expressions the mirror workflow uses: vars.X, secrets.X, github.token. */
function evaluate(value: string, ctx: { vars: Map<string, string>; secrets: Record<string, string>; token: string }) {
  return value.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_m, expr: string) => {
    const v = /^vars\.(\w+)$/.exec(expr);
    if (v) return ctx.vars.get(v[1]!) ?? '';
    const s = /^secrets\.(\w+)$/.exec(expr);
    if (s) return ctx.secrets[s[1]!] ?? '';
    if (expr === 'github.token') return ctx.token;
    throw new DemoFailure(`the demo's runner does not know the expression \${{ ${expr} }}`);
  });
}

interface WorkflowStep {
  uses?: string;
  with?: Record<string, string>;
}

/**
 * GitHub's side: the push event reaches the workflow bootstrap committed; its job runs unless the
 * pusher is the mirror bot; the refbridge step runs `node dist/index.js` under Node 24.
 */
export async function runGithubAction(
  world: CiWorld,
  event: PushEvent,
  options: { node: string; runnerToken: string },
): Promise<{ ran: boolean; result?: string; targetSha?: string }> {
  const { forge, narrator } = world;
  const [owner = '', name = ''] = event.repo.split('/');
  const repo = forge.state.githubRepo(owner, name);
  if (!repo) throw new DemoFailure(`no GitHub repository ${event.repo}`);
  const workflowText = await showFile(world, repo.gitDir, event.after, '.github/workflows/refbridge-mirror.yml');
  const workflow = parse(workflowText) as { jobs: Record<string, { if?: string; steps: WorkflowStep[] }> };
  const job = workflow.jobs['mirror'];
  if (!job) throw new DemoFailure('the mirror workflow has no `mirror` job');
  const vars = new Map([...repo.variables.values()].map((v) => [v.name, v.value]));

  // The job's `if:` keeps pushes made by the mirror bot from bouncing back.
  const bot = vars.get('MIRROR_BOT_USER') ?? '';
  if (!(job.if ?? '').includes('github.actor != vars.MIRROR_BOT_USER'))
    throw new DemoFailure(`the demo's runner does not understand the job's if: ${job.if}`);
  if (bot !== '' && event.actor === bot) {
    narrator.say(`GitHub: the workflow's \`if:\` skips the mirror job: ${bot} made this push (no bounce).`);
    return { ran: false };
  }

  const step = job.steps.find((s) => s.uses?.startsWith('refbridge/refbridge@'));
  if (!step) throw new DemoFailure('the mirror workflow has no refbridge step');
  const secrets = (await (
    await fetch(`${forge.urls.github.web}/_forge/secrets/github/${event.repo}`)
  ).json()) as Record<string, string>;
  narrator.checkText(JSON.stringify(vars), 'repository variables');
  const ctx = { vars, secrets, token: options.runnerToken };

  // Inputs: the action's defaults, then the step's `with:`, as the runner passes them (INPUT_<NAME>).
  const actionYml = parse(await readFile(join(world.repoRoot, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string }>;
  };
  const inputs: Record<string, string> = {};
  for (const [key, spec] of Object.entries(actionYml.inputs)) inputs[key] = evaluate(String(spec.default ?? ''), ctx);
  for (const [key, value] of Object.entries(step.with ?? {})) inputs[key] = evaluate(String(value), ctx);

  const runnerDir = join(world.work, `gh-run-${randomUUID().slice(0, 8)}`);
  const workspace = join(runnerDir, 'work', name, name);
  await checkout(
    world,
    workspace,
    `${forge.urls.github.web}/${event.repo}.git`,
    { url: forge.urls.github.web, username: 'x-access-token', token: options.runnerToken },
    event.after,
    event.branch,
    1,
  );
  const actionStep = await prepareActionStep({
    runnerDir,
    event: 'push',
    payload: pushPayload({
      ref: `refs/heads/${event.branch}`,
      before: event.before,
      after: event.after,
      repository: event.repo,
      serverUrl: forge.urls.github.web,
      pusher: event.actor,
    }),
    workspace,
    inputs,
    repository: event.repo,
    serverUrl: forge.urls.github.web,
    apiUrl: forge.urls.github.api,
    actor: event.actor,
    baseEnv: world.baseEnv,
  });

  narrator.say(
    `GitHub runs the workflow bootstrap committed: a depth-1 checkout of ${event.after.slice(0, 7)}, then the`,
    "refbridge step; the runner fills its inputs from the repository's variables and secret:",
    ...Object.entries(step.with ?? {}).map(([k, v]) => `  ${k}: ${v}`),
  );
  narrator.label(
    `GitHub Actions step ${step.uses} (node dist/index.js, Node ${await nodeMajor(world, options.node)}):`,
  );
  await narrator.run(options.node, [actionStep.script], {
    cwd: actionStep.cwd,
    env: actionStep.env,
    hide: (l) => /^::(add-mask|debug|endgroup)::/.test(l) || /^::(save-state|set-output)/.test(l),
    tokenAllowed: (l) => l.startsWith('::add-mask::'),
    render: (l) => l.replace(/^::(error|warning|notice)(?: [^:]*)?::/, (_m, k: string) => `${capital(k)}: `),
  });
  const { outputs, summary } = await actionStep.results();
  narrator.checkText(summary, 'the job summary');
  return { ran: true, ...pick(outputs, 'result', 'result'), ...pick(outputs, 'target-sha', 'targetSha') };
}

function pick<K extends string>(o: Record<string, string>, from: string, to: K): Partial<Record<K, string>> {
  const v = o[from];
  return v === undefined ? {} : ({ [to]: v } as Partial<Record<K, string>>);
}

const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

async function nodeMajor(world: CiWorld, node: string): Promise<string> {
  const r = await world.narrator.run(node, ['--version'], { cwd: world.work, env: world.baseEnv, quiet: true });
  return r.stdout.trim().replace(/^v/, '').split('.')[0] ?? '?';
}

/**
 * GitLab's side: the pipeline of the push runs the job the component defines (its script, from
 * templates/mirror.yml, with the inputs at their defaults), in a shallow checkout, with the
 * project's CI/CD variables and GitLab's predefined ones. `refbridge` is on the PATH (the
 * component uses it when present instead of installing the published package).
 */
export async function runGitlabJob(
  world: CiWorld,
  event: PushEvent,
  options: { shimDir: string; jobToken: string },
): Promise<{ code: number; stdout: string }> {
  const { forge, narrator } = world;
  const project = forge.state.gitlabProject(event.repo);
  if (!project) throw new DemoFailure(`no GitLab project ${event.repo}`);
  const ciFile = await showFile(world, project.gitDir, event.after, '.gitlab-ci.yml');
  if (!/component: .*refbridge\/refbridge\/mirror@/.test(ciFile))
    throw new DemoFailure(`${event.repo}'s .gitlab-ci.yml does not include the refbridge component`);

  const [specDoc, jobDoc] = parseAllDocuments(await readFile(join(world.repoRoot, 'templates', 'mirror.yml'), 'utf8'));
  const spec = (specDoc?.toJS() as { spec: { inputs: Record<string, { default?: string | boolean | number }> } }).spec;
  const jobText = String(jobDoc ?? '').replace(/\$\[\[\s*inputs\.([\w-]+)\s*\]\]/g, (_m, key: string) => {
    const input = spec.inputs[key];
    if (!input) throw new DemoFailure(`the component uses an undeclared input ${key}`);
    return String(input.default ?? '');
  });
  const jobs = parse(jobText) as Record<string, { variables?: Record<string, string>; script: string[] }>;
  const [jobName, job] = Object.entries(jobs)[0] ?? [];
  if (!jobName || !job) throw new DemoFailure('the component defines no job');

  const ciVariables: Record<string, string> = Object.fromEntries(project.variables.map((v) => [v.key, v.value]));
  const buildsDir = join(world.work, `gl-job-${randomUUID().slice(0, 8)}`, 'builds', event.repo);
  const predefined: Record<string, string> = {
    CI: 'true',
    GITLAB_CI: 'true',
    CI_SERVER_URL: forge.urls.gitlab.web,
    CI_SERVER_FQDN: new URL(forge.urls.gitlab.web).host,
    CI_PROJECT_PATH: event.repo,
    CI_PROJECT_DIR: buildsDir,
    CI_DEFAULT_BRANCH: 'main',
    CI_PIPELINE_SOURCE: 'push',
    CI_COMMIT_SHA: event.after,
    CI_COMMIT_BEFORE_SHA: event.before,
    CI_COMMIT_BRANCH: event.branch,
    CI_COMMIT_REF_NAME: event.branch,
    CI_JOB_ID: '1',
    CI_JOB_NAME: jobName,
    CI_JOB_TOKEN: options.jobToken,
    GITLAB_USER_LOGIN: event.actor,
  };
  // Job variables may reference CI/CD variables ($GITHUB_URL); GitLab expands them.
  const expand = (v: string): string =>
    v.replace(/\$\{?([A-Za-z_]\w*)\}?/g, (_m, k: string) => ciVariables[k] ?? predefined[k] ?? '');
  const jobVariables = Object.fromEntries(Object.entries(job.variables ?? {}).map(([k, v]) => [k, expand(String(v))]));

  await checkout(
    world,
    buildsDir,
    `${forge.urls.gitlab.web}/${event.repo}.git`,
    { url: forge.urls.gitlab.web, username: 'gitlab-ci-token', token: options.jobToken },
    event.after,
    event.branch,
    20,
  );
  narrator.label(
    `GitLab CI job ${jobName} (the component's script from templates/mirror.yml; it runs refbridge mirror):`,
  );
  return narrator.run('sh', ['-c', job.script.join('\n')], {
    cwd: buildsDir,
    env: {
      ...world.baseEnv,
      PATH: `${options.shimDir}:${world.baseEnv['PATH'] ?? ''}`,
      ...ciVariables,
      ...predefined,
      ...jobVariables,
    },
  });
}

/** A `refbridge` on the PATH that runs this checkout's build, as an installed CLI would. */
export async function writeCliShim(dir: string, node: string, bin: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'refbridge');
  await writeFile(path, `#!/bin/sh\nexec '${node}' '${bin}' "$@"\n`);
  await chmod(path, 0o755);
}
