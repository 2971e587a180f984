/**
 * Reads `refbridge.yaml` (or the original tool's `repos.yaml`) once, checks everything, and either
 * returns one typed, fully resolved `RefbridgeConfig` or throws one `ConfigError` listing every
 * problem with file, line, column, key path and what to do. A config error found after the first
 * push is a half-done sync, so nothing is resolved lazily.
 *
 * Order of work: YAML syntax (stop there: a broken tree gives misleading follow-up errors), empty
 * file, top-level type, secrets, the JSON Schema (structure, types, unknown keys), then the rules a
 * schema cannot say well (names safe as paths, duplicates across pairs, URLs, environment).
 *
 * Precedence: environment > file > built-in defaults. The variables describe the instance this
 * process runs against: on an Actions runner GITHUB_SERVER_URL / GITHUB_API_URL always name the
 * runner's own instance, and an operator can point one run elsewhere without editing a shared
 * file. Each forge's URL pair is taken from one source as a unit (an environment URL never mixes
 * with a file API URL), and `ForgeEndpoint.origin` says which, so shells can log it.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type Node as YamlNode,
  type Pair as YamlPair,
  type YAMLMap,
} from 'yaml';
import { ConfigError, type ConfigProblem } from './errors.js';
import {
  builtinBootstrap,
  builtinPolicy,
  configSchema,
  defaultGithubUrl,
  defaultGitlabUrl,
  githubActionPattern,
  gitlabComponentPattern,
  pairNamePattern,
} from './config-schema.js';
import { lfsPolicies, type LfsPolicy } from './lfs-attributes.js';

export type DivergencePolicy = 'halt-ref' | 'halt-pair';
export type DeletionPolicy = 'propagate' | 'ignore';
export type RewritePolicy = 'allow' | 'deny';
const visibilities = ['private', 'internal', 'public'] as const;
export type RepoVisibility = (typeof visibilities)[number];

/** Which refs of a pair are synced; globs match short names (`main`, `release/1.2`, `v1.0`). */
export interface RefSelection {
  readonly branches: boolean;
  readonly tags: boolean;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

/** How one pair is synced: `defaults` with the pair's own keys on top. */
export interface PairPolicy {
  readonly divergence: DivergencePolicy;
  readonly deletions: DeletionPolicy;
  readonly rewrites: RewritePolicy;
  readonly refs: RefSelection;
  readonly protectedBranches: { readonly temporarilyAllowForcePush: boolean };
  readonly pushOptions: { readonly gitlabCiSkip: boolean };
  /** Refs that store files with Git LFS: refuse them (`fail`) or push their pointers and warn. */
  readonly lfs: LfsPolicy;
}

/** Where a setting came from, for logs such as "GitLab: https://git.corp (from GITLAB_URL)". */
export type SettingOrigin = 'environment' | 'file' | 'default';

export interface ForgeEndpoint {
  /** Web and git base URL, no trailing slash. */
  readonly url: string;
  /** REST API base URL, no trailing slash. */
  readonly apiUrl: string;
  readonly origin: SettingOrigin;
}

/** Where a pair is written, so later reports can point back at the file. */
export interface ConfigLocation {
  readonly source: string;
  readonly key: string;
  readonly line?: number;
  readonly column?: number;
}

export interface ResolvedPair {
  /** Unique (case-insensitively) across the file; safe as a file or ref name. */
  readonly name: string;
  readonly github: { readonly owner: string; readonly name: string; readonly fullName: string };
  /** `path` is the full project path; `namespace` the groups before the last segment. */
  readonly gitlab: { readonly path: string; readonly namespace: string; readonly name: string };
  readonly policy: PairPolicy;
  readonly declaredAt: ConfigLocation;
}

/** The `include:` entry bootstrap writes into `.gitlab-ci.yml`. */
export type GitlabMirrorInclude =
  { readonly component: string } | { readonly project: string; readonly ref?: string; readonly file: string };

export interface BootstrapSettings {
  readonly github: {
    readonly visibility: RepoVisibility;
    /** `uses:` of the committed workflow; undefined: the template's (`refbridge/refbridge@v1`). */
    readonly action?: string;
  };
  readonly gitlab: {
    readonly visibility: RepoVisibility;
    readonly protectVariables: boolean;
    /**
     * undefined: the template's component, and an existing entry the user changed is left alone.
     * Set: the config is the truth, and a different refbridge entry in the file is replaced.
     */
    readonly include?: GitlabMirrorInclude;
  };
}

export interface RefbridgeConfig {
  /** The file read, or the label given to `parseConfig`. */
  readonly source: string;
  readonly github: ForgeEndpoint;
  readonly gitlab: ForgeEndpoint;
  /** Pushes by these accounts are not mirrored back (loop guard). */
  readonly botUsers: { readonly github?: string; readonly gitlab?: string };
  readonly defaults: PairPolicy;
  readonly pairs: readonly ResolvedPair[];
  readonly bootstrap: BootstrapSettings;
}

/** The environment as the shell read it; core never reads `process.env` itself. */
export type ConfigEnv = Readonly<Record<string, string | undefined>>;

export interface ParseConfigOptions {
  /** File name or label used in every problem. */
  source: string;
  env?: ConfigEnv;
}

export interface LoadConfigOptions {
  /** The config file. Without it, the first of `configFileNames` found in `cwd` is read. */
  path?: string;
  /** Where to look when `path` is not given (default: the process's working directory). */
  cwd?: string;
  env?: ConfigEnv;
}

/** Looked for in this order when no path is given. */
export const configFileNames = ['refbridge.yaml', 'refbridge.yml', 'repos.yaml'] as const;

/** The variables that override the file. Tokens are read elsewhere, never through the config. */
export const configEnvVars = {
  githubUrl: 'GITHUB_SERVER_URL',
  githubApiUrl: 'GITHUB_API_URL',
  gitlabUrl: 'GITLAB_URL',
  gitlabApiUrl: 'GITLAB_API_URL',
  botUserGithub: 'MIRROR_BOT_USER_GITHUB',
  botUserGitlab: 'MIRROR_BOT_USER_GITLAB',
  /** `fail` or `pointers`: the `lfs` policy of every pair, whatever the file says. */
  lfs: 'REFBRIDGE_LFS',
} as const;

const ENV_SOURCE = 'environment';

// ---------------------------------------------------------------------------------------------
// Entry points

/** Reads and checks the config file; throws `ConfigError` with every problem found. */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<RefbridgeConfig> {
  const path = options.path ?? (await findConfigFile(options.cwd ?? '.'));
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError([readProblem(path, error)]);
  }
  return parseConfig(text, { source: path, ...(options.env === undefined ? {} : { env: options.env }) });
}

