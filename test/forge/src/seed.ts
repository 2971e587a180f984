import { readFile } from 'node:fs/promises';
import sodium from 'libsodium-wrappers';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError, type ConfigProblem } from '../../../packages/core/src/errors.js';
import {
  copyRepoContent,
  createGithubRepo,
  createGitlabGroup,
  createGitlabProject,
  hasContent,
  populateRepo,
  protectGitlabDefaultBranch,
  type BranchContent,
  type RepoContent,
  type TagContent,
} from './repo-factory.js';
import type { ForgeContext } from './server.js';
import { now, type GithubRepo, type GitlabProject, type Platform } from './state.js';

/**
 * The seed: what the forge holds when it starts. Written in YAML (format and example in
 * test/forge/README.md) or passed as an object by tests. Every problem in a seed is reported at
 * once, with the line it is on, before anything is created.
 */

export interface SeedUser {
  login: string;
  name?: string;
  email?: string;
}

export interface SeedRepoContent {
  defaultBranch?: string;
  /** Files of the initial commit; a repo without files, history, branches or tags is empty. */
  files?: Record<string, string>;
  /** Generated commits after the initial one. */
  history?: number;
  branches?: Record<string, BranchContent>;
  tags?: TagContent[];
  /** Refs outside heads/tags, e.g. `refs/pull/1/head: feature`. */
  refs?: Record<string, string>;
  description?: string;
  archived?: boolean;
  /** Create N repos with this content; `{n}` in the name is replaced by 1..N (else `-<n>` is appended). */
  count?: number;
}

export interface SeedGithubRepo extends SeedRepoContent {
  owner: string;
  name: string;
  private?: boolean;
  visibility?: 'public' | 'private' | 'internal';
  fork?: boolean;
  protections?: Record<string, { allowForcePushes?: boolean; allowDeletions?: boolean; enforceAdmins?: boolean }>;
  /** Actions secrets by name (stored sealed, like GitHub; the admin API shows them decrypted). */
  secrets?: Record<string, string>;
  variables?: Record<string, string>;
}

export interface SeedGitlabGroup {
  /** Full path; every ancestor must be declared too. */
  path: string;
  name?: string;
  visibility?: 'private' | 'internal' | 'public';
  /** login -> access level (10 guest, 20 reporter, 30 developer, 40 maintainer, 50 owner). */
  members?: Record<string, number>;
}

export interface SeedGitlabVariable {
  key: string;
  value: string;
  masked?: boolean;
  protected?: boolean;
  hidden?: boolean;
  raw?: boolean;
  variableType?: 'env_var' | 'file';
  environmentScope?: string;
  description?: string;
}

export interface SeedGitlabProtectedBranch {
  name: string;
  allowForcePush?: boolean;
  pushAccessLevel?: number;
  mergeAccessLevel?: number;
  unprotectAccessLevel?: number;
}

export interface SeedGitlabProject extends SeedRepoContent {
  /** Full path: `<group full path or user login>/<project path>`. */
  path: string;
  name?: string;
  visibility?: 'private' | 'internal' | 'public';
  /** GitLab protects the default branch of a project with content; `false` leaves it open. */
  protectDefaultBranch?: boolean;
  protectedBranches?: SeedGitlabProtectedBranch[];
  members?: Record<string, number>;
  variables?: SeedGitlabVariable[];
}

export interface SeedToken {
  value: string;
  platform: Platform;
  user: string;
  scopes: string[];
  name?: string;
  expired?: boolean;
  expiresAt?: string | null;
}

export interface SeedSpec {
  github?: { users?: (SeedUser | string)[]; orgs?: { login: string; members?: string[] }[]; repos?: SeedGithubRepo[] };
  gitlab?: { users?: (SeedUser | string)[]; groups?: SeedGitlabGroup[]; projects?: SeedGitlabProject[] };
  tokens?: SeedToken[];
}

