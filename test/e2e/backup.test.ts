import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startForge, type RunningForge } from '../forge/src/server.js';
import type { SeedSpec } from '../forge/src/seed.js';
import type { PushLogEntry, RequestLogEntry } from '../forge/src/state.js';
import { runCli, type CliRun } from '../support/cli.js';
import { filesContaining, forgeGit } from '../support/forge-git.js';
import { git } from '../support/git.js';
import { tempDir } from '../support/temp.js';

/**
 * `refbridge backup` end to end against the test forge, run in-process through the CLI's `main`
 * with captured output and a canary token: a user and two orgs with 60 repos (a name shared by two
 * owners, a fork, an archived repo, `alice.github.io`, an empty repo), then the forge's request and
 * push logs are the witnesses for "what did that run cost".
 */

const CANARY = 'ghp_canaryREFBRIDGEbackup0000000000000001';
const BOB = 'ghp_canaryREFBRIDGEbackupbob000000000002';
const GL_CANARY = 'glpat-canaryREFBRIDGEbackup00000003';
const TOKENS = [CANARY, BOB, GL_CANARY];

const readme = (name: string): Record<string, string> => ({ 'README.md': `# ${name}\n` });
/**
 * `count` copies share the first repo's packs, and fast-import leaves fewer than 100 objects loose
 * (fastimport.unpackLimit): enough history makes a pack, so every copy really has the objects.
 */
const PACKED = 25;

const seed: SeedSpec = {
  github: {
    users: ['alice', 'bob'],
    orgs: [
      { login: 'acme', members: ['alice'] },
      { login: 'beta', members: ['alice'] },
      { login: 'huge', members: ['bob'] },
    ],
    repos: [
      // alice: 20
      { owner: 'alice', name: 'alice.github.io', files: { 'index.html': '<h1>alice</h1>\n' } },
      { owner: 'alice', name: 'tools', files: { 'alice.txt': 'alice tools\n' } },
      { owner: 'alice', name: 'forked', fork: true, files: readme('forked') },
      { owner: 'alice', name: 'old-stuff', archived: true, files: readme('old') },
      { owner: 'alice', name: 'notes', private: true, files: readme('notes'), history: 3 },
      { owner: 'alice', name: 'empty' },
      { owner: 'alice', name: 'alice-{n}', count: 14, files: readme('alice bulk'), history: PACKED },
      // acme: 20 (acme/tools shares its name with alice/tools)
      {
        owner: 'acme',
        name: 'tools',
        files: { 'acme.txt': 'acme tools\n' },
        history: 2,
        branches: {
          develop: { files: { 'dev.txt': 'only on develop\n' }, message: 'Develop work' },
          merged: {},
          feature: { files: { 'feature.txt': 'pull request work\n' }, message: 'Feature' },
        },
        tags: [{ name: 'v1.0.0', message: 'Release' }, { name: 'light' }],
        refs: { 'refs/pull/1/head': 'feature' },
      },
      { owner: 'acme', name: 'lib-{n}', count: 19, files: readme('lib'), history: PACKED },
      // beta: 20
      { owner: 'beta', name: 'svc-{n}', count: 20, files: readme('svc'), history: PACKED },
      // huge: bob's, two listing pages
      { owner: 'huge', name: 'r-{n}', count: 120, files: readme('r') },
    ],
  },
  gitlab: {
    users: ['carol'],
    groups: [{ path: 'platform', members: { carol: 50 } }, { path: 'platform/tools' }],
    projects: [
      { path: 'platform/tools/api', files: readme('api'), branches: { next: { files: { 'n.txt': 'n\n' } } } },
      { path: 'platform/web', files: readme('web'), tags: [{ name: 'v2', message: 'two' }] },
    ],
  },
  tokens: [
    { value: CANARY, platform: 'github', user: 'alice', scopes: ['repo', 'read:org', 'workflow'] },
    { value: BOB, platform: 'github', user: 'bob', scopes: ['repo', 'read:org'] },
    { value: GL_CANARY, platform: 'gitlab', user: 'carol', scopes: ['api'] },
  ],
};

