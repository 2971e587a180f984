import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { node24 } from '../support/node24.js';
import { repoRoot } from '../support/paths.js';
import { ArgvSampler, LeakCheck, type SamplerReport } from '../support/reliability-leaks.js';
import {
  CANARY,
  gitIn,
  markPushed,
  runCliChild,
  startWorld,
  writeCommit,
  type ChildRun,
  type World,
} from '../support/reliability-world.js';

/**
 * The canary tokens through every command, verbose and --json, on success and failure paths,
 * and through the GitHub Action as the runner runs it (job summary, outputs, ::error:: lines).
 * Fails if a token appears in stdout, stderr, a job summary, a --json result, any file under the
 * directories refbridge writes (caches, storage, checkouts and their .git/config, HOME), or the
 * argv of any process while the commands run (/proc sampled every few ms). And the positive side:
 * git processes that talk to the forges did carry the credentials, in their environment.
 * (The other reliability tests run the same checks over their own runs: faults, crashes, races,
 * bad input.)
 */

const GL_UNKNOWN = 'glpat-canaryRELIABILITYunknownGL07';
const TOKENS = [CANARY.github, CANARY.gitlab, GL_UNKNOWN];

let world: World;
let sampler: ArgvSampler | undefined;
let report: SamplerReport | undefined;
const leaks = new LeakCheck(TOKENS);
const figures = { runs: 0, actionRuns: 0 };

beforeAll(async () => {
  world = await startWorld({
    prefix: 'refbridge-secrets-',
    pairs: ['s1'],
    seed: {
      githubRepos: [{ owner: 'acme', name: 'action-src', private: true, files: { 'README.md': '# a\n' }, history: 2 }],
      gitlabGroups: [{ path: 'mirrors', members: { carol: 50 } }],
      gitlabProjects: [{ path: 'acme/action-dst' }],
    },
  });
  sampler = new ArgvSampler(TOKENS, 5);
}, 60_000);

afterAll(async () => {
  if (sampler) report = await sampler.stop();
  process.stdout.write(
    `[reliability] secrets ${JSON.stringify({ ...figures, sampler: report && { ...report, hits: report.hits.length } })}\n`,
  );
  await world?.close();
});

async function cli(label: string, args: string[], env: Record<string, string> = {}): Promise<ChildRun> {
  const r = await runCliChild(args, { env: { ...world.env, ...env }, cwd: world.root, timeoutMs: 120_000 });
  figures.runs++;
  leaks.text(`${label} stdout`, r.stdout);
  leaks.text(`${label} stderr`, r.stderr);
  return r;
}

describe('every command, verbose and --json', () => {
  it('sync, backup, bootstrap and mirror succeed without showing a token', async () => {
    const sync = ['sync', '--config', world.configPath, '--cache', join(world.root, 'cache')];
    expect((await cli('sync -v', [...sync, '-v'])).code).toBe(0);
    await writeCommit(world.githubDir('s1'), 'refs/heads/main');
    expect((await cli('sync --json', [...sync, '--json', '-v'])).code).toBe(0);

    const backup = [
      'backup',
      '--owner',
      'acme',
      '--storage',
      join(world.root, 'storage'),
      '--gitlab-namespace',
      'mirrors',
      '--checkout',
      '--progress',
      'plain',
      '-v',
    ];
    expect((await cli('backup -v', backup)).code).toBe(0);
    await writeCommit(world.githubDir('s1'), 'refs/heads/main');
    markPushed(world, 'acme', 's1');
    expect((await cli('backup --json', [...backup, '--json'])).code).toBe(0);

    const boot = join(world.root, 'bootstrap.yaml');
    await writeFile(
      boot,
      JSON.stringify({
        github: { url: world.forge.urls.github.web, apiUrl: world.forge.urls.github.api },
        gitlab: { url: world.forge.urls.gitlab.web },
        pairs: [{ name: 'new', github: 'acme/new', gitlab: 'acme/new' }],
      }),
    );
    expect((await cli('bootstrap -v', ['bootstrap', '--config', boot, '-v'])).code).toBe(0);
    expect((await cli('bootstrap --json', ['bootstrap', '--config', boot, '--json', '-v'])).code).toBe(0);

    const checkout = join(world.root, 'mirror-checkout');
    await execa('git', ['clone', '-q', `file://${world.githubDir('action-src')}`, checkout]);
    const after = await gitIn(world.githubDir('action-src'), ['rev-parse', 'refs/heads/main']);
    const mirror = (extra: string[]): string[] => [
      'mirror',
      '--source-url',
      `${world.forge.urls.github.web}/acme/action-src.git`,
      '--target-url',
      `${world.forge.urls.gitlab.web}/acme/action-dst.git`,
      '--source-token-env',
      'GITHUB_TOKEN',
      '--target-token-env',
      'GITLAB_TOKEN',
      '--ref',
      'refs/heads/main',
      '--after',
      after,
      '--workdir',
      checkout,
      '-v',
      ...extra,
    ];
    expect((await cli('mirror -v', mirror([]))).code).toBe(0);
    expect((await cli('mirror --json', mirror(['--json']))).code).toBe(0);
  });
});

