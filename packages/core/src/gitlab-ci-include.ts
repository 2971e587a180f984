import { isDeepStrictEqual } from 'node:util';
import {
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  YAMLSeq,
  type Document,
  type Node as YamlNode,
  type Scalar,
  type YAMLMap,
} from 'yaml';
import type { GitlabMirrorInclude } from './config.js';
import { defaultGitlabComponent } from './config-schema.js';
import { RefbridgeError } from './errors.js';

/**
 * Adds refbridge's GitLab component to a project's `.gitlab-ci.yml` without disturbing the rest.
 *
 * The yaml package's Document API finds what is there (the `include:` node and its items, with
 * their source ranges); the change itself is spliced into the original text, so the user's jobs,
 * comments, quoting, indentation and flow-style lists stay byte for byte. Re-serialising the
 * whole document would keep comments too, but it re-indents sequences and re-spaces flow lists,
 * a noisy diff in a file people review. Every splice is checked by parsing the result: it must
 * mean exactly the original plus the one include entry. A shape the splice does not handle (a
 * single `include: file.yml`, a flow-style root, ...) goes through the Document API instead.
 */

export const GITLAB_CI_FILE = '.gitlab-ci.yml';

/** What `ensureMirrorInclude` did. */
export type IncludeChange = 'created' | 'added' | 'updated' | 'unchanged';

export interface IncludeEdit {
  /** The file's new content (the original text itself when `change` is `unchanged`). */
  content: string;
  change: IncludeChange;
  /** One line for people. */
  detail: string;
}

/** The component entry of the template, split into path and version. */
export interface MirrorComponent {
  /** e.g. `$CI_SERVER_FQDN/refbridge/refbridge/mirror@0.1.0` */
  reference: string;
  /** The part before the last `@`. */
  path: string;
  version: string;
}

/** `.gitlab-ci.yml` cannot be edited safely; nothing is committed. */
export class GitlabCiFileError extends RefbridgeError {}

const YAML_OPTIONS = { merge: true, uniqueKeys: true, prettyErrors: false } as const;
const ADDED_COMMENT = '# Added by `refbridge bootstrap`: mirrors every push of this project to GitHub.';

/** Reads the component reference out of `ci-templates/gitlab-mirror.yml`. */
export function mirrorComponentOf(template: string): MirrorComponent {
  const data: unknown = parseDocument(template, YAML_OPTIONS).toJS();
  const include = (data as { include?: unknown } | null)?.include;
  const first: unknown = Array.isArray(include) ? include[0] : undefined;
  const reference = (first as { component?: unknown } | undefined)?.component;
  if (typeof reference !== 'string' || reference.lastIndexOf('@') <= 0) {
    throw new RefbridgeError('the GitLab CI template has no `include: - component: <path>@<version>` entry', {
      hint: 'reinstall @refbridge/cli; its ci-templates/gitlab-mirror.yml is damaged',
    });
  }
  const at = reference.lastIndexOf('@');
  return { reference, path: reference.slice(0, at), version: reference.slice(at + 1) };
}

export interface EnsureIncludeOptions {
  /**
   * The entry of the template is what the config asks for (`bootstrap.gitlab.include`): an
   * existing refbridge entry that differs (another component, version or project include) is
   * replaced by it, in place. Without it, the template is only the built-in default and an entry
   * the user changed (a newer version, `project:` instead of `component:`) is left alone.
   */
  enforce?: boolean;
}

/**
 * The new `.gitlab-ci.yml`: the template for a project without one, else the existing file with
 * the component added (or its version raised). Idempotent: a second call returns `unchanged`.
 */