/** Checks config text; throws `ConfigError` with every problem found. */
export function parseConfig(text: string, options: ParseConfigOptions): RefbridgeConfig {
  const { source } = options;
  const env = options.env ?? {};
  const lineCounter = new LineCounter();
  // Editors on Windows like to write a BOM; it is not content.
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), {
    lineCounter,
    prettyErrors: false,
    // `<<: *anchor` is common in CI YAML; users expect it to work here too.
    merge: true,
    uniqueKeys: true,
  });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return {
          source,
          line: pos.line,
          column: pos.col,
          message: `YAML syntax error: ${e.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '')}`,
          hint: syntaxHint(e.code),
        };
      }),
    );
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new ConfigError([
      {
        source,
        message: 'the file is empty',
        hint: 'add at least `pairs:` with one `- github: owner/name` / `gitlab: group/project` entry; `refbridge init` writes a commented starter file',
      },
    ]);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError([
      {
        source,
        message: `the YAML cannot be read: ${error instanceof Error ? error.message : String(error)}`,
        hint: 'use fewer aliases (*name); each must point at an anchor (&name) defined before it',
      },
    ]);
  }
  if (!isRecord(data)) {
    const pos = lineCounter.linePos(doc.contents.range?.[0] ?? 0);
    throw new ConfigError([
      {
        source,
        line: pos.line,
        column: pos.col,
        message: `the top level must be a mapping of keys such as \`github:\`, \`gitlab:\` and \`pairs:\`, got ${kindOf(data)}`,
        hint: Array.isArray(data)
          ? 'put the list under `pairs:` (or `repos:`), indented one level'
          : 'start the file with `pairs:`; `refbridge init` writes a commented starter file',
      },
    ]);
  }

  const checker = new Checker(new Locator(doc, lineCounter, source));
  findSecrets(checker, doc.contents, []);
  schemaProblems(checker, data);
  const resolved = checkAndResolve(checker, data, env);
  if (checker.problems.length > 0 || resolved === undefined) throw new ConfigError(checker.sorted());
  return resolved;
}

async function findConfigFile(cwd: string): Promise<string> {
  for (const name of configFileNames) {
    const candidate = join(cwd, name);
    try {
      await access(candidate);
      return candidate;
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') continue;
      // There but not accessible: reading it reports the real reason for that file.
      return candidate;
    }
  }
  throw new ConfigError([
    {
      source: cwd === '.' ? 'the current directory' : cwd,
      message: `no config file found (looked for ${configFileNames.join(', ')})`,
      hint: 'run `refbridge init` to write a starter refbridge.yaml, or pass the file with --config PATH',
    },
  ]);
}

function readProblem(path: string, error: unknown): ConfigProblem {
  switch (errorCode(error)) {
    case 'ENOENT':
      return {
        source: path,
        message: 'the config file does not exist',
        hint: 'check the path, or run `refbridge init` to write a starter refbridge.yaml there',
      };
    case 'EISDIR':
      return {
        source: path,
        message: 'is a directory, not a config file',
        hint: `pass the YAML file itself, e.g. ${join(path, 'refbridge.yaml')}`,
      };
    case 'EACCES':
    case 'EPERM':
      return {
        source: path,
        message: 'the config file cannot be read: permission denied',
        hint: 'make it readable by the user that runs refbridge',
      };
    default:
      return {
        source: path,
        message: `the config file cannot be read: ${error instanceof Error ? error.message : String(error)}`,
        hint: 'check that the path names a readable file',
      };
  }
}

function syntaxHint(code: string): string {
  switch (code) {
    case 'DUPLICATE_KEY':
      return 'each key may appear once per mapping: merge the two entries or delete one';
    case 'MULTIPLE_DOCS':
      return 'keep one YAML document per file: remove the extra `---` separator';
    case 'TAB_AS_INDENT':
      return 'indent with spaces, not tabs';
    default:
      return 'check the indentation (spaces only), the `key: value` colons and the quotes on or just before this line';
  }
}

// ---------------------------------------------------------------------------------------------
// Locating problems in the YAML

type PathSegment = string | number;

/** `pairs[2].github`, the form every problem uses. */
function formatKeyPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

interface Position {
  line?: number;
  column?: number;
}