let forge: RunningForge;
let work: Awaited<ReturnType<typeof tempDir>>;
let storage: string;
let hostDir: string;
const outputs: string[] = [];

function env(extra: Record<string, string> = {}): Record<string, string | undefined> {
  return {
    PATH: process.env['PATH'],
    HOME: work.path,
    GITHUB_TOKEN: CANARY,
    GITHUB_SERVER_URL: forge.urls.github.web,
    GITHUB_API_URL: forge.urls.github.api,
    GITLAB_URL: forge.urls.gitlab.web,
    CI: 'true',
    ...extra,
  };
}

/** Fast API retries so a failing page costs milliseconds. */
const FAST = ['--api-retries', '2', '--api-retry-wait', '5'];

async function backup(args: string[], extraEnv: Record<string, string> = {}): Promise<CliRun> {
  const r = await runCli(['backup', ...FAST, ...args], env(extraEnv), work.path);
  outputs.push(r.stdout, r.stderr);
  return r;
}

async function local(args: string[]): Promise<CliRun> {
  return backup(['--backup-only', '--storage', storage, '--progress', 'plain', ...args]);
}

interface JsonRun {
  exitCode: number;
  listing: { complete: boolean; listed: number; selected: number; filtered: number; otherShards: number };
  counts: Record<string, number>;
  repos: {
    repo: string;
    status: string;
    action: string;
    detail: string;
    backups: { ref: string; backupRef: string; sha: string }[];
  }[];
}

function parseJson(r: CliRun): JsonRun {
  return JSON.parse(r.stdout) as JsonRun;
}

function mirrorDir(path: string, root = storage): string {
  return join(root, hostDir, ...path.split('/').slice(0, -1), `${path.split('/').at(-1)}.git`);
}

async function refsOf(gitDir: string, prefix = 'refs/'): Promise<Record<string, string>> {
  const out = await git(gitDir, ['for-each-ref', '--format=%(objectname) %(refname)', prefix]);
  const refs: Record<string, string> = {};
  for (const line of out.split('\n').filter((l) => l)) {
    const [sha, ref] = line.split(' ') as [string, string];
    if (!ref.startsWith('refs/refbridge/')) refs[ref] = sha;
  }
  return refs;
}

function forgeRepoDir(path: string): string {
  const [owner, name] = path.split('/') as [string, string];
  const repo = forge.state.githubRepo(owner, name);
  if (!repo) throw new Error(`no forge repo ${path}`);
  return repo.gitDir;
}

function requestsSince(seq: number): RequestLogEntry[] {
  return forge.state.requestLog.filter((e) => e.seq > seq);
}

function pushesSince(seq: number): PushLogEntry[] {
  return forge.state.pushLog.filter((e) => e.seq > seq);
}

function mark(): number {
  return Math.max(0, ...forge.state.requestLog.map((e) => e.seq), ...forge.state.pushLog.map((e) => e.seq));
}

/** pushed_at has whole seconds: make the next push land in a later second than the last one. */
async function nextSecond(): Promise<void> {
  const target = Math.floor(Date.now() / 1000) * 1000 + 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, target - Date.now()) + 20));
}

/** A working clone of a forge repo, with the push credentials of its owner. */
async function clone(path: string, token = CANARY): Promise<{ dir: string; run: (args: string[]) => Promise<string> }> {
  const tmp = await tempDir('refbridge-backup-clone-');
  const run = forgeGit(forge.urls.github.web, token);
  await run(tmp.path, ['clone', '-q', `${forge.urls.github.web}/${path}.git`, 'c']);
  const dir = join(tmp.path, 'c');
  return { dir, run: (args) => run(dir, args) };
}

async function commitAndPush(
  path: string,
  file: string,
  content: string,
  refspec = 'HEAD:refs/heads/main',
): Promise<string> {
  await nextSecond();
  const c = await clone(path);
  await writeFile(join(c.dir, file), content);
  await git(c.dir, ['add', '-A']);
  await git(c.dir, ['commit', '-q', '-m', `change ${file}`]);
  await c.run(['push', '-q', 'origin', refspec]);
  return git(c.dir, ['rev-parse', 'HEAD']);
}

