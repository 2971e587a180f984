import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { renderGithubWorkflow } from '../src/bootstrap-ci-files.js';
import { checkGithubActionRef, checkGitlabComponent, parseConfig, renderStarterConfig } from '../src/config.js';
import {
  defaultGithubAction,
  defaultGitlabComponent,
  githubActionPattern,
  gitlabComponentPattern,
} from '../src/config-schema.js';
import { ConfigError } from '../src/errors.js';
import { ensureMirrorInclude, renderGitlabCi } from '../src/gitlab-ci-include.js';
import { repoRoot } from '../../../test/support/paths.js';

// bootstrap.github.action and bootstrap.gitlab.include: what the committed CI files reference.

const minimal = 'pairs:\n  - github: acme/widgets\n    gitlab: platform/widgets\n';
const template = (name: string) => readFile(join(repoRoot, 'ci-templates', name), 'utf8');
const SHA = '0123456789abcdef0123456789abcdef01234567';

function problems(text: string) {
  try {
    parseConfig(text, { source: 'refbridge.yaml' });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => ({ key: p.key, message: p.message }));
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('leaves both unset by default (the templates as shipped)', () => {
    const config = parseConfig(minimal, { source: 'x' });
    expect(config.bootstrap.github.action).toBeUndefined();
    expect(config.bootstrap.gitlab.include).toBeUndefined();
  });

  it('reads an Action reference, a component and a project include', () => {
    const a = parseConfig(
      `${minimal}bootstrap:\n  github:\n    action: mirror-org/refbridge@${SHA}\n  gitlab:\n    include:\n      component: $CI_SERVER_FQDN/tools/refbridge/mirror@1.2.3\n`,
      { source: 'x' },
    );
    expect(a.bootstrap.github.action).toBe(`mirror-org/refbridge@${SHA}`);
    expect(a.bootstrap.gitlab.include).toEqual({ component: '$CI_SERVER_FQDN/tools/refbridge/mirror@1.2.3' });
    const b = parseConfig(
      `${minimal}bootstrap:\n  github:\n    action: acme/actions/refbridge@v1\n  gitlab:\n    include:\n      project: tools/ci/refbridge\n      ref: v0.1.0\n      file: templates/mirror.yml\n`,
      { source: 'x' },
    );
    expect(b.bootstrap.github).toEqual({ visibility: 'private', action: 'acme/actions/refbridge@v1' });
    expect(b.bootstrap.gitlab.include).toEqual({
      project: 'tools/ci/refbridge',
      ref: 'v0.1.0',
      file: 'templates/mirror.yml',
    });
  });

  it('reports every problem at once, with file and key', () => {
    const text = `pairs:\n  - github: acme/widgets\n    gitlab: bad\nbootstrap:\n  github:\n    action: refbridge/refbridge\n  gitlab:\n    include:\n      project: tools/refbridge\n      file: mirror.txt\n`;
    expect(problems(text)).toEqual([
      { key: 'pairs[0].gitlab', message: expect.stringMatching(/full project path/) },
      { key: 'bootstrap.github.action', message: '"refbridge/refbridge" has no "@ref"' },
      { key: 'bootstrap.gitlab.include.file', message: '"mirror.txt" is not a YAML file path in the project' },
    ]);
    expect(
      problems(
        `${minimal}bootstrap:\n  github:\n    action: docker://alpine\n  gitlab:\n    include:\n      component: a/b@1\n      project: x/y\n`,
      ),
    ).toEqual([
      { key: 'bootstrap.github.action', message: '"docker://alpine" is not a repository Action' },
      { key: 'bootstrap.gitlab.include', message: expect.stringMatching(/both `component:` and `project:`/) },
    ]);
    expect(problems(`${minimal}bootstrap:\n  gitlab:\n    include:\n      ref: v1\n`)).toEqual([
      { key: 'bootstrap.gitlab.include', message: 'has `ref:`/`file:` but no `project:`' },
      { key: 'bootstrap.gitlab.include', message: 'has `project:` but no `file:`' },
    ]);
    expect(
      problems(
        `${minimal}bootstrap:\n  gitlab:\n    include:\n      component: tools/refbridge/mirror\n      extra: 1\n`,
      ),
    ).toEqual([
      { key: 'bootstrap.gitlab.include.component', message: '"tools/refbridge/mirror" has no "@version"' },
      { key: 'bootstrap.gitlab.include.extra', message: 'unknown key "extra"' },
    ]);
  });

  const agree = (pattern: string, check: (v: string) => unknown, values: string[]) => {
    const re = new RegExp(pattern, 'u');
    for (const v of values) expect([v, re.test(v)]).toEqual([v, check(v) === undefined]);
  };

  it('the schema patterns and the loader accept the same Action references', () => {
    agree(githubActionPattern, checkGithubActionRef, [
      defaultGithubAction,
      `owner/repo@${SHA}`,
      'owner/repo/sub/dir@release/v1',
      'Acme-Corp/.github@main',
      'owner/repo',
      'owner@v1',
      'owner/repo@',
      'owner/repo@v1@v2',
      'owner/repo@v1..2',
      'owner/repo@v1.',
      'owner/repo@-x',
      'owner/repo@a//b',
      'owner/../x@v1',
      'owner/repo/./x@v1',
      'owner/repo@v 1',
      '-owner/repo@v1',
      'docker://alpine:3',
      './local',
      '',
    ]);
  });

  it('the schema patterns and the loader accept the same component addresses', () => {
    agree(gitlabComponentPattern, checkGitlabComponent, [
      defaultGitlabComponent,
      'gitlab.example.com:8443/group/sub/refbridge/mirror@~latest',
      '${CI_SERVER_FQDN}/tools/refbridge/mirror@abc123',
      'host/project/mirror@1.0.0',
      'host/mirror@1.0.0',
      'host/group/project/mirror',
      'host/group/project/mirror@',
      'https://gitlab.com/group/project/mirror@1.0.0',
      'host/group/pro ject/mirror@1',
      'host/group//mirror@1',
      '',
    ]);
  });

  it('the starter file parses, and its commented example is valid when uncommented', () => {
    expect(() => parseConfig(renderStarterConfig(), { source: 'starter' })).not.toThrow();
    const [head = '', tail = ''] = renderStarterConfig().split('# bootstrap:\n');
    const uncommented = `${head}bootstrap:\n${tail
      .split('\n')
      .map((l) => (l.startsWith('#  ') && !l.includes('# ...') ? l.slice(2) : l))
      .join('\n')}`;
    const config = parseConfig(uncommented, { source: 'starter' });
    expect(config.bootstrap.github.action).toBe(defaultGithubAction);
    expect(config.bootstrap.gitlab.include).toEqual({ component: defaultGitlabComponent });
  });
});