class Locator {
  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    readonly source: string,
  ) {}

  /**
   * The position of the value at `path` (scalars) or of its key (collections and empty values,
   * whose own node starts on a later line or nowhere). `at: 'key'` always points at the key.
   * Falls back to the deepest ancestor present, e.g. for keys that came in through `<<: *x`.
   */
  position(path: readonly PathSegment[], at: 'value' | 'key' = 'value'): Position {
    let node: unknown = this.doc.contents;
    let best: number | undefined;
    for (const [i, seg] of path.entries()) {
      node = this.deref(node);
      if (isMap(node)) {
        const pair = this.findPair(node, String(seg));
        if (pair === undefined) break;
        best = startOf(pair.key) ?? best;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        best = startOf(node) ?? best;
      } else {
        break;
      }
      if (i === path.length - 1) {
        const n = this.deref(node);
        if (at === 'value' && isScalar(n) && n.source !== '' && n.value !== null) best = startOf(n) ?? best;
      }
    }
    if (best === undefined) return {};
    const { line, col } = this.lineCounter.linePos(best);
    return { line, column: col };
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }

  private findPair(map: YAMLMap, key: string): YamlPair | undefined {
    const direct = map.items.find((p) => keyText(p.key) === key);
    if (direct !== undefined) return direct;
    for (const p of map.items) {
      if (keyText(p.key) !== '<<') continue;
      const target = this.deref(p.value);
      const sources = isSeq(target) ? target.items.map((i) => this.deref(i)) : [target];
      for (const s of sources) {
        if (!isMap(s)) continue;
        const found = this.findPair(s, key);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  }
}

function keyText(key: unknown): string | undefined {
  if (!isScalar(key)) return undefined;
  const v = key.value;
  return typeof v === 'symbol' ? v.description : String(v);
}

function startOf(node: unknown): number | undefined {
  const range = (node as YamlNode | null | undefined)?.range;
  return range ? range[0] : undefined;
}

/** Collects problems; a path reported as a secret gets no further (noisier) problems. */
class Checker {
  readonly problems: ConfigProblem[] = [];
  private readonly silenced = new Set<string>();

  constructor(readonly locator: Locator) {}

  get source(): string {
    return this.locator.source;
  }

  add(path: readonly PathSegment[], message: string, hint?: string, at: 'value' | 'key' = 'value'): void {
    if (this.isSilenced(path)) return;
    const key = formatKeyPath(path);
    this.problems.push({
      source: this.source,
      ...this.locator.position(path, at),
      ...(key === '' ? {} : { key }),
      message,
      ...(hint === undefined ? {} : { hint }),
    });
  }

  addEnv(variable: string, message: string, hint?: string): void {
    this.problems.push({ source: ENV_SOURCE, key: variable, message, ...(hint === undefined ? {} : { hint }) });
  }

  silence(path: readonly PathSegment[]): void {
    this.silenced.add(formatKeyPath(path));
  }

  isSilenced(path: readonly PathSegment[]): boolean {
    for (let i = path.length; i > 0; i--) if (this.silenced.has(formatKeyPath(path.slice(0, i)))) return true;
    return false;
  }

  /** File problems first, in file order; environment problems after; duplicates dropped. */
  sorted(): ConfigProblem[] {
    const seen = new Set<string>();
    const unique = this.problems.filter((p) => {
      const id = JSON.stringify([p.source, p.line, p.column, p.key, p.message]);
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
    const rank = (p: ConfigProblem) => (p.source === ENV_SOURCE ? 1 : 0);
    return unique
      .map((p, i) => ({ p, i }))
      .sort(
        (a, b) =>
          rank(a.p) - rank(b.p) ||
          (a.p.line ?? 0) - (b.p.line ?? 0) ||
          (a.p.column ?? 0) - (b.p.column ?? 0) ||
          a.i - b.i,
      )
      .map(({ p }) => p);
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets

const SECRET_KEY = /token|passw(?:or)?d|secret|credential|api[-_]?key|private[-_]?key/i;
/** Prefixes of GitHub and GitLab access tokens, so a pasted token is caught under any key. */
const TOKEN_VALUE =
  /(?:^|[^A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|gl(?:pat|dt|ptt|rt|oas|cbt|ft|imt|soat|agent)-[A-Za-z0-9_-]{20,})/;

export function looksLikeToken(value: string): boolean {
  return TOKEN_VALUE.test(value);
}

function tokenVariables(path: readonly PathSegment[]): string {
  const text = path.join('.').toLowerCase();
  if (text.includes('github') && !text.includes('gitlab')) return 'GITHUB_TOKEN';
  if (text.includes('gitlab') && !text.includes('github')) return 'GITLAB_TOKEN';
  return 'GITHUB_TOKEN and GITLAB_TOKEN';
}

function findSecrets(checker: Checker, node: unknown, path: PathSegment[]): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = keyText(pair.key) ?? '';
      const child = [...path, key];
      if (SECRET_KEY.test(key)) {
        const vars = tokenVariables(child);
        checker.add(
          child,
          `"${key}" looks like a secret, and secrets never go in the config file`,
          `delete it; refbridge reads tokens only from the environment: ${vars}, set from CI secrets or masked variables${
            isScalar(pair.value) && pair.value.value ? '; rotate the token if this file was ever committed' : ''
          }`,
          'key',
        );
        checker.silence(child);
        continue;
      }
      findSecrets(checker, pair.value, child);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => findSecrets(checker, item, [...path, i]));
  } else if (isScalar(node) && typeof node.value === 'string' && looksLikeToken(node.value)) {
    checker.add(
      path,
      'this value contains what looks like an access token',
      `remove it and rotate the token; refbridge reads tokens only from the environment: ${tokenVariables(path)}`,
    );
    checker.silence(path);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON Schema

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  // strict: a schema mistake fails loudly in tests instead of being logged and ignored.
  compiled ??= new Ajv({ allErrors: true, verbose: true, strict: true }).compile(configSchema);
  return compiled;
}

type SchemaNode = {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  $ref?: string;
  type?: string;
  enum?: unknown[];
};

function deref(schema: SchemaNode | undefined): SchemaNode | undefined {
  if (schema?.$ref === undefined) return schema;
  const name = schema.$ref.replace('#/definitions/', '');
  return (configSchema.definitions as Record<string, SchemaNode>)[name];
}

/** For each key name, where in the file it is allowed ("defaults", "each pair", ...). */
const keyHomes: ReadonlyMap<string, readonly string[]> = (() => {
  const homes = new Map<string, string[]>();
  const walk = (schema: SchemaNode | undefined, label: string) => {
    const s = deref(schema);
    if (s?.items !== undefined) return walk(s.items, label);
    for (const [key, child] of Object.entries(s?.properties ?? {})) {
      if (key === '$schema') continue;
      const list = homes.get(key) ?? [];
      if (!list.includes(label)) list.push(label);
      homes.set(key, list);
      // `repos` is an alias of `pairs`: mention its home once.
      if (key === 'repos') continue;
      const childLabel =
        key === 'pairs' ? 'each pair' : label === 'the top level' ? `\`${key}:\`` : `${label} > \`${key}:\``;
      walk(child, childLabel);
    }
  };
  walk(configSchema, 'the top level');
  return homes;
})();

function schemaProblems(checker: Checker, data: Record<string, unknown>): void {
  const validate = validator();
  if (validate(data)) return;
  for (const error of validate.errors ?? []) schemaProblem(checker, error, data);
}

function pointerToPath(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9]\d*)$/.test(s) ? Number(s) : s));
}

function schemaProblem(checker: Checker, error: ErrorObject, data: Record<string, unknown>): void {
  // Numeric segments are list indexes only where the data is a list; `pointerToPath` guesses,
  // so fix up any digit-only mapping key.
  const path = fixIndexes(pointerToPath(error.instancePath), data);
  const params = error.params as {
    additionalProperty?: string;
    missingProperty?: string;
    allowedValues?: unknown[];
    type?: string;
  };
  const parent = error.parentSchema as SchemaNode | undefined;
  const last = path[path.length - 1];
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = params.additionalProperty ?? '';
      // Reported as a secret where it is written (possibly an anchor merged in here).
      if (SECRET_KEY.test(key)) return;
      const known = Object.keys(parent?.properties ?? {}).filter((k) => k !== '$schema');
      checker.add([...path, key], `unknown key "${key}"`, unknownKeyHint(key, known, parent), 'key');
      return;
    }
    case 'required': {
      const missing = params.missingProperty ?? '';
      const inPair = path.length === 2 && (path[0] === 'pairs' || path[0] === 'repos');
      checker.add(
        path,
        `missing "${missing}"`,
        inPair ? 'each pair needs `github: owner/name` and `gitlab: group/project`' : `add \`${missing}:\` here`,
      );
      return;
    }
    case 'type':
      checker.add(path, ...typeMessage(params.type ?? 'unknown', error.data, path));
      return;
    case 'enum': {
      const allowed = (params.allowedValues ?? []).map(String);
      const suggestion = typeof error.data === 'string' ? closest(error.data, allowed) : undefined;
      checker.add(
        path,
        `must be one of ${allowed.join(', ')}; got ${show(error.data)}`,
        suggestion === undefined ? undefined : `did you mean ${suggestion}?`,
      );
      return;
    }
    case 'minItems':
      checker.add(
        path,
        'is empty: list at least one pair',
        'add `- github: owner/name` with `gitlab: group/project` under it',
      );
      return;
    case 'minLength':
      checker.add(
        path,
        'must not be empty',
        typeof last === 'string' ? `give it a value or delete \`${last}:\`` : undefined,
      );
      return;
    case 'pattern':
      // Reported with the precise reason by the checks below.
      return;
    default:
      checker.add(path, error.message ?? `fails the schema rule "${error.keyword}"`);
  }
}

function fixIndexes(path: PathSegment[], data: unknown): PathSegment[] {
  let node: unknown = data;
  return path.map((seg) => {
    const s = typeof seg === 'number' && !Array.isArray(node) ? String(seg) : seg;
    node = Array.isArray(node) ? node[s as number] : isRecord(node) ? node[String(s)] : undefined;
    return s;
  });
}

const typeNames: Record<string, string> = {
  string: 'text',
  boolean: 'true or false',
  object: 'a mapping (`key: value` lines)',
  array: 'a list',
  number: 'a number',
  integer: 'a whole number',
};