export function ensureMirrorInclude(
  existing: string | undefined,
  template: string,
  where = GITLAB_CI_FILE,
  options: EnsureIncludeOptions = {},
): IncludeEdit {
  if (options.enforce === true) return enforceMirrorInclude(existing, template, where);
  const component = mirrorComponentOf(template);
  if (existing === undefined || existing.trim() === '') {
    return { content: template, change: 'created', detail: `new ${GITLAB_CI_FILE} including ${component.reference}` };
  }
  const doc = parseDocument(existing, YAML_OPTIONS);
  if (doc.errors.length > 0) {
    throw new GitlabCiFileError(
      `${where} is not valid YAML (${doc.errors[0]?.message.split('\n')[0] ?? 'parse error'})`,
      {
        hint: `fix ${GITLAB_CI_FILE} (GitLab's pipeline editor validates it), or add \`include: - component: ${component.reference}\` yourself, then run again`,
      },
    );
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === undefined))) {
    // Only comments: keep them above the template.
    return {
      content: `${existing.replace(/\s*$/, '')}\n\n${template}`,
      change: 'added',
      detail: `include of ${component.reference} added`,
    };
  }
  if (!isMap(root)) {
    throw new GitlabCiFileError(`${where} is not a mapping of jobs and keywords`, {
      hint: `fix ${GITLAB_CI_FILE}, or add \`include: - component: ${component.reference}\` yourself, then run again`,
    });
  }

  const found = findInclude(root, component);
  if (found.kind === 'user-managed') {
    return {
      content: existing,
      change: 'unchanged',
      detail: `already includes refbridge's mirror job (${found.description}); left as it is`,
    };
  }
  if (found.kind === 'ours') {
    const current = found.version;
    if (compareVersions(current, component.version) !== -1) {
      const newer = compareVersions(current, component.version) === 1;
      return {
        content: existing,
        change: 'unchanged',
        detail: `already includes ${component.path}@${current}${newer ? ` (newer than this refbridge's ${component.version}; kept)` : ''}`,
      };
    }
  }

  const edit = planEdit(found, component);
  const entry = { component: component.reference };
  const expected = expectedData(doc, entry, found);
  const spliced = splice(existing, root, found, entry, component);
  const content =
    spliced !== undefined && meansExactly(spliced, expected) ? spliced : reserialise(existing, found, entry);
  if (!meansExactly(content, expected)) {
    throw new GitlabCiFileError(`refbridge could not add its include to ${where} without changing anything else`, {
      hint: `add \`include: - component: ${component.reference}\` to ${GITLAB_CI_FILE} yourself, then run again (and report this file's shape as a refbridge bug)`,
    });
  }
  return { content, ...edit };
}

type Found =
  | { kind: 'missing' }
  | { kind: 'ours'; version: string; scalar: Scalar; index: number }
  | { kind: 'user-managed'; description: string }
  | { kind: 'other'; node: YamlNode | null };

function findInclude(root: YAMLMap, component: MirrorComponent): Found {
  const pair = root.items.find((p) => isScalar(p.key) && p.key.value === 'include');
  if (pair === undefined) return { kind: 'missing' };
  const node = pair.value as YamlNode | null;
  const items = isSeq(node) ? node.items : node === null ? [] : [node];
  for (const [index, item] of items.entries()) {
    const entry = describeEntry(item);
    if (entry === undefined) continue;
    if (entry.component !== undefined) {
      const { path, version } = splitReference(entry.component.value);
      if (path.toLowerCase() === component.path.toLowerCase()) {
        // Only an entry inside a list can be edited in place; a lone mapping is "other".
        if (isSeq(node)) return { kind: 'ours', version, scalar: entry.component.node, index };
        return { kind: 'user-managed', description: `component: ${entry.component.value}` };
      }
      if (/(^|\/)refbridge\/mirror$/i.test(path)) {
        return { kind: 'user-managed', description: `component: ${entry.component.value}` };
      }
    }
    if (entry.other !== undefined) return { kind: 'user-managed', description: entry.other };
  }
  return { kind: 'other', node };
}

/** An include item that is refbridge's: the component, or the documented `project:` / `remote:` alternatives. */
function describeEntry(item: unknown): { component?: { value: string; node: Scalar }; other?: string } | undefined {
  if (isScalar(item) && typeof item.value === 'string') {
    return isMirrorFile(item.value) ? { other: item.value } : undefined;
  }
  if (!isMap(item)) return undefined;
  const get = (key: string): Scalar | undefined => {
    const v = item.get(key, true);
    return isScalar(v) && typeof v.value === 'string' ? v : undefined;
  };
  const componentNode = get('component');
  if (componentNode !== undefined) return { component: { value: componentNode.value as string, node: componentNode } };
  const project = get('project')?.value as string | undefined;
  const file = item.get('file', true);
  const files = (isSeq(file) ? file.items : [file]).map((f) => (isScalar(f) ? String(f.value) : ''));
  if (project !== undefined && /(^|\/)refbridge$/i.test(project) && files.some((f) => isMirrorFile(f))) {
    return { other: `project: ${project}` };
  }
  const remote = get('remote')?.value as string | undefined;
  if (remote !== undefined && /refbridge/i.test(remote) && isMirrorFile(remote)) return { other: `remote: ${remote}` };
  return undefined;
}

