import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, type CliRun } from '../support/cli.js';
import { ArgvSampler, LeakCheck } from '../support/reliability-leaks.js';
import {
  CANARY,
  branchesAndTags,
  gitIn,
  refsOf,
  startWorld,
  writeCommit,
  type World,
} from '../support/reliability-world.js';

/**
 * A corpus of bad configs and bad states, each with the message it must produce (naming the
 * culprit: file and line, key, repo, path or variable) and what must stay untouched. Every case
 * runs with the canary tokens in the environment; outputs, files and process argv are checked for
 * them at the end. Runs go through the CLI's `main()` in-process (the crash and race tests cover
 * the built binary), which is quick enough to keep the corpus large.
 */

const EXPIRED = 'ghp_canaryRELIABILITYexpired0000000000003';
const NO_SCOPE = 'ghp_canaryRELIABILITYnoscope0000000000004';
const GL_READ_ONLY = 'glpat-canaryRELIABILITYreadonly05';
const UNKNOWN = 'glpat-canaryRELIABILITYunknown006';
const TOKENS = [CANARY.github, CANARY.gitlab, EXPIRED, NO_SCOPE, GL_READ_ONLY, UNKNOWN];

let world: World;
let sampler: ArgvSampler | undefined;
const leaks = new LeakCheck(TOKENS);
const figures: { cases: number; byCommand: Record<string, number>; mounted: string[] } = {
  cases: 0,
  byCommand: {},
  mounted: [],
};
const SHOW = process.env['REFBRIDGE_SHOW_OUTPUT'] === '1';

/** Unusual but valid ref names: spaces are not allowed by git, everything here is. */
const ODD_REFS = [
  'refs/heads/ünïcödé/ветка',
  'refs/heads/-starts-with-dash',
  'refs/heads/$(touch${IFS}PWNED)',
  'refs/heads/;touch_PWNED;',
  'refs/heads/semi;colon&amp',
  'refs/heads/quote"and\'apostrophe',
  'refs/heads/back`tick`',
  'refs/heads/a@b',
  'refs/heads/per%cent',
  'refs/heads/deep/ly/nest/ed/branch',
  'refs/tags/v1.0.0+build.7',
  'refs/tags/#hash',
];

beforeAll(async () => {
  world = await startWorld({
    prefix: 'refbridge-bad-input-',
    pairs: ['good', 'odd'],
    seed: {
      githubRepos: [
        { owner: 'acme', name: 'big', private: true, files: { 'README.md': '# big\n' } },
        { owner: 'acme', name: 'other', private: true, files: { 'README.md': '# other\n' } },
      ],
      gitlabProjects: [{ path: 'acme/big' }, { path: 'acme/other' }],
      tokens: [
        { value: EXPIRED, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'], expired: true },
        { value: NO_SCOPE, platform: 'github', user: 'alice', scopes: [] },
        { value: GL_READ_ONLY, platform: 'gitlab', user: 'carol', scopes: ['read_repository'] },
      ],
    },
  });
  sampler = new ArgvSampler(TOKENS, 5);
}, 60_000);

afterAll(async () => {
  await sampler?.stop();
  process.stdout.write(`[reliability] bad-input ${JSON.stringify(figures)}\n`);
  await world?.close();
});

/** Config text; the forge's URLs are filled in when the file is written (cases are listed before the forge starts). */
function configText(pairs: string, extra = ''): string {
  return `github:\n  url: {{github}}\n  apiUrl: {{githubApi}}\ngitlab:\n  url: {{gitlab}}\n${extra}pairs:\n${pairs}`;
}

/** Writes a config file, returns its path. */
async function config(name: string, text: string): Promise<string> {
  const path = join(world.root, 'configs', `${name}.yaml`);
  await mkdir(join(world.root, 'configs'), { recursive: true });
  const filled = text
    .replaceAll('{{githubApi}}', world.forge.urls.github.api)
    .replaceAll('{{github}}', world.forge.urls.github.web)
    .replaceAll('{{gitlab}}', world.forge.urls.gitlab.web);
  await writeFile(path, filled);
  return path;
}

async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const r = await runCli(args, { ...world.env, ...env }, world.root);
  figures.cases++;
  figures.byCommand[args[0]!] = (figures.byCommand[args[0]!] ?? 0) + 1;
  leaks.text(`${args.join(' ').slice(0, 80)} stdout`, r.stdout);
  leaks.text(`${args.join(' ').slice(0, 80)} stderr`, r.stderr);
  if (SHOW) process.stdout.write(`\n=== ${args.join(' ')}\nexit ${r.code}\n${r.stdout}\n${r.stderr}\n`);
  return r;
}