/** Rewrites main to a new commit on top of main's parent; returns [old tip, new tip]. */
async function forcePush(path: string, content: string): Promise<[string, string]> {
  await nextSecond();
  const c = await clone(path);
  const old = await git(c.dir, ['rev-parse', 'HEAD']);
  await git(c.dir, ['reset', '-q', '--hard', 'HEAD~1']);
  await writeFile(join(c.dir, 'rewritten.txt'), content);
  await git(c.dir, ['add', '-A']);
  await git(c.dir, ['commit', '-q', '-m', 'rewrite']);
  await c.run(['push', '-q', '--force', 'origin', 'HEAD:refs/heads/main']);
  return [old, await git(c.dir, ['rev-parse', 'HEAD'])];
}

const ALL_REPOS = (): string[] =>
  [...forge.state.githubRepos.values()]
    .filter((r) => r.owner !== 'huge')
    .map((r) => `${r.owner}/${r.name}`)
    .sort();

beforeAll(async () => {
  forge = await startForge({ seed });
  work = await tempDir('refbridge-backup-e2e-');
  storage = join(work.path, 'mirror-data');
  hostDir = new URL(forge.urls.github.web).host.replace(':', '_');
}, 120_000);

afterEach(() => {
  forge.faults.clear();
});

afterAll(async () => {
  await forge?.close();
  await work?.cleanup();
});