function isMirrorFile(path: string): boolean {
  return /(^|\/)templates\/mirror\.ya?ml$/i.test(path.trim());
}

function splitReference(reference: string): { path: string; version: string } {
  const at = reference.lastIndexOf('@');
  return at <= 0
    ? { path: reference, version: '' }
    : { path: reference.slice(0, at), version: reference.slice(at + 1) };
}

/**
 * -1, 0, 1 for plain `x.y.z` versions (a leading `v` allowed). Anything else (`~latest`, a
 * branch, a SHA, a `$VARIABLE`) is a deliberate choice: it compares as 0, so it is kept.
 */
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const parse = (v: string): number[] | undefined => {
    const m = /^v?(\d+)\.(\d+)\.(\d+)$/.exec(v.trim());
    return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
  };
  const x = parse(a);
  const y = parse(b);
  if (x === undefined || y === undefined) return 0;
  for (let i = 0; i < 3; i++) {
    if ((x[i] ?? 0) < (y[i] ?? 0)) return -1;
    if ((x[i] ?? 0) > (y[i] ?? 0)) return 1;
  }
  return 0;
}

function planEdit(found: Found, component: MirrorComponent): Omit<IncludeEdit, 'content'> {
  if (found.kind === 'ours') {
    return {
      change: 'updated',
      detail: `include of ${component.path} raised from ${found.version || '(no version)'} to ${component.version}`,
    };
  }
  return { change: 'added', detail: `include of ${component.reference} added` };
}

/** What the edited file must mean: the original data with only `include` changed as intended. */
function expectedData(doc: Document, entry: GitlabMirrorInclude, found: Found): unknown {
  const data = doc.toJS({ maxAliasCount: 1000 }) as Record<string, unknown>;
  const include = data['include'];
  let next: unknown[];
  if (found.kind === 'ours') {
    next = (include as unknown[]).map((item, i) => (i === found.index ? { ...(item as object), ...entry } : item));
  } else if (Array.isArray(include)) {
    next = [...(include as unknown[]), entry];
  } else if (include === undefined || include === null) {
    next = [entry];
  } else {
    next = [include, entry];
  }
  return { ...data, include: next };
}

function meansExactly(text: string, expected: unknown): boolean {
  const doc = parseDocument(text, YAML_OPTIONS);
  if (doc.errors.length > 0) return false;
  try {
    return isDeepStrictEqual(doc.toJS({ maxAliasCount: 1000 }), expected);
  } catch {
    return false;
  }
}

function lineStart(text: string, pos: number): number {
  return text.lastIndexOf('\n', pos - 1) + 1;
}

/** The edit as a text splice, or undefined for shapes only the Document API handles. */
function splice(
  text: string,
  root: YAMLMap,
  found: Found,
  entry: GitlabMirrorInclude,
  component?: MirrorComponent,
): string | undefined {
  if (root.flow) return undefined;
  if (found.kind === 'ours') {
    const range = found.scalar.range;
    if (!range || component === undefined) return undefined;
    const source = text.slice(range[0], range[1]);
    const at = source.lastIndexOf('@');
    if (at < 0) return undefined;
    // Replace the version only, inside whatever quoting the user chose.
    const replaced = source.slice(0, at + 1) + source.slice(at + 1).replace(found.version, component.version);
    return text.slice(0, range[0]) + replaced + text.slice(range[1]);
  }
  if (found.kind === 'missing') {
    const firstKey = root.items[0]?.key as YamlNode | undefined;
    const keyStart = firstKey?.range?.[0];
    if (keyStart === undefined) return undefined;
    const indent = ' '.repeat(keyStart - lineStart(text, keyStart));
    const body = text.endsWith('\n') ? text : `${text}\n`;
    return `${body}\n${indent}${ADDED_COMMENT}\n${indent}include:\n${entryBlock(entry, `${indent}  `)}`;
  }
  if (found.kind === 'other' && isSeq(found.node)) {
    const seq = found.node;
    if (seq.flow) {
      const end = seq.range?.[1];
      if (end === undefined) return undefined;
      const close = text.lastIndexOf(']', end);
      if (close < 0) return undefined;
      const sep = seq.items.length > 0 ? ', ' : '';
      return `${text.slice(0, close)}${sep}${entryFlow(entry)}${text.slice(close)}`;
    }
    const start = seq.range?.[0];
    const last = seq.items[seq.items.length - 1] as YamlNode | undefined;
    const lastEnd = last?.range?.[1];
    if (start === undefined || lastEnd === undefined) return undefined;
    const indent = ' '.repeat(start - lineStart(text, start));
    let at: number;
    let prefix = '';
    if (text[lastEnd - 1] === '\n') {
      at = lastEnd;
    } else {
      const nl = text.indexOf('\n', lastEnd);
      if (nl < 0) {
        at = text.length;
        prefix = '\n';
      } else {
        at = nl + 1;
      }
    }
    return `${text.slice(0, at)}${prefix}${entryBlock(entry, indent)}${text.slice(at)}`;
  }
  return undefined;
}