const GITHUB_SCOPES = new Set([
  'repo',
  'repo:status',
  'repo_deployment',
  'public_repo',
  'repo:invite',
  'security_events',
  'workflow',
  'write:packages',
  'read:packages',
  'delete:packages',
  'admin:org',
  'write:org',
  'read:org',
  'manage_runners:org',
  'admin:public_key',
  'admin:repo_hook',
  'admin:org_hook',
  'gist',
  'notifications',
  'user',
  'read:user',
  'user:email',
  'user:follow',
  'delete_repo',
  'admin:enterprise',
]);
const GITLAB_SCOPES = new Set([
  'api',
  'read_api',
  'read_user',
  'read_repository',
  'write_repository',
  'read_registry',
  'write_registry',
  'create_runner',
  'manage_runner',
  'k8s_proxy',
  'ai_features',
  'self_rotate',
  'sudo',
  'admin_mode',
]);
const ACCESS_LEVELS = new Set([10, 20, 30, 40, 50]);
const PROTECT_LEVELS = new Set([0, 30, 40, 60]);
const LOGIN = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$/;
// Git's ref name rules (git check-ref-format), control characters included.
// eslint-disable-next-line no-control-regex
const REF_NAME = /^(?!\/)(?!.*\/\/)(?!.*\.\.)(?!.*@\{)(?!.*\.lock$)[^\s~^:?*[\\\x00-\x1f]+(?<!\/)(?<!\.)$/;
const MAX_COUNT = 10_000;
const MAX_HISTORY = 200_000;

type Path = (string | number)[];

/** Validates one seed, collecting every problem. */
class SeedChecker {
  readonly problems: ConfigProblem[] = [];
  constructor(
    private readonly source: string,
    private readonly doc?: Document,
    private readonly lines?: LineCounter,
  ) {}

  problem(path: Path, message: string, hint?: string): void {
    const key = path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
    const p: ConfigProblem = { source: this.source, key, message, ...(hint ? { hint } : {}) };
    const node = this.doc?.getIn(path, true) as { range?: [number, number, number] } | undefined;
    if (node?.range && this.lines) {
      const pos = this.lines.linePos(node.range[0]);
      p.line = pos.line;
      p.column = pos.col;
    }
    this.problems.push(p);
  }

  object(value: unknown, path: Path, known: string[]): Record<string, unknown> | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.problem(path, 'must be a mapping');
      return undefined;
    }
    const rec = value as Record<string, unknown>;
    for (const k of Object.keys(rec)) {
      if (!known.includes(k)) this.problem([...path, k], `unknown key "${k}"`, `known keys: ${known.join(', ')}`);
    }
    return rec;
  }

  list(value: unknown, path: Path): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.problem(path, 'must be a list');
      return [];
    }
    return value;
  }

  string(rec: Record<string, unknown>, key: string, path: Path, required = false): string | undefined {
    const v = rec[key];
    if (v === undefined || v === null) {
      if (required) this.problem([...path, key], 'is required');
      return undefined;
    }
    if (typeof v !== 'string' || v === '') {
      this.problem([...path, key], 'must be a non-empty string');
      return undefined;
    }
    return v;
  }

  bool(rec: Record<string, unknown>, key: string, path: Path): boolean | undefined {
    const v = rec[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') {
      this.problem([...path, key], 'must be true or false');
      return undefined;
    }
    return v;
  }

  int(rec: Record<string, unknown>, key: string, path: Path, min: number, max: number): number | undefined {
    const v = rec[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problem([...path, key], `must be a whole number from ${min} to ${max}`);
      return undefined;
    }
    return v;
  }

  oneOf<T extends string>(rec: Record<string, unknown>, key: string, path: Path, values: readonly T[]): T | undefined {
    const v = rec[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !values.includes(v as T)) {
      this.problem([...path, key], `must be one of ${values.join(', ')}`);
      return undefined;
    }
    return v as T;
  }

  stringMap(value: unknown, path: Path, allowNull = false): Record<string, string | null> | undefined {
    const rec = this.object(value, path, Object.keys((value as object | null) ?? {}));
    if (!rec) return undefined;
    const out: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(rec)) {
      if (typeof v === 'string') out[k] = v;
      else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
      else if (v === null && allowNull) out[k] = null;
      else this.problem([...path, k], allowNull ? 'must be text, or null to delete the file' : 'must be text');
    }
    return out;
  }

  login(value: string | undefined, path: Path): void {
    if (value !== undefined && !LOGIN.test(value)) {
      this.problem(path, `"${value}" is not a valid login`, 'letters, digits, ".", "-" and "_"');
    }
  }

  filePaths(files: Record<string, unknown> | undefined | null, path: Path): void {
    for (const f of Object.keys(files ?? {})) {
      const parts = f.split('/');
      if (
        f.startsWith('/') ||
        parts.some((p) => p === '' || p === '.' || p === '..' || p === '.git') ||
        /[\n\r"]/.test(f)
      ) {
        this.problem([...path, f], `"${f}" is not a valid file path`, 'relative, no empty, "." or ".." segments');
      }
    }
  }
}

