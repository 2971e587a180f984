import { spawn } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { startForge, type RunningForge } from '../forge/src/server.js';
import type { SeedSpec } from '../forge/src/seed.js';
import { repoRoot } from './paths.js';
import { tempDir } from './temp.js';

/**
 * Shared set-up of the reliability suite (test/reliability): a forge with pairs of repos, a config
 * file, the CLI run as a real child process (`node packages/cli/dist/bin.js`, the machine's node),
 * plumbing that writes commits straight into the forge's bare repos (fast: no HTTP round trips
 * for the "users" of these tests), and the checks every scenario ends with: which commits are
 * reachable, and whether `git fsck` passes.
 */

/** Canary tokens: unique strings the leak checks look for (see reliability-leaks.ts). */
export const CANARY = {
  github: 'ghp_canaryRELIABILITYgithub00000000000001',
  gitlab: 'glpat-canaryRELIABILITYgitlab0001',
} as const;

export const CLI_BIN = join(repoRoot, 'packages', 'cli', 'dist', 'bin.js');

/** Retry waits shortened to milliseconds: the suite tests that retries happen, not how long they wait. */
export const FAST_RETRY_ENV: Record<string, string> = {
  REFBRIDGE_GITHUB_WRITE_INTERVAL_MS: '0',
  REFBRIDGE_API_RETRY_WAIT_MS: '5',
  REFBRIDGE_GIT_RETRY_WAIT_MS: '5',
};

// One seeded PRNG for the forge's faults and the suites' own choices.
export { seededRandom } from '../forge/src/faults.js';

/** A whole number from the environment (bounded), else the default. */
export function envInt(name: string, fallback: number, max = 100_000): number {
  const v = process.env[name];
  if (v === undefined || !/^\d+$/.test(v)) return fallback;
  return Math.min(Number(v), max);
}

export interface WorldOptions {
  prefix: string;
  /** Pair names: GitHub `acme/<name>` <-> GitLab `acme/<name>`. */
  pairs: readonly string[];
  /** Content of each GitHub repo (default: a README, 2 commits of history, a `dev` branch, a tag). */
  githubContent?: (name: string) => Record<string, unknown>;
  /** Content of each GitLab project (default: empty, the first sync fills it). */
  gitlabContent?: (name: string) => Record<string, unknown>;
  /** Extra config keys merged into refbridge.yaml (e.g. `defaults`). */
  config?: Record<string, unknown>;
  /** Extra seed entries (users, repos, tokens). */
  seed?: { githubRepos?: unknown[]; gitlabGroups?: unknown[]; gitlabProjects?: unknown[]; tokens?: unknown[] };
}

export interface World {
  forge: RunningForge;
  root: string;
  configPath: string;
  cacheDir: string;
  /** Environment for CLI runs: tokens, HOME in the world, PATH, short retry waits. */
  env: Record<string, string>;
  pairs: readonly string[];
  githubDir(name: string): string;
  gitlabDir(name: string): string;
  close(): Promise<void>;
}

export const defaultGithubContent = (): Record<string, unknown> => ({
  files: { 'README.md': '# repo\n' },
  history: 2,
  branches: { dev: {} },
  tags: [{ name: 'v1', message: 'Release' }],
});

export async function startWorld(options: WorldOptions): Promise<World> {
  const tmp = await tempDir(options.prefix);
  const githubContent = options.githubContent ?? defaultGithubContent;
  const seed = {
    github: {
      users: ['alice'],
      orgs: [{ login: 'acme', members: ['alice'] }],
      repos: [
        ...options.pairs.map((name) => ({ owner: 'acme', name, private: true, ...githubContent(name) })),
        ...(options.seed?.githubRepos ?? []),
      ],
    },
    gitlab: {
      users: ['carol'],
      groups: [{ path: 'acme', members: { carol: 50 } }, ...(options.seed?.gitlabGroups ?? [])],
      projects: [
        ...options.pairs.map((name) => ({ path: `acme/${name}`, ...(options.gitlabContent?.(name) ?? {}) })),
        ...(options.seed?.gitlabProjects ?? []),
      ],
    },
    tokens: [
      { value: CANARY.github, platform: 'github', user: 'alice', scopes: ['repo', 'workflow', 'read:org'] },
      { value: CANARY.gitlab, platform: 'gitlab', user: 'carol', scopes: ['api'] },
      ...(options.seed?.tokens ?? []),
    ],
  } as SeedSpec;
  const forge = await startForge({ seed });
  const configPath = join(tmp.path, 'refbridge.yaml');
  const config = {
    github: { url: forge.urls.github.web, apiUrl: forge.urls.github.api },
    gitlab: { url: forge.urls.gitlab.web },
    ...(options.config ?? {}),
    pairs: options.pairs.map((name) => ({ name, github: `acme/${name}`, gitlab: `acme/${name}` })),
  };
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: tmp.path,
    GITHUB_TOKEN: CANARY.github,
    GITLAB_TOKEN: CANARY.gitlab,
    GITHUB_SERVER_URL: forge.urls.github.web,
    GITHUB_API_URL: forge.urls.github.api,
    GITLAB_URL: forge.urls.gitlab.web,
    ...FAST_RETRY_ENV,
  };
  return {
    forge,
    root: tmp.path,
    configPath,
    cacheDir: join(tmp.path, 'cache'),
    env,
    pairs: options.pairs,
    githubDir: (name) => {
      const repo = forge.state.githubRepo('acme', name);
      if (!repo) throw new Error(`no GitHub repo acme/${name} in the forge`);
      return repo.gitDir;
    },
    gitlabDir: (name) => {
      const project = forge.state.gitlabProject(`acme/${name}`);
      if (!project) throw new Error(`no GitLab project acme/${name} in the forge`);
      return project.gitDir;
    },
    close: async () => {
      await forge.close();
      await tmp.cleanup();
    },
  };
}