/** The Document API path: comments and keys stay; layout is yaml's (long lines never folded). */
function reserialise(text: string, found: Found, wanted: GitlabMirrorInclude): string {
  const doc = parseDocument(text, YAML_OPTIONS);
  const root = doc.contents as YAMLMap;
  const entry = doc.createNode(wanted);
  if (found.kind === 'ours') {
    const seq = root.get('include', true) as unknown as YAMLSeq;
    const item = seq.items[found.index] as YAMLMap;
    item.set('component', (wanted as { component: string }).component);
  } else {
    const current = root.get('include', true) as unknown as YamlNode | null | undefined;
    if (isSeq(current)) {
      current.items.push(entry);
    } else {
      const seq = new YAMLSeq();
      if (current !== undefined && current !== null && !(isScalar(current) && current.value === null)) {
        seq.items.push(current);
      }
      seq.items.push(entry);
      if (current === undefined) {
        root.set('include', seq);
        const pair = root.items[root.items.length - 1];
        if (pair && isScalar(pair.key)) pair.key.commentBefore = ADDED_COMMENT.slice(1);
      } else {
        root.set('include', seq);
      }
    }
  }
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

// ---------------------------------------------------------------------------------------------
// A configured include (`bootstrap.gitlab.include`)

const ADDRESS_KEYS = ['component', 'project', 'ref', 'file', 'remote'] as const;

/** The first `include:` entry of a (rendered) template: a component or a project include. */
export function mirrorEntryOf(template: string): GitlabMirrorInclude {
  const data: unknown = parseDocument(template, YAML_OPTIONS).toJS();
  const include = (data as { include?: unknown } | null)?.include;
  const first = (Array.isArray(include) ? include[0] : undefined) as Record<string, unknown> | undefined;
  if (typeof first?.['component'] === 'string') return { component: first['component'] };
  if (typeof first?.['project'] === 'string' && typeof first['file'] === 'string') {
    const ref = first['ref'];
    return { project: first['project'], ...(typeof ref === 'string' ? { ref } : {}), file: first['file'] };
  }
  return { component: mirrorComponentOf(template).reference };
}

/** One line for people: `component: X` or `project: P, ref: R, file: F`. */
export function describeMirrorInclude(entry: GitlabMirrorInclude): string {
  if ('component' in entry) return `component: ${entry.component}`;
  return `project: ${entry.project}${entry.ref === undefined ? '' : `, ref: ${entry.ref}`}, file: ${entry.file}`;
}

/**
 * A YAML scalar for a validated value: plain when plain reads back as the same string (the
 * default component does, so the template stays byte for byte), else double-quoted.
 */
export function yamlScalar(value: string): string {
  if (/^[A-Za-z0-9$_./@~+-]+$/.test(value) && parseDocument(value).toJS() === value) return value;
  return JSON.stringify(value);
}

const entryPairs = (entry: GitlabMirrorInclude): [string, string][] =>
  'component' in entry
    ? [['component', entry.component]]
    : [
        ['project', entry.project],
        ...(entry.ref === undefined ? [] : [['ref', entry.ref] as [string, string]]),
        ['file', entry.file],
      ];

/** The entry as block sequence item lines, each starting with `indent`. */
function entryBlock(entry: GitlabMirrorInclude, indent: string): string {
  return entryPairs(entry)
    .map(([k, v], i) => `${indent}${i === 0 ? '- ' : '  '}${k}: ${yamlScalar(v)}\n`)
    .join('');
}

function entryFlow(entry: GitlabMirrorInclude): string {
  return `{ ${entryPairs(entry)
    .map(([k, v]) => `${k}: ${yamlScalar(v)}`)
    .join(', ')} }`;
}

/**
 * The template's include with the configured entry in place of its component line. Without a
 * setting the template is returned as it is (byte for byte what earlier versions committed).
 */
export function renderGitlabCi(template: string, include: GitlabMirrorInclude | undefined): string {
  if (include === undefined) return template;
  const line = /^([ \t]*)- component: \S+[ \t]*$/m.exec(template);
  if (!line) {
    throw new RefbridgeError('the GitLab CI template has no `- component:` line to replace', {
      hint: 'reinstall @refbridge/cli; its ci-templates/gitlab-mirror.yml is damaged',
    });
  }
  let text =
    template.slice(0, line.index) +
    entryBlock(include, line[1] ?? '').replace(/\n$/, '') +
    template.slice(line.index + line[0].length);
  if (!('component' in include)) {
    // The header explains how to switch to a project include; this file is one already.
    text = text.replace(
      / On instances without the CI\/CD catalog[^\n]*\n(?:#[^\n]*\n)*?#[^\n]*\(public URLs only\)\.\n/,
      '\n',
    );
  }
  return text;
}

const defaultComponentPath = defaultGitlabComponent.slice(0, defaultGitlabComponent.lastIndexOf('@'));

/** Whether an include item is refbridge's mirror, in whatever form (so that it is replaced, not doubled). */
function isOurEntry(item: YAMLMap, wanted: GitlabMirrorInclude): boolean {
  const text = (key: string): string | undefined => {
    const v = item.get(key, true);
    return isScalar(v) && typeof v.value === 'string' ? v.value : undefined;
  };
  const component = text('component');
  if (component !== undefined) {
    const path = splitReference(component).path.toLowerCase();
    const wantedPath = 'component' in wanted ? splitReference(wanted.component).path.toLowerCase() : undefined;
    return path === wantedPath || path === defaultComponentPath.toLowerCase() || /(^|\/)refbridge\/mirror$/i.test(path);
  }
  const project = text('project');
  if (project !== undefined) {
    const file = item.get('file', true);
    const files = (isSeq(file) ? file.items : [file]).map((f) => (isScalar(f) ? String(f.value) : ''));
    if (files.some((f) => isMirrorFile(f))) return true;
    return 'project' in wanted && project.toLowerCase() === wanted.project.toLowerCase() && files.includes(wanted.file);
  }
  const remote = text('remote');
  return remote !== undefined && /refbridge/i.test(remote) && isMirrorFile(remote);
}

/** The item's address (`component`, or `project`/`ref`/`file`), or undefined for other shapes. */
function addressOf(item: YAMLMap): GitlabMirrorInclude | undefined {
  const data = item.toJSON() as Record<string, unknown>;
  if (typeof data['remote'] === 'string') return undefined;
  if (typeof data['component'] === 'string') {
    return data['project'] === undefined && data['file'] === undefined && data['ref'] === undefined
      ? { component: data['component'] }
      : undefined;
  }
  if (typeof data['project'] === 'string' && typeof data['file'] === 'string') {
    const ref = data['ref'];
    if (ref !== undefined && typeof ref !== 'string') return undefined;
    return { project: data['project'], ...(ref === undefined ? {} : { ref }), file: data['file'] };
  }
  return undefined;
}

function sameEntry(a: GitlabMirrorInclude | undefined, b: GitlabMirrorInclude): boolean {
  return a !== undefined && isDeepStrictEqual(entryPairs(a), entryPairs(b));
}

function enforceMirrorInclude(existing: string | undefined, template: string, where: string): IncludeEdit {
  const wanted = mirrorEntryOf(template);
  const label = describeMirrorInclude(wanted);
  const yourself = `add \`include: - ${label}\` yourself, then run again`;
  if (existing === undefined || existing.trim() === '') {
    return { content: template, change: 'created', detail: `new ${GITLAB_CI_FILE} including ${label}` };
  }
  const doc = parseDocument(existing, YAML_OPTIONS);
  if (doc.errors.length > 0) {
    throw new GitlabCiFileError(
      `${where} is not valid YAML (${doc.errors[0]?.message.split('\n')[0] ?? 'parse error'})`,
      { hint: `fix ${GITLAB_CI_FILE} (GitLab's pipeline editor validates it), or ${yourself}` },
    );
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === undefined))) {
    return {
      content: `${existing.replace(/\s*$/, '')}\n\n${template}`,
      change: 'added',
      detail: `include of ${label} added`,
    };
  }
  if (!isMap(root)) {
    throw new GitlabCiFileError(`${where} is not a mapping of jobs and keywords`, {
      hint: `fix ${GITLAB_CI_FILE}, or ${yourself}`,
    });
  }

  const pair = root.items.find((p) => isScalar(p.key) && p.key.value === 'include');
  const node = (pair?.value ?? null) as YamlNode | null;
  const items = isSeq(node) ? node.items : node === null ? [] : [node];
  const index = items.findIndex((item) => isMap(item) && isOurEntry(item, wanted));
  if (index < 0) {
    // Not there in any form: added exactly as the default path adds the component.
    const found: Found = pair === undefined ? { kind: 'missing' } : { kind: 'other', node };
    const expected = expectedData(doc, wanted, found);
    const spliced = splice(existing, root, found, wanted);
    const content =
      spliced !== undefined && meansExactly(spliced, expected) ? spliced : reserialise(existing, found, wanted);
    if (!meansExactly(content, expected)) {
      throw new GitlabCiFileError(`refbridge could not add its include to ${where} without changing anything else`, {
        hint: `${yourself} (and report this file's shape as a refbridge bug)`,
      });
    }
    return { content, change: 'added', detail: `include of ${label} added` };
  }

  const item = items[index] as YAMLMap;
  const current = addressOf(item);
  if (sameEntry(current, wanted)) {
    return { content: existing, change: 'unchanged', detail: `already includes ${label}` };
  }
  const before = current === undefined ? 'another form of it' : describeMirrorInclude(current);
  const data = doc.toJS({ maxAliasCount: 1000 }) as Record<string, unknown>;
  const replace = (value: unknown): unknown => {
    const rest = Object.fromEntries(
      Object.entries(value as Record<string, unknown>).filter(
        ([k]) => !(ADDRESS_KEYS as readonly string[]).includes(k),
      ),
    );
    return { ...rest, ...wanted };
  };
  const include = data['include'];
  const expected = {
    ...data,
    include: Array.isArray(include)
      ? (include as unknown[]).map((v, i) => (i === index ? replace(v) : v))
      : replace(include),
  };
  const spliced = current !== undefined ? spliceAddress(existing, item, current, wanted) : undefined;
  const content =
    spliced !== undefined && meansExactly(spliced, expected) ? spliced : reserialiseAddress(existing, index, wanted);
  if (!meansExactly(content, expected)) {
    throw new GitlabCiFileError(`refbridge could not replace its include in ${where} without changing anything else`, {
      hint: `replace refbridge's entry with \`${label}\` yourself, then run again (and report this file's shape as a refbridge bug)`,
    });
  }
  return { content, change: 'updated', detail: `include changed from ${before} to ${label}` };
}

