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

/**
 * The new `.gitlab-ci.yml`: the template for a project without one, else the existing file with
 * the component added (or its version raised). Idempotent: a second call returns `unchanged`.
 */
export function ensureMirrorInclude(
  existing: string | undefined,
  template: string,
  where = GITLAB_CI_FILE,
): IncludeEdit {
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
  const expected = expectedData(doc, component, found);
  const spliced = splice(existing, root, found, component);
  const content =
    spliced !== undefined && meansExactly(spliced, expected) ? spliced : reserialise(existing, found, component);
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
function expectedData(doc: Document, component: MirrorComponent, found: Found): unknown {
  const data = doc.toJS({ maxAliasCount: 1000 }) as Record<string, unknown>;
  const entry = { component: component.reference };
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
function splice(text: string, root: YAMLMap, found: Found, component: MirrorComponent): string | undefined {
  if (root.flow) return undefined;
  if (found.kind === 'ours') {
    const range = found.scalar.range;
    if (!range) return undefined;
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
    return `${body}\n${indent}${ADDED_COMMENT}\n${indent}include:\n${indent}  - component: ${component.reference}\n`;
  }
  if (found.kind === 'other' && isSeq(found.node)) {
    const seq = found.node;
    if (seq.flow) {
      const end = seq.range?.[1];
      if (end === undefined) return undefined;
      const close = text.lastIndexOf(']', end);
      if (close < 0) return undefined;
      const sep = seq.items.length > 0 ? ', ' : '';
      return `${text.slice(0, close)}${sep}{ component: ${component.reference} }${text.slice(close)}`;
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
    return `${text.slice(0, at)}${prefix}${indent}- component: ${component.reference}\n${text.slice(at)}`;
  }
  return undefined;
}

/** The Document API path: comments and keys stay; layout is yaml's (long lines never folded). */
function reserialise(text: string, found: Found, component: MirrorComponent): string {
  const doc = parseDocument(text, YAML_OPTIONS);
  const root = doc.contents as YAMLMap;
  const entry = doc.createNode({ component: component.reference });
  if (found.kind === 'ours') {
    const seq = root.get('include', true) as unknown as YAMLSeq;
    const item = seq.items[found.index] as YAMLMap;
    item.set('component', component.reference);
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
