import { execa } from 'execa';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { node24 } from './node24.js';
import { repoRoot } from './paths.js';

// Runs the bundled Action (dist/index.js) the way the GitHub runner runs one step: Node 24, inputs
// as INPUT_<NAME> (spaces to underscores, uppercased, hyphens kept), the event payload in a file,
// GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, RUNNER_TEMP, and nothing else from this process.

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
  /** Directories put before the system PATH (e.g. a git argv recorder). */
  pathPrefix?: string[];
}

export async function runAction(o: ActionRunOptions): Promise<ActionRun> {
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
  const ref = typeof o.payload['ref'] === 'string' ? o.payload['ref'] : '';
  const env: Record<string, string> = {
    PATH: [...(o.pathPrefix ?? []), process.env['PATH'] ?? '/usr/bin:/bin'].join(':'),
    HOME: home,
    CI: 'true',
    GITHUB_ACTIONS: 'true',
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
    GITHUB_REF: o.event === 'push' ? ref : '',
    GITHUB_WORKFLOW: 'refbridge mirror',
    GITHUB_RUN_ID: '4242',
    RUNNER_TEMP: runnerTemp,
    RUNNER_OS: 'Linux',
  };
  for (const [name, value] of Object.entries(o.inputs)) env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  const r = await execa(node24(), [join(repoRoot, 'dist', 'index.js')], {
    cwd: o.workspace,
    env,
    extendEnv: false,
    reject: false,
    timeout: 120_000,
  });
  return {
    code: r.exitCode ?? -1,
    stdout: r.stdout,
    stderr: r.stderr,
    outputs: parseOutputs(await readFile(outputPath, 'utf8')),
    summary: await readFile(summaryPath, 'utf8'),
    dirs: [o.runnerDir, o.workspace],
  };
}

/** The `name<<delimiter` blocks @actions/core appends to GITHUB_OUTPUT. */
export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^([^<=]+)<<(.+)$/.exec(lines[i] ?? '');
    if (!m) continue;
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