/** Same keys before and after: the values are replaced inside the text, quoting and all. */
function spliceAddress(
  text: string,
  item: YAMLMap,
  current: GitlabMirrorInclude,
  wanted: GitlabMirrorInclude,
): string | undefined {
  const now = entryPairs(current);
  const next = entryPairs(wanted);
  if (now.map(([k]) => k).join() !== next.map(([k]) => k).join()) return undefined;
  const edits: [number, number, string][] = [];
  for (const [key, value] of next) {
    const scalar = item.get(key, true);
    if (!isScalar(scalar) || !scalar.range) return undefined;
    // Keep the user's quoting style.
    const quote = text[scalar.range[0]];
    const written =
      quote === "'" ? `'${value.replace(/'/g, "''")}'` : quote === '"' ? JSON.stringify(value) : yamlScalar(value);
    edits.push([scalar.range[0], scalar.range[1], written]);
  }
  let out = text;
  for (const [start, end, value] of edits.sort((a, b) => b[0] - a[0])) {
    // A plain scalar's range can take trailing spaces before a comment; keep them.
    const old = out.slice(start, end);
    const trailing = /\s*$/.exec(old)?.[0] ?? '';
    out = out.slice(0, start) + value + trailing + out.slice(end);
  }
  return out;
}

/** Other keys: the Document API, the address keys replaced where the first of them was. */
function reserialiseAddress(text: string, index: number, wanted: GitlabMirrorInclude): string {
  const doc = parseDocument(text, YAML_OPTIONS);
  const root = doc.contents as YAMLMap;
  const node = root.get('include', true) as unknown as YamlNode;
  const item = (isSeq(node) ? node.items[index] : node) as YAMLMap;
  const at = item.items.findIndex((p) => isScalar(p.key) && (ADDRESS_KEYS as readonly unknown[]).includes(p.key.value));
  item.items = item.items.filter(
    (p) => !(isScalar(p.key) && (ADDRESS_KEYS as readonly unknown[]).includes(p.key.value)),
  );
  item.items.splice(at < 0 ? 0 : at, 0, ...entryPairs(wanted).map(([k, v]) => doc.createPair(k, v)));
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