function typeMessage(expected: string, value: unknown, path: readonly PathSegment[]): [string, string | undefined] {
  const want = typeNames[expected] ?? expected;
  const last = path[path.length - 1];
  if (value === null && !(expected === 'array' && path.length === 1)) {
    return [
      `has no value; it must be ${want}`,
      typeof last === 'string' ? `give it a value or delete \`${last}:\`` : 'remove the empty `-` item',
    ];
  }
  const message = `must be ${want}, got ${show(value)}`;
  if (expected === 'boolean' && typeof value === 'string') {
    return [
      message,
      /^(y|n|yes|no|on|off)$/i.test(value)
        ? 'YAML 1.2 reads yes/no/on/off as text: write true or false'
        : /^(true|false)$/i.test(value)
          ? 'write true or false in lower case without quotes'
          : 'write true or false',
    ];
  }
  if (expected === 'string' && (typeof value === 'number' || typeof value === 'boolean')) {
    return [message, `quote it if it is meant as text: "${String(value)}"`];
  }
  if (expected === 'array' && path.length === 1 && (last === 'pairs' || last === 'repos')) {
    return [message, 'list the pairs under it: `- github: owner/name` with `gitlab: group/project` on the next line'];
  }
  if (expected === 'array' && (typeof value === 'string' || typeof value === 'number')) {
    return [message, `write a list: [${String(value)}], or one \`- item\` per line`];
  }
  if (expected === 'object' && typeof last === 'number' && typeof value === 'string') {
    return [message, 'write each pair as `- github: owner/name` with `gitlab: group/project` on the next line'];
  }
  return [message, undefined];
}

function unknownKeyHint(key: string, known: readonly string[], parent: SchemaNode | undefined): string | undefined {
  const flat = normalizeKey(key);
  const sameButSpelling = known.find((k) => normalizeKey(k) === flat);
  if (sameButSpelling !== undefined) return `did you mean "${sameButSpelling}"?`;
  // `githubUrl` / `gitlab_api_url` for a nested key.
  for (const [prop, child] of Object.entries(parent?.properties ?? {})) {
    for (const sub of Object.keys(deref(child)?.properties ?? {})) {
      if (normalizeKey(prop + sub) === flat) return `write it nested: \`${prop}:\` with \`${sub}:\` under it`;
    }
  }
  const homes = keyHomes.get(key);
  if (homes !== undefined && homes.length > 0) return `"${key}" belongs under ${homes.join(' or ')}`;
  const suggestion = closest(key, known);
  if (suggestion !== undefined) return `did you mean "${suggestion}"?`;
  return known.length > 0 ? `the keys allowed here are ${known.join(', ')}` : undefined;
}

function normalizeKey(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '');
}

/** The candidate within a small edit distance of `word`, for "did you mean" hints. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  const norm = normalizeKey(word);
  const exact = candidates.find((c) => normalizeKey(c) === norm);
  if (exact !== undefined) return exact;
  const limit = norm.length <= 4 ? 1 : norm.length <= 10 ? 2 : 3;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const c of candidates) {
    const d = editDistance(norm, normalizeKey(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("tpye"). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, at(i - 2, j - 2) + 1);
      (rows[i] as number[])[j] = d;
    }
  }
  return at(a.length, b.length);
}

// ---------------------------------------------------------------------------------------------
// Names and URLs (exported: adapters validate names from APIs with the same rules)

export interface NameProblem {
  message: string;
  hint?: string;
}

/** Rules shared by every name that becomes a path or ref: no traversal, no odd characters. */
function pathSafety(value: string, example: string): NameProblem | undefined {
  if (value.trim() === '') return { message: 'must not be empty', hint: `write it as ${example}` };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    return { message: 'contains a control character', hint: `write it as ${example}` };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || /^[^/\s]+@[^/\s]+:/.test(value)) {
    return { message: `${show(value)} is a URL; write the repository path`, hint: `e.g. ${example}` };
  }
  if (value.includes('\\')) return { message: 'must not contain "\\"', hint: 'separate the parts with "/"' };
  if (/\s/.test(value)) return { message: 'must not contain spaces', hint: `write it as ${example}` };
  if (value.startsWith('/')) {
    return { message: 'must not start with "/"', hint: `write it without the leading slash, e.g. ${example}` };
  }
  if (value.endsWith('/')) return { message: 'must not end with "/"', hint: 'remove the trailing slash' };
  if (value.includes('//')) return { message: 'has an empty part ("//")', hint: 'remove the extra slash' };
  if (value.split('/').some((s) => s === '.' || s === '..')) {
    return {
      message: 'must not contain "." or ".." parts',
      hint: `refbridge turns these names into directories and refs; write the real path, e.g. ${example}`,
    };
  }
  return undefined;
}

/** Why `value` is not a GitHub `owner/name`, or undefined when it is one. */
export function checkGithubRepo(value: string): NameProblem | undefined {
  const example = 'acme/widgets';
  const unsafe = pathSafety(value, example);
  if (unsafe !== undefined) return unsafe;
  const parts = value.split('/');
  if (parts.length === 1) return { message: `${show(value)} must be owner/name`, hint: `e.g. ${example}` };
  if (parts.length > 2) {
    return {
      message: `${show(value)} has ${parts.length} parts; GitHub has no nested groups`,
      hint: 'write owner/name',
    };
  }
  const [owner = '', name = ''] = parts;
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,38}$/.test(owner)) {
    return {
      message: `owner ${show(owner)} is not a GitHub account name`,
      hint: 'letters, digits, "-" and "_", at most 39, starting with a letter or digit',
    };
  }
  if (name.endsWith('.git'))
    return { message: 'must not end with ".git"', hint: `write ${owner}/${name.slice(0, -4)}` };
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) {
    return {
      message: `repository name ${show(name)} is not a GitHub repository name`,
      hint: 'letters, digits, ".", "-" and "_", at most 100',
    };
  }
  return undefined;
}

/** Why `value` is not a GitLab project path `group(/subgroup)*\/project`, or undefined. */
export function checkGitlabProjectPath(value: string): NameProblem | undefined {
  const example = 'platform/tools/widgets';
  const unsafe = pathSafety(value, example);
  if (unsafe !== undefined) return unsafe;
  const parts = value.split('/');
  if (parts.length === 1) {
    return {
      message: `${show(value)} must be the full project path, group/project`,
      hint: `a project lives in a group or user namespace, e.g. ${example}`,
    };
  }
  if (parts.length > 22) return { message: 'nests too deep', hint: 'GitLab allows at most 20 levels of subgroups' };
  for (const part of parts) {
    if (part.endsWith('.git') || part.endsWith('.atom')) {
      return {
        message: `part ${show(part)} must not end with ".git" or ".atom"`,
        hint: 'write the project path as shown in its GitLab URL',
      };
    }
    if (part.startsWith('-')) return { message: `part ${show(part)} must not start with "-"` };
    if (!/^[A-Za-z0-9._-]{1,255}$/.test(part)) {
      return {
        message: `part ${show(part)} is not a GitLab path`,
        hint: 'letters, digits, ".", "-" and "_"; write the path as shown in the project URL, not its display name',
      };
    }
  }
  return undefined;
}

