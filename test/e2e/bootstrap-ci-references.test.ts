import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as actionValidator from '@action-validator/core';
import { NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startForge, type RunningForge } from '../forge/src/server.js';
import { runCli, type CliRun } from '../support/cli.js';
import { logMark, requestsSince, writesIn } from '../support/forge-log.js';
import { git } from '../support/git.js';
import { tempDir } from '../support/temp.js';

// `refbridge bootstrap` with bootstrap.github.action and bootstrap.gitlab.include set: the
// committed files carry the configured references on both sides, a second run writes nothing,
// and changing the settings updates the files in place (one include entry, never two).

const GH_ADMIN = 'ghp_canaryREFSadminGH000000000000000000001';
const GH_MIRROR = 'ghp_canaryREFSmirrorGH00000000000000000003';
const GL_ADMIN = 'glpat-canaryREFSadminGL0000000004';
const GL_MIRROR = 'glpat-canaryREFSmirrorGL000000005';
const WORKFLOW = '.github/workflows/refbridge-mirror.yml';
const SHA = '0123456789abcdef0123456789abcdef01234567';
const USER_CI = 'stages: [build]\nbuild:\n  stage: build\n  script: [make]\n';

let forge: RunningForge;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let env: Record<string, string>;

beforeAll(async () => {
  tmp = await tempDir('refbridge-bootstrap-refs-e2e-');
  forge = await startForge({
    seed: {
      github: {
        users: ['alice', 'ghbot'],
        orgs: [{ login: 'acme', members: ['alice'] }],
        repos: [
          { owner: 'acme', name: 'app', private: true, files: { 'README.md': '# app\n', '.gitlab-ci.yml': USER_CI } },
        ],
      },
      gitlab: {
        users: ['carol', 'glbot'],
        groups: [{ path: 'acme', members: { carol: 50 } }],
        projects: [],
      },
      tokens: [
        { value: GH_ADMIN, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
        { value: GH_MIRROR, platform: 'github', user: 'ghbot', scopes: ['repo', 'workflow'] },
        { value: GL_ADMIN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
        { value: GL_MIRROR, platform: 'gitlab', user: 'glbot', scopes: ['write_repository'] },
      ],
    },
  });
  env = {
    GITHUB_TOKEN: GH_ADMIN,
    GITLAB_TOKEN: GL_ADMIN,
    REFBRIDGE_MIRROR_GITHUB_TOKEN: GH_MIRROR,
    REFBRIDGE_MIRROR_GITLAB_TOKEN: GL_MIRROR,
    HOME: tmp.path,
    PATH: process.env['PATH'] ?? '',
    REFBRIDGE_GITHUB_WRITE_INTERVAL_MS: '0',
  };
}, 120_000);

afterAll(async () => {
  await forge?.close();
  await tmp?.cleanup();
});

async function bootstrap(settings: Record<string, unknown>): Promise<CliRun> {
  const config = {
    github: { url: forge.urls.github.web, apiUrl: forge.urls.github.api },
    gitlab: { url: forge.urls.gitlab.web },
    bootstrap: settings,
    pairs: [{ name: 'app', github: 'acme/app', gitlab: 'acme/app' }],
  };
  const file = join(tmp.path, 'refbridge.yaml');
  await writeFile(file, JSON.stringify(config, null, 2));
  return runCli(['bootstrap', '--config', file], env, tmp.path);
}

const writesSince = async (seq: number): Promise<string[]> => writesIn(await requestsSince(forge, seq));

const gitDirs = () => ({
  github: forge.state.githubRepo('acme', 'app')!.gitDir,
  gitlab: forge.state.gitlabProject('acme/app')!.gitDir,
});
const gitIn = (dir: string, args: string[]) => git(dir, ['--git-dir', dir, ...args]);

/** The CI files at main on both sides, which must be the same commit. */
async function committedFiles(): Promise<{ workflow: string; gitlabCi: string }> {
  const dirs = gitDirs();
  const tips = await Promise.all([dirs.github, dirs.gitlab].map((d) => gitIn(d, ['rev-parse', 'refs/heads/main'])));
  expect(tips[0]).toBe(tips[1]);
  const files = [];
  for (const dir of [dirs.github, dirs.gitlab]) {
    files.push({
      workflow: await gitIn(dir, ['show', `main:${WORKFLOW}`]),
      gitlabCi: await gitIn(dir, ['show', 'main:.gitlab-ci.yml']),
    });
  }
  expect(files[1]).toEqual(files[0]);
  return files[0]!;
}

function mirrorStepUses(workflow: string): string | undefined {
  const trace = new NoOperationTraceWriter();
  expect(parseWorkflow({ name: 'refbridge-mirror.yml', content: workflow }, trace).context.errors.getErrors()).toEqual(
    [],
  );
  expect(actionValidator.validateWorkflow(workflow).errors).toEqual([]);
  const doc = parse(workflow) as { jobs: { mirror: { steps: { uses?: string }[] } } };
  return doc.jobs.mirror.steps[1]?.uses;
}

describe('bootstrap with configured CI references', () => {
  it('commits the configured Action and project include on both sides; a second run writes nothing', async () => {
    const settings = {
      github: { action: `mirror-org/refbridge@${SHA}` },
      gitlab: { include: { project: 'tools/refbridge', ref: 'v0.1.0', file: 'templates/mirror.yml' } },
    };
    const first = await bootstrap(settings);
    expect({ code: first.code, out: first.code === 0 ? '' : first.stderr + first.stdout }).toEqual({
      code: 0,
      out: '',
    });
    const files = await committedFiles();
    expect(mirrorStepUses(files.workflow)).toBe(`mirror-org/refbridge@${SHA}`);
    const ci = parse(files.gitlabCi) as Record<string, unknown>;
    expect(ci['include']).toEqual([{ project: 'tools/refbridge', ref: 'v0.1.0', file: 'templates/mirror.yml' }]);
    expect(ci['build']).toEqual({ stage: 'build', script: ['make'] });

    const since = await logMark(forge);
    const second = await bootstrap(settings);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/already set up/);
    expect(await writesSince(since)).toEqual([]);
  });

  it('changing the settings updates both files in place, then writes nothing again', async () => {
    const settings = {
      github: { action: 'mirror-org/refbridge/mirror@v2' },
      gitlab: { include: { component: '$CI_SERVER_FQDN/tools/refbridge/mirror@0.2.0' } },
    };
    const before = await gitIn(gitDirs().github, ['rev-parse', 'refs/heads/main']);
    const r = await bootstrap(settings);
    expect({ code: r.code, out: r.code === 0 ? '' : r.stderr + r.stdout }).toEqual({ code: 0, out: '' });
    const files = await committedFiles();
    // One commit on top of the previous tip, both files changed.
    const tip = await gitIn(gitDirs().github, ['rev-parse', 'refs/heads/main']);
    expect(await gitIn(gitDirs().github, ['rev-parse', `${tip}^`])).toBe(before);
    expect(mirrorStepUses(files.workflow)).toBe('mirror-org/refbridge/mirror@v2');
    const ci = parse(files.gitlabCi) as Record<string, unknown>;
    expect(ci['include']).toEqual([{ component: '$CI_SERVER_FQDN/tools/refbridge/mirror@0.2.0' }]);
    expect(ci['build']).toEqual({ stage: 'build', script: ['make'] });

    const since = await logMark(forge);
    const again = await bootstrap(settings);
    expect(again.code).toBe(0);
    expect(await writesSince(since)).toEqual([]);
  });
});
