import { execa } from 'execa';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { node24 } from './node24.js';
import { repoRoot } from './paths.js';

/**
 * The GitHub Actions runner, as far as one step of the bundled Action (dist/index.js) sees it:
 * Node 24, inputs as INPUT_<NAME> (spaces to underscores, uppercased, hyphens kept), the event
 * payload in a file, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, RUNNER_TEMP, the GITHUB_*
 * variables, and nothing else from the caller's environment. The e2e tests run the step with
 * `runAction`; the demo prepares it with `prepareActionStep` and runs it through its narrator.
 */

export const ZERO = '0'.repeat(40);

export interface ActionRun {
  code: number;
  stdout: string;
  stderr: string;
  /** What the step wrote to GITHUB_OUTPUT, by name. */
  outputs: Record<string, string>;
  /** The GITHUB_STEP_SUMMARY file's content. */
  summary: string;
  /** Directories the step could write to (runner files, RUNNER_TEMP, HOME, the workspace). */
  dirs: string[];
}

export interface ActionRunOptions {
  /** A fresh directory for this step's runner files. */
  runnerDir: string;
  event: 'push' | 'delete';
  payload: Record<string, unknown>;
  /** GITHUB_WORKSPACE: the checkout. */
  workspace: string;
  /** Every input by its name in action.yml (the runner passes defaults for omitted ones). */
  inputs: Record<string, string>;
  repository: string;
  serverUrl: string;
  apiUrl: string;
  actor: string;
  /** Directories put before the base PATH (e.g. a git argv recorder). */
  pathPrefix?: string[];
  /** PATH, HOME and the like (default: this process's PATH and a HOME in `runnerDir`). */
  baseEnv?: Record<string, string>;
}

/** A step ready to run: `node script` in `cwd` with exactly `env`. */
export interface ActionStep {
  script: string;
  cwd: string;
  env: Record<string, string>;
  /** What the step wrote to GITHUB_OUTPUT and GITHUB_STEP_SUMMARY (read after it ran). */
  results(): Promise<{ outputs: Record<string, string>; summary: string }>;
}

/** A push event's payload as GitHub sends it (the Action reads ref, before, after and deleted). */
export function pushPayload(o: {
  ref: string;
  before: string;
  after: string;
  /** `owner/name` */
  repository: string;
  serverUrl: string;
  pusher: string;
}): Record<string, unknown> {
  const [owner = '', name = ''] = o.repository.split('/');
  return {
    ref: o.ref,
    before: o.before,
    after: o.after,
    created: o.before === ZERO,
    deleted: o.after === ZERO,
    forced: false,
    base_ref: null,
    compare: `${o.serverUrl}/${o.repository}/compare/${o.before.slice(0, 12)}...${o.after.slice(0, 12)}`,
    commits: [],
    head_commit: o.after === ZERO ? null : { id: o.after },
    repository: {
      name,
      full_name: o.repository,
      owner: { login: owner, name: owner },
      private: true,
      default_branch: 'main',
      clone_url: `${o.serverUrl}/${o.repository}.git`,
    },
    pusher: { name: o.pusher },
    sender: { login: o.pusher },
  };
}