describe('failure paths', () => {
  it('a refused token, verbose: the error names the URL, never the token', async () => {
    const r = await cli(
      'sync 401',
      ['sync', '--config', world.configPath, '--cache', join(world.root, 'cache'), '-v', '--json'],
      { GITLAB_TOKEN: GL_UNKNOWN },
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/acme\/s1\.git/);
    expect(r.stdout).toMatch(/HTTP 401/);
  });

  it('a failing server, verbose: every retry logged, no token', async () => {
    world.forge.faults.set([{ kind: 'both', fault: 'status', status: 503 }]);
    try {
      const sync = await cli('sync 503', [
        'sync',
        '--config',
        world.configPath,
        '--cache',
        join(world.root, 'cache'),
        '-v',
      ]);
      expect(sync.code).toBe(1);
      expect(sync.stderr).toMatch(/retry 1 of 3/);
      const backup = await cli('backup 503', [
        'backup',
        '--owner',
        'acme',
        '--backup-only',
        '--storage',
        join(world.root, 'storage'),
        '--progress',
        'plain',
        '--api-retries',
        '1',
        '--api-retry-wait',
        '5',
        '-v',
        '--json',
      ]);
      expect(backup.code).toBe(1);
      expect(backup.stderr).toMatch(/INCOMPLETE/);
    } finally {
      world.forge.faults.clear();
    }
  });

  it('a token put into a URL is refused, and not repeated in the message', async () => {
    // In-process: the token would otherwise be in this test's own child argv, which is the point.
    const r = await runCli(
      [
        'mirror',
        '--source-url',
        `${world.forge.urls.github.web}/acme/action-src.git`,
        '--target-url',
        `http://oauth2:${CANARY.gitlab}@${new URL(world.forge.urls.gitlab.web).host}/acme/action-dst.git`,
        '--ref',
        'refs/heads/main',
        '--after',
        'a'.repeat(40),
      ],
      world.env,
      world.root,
    );
    leaks.text('mirror with a token in the URL', r.stdout + r.stderr);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/target URL contains a user name or token/);
  });
});