function loginOf(u: SeedUser | string): string {
  return typeof u === 'string' ? u : u.login;
}

/** Checks the content keys shared by GitHub repos and GitLab projects. */
function checkContent(c: SeedChecker, rec: Record<string, unknown>, path: Path): void {
  c.string(rec, 'defaultBranch', path);
  const def = (typeof rec['defaultBranch'] === 'string' ? rec['defaultBranch'] : undefined) ?? 'main';
  if (!REF_NAME.test(def)) c.problem([...path, 'defaultBranch'], `"${def}" is not a valid branch name`);
  const files = c.stringMap(rec['files'], [...path, 'files']);
  c.filePaths(files, [...path, 'files']);
  c.int(rec, 'history', path, 0, MAX_HISTORY);
  c.int(rec, 'count', path, 1, MAX_COUNT);
  c.string(rec, 'description', path);
  c.bool(rec, 'archived', path);
  const names = new Set([def]);
  const branches = c.object(
    rec['branches'],
    [...path, 'branches'],
    Object.keys((rec['branches'] as object | null) ?? {}),
  );
  for (const [name, b] of Object.entries(branches ?? {})) {
    const bp = [...path, 'branches', name];
    if (!REF_NAME.test(name)) c.problem(bp, `"${name}" is not a valid branch name`);
    names.add(name);
    const br = c.object(b ?? {}, bp, ['from', 'files', 'message']);
    if (br) {
      c.string(br, 'from', bp);
      c.string(br, 'message', bp);
      c.filePaths(c.stringMap(br['files'], [...bp, 'files'], true), [...bp, 'files']);
    }
  }
  for (const [name, b] of Object.entries(branches ?? {})) {
    const from = (b as Record<string, unknown> | null)?.['from'];
    if (typeof from === 'string' && !names.has(from)) {
      c.problem([...path, 'branches', name, 'from'], `"${from}" is not the default branch or a declared branch`);
    }
  }
  const tagNames = new Set<string>();
  c.list(rec['tags'], [...path, 'tags']).forEach((t, i) => {
    const tp = [...path, 'tags', i];
    const tr = c.object(t, tp, ['name', 'ref', 'message']);
    if (!tr) return;
    const name = c.string(tr, 'name', tp, true);
    const ref = c.string(tr, 'ref', tp);
    c.string(tr, 'message', tp);
    if (name !== undefined && !REF_NAME.test(name)) c.problem([...tp, 'name'], `"${name}" is not a valid tag name`);
    if (name !== undefined && tagNames.has(name)) c.problem([...tp, 'name'], `tag "${name}" is declared twice`);
    if (ref !== undefined && !names.has(ref) && !tagNames.has(ref)) {
      c.problem([...tp, 'ref'], `"${ref}" is not a branch or an earlier tag`);
    }
    if (name !== undefined) tagNames.add(name);
  });
  const refs = c.stringMap(rec['refs'], [...path, 'refs']);
  for (const [ref, target] of Object.entries(refs ?? {})) {
    if (!ref.startsWith('refs/') || !REF_NAME.test(ref))
      c.problem([...path, 'refs', ref], `"${ref}" must be a full ref name under refs/`);
    if (target !== null && !names.has(target) && !tagNames.has(target)) {
      c.problem([...path, 'refs', ref], `"${target}" is not a branch or tag of this repo`);
    }
  }
}

function expandNames(name: string, count: number | undefined): string[] {
  if (count === undefined) return [name];
  const out: string[] = [];
  for (let n = 1; n <= count; n++) out.push(name.includes('{n}') ? name.replaceAll('{n}', String(n)) : `${name}-${n}`);
  return out;
}

/**
 * Validates a parsed seed and returns it typed. Throws ConfigError listing every problem.
 * `doc` (from loadSeedFile) lets problems carry line numbers.
 */
