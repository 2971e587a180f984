import { randomInt } from 'node:crypto';
import { chmod, copyFile, link, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sodium from 'libsodium-wrappers';
import { commitChanges, git, type GitIdentity } from './repo-writer.js';
import type { ForgeContext } from './server.js';
import { now, type GithubRepo, type GitlabGroup, type GitlabProject, type Platform } from './state.js';

/**
 * The one place that creates repos, groups and projects, for the seed and for the API modules.
 * Bare repos are laid out directly on disk (no `git init` process per repo) so that seeding a
 * thousand of them takes seconds; their content comes from one `git fast-import` per distinct
 * content, and identical copies hard-link the pack.
 */

export class RepoFactoryError extends Error {
  constructor(
    readonly code: 'invalid-name' | 'exists' | 'unknown-namespace',
    message: string,
  ) {
    super(message);
    this.name = 'RepoFactoryError';
  }
}

/** Where the receive hooks live; `core.hooksPath` of every repo points here. */
export function hooksDir(dataDir: string, platform: Platform): string {
  return join(dataDir, '.forge-hooks', platform);
}

export const HOOK_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'forge-hook.mjs');

const HIDDEN_REFS: Record<Platform, string> = { github: 'refs/pull', gitlab: 'refs/merge-requests' };
const HOOKS: Record<Platform, string[]> = {
  // GitHub judges refs one by one (proc-receive can give each its own reason); GitLab judges the
  // whole push in pre-receive.
  github: ['proc-receive', 'post-receive'],
  gitlab: ['pre-receive', 'post-receive'],
};

const hooksWritten = new Map<string, Promise<void>>();