describe('rendering', () => {
  it('the defaults render the templates byte for byte', async () => {
    const gh = await template('github-mirror.yml');
    const gl = await template('gitlab-mirror.yml');
    expect(gh).toContain(`- uses: ${defaultGithubAction}\n`);
    expect(gl).toContain(`- component: ${defaultGitlabComponent}\n`);
    expect(renderGithubWorkflow(gh, undefined)).toBe(gh);
    expect(renderGithubWorkflow(gh, defaultGithubAction)).toBe(gh);
    expect(renderGitlabCi(gl, undefined)).toBe(gl);
    expect(renderGitlabCi(gl, { component: defaultGitlabComponent })).toBe(gl);
  });

  it('puts the configured Action in the one refbridge `uses:` line', async () => {
    const gh = await template('github-mirror.yml');
    const out = renderGithubWorkflow(gh, `acme/actions/refbridge@${SHA}`);
    const steps = (parse(out) as { jobs: { mirror: { steps: { uses?: string }[] } } }).jobs.mirror.steps;
    expect(steps.map((s) => s.uses)).toEqual(['actions/checkout@v4', `acme/actions/refbridge@${SHA}`]);
    expect(out.replace(`acme/actions/refbridge@${SHA}`, defaultGithubAction)).toBe(gh);
    expect(() => renderGithubWorkflow('jobs: {}\n', 'a/b@v1')).toThrow(/no single `uses: refbridge/);
  });

  it('writes a project include (values that YAML would read otherwise are quoted)', async () => {
    const gl = await template('gitlab-mirror.yml');
    const out = renderGitlabCi(gl, { project: 'tools/refbridge', ref: '1.10', file: 'templates/mirror.yml' });
    expect(parse(out)).toEqual({
      include: [{ project: 'tools/refbridge', ref: '1.10', file: 'templates/mirror.yml' }],
    });
    expect(out).not.toMatch(/On instances without the CI\/CD catalog/);
    expect(out).toMatch(/^# Added by `refbridge bootstrap`/);
    const noRef = renderGitlabCi(gl, { project: 'tools/refbridge', file: 'templates/mirror.yml' });
    expect(parse(noRef)).toEqual({ include: [{ project: 'tools/refbridge', file: 'templates/mirror.yml' }] });
  });
});

describe('ensureMirrorInclude with a configured include', () => {
  const component = '$CI_SERVER_FQDN/tools/refbridge/mirror@0.2.0';
  const userFile = [
    'stages: [build]',
    'include:',
    '  - local: ci/lint.yml',
    "  - component: '$CI_SERVER_FQDN/refbridge/refbridge/mirror@0.9.0' # pinned",
    '    inputs:',
    '      stage: build',
    'build:',
    '  script: [make]',
    '',
  ].join('\n');
  let gl: string;
  const rendered = async (entry: Parameters<typeof renderGitlabCi>[1]) => {
    gl ??= await template('gitlab-mirror.yml');
    return renderGitlabCi(gl, entry);
  };

  it('replaces a different component in place (even a newer one), keeping quoting, comment and inputs', async () => {
    const edit = ensureMirrorInclude(userFile, await rendered({ component }), 'x', { enforce: true });
    expect(edit.change).toBe('updated');
    expect(edit.content).toBe(userFile.replace('refbridge/refbridge/mirror@0.9.0', 'tools/refbridge/mirror@0.2.0'));
    expect(ensureMirrorInclude(edit.content, await rendered({ component }), 'x', { enforce: true })).toMatchObject({
      change: 'unchanged',
      content: edit.content,
    });
    // Without the setting (the built-in default), the user's newer pin is kept as before.
    expect(ensureMirrorInclude(userFile, gl).change).toBe('unchanged');
  });

  it('switches between component and project include without doubling the entry', async () => {
    const project = await rendered({ project: 'tools/refbridge', ref: 'v0.2.0', file: 'templates/mirror.yml' });
    const toProject = ensureMirrorInclude(userFile, project, 'x', { enforce: true });
    expect(toProject.change).toBe('updated');
    const include = (parse(toProject.content) as { include: unknown[] }).include;
    expect(include).toEqual([
      { local: 'ci/lint.yml' },
      { project: 'tools/refbridge', ref: 'v0.2.0', file: 'templates/mirror.yml', inputs: { stage: 'build' } },
    ]);
    expect(ensureMirrorInclude(toProject.content, project, 'x', { enforce: true }).change).toBe('unchanged');
    const newerRef = await rendered({ project: 'tools/refbridge', ref: 'v0.3.0', file: 'templates/mirror.yml' });
    const bumped = ensureMirrorInclude(toProject.content, newerRef, 'x', { enforce: true });
    expect(bumped.content).toBe(toProject.content.replace('v0.2.0', 'v0.3.0'));
    const back = ensureMirrorInclude(bumped.content, await rendered({ component }), 'x', { enforce: true });
    expect((parse(back.content) as { include: unknown[] }).include).toEqual([
      { local: 'ci/lint.yml' },
      { component, inputs: { stage: 'build' } },
    ]);
  });

  it('adds the entry where there is none, and replaces a lone mapping', async () => {
    const project = await rendered({ project: 'tools/refbridge', file: 'templates/mirror.yml' });
    const added = ensureMirrorInclude('build:\n  script: [make]\n', project, 'x', { enforce: true });
    expect(added.change).toBe('added');
    expect(added.content).toBe(
      'build:\n  script: [make]\n\n# Added by `refbridge bootstrap`: mirrors every push of this project to GitHub.\ninclude:\n  - project: tools/refbridge\n    file: templates/mirror.yml\n',
    );
    const flow = ensureMirrorInclude('include: [a.yml]\n', project, 'x', { enforce: true });
    expect(flow.content).toBe('include: [a.yml, { project: tools/refbridge, file: templates/mirror.yml }]\n');
    const lone = `include:\n  component: ${defaultGitlabComponent}\n`;
    const replaced = ensureMirrorInclude(lone, project, 'x', { enforce: true });
    expect(parse(replaced.content)).toEqual({ include: { project: 'tools/refbridge', file: 'templates/mirror.yml' } });
    expect(ensureMirrorInclude(undefined, project, 'x', { enforce: true })).toMatchObject({
      change: 'created',
      content: project,
    });
  });
});
