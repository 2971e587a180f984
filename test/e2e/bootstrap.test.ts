import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startForge, type RunningForge } from '../forge/src/server.js';
import { runCli, type CliRun } from '../support/cli.js';
import { filesContaining } from '../support/forge-git.js';
import { adminGet, logMark, requestsSince, writesIn } from '../support/forge-log.js';
import { git } from '../support/git.js';
import { repoRoot } from '../support/paths.js';
import { tempDir } from '../support/temp.js';

// `refbridge bootstrap` end to end: the real CLI in-process, the real adapters (Octokit and
// gitbeaker), real git, against the test forge. The forge's request and push logs are the
// witnesses for "nothing was written". (The whole loop — the Action from dist/ mirroring a push
// and the GitLab job mirroring back — is covered by the mirror e2e tests.)

const GH_ADMIN = 'ghp_canaryBOOTadminGH000000000000000000001';
const GH_NO_WORKFLOW = 'ghp_canaryBOOTnoWorkflow0000000000000002';
const GH_MIRROR = 'ghp_canaryBOOTmirrorGH00000000000000000003';
const GL_ADMIN = 'glpat-canaryBOOTadminGL0000000004';
const GL_MIRROR = 'glpat-canaryBOOTmirrorGL000000005';
const GL_MIRROR_NEW = 'glpat-canaryBOOTmirrorGLnew00006';
const GL_READ_ONLY = 'glpat-canaryBOOTreadOnly00000007';
const CANARIES = [GH_ADMIN, GH_NO_WORKFLOW, GH_MIRROR, GL_ADMIN, GL_MIRROR, GL_MIRROR_NEW, GL_READ_ONLY];

const WORKFLOW = '.github/workflows/refbridge-mirror.yml';
const USER_CI = `# Our pipeline: keep the deploy job and this comment.
stages: [build, deploy]   # two stages

build:
  stage: build
  script:
  - make   # the real build

deploy:
  stage: deploy
  script: [./deploy.sh]
`;

let forge: RunningForge;
let tmp: Awaited<ReturnType<typeof tempDir>>;
let baseEnv: Record<string, string>;
const outputs: string[] = [];
let workflowTemplate: string;