// ---- the CLI as a child process ------------------------------------------------------------

export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
  /** Whether this run was killed by the test. */
  killed: boolean;
  durationMs: number;
}

export interface ChildOptions {
  env: Record<string, string>;
  cwd: string;
  /** SIGKILL after this many ms (undefined: let it finish). */
  killAfterMs?: number;
  /**
   * `group`: the whole process group (node and its git children, like a machine or container
   * crash); `node`: only node (like the OOM killer), its git children run on as orphans.
   */
  killMode?: 'group' | 'node';
  /** Hard bound on the run; it is killed (and the run reported) after this. */
  timeoutMs?: number;
  /** Called with the child's pid as soon as it exists. */
  onSpawn?: (pid: number) => void;
}

export interface ChildHandle {
  pid: number;
  /** Settles when the process has exited and its output is read; never rejects. */
  done: Promise<ChildRun>;
  exited: () => boolean;
  /** SIGKILL now: the process group, or node alone. */
  kill(mode: 'group' | 'node'): void;
}

/** Starts `node packages/cli/dist/bin.js ...args` in its own process group. */
export function startCliChild(args: readonly string[], options: ChildOptions): ChildHandle {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    env: options.env,
    cwd: options.cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the CLI');
  options.onSpawn?.(pid);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let killed = false;
  let exited = false;
  const kill = (mode: 'group' | 'node'): void => {
    if (exited) return;
    killed = true;
    try {
      if (mode === 'group') process.kill(-pid, 'SIGKILL');
      else process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const killTimer =
    options.killAfterMs === undefined
      ? undefined
      : setTimeout(() => kill(options.killMode ?? 'group'), options.killAfterMs);
  const bound = options.timeoutMs ?? 120_000;
  const hardTimer = setTimeout(() => {
    stderr += `\n[test] killed after the ${bound} ms bound\n`;
    kill('group');
  }, bound);
  const done = new Promise<ChildRun>((resolve) => {
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(killTimer);
      clearTimeout(hardTimer);
      resolve({ code, signal, stdout, stderr, pid, killed, durationMs: Date.now() - started });
    });
  });
  child.on('exit', () => {
    exited = true;
  });
  return { pid, done, exited: () => exited, kill };
}

/** Runs the CLI as a child process to the end (or to `killAfterMs`); never rejects. */
export function runCliChild(args: readonly string[], options: ChildOptions): Promise<ChildRun> {
  return startCliChild(args, options).done;
}

/** Waits (bounded) until no process of the group is left, e.g. git orphans of a killed node. */
export async function waitForGroupGone(pgid: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

// ---- git plumbing on the forge's bare repos ------------------------------------------------

const IDENTITY = {
  GIT_AUTHOR_NAME: 'Reliability',
  GIT_AUTHOR_EMAIL: 'reliability@example.com',
  GIT_COMMITTER_NAME: 'Reliability',
  GIT_COMMITTER_EMAIL: 'reliability@example.com',
};

export async function gitIn(
  gitDir: string,
  args: string[],
  options: { input?: string; ok?: number[] } = {},
): Promise<string> {
  const r = await execa('git', args, {
    env: { GIT_DIR: gitDir, LC_ALL: 'C', ...IDENTITY },
    reject: false,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
  });
  if (r.exitCode !== 0 && !(options.ok ?? []).includes(r.exitCode ?? -1)) {
    throw new Error(`git ${args.join(' ')} in ${gitDir} failed (${r.exitCode}): ${r.stderr}`);
  }
  return r.stdout.trim();
}

/** Ref name -> SHA in a bare repo. */
export async function refsOf(gitDir: string, prefix = 'refs/'): Promise<Map<string, string>> {
  const out = await gitIn(gitDir, ['for-each-ref', '--format=%(objectname) %(refname)', prefix]);
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) refs.set(line.slice(space + 1), line.slice(0, space));
  }
  return refs;
}