/** Writes the runner's files for one step and returns how to start it. */
export async function prepareActionStep(o: ActionRunOptions): Promise<ActionStep> {
  const runnerTemp = join(o.runnerDir, 'temp');
  const home = join(o.runnerDir, 'home');
  await mkdir(runnerTemp, { recursive: true });
  await mkdir(home, { recursive: true });
  const eventPath = join(o.runnerDir, 'event.json');
  const outputPath = join(o.runnerDir, 'output.txt');
  const summaryPath = join(o.runnerDir, 'summary.md');
  await writeFile(eventPath, JSON.stringify(o.payload));
  await writeFile(outputPath, '');
  await writeFile(summaryPath, '');
  const base = o.baseEnv ?? { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home };
  // GITHUB_REF/SHA name what was pushed; a deletion (delete event, or push of all zeros) has no commit.
  const ref = o.event === 'push' && typeof o.payload['ref'] === 'string' ? o.payload['ref'] : '';
  const after = o.event === 'push' && typeof o.payload['after'] === 'string' ? o.payload['after'] : '';
  const sha = after === ZERO ? '' : after;
  const env: Record<string, string> = {
    ...base,
    PATH: [...(o.pathPrefix ?? []), base['PATH'] ?? '/usr/bin:/bin'].join(':'),
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_WORKFLOW: 'refbridge mirror',
    GITHUB_JOB: 'mirror',
    GITHUB_RUN_ID: '4242',
    GITHUB_RUN_NUMBER: '1',
    GITHUB_ACTION: 'refbridge',
    GITHUB_EVENT_NAME: o.event,
    GITHUB_EVENT_PATH: eventPath,
    GITHUB_REPOSITORY: o.repository,
    GITHUB_REPOSITORY_OWNER: o.repository.split('/')[0] ?? '',
    GITHUB_SERVER_URL: o.serverUrl,
    GITHUB_API_URL: o.apiUrl,
    GITHUB_ACTOR: o.actor,
    GITHUB_WORKSPACE: o.workspace,
    GITHUB_OUTPUT: outputPath,
    GITHUB_STEP_SUMMARY: summaryPath,
    GITHUB_SHA: sha,
    GITHUB_REF: ref,
    GITHUB_REF_NAME: ref.replace(/^refs\/(heads|tags)\//, ''),
    GITHUB_REF_TYPE: ref.startsWith('refs/tags/') ? 'tag' : ref ? 'branch' : '',
    RUNNER_TEMP: runnerTemp,
    RUNNER_OS: 'Linux',
  };
  for (const [name, value] of Object.entries(o.inputs)) env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  return {
    script: join(repoRoot, 'dist', 'index.js'),
    cwd: o.workspace,
    env,
    results: async () => ({
      outputs: parseOutputs(await readFile(outputPath, 'utf8')),
      summary: await readFile(summaryPath, 'utf8'),
    }),
  };
}

/** Runs one step of the Action under Node 24 to its end. */
export async function runAction(o: ActionRunOptions): Promise<ActionRun> {
  const step = await prepareActionStep(o);
  const r = await execa(node24(), [step.script], {
    cwd: step.cwd,
    env: step.env,
    extendEnv: false,
    reject: false,
    timeout: 120_000,
  });
  return {
    code: r.exitCode ?? -1,
    stdout: r.stdout,
    stderr: r.stderr,
    ...(await step.results()),
    dirs: [o.runnerDir, o.workspace],
  };
}

/**
 * GITHUB_OUTPUT as the runner reads it: the `name<<delimiter` blocks @actions/core appends, and
 * plain `name=value` lines.
 */
export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const m = /^([^<=]+)<<(.+)$/.exec(line);
    if (!m) {
      if (line.includes('=')) out[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
      continue;
    }
    const end = lines.indexOf(m[2]!, i + 1);
    if (end < 0) throw new Error(`unterminated output ${m[1]} in GITHUB_OUTPUT`);
    out[m[1]!] = lines.slice(i + 1, end).join('\n');
    i = end;
  }
  return out;
}

/**
 * A `git` first on PATH that appends each command line to `log`, then runs the real git: tokens
 * must never be in argv (visible in `ps` and in command echoes), and this sees every git call.
 */
export async function gitArgvRecorder(dir: string): Promise<{ binDir: string; log: string }> {
  const { stdout: realGit } = await execa('sh', ['-c', 'command -v git']);
  const binDir = join(dir, 'git-argv-bin');
  const log = join(dir, 'git-argv.log');
  await mkdir(binDir, { recursive: true });
  await writeFile(log, '');
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  await writeFile(
    join(binDir, 'git'),
    `#!/bin/sh\nprintf '%s\\n' "git $*" >> ${q(log)}\nexec ${q(realGit.trim())} "$@"\n`,
  );
  await chmod(join(binDir, 'git'), 0o755);
  return { binDir, log };
}