export function validateSeed(raw: unknown, source = 'seed', doc?: Document, lines?: LineCounter): SeedSpec {
  const c = new SeedChecker(source, doc, lines);
  const root = c.object(raw ?? {}, [], ['github', 'gitlab', 'tokens']) ?? {};

  // GitHub
  const gh = c.object(root['github'], ['github'], ['users', 'orgs', 'repos']) ?? {};
  const ghUsers = new Set<string>();
  c.list(gh['users'], ['github', 'users']).forEach((u, i) => {
    const p: Path = ['github', 'users', i];
    let login: string | undefined;
    if (typeof u === 'string') login = u;
    else {
      const r = c.object(u, p, ['login', 'name', 'email']);
      if (!r) return;
      login = c.string(r, 'login', p, true);
      c.string(r, 'name', p);
      c.string(r, 'email', p);
    }
    c.login(login, p);
    if (login === undefined) return;
    if (ghUsers.has(login.toLowerCase())) c.problem(p, `GitHub user "${login}" is declared twice`);
    ghUsers.add(login.toLowerCase());
  });
  const ghOrgs = new Set<string>();
  c.list(gh['orgs'], ['github', 'orgs']).forEach((o, i) => {
    const p: Path = ['github', 'orgs', i];
    const r = c.object(o, p, ['login', 'members']);
    if (!r) return;
    const login = c.string(r, 'login', p, true);
    c.login(login, [...p, 'login']);
    if (login !== undefined) {
      if (ghOrgs.has(login.toLowerCase()) || ghUsers.has(login.toLowerCase())) {
        c.problem([...p, 'login'], `"${login}" is already a GitHub user or org`);
      }
      ghOrgs.add(login.toLowerCase());
    }
    c.list(r['members'], [...p, 'members']).forEach((m, j) => {
      if (typeof m !== 'string' || !ghUsers.has(m.toLowerCase())) {
        c.problem(
          [...p, 'members', j],
          `member ${JSON.stringify(m)} is not a declared GitHub user`,
          'add it under github.users',
        );
      }
    });
  });
  const ghRepoNames = new Set<string>();
  c.list(gh['repos'], ['github', 'repos']).forEach((repo, i) => {
    const p: Path = ['github', 'repos', i];
    const r = c.object(repo, p, [
      'owner',
      'name',
      'private',
      'visibility',
      'fork',
      'protections',
      'secrets',
      'variables',
      'defaultBranch',
      'files',
      'history',
      'branches',
      'tags',
      'refs',
      'description',
      'archived',
      'count',
    ]);
    if (!r) return;
    const owner = c.string(r, 'owner', p, true);
    const name = c.string(r, 'name', p, true);
    if (owner !== undefined && !ghUsers.has(owner.toLowerCase()) && !ghOrgs.has(owner.toLowerCase())) {
      c.problem([...p, 'owner'], `"${owner}" is not a declared GitHub user or org`);
    }
    const priv = c.bool(r, 'private', p);
    const vis = c.oneOf(r, 'visibility', p, ['public', 'private', 'internal'] as const);
    if (priv !== undefined && vis !== undefined && priv !== (vis !== 'public')) {
      c.problem([...p, 'private'], `contradicts visibility: ${vis}`, 'give one of them');
    }
    c.bool(r, 'fork', p);
    checkContent(c, r, p);
    if (owner !== undefined && name !== undefined) {
      for (const n of expandNames(name, typeof r['count'] === 'number' ? r['count'] : undefined)) {
        if (!/^[A-Za-z0-9._-]{1,100}$/.test(n) || n.includes('..') || /\.git$/i.test(n)) {
          c.problem([...p, 'name'], `"${n}" is not a valid repository name`);
          break;
        }
        const key = `${owner}/${n}`.toLowerCase();
        if (ghRepoNames.has(key)) c.problem([...p, 'name'], `repository ${owner}/${n} is declared twice`);
        ghRepoNames.add(key);
      }
    }
    const prot = c.object(
      r['protections'],
      [...p, 'protections'],
      Object.keys((r['protections'] as object | null) ?? {}),
    );
    for (const [branch, rule] of Object.entries(prot ?? {})) {
      const rp = [...p, 'protections', branch];
      const rr = c.object(rule ?? {}, rp, ['allowForcePushes', 'allowDeletions', 'enforceAdmins']);
      if (rr) for (const k of ['allowForcePushes', 'allowDeletions', 'enforceAdmins']) c.bool(rr, k, rp);
    }
    const secrets = c.stringMap(r['secrets'], [...p, 'secrets']);
    for (const k of Object.keys(secrets ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || /^GITHUB_/i.test(k)) {
        c.problem(
          [...p, 'secrets', k],
          `"${k}" is not a valid secret name`,
          'letters, digits, _; not starting with GITHUB_',
        );
      }
    }
    c.stringMap(r['variables'], [...p, 'variables']);
  });

  // GitLab
  const gl = c.object(root['gitlab'], ['gitlab'], ['users', 'groups', 'projects']) ?? {};
  const glUsers = new Set<string>();
  c.list(gl['users'], ['gitlab', 'users']).forEach((u, i) => {
    const p: Path = ['gitlab', 'users', i];
    let login: string | undefined;
    if (typeof u === 'string') login = u;
    else {
      const r = c.object(u, p, ['login', 'name', 'email']);
      if (!r) return;
      login = c.string(r, 'login', p, true);
      c.string(r, 'name', p);
      c.string(r, 'email', p);
    }
    c.login(login, p);
    if (login === undefined) return;
    if (glUsers.has(login.toLowerCase())) c.problem(p, `GitLab user "${login}" is declared twice`);
    glUsers.add(login.toLowerCase());
  });
  const checkMembers = (value: unknown, path: Path): void => {
    const m = c.object(value, path, Object.keys((value as object | null) ?? {}));
    for (const [login, level] of Object.entries(m ?? {})) {
      if (!glUsers.has(login.toLowerCase())) c.problem([...path, login], `"${login}" is not a declared GitLab user`);
      if (typeof level !== 'number' || !ACCESS_LEVELS.has(level)) {
        c.problem([...path, login], 'access level must be 10, 20, 30, 40 or 50');
      }
    }
  };
  const groupPaths = new Set<string>();
  const groups = c.list(gl['groups'], ['gitlab', 'groups']);
  groups.forEach((g, i) => {
    const p: Path = ['gitlab', 'groups', i];
    const r = c.object(g, p, ['path', 'name', 'visibility', 'members']);
    if (!r) return;
    const path = c.string(r, 'path', p, true);
    c.string(r, 'name', p);
    c.oneOf(r, 'visibility', p, ['private', 'internal', 'public'] as const);
    checkMembers(r['members'], [...p, 'members']);
    if (path === undefined) return;
    if (path.split('/').some((s) => !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(s) || s.includes('..'))) {
      c.problem([...p, 'path'], `"${path}" is not a valid group path`);
    }
    if (groupPaths.has(path.toLowerCase())) c.problem([...p, 'path'], `group ${path} is declared twice`);
    if (!path.includes('/') && glUsers.has(path.toLowerCase()))
      c.problem([...p, 'path'], `"${path}" is already a user namespace`);
    groupPaths.add(path.toLowerCase());
  });
  groups.forEach((g, i) => {
    const path = (g as { path?: unknown } | null)?.path;
    if (typeof path !== 'string' || !path.includes('/')) return;
    const parent = path.slice(0, path.lastIndexOf('/'));
    if (!groupPaths.has(parent.toLowerCase())) {
      c.problem(
        ['gitlab', 'groups', i, 'path'],
        `parent group "${parent}" is not declared`,
        'declare every ancestor group',
      );
    }
  });
  const projectPaths = new Set<string>();
  c.list(gl['projects'], ['gitlab', 'projects']).forEach((proj, i) => {
    const p: Path = ['gitlab', 'projects', i];
    const r = c.object(proj, p, [
      'path',
      'name',
      'visibility',
      'protectDefaultBranch',
      'protectedBranches',
      'members',
      'variables',
      'defaultBranch',
      'files',
      'history',
      'branches',
      'tags',
      'refs',
      'description',
      'archived',
      'count',
    ]);
    if (!r) return;
    const path = c.string(r, 'path', p, true);
    c.string(r, 'name', p);
    c.oneOf(r, 'visibility', p, ['private', 'internal', 'public'] as const);
    c.bool(r, 'protectDefaultBranch', p);
    checkContent(c, r, p);
    checkMembers(r['members'], [...p, 'members']);
    if (path !== undefined) {
      const cut = path.lastIndexOf('/');
      const ns = cut > 0 ? path.slice(0, cut) : '';
      if (cut <= 0) c.problem([...p, 'path'], `"${path}" needs a namespace: <group or user>/<project>`);
      else if (!groupPaths.has(ns.toLowerCase()) && !glUsers.has(ns.toLowerCase())) {
        c.problem([...p, 'path'], `namespace "${ns}" is not a declared GitLab group or user`);
      }
      for (const n of expandNames(path.slice(cut + 1), typeof r['count'] === 'number' ? r['count'] : undefined)) {
        if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(n) || n.includes('..') || /\.(git|atom)$/i.test(n)) {
          c.problem([...p, 'path'], `"${n}" is not a valid project path`);
          break;
        }
        const key = `${ns}/${n}`.toLowerCase();
        if (projectPaths.has(key) || groupPaths.has(key)) c.problem([...p, 'path'], `${ns}/${n} is declared twice`);
        projectPaths.add(key);
      }
    }
    c.list(r['protectedBranches'], [...p, 'protectedBranches']).forEach((pb, j) => {
      const bp = [...p, 'protectedBranches', j];
      const br = c.object(pb, bp, [
        'name',
        'allowForcePush',
        'pushAccessLevel',
        'mergeAccessLevel',
        'unprotectAccessLevel',
      ]);
      if (!br) return;
      c.string(br, 'name', bp, true);
      c.bool(br, 'allowForcePush', bp);
      for (const k of ['pushAccessLevel', 'mergeAccessLevel', 'unprotectAccessLevel']) {
        const v = br[k];
        if (v !== undefined && (typeof v !== 'number' || !PROTECT_LEVELS.has(v))) {
          c.problem([...bp, k], 'must be 0 (no one), 30 (developers), 40 (maintainers) or 60 (admins)');
        }
      }
    });
    const keys = new Set<string>();
    c.list(r['variables'], [...p, 'variables']).forEach((v, j) => {
      const vp = [...p, 'variables', j];
      const vr = c.object(v, vp, [
        'key',
        'value',
        'masked',
        'protected',
        'hidden',
        'raw',
        'variableType',
        'environmentScope',
        'description',
      ]);
      if (!vr) return;
      const key = c.string(vr, 'key', vp, true);
      if (typeof vr['value'] !== 'string') c.problem([...vp, 'value'], 'is required and must be text');
      for (const k of ['masked', 'protected', 'hidden', 'raw']) c.bool(vr, k, vp);
      c.oneOf(vr, 'variableType', vp, ['env_var', 'file'] as const);
      const scope = c.string(vr, 'environmentScope', vp) ?? '*';
      c.string(vr, 'description', vp);
      if (key !== undefined && !/^[A-Za-z0-9_]{1,255}$/.test(key))
        c.problem([...vp, 'key'], `"${key}" is not a valid variable key`);
      if (key !== undefined && keys.has(`${key}@${scope}`)) {
        c.problem([...vp, 'key'], `variable ${key} is declared twice for the same environment scope`);
      }
      if (key !== undefined) keys.add(`${key}@${scope}`);
    });
  });

  // Tokens
  const values = new Set<string>();
  c.list(root['tokens'], ['tokens']).forEach((t, i) => {
    const p: Path = ['tokens', i];
    const r = c.object(t, p, ['value', 'platform', 'user', 'scopes', 'name', 'expired', 'expiresAt']);
    if (!r) return;
    const value = c.string(r, 'value', p, true);
    const platform = c.oneOf(r, 'platform', p, ['github', 'gitlab'] as const);
    if (r['platform'] === undefined) c.problem([...p, 'platform'], 'is required (github or gitlab)');
    const user = c.string(r, 'user', p, true);
    c.string(r, 'name', p);
    c.bool(r, 'expired', p);
    const exp = r['expiresAt'];
    if (exp !== undefined && exp !== null && (typeof exp !== 'string' || Number.isNaN(Date.parse(exp)))) {
      c.problem([...p, 'expiresAt'], 'must be a date such as 2030-01-31');
    }
    if (value !== undefined) {
      // Never echo a token value in an error message.
      if (values.has(value)) c.problem([...p, 'value'], 'the same token value is declared twice');
      values.add(value);
    }
    if (platform && user !== undefined) {
      const users = platform === 'github' ? ghUsers : glUsers;
      if (!users.has(user.toLowerCase())) c.problem([...p, 'user'], `"${user}" is not a declared ${platform} user`);
    }
    const scopes = c.list(r['scopes'], [...p, 'scopes']);
    if (r['scopes'] === undefined) c.problem([...p, 'scopes'], 'is required (a list, may be empty)');
    const known = platform === 'gitlab' ? GITLAB_SCOPES : GITHUB_SCOPES;
    scopes.forEach((s, j) => {
      if (typeof s !== 'string' || (platform && !known.has(s))) {
        c.problem(
          [...p, 'scopes', j],
          `${JSON.stringify(s)} is not a ${platform ?? ''} scope`,
          `known: ${[...known].join(', ')}`,
        );
      }
    });
  });

  if (c.problems.length > 0) {
    throw new ConfigError(c.problems, 'fix the seed file; its format is described in test/forge/README.md');
  }
  return root;
}