/** Branch and tag tips only (what sync compares), as a plain object for equality checks. */
export async function branchesAndTags(gitDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [ref, sha] of await refsOf(gitDir))
    if (ref.startsWith('refs/heads/') || ref.startsWith('refs/tags/')) out[ref] = sha;
  return out;
}

let commitSeq = 0;

/**
 * Writes a new commit straight into a forge repo (as a push would) and moves `ref` to it:
 * on top of `ref`'s tip, or of its parent with `rewrite` (a force push). Returns the new SHA.
 */
export async function writeCommit(
  gitDir: string,
  ref: string,
  options: { rewrite?: boolean; from?: string } = {},
): Promise<string> {
  const current = await gitIn(gitDir, ['rev-parse', '-q', '--verify', `${ref}^{commit}`], { ok: [1, 128] });
  const base = options.from ?? (current ? (options.rewrite ? `${current}~1` : current) : undefined);
  const parent = base ? await gitIn(gitDir, ['rev-parse', '-q', '--verify', `${base}^{commit}`], { ok: [1, 128] }) : '';
  const n = ++commitSeq;
  const blob = await gitIn(gitDir, ['hash-object', '-w', '--stdin'], { input: `change ${n} ${process.pid}\n` });
  const tree = await gitIn(gitDir, ['mktree'], { input: `100644 blob ${blob}\tchange-${n}.txt\n` });
  const sha = await gitIn(gitDir, ['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-m', `change ${n}`]);
  await gitIn(gitDir, ['update-ref', ref, sha]);
  return sha;
}

let pushedAtSeq = 0;

/**
 * What a push does to the listing: GitHub's `pushed_at` moves (whole seconds; each call gives a
 * later, distinct value, so back-to-back writes are told apart as they would be a second apart).
 */
export function markPushed(world: World, owner: string, name: string): void {
  const repo = world.forge.state.githubRepo(owner, name);
  if (!repo) throw new Error(`no GitHub repo ${owner}/${name}`);
  const at = new Date(Date.UTC(2030, 0, 1) + ++pushedAtSeq * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  repo.pushedAt = at;
  repo.updatedAt = at;
}

/** Deletes a ref in a forge repo (as a push of `:ref` would). */
export async function deleteRef(gitDir: string, ref: string): Promise<void> {
  await gitIn(gitDir, ['update-ref', '-d', ref]);
}

/** Commits reachable from the refs matching `globs` (all refs when empty). */
export async function reachable(gitDir: string, globs: readonly string[] = []): Promise<Set<string>> {
  const args = globs.length === 0 ? ['--all'] : globs.map((g) => `--glob=${g}`);
  const out = await gitIn(gitDir, ['rev-list', ...args]);
  return new Set(out.split('\n').filter(Boolean));
}

/** `git fsck` of a repo: undefined when clean, else git's complaint. */
export async function fsckProblem(gitDir: string): Promise<string | undefined> {
  const r = await execa('git', ['fsck', '--no-progress', '--no-dangling'], {
    env: { GIT_DIR: gitDir, LC_ALL: 'C' },
    reject: false,
  });
  return r.exitCode === 0 ? undefined : `exit ${r.exitCode}: ${r.stderr || r.stdout}`;
}

/** Every bare repo below `dir` (directories ending in `.git` holding a HEAD). */
export async function bareReposUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(d: string, depth: number): Promise<void> {
    if (depth > 8) return;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    if (entries.some((e) => e.name === 'HEAD' && e.isFile()) && entries.some((e) => e.name === 'objects')) {
      found.push(d);
      return;
    }
    for (const e of entries) if (e.isDirectory()) await walk(join(d, e.name), depth + 1);
  }
  await walk(dir, 0);
  return found.sort();
}

/** Git's own lock files left in a repo (a killed git leaves these; they block the next writer). */
export async function gitLockFiles(gitDir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'objects') await walk(p);
      } else if (e.name.endsWith('.lock')) found.push(p);
    }
  }
  await walk(gitDir);
  return found;
}