describe('refbridge backup to local mirrors', () => {
  it('backs up all 60 repos of the user and its two orgs, every ref, one directory per owner', async () => {
    expect(ALL_REPOS()).toHaveLength(60);
    const r = await local([]);
    expect(r.stderr).not.toContain('INCOMPLETE');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/created\s+60/);
    for (const path of ALL_REPOS()) {
      const mirror = mirrorDir(path);
      expect(existsSync(mirror)).toBe(true);
      // Every ref, hidden ones included (refs/pull/* on acme/tools).
      expect(await refsOf(mirror)).toEqual(await refsOf(forgeRepoDir(path)));
    }
    expect(existsSync(join(storage, hostDir, 'alice', 'alice.github.io.git'))).toBe(true);
    expect(await refsOf(mirrorDir('acme/tools'))).toHaveProperty(['refs/pull/1/head']);
    // Same name, two owners, two mirrors with different content.
    const a = await git(mirrorDir('alice/tools'), ['rev-parse', 'refs/heads/main']);
    const b = await git(mirrorDir('acme/tools'), ['rev-parse', 'refs/heads/main']);
    expect(a).not.toBe(b);
    expect(await git(mirrorDir('acme/tools'), ['symbolic-ref', 'HEAD'])).toBe('refs/heads/main');
    expect(existsSync(join(storage, '.refbridge', 'backup-state.json'))).toBe(true);
  }, 180_000);

  it('fetches nothing on a second run: only listing calls, no git traffic at all', async () => {
    const since = mark();
    const r = await local(['--json']);
    expect(r.code).toBe(0);
    const json = parseJson(r);
    expect(json.counts['unchanged']).toBe(60);
    const requests = requestsSince(since);
    expect(requests.filter((e) => e.kind === 'git')).toEqual([]);
    const api = requests.filter((e) => e.kind === 'api');
    expect(api.length).toBeGreaterThan(0);
    expect(new Set(api.map((e) => e.route))).toEqual(new Set(['GET /user/repos']));
    // ETags: the unchanged listing is answered 304, which costs no rate limit on GitHub.
    expect(api.every((e) => e.status === 304)).toBe(true);
    expect(pushesSince(since)).toEqual([]);
  });

  it('picks up a push with the next run, fetching only that repo', async () => {
    const tip = await commitAndPush('acme/lib-3', 'new.txt', 'new\n');
    const since = mark();
    const r = await local(['--json']);
    expect(r.code).toBe(0);
    const json = parseJson(r);
    expect(json.repos.find((x) => x.repo === 'acme/lib-3')?.status).toBe('updated');
    expect(json.counts['unchanged']).toBe(59);
    const gitPaths = new Set(
      requestsSince(since)
        .filter((e) => e.kind === 'git')
        .map((e) => e.path.split('.git')[0]),
    );
    expect(gitPaths).toEqual(new Set(['/acme/lib-3']));
    expect(await git(mirrorDir('acme/lib-3'), ['rev-parse', 'refs/heads/main'])).toBe(tip);
  });

  it('picks up pushes made while refbridge was not running (a new process reads the state file)', async () => {
    // Nothing of refbridge runs between these pushes and the next run: only the state file remembers.
    const svc = await commitAndPush('beta/svc-7', 'offline.txt', 'pushed while stopped\n');
    const tag = await commitAndPush('alice/alice-2', 'tagged.txt', 'tag me\n', 'HEAD:refs/tags/v9');
    const state = JSON.parse(await readFile(join(storage, '.refbridge', 'backup-state.json'), 'utf8')) as {
      repos: Record<string, { pushedAt: string }>;
    };
    expect(Object.keys(state.repos)).toHaveLength(60);
    const r = await local(['--json']);
    expect(r.code).toBe(0);
    const json = parseJson(r);
    expect(
      json.repos
        .filter((x) => x.status !== 'unchanged')
        .map((x) => x.repo)
        .sort(),
    ).toEqual(['alice/alice-2', 'beta/svc-7']);
    expect(await git(mirrorDir('beta/svc-7'), ['rev-parse', 'refs/heads/main'])).toBe(svc);
    expect(await git(mirrorDir('alice/alice-2'), ['rev-parse', 'refs/tags/v9'])).toBe(tag);
  });

  it('keeps the old tip under refs/refbridge/backup/ when upstream deletes an unmerged branch or force-pushes', async () => {
    const mirror = mirrorDir('acme/tools');
    const backupRefs = async (): Promise<string[]> =>
      (await git(mirror, ['for-each-ref', '--format=%(refname) %(objectname)', 'refs/refbridge/backup/']))
        .split('\n')
        .filter((l) => l);

    // Deletions: `develop` has a commit nothing else has, `merged` sits on main. Main moves on too.
    await nextSecond();
    const c = await clone('acme/tools');
    const develop = await git(c.dir, ['rev-parse', 'origin/develop']);
    await writeFile(join(c.dir, 'only-on-main.txt'), 'soon rewritten away\n');
    await git(c.dir, ['add', '-A']);
    await git(c.dir, ['commit', '-q', '-m', 'Work that a force push will drop']);
    await c.run(['push', '-q', 'origin', 'HEAD:refs/heads/main', ':refs/heads/develop', ':refs/heads/merged']);
    let r = await local(['--json', '--include', 'acme/*']);
    expect(r.code).toBe(0);
    expect(parseJson(r).repos.find((x) => x.repo === 'acme/tools')?.status).toBe('updated');
    let backups = await backupRefs();
    expect(backups).toHaveLength(1);
    expect(backups[0]).toMatch(new RegExp(`^refs/refbridge/backup/\\d{8}T\\d{6}Z/heads/develop ${develop}$`));
    expect(await refsOf(mirror)).not.toHaveProperty(['refs/heads/develop']);
    expect(await refsOf(mirror)).not.toHaveProperty(['refs/heads/merged']);

    // A force push: the old tip is kept, dated, and its commits stay in the mirror.
    const [oldTip, newTip] = await forcePush('acme/tools', 'rewritten history\n');
    r = await local(['--json', '--include', 'acme/*']);
    expect(r.code).toBe(0);
    const result = parseJson(r).repos.find((x) => x.repo === 'acme/tools');
    expect(result?.status).toBe('updated');
    expect(result?.backups.map((b) => [b.ref, b.sha])).toEqual([['refs/heads/main', oldTip]]);
    expect(await git(mirror, ['rev-parse', 'refs/heads/main'])).toBe(newTip);
    backups = await backupRefs();
    expect(
      backups.some((l) => /^refs\/refbridge\/backup\/\d{8}T\d{6}Z\/heads\/main /.test(l) && l.endsWith(oldTip)),
    ).toBe(true);
    await git(mirror, ['cat-file', '-e', `${oldTip}^{commit}`]);
    // Everything else is exactly upstream, hidden PR refs included.
    expect(await refsOf(mirror)).toEqual(await refsOf(forgeRepoDir('acme/tools')));
  });

  it('discovers a repo created since the last run', async () => {
    const res = await fetch(`${forge.urls.github.api}/orgs/beta/repos`, {
      method: 'POST',
      headers: { authorization: `token ${CANARY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'brand-new', private: true }),
    });
    expect(res.status).toBe(201);
    const tmp = await tempDir('refbridge-backup-new-');
    await git(tmp.path, ['init', '-q', '-b', 'main']);
    await writeFile(join(tmp.path, 'hello.txt'), 'hello\n');
    await git(tmp.path, ['add', '-A']);
    await git(tmp.path, ['commit', '-q', '-m', 'first']);
    await forgeGit(forge.urls.github.web, CANARY)(tmp.path, [
      'push',
      '-q',
      `${forge.urls.github.web}/beta/brand-new.git`,
      'HEAD:refs/heads/main',
    ]);
    const tip = await git(tmp.path, ['rev-parse', 'HEAD']);
    await tmp.cleanup();
    const r = await local(['--json']);
    expect(r.code).toBe(0);
    const json = parseJson(r);
    expect(json.listing.listed).toBe(61);
    expect(json.repos.find((x) => x.repo === 'beta/brand-new')?.status).toBe('created');
    expect(await git(mirrorDir('beta/brand-new'), ['rev-parse', 'refs/heads/main'])).toBe(tip);
  });

  it('splits the repos over shards 1/3, 2/3 and 3/3, each exactly once, without any git traffic', async () => {
    const since = mark();
    const seen: string[] = [];
    for (const k of [1, 2, 3]) {
      const r = await local(['--json', '--dry-run', '--shard', `${k}/3`]);
      expect(r.code).toBe(0);
      const json = parseJson(r);
      expect(json.listing.selected + json.listing.otherShards).toBe(61);
      expect(json.listing.selected).toBeGreaterThan(0);
      seen.push(...json.repos.map((x) => x.repo));
    }
    expect(seen.sort()).toEqual([...ALL_REPOS()].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(requestsSince(since).filter((e) => e.kind === 'git')).toEqual([]);
  });

  it('leaves out forks and archived repos when asked, and matches --include/--exclude globs', async () => {
    const r = await local([
      '--json',
      '--dry-run',
      '--skip-forks',
      '--skip-archived',
      '--include',
      'alice/*',
      '--exclude',
      'alice/alice-1?',
    ]);
    const json = parseJson(r);
    const repos = json.repos.map((x) => x.repo);
    expect(repos).not.toContain('alice/forked');
    expect(repos).not.toContain('alice/old-stuff');
    expect(repos).toContain('alice/alice.github.io');
    expect(repos).toContain('alice/alice-1');
    expect(repos).not.toContain('alice/alice-10');
    expect(repos.every((x) => x.startsWith('alice/'))).toBe(true);
  });

  it('draws a live progress block on a terminal and plain lines in CI', async () => {
    const live = await local(['--dry-run', '--progress', 'live', '--include', 'acme/*']);
    expect(live.code).toBe(0);
    expect(live.stderr).toContain('\u001b[');
    expect(live.stderr).toMatch(/backup: 20\/20 repos, 0 B fetched/);
    const plain = await local(['--dry-run', '--include', 'acme/*']); // CI=true: auto is plain
    expect(plain.stderr).not.toContain('\u001b[');
    expect(plain.stderr).toContain('backup: 61 repo(s) listed, 20 to look at');
    expect(plain.stdout).toMatch(/unchanged\s+20/);
  });

  it('keeps a checkout of the default branch beside the mirror, follows force pushes, never overwrites local changes', async () => {
    const only = [
      '--checkout',
      '--include',
      'alice/alice.github.io',
      '--include',
      'acme/tools',
      '--include',
      'alice/empty',
    ];
    let r = await local(only);
    expect(r.code).toBe(0);
    const site = join(storage, hostDir, 'alice', 'alice.github.io');
    expect(await readFile(join(site, 'index.html'), 'utf8')).toBe('<h1>alice</h1>\n');
    expect(await git(site, ['rev-parse', 'HEAD'])).toBe(
      await git(mirrorDir('alice/alice.github.io'), ['rev-parse', 'refs/heads/main']),
    );
    expect(await git(site, ['symbolic-ref', '--short', 'HEAD'])).toBe('main');
    // The checkout's origin is the local mirror: no URL with credentials, no forge URL at all.
    expect(await git(site, ['remote', 'get-url', 'origin'])).toBe(mirrorDir('alice/alice.github.io'));
    expect(existsSync(join(storage, hostDir, 'alice', 'empty'))).toBe(false);

    const tools = join(storage, hostDir, 'acme', 'tools');
    const [, newTip] = await forcePush('acme/tools', 'rewritten again\n');
    r = await local(only);
    expect(r.code).toBe(0);
    expect(await git(tools, ['rev-parse', 'HEAD'])).toBe(newTip);
    expect(await readFile(join(tools, 'rewritten.txt'), 'utf8')).toBe('rewritten again\n');
    expect(await git(tools, ['status', '--porcelain'])).toBe('');

    // Local edits: the mirror moves on, the checkout is left alone and the run says so.
    await writeFile(join(tools, 'acme.txt'), 'my local edit\n');
    const [, third] = await forcePush('acme/tools', 'third version\n');
    r = await local(only);
    expect(r.code).toBe(0);
    expect(r.stderr + r.stdout).toMatch(/acme\/tools.*checkout has local changes/);
    expect(await git(mirrorDir('acme/tools'), ['rev-parse', 'refs/heads/main'])).toBe(third);
    expect(await git(tools, ['rev-parse', 'HEAD'])).toBe(newTip);
    expect(await readFile(join(tools, 'acme.txt'), 'utf8')).toBe('my local edit\n');
  });
});

describe('listing failures', () => {
  it('fails loudly when a listing page keeps failing after retries, and deletes nothing', async () => {
    const bobStorage = join(work.path, 'bob-data');
    const bob = (args: string[]): Promise<CliRun> =>
      backup(['--backup-only', '--storage', bobStorage, '--progress', 'plain', '--owner', 'huge', ...args], {
        GITHUB_TOKEN: BOB,
      });
    let r = await bob(['--include', 'huge/r-1', '--json']);
    expect(r.code).toBe(0);
    expect(parseJson(r).listing.listed).toBe(120);
    const mirror = mirrorDir('huge/r-1', bobStorage);
    expect(existsSync(mirror)).toBe(true);
    const stateBefore = await readFile(join(bobStorage, '.refbridge', 'backup-state.json'), 'utf8');

    // Page 1 answers, page 2 fails on every try.
    forge.faults.set([
      { platform: 'github', kind: 'api', path: '/orgs/huge/repos', fault: 'status', status: 503, nth: 2, times: 100 },
    ]);
    const since = mark();
    r = await bob([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('INCOMPLETE');
    expect(r.stderr).toMatch(/page 2/);
    expect(r.stderr).toContain('nothing was deleted');
    const pageTwo = requestsSince(since).filter((e) => e.route === 'GET /orgs/:org/repos' && e.status === 503);
    expect(pageTwo.length).toBe(3); // the first try and two retries
    expect(existsSync(mirror)).toBe(true);
    expect(Object.keys(await refsOf(mirror)).length).toBeGreaterThan(0);
    const stateAfter = JSON.parse(await readFile(join(bobStorage, '.refbridge', 'backup-state.json'), 'utf8')) as {
      repos: Record<string, unknown>;
    };
    expect(Object.keys(stateAfter.repos)).toEqual(Object.keys((JSON.parse(stateBefore) as { repos: object }).repos));
  });
});

describe('refbridge backup to GitLab', () => {
  it('creates the group structure, mirrors branches and tags (never hidden refs), and reports protected-branch refusals', async () => {
    const glStorage = join(work.path, 'gl-data');
    const toGitlab = (args: string[]): Promise<CliRun> =>
      backup(
        [
          '--storage',
          glStorage,
          '--progress',
          'plain',
          '--owner',
          'acme',
          '--include',
          'acme/tools',
          '--include',
          'acme/lib-1',
          '--gitlab-namespace',
          'mirrors',
          ...args,
        ],
        { GITLAB_TOKEN: GL_CANARY },
      );
    const since = mark();
    let r = await toGitlab([]);
    expect(r.code).toBe(0);
    for (const group of ['mirrors', 'mirrors/acme']) expect(forge.state.gitlabGroups.has(group)).toBe(true);
    const project = forge.state.gitlabProject('mirrors/acme/tools');
    expect(project?.visibility).toBe('private');
    const glRefs = await refsOf(project?.gitDir ?? '');
    const ghRefs = await refsOf(forgeRepoDir('acme/tools'));
    const branchesAndTags = Object.fromEntries(
      Object.entries(ghRefs).filter(([ref]) => /^refs\/(heads|tags)\//.test(ref)),
    );
    expect(glRefs).toEqual(branchesAndTags);
    expect(forge.state.gitlabProject('mirrors/acme/lib-1')).toBeDefined();
    const pushed = pushesSince(since)
      .filter((p) => p.platform === 'gitlab')
      .flatMap((p) => [...p.updates, ...(p.rejected ?? [])].map((u) => u.ref));
    expect(pushed.length).toBeGreaterThan(0);
    expect(pushed.every((ref) => /^refs\/(heads|tags)\//.test(ref))).toBe(true);

    // An unchanged second run pushes nothing and touches GitLab not at all.
    const quiet = mark();
    r = await toGitlab([]);
    expect(r.code).toBe(0);
    expect(requestsSince(quiet).filter((e) => e.platform === 'gitlab')).toEqual([]);

    // Upstream rewrites main; GitLab protects the default branch against force pushes.
    const [, newTip] = await forcePush('acme/tools', 'rewritten for gitlab\n');
    r = await toGitlab([]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('acme/tools');
    expect(r.stdout).toContain('protected branch "main"');
    const glMain = async (): Promise<string> => (await refsOf(project?.gitDir ?? ''))['refs/heads/main'] ?? '';
    expect(await glMain()).not.toBe(newTip);

    // Opt-in: allowed for the one push, logged, and restored.
    r = await toGitlab(['--temporarily-allow-force-push']);
    expect(r.code).toBe(0);
    expect(await glMain()).toBe(newTip);
    expect(r.stderr).toContain('temporarily allowed force push');
    expect(r.stderr).toContain('restored');
    expect(
      forge.state.gitlabProject('mirrors/acme/tools')?.protectedBranches.find((b) => b.name === 'main')?.allowForcePush,
    ).toBe(false);
  });
});

describe('GitLab as the source', () => {
  it('backs up a group with its subgroups, keeping the nesting, and confirms recent activity with ls-remote only', async () => {
    const glStorage = join(work.path, 'from-gitlab');
    const glHost = new URL(forge.urls.gitlab.web).host.replace(':', '_');
    const fromGitlab = (args: string[]): Promise<CliRun> =>
      backup(
        [
          '--backup-only',
          '--source',
          'gitlab',
          '--owner',
          'platform',
          '--storage',
          glStorage,
          '--progress',
          'plain',
          '--json',
          ...args,
        ],
        {
          GITLAB_TOKEN: GL_CANARY,
          GITHUB_TOKEN: '',
        },
      );
    let r = await fromGitlab([]);
    expect(r.code).toBe(0);
    expect(parseJson(r).counts['created']).toBe(2);
    for (const path of ['platform/tools/api', 'platform/web']) {
      const mirror = join(glStorage, glHost, ...path.split('/').slice(0, -1), `${path.split('/').at(-1)}.git`);
      expect(await refsOf(mirror)).toEqual(await refsOf(forge.state.gitlabProject(path)?.gitDir ?? ''));
    }
    // last_activity_at moves at most hourly on GitLab: within --window the tips are confirmed, not fetched.
    r = await fromGitlab([]);
    const json = parseJson(r);
    expect(json.repos.map((x) => [x.action, x.status])).toEqual([
      ['verify', 'unchanged'],
      ['verify', 'unchanged'],
    ]);
    // --window 0 trusts the timestamp: no git traffic at all.
    await fromGitlab(['--window', '0']);
    const since = mark();
    r = await fromGitlab(['--window', '0']);
    expect(parseJson(r).counts['unchanged']).toBe(2);
    expect(requestsSince(since).filter((e) => e.kind === 'git')).toEqual([]);
  });
});

describe('watch mode', () => {
  it('serves Prometheus metrics and a health check, and stops cleanly on SIGTERM', async () => {
    const watchStorage = join(work.path, 'watch-data');
    let stderr = '';
    let stdout = '';
    const { main } = await import('../../packages/cli/src/program.js');
    const running = main(
      [
        'backup',
        ...FAST,
        '--backup-only',
        '--storage',
        watchStorage,
        '--progress',
        'plain',
        '--include',
        'acme/lib-1',
        '--watch',
        '--interval',
        '1',
        '--metrics-port',
        '0',
      ],
      { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: env(), cwd: work.path },
    );
    const deadline = Date.now() + 30_000;
    let metricsText = '';
    while (Date.now() < deadline) {
      const url = /metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(stderr)?.[1];
      if (url) {
        metricsText = await (await fetch(`${url}/metrics`)).text();
        if (metricsText.includes('refbridge_backup_rounds_total{result="success"} 1')) {
          const health = await fetch(`${url}/healthz`);
          expect(health.status).toBe(200);
          expect(((await health.json()) as { status: string }).status).toBe('ok');
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    process.emit('SIGTERM', 'SIGTERM');
    expect(await running).toBe(0);
    outputs.push(stdout, stderr);
    expect(metricsText).toContain('refbridge_backup_last_success_timestamp_seconds');
    expect(metricsText).toMatch(/refbridge_backup_repos\{status="created"\} 1/);
    expect(metricsText).toContain('refbridge_backup_lag_seconds 0');
    expect(metricsText).toContain('refbridge_backup_listing_complete 1');
  });
});

describe('secrets', () => {
  it('never writes a token to any output, file or .git/config under the storage directories', async () => {
    const forms = TOKENS.flatMap((t) => [
      t,
      Buffer.from(`x-access-token:${t}`).toString('base64'),
      Buffer.from(`oauth2:${t}`).toString('base64'),
    ]);
    for (const form of forms) {
      for (const text of outputs) expect(text.includes(form)).toBe(false);
      expect(await filesContaining(work.path, form)).toEqual([]);
    }
    const config = await readFile(join(mirrorDir('acme/tools'), 'config'), 'utf8');
    expect(config).toContain(`${forge.urls.github.web}/acme/tools.git`);
    expect(config).not.toMatch(/extraheader|@127/i);
  });
});

describe('Git LFS', () => {
  it('says loudly that LFS objects are not backed up when a repo starts storing files with LFS', async () => {
    await nextSecond();
    const c = await clone('acme/lib-4');
    await writeFile(join(c.dir, '.gitattributes'), '*.bin filter=lfs diff=lfs merge=lfs -text\n');
    await writeFile(
      join(c.dir, 'big.bin'),
      `version https://git-lfs.github.com/spec/v1\noid sha256:${'c'.repeat(64)}\nsize 9\n`,
    );
    await git(c.dir, ['add', '-A']);
    await git(c.dir, ['commit', '-q', '-m', 'track binaries with LFS']);
    // --no-verify: where git-lfs is installed, its pre-push hook would look for the object content.
    await c.run(['push', '-q', '--no-verify', 'origin', 'HEAD:refs/heads/main']);
    const r = await local(['--json']);
    expect(r.code).toBe(0);
    const repo = parseJson(r).repos.find((x) => x.repo === 'acme/lib-4') as unknown as {
      status: string;
      warnings: string[];
    };
    expect(repo.status).toBe('updated');
    expect(repo.warnings.join('\n')).toContain('stores files with Git LFS (.gitattributes line 1 (');
    expect(r.stderr).toContain('acme/lib-4');
    expect(r.stderr).toContain('LFS objects are not backed up, only their pointer files');
    // The next run has nothing to fetch and asks nothing.
    const again = await local(['--json']);
    expect(parseJson(again).repos.find((x) => x.repo === 'acme/lib-4')?.status).toBe('unchanged');
  });
});
