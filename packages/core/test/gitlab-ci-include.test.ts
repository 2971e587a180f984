import { describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { repoRoot } from '../../../test/support/paths.js';
import {
  GitlabCiFileError,
  compareVersions,
  ensureMirrorInclude,
  mirrorComponentOf,
} from '../src/gitlab-ci-include.js';

// The real template bootstrap commits, so a change to it is tested here too.
const template = await readFile(join(repoRoot, 'ci-templates', 'gitlab-mirror.yml'), 'utf8');
const component = mirrorComponentOf(template);
const olderTemplate = template.replace(`@${component.version}`, '@0.0.1');

const js = (text: string): unknown => parseDocument(text, { merge: true }).toJS();
const includeOf = (text: string): unknown => (js(text) as { include?: unknown }).include;
const withoutInclude = (text: string): unknown => {
  const { include: _include, ...rest } = js(text) as Record<string, unknown>;
  return rest;
};

const userFile = `# Our pipeline. Do not remove the deploy job.
stages: [build, test]   # two stages

variables:
  LONG: 'a very long value that goes on and on and on and on and on and on and on and on and on and on and on'

build:
  stage: build
  script:
  - echo "hello"   # greet
  - |
    multi
    line

.base: &base
  image: node:20
test:
  <<: *base
  script: [npm test]
`;

describe('mirrorComponentOf', () => {
  it('reads the component and its version from the template', () => {
    expect(component.reference).toMatch(/^\$CI_SERVER_FQDN\/.+\/mirror@\d+\.\d+\.\d+$/);
    expect(`${component.path}@${component.version}`).toBe(component.reference);
  });

  it('refuses a template without a component include', () => {
    expect(() => mirrorComponentOf('include:\n  - local: x.yml\n')).toThrow(/no `include: - component/);
  });
});

describe('ensureMirrorInclude', () => {
  it('uses the template for a project without .gitlab-ci.yml', () => {
    const edit = ensureMirrorInclude(undefined, template);
    expect(edit).toMatchObject({ change: 'created', content: template });
    expect(ensureMirrorInclude('  \n', template).change).toBe('created');
  });

  it("adds the include to a user's file and keeps every other byte", () => {
    const edit = ensureMirrorInclude(userFile, template);
    expect(edit.change).toBe('added');
    expect(edit.content.startsWith(userFile)).toBe(true);
    expect(edit.content.slice(userFile.length)).toBe(
      `\n# Added by \`refbridge bootstrap\`: mirrors every push of this project to GitHub.\ninclude:\n  - component: ${component.reference}\n`,
    );
    expect(withoutInclude(edit.content)).toEqual(js(userFile));
    expect(includeOf(edit.content)).toEqual([{ component: component.reference }]);
  });

  it('is idempotent: a second pass changes nothing', () => {
    const once = ensureMirrorInclude(userFile, template).content;
    const twice = ensureMirrorInclude(once, template);
    expect(twice.change).toBe('unchanged');
    expect(twice.content).toBe(once);
    expect(ensureMirrorInclude(template, template).change).toBe('unchanged');
  });

  it('appends to a block include list with its indentation and comments', () => {
    const file = `include:
    # shared jobs
    - local: ci/shared.yml   # keep
    - project: group/tools
      file: lint.yml

job:
  script: [true]
`;
    const edit = ensureMirrorInclude(file, template);
    expect(edit.change).toBe('added');
    expect(edit.content).toBe(
      file.replace('      file: lint.yml\n', `      file: lint.yml\n    - component: ${component.reference}\n`),
    );
    expect(includeOf(edit.content)).toEqual([
      { local: 'ci/shared.yml' },
      { project: 'group/tools', file: 'lint.yml' },
      { component: component.reference },
    ]);
  });

  it('appends to a block list whose last item is a plain string at the end of the file', () => {
    const file = 'job:\n  script: [true]\ninclude:\n- ci/a.yml';
    const edit = ensureMirrorInclude(file, template);
    expect(edit.content).toBe(`${file}\n- component: ${component.reference}\n`);
    expect(includeOf(edit.content)).toEqual(['ci/a.yml', { component: component.reference }]);
  });

  it('inserts into a flow list in place', () => {
    const file = 'include: [ci/a.yml, {local: ci/b.yml}]  # shared\njob: {script: [true]}\n';
    const edit = ensureMirrorInclude(file, template);
    expect(edit.content).toBe(
      `include: [ci/a.yml, {local: ci/b.yml}, { component: ${component.reference} }]  # shared\njob: {script: [true]}\n`,
    );
  });

  it('turns a single include into a list, keeping comments', () => {
    const file = '# top\ninclude: ci/a.yml # the shared file\njob:\n  script: [true]\n';
    const edit = ensureMirrorInclude(file, template);
    expect(edit.change).toBe('added');
    expect(includeOf(edit.content)).toEqual(['ci/a.yml', { component: component.reference }]);
    expect(withoutInclude(edit.content)).toEqual(withoutInclude(file));
    expect(edit.content).toContain('# top');
    expect(edit.content).toContain('# the shared file');
  });

  it('fills an empty include key', () => {
    const edit = ensureMirrorInclude('include:\njob:\n  script: [true]\n', template);
    expect(includeOf(edit.content)).toEqual([{ component: component.reference }]);
  });

  it('raises an older version in place, inside the quotes the user chose', () => {
    const older = ensureMirrorInclude(userFile, olderTemplate).content;
    const quoted = older.replace(
      `- component: ${component.path}@0.0.1`,
      `- component: "${component.path}@0.0.1"\n    inputs: {stage: deploy}`,
    );
    expect(includeOf(quoted)).toEqual([{ component: `${component.path}@0.0.1`, inputs: { stage: 'deploy' } }]);
    const edit = ensureMirrorInclude(quoted, template);
    expect(edit.change).toBe('updated');
    expect(edit.content).toBe(quoted.replace('@0.0.1"', `@${component.version}"`));
    expect(includeOf(edit.content)).toEqual([{ component: component.reference, inputs: { stage: 'deploy' } }]);
  });

  it('keeps a newer or non-numeric version the user pinned', () => {
    const newer = userFile + `include:\n  - component: ${component.path}@99.0.0\n`;
    expect(ensureMirrorInclude(newer, template)).toMatchObject({ change: 'unchanged', content: newer });
    const latest = userFile + `include:\n  - component: ${component.path}@~latest\n`;
    expect(ensureMirrorInclude(latest, template)).toMatchObject({ change: 'unchanged', content: latest });
  });

  it("leaves the documented project: and remote: forms, and a copy in the user's catalog, alone", () => {
    for (const entry of [
      '- project: refbridge/refbridge\n    ref: v0.1.0\n    file: templates/mirror.yml',
      '- remote: https://example.com/refbridge/raw/templates/mirror.yml',
      '- component: gitlab.example.com/tools/refbridge/mirror@0.1.0',
    ]) {
      const file = `include:\n  ${entry}\njob:\n  script: [true]\n`;
      const edit = ensureMirrorInclude(file, template);
      expect(edit).toMatchObject({ change: 'unchanged', content: file });
      expect(edit.detail).toMatch(/already includes refbridge's mirror job/);
    }
  });

  it('keeps comments above the template in a file that has only comments', () => {
    const edit = ensureMirrorInclude('# nothing here yet\n', template);
    expect(edit.content).toBe(`# nothing here yet\n\n${template}`);
    expect(includeOf(edit.content)).toEqual([{ component: component.reference }]);
  });

  it('reports a broken or non-mapping file instead of guessing', () => {
    expect(() => ensureMirrorInclude('job:\n  script: [unclosed\n', template)).toThrow(GitlabCiFileError);
    expect(() => ensureMirrorInclude('- a\n- b\n', template)).toThrow(/not a mapping/);
  });

  it('handles an indented root, a flow-style root and a keep-chomped block scalar without changing their data', () => {
    // The last one is why every splice is verified: text appended after `|+` would join the scalar.
    for (const file of [
      '  job:\n    script: [x]\n  other: 1\n',
      '{job: {script: [true]}}\n',
      'job:\n  script: |+\n    keep\n\n',
    ]) {
      const edit = ensureMirrorInclude(file, template);
      expect(edit.change).toBe('added');
      expect(includeOf(edit.content)).toEqual([{ component: component.reference }]);
      expect(withoutInclude(edit.content)).toEqual(js(file));
    }
  });
});

describe('compareVersions', () => {
  it('orders x.y.z and treats anything else as a deliberate pin', () => {
    expect(compareVersions('0.1.0', '0.2.0')).toBe(-1);
    expect(compareVersions('v1.10.0', '1.9.9')).toBe(1);
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0);
    expect(compareVersions('~latest', '1.0.0')).toBe(0);
  });
});