/** Writes the hook wrappers once per data dir; they run forge-hook.mjs with this very node. */
export async function ensureHooks(dataDir: string): Promise<void> {
  const known = hooksWritten.get(dataDir);
  if (known) {
    await known;
    // A data dir removed and reused within one process (e.g. `--data` twice) needs them again.
    if (await stat(join(hooksDir(dataDir, 'gitlab'), 'post-receive')).catch(() => undefined)) return;
    if (hooksWritten.get(dataDir) !== known) return ensureHooks(dataDir);
  }
  const p = (async () => {
    for (const platform of ['github', 'gitlab'] as const) {
      const dir = hooksDir(dataDir, platform);
      await mkdir(dir, { recursive: true });
      for (const hook of HOOKS[platform]) {
        const file = join(dir, hook);
        await writeFile(file, `#!/bin/sh\nexec ${shellQuote(process.execPath)} ${shellQuote(HOOK_SCRIPT)} ${hook}\n`);
        await chmod(file, 0o755);
      }
    }
  })();
  hooksWritten.set(dataDir, p);
  p.catch(() => hooksWritten.delete(dataDir));
  return p;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function configQuote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Lays out a bare repo the way `git init --bare` does, with the platform's receive settings:
 * pushes over HTTP, push options advertised (git refuses `-o` otherwise), the platform's hidden
 * refs, and the hooks that ask the forge about each push.
 */
export async function initBareRepo(
  dataDir: string,
  gitDir: string,
  platform: Platform,
  defaultBranch: string,
): Promise<void> {
  await ensureHooks(dataDir);
  await rm(gitDir, { recursive: true, force: true });
  for (const sub of ['objects/info', 'objects/pack', 'refs/heads', 'refs/tags', 'info']) {
    await mkdir(join(gitDir, sub), { recursive: true });
  }
  await writeFile(join(gitDir, 'HEAD'), `ref: refs/heads/${defaultBranch}\n`);
  const lines = [
    '[core]',
    '\trepositoryformatversion = 0',
    '\tfilemode = true',
    '\tbare = true',
    `\thooksPath = ${configQuote(hooksDir(dataDir, platform))}`,
    '[http]',
    '\treceivepack = true',
    '[receive]',
    '\tadvertisePushOptions = true',
    `\thideRefs = ${HIDDEN_REFS[platform]}`,
    ...(platform === 'github' ? ['\tprocReceiveRefs = refs/heads', '\tprocReceiveRefs = refs/tags'] : []),
    '[gc]',
    // The forge never wants git to spend a push's time repacking.
    '\tauto = 0',
    '',
  ];
  await writeFile(join(gitDir, 'config'), lines.join('\n'));
  await writeFile(join(gitDir, 'description'), 'Unnamed repository; edit this file to name it.\n');
}

const GITHUB_NAME = /^[A-Za-z0-9._-]{1,100}$/;
const GITLAB_PATH = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

function checkName(name: string, re: RegExp, what: string): void {
  if (!re.test(name) || name === '.' || name === '..' || /\.(git|atom)$/i.test(name) || name.includes('..')) {
    throw new RepoFactoryError(
      'invalid-name',
      `${what} "${name}" is not a valid name: use letters, digits, '.', '-' and '_', no '..', not ending in .git`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// GitHub

export interface CreateGithubRepoOptions {
  owner: string;
  name: string;
  private?: boolean;
  visibility?: 'public' | 'private' | 'internal';
  description?: string | null;
  autoInit?: boolean;
  defaultBranch?: string;
  fork?: boolean;
  archived?: boolean;
  /** Author of the `auto_init` commit (GitHub uses the creating user). */
  author?: GitIdentity;
}

export async function createGithubKeyPair(): Promise<GithubRepo['secretKey']> {
  await sodium.ready;
  const pair = sodium.crypto_box_keypair();
  return {
    // GitHub's key ids are long decimal strings.
    keyId: `${randomInt(100_000_000, 999_999_999)}${randomInt(100_000_000, 999_999_999)}`,
    publicKey: sodium.to_base64(pair.publicKey, sodium.base64_variants.ORIGINAL),
    privateKey: sodium.to_base64(pair.privateKey, sodium.base64_variants.ORIGINAL),
  };
}

export async function createGithubRepo(
  ctx: Pick<ForgeContext, 'state'>,
  options: CreateGithubRepoOptions,
): Promise<GithubRepo> {
  const { state } = ctx;
  checkName(options.name, GITHUB_NAME, 'Repository name');
  const user = [...state.githubUsers.values()].find((u) => u.login.toLowerCase() === options.owner.toLowerCase());
  const org = [...state.githubOrgs.values()].find((o) => o.login.toLowerCase() === options.owner.toLowerCase());
  if (!user && !org) {
    throw new RepoFactoryError('unknown-namespace', `GitHub owner "${options.owner}" is neither a user nor an org`);
  }
  const owner = org?.login ?? user!.login;
  if (state.githubRepo(owner, options.name)) {
    throw new RepoFactoryError('exists', `name already exists on this account: ${owner}/${options.name}`);
  }
  const visibility = options.visibility ?? (options.private ? 'private' : 'public');
  const defaultBranch = options.defaultBranch ?? 'main';
  const gitDir = join(state.dataDir, 'github', owner, `${options.name}.git`);
  await initBareRepo(state.dataDir, gitDir, 'github', defaultBranch);
  const created = now();
  const repo: GithubRepo = {
    id: state.nextId(),
    owner,
    ownerType: org ? 'Organization' : 'User',
    name: options.name,
    private: visibility !== 'public',
    visibility,
    description: options.description ?? null,
    defaultBranch,
    fork: options.fork ?? false,
    archived: options.archived ?? false,
    createdAt: created,
    updatedAt: created,
    pushedAt: null,
    gitDir,
    secrets: new Map(),
    variables: new Map(),
    protections: new Map(),
    secretKey: await createGithubKeyPair(),
  };
  state.githubRepos.set(`${owner}/${options.name}`.toLowerCase(), repo);
  if (options.autoInit) {
    const readme = `# ${options.name}${repo.description ? `\n${repo.description}` : ''}\n`;
    await commitChanges(gitDir, {
      branch: defaultBranch,
      parent: null,
      changes: [{ path: 'README.md', content: readme }],
      message: 'Initial commit',
      ...(options.author ? { author: options.author } : {}),
    });
    repo.pushedAt = now();
  }
  return repo;
}

// ---------------------------------------------------------------------------------------------
// GitLab

export interface CreateGitlabGroupOptions {
  path: string;
  name?: string;
  parentId?: number | null;
  visibility?: 'private' | 'internal' | 'public';
  /** Made Owner of the new group, as GitLab does for the creator. */
  owner?: string;
  description?: string;
}

export function createGitlabGroup(ctx: Pick<ForgeContext, 'state'>, options: CreateGitlabGroupOptions): GitlabGroup {
  const { state } = ctx;
  checkName(options.path, GITLAB_PATH, 'Group path');
  let parent: GitlabGroup | undefined;
  if (options.parentId != null) {
    parent = state.gitlabGroupById(options.parentId);
    if (!parent) throw new RepoFactoryError('unknown-namespace', `parent group ${options.parentId} does not exist`);
  }
  const fullPath = parent ? `${parent.fullPath}/${options.path}` : options.path;
  if (state.gitlabGroups.has(fullPath.toLowerCase()) || (!parent && state.gitlabUsers.has(options.path))) {
    throw new RepoFactoryError('exists', `Failed to save group {:path=>["has already been taken"]} (${fullPath})`);
  }
  const group: GitlabGroup = {
    id: state.nextId(),
    name: options.name ?? options.path,
    path: options.path,
    fullPath,
    parentId: parent?.id ?? null,
    visibility: options.visibility ?? 'private',
    createdAt: now(),
    members: new Map(options.owner ? [[options.owner, 50]] : []),
  };
  state.gitlabGroups.set(fullPath.toLowerCase(), group);
  return group;
}

export interface CreateGitlabProjectOptions {
  /** Full path of a group, or a user's login for a personal project. */
  namespace: string;
  path: string;
  name?: string;
  visibility?: 'private' | 'internal' | 'public';
  description?: string | null;
  initializeWithReadme?: boolean;
  defaultBranch?: string;
  archived?: boolean;
  forkedFromId?: number | null;
  /** Login of the creating user (defaults to the namespace's owner). */
  creator?: string;
  author?: GitIdentity;
}

export async function createGitlabProject(
  ctx: Pick<ForgeContext, 'state'>,
  options: CreateGitlabProjectOptions,
): Promise<GitlabProject> {
  const { state } = ctx;
  checkName(options.path, GITLAB_PATH, 'Project path');
  const group = state.gitlabGroups.get(options.namespace.toLowerCase());
  const user = group
    ? undefined
    : [...state.gitlabUsers.values()].find((u) => u.login.toLowerCase() === options.namespace.toLowerCase());
  if (!group && !user) {
    throw new RepoFactoryError(
      'unknown-namespace',
      `GitLab namespace "${options.namespace}" is neither a group nor a user`,
    );
  }
  const namespace = group?.fullPath ?? user!.login;
  const fullPath = `${namespace}/${options.path}`;
  if (state.gitlabProject(fullPath)) {
    throw new RepoFactoryError('exists', `Failed to save project {:path=>["has already been taken"]} (${fullPath})`);
  }
  const defaultBranch = options.defaultBranch ?? 'main';
  const gitDir = join(state.dataDir, 'gitlab', `${fullPath}.git`);
  await initBareRepo(state.dataDir, gitDir, 'gitlab', defaultBranch);
  const created = now();
  const creator =
    options.creator ??
    user?.login ??
    [...(group?.members ?? new Map<string, number>())].find(([, l]) => l >= 50)?.[0] ??
    '';
  const project: GitlabProject = {
    id: state.nextId(),
    name: options.name ?? options.path,
    path: options.path,
    namespace,
    namespaceKind: group ? 'group' : 'user',
    namespaceId: group?.id ?? user!.id,
    visibility: options.visibility ?? 'private',
    description: options.description ?? null,
    defaultBranch,
    archived: options.archived ?? false,
    forkedFromId: options.forkedFromId ?? null,
    createdAt: created,
    lastActivityAt: created,
    creator,
    gitDir,
    variables: [],
    protectedBranches: [],
    members: new Map(),
  };
  state.gitlabProjects.set(fullPath.toLowerCase(), project);
  if (options.initializeWithReadme) {
    await commitChanges(gitDir, {
      branch: defaultBranch,
      parent: null,
      changes: [{ path: 'README.md', content: `# ${project.name}\n` }],
      message: 'Initial commit',
      ...(options.author ? { author: options.author } : {}),
    });
    protectGitlabDefaultBranch(ctx, project);
  }
  return project;
}

/**
 * GitLab protects a project's default branch once it exists (Maintainers push and merge, no force
 * push), on creation with a README or on the first push to an empty project.
 */
export function protectGitlabDefaultBranch(ctx: Pick<ForgeContext, 'state'>, project: GitlabProject): void {
  const branch = project.defaultBranch;
  if (!branch || project.protectedBranches.some((p) => p.name === branch)) return;
  project.protectedBranches.push({
    id: ctx.state.nextId(),
    name: branch,
    pushAccessLevel: 40,
    mergeAccessLevel: 40,
    unprotectAccessLevel: 40,
    allowForcePush: false,
    codeOwnerApprovalRequired: false,
  });
}

// ---------------------------------------------------------------------------------------------
// Content

export interface BranchContent {
  /** Branch or tag the new branch starts from (default: the default branch). */
  from?: string;
  /** Files committed on top; without them the branch points at `from`. */
  files?: Record<string, string | null>;
  message?: string;
}

export interface TagContent {
  name: string;
  /** Branch or tag to tag (default: the default branch). */
  ref?: string;
  /** Present: an annotated tag with this message; absent: a lightweight tag. */
  message?: string;
}

export interface RepoContent {
  defaultBranch: string;
  /** Files of the initial commit on the default branch. */
  files?: Record<string, string>;
  /** Generated commits on the default branch after the initial one. */
  history?: number;
  branches?: Record<string, BranchContent>;
  tags?: TagContent[];
  /** Extra refs by full name (e.g. `refs/pull/1/head`) pointing at a branch or tag. */
  refs?: Record<string, string>;
  author?: GitIdentity;
}

/** Seeded commits get fixed dates so their SHAs are the same on every run. */
const SEED_EPOCH = 1_704_067_200; // 2024-01-01T00:00:00Z

export function hasContent(c: RepoContent): boolean {
  return (
    c.files !== undefined ||
    (c.history ?? 0) > 0 ||
    Object.keys(c.branches ?? {}).length > 0 ||
    (c.tags ?? []).length > 0 ||
    Object.keys(c.refs ?? {}).length > 0
  );
}

/**
 * Writes the content with one `git fast-import` (a single process however long the history), then
 * packs the refs so copies can take them with one file.
 */
export async function populateRepo(gitDir: string, content: RepoContent): Promise<void> {
  if (!hasContent(content)) return;
  const who = content.author ?? { name: 'Forge Seed', email: 'seed@forge.invalid' };
  const chunks: Buffer[] = [];
  const out = (s: string | Buffer): void => {
    chunks.push(typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
  };
  const data = (s: string): void => {
    const b = Buffer.from(s, 'utf8');
    out(`data ${b.length}\n`);
    out(b);
    out('\n');
  };
  let mark = 0;
  let clock = SEED_EPOCH;
  const tips = new Map<string, number>(); // branch or tag name -> mark
  const commit = (
    branch: string,
    parent: number | undefined,
    files: Record<string, string | null>,
    message: string,
  ): number => {
    const m = ++mark;
    clock += 60;
    out(`commit refs/heads/${branch}\nmark :${m}\n`);
    out(`author ${who.name} <${who.email}> ${clock} +0000\ncommitter ${who.name} <${who.email}> ${clock} +0000\n`);
    data(message);
    if (parent !== undefined) out(`from :${parent}\n`);
    for (const [path, text] of Object.entries(files)) {
      if (text === null) {
        out(`D ${path}\n`);
      } else {
        out(`M 100644 inline ${path}\n`);
        data(text);
      }
    }
    out('\n');
    tips.set(branch, m);
    return m;
  };
  const base = content.defaultBranch;
  let tip = commit(base, undefined, content.files ?? { 'README.md': '# seeded\n' }, 'Initial commit');
  for (let i = 1; i <= (content.history ?? 0); i++) {
    tip = commit(
      base,
      tip,
      { 'HISTORY.md': `commit ${i}\n`, [`history/${i % 100}.txt`]: `change ${i}\n` },
      `Commit ${i}`,
    );
  }
  const resolve = (name: string, where: string): number => {
    const m = tips.get(name);
    if (m === undefined) throw new Error(`${where}: "${name}" is not a branch or tag defined before it`);
    return m;
  };
  // Branches may start from other branches: create them in dependency order.
  const pending = new Map(Object.entries(content.branches ?? {}));
  for (let guard = 0; pending.size > 0 && guard < 10_000; guard++) {
    let progressed = false;
    for (const [name, b] of pending) {
      const from = b.from ?? base;
      if (!tips.has(from)) continue;
      const start = tips.get(from)!;
      if (b.files && Object.keys(b.files).length > 0) {
        commit(name, start, b.files, b.message ?? `Update ${name}`);
      } else {
        out(`reset refs/heads/${name}\nfrom :${start}\n\n`);
        tips.set(name, start);
      }
      pending.delete(name);
      progressed = true;
    }
    if (!progressed) throw new Error(`branches ${[...pending.keys()].join(', ')} start from unknown branches`);
  }
  for (const t of content.tags ?? []) {
    const target = resolve(t.ref ?? base, `tag ${t.name}`);
    if (t.message !== undefined) {
      clock += 60;
      out(`tag ${t.name}\nfrom :${target}\ntagger ${who.name} <${who.email}> ${clock} +0000\n`);
      data(t.message);
    } else {
      out(`reset refs/tags/${t.name}\nfrom :${target}\n\n`);
    }
    tips.set(t.name, target);
  }
  for (const [ref, target] of Object.entries(content.refs ?? {})) {
    out(`reset ${ref}\nfrom :${resolve(target, ref)}\n\n`);
  }
  out('done\n');
  // fast-import leaves an import of up to `fastimport.unpackLimit` (100) objects loose; copies are
  // made from the pack, so keep every import in one.
  await git(gitDir, ['-c', 'fastimport.unpackLimit=0', 'fast-import', '--quiet', '--done', '--date-format=raw'], {
    input: Buffer.concat(chunks),
  });
  await git(gitDir, ['pack-refs', '--all']);
}

/**
 * Makes `dst` (already initialised) hold exactly the content of `src`: the packs and any loose
 * objects are hard-linked (falling back to copies across file systems) and the packed refs copied,
 * with no git process.
 */
export async function copyRepoContent(src: string, dst: string): Promise<void> {
  const objects = join(src, 'objects');
  for (const entry of await readdir(objects, { withFileTypes: true })) {
    // `pack` holds the packs; two-hex-digit dirs hold loose objects (a seed's are normally packed,
    // but a copy must not depend on that).
    if (!entry.isDirectory() || !(entry.name === 'pack' || /^[0-9a-f]{2}$/.test(entry.name))) continue;
    const dir = join(objects, entry.name);
    const files = (await readdir(dir)).filter((f) => !f.startsWith('tmp_'));
    if (files.length === 0) continue;
    await mkdir(join(dst, 'objects', entry.name), { recursive: true });
    for (const f of files) await linkOrCopy(join(dir, f), join(dst, 'objects', entry.name, f));
  }
  const packed = join(src, 'packed-refs');
  if ((await stat(packed).catch(() => undefined))?.isFile()) await copyFile(packed, join(dst, 'packed-refs'));
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}
