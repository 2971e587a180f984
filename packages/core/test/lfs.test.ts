import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ExitCode, UsageError } from '../src/errors.js';
import { GitRunner, type GitResult, type GitRunOptions } from '../src/git-runner.js';
import { findLfsTips, lfsAttributeLines, LfsNotMirroredError } from '../src/lfs-attributes.js';
import type { Logger } from '../src/logger.js';
import { mirrorRef, type MirrorRefOptions, type MirrorResult } from '../src/mirror-ref.js';
import { SecretMasker } from '../src/secret-masker.js';
import { syncPair, type SyncPairOptions } from '../src/sync-engine.js';
import type { SyncPolicy } from '../src/sync-planner.js';
import { git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';

// Git LFS is detected from the new tip's root .gitattributes, written here by hand (as `git lfs
// track` writes it) together with a pointer file, so the tests need no git-lfs binary. Commits
// are made with fast-import, which runs no clean filter even where git-lfs is installed.

const ZERO = '0'.repeat(40);
const TRACK = '*.bin filter=lfs diff=lfs merge=lfs -text\n';
const POINTER =
  'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 104857600\n';

type Files = Record<string, string | Buffer | null>;

/** One commit on `ref` of a (bare) repo: `files` on top of `parent`'s tree (null deletes). */
async function commit(repo: string, ref: string, parent: string | undefined, files: Files, message = 'change') {
  const parts: Buffer[] = [];
  const data = (content: string | Buffer) => {
    const b = typeof content === 'string' ? Buffer.from(content) : content;
    parts.push(Buffer.from(`data ${b.length}\n`), b, Buffer.from('\n'));
  };
  parts.push(Buffer.from(`commit ${ref}\ncommitter Test <test@example.com> 1700000000 +0000\n`));
  data(message);
  if (parent) parts.push(Buffer.from(`from ${parent}\n`));
  for (const [path, content] of Object.entries(files)) {
    if (content === null) parts.push(Buffer.from(`D ${path}\n`));
    else {
      parts.push(Buffer.from(`M 644 inline ${path}\n`));
      data(content);
    }
  }
  await execa('git', ['fast-import', '--quiet', '--force'], { cwd: repo, input: Buffer.concat(parts) });
  return git(repo, ['rev-parse', ref]);
}

/** Records every git command line, so tests can tell which ran. */
class RecordingRunner extends GitRunner {
  readonly commands: string[][] = [];
  constructor() {
    super({ masker: new SecretMasker() });
  }
  override async run(args: readonly string[], options?: GitRunOptions): Promise<GitResult> {
    this.commands.push([...args]);
    return super.run(args, options);
  }
  lfsChecks(): number {
    return this.commands.filter((c) => c[0] === 'cat-file' && c.some((a) => a.startsWith('--batch='))).length;
  }
}

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const add = (level: string) => (m: string) => void lines.push(`${level}: ${m}`);
  return { lines, debug: add('debug'), info: add('info'), warn: add('warn'), error: add('error') };
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let n = 0;
beforeAll(async () => {
  tmp = await tempDir('refbridge-lfs-');
});
afterAll(async () => tmp.cleanup());

async function newDir(): Promise<string> {
  const dir = join(tmp.path, `case-${++n}`);
  await mkdir(dir);
  return dir;
}

describe('lfsAttributeLines', () => {
  it('finds the lines `git lfs track` writes, with their line numbers and patterns', () => {
    const text = `# big files\n*.png binary\n${TRACK}"with space.psd" filter=lfs -text\r\n`;
    expect(lfsAttributeLines(text)).toEqual([
      { line: 3, pattern: '*.bin', text: TRACK.trim() },
      { line: 4, pattern: '"with space.psd"', text: '"with space.psd" filter=lfs -text' },
    ]);
  });

  it('follows macros and ignores comments, unset filters and other filters', () => {
    const text = [
      '# *.bin filter=lfs',
      '*.iso -filter',
      '*.dat filter=lfsx',
      '*.txt filter=crlf text',
      '[attr]big filter=lfs diff=lfs merge=lfs -text',
      'media/** big',
      '*.zip !big',
    ].join('\n');
    expect(lfsAttributeLines(text)).toEqual([{ line: 6, pattern: 'media/**', text: 'media/** big' }]);
    expect(lfsAttributeLines('')).toEqual([]);
  });
});

describe('findLfsTips', () => {
  it('answers for many tips with one cat-file, whatever the bytes of each .gitattributes', async () => {
    const repo = join(await newDir(), 'r.git');
    await initRepo(repo, { bare: true });
    const plain = await commit(repo, 'refs/heads/plain', undefined, { 'README.md': 'hi\n' });
    const lfs = await commit(repo, 'refs/heads/lfs', plain, { '.gitattributes': TRACK, 'a.bin': POINTER });
    // Latin-1 bytes are not UTF-8: the output is decoded text, so its length differs from the sizes.
    const latin1 = await commit(repo, 'refs/heads/latin1', plain, {
      '.gitattributes': Buffer.concat([
        Buffer.from('# caf\xe9 \xff\xfe\n', 'latin1'),
        Buffer.from('*.psd filter=lfs\n'),
      ]),
    });
    const empty = await commit(repo, 'refs/heads/empty', plain, { '.gitattributes': '' });
    const other = await commit(repo, 'refs/heads/other', plain, { '.gitattributes': '*.sh text eol=lf\n' });
    const dirAttrs = await commit(repo, 'refs/heads/dir', plain, { '.gitattributes/x': TRACK });
    await git(repo, ['tag', '-a', '-m', 'v1', 'v1', lfs]);
    const tagObject = await git(repo, ['rev-parse', 'refs/tags/v1']);

    const runner = new RecordingRunner();
    const found = await findLfsTips(runner, [plain, latin1, empty, lfs, other, dirAttrs, tagObject, lfs], {
      cwd: repo,
      env: { GIT_DIR: repo },
    });
    expect(runner.commands).toHaveLength(1);
    expect([...found.keys()].sort()).toEqual([latin1, lfs, tagObject].sort());
    expect(found.get(latin1)).toEqual([{ line: 2, pattern: '*.psd', text: '*.psd filter=lfs' }]);
    expect(found.get(tagObject)?.[0]?.pattern).toBe('*.bin');
    expect(await findLfsTips(runner, [], { cwd: repo })).toEqual(new Map());
    expect(runner.commands).toHaveLength(1);
  });
});

describe('mirrorRef and Git LFS', () => {
  interface Repos {
    dir: string;
    source: string;
    target: string;
    sourceUrl: string;
    targetUrl: string;
    checkout: string;
    marker: string;
    base: string;
    lfsTip: string;
  }

  /** Source main: base (no LFS) -> lfsTip (tracks *.bin, adds a pointer); target main at base. */
  async function repos(files: Files = { '.gitattributes': TRACK, 'assets/big.bin': POINTER }): Promise<Repos> {
    const dir = await newDir();
    const source = join(dir, 'source.git');
    const target = join(dir, 'target.git');
    await initRepo(source, { bare: true });
    await initRepo(target, { bare: true });
    await git(source, ['config', 'uploadpack.allowReachableSHA1InWant', 'true']);
    const base = await commit(source, 'refs/heads/main', undefined, { 'README.md': '# app\n' });
    const lfsTip = await commit(source, 'refs/heads/main', base, files, 'track *.bin with LFS');
    const targetUrl = pathToFileURL(target).href;
    await git(source, ['push', '-q', targetUrl, `${base}:refs/heads/main`]);
    // Anything that reaches the target's receive-pack leaves a trace.
    const marker = join(dir, 'pushed');
    await writeFile(join(target, 'hooks', 'pre-receive'), `#!/bin/sh\ncat >> "${marker}"\n`);
    await chmod(join(target, 'hooks', 'pre-receive'), 0o755);
    const checkout = join(dir, 'checkout');
    // As actions/checkout with `lfs: false`: depth 1, no smudging of the pointer files.
    await git(dir, ['clone', '-q', '--no-tags', '--depth=1', pathToFileURL(source).href, checkout], {
      GIT_LFS_SKIP_SMUDGE: '1',
    });
    return { dir, source, target, sourceUrl: pathToFileURL(source).href, targetUrl, checkout, marker, base, lfsTip };
  }

  function mirror(
    r: Repos,
    logger: Logger,
    options: Partial<MirrorRefOptions> & { after: string },
    runner: GitRunner = new GitRunner({ masker: new SecretMasker() }),
  ): Promise<MirrorResult> {
    return mirrorRef({
      git: runner,
      logger,
      workdir: r.checkout,
      source: { url: r.sourceUrl },
      target: { url: r.targetUrl },
      ref: 'refs/heads/main',
      deletions: 'propagate',
      force: false,
      ...options,
    });
  }

  it('by default fails loudly, naming the ref and the file, and pushes nothing', async () => {
    const r = await repos();
    const log = recordingLogger();
    const error = await mirror(r, log, { before: r.base, after: r.lfsTip }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(LfsNotMirroredError);
    const e = error as LfsNotMirroredError;
    expect(e.exitCode).toBe(ExitCode.failure);
    expect(e.ref).toBe('refs/heads/main');
    expect(e.message).toContain(`refs/heads/main of ${r.sourceUrl} stores files with Git LFS`);
    expect(e.message).toContain('.gitattributes line 1 ("*.bin filter=lfs diff=lfs merge=lfs -text")');
    expect(e.message).toContain('refbridge copies git objects only, not LFS objects');
    expect(e.message).toContain('refs/heads/main was not pushed');
    expect(e.hint).toContain(`git lfs fetch --all ${r.sourceUrl} && git lfs push --all ${r.targetUrl}`);
    expect(e.hint).toContain('lfs: pointers');
    expect(e.describe()).toContain('hint: copy the LFS objects separately');
    expect(log.lines).toContain('error: refs/heads/main: uses Git LFS; not mirrored (lfs: fail)');
    expect(await git(r.target, ['rev-parse', 'refs/heads/main'])).toBe(r.base);
    expect(existsSync(r.marker)).toBe(false);
  });

  it('with lfs: pointers pushes the git data, pointer included, and warns naming the ref', async () => {
    const r = await repos();
    const log = recordingLogger();
    const result = await mirror(r, log, { before: r.base, after: r.lfsTip, lfs: 'pointers' });
    expect(result).toMatchObject({ result: 'pushed', targetBefore: r.base, targetAfter: r.lfsTip });
    expect(result.lfsPointers).toEqual([{ line: 1, pattern: '*.bin', text: TRACK.trim() }]);
    expect(await git(r.target, ['rev-parse', 'refs/heads/main'])).toBe(r.lfsTip);
    expect(await git(r.target, ['cat-file', '-p', `${r.lfsTip}:assets/big.bin`])).toBe(POINTER.trim());
    const warnings = log.lines.filter((l) => l.startsWith('warn: '));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('refs/heads/main: stores files with Git LFS (.gitattributes line 1');
    expect(warnings[0]).toContain('lfs: pointers');
    expect(warnings[0]).toContain(`git lfs fetch --all ${r.sourceUrl} && git lfs push --all ${r.targetUrl}`);
  });

  it('refuses a new branch and an annotated tag of an LFS tip too', async () => {
    const r = await repos();
    await git(r.source, ['tag', '-a', '-m', 'v1', 'v1', r.lfsTip]);
    const tagObject = await git(r.source, ['rev-parse', 'refs/tags/v1']);
    for (const [ref, after] of [
      ['refs/heads/feature', r.lfsTip],
      ['refs/tags/v1', tagObject],
    ] as const) {
      const error = await mirror(r, recordingLogger(), { ref, before: ZERO, after }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LfsNotMirroredError);
      expect((error as Error).message).toContain(`${ref} was not pushed`);
    }
    expect(await git(r.target, ['for-each-ref', '--format=%(refname)'])).toBe('refs/heads/main');
    expect(existsSync(r.marker)).toBe(false);
  });

  it('costs nothing, and fails nothing, for a ref that pushes nothing', async () => {
    const r = await repos();
    await git(r.source, ['push', '-q', r.targetUrl, `${r.lfsTip}:refs/heads/main`]);
    const runner = new RecordingRunner();
    const result = await mirror(r, recordingLogger(), { before: r.base, after: r.lfsTip }, runner);
    expect(result.result).toBe('up-to-date');
    expect(runner.lfsChecks()).toBe(0);
  });

  it('checks once per push, with one cat-file', async () => {
    const r = await repos();
    const runner = new RecordingRunner();
    await mirror(r, recordingLogger(), { before: r.base, after: r.lfsTip, lfs: 'pointers' }, runner);
    expect(runner.lfsChecks()).toBe(1);
  });

  it('leaves a repository without LFS alone, whatever else its .gitattributes says', async () => {
    const r = await repos({ '.gitattributes': '# *.bin filter=lfs\n*.png binary\n*.bin -filter\n', 'a.bin': 'x' });
    const log = recordingLogger();
    const result = await mirror(r, log, { before: r.base, after: r.lfsTip });
    expect(result).toMatchObject({ result: 'pushed', targetAfter: r.lfsTip });
    expect(result.lfsPointers).toBeUndefined();
    expect(log.lines.filter((l) => /^(warn|error):/.test(l))).toEqual([]);
  });

  it('reports the same in a dry run, without pushing', async () => {
    const r = await repos();
    await expect(mirror(r, recordingLogger(), { before: r.base, after: r.lfsTip, dryRun: true })).rejects.toThrow(
      LfsNotMirroredError,
    );
    const log = recordingLogger();
    const plan = await mirror(r, log, { before: r.base, after: r.lfsTip, dryRun: true, lfs: 'pointers' });
    expect(plan).toMatchObject({ result: 'pushed', dryRun: true });
    expect(plan.lfsPointers).toHaveLength(1);
    expect(log.lines.filter((l) => l.startsWith('warn: '))).toHaveLength(1);
    expect(await git(r.target, ['rev-parse', 'refs/heads/main'])).toBe(r.base);
    expect(existsSync(r.marker)).toBe(false);
  });

  it('rejects an unknown lfs setting', async () => {
    const r = await repos();
    const bad = mirror(r, recordingLogger(), { after: r.lfsTip, lfs: 'skip' as unknown as 'fail' });
    await expect(bad).rejects.toThrow(UsageError);
    await expect(bad).rejects.toThrow('"lfs" must be fail or pointers, got "skip"');
  });
});

describe('syncPair and Git LFS', () => {
  const policy: SyncPolicy = {
    divergence: 'halt-ref',
    deletions: 'propagate',
    rewrites: 'deny',
    refs: { branches: true, tags: true, include: [], exclude: [] },
  };

  async function fixture() {
    const dir = await newDir();
    const gh = join(dir, 'gh.git');
    const gl = join(dir, 'gl.git');
    await initRepo(gh, { bare: true });
    await initRepo(gl, { bare: true });
    const runner = new RecordingRunner();
    const log = recordingLogger();
    const run = (extra: Partial<SyncPairOptions> = {}) =>
      syncPair({
        git: runner,
        logger: log,
        cacheDir: join(dir, 'cache'),
        name: 'p',
        github: { url: pathToFileURL(gh).href, credentials: [] },
        gitlab: { url: pathToFileURL(gl).href, credentials: [] },
        policy,
        ...extra,
      });
    const refs = async (repo: string) =>
      (await git(repo, ['for-each-ref', '--format=%(refname) %(objectname)'])).split('\n').filter(Boolean).sort();
    return { dir, gh, gl, runner, log, run, refs };
  }

  it('holds back only the refs whose tip uses LFS, fails loudly, then pushes them with lfs: pointers', async () => {
    const f = await fixture();
    const main = await commit(f.gh, 'refs/heads/main', undefined, { 'README.md': '# app\n' });
    const media = await commit(f.gh, 'refs/heads/media', main, { '.gitattributes': TRACK, 'big.bin': POINTER });
    await git(f.gh, ['tag', 'v1', main]);

    const first = await f.run();
    expect(first.status).toBe('failed');
    const byRef = new Map(first.outcomes.map((o) => [o.ref, o]));
    expect(byRef.get('refs/heads/main')?.status).toBe('done');
    expect(byRef.get('refs/tags/v1')?.status).toBe('done');
    const held = byRef.get('refs/heads/media')!;
    expect(held.status).toBe('failed');
    expect(held.detail).toContain('not pushed');
    expect(held.detail).toContain(
      `github's ${media.slice(0, 12)} stores files with Git LFS (.gitattributes line 1 ("*.bin filter=lfs diff=lfs merge=lfs -text"))`,
    );
    expect(held.detail).toContain('refbridge copies git objects only, not LFS objects');
    expect(held.repair).toContain(
      `git lfs fetch --all ${pathToFileURL(f.gh).href} && git lfs push --all ${pathToFileURL(f.gl).href}`,
    );
    expect(held.repair).toContain('`lfs: pointers` on pair p');
    expect(f.log.lines.some((l) => l.startsWith('error: p: refs/heads/media: '))).toBe(true);
    expect(await f.refs(f.gl)).toEqual([`refs/heads/main ${main}`, `refs/tags/v1 ${main}`]);

    // Every run says so again, and never pushes it.
    const again = await f.run();
    expect(again.status).toBe('failed');
    expect(again.outcomes.find((o) => o.ref === 'refs/heads/media')?.status).toBe('failed');
    expect(await f.refs(f.gl)).toEqual([`refs/heads/main ${main}`, `refs/tags/v1 ${main}`]);

    const pointers = await f.run({ lfs: 'pointers' });
    expect(pointers.status).toBe('synced');
    expect(pointers.outcomes.find((o) => o.ref === 'refs/heads/media')?.status).toBe('done');
    expect(await f.refs(f.gl)).toEqual(await f.refs(f.gh));
    const warnings = f.log.lines.filter((l) => l.startsWith('warn: '));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('p: refs/heads/media: ');
    expect(warnings[0]).toContain('lfs: pointers');

    // An unchanged pair costs no LFS check at all.
    const before = f.runner.lfsChecks();
    const idle = await f.run();
    expect(idle.status).toBe('in-sync');
    expect(f.runner.lfsChecks()).toBe(before);
  });

  it('checks every tip of a run with one cat-file, and reports LFS in a dry run too', async () => {
    const f = await fixture();
    const main = await commit(f.gh, 'refs/heads/main', undefined, { 'README.md': '# app\n' });
    const a = await commit(f.gh, 'refs/heads/a', main, { '.gitattributes': TRACK });
    await commit(f.gl, 'refs/heads/b', undefined, { 'x.txt': 'x\n' });
    await git(f.gh, ['tag', '-a', '-m', 'v2', 'v2', a]);

    const plan = await f.run({ dryRun: true });
    expect(f.runner.lfsChecks()).toBe(1);
    expect(plan.status).toBe('failed');
    expect(
      plan.outcomes
        .filter((o) => o.status === 'failed')
        .map((o) => o.ref)
        .sort(),
    ).toEqual(['refs/heads/a', 'refs/tags/v2']);
    expect(await f.refs(f.gl)).toHaveLength(1);

    const real = await f.run();
    expect(f.runner.lfsChecks()).toBe(2);
    expect(real.outcomes.filter((o) => o.status === 'done').map((o) => o.ref)).toEqual([
      'refs/heads/b',
      'refs/heads/main',
    ]);
    expect((await f.refs(f.gl)).map((l) => l.split(' ')[0])).toEqual(['refs/heads/b', 'refs/heads/main']);
    expect((await f.refs(f.gh)).map((l) => l.split(' ')[0])).toEqual([
      'refs/heads/a',
      'refs/heads/b',
      'refs/heads/main',
      'refs/tags/v2',
    ]);
  });

  it('leaves the cache without staged leftovers', async () => {
    const f = await fixture();
    const main = await commit(f.gh, 'refs/heads/main', undefined, { '.gitattributes': TRACK });
    await f.run();
    const [cache] = (await readdir(join(f.dir, 'cache', 'pairs'))).filter((d) => d.endsWith('.git'));
    const cacheDir = join(f.dir, 'cache', 'pairs', cache!);
    expect(await git(cacheDir, ['for-each-ref', '--format=%(refname)', 'refs/refbridge/out/'])).toBe('');
    expect(await git(cacheDir, ['for-each-ref', '--format=%(refname)', 'refs/refbridge/base/'])).toBe('');
    expect(await git(cacheDir, ['rev-parse', 'refs/refbridge/github/heads/main'])).toBe(main);
  });
});