/** Why `value` is not an Action reference `owner/repo@ref` / `owner/repo/path@ref`, or undefined. */
export function checkGithubActionRef(value: string): NameProblem | undefined {
  const example = 'refbridge/refbridge@v1';
  if (value.startsWith('docker://') || value.startsWith('./')) {
    return {
      message: `${show(value)} is not a repository Action`,
      hint: `write owner/repo@ref, e.g. ${example}`,
    };
  }
  const unsafe = pathSafety(value, example);
  if (unsafe !== undefined) return unsafe;
  const at = value.indexOf('@');
  if (at < 0) {
    return {
      message: `${show(value)} has no "@ref"`,
      hint: `pin a tag, a branch or a full commit SHA, e.g. ${example}`,
    };
  }
  const path = value.slice(0, at);
  const ref = value.slice(at + 1);
  const parts = path.split('/');
  if (parts.length < 2) return { message: `${show(path)} must be owner/repo`, hint: `e.g. ${example}` };
  const [owner = '', repo = '', ...rest] = parts;
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,38}$/.test(owner)) {
    return {
      message: `owner ${show(owner)} is not a GitHub account name`,
      hint: 'letters, digits, "-" and "_", at most 39, starting with a letter or digit',
    };
  }
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(repo)) {
    return { message: `repository name ${show(repo)} is not a GitHub repository name`, hint: `e.g. ${example}` };
  }
  for (const part of rest) {
    if (!/^[A-Za-z0-9._-]{1,255}$/.test(part)) {
      return {
        message: `path part ${show(part)} is not usable in \`uses:\``,
        hint: 'letters, digits, ".", "-" and "_" in the directory of the action.yml',
      };
    }
  }
  if (ref === '' || ref.includes('@')) {
    return { message: `${show(value)} must have exactly one "@" followed by a ref`, hint: `e.g. ${example}` };
  }
  if (!new RegExp(githubActionPattern, 'u').test(value)) {
    return {
      message: `ref ${show(ref)} is not a tag, branch or commit SHA`,
      hint: 'letters, digits, ".", "-", "_" and "/"; no "..", not starting with "." or "-", not ending with "."',
    };
  }
  return undefined;
}

/** Why `value` is not a GitLab CI/CD component address, or undefined. */
export function checkGitlabComponent(value: string): NameProblem | undefined {
  const example = '$CI_SERVER_FQDN/tools/refbridge/mirror@0.1.0';
  // eslint-disable-next-line no-control-regex
  if (value.trim() === '' || /[\s\u0000-\u001f\u007f]/.test(value)) {
    return { message: 'must not be empty or contain spaces', hint: `write it as ${example}` };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    return { message: `${show(value)} is a URL; a component address has no scheme`, hint: `e.g. ${example}` };
  }
  const at = value.lastIndexOf('@');
  if (at < 0 || at === value.length - 1) {
    return { message: `${show(value)} has no "@version"`, hint: `pin a version, e.g. ${example}` };
  }
  if (value.slice(0, at).split('/').length < 4) {
    return {
      message: `${show(value)} must be <host>/<project path>/<component>@<version>`,
      hint: `e.g. ${example}`,
    };
  }
  if (!new RegExp(gitlabComponentPattern, 'u').test(value)) {
    return {
      message: `${show(value)} is not a component address`,
      hint: `host, project path, component name and version of letters, digits, ".", "-" and "_"; e.g. ${example}`,
    };
  }
  return undefined;
}

/** Checks `bootstrap.github.action` and `bootstrap.gitlab.include`; returns the resolved settings. */
function resolveBootstrap(checker: Checker, data: Record<string, unknown>): BootstrapSettings {
  const boot = isRecord(data.bootstrap) ? data.bootstrap : {};
  const bootGithub = isRecord(boot.github) ? boot.github : {};
  const bootGitlab = isRecord(boot.gitlab) ? boot.gitlab : {};
  let action: string | undefined;
  if (typeof bootGithub.action === 'string') {
    const p = checkGithubActionRef(bootGithub.action);
    if (p === undefined) action = bootGithub.action;
    else checker.add(['bootstrap', 'github', 'action'], p.message, p.hint);
  }
  const include = resolveGitlabInclude(checker, bootGitlab.include, ['bootstrap', 'gitlab', 'include']);
  return {
    github: {
      visibility: oneOf(bootGithub.visibility, visibilities) ?? builtinBootstrap.github.visibility,
      ...(action === undefined ? {} : { action }),
    },
    gitlab: {
      visibility: oneOf(bootGitlab.visibility, visibilities) ?? builtinBootstrap.gitlab.visibility,
      protectVariables: bool(bootGitlab.protectVariables) ?? builtinBootstrap.gitlab.protectVariables,
      ...(include === undefined ? {} : { include }),
    },
  };
}

function resolveGitlabInclude(
  checker: Checker,
  value: unknown,
  path: readonly PathSegment[],
): GitlabMirrorInclude | undefined {
  if (!isRecord(value)) return undefined;
  const text = (key: string): string | undefined => (typeof value[key] === 'string' ? value[key] : undefined);
  const { component, project, ref, file } = {
    component: text('component'),
    project: text('project'),
    ref: text('ref'),
    file: text('file'),
  };
  const hint =
    'write either `component: <host>/<project path>/<component>@<version>` or `project:`, `ref:` and `file:` (instances without the CI/CD catalog)';
  if (component !== undefined && (project !== undefined || ref !== undefined || file !== undefined)) {
    checker.add(path, 'has both `component:` and `project:`/`ref:`/`file:`; use one of the two', hint);
    return undefined;
  }
  if (component !== undefined) {
    const p = checkGitlabComponent(component);
    if (p !== undefined) checker.add([...path, 'component'], p.message, p.hint);
    return p === undefined ? { component } : undefined;
  }
  if (project === undefined && file === undefined && ref === undefined) {
    // An empty mapping, or only wrongly typed values (the schema reported those).
    if (Object.keys(value).length === 0) checker.add(path, 'is empty', hint);
    return undefined;
  }
  let ok = true;
  if (project === undefined) {
    if (value.project === undefined) checker.add(path, 'has `ref:`/`file:` but no `project:`', hint);
    ok = false;
  } else {
    const p = checkGitlabProjectPath(project);
    if (p !== undefined) {
      checker.add([...path, 'project'], p.message, p.hint);
      ok = false;
    }
  }
  if (file === undefined) {
    if (value.file === undefined) {
      checker.add(path, 'has `project:` but no `file:`', 'add `file: templates/mirror.yml` (the path in that project)');
    }
    ok = false;
  } else if (!/^\/?[^\s]+\.ya?ml$/.test(file) || file.split('/').some((s) => s === '..')) {
    checker.add(
      [...path, 'file'],
      `${show(file)} is not a YAML file path in the project`,
      'GitLab includes files ending in .yml or .yaml, e.g. templates/mirror.yml',
    );
    ok = false;
  }
  if (ref !== undefined && /\s/.test(ref)) {
    checker.add([...path, 'ref'], 'must not contain spaces', 'write a tag, branch or commit SHA, e.g. v0.1.0');
    ok = false;
  }
  if (!ok || project === undefined || file === undefined) return undefined;
  return { project, ...(ref === undefined ? {} : { ref }), file };
}