export async function loadSeedFile(path: string): Promise<SeedSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      [{ source: path, message: `cannot read the seed file: ${(error as Error).message}` }],
      'check the --seed path',
    );
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        source: path,
        ...(e.linePos?.[0] ? { line: e.linePos[0].line, column: e.linePos[0].col } : {}),
        message: e.message.split('\n')[0] ?? 'invalid YAML',
      })),
      'fix the YAML syntax of the seed file',
    );
  }
  // A scalar or list document is reported by validateSeed as "must be a mapping".
  return validateSeed(doc.toJS(), path, doc, lines);
}

// ---------------------------------------------------------------------------------------------
// Applying

function contentOf(s: SeedRepoContent, defaultBranch: string): RepoContent {
  return {
    defaultBranch,
    ...(s.files === undefined ? {} : { files: s.files }),
    ...(s.history === undefined ? {} : { history: s.history }),
    ...(s.branches === undefined ? {} : { branches: s.branches }),
    ...(s.tags === undefined ? {} : { tags: s.tags }),
    ...(s.refs === undefined ? {} : { refs: s.refs }),
  };
}

/** Runs `fn` over items with at most `limit` at a time (the machine may have two cores). */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

async function sealSecret(publicKey: string, value: string): Promise<string> {
  await sodium.ready;
  const key = sodium.from_base64(publicKey, sodium.base64_variants.ORIGINAL);
  return sodium.to_base64(sodium.crypto_box_seal(value, key), sodium.base64_variants.ORIGINAL);
}