describe('the GitHub Action, as the runner runs it', () => {
  let workspace: string;
  let before: string;

  beforeAll(async () => {
    workspace = join(world.root, 'workspace');
    await execa('git', ['clone', '-q', '--depth', '1', `file://${world.githubDir('action-src')}`, workspace]);
    before = await gitIn(world.githubDir('action-src'), ['rev-parse', 'refs/heads/main']);
  });

  async function action(
    label: string,
    gitlabToken: string,
  ): Promise<{ code: number; stdout: string; summary: string; output: string }> {
    const after = await writeCommit(world.githubDir('action-src'), 'refs/heads/main');
    await execa('git', ['fetch', '-q', '--depth', '1', 'origin', after], { cwd: workspace });
    const event = join(world.root, `event-${label}.json`);
    await writeFile(
      event,
      JSON.stringify({ ref: 'refs/heads/main', before, after, repository: { full_name: 'acme/action-src' } }),
    );
    const summary = join(world.root, `summary-${label}.md`);
    const output = join(world.root, `output-${label}.txt`);
    await writeFile(summary, '');
    await writeFile(output, '');
    const r = await execa(node24(), [join(repoRoot, 'dist', 'index.js')], {
      reject: false,
      cwd: workspace,
      extendEnv: false,
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: world.root,
        GITHUB_ACTIONS: 'true',
        GITHUB_EVENT_NAME: 'push',
        GITHUB_EVENT_PATH: event,
        GITHUB_REPOSITORY: 'acme/action-src',
        GITHUB_SERVER_URL: world.forge.urls.github.web,
        GITHUB_API_URL: world.forge.urls.github.api,
        GITHUB_WORKSPACE: workspace,
        GITHUB_SHA: after,
        GITHUB_REF: 'refs/heads/main',
        GITHUB_ACTOR: 'alice',
        GITHUB_STEP_SUMMARY: summary,
        GITHUB_OUTPUT: output,
        'INPUT_GITLAB-URL': world.forge.urls.gitlab.web,
        'INPUT_GITLAB-REPO': 'acme/action-dst',
        'INPUT_GITLAB-TOKEN': gitlabToken,
        'INPUT_GITHUB-TOKEN': CANARY.github,
        'INPUT_SKIP-CI': 'false',
        INPUT_DELETIONS: 'propagate',
        INPUT_FORCE: 'false',
        'INPUT_DRY-RUN': 'false',
        'INPUT_BOT-USER': '',
      },
    });
    figures.actionRuns++;
    before = after;
    const result = {
      code: r.exitCode ?? -1,
      stdout: `${r.stdout}\n${r.stderr}`,
      summary: await readFile(summary, 'utf8'),
      output: await readFile(output, 'utf8'),
    };
    leaks.text(`action ${label} log`, result.stdout);
    leaks.text(`action ${label} job summary`, result.summary);
    leaks.text(`action ${label} outputs`, result.output);
    return result;
  }

  it('success: log, job summary and outputs carry no token; the tokens are registered as masks', async () => {
    const r = await action('ok', CANARY.gitlab);
    expect(r.code).toBe(0);
    expect(r.summary).toMatch(/refbridge mirror/);
    expect(r.output).toMatch(/result/);
    // The runner's masking protocol is the one place a token may be written: it hides them.
    expect(r.stdout).toContain(`::add-mask::${CANARY.gitlab}`);
    expect(r.stdout).toContain(`::add-mask::${CANARY.github}`);
  });

  it('failure paths: a refused token and a failing server end in ::error:: without the token', async () => {
    const refused = await action('401', GL_UNKNOWN);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/::error::/);
    world.forge.faults.set([{ platform: 'gitlab', kind: 'git', fault: 'status', status: 503 }]);
    try {
      const failing = await action('503', CANARY.gitlab);
      expect(failing.code).toBe(1);
      expect(failing.stdout).toMatch(/::error::.*503/s);
    } finally {
      world.forge.faults.clear();
    }
  });
});

describe('the checks themselves (controls)', () => {
  it('do see a token in argv, in base64 Basic form in text, and in a file', async () => {
    const control = 'ghp_controlCANARY0000000000000000000000009';
    const check = new LeakCheck([control]);
    const watcher = new ArgvSampler([control], 2);
    // A short-lived process with the token in its argv (what a token in a URL would cause).
    await execa('sh', ['-c', 'sleep 0.3', control]);
    const seen = await watcher.stop();
    check.sampler(seen, 'control');
    check.text('control text', `Authorization: Basic ${Buffer.from(`x-access-token:${control}`).toString('base64')}`);
    const file = join(world.root, 'control', 'config');
    await execa('mkdir', ['-p', join(world.root, 'control')]);
    await writeFile(file, `[http]\n\textraheader = AUTHORIZATION: bearer ${control}\n`);
    await check.tree(join(world.root, 'control'));
    await execa('rm', ['-rf', join(world.root, 'control')]);
    expect(seen.hits.length).toBeGreaterThan(0);
    expect(check.leaks.map((l) => l.where)).toEqual([
      expect.stringMatching(/control: argv of pid \d+/),
      'control text',
      file,
    ]);
  });
});

describe('what was left behind', () => {
  it('no token in any file, .git/config included, nor in any process argv; git got it through its environment', async () => {
    await leaks.tree(world.root);
    report = await sampler!.stop();
    sampler = undefined;
    leaks.sampler(report, 'secrets');
    expect(leaks.describe()).toBeUndefined();
    expect(report.gitNetworkProcesses).toBeGreaterThan(0);
    expect(report.gitNetworkWithEnvCredentials).toBeGreaterThan(0);
    expect(leaks.filesChecked).toBeGreaterThan(50);
  });
});
