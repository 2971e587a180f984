import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { credentialEnv, type GitCredential } from '../../packages/core/src/git-runner.js';
import { copyRepoContent } from '../../test/forge/src/repo-factory.js';
import type { SeedSpec } from '../../test/forge/src/seed.js';
import { startForge, type RunningForge } from '../../test/forge/src/server.js';
import type { PushLogEntry, RequestLogEntry } from '../../test/forge/src/state.js';
import { measure, mustSucceed, runChecked, type Measured, type RunOptions } from './proc.js';
import type { Sample } from './types.js';

/**
 * The test forge for one scenario, started in the bench process on loopback with its data dir
 * inside `bench/.cache/` (the same file system as the generated repos, so their packs are
 * hard-linked rather than copied), and removed again by `close()`.
 */

export const GH_TOKEN = 'ghp_benchREFBRIDGEgithub0000000000000000001';
export const GL_TOKEN = 'glpat-benchREFBRIDGEgitlab000000001';

export interface BenchForge {
  forge: RunningForge;
  dataDir: string;
  githubGitDir(fullName: string): string;
  gitlabGitDir(path: string): string;
  /** Positions in the request and push logs, to count what happens after them. */
  mark(): LogMark;
  requestsSince(mark: LogMark): RequestLogEntry[];
  pushesSince(mark: LogMark): PushLogEntry[];
  close(): Promise<void>;
}

export interface LogMark {
  requests: number;
  pushes: number;
}

export async function startBenchForge(
  cacheDir: string,
  seed: SeedSpec,
  ports?: { githubPort: number; gitlabPort: number },
): Promise<BenchForge> {
  const root = join(cacheDir, 'tmp');
  await mkdir(root, { recursive: true });
  const dataDir = await mkdtemp(join(root, 'forge-'));
  const forge = await startForge({ seed, dataDir, ...(ports ?? {}) });
  const { state } = forge;
  return {
    forge,
    dataDir,
    githubGitDir(fullName) {
      const [owner = '', name = ''] = fullName.split('/');
      const repo = state.githubRepo(owner, name);
      if (!repo) throw new Error(`no GitHub repo ${fullName} on the bench forge`);
      return repo.gitDir;
    },
    gitlabGitDir(path) {
      const project = state.gitlabProject(path);
      if (!project) throw new Error(`no GitLab project ${path} on the bench forge`);
      return project.gitDir;
    },
    mark: () => ({ requests: state.requestLog.length, pushes: state.pushLog.length }),
    requestsSince: (mark) => state.requestLog.slice(mark.requests),
    pushesSince: (mark) => state.pushLog.slice(mark.pushes),
    async close() {
      await forge.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Puts a generated repo's history into a forge repo: packs hard-linked, refs copied, no git process. */
export async function linkContent(fromGitDir: string, toGitDir: string): Promise<void> {
  await copyRepoContent(fromGitDir, toGitDir);
}

/** The environment of a measured command: a private HOME, no inherited git settings, the tokens. */
export function childEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    // Not npm's node_modules/.bin (it holds a different node): a user's shell does not have it.
    PATH: (process.env['PATH'] ?? '/usr/bin:/bin')
      .split(':')
      .filter((d) => !d.includes('node_modules/.bin'))
      .join(':'),
    HOME: home,
    LANG: 'C.UTF-8',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Bench Dev',
    GIT_AUTHOR_EMAIL: 'dev@bench.invalid',
    GIT_COMMITTER_NAME: 'Bench Dev',
    GIT_COMMITTER_EMAIL: 'dev@bench.invalid',
    ...extra,
  };
}

/** Credentials for plain git the way refbridge passes them (http.<origin>.extraHeader in the environment). */
export function gitAuthEnv(credentials: GitCredential[]): Record<string, string> {
  return credentialEnv(credentials);
}

/** Counts API and git requests in a slice of the request log. */
export function countRequests(entries: readonly RequestLogEntry[]): {
  api: number;
  git: number;
  gitPosts: number;
  gitTransfers: number;
} {
  const api = entries.filter((e) => e.kind === 'api').length;
  const gitEntries = entries.filter((e) => e.kind === 'git');
  // A transfer is any upload-pack or receive-pack conversation: an info/refs advertisement alone
  // already costs the server a process, so ls-remote counts too.
  return {
    api,
    git: gitEntries.length,
    gitPosts: gitEntries.filter((e) => e.method === 'POST').length,
    gitTransfers: gitEntries.filter((e) => /pack/.test(e.route)).length,
  };
}

export interface ForgeMeasured {
  /** The measured run (its stdout holds the command's --json). */
  measured: Measured;
  /** Time, memory, CPU and the API and git requests the forge saw meanwhile. */
  sample: Sample;
  counts: ReturnType<typeof countRequests>;
  /** Request bodies of the pushes the forge received meanwhile. */
  pushBytes: number;
}

/**
 * Measures one command against the bench forge and counts what the forge saw while it ran. The
 * command must succeed: a failed run is not a data point. `sample` has the fields every scenario
 * reports; the others are there for a scenario to add to it.
 */
export async function measureOnForge(
  bench: BenchForge,
  what: string,
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<ForgeMeasured> {
  const mark = bench.mark();
  const m = mustSucceed(what, await measure(cmd, args, options));
  const counts = countRequests(bench.requestsSince(mark));
  return {
    measured: m,
    sample: {
      seconds: m.seconds,
      peakRssBytes: m.peakRssBytes,
      cpuSeconds: m.cpuSeconds,
      forgeCpuSeconds: m.forgeCpuSeconds,
      apiCalls: counts.api,
      gitRequests: counts.git,
    },
    counts,
    pushBytes: bench.pushesSince(mark).reduce((n, p) => n + p.bytesReceived, 0),
  };
}

export async function gitIn(dir: string, args: string[], env?: Record<string, string>): Promise<string> {
  return (await runChecked('git', ['-C', dir, ...args], env ? { env } : {})).trim();
}

/**
 * A new commit on a branch of a forge repo, written straight into its bare repo with one
 * `git fast-import` (a push would do the same to the refs; this keeps set-up out of the timings).
 */
export async function commitInForgeRepo(gitDir: string, branch: string, path: string, content: string): Promise<void> {
  const when = Math.floor(Date.now() / 1000);
  const body = Buffer.from(content);
  const message = Buffer.from(`Bench change to ${path}\n`);
  const stream = Buffer.concat([
    Buffer.from(
      `commit refs/heads/${branch}\ncommitter Bench Dev <dev@bench.invalid> ${when} +0000\ndata ${message.length}\n`,
    ),
    message,
    Buffer.from(`from refs/heads/${branch}^0\nM 100644 inline ${path}\ndata ${body.length}\n`),
    body,
    Buffer.from('\ndone\n'),
  ]);
  await runChecked('git', ['fast-import', '--quiet', '--done', '--date-format=raw'], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', GIT_DIR: gitDir },
    input: stream,
  });
}