beforeAll(async () => {
  tmp = await tempDir('refbridge-bootstrap-e2e-');
  workflowTemplate = await readFile(join(repoRoot, 'ci-templates', 'github-mirror.yml'), 'utf8');
  forge = await startForge({
    seed: {
      github: {
        users: ['alice', 'ghbot'],
        orgs: [{ login: 'acme', members: ['alice'] }],
        repos: [
          { owner: 'acme', name: 'app', private: true, files: { 'README.md': '# app\n', '.gitlab-ci.yml': USER_CI } },
          { owner: 'acme', name: 'lib', private: true, files: { 'README.md': '# lib\n' } },
          { owner: 'acme', name: 'ahead', private: true, files: { 'README.md': '# ahead\n' } },
          { owner: 'acme', name: 'split', private: true, files: { 'a.txt': 'a\n' } },
        ],
      },
      gitlab: {
        users: ['carol', 'glbot'],
        groups: [
          { path: 'acme', members: { carol: 50 } },
          { path: 'locked', members: { carol: 30 } },
        ],
        projects: [
          { path: 'acme/app', files: { 'README.md': '# app\n', '.gitlab-ci.yml': USER_CI } },
          { path: 'acme/ahead', files: { 'README.md': '# ahead\n' }, history: 2 },
          { path: 'acme/split', files: { 'b.txt': 'b\n' } },
        ],
      },
      tokens: [
        { value: GH_ADMIN, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
        { value: GH_NO_WORKFLOW, platform: 'github', user: 'alice', scopes: ['repo'] },
        { value: GH_MIRROR, platform: 'github', user: 'ghbot', scopes: ['repo', 'workflow'] },
        { value: GL_ADMIN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
        { value: GL_MIRROR, platform: 'gitlab', user: 'glbot', scopes: ['write_repository'] },
        { value: GL_MIRROR_NEW, platform: 'gitlab', user: 'glbot', scopes: ['write_repository'] },
        { value: GL_READ_ONLY, platform: 'gitlab', user: 'glbot', scopes: ['read_repository'] },
      ],
    },
  });
  const config = {
    github: { url: forge.urls.github.web, apiUrl: forge.urls.github.api },
    gitlab: { url: forge.urls.gitlab.web },
    bootstrap: { gitlab: { protectVariables: true } },
    pairs: [
      { name: 'tool', github: 'alice/tool', gitlab: 'acme/tool' },
      { name: 'app', github: 'acme/app', gitlab: 'acme/app' },
      { name: 'lib', github: 'acme/lib', gitlab: 'acme/platform/tools/lib' },
      { name: 'ahead', github: 'acme/ahead', gitlab: 'acme/ahead' },
      { name: 'split', github: 'acme/split', gitlab: 'acme/split' },
      { name: 'fail', github: 'acme/fail', gitlab: 'locked/sub/fail' },
    ],
  };
  await writeFile(join(tmp.path, 'refbridge.yaml'), JSON.stringify(config, null, 2));
  baseEnv = {
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

async function bootstrap(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const r = await runCli(
    ['bootstrap', '--config', join(tmp.path, 'refbridge.yaml'), ...args],
    { ...baseEnv, ...env },
    tmp.path,
  );
  outputs.push(r.stdout, r.stderr);
  return r;
}

const pushCount = async (): Promise<number> => (await adminGet<unknown[]>(forge, '/pushes')).length;

function ghRepo(fullName: string) {
  const [owner = '', name = ''] = fullName.split('/');
  const repo = forge.state.githubRepo(owner, name);
  if (!repo) throw new Error(`no GitHub repo ${fullName}`);
  return repo;
}

function glProject(path: string) {
  const p = forge.state.gitlabProject(path);
  if (!p) throw new Error(`no GitLab project ${path}`);
  return p;
}

const tip = (gitDir: string, branch = 'main'): Promise<string> =>
  git(gitDir, ['--git-dir', gitDir, 'rev-parse', `refs/heads/${branch}`]);
const show = (gitDir: string, rev: string): Promise<string> => git(gitDir, ['--git-dir', gitDir, 'show', rev]);
const parents = async (gitDir: string, rev: string): Promise<string[]> =>
  (await git(gitDir, ['--git-dir', gitDir, 'rev-list', '--parents', '-n', '1', rev])).split(' ').slice(1);

interface JsonResult {
  exitCode: number;
  dryRun: boolean;
  problems?: string[];
  pairs: {
    pair: string;
    status: string;
    commit?: string;
    error?: string;
    steps: { side: string; item: string; status: string; detail: string }[];
  }[];
}

describe('refbridge bootstrap against the forge', () => {
  const seeded: Record<string, string> = {};

  it('reports every token problem before changing anything (exit 2)', async () => {
    const since = await logMark(forge);
    const r = await bootstrap([], { GITHUB_TOKEN: GH_NO_WORKFLOW, REFBRIDGE_MIRROR_GITLAB_TOKEN: GL_READ_ONLY });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nothing was changed/);
    expect(r.stderr).toMatch(/GITHUB_TOKEN \(GitHub\) of alice lacks `workflow`/);
    expect(r.stderr).toMatch(
      /REFBRIDGE_MIRROR_GITLAB_TOKEN \(GitLab, stored for the CI\) of glbot lacks `write_repository` or `api`/,
    );
    const log = await requestsSince(forge, since);
    expect(writesIn(log)).toEqual([]);
    // Only the token checks ran: no repository was even looked at.
    expect(log.filter((e) => e.kind === 'api' && /\/repos\/|\/projects\//.test(e.path))).toEqual([]);
    expect(forge.state.githubRepo('alice', 'tool')).toBeUndefined();
  });

  it('--dry-run prints the plan per pair and writes nothing', async () => {
    seeded['app'] = await tip(ghRepo('acme/app').gitDir);
    seeded['lib'] = await tip(ghRepo('acme/lib').gitDir);
    seeded['ahead.github'] = await tip(ghRepo('acme/ahead').gitDir);
    seeded['ahead.gitlab'] = await tip(glProject('acme/ahead').gitDir);
    const since = await logMark(forge);
    const pushes = await pushCount();
    const r = await bootstrap(['--dry-run', '--json', '--pair', 'tool', 'app', 'lib', 'ahead']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as JsonResult;
    expect(json.dryRun).toBe(true);
    expect(json.pairs.map((p) => [p.pair, p.status])).toEqual([
      ['tool', 'planned'],
      ['app', 'planned'],
      ['lib', 'planned'],
      ['ahead', 'planned'],
    ]);
    const tool = json.pairs[0]!;
    expect(tool.steps).toContainEqual({
      side: 'github',
      item: 'repository',
      status: 'planned',
      detail: 'create alice/tool (private)',
    });
    expect(tool.steps).toContainEqual(expect.objectContaining({ side: 'gitlab', item: 'CI files', status: 'planned' }));
    expect(json.pairs[1]!.steps).toContainEqual(
      expect.objectContaining({
        side: 'github',
        item: 'CI files',
        detail: expect.stringMatching(/\.gitlab-ci\.yml \(include of .* added\)/),
      }),
    );
    expect(json.pairs[3]!.steps).toContainEqual(expect.objectContaining({ side: 'gitlab', item: 'CI files' }));
    expect(writesIn(await requestsSince(forge, since))).toEqual([]);
    expect(await pushCount()).toBe(pushes);
    expect(forge.state.githubRepo('alice', 'tool')).toBeUndefined();
    expect(forge.state.gitlabProject('acme/platform/tools/lib')).toBeUndefined();

    const human = await bootstrap(['--dry-run', '--pair', 'tool']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/GitHub\s+repository\s+plan\s+create alice\/tool \(private\)/);
    expect(human.stdout).toMatch(/dry run: nothing changed/);
  });

  it('sets up a user repo, org repos and a project in subgroups that do not exist yet', async () => {
    const r = await bootstrap(['--pair', 'tool', 'app', 'lib', 'ahead']);
    expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr + r.stdout }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/4 pair\(s\): 4 set up/);

    // Repos: created private where missing, nested groups created one level at a time.
    expect(ghRepo('alice/tool')).toMatchObject({ ownerType: 'User', visibility: 'private' });
    expect(glProject('acme/tool').visibility).toBe('private');
    expect(glProject('acme/platform/tools/lib').namespace).toBe('acme/platform/tools');
    expect(forge.state.gitlabGroups.has('acme/platform')).toBe(true);

    for (const [gh, gl] of [
      ['alice/tool', 'acme/tool'],
      ['acme/app', 'acme/app'],
      ['acme/lib', 'acme/platform/tools/lib'],
      ['acme/ahead', 'acme/ahead'],
    ] as const) {
      // GitHub: the sealed secret decrypts to the GitLab mirror token; plain variables.
      const secrets = await adminGet<Record<string, string>>(forge, `/secrets/github/${gh}`);
      expect(secrets['GITLAB_TOKEN']).toBe(GL_MIRROR);
      const vars = ghRepo(gh).variables;
      expect(vars.get('GITLAB_URL')?.value).toBe(forge.urls.gitlab.web);
      expect(vars.get('GITLAB_REPO')?.value).toBe(gl);
      expect(vars.get('MIRROR_BOT_USER')?.value).toBe('ghbot');
      expect(vars.get('REFBRIDGE_GITLAB_TOKEN_FINGERPRINT')?.value).toMatch(/^v1:[0-9a-f]+:[0-9a-f]{64}$/);

      // GitLab: the token masked, hidden and (as configured) protected; plain variables unmasked.
      const byKey = new Map(glProject(gl).variables.map((v) => [v.key, v]));
      expect(byKey.get('GITHUB_TOKEN')).toMatchObject({
        value: GH_MIRROR,
        masked: true,
        hidden: true,
        protected: true,
        raw: true,
      });
      expect(byKey.get('GITHUB_URL')).toMatchObject({ value: forge.urls.github.web, masked: false, protected: true });
      expect(byKey.get('GITHUB_REPO')).toMatchObject({ value: gh, masked: false, protected: true });
      expect(byKey.get('MIRROR_BOT_USER')).toMatchObject({ value: 'glbot', masked: false });
      expect(byKey.get('REFBRIDGE_GITHUB_TOKEN_FINGERPRINT')?.value).toMatch(/^v1:/);

      // The CI files: one commit, the same SHA on both sides.
      const ghTip = await tip(ghRepo(gh).gitDir);
      expect(await tip(glProject(gl).gitDir)).toBe(ghTip);
      expect(await show(ghRepo(gh).gitDir, `${ghTip}:${WORKFLOW}`)).toBe(workflowTemplate.trimEnd());
      expect(await show(ghRepo(gh).gitDir, `${ghTip}:.gitlab-ci.yml`)).toMatch(
        /- component: \$CI_SERVER_FQDN\/refbridge\/refbridge\/mirror@/,
      );
    }

    // Each side received exactly one commit on top of what it had.
    expect(await git(tmp.path, ['--git-dir', ghRepo('alice/tool').gitDir, 'rev-list', '--count', 'main'])).toBe('1');
    expect(await parents(ghRepo('acme/app').gitDir, 'main')).toEqual([seeded['app']]);
    expect(await parents(ghRepo('acme/lib').gitDir, 'main')).toEqual([seeded['lib']]);
    // GitLab was ahead: it committed, and GitHub fast-forwarded over its commits to the same tip.
    expect(seeded['ahead.gitlab']).not.toBe(seeded['ahead.github']);
    expect(await parents(glProject('acme/ahead').gitDir, 'main')).toEqual([seeded['ahead.gitlab']]);

    // The user's .gitlab-ci.yml: jobs and comments kept byte for byte, the include appended.
    const appCi = await show(ghRepo('acme/app').gitDir, 'main:.gitlab-ci.yml');
    expect(`${appCi}\n`.startsWith(USER_CI)).toBe(true);
    expect(appCi).toContain('# Our pipeline: keep the deploy job and this comment.');
    expect(appCi).toContain('- make   # the real build');
  });

  it('a second run changes nothing: no write call, no push, "already set up"', async () => {
    const since = await logMark(forge);
    const pushes = await pushCount();
    const r = await bootstrap(['--pair', 'tool', 'app', 'lib', 'ahead']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/4 pair\(s\): 4 already set up/);
    expect(r.stdout.match(/already set up: nothing to change/g)).toHaveLength(4);
    const log = await requestsSince(forge, since);
    expect(writesIn(log)).toEqual([]);
    expect(log.some((e) => e.kind === 'api')).toBe(true);
    expect(await pushCount()).toBe(pushes);
  });

  it('re-seals a changed mirror token and rewrites nothing else', async () => {
    const before = ghRepo('acme/app').variables.get('REFBRIDGE_GITLAB_TOKEN_FINGERPRINT')?.value;
    const since = await logMark(forge);
    const r = await bootstrap(['--pair', 'app', '--json'], { REFBRIDGE_MIRROR_GITLAB_TOKEN: GL_MIRROR_NEW });
    expect(r.code).toBe(0);
    const app = (JSON.parse(r.stdout) as JsonResult).pairs[0]!;
    expect(app.steps.filter((s) => s.status === 'done')).toEqual([
      { side: 'github', item: 'secret GITLAB_TOKEN', status: 'done', detail: 'updated (the token changed)' },
    ]);
    expect(writesIn(await requestsSince(forge, since)).sort()).toEqual([
      'PATCH /api/v3/repos/acme/app/actions/variables/REFBRIDGE_GITLAB_TOKEN_FINGERPRINT',
      'PUT /api/v3/repos/acme/app/actions/secrets/GITLAB_TOKEN',
    ]);
    expect((await adminGet<Record<string, string>>(forge, '/secrets/github/acme/app'))['GITLAB_TOKEN']).toBe(
      GL_MIRROR_NEW,
    );
    expect(ghRepo('acme/app').variables.get('REFBRIDGE_GITLAB_TOKEN_FINGERPRINT')?.value).not.toBe(before);
  });

  it('one failing pair does not stop the others; a diverged branch gets no commit (exit 1)', async () => {
    const splitTips = [await tip(ghRepo('acme/split').gitDir), await tip(glProject('acme/split').gitDir)];
    const r = await bootstrap(['--json', '--pair', 'fail', 'split', 'tool']);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as JsonResult;
    const by = Object.fromEntries(json.pairs.map((p) => [p.pair, p]));
    expect(by['fail']).toMatchObject({ status: 'failed', error: expect.stringMatching(/locked\/sub/) });
    expect(by['tool']!.status).toBe('already-set-up');
    expect(by['split']!.status).toBe('diverged');
    expect(by['split']!.steps).toContainEqual(
      expect.objectContaining({ status: 'attention', detail: expect.stringMatching(/--resolve main --keep github/) }),
    );
    // Settings were made, but neither side of the diverged branch moved.
    expect((await adminGet<Record<string, string>>(forge, '/secrets/github/acme/split'))['GITLAB_TOKEN']).toBe(
      GL_MIRROR,
    );
    expect([await tip(ghRepo('acme/split').gitDir), await tip(glProject('acme/split').gitDir)]).toEqual(splitTips);

    const human = await bootstrap(['--pair', 'split']);
    expect(human.code).toBe(3);
    expect(human.stdout).toMatch(/split\s+DIVERGED/);
  });

  it('never shows a token: not in stdout, stderr, --json, --dry-run, nor in files left behind', async () => {
    expect(outputs.length).toBeGreaterThan(10);
    for (const canary of CANARIES) {
      for (const text of outputs) expect(text.includes(canary)).toBe(false);
      expect(await filesContaining(tmp.path, canary)).toEqual([]);
    }
  });
});