export async function applySeed(ctx: Pick<ForgeContext, 'state'>, seed: SeedSpec): Promise<void> {
  const spec = validateSeed(seed);
  const { state } = ctx;
  const t = now();

  for (const u of spec.github?.users ?? []) {
    const login = loginOf(u);
    const obj = typeof u === 'string' ? undefined : u;
    state.githubUsers.set(login, {
      id: state.nextId(),
      login,
      name: obj?.name ?? login,
      email: obj?.email ?? `${login}@example.com`,
    });
  }
  for (const o of spec.github?.orgs ?? []) {
    state.githubOrgs.set(o.login, { id: state.nextId(), login: o.login, members: [...(o.members ?? [])] });
  }
  await eachLimited(spec.github?.repos ?? [], 4, async (r) => {
    const defaultBranch = r.defaultBranch ?? 'main';
    const content = contentOf(r, defaultBranch);
    let first: GithubRepo | undefined;
    for (const name of expandNames(r.name, r.count)) {
      const repo = await createGithubRepo(ctx, {
        owner: r.owner,
        name,
        defaultBranch,
        ...(r.visibility ? { visibility: r.visibility } : { private: r.private ?? false }),
        ...(r.description === undefined ? {} : { description: r.description }),
        fork: r.fork ?? false,
        archived: r.archived ?? false,
      });
      if (hasContent(content)) {
        if (first) await copyRepoContent(first.gitDir, repo.gitDir);
        else await populateRepo(repo.gitDir, content);
        repo.pushedAt = t;
      }
      first ??= repo;
      for (const [branch, p] of Object.entries(r.protections ?? {})) {
        const rule = p ?? {};
        repo.protections.set(branch, {
          allowForcePushes: rule.allowForcePushes ?? false,
          allowDeletions: rule.allowDeletions ?? false,
          enforceAdmins: rule.enforceAdmins ?? false,
          raw: {
            required_status_checks: null,
            enforce_admins: rule.enforceAdmins ?? false,
            required_pull_request_reviews: null,
            restrictions: null,
            allow_force_pushes: rule.allowForcePushes ?? false,
            allow_deletions: rule.allowDeletions ?? false,
          },
        });
      }
      for (const [secretName, value] of Object.entries(r.secrets ?? {})) {
        repo.secrets.set(secretName, {
          name: secretName,
          encryptedValue: await sealSecret(repo.secretKey.publicKey, value),
          keyId: repo.secretKey.keyId,
          decrypted: value,
          createdAt: t,
          updatedAt: t,
        });
      }
      for (const [varName, value] of Object.entries(r.variables ?? {})) {
        repo.variables.set(varName, { name: varName, value, createdAt: t, updatedAt: t });
      }
    }
  });

  for (const u of spec.gitlab?.users ?? []) {
    const login = loginOf(u);
    const obj = typeof u === 'string' ? undefined : u;
    state.gitlabUsers.set(login, {
      id: state.nextId(),
      login,
      name: obj?.name ?? login,
      email: obj?.email ?? `${login}@example.com`,
    });
  }
  const groups = [...(spec.gitlab?.groups ?? [])].sort((a, b) => a.path.split('/').length - b.path.split('/').length);
  for (const g of groups) {
    const cut = g.path.lastIndexOf('/');
    const parent = cut > 0 ? state.gitlabGroups.get(g.path.slice(0, cut).toLowerCase()) : undefined;
    const group = createGitlabGroup(ctx, {
      path: g.path.slice(cut + 1),
      parentId: parent?.id ?? null,
      ...(g.name ? { name: g.name } : {}),
      ...(g.visibility ? { visibility: g.visibility } : {}),
    });
    for (const [login, level] of Object.entries(g.members ?? {})) group.members.set(login, level);
  }
  await eachLimited(spec.gitlab?.projects ?? [], 4, async (p) => {
    const cut = p.path.lastIndexOf('/');
    const namespace = p.path.slice(0, cut);
    const defaultBranch = p.defaultBranch ?? 'main';
    const content = contentOf(p, defaultBranch);
    let first: GitlabProject | undefined;
    for (const path of expandNames(p.path.slice(cut + 1), p.count)) {
      const project = await createGitlabProject(ctx, {
        namespace,
        path,
        defaultBranch,
        ...(p.name ? { name: p.count === undefined ? p.name : `${p.name} ${path}` } : {}),
        ...(p.visibility ? { visibility: p.visibility } : {}),
        ...(p.description === undefined ? {} : { description: p.description }),
        archived: p.archived ?? false,
      });
      if (hasContent(content)) {
        if (first) await copyRepoContent(first.gitDir, project.gitDir);
        else await populateRepo(project.gitDir, content);
        if (p.protectDefaultBranch ?? true) protectGitlabDefaultBranch(ctx, project);
      }
      first ??= project;
      for (const pb of p.protectedBranches ?? []) {
        project.protectedBranches = project.protectedBranches.filter((x) => x.name !== pb.name);
        project.protectedBranches.push({
          id: state.nextId(),
          name: pb.name,
          pushAccessLevel: pb.pushAccessLevel ?? 40,
          mergeAccessLevel: pb.mergeAccessLevel ?? 40,
          unprotectAccessLevel: pb.unprotectAccessLevel ?? 40,
          allowForcePush: pb.allowForcePush ?? false,
          codeOwnerApprovalRequired: false,
        });
      }
      for (const [login, level] of Object.entries(p.members ?? {})) project.members.set(login, level);
      for (const v of p.variables ?? []) {
        project.variables.push({
          key: v.key,
          value: v.value,
          variableType: v.variableType ?? 'env_var',
          protected: v.protected ?? false,
          masked: v.masked ?? v.hidden ?? false,
          hidden: v.hidden ?? false,
          raw: v.raw ?? false,
          environmentScope: v.environmentScope ?? '*',
          description: v.description ?? null,
        });
      }
    }
  });

  for (const tok of spec.tokens ?? []) {
    const users = tok.platform === 'github' ? state.githubUsers : state.gitlabUsers;
    const user = [...users.values()].find((u) => u.login.toLowerCase() === tok.user.toLowerCase());
    state.tokens.set(tok.value, {
      value: tok.value,
      platform: tok.platform,
      user: user?.login ?? tok.user,
      scopes: [...tok.scopes],
      id: state.nextId(),
      name: tok.name ?? `${tok.platform}-token`,
      ...(tok.expired === undefined ? {} : { expired: tok.expired }),
      ...(tok.expiresAt === undefined ? {} : { expiresAt: tok.expiresAt === null ? null : String(tok.expiresAt) }),
    });
  }
}