/** Why `value` cannot name a pair (it becomes a file and ref name), or undefined. */
export function checkPairName(value: string): NameProblem | undefined {
  const unsafe = pathSafety(value, 'widgets');
  if (unsafe !== undefined) return unsafe;
  if (value.includes('/')) return { message: 'must not contain "/"', hint: 'e.g. widgets or acme-widgets' };
  if (!new RegExp(pairNamePattern, 'u').test(value)) {
    return {
      message: `${show(value)} is not a usable pair name`,
      hint: 'letters, digits, ".", "-" and "_", at most 100; not starting with "." or "-", no "..", not ending with "." or ".lock"',
    };
  }
  return undefined;
}

/** A normalized base URL (no trailing slash), or why `value` is not one. */
export function checkBaseUrl(
  value: string,
  forge: { tokenVar: string; example: string },
): { url: string } | NameProblem {
  const { tokenVar, example } = forge;
  if (value.trim() === '') return { message: 'must not be empty', hint: `write the base URL, e.g. ${example}` };
  if (/^[^/\s]+@[^/\s]+:/.test(value)) {
    return { message: 'is an SSH address', hint: `refbridge talks HTTPS: write the web URL, e.g. ${example}` };
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return { message: `${show(value)} is not a URL`, hint: `write the full base URL, e.g. ${example}` };
  }
  if (url.username !== '' || url.password !== '') {
    return {
      message: 'must not contain a user name or password',
      hint: `remove it from the URL; refbridge reads the token from ${tokenVar}`,
    };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return {
      message: `must be an http or https URL, not ${url.protocol.replace(/:$/, '')}`,
      hint: `refbridge uses the REST API and HTTPS git, e.g. ${example}`,
    };
  }
  if (url.search !== '' || url.hash !== '') {
    return { message: 'must not have a query (?) or fragment (#)', hint: `write the base URL only, e.g. ${example}` };
  }
  return { url: `${url.origin}${url.pathname.replace(/\/+$/, '')}` };
}

/** GitHub's REST base for a web URL: github.com, GHE.com (`<name>.ghe.com`) and GHE Server. */
export function deriveGithubApiUrl(url: string): string {
  const u = new URL(url);
  if (u.hostname === 'github.com' || u.hostname === 'www.github.com') return 'https://api.github.com';
  if (u.hostname.endsWith('.ghe.com') && u.pathname.replace(/\/+$/, '') === '') return `${u.protocol}//api.${u.host}`;
  return `${url.replace(/\/+$/, '')}/api/v3`;
}

function deriveGithubWebUrl(apiUrl: string): string | undefined {
  const u = new URL(apiUrl);
  if (u.hostname === 'api.github.com') return defaultGithubUrl;
  if (u.hostname.startsWith('api.') && u.hostname.endsWith('.ghe.com')) {
    return `${u.protocol}//${u.host.slice('api.'.length)}`;
  }
  const base = apiUrl.replace(/\/+$/, '');
  return base.endsWith('/api/v3') ? base.slice(0, -'/api/v3'.length) : undefined;
}

export function deriveGitlabApiUrl(url: string): string {
  return `${url.replace(/\/+$/, '')}/api/v4`;
}

function deriveGitlabWebUrl(apiUrl: string): string | undefined {
  const base = apiUrl.replace(/\/+$/, '');
  return base.endsWith('/api/v4') ? base.slice(0, -'/api/v4'.length) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Semantic checks and resolution

interface Forge {
  kind: 'github' | 'gitlab';
  label: string;
  urlVar: string;
  apiVar: string;
  tokenVar: string;
  example: string;
  defaultUrl: string;
  deriveApi: (url: string) => string;
  deriveWeb: (apiUrl: string) => string | undefined;
}

const forges: readonly Forge[] = [
  {
    kind: 'github',
    label: 'GitHub',
    urlVar: configEnvVars.githubUrl,
    apiVar: configEnvVars.githubApiUrl,
    tokenVar: 'GITHUB_TOKEN',
    example: 'https://github.example.com',
    defaultUrl: defaultGithubUrl,
    deriveApi: deriveGithubApiUrl,
    deriveWeb: deriveGithubWebUrl,
  },
  {
    kind: 'gitlab',
    label: 'GitLab',
    urlVar: configEnvVars.gitlabUrl,
    apiVar: configEnvVars.gitlabApiUrl,
    tokenVar: 'GITLAB_TOKEN',
    example: 'https://gitlab.example.com',
    defaultUrl: defaultGitlabUrl,
    deriveApi: deriveGitlabApiUrl,
    deriveWeb: deriveGitlabWebUrl,
  },
];

function envValue(env: ConfigEnv, name: string): string | undefined {
  const v = env[name]?.trim();
  // Runners export unset inputs as empty strings; empty means "not set".
  return v === undefined || v === '' ? undefined : v;
}

function resolveEndpoint(checker: Checker, forge: Forge, section: unknown, env: ConfigEnv): ForgeEndpoint | undefined {
  const envUrl = envValue(env, forge.urlVar);
  const envApi = envValue(env, forge.apiVar);
  const file = isRecord(section) ? section : {};
  const fileUrl = typeof file.url === 'string' ? file.url : undefined;
  const fileApi = typeof file.apiUrl === 'string' ? file.apiUrl : undefined;

  // The file is checked even when the environment wins: it is wrong either way.
  const checkFile = (key: 'url' | 'apiUrl', value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    const r = checkBaseUrl(value, forge);
    if ('url' in r) return r.url;
    checker.add([forge.kind, key], r.message, r.hint);
    return undefined;
  };
  const checkEnv = (name: string, value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    const r = checkBaseUrl(value, forge);
    if ('url' in r) return r.url;
    checker.addEnv(name, r.message, r.hint);
    return undefined;
  };
  const fUrl = checkFile('url', fileUrl);
  const fApi = checkFile('apiUrl', fileApi);
  const eUrl = checkEnv(forge.urlVar, envUrl);
  const eApi = checkEnv(forge.apiVar, envApi);

  if (envUrl !== undefined || envApi !== undefined) {
    if ((envUrl !== undefined && eUrl === undefined) || (envApi !== undefined && eApi === undefined)) return undefined;
    const url = eUrl ?? forge.deriveWeb(eApi as string);
    if (url === undefined) {
      checker.addEnv(
        forge.apiVar,
        `cannot tell the ${forge.label} web URL from this API URL`,
        `set ${forge.urlVar} too`,
      );
      return undefined;
    }
    return { url, apiUrl: eApi ?? forge.deriveApi(url), origin: 'environment' };
  }
  if (fileUrl !== undefined || fileApi !== undefined) {
    if ((fileUrl !== undefined && fUrl === undefined) || (fileApi !== undefined && fApi === undefined))
      return undefined;
    const url = fUrl ?? forge.deriveWeb(fApi as string);
    if (url === undefined) {
      checker.add(
        [forge.kind, 'apiUrl'],
        `cannot tell the ${forge.label} web URL from this API URL`,
        `set \`url:\` too`,
      );
      return undefined;
    }
    return { url, apiUrl: fApi ?? forge.deriveApi(url), origin: 'file' };
  }
  return { url: forge.defaultUrl, apiUrl: forge.deriveApi(forge.defaultUrl), origin: 'default' };
}

function checkBotUser(value: string): NameProblem | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(value) || value === '') {
    return { message: 'must be one user name without spaces', hint: 'e.g. refbridge-bot' };
  }
  return undefined;
}