/** Requests that change something: non-GET API calls and pushes. */
function writesSince(seq: number): string[] {
  return world.forge.state.requestLog
    .filter((e) => e.seq > seq)
    .filter((e) => (e.kind === 'api' && e.method !== 'GET' && e.method !== 'HEAD') || e.route.includes('receive-pack'))
    .map((e) => `${e.method} ${e.path}`);
}

const mark = (): number => world.forge.state.nextSeq();

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

interface ConfigCase {
  name: string;
  file: string;
  /** Each must match the output (stdout + stderr). */
  expect: RegExp[];
}

describe('bad configs: exit 2, a message naming file, line and key, and nothing touched', () => {
  const cases = (): ConfigCase[] => [
    {
      name: 'malformed YAML',
      file: configText('  - github: acme/good\n    gitlab: [acme/good\n'),
      expect: [/malformed-yaml\.yaml:\d+/, /YAML/i],
    },
    {
      name: 'tab-indented YAML',
      file: configText('\t- github: acme/good\n'),
      expect: [/tab-indented-yaml\.yaml:\d+/],
    },
    {
      name: 'wrong type: pairs is a number',
      file: configText(' 5\n'),
      expect: [/wrong-type-pairs-is-a-number\.yaml:\d+/, /pairs/],
    },
    {
      name: 'wrong type: repo is a number',
      file: configText('  - github: 42\n    gitlab: acme/good\n'),
      expect: [/wrong-type-repo-is-a-number\.yaml:\d+/, /pairs\[0\]\.github/],
    },
    {
      name: 'wrong type: policy value',
      file: configText('  - github: acme/good\n    gitlab: acme/good\n    deletions: sometimes\n'),
      expect: [/wrong-type-policy-value\.yaml:\d+/, /deletions/],
    },
    {
      name: 'unknown key',
      file: configText('  - github: acme/good\n    gitlab: acme/good\n    gitlba: acme/good\n'),
      expect: [/unknown-key\.yaml:\d+/, /gitlba/],
    },
    {
      name: 'unknown top-level key',
      file: configText('  - github: acme/good\n    gitlab: acme/good\n', 'pairz: []\n'),
      expect: [/unknown-top-level-key\.yaml:\d+/, /pairz/],
    },
    {
      name: 'duplicate pairs',
      file: configText('  - github: acme/good\n    gitlab: acme/good\n  - github: acme/good\n    gitlab: acme/good\n'),
      expect: [/duplicate-pairs\.yaml:\d+/, /pairs\[1\]/, /duplicate|twice|already/i],
    },
    {
      name: 'duplicate pair names',
      file: configText(
        '  - name: x\n    github: acme/good\n    gitlab: acme/good\n  - name: x\n    github: acme/odd\n    gitlab: acme/odd\n',
      ),
      expect: [/duplicate-pair-names\.yaml:\d+/, /"?x"?/],
    },
    {
      name: 'invalid repo name',
      file: configText('  - github: acme/has space\n    gitlab: acme/good\n'),
      expect: [/invalid-repo-name\.yaml:\d+/, /pairs\[0\]\.github/],
    },
    {
      name: 'path-traversing GitHub repo',
      file: configText('  - github: ../../etc\n    gitlab: acme/good\n'),
      expect: [/path-traversing-github-repo\.yaml:\d+/, /pairs\[0\]\.github/, /"\.\." parts|\.\./],
    },
    {
      name: 'path-traversing GitLab project',
      file: configText('  - github: acme/good\n    gitlab: acme/../../../tmp/x\n'),
      expect: [/path-traversing-gitlab-project\.yaml:\d+/, /pairs\[0\]\.gitlab/],
    },
    {
      name: 'absolute path as repo',
      file: configText('  - github: /etc/passwd\n    gitlab: acme/good\n'),
      expect: [/absolute-path-as-repo\.yaml:\d+/, /pairs\[0\]\.github/],
    },
    {
      name: 'URL with a token in it',
      file: `github:\n  url: https://x-access-token:${CANARY.github}@github.example.com\npairs:\n  - github: acme/good\n    gitlab: acme/good\n`,
      expect: [/url-with-a-token-in-it\.yaml:\d+/, /github\.url/, /looks like an access token/],
    },
    { name: 'empty file', file: '', expect: [/empty-file\.yaml/, /empty/] },
  ];

  it.each(cases().map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const slug = c.name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/-$/, '');
    const path = await config(slug, c.file);
    const cache = join(world.root, 'cache-config-cases');
    for (const command of ['sync', 'bootstrap'] as const) {
      const seq = mark();
      const r = await cli([command, '--config', path, ...(command === 'sync' ? ['--cache', cache] : [])]);
      expect(r.code).toBe(2);
      for (const re of c.expect) expect(r.stdout + r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/); // no stack trace
      // Nothing was asked of the forges, nothing created on disk.
      expect(world.forge.state.requestLog.filter((e) => e.seq > seq)).toEqual([]);
    }
    expect(await exists(cache)).toBe(false);
  });

  it('a config file that does not exist, and one that is a directory', async () => {
    const missing = await cli(['sync', '--config', join(world.root, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(join(world.root, 'nope.yaml'));
    const dir = await cli(['sync', '--config', world.root]);
    expect(dir.code).toBe(2);
    expect(dir.stderr).toMatch(/is a directory/);
  });
});

describe('bad tokens', () => {
  it('missing and empty tokens: exit 2 naming the variable, before any request', async () => {
    for (const [command, args] of [
      ['sync', ['--config', world.configPath, '--cache', join(world.root, 'cache-tokens')]],
      ['bootstrap', ['--config', world.configPath]],
      ['backup', ['--owner', 'acme', '--storage', join(world.root, 'storage-tokens'), '--progress', 'off']],
    ] as const) {
      for (const value of [undefined, '', '   ']) {
        const seq = mark();
        const r = await cli([command, ...args], { GITHUB_TOKEN: value });
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(/GITHUB_TOKEN is not set/);
        expect(world.forge.state.requestLog.filter((e) => e.seq > seq)).toEqual([]);
      }
    }
    expect(await exists(join(world.root, 'cache-tokens'))).toBe(false);
    expect(await exists(join(world.root, 'storage-tokens'))).toBe(false);
  });

  it('an expired GitHub token (401): sync fails the pairs naming the repo; bootstrap exits 2 before any change', async () => {
    const seq = mark();
    const sync = await cli(['sync', '--config', world.configPath, '--cache', join(world.root, 'cache-401'), '--json'], {
      GITHUB_TOKEN: EXPIRED,
    });
    expect(sync.code).toBe(1);
    const json = JSON.parse(sync.stdout) as { pairs: { pair: string; status: string; error: string }[] };
    for (const p of json.pairs) {
      expect(p.status).toBe('failed');
      expect(p.error).toMatch(new RegExp(`acme/${p.pair}`));
      expect(p.error).toMatch(/401|Authentication failed|could not read Username/i);
    }
    const boot = await cli(['bootstrap', '--config', world.configPath], { GITHUB_TOKEN: EXPIRED });
    expect(boot.code).toBe(2);
    expect(boot.stderr).toMatch(/GITHUB_TOKEN/);
    expect(boot.stderr).toMatch(/nothing was changed/);
    const backup = await cli(
      [
        'backup',
        '--owner',
        'acme',
        '--backup-only',
        '--storage',
        join(world.root, 'storage-401'),
        '--progress',
        'off',
        '--api-retries',
        '0',
      ],
      {
        GITHUB_TOKEN: EXPIRED,
      },
    );
    expect(backup.code).toBe(1);
    expect(backup.stderr).toMatch(/INCOMPLETE/);
    expect(backup.stderr).toMatch(/401|expired|Bad credentials/i);
    expect(writesSince(seq)).toEqual([]);
  });

  it('under-scoped tokens (403): the push is refused and named; bootstrap lists the missing scopes', async () => {
    await writeCommit(world.githubDir('good'), 'refs/heads/main');
    const before = await branchesAndTags(world.gitlabDir('good'));
    const sync = await cli(
      ['sync', '--config', world.configPath, '--cache', join(world.root, 'cache-403'), '--pair', 'good', '--json'],
      { GITLAB_TOKEN: GL_READ_ONLY },
    );
    expect(sync.code).toBe(1);
    const text = sync.stdout;
    expect(text).toMatch(/acme\/good/);
    expect(text).toMatch(/403|not allowed|denied/i);
    expect(await branchesAndTags(world.gitlabDir('good'))).toEqual(before);
    const boot = await cli(['bootstrap', '--config', world.configPath], {
      GITHUB_TOKEN: NO_SCOPE,
      GITLAB_TOKEN: GL_READ_ONLY,
    });
    expect(boot.code).toBe(2);
    expect(boot.stderr).toMatch(/GITHUB_TOKEN .*lacks/);
    expect(boot.stderr).toMatch(/GITLAB_TOKEN .*(lacks|refused)/);
  });

  it('a token the server does not know (401 on GitLab): the failing side is named', async () => {
    const r = await cli(
      ['sync', '--config', world.configPath, '--cache', join(world.root, 'cache-unknown'), '--pair', 'good'],
      {
        GITLAB_TOKEN: UNKNOWN,
      },
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/good: FAILED/);
    expect(r.stdout).toMatch(new RegExp(`${world.forge.urls.gitlab.web}/acme/good\\.git`));
  });
});

describe('repos and refs', () => {
  it('a repo that does not exist (404) fails its pair alone, naming it; the others sync', async () => {
    const path = await config(
      'missing-repo',
      configText('  - github: acme/good\n    gitlab: acme/good\n  - github: acme/nope\n    gitlab: acme/good-copy\n'),
    );
    const seq = mark();
    const r = await cli(['sync', '--config', path, '--cache', join(world.root, 'cache-404'), '--json']);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as { pairs: { pair: string; status: string; error?: string }[] };
    const nope = json.pairs.find((p) => p.pair !== 'good')!;
    expect(nope.status).toBe('failed');
    expect(nope.error).toMatch(/acme\/nope/);
    expect(nope.error).toMatch(/not found|404/i);
    expect(json.pairs.find((p) => p.pair === 'good')?.status).not.toBe('failed');
    expect(writesSince(seq).filter((w) => w.includes('good-copy') || w.includes('nope'))).toEqual([]);
  });

  it('backup of an owner that does not exist: exit 1, the owner named, nothing deleted', async () => {
    const r = await cli([
      'backup',
      '--owner',
      'no-such-owner',
      '--backup-only',
      '--storage',
      join(world.root, 'storage-404'),
      '--progress',
      'off',
      '--api-retries',
      '0',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no-such-owner/);
  });

  it('copies branches and tags with unusual names exactly, never runs them as commands or options', async () => {
    const gh = world.githubDir('odd');
    const main = await gitIn(gh, ['rev-parse', 'refs/heads/main']);
    for (const ref of ODD_REFS) await gitIn(gh, ['update-ref', ref, main]);
    const r = await cli([
      'sync',
      '--config',
      world.configPath,
      '--cache',
      join(world.root, 'cache-odd'),
      '--pair',
      'odd',
    ]);
    expect(r.code).toBe(0);
    const gl = await refsOf(world.gitlabDir('odd'));
    for (const ref of ODD_REFS) expect(`${ref} ${gl.get(ref)}`).toBe(`${ref} ${main}`);
    expect(await exists(join(world.root, 'PWNED'))).toBe(false);
    // And backed up too, with a checkout, the same way.
    const b = await cli([
      'backup',
      '--owner',
      'acme',
      '--include',
      'acme/odd',
      '--backup-only',
      '--checkout',
      '--storage',
      join(world.root, 'storage-odd'),
      '--progress',
      'off',
    ]);
    expect(b.code).toBe(0);
    expect(await exists(join(world.root, 'PWNED'))).toBe(false);
  });

  it('a ref name git itself would refuse, planted on the server, is left alone with a note; the rest syncs', async () => {
    const gh = world.githubDir('odd');
    const main = await gitIn(gh, ['rev-parse', 'refs/heads/main']);
    // Written as a file: git's own commands would refuse to create it.
    await writeFile(join(gh, 'refs', 'heads', 'bad..name'), `${main}\n`);
    const tip = await writeCommit(gh, 'refs/heads/main');
    const r = await cli([
      'sync',
      '--config',
      world.configPath,
      '--cache',
      join(world.root, 'cache-odd'),
      '--pair',
      'odd',
    ]);
    await rm(join(gh, 'refs', 'heads', 'bad..name'), { force: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/odd: refs\/heads\/bad\.\.name: not a valid git ref name on github/);
    expect((await refsOf(world.gitlabDir('odd'))).has('refs/heads/bad..name')).toBe(false);
    expect((await refsOf(world.gitlabDir('odd'))).get('refs/heads/main')).toBe(tip);
  });
});

describe('bad local state', () => {
  it('a cache directory that is not a git repository: the pair fails naming the path, the directory is left as it was', async () => {
    const cache = join(world.root, 'cache-not-git');
    const first = await cli(['sync', '--config', world.configPath, '--cache', cache, '--pair', 'good', '--json']);
    expect(first.code).toBe(0);
    const pairDir = (await readdir(join(cache, 'pairs'))).find((d) => d.endsWith('.git'))!;
    const full = join(cache, 'pairs', pairDir);
    await rm(full, { recursive: true });
    await mkdir(full);
    await writeFile(join(full, 'notes.txt'), 'mine\n');
    const r = await cli(['sync', '--config', world.configPath, '--cache', cache, '--pair', 'good', '--json']);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as { pairs: { error: string }[] };
    expect(json.pairs[0]!.error).toContain(full);
    expect(json.pairs[0]!.error).toMatch(/not a refbridge cache/);
    expect(await readdir(full)).toEqual(['notes.txt']);
  });

  it('a cache path that is a file, and backup storage that is a file', async () => {
    const file = join(world.root, 'a-file');
    await writeFile(file, 'x\n');
    const sync = await cli(['sync', '--config', world.configPath, '--cache', file, '--pair', 'good']);
    expect(sync.code).toBe(1);
    expect(sync.stdout + sync.stderr).toContain(file);
    const backup = await cli(['backup', '--owner', 'acme', '--backup-only', '--storage', file, '--progress', 'off']);
    expect(backup.code).not.toBe(0);
    expect(backup.stdout + backup.stderr).toContain(file);
  });

  /** A tiny or read-only file system: tmpfs as root; a chmod-ed dir otherwise (root ignores modes). */
  async function smallDisk(
    name: string,
    options: { sizeKb?: number; readOnly?: boolean },
  ): Promise<string | undefined> {
    const dir = join(world.root, name);
    await mkdir(dir, { recursive: true });
    const isRoot = process.getuid?.() === 0;
    if (isRoot) {
      const opts = [`size=${options.sizeKb ?? 1024}k`, ...(options.readOnly ? ['ro'] : [])].join(',');
      const r = await execa('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { reject: false });
      if (r.exitCode === 0) {
        figures.mounted.push(dir);
        return dir;
      }
      process.stdout.write(
        `[reliability] bad-input: cannot mount a tmpfs (${r.stderr.trim()}); ${name} case skipped\n`,
      );
      return undefined;
    }
    if (options.readOnly) {
      await chmod(dir, 0o555);
      return dir;
    }
    process.stdout.write(`[reliability] bad-input: not root, no tiny file system for ${name}; case skipped\n`);
    return undefined;
  }

  afterAll(async () => {
    for (const dir of figures.mounted) await execa('umount', [dir], { reject: false });
  });

  it('a full disk: the pair fails with the reason, the forges are untouched, and the next run on a roomy disk converges', async () => {
    // 3 MB of incompressible content in a 1 MB file system.
    const big = world.githubDir('big');
    const blob = await gitIn(big, ['hash-object', '-w', '--stdin'], {
      input: randomBytes(1536 * 1024).toString('base64'),
    });
    const tree = await gitIn(big, ['mktree'], { input: `100644 blob ${blob}\tbig.bin\n` });
    const parent = await gitIn(big, ['rev-parse', 'refs/heads/main']);
    const commit = await gitIn(big, ['commit-tree', tree, '-p', parent, '-m', 'big']);
    await gitIn(big, ['update-ref', 'refs/heads/main', commit]);
    const dir = await smallDisk('full-disk', { sizeKb: 1024 });
    if (!dir) return;
    const path = await config(
      'big',
      configText('  - github: acme/big\n    gitlab: acme/big\n  - github: acme/other\n    gitlab: acme/other\n'),
    );
    const seq = mark();
    const gitlabBefore = await branchesAndTags(world.gitlabDir('big'));
    const r = await cli(['sync', '--config', path, '--cache', dir, '--json']);
    expect(r.code).toBe(1);
    const json = JSON.parse(r.stdout) as { pairs: { pair: string; status: string; error?: string }[] };
    const failed = json.pairs.filter((p) => p.status === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    for (const p of failed) expect(p.error).toMatch(/No space left on device|ENOSPC/i);
    expect(json.pairs.find((p) => p.pair === 'big')?.status).toBe('failed');
    expect(await branchesAndTags(world.gitlabDir('big'))).toEqual(gitlabBefore);
    expect(writesSince(seq).filter((w) => w.includes('/acme/big'))).toEqual([]);
    // Backup storage on the full disk: the repo fails and says why.
    const b = await cli([
      'backup',
      '--owner',
      'acme',
      '--include',
      'acme/big',
      '--backup-only',
      '--storage',
      join(dir, 'storage'),
      '--progress',
      'off',
      '--json',
    ]);
    expect(b.code).toBe(1);
    expect(b.stdout + b.stderr).toMatch(/No space left on device|ENOSPC/i);
    const again = await cli(['sync', '--config', path, '--cache', join(world.root, 'cache-roomy'), '--json']);
    expect(again.code).toBe(0);
    expect(await branchesAndTags(world.gitlabDir('big'))).toEqual(await branchesAndTags(big));
  });

  it('a read-only cache and storage: a clear error naming the path, nothing pushed', async () => {
    const dir = await smallDisk('read-only', { readOnly: true });
    if (!dir) return;
    const seq = mark();
    const r = await cli(['sync', '--config', world.configPath, '--cache', dir, '--pair', 'good']);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(dir);
    expect(r.stdout + r.stderr).toMatch(/read-only|permission denied|EROFS|EACCES/i);
    const b = await cli(['backup', '--owner', 'acme', '--backup-only', '--storage', dir, '--progress', 'off']);
    expect(b.code).not.toBe(0);
    expect(b.stdout + b.stderr).toContain(dir);
    expect(writesSince(seq)).toEqual([]);
  });
});

describe('secrets through every bad input', () => {
  it('no token in any output, file or process argv', async () => {
    for (const dir of figures.mounted) await execa('umount', [dir], { reject: false });
    // configs/ holds the corpus itself (one case puts a token in a URL on purpose).
    await leaks.tree(world.root, (p) => p === join(world.root, 'configs'));
    const report = await sampler!.stop();
    sampler = undefined;
    leaks.sampler(report, 'bad-input');
    expect(leaks.describe()).toBeUndefined();
  });
});