function checkGlobs(checker: Checker, refs: unknown, path: readonly PathSegment[]): void {
  if (!isRecord(refs)) return;
  for (const key of ['include', 'exclude'] as const) {
    const list = refs[key];
    if (!Array.isArray(list)) continue;
    list.forEach((glob, i) => {
      if (typeof glob !== 'string' || glob === '') return;
      const at = [...path, key, i];
      if (/^refs\//.test(glob)) {
        const short = glob.replace(/^refs\/(heads|tags)\//, '');
        checker.add(at, `${show(glob)} is a full ref name; globs match short names`, `write ${show(short)}`);
      } else if (/\s/.test(glob) || glob.includes('\\')) {
        checker.add(at, `${show(glob)} cannot match a ref: ref names have no spaces or "\\"`);
      }
    });
  }
}

/**
 * `over` on top of `base`. It runs before the schema problems are known to be none (so the
 * per-pair checks can use the effective policy), hence it takes only values of the right type.
 */
function mergePolicy(base: PairPolicy, over: unknown): PairPolicy {
  const o = isRecord(over) ? over : {};
  const refs = isRecord(o.refs) ? o.refs : {};
  const protectedBranches = isRecord(o.protectedBranches) ? o.protectedBranches : {};
  const pushOptions = isRecord(o.pushOptions) ? o.pushOptions : {};
  return {
    divergence: oneOf(o.divergence, ['halt-ref', 'halt-pair'] as const) ?? base.divergence,
    deletions: oneOf(o.deletions, ['propagate', 'ignore'] as const) ?? base.deletions,
    rewrites: oneOf(o.rewrites, ['allow', 'deny'] as const) ?? base.rewrites,
    refs: {
      branches: bool(refs.branches) ?? base.refs.branches,
      tags: bool(refs.tags) ?? base.refs.tags,
      include: [...(strings(refs.include) ?? base.refs.include)],
      exclude: [...(strings(refs.exclude) ?? base.refs.exclude)],
    },
    protectedBranches: {
      temporarilyAllowForcePush:
        bool(protectedBranches.temporarilyAllowForcePush) ?? base.protectedBranches.temporarilyAllowForcePush,
    },
    pushOptions: { gitlabCiSkip: bool(pushOptions.gitlabCiSkip) ?? base.pushOptions.gitlabCiSkip },
    lfs: oneOf(o.lfs, lfsPolicies) ?? base.lfs,
  };
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[]): T | undefined {
  return allowed.find((a) => a === value);
}

function bool(value: unknown): boolean | undefined {
  return typeof value === 'boolean' ? value : undefined;
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
}

const builtin: PairPolicy = mergePolicy(
  { ...builtinPolicy, refs: { ...builtinPolicy.refs, include: [], exclude: [] } },
  {},
);

/** The built-in policy every pair starts from (a fresh copy). */
export function defaultPairPolicy(): PairPolicy {
  return mergePolicy(builtin, {});
}

function checkAndResolve(checker: Checker, data: Record<string, unknown>, env: ConfigEnv): RefbridgeConfig | undefined {
  const [github, gitlab] = forges.map((f) => resolveEndpoint(checker, f, data[f.kind], env));

  const botUsers: { github?: string; gitlab?: string } = {};
  for (const kind of ['github', 'gitlab'] as const) {
    const variable = kind === 'github' ? configEnvVars.botUserGithub : configEnvVars.botUserGitlab;
    const fromEnv = envValue(env, variable);
    const section = data.botUsers;
    const fromFile = isRecord(section) && typeof section[kind] === 'string' ? section[kind] : undefined;
    if (fromFile !== undefined && fromFile !== '') {
      const p = checkBotUser(fromFile);
      if (p !== undefined) checker.add(['botUsers', kind], p.message, p.hint);
    }
    if (fromEnv !== undefined) {
      const p = checkBotUser(fromEnv);
      if (p !== undefined) checker.addEnv(variable, p.message, p.hint);
    }
    const user = fromEnv ?? fromFile;
    if (user !== undefined && user !== '') botUsers[kind] = user;
  }

  // Like the forge URLs, the environment wins over the file: one run can accept LFS pointers (or
  // refuse them) without editing a shared file. It applies to every pair, pair keys included.
  const envLfsRaw = envValue(env, configEnvVars.lfs);
  const envLfs = oneOf(envLfsRaw, lfsPolicies);
  if (envLfsRaw !== undefined && envLfs === undefined) {
    const suggestion = closest(envLfsRaw, lfsPolicies);
    checker.addEnv(
      configEnvVars.lfs,
      `must be ${lfsPolicies.join(' or ')}; got ${show(envLfsRaw)}`,
      suggestion === undefined ? 'unset it to use the config file' : `did you mean ${suggestion}?`,
    );
  }
  const withEnv = (p: PairPolicy): PairPolicy => (envLfs === undefined ? p : { ...p, lfs: envLfs });

  checkGlobs(checker, isRecord(data.defaults) ? data.defaults.refs : undefined, ['defaults', 'refs']);
  const defaults = withEnv(mergePolicy(builtin, data.defaults));
  const defaultsSyncNothing = !defaults.refs.branches && !defaults.refs.tags;
  if (defaultsSyncNothing) {
    checker.add(
      ['defaults', 'refs'],
      'branches and tags are both false: pairs would sync nothing',
      'set `branches: true` or `tags: true` (or both)',
    );
  }

  const hasPairs = data.pairs !== undefined;
  const hasRepos = data.repos !== undefined;
  if (hasPairs && hasRepos) {
    checker.add(
      ['repos'],
      'use either `pairs:` or `repos:`, not both',
      'move the `repos:` entries under `pairs:`',
      'key',
    );
  } else if (!hasPairs && !hasRepos) {
    checker.add(
      [],
      'no `pairs:`: there is nothing to keep in step',
      'add `pairs:` with at least one `- github: owner/name` / `gitlab: group/project` entry',
    );
  }
  const listKey = hasPairs ? 'pairs' : 'repos';
  const list = Array.isArray(data[listKey]) ? (data[listKey] as unknown[]) : [];

  const pairs: ResolvedPair[] = [];
  const byName = new Map<string, number>();
  const byGithub = new Map<string, number>();
  const byGitlab = new Map<string, number>();
  const where = (i: number) => {
    const { line } = checker.locator.position([listKey, i]);
    return `${listKey}[${i}]${line === undefined ? '' : ` (line ${line})`}`;
  };

  list.forEach((item, i) => {
    if (!isRecord(item)) return;
    const at = (...rest: PathSegment[]): PathSegment[] => [listKey, i, ...rest];

    let gh: ResolvedPair['github'] | undefined;
    if (typeof item.github === 'string') {
      const p = checkGithubRepo(item.github);
      if (p === undefined) {
        const [owner = '', name = ''] = item.github.split('/');
        gh = { owner, name, fullName: `${owner}/${name}` };
        const seen = byGithub.get(gh.fullName.toLowerCase());
        if (seen === undefined) byGithub.set(gh.fullName.toLowerCase(), i);
        else {
          checker.add(
            at('github'),
            `${gh.fullName} is already paired in ${where(seen)}: two pairs would push to one repository`,
            'keep one pair per GitHub repository',
          );
        }
      } else checker.add(at('github'), p.message, p.hint);
    }

    let gl: ResolvedPair['gitlab'] | undefined;
    if (typeof item.gitlab === 'string') {
      const p = checkGitlabProjectPath(item.gitlab);
      if (p === undefined) {
        const parts = item.gitlab.split('/');
        gl = { path: item.gitlab, namespace: parts.slice(0, -1).join('/'), name: parts[parts.length - 1] ?? '' };
        const seen = byGitlab.get(gl.path.toLowerCase());
        if (seen === undefined) byGitlab.set(gl.path.toLowerCase(), i);
        else {
          checker.add(
            at('gitlab'),
            `${gl.path} is already paired in ${where(seen)}: two pairs would push to one project`,
            'keep one pair per GitLab project',
          );
        }
      } else checker.add(at('gitlab'), p.message, p.hint);
    }

    const explicitName = typeof item.name === 'string' ? item.name : undefined;
    let name: string | undefined;
    if (explicitName !== undefined) {
      const p = checkPairName(explicitName);
      if (p === undefined) name = explicitName;
      else checker.add(at('name'), p.message, p.hint);
    } else if (gh !== undefined) {
      // `.github` is a common repository; a leading dot is not allowed in a ref name component.
      const derived = gh.name.replace(/^[.-]+/, '');
      const p = checkPairName(derived);
      if (p === undefined) name = derived;
      else
        checker.add(
          at(),
          `the GitHub repository name ${show(gh.name)} cannot name the pair`,
          'add `name:` to the pair',
        );
    }
    // A defaulted name repeats because the GitHub repo repeats; that problem is reported already.
    const githubRepeated = gh !== undefined && byGithub.get(gh.fullName.toLowerCase()) !== i;
    if (name !== undefined && !(explicitName === undefined && githubRepeated)) {
      const seen = byName.get(name.toLowerCase());
      if (seen === undefined) byName.set(name.toLowerCase(), i);
      else {
        checker.add(
          explicitName === undefined ? at() : at('name'),
          `pair name "${name}" is already used by ${where(seen)}`,
          explicitName === undefined
            ? 'a pair is named after its GitHub repository unless it has `name:`; give one of them a unique `name:`'
            : 'give each pair a unique `name:`',
        );
      }
    }

    checkGlobs(checker, item.refs, at('refs'));
    const policy = withEnv(mergePolicy(defaults, item));
    if (!policy.refs.branches && !policy.refs.tags && !defaultsSyncNothing) {
      checker.add(
        at('refs'),
        'branches and tags are both false: this pair would sync nothing',
        'set `branches: true` or `tags: true`, or remove the pair',
      );
    }

    if (gh !== undefined && gl !== undefined && name !== undefined) {
      const pos = checker.locator.position(at());
      pairs.push({
        name,
        github: gh,
        gitlab: gl,
        policy,
        declaredAt: { source: checker.source, key: formatKeyPath(at()), ...pos },
      });
    }
  });

  const bootstrap = resolveBootstrap(checker, data);
  if (github === undefined || gitlab === undefined || checker.problems.length > 0) return undefined;

  return {
    source: checker.source,
    github,
    gitlab,
    botUsers,
    defaults,
    pairs,
    bootstrap,
  };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorCode(error: unknown): string | undefined {
  return isRecord(error) && typeof error.code === 'string' ? error.code : undefined;
}

function kindOf(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the text ${show(value)}`;
  return show(value);
}

/** A value quoted for a message: short, and never an access token. */
function show(value: unknown): string {
  if (typeof value === 'string') {
    if (looksLikeToken(value)) return '(a value that looks like an access token)';
    const cut = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(cut);
  }
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value;
}

// ---------------------------------------------------------------------------------------------
// Starter file

/** A commented `refbridge.yaml` for `refbridge init`; it parses as is. */
export function renderStarterConfig(): string {
  return `# yaml-language-server: $schema=./node_modules/@refbridge/cli/schema/refbridge.schema.json
#
# refbridge.yaml: the GitHub repositories and GitLab projects refbridge keeps in step, and how.
# Editors with the YAML language server complete and explain every key.
# Tokens never go in this file: refbridge reads GITHUB_TOKEN and GITLAB_TOKEN from the environment.
# GITHUB_SERVER_URL, GITHUB_API_URL, GITLAB_URL, GITLAB_API_URL, MIRROR_BOT_USER_GITHUB,
# MIRROR_BOT_USER_GITLAB and REFBRIDGE_LFS in the environment override the matching settings below.

github:
  url: https://github.com # GitHub Enterprise: your server's URL; the API URL is derived from it
  # apiUrl: https://api.github.com

gitlab:
  url: https://gitlab.com # self-managed GitLab: your instance's URL
  # apiUrl: https://gitlab.com/api/v4

# The accounts refbridge pushes as; their pushes are never mirrored back.
# botUsers:
#   github: refbridge-bot
#   gitlab: refbridge-bot

# Policies for every pair; a pair can override any of them.
defaults:
  divergence: halt-ref # both sides moved a ref differently: halt-ref stops that ref, halt-pair the whole pair
  deletions: propagate # propagate | ignore
  rewrites: deny # force pushes and moved tags: deny reports them, allow replays them (with a lease)
  refs:
    branches: true
    tags: true
    include: [] # globs over short names, e.g. [main, "release/*"]; empty: every branch and tag
    exclude: [] # e.g. ["wip/*"]; wins over include
  protectedBranches:
    temporarilyAllowForcePush: false # true: lift force-push protection for one allowed push, then restore it
  pushOptions:
    gitlabCiSkip: false # true: push to GitLab with -o ci.skip, so mirrored commits start no pipeline
  lfs: fail # Git LFS objects are not copied: fail refuses refs that use LFS; pointers pushes their pointers and warns

pairs:
  - github: acme/widgets # owner/name
    gitlab: platform/tools/widgets # full project path; subgroups allowed
    # name: widgets # default: the GitHub repository name; must be unique
    # deletions: ignore # any key of defaults can be set per pair

# Used by \`refbridge bootstrap\` when it creates missing repositories and commits the CI files.
# bootstrap:
#   github:
#     visibility: private # private | internal | public
#     action: refbridge/refbridge@v1 # the Action the workflow runs: owner/repo@ref, a tag, branch or full SHA
#   gitlab:
#     visibility: private # private | internal | public
#     protectVariables: false # protected variables reach only protected branches and tags
#     include: # the .gitlab-ci.yml include: a CI/CD catalog component ...
#       component: $CI_SERVER_FQDN/refbridge/refbridge/mirror@0.1.0
#     # ... or, without the catalog, the template from a project on your instance:
#     # include:
#     #   project: tools/refbridge
#     #   ref: v0.1.0
#     #   file: templates/mirror.yml
`;
}
