import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GitOutputError, parseLsRemote, parsePushPorcelain } from '../src/git-parsers.js';
import type { PushReport } from '../src/git-parsers.js';
import { commitFiles, git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'git-output');

async function fixture(name: string): Promise<string> {
  return readFile(join(fixtures, name), 'utf8');
}

/** Runs a real `git push --porcelain` and parses what it printed. */
async function push(cwd: string, args: string[]): Promise<PushReport & { exitCode: number | undefined }> {
  const r = await execa('git', ['push', '--porcelain', ...args], { cwd, reject: false, env: { LC_ALL: 'C' } });
  return { ...parsePushPorcelain(String(r.stdout), String(r.stderr)), exitCode: r.exitCode };
}

/**
 * A proc-receive hook refuses with a reason of its own, as GitHub's servers do ("protected branch
 * hook declined"), and prints GitHub's GH006 lines.
 */
const PROC_RECEIVE = `
let buf = Buffer.alloc(0);
let phase = 0;
const refs = [];
const pkt = (s) => Buffer.concat([Buffer.from((Buffer.byteLength(s) + 4).toString(16).padStart(4, '0')), Buffer.from(s)]);
process.stdin.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 4) {
    const len = parseInt(buf.subarray(0, 4).toString(), 16);
    if (len === 0) {
      buf = buf.subarray(4);
      if (phase === 0) process.stdout.write(Buffer.concat([pkt('version=1\\n'), Buffer.from('0000')]));
      if (phase === 1) {
        process.stderr.write('error: GH006: Protected branch update failed for ' + refs[0] + '.\\nerror: Cannot force-push to this branch\\n');
        process.stdout.write(Buffer.concat([...refs.map((r) => pkt('ng ' + r + ' protected branch hook declined\\n')), Buffer.from('0000')]));
      }
      phase++;
      continue;
    }
    if (buf.length < len) break;
    if (phase === 1) refs.push(buf.subarray(4, len).toString().trim().split(' ')[2]);
    buf = buf.subarray(len);
  }
});
`;

describe('parseLsRemote', () => {
  it('reads a captured --symref listing, folding peeled lines into their tags', async () => {
    const entries = parseLsRemote(await fixture('ls-remote-symref.stdout'));
    expect(entries.map((e) => e.ref)).toEqual([
      'HEAD',
      'refs/heads/main',
      'refs/heads/topic',
      'refs/tags/light',
      'refs/tags/v1.0',
    ]);
    expect(entries[0]).toEqual({
      ref: 'HEAD',
      sha: 'ede75ffb03a3ecc20cc5f5540d62822542ccb432',
      symref: 'refs/heads/main',
    });
    expect(entries.find((e) => e.ref === 'refs/tags/v1.0')).toEqual({
      ref: 'refs/tags/v1.0',
      sha: '47ce2fbd4709ca3d0eed040d6f11d8a0adea43ec',
      peeled: 'd7fab368785a62daba608681750240043414b030',
    });
    expect(entries.find((e) => e.ref === 'refs/tags/light')?.peeled).toBeUndefined();
  });

  it('refuses output it does not understand instead of returning a partial listing', () => {
    const sha = 'a'.repeat(40);
    expect(() => parseLsRemote(`${sha} refs/heads/main\n`)).toThrow(GitOutputError);
    expect(() => parseLsRemote(`xyz\trefs/heads/main\n`)).toThrow(/not an object id/);
    expect(() => parseLsRemote(`${sha}\trefs/tags/v1^{}\n`)).toThrow(/peeled line without its tag/);
    expect(() => parseLsRemote(`${sha}\trefs/heads/a\n${sha}\trefs/heads/a\n`)).toThrow(/twice/);
    expect(parseLsRemote('')).toEqual([]);
  });

  it('accepts SHA-256 ids', () => {
    const sha = 'b'.repeat(64);
    expect(parseLsRemote(`${sha}\trefs/heads/main\n`)).toEqual([{ ref: 'refs/heads/main', sha }]);
  });
});

describe('parsePushPorcelain on captured output', () => {
  it('new branches and tags', async () => {
    const r = parsePushPorcelain(await fixture('push-new.stdout'), await fixture('push-new.stderr'));
    expect(r.url).toBe('file:///tmp/refbridge-capture/target.git');
    expect(r.done).toBe(true);
    expect(r.refs).toEqual([
      { flag: 'new', from: 'refs/heads/main', to: 'refs/heads/main', summary: '[new branch]' },
      { flag: 'new', from: 'refs/heads/main', to: 'refs/heads/topic', summary: '[new branch]' },
      { flag: 'new', from: 'refs/tags/v1.0', to: 'refs/tags/v1.0', summary: '[new tag]' },
      { flag: 'new', from: 'refs/tags/light', to: 'refs/tags/light', summary: '[new tag]' },
    ]);
    expect(r.remoteMessages).toEqual([]);
  });

  it('fast-forward, forced update, deletion and up to date in one push', async () => {
    const r = parsePushPorcelain(await fixture('push-mixed.stdout'), await fixture('push-mixed.stderr'));
    expect(r.refs).toEqual([
      { flag: 'up-to-date', from: 'refs/tags/v1.0', to: 'refs/tags/v1.0', summary: '[up to date]' },
      {
        flag: 'fast-forward',
        from: 'refs/heads/main',
        to: 'refs/heads/main',
        summary: 'ede75ff..14605d5',
        oldAbbrev: 'ede75ff',
        newAbbrev: '14605d5',
      },
      {
        flag: 'forced',
        from: 'main~2',
        to: 'refs/heads/topic',
        summary: 'ede75ff...d7fab36',
        reason: 'forced update',
        oldAbbrev: 'ede75ff',
        newAbbrev: 'd7fab36',
      },
      { flag: 'deleted', from: '', to: 'refs/tags/light', summary: '[deleted]' },
    ]);
  });

  it.each([
    ['push-stale-info', '[rejected]', 'stale info'],
    ['push-non-fast-forward', '[rejected]', 'non-fast-forward'],
    ['push-hidden-ref', '[remote rejected]', 'deny updating a hidden ref'],
    ['push-shallow', '[remote rejected]', 'shallow update not allowed'],
    ['push-gitlab-protected', '[remote rejected]', 'pre-receive hook declined'],
  ])('%s: rejected with its reason', async (name, summary, reason) => {
    const r = parsePushPorcelain(await fixture(`${name}.stdout`), await fixture(`${name}.stderr`));
    expect(r.refs).toHaveLength(1);
    expect(r.refs[0]).toMatchObject({ flag: 'rejected', summary, reason });
    expect(r.errors).toEqual(["error: failed to push some refs to 'file:///tmp/refbridge-capture/target.git'"]);
  });

  it('keeps the remote lines that explain a protection rejection, without padding', async () => {
    const gitlab = parsePushPorcelain(
      await fixture('push-gitlab-protected.stdout'),
      await fixture('push-gitlab-protected.stderr'),
    );
    expect(gitlab.remoteMessages).toEqual([
      'GitLab: You are not allowed to force push code to a protected branch on this project.',
    ]);
    const github = parsePushPorcelain(
      await fixture('push-github-protected.stdout'),
      await fixture('push-github-protected.stderr'),
    );
    expect(github.refs.map((s) => [s.to, s.flag, s.reason])).toEqual([
      ['refs/heads/feature', 'new', undefined],
      ['refs/heads/main', 'rejected', 'protected branch hook declined'],
    ]);
    expect(github.remoteMessages).toEqual([
      'error: GH006: Protected branch update failed for refs/heads/main.',
      'error: Cannot force-push to this branch',
    ]);
  });

  it('handles terminal clear-line codes and carriage returns in stderr', () => {
    const r = parsePushPorcelain(
      '',
      'remote: Resolving deltas: 50%\rremote: Resolving deltas: 100%\u001b[K\nremote: \nfatal: x\n',
    );
    expect(r.remoteMessages).toEqual(['Resolving deltas: 50%', 'Resolving deltas: 100%']);
    expect(r.errors).toEqual(['fatal: x']);
    expect(r.refs).toEqual([]);
  });

  it('refuses status lines it does not understand', () => {
    expect(() => parsePushPorcelain('?\trefs/heads/a:refs/heads/a\t[odd]\n')).toThrow(/unknown flag/);
    expect(() => parsePushPorcelain('*\trefs/heads/a\t[new branch]\n')).toThrow(/without ":"/);
    expect(() => parsePushPorcelain('* refs/heads/a:refs/heads/a [new branch]\n')).toThrow(GitOutputError);
  });
});

describe('parsePushPorcelain on output generated now by real git', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let work: string;
  let target: string;
  let targetUrl: string;
  let c1: string;
  let c2: string;
  let c3: string;

  beforeAll(async () => {
    tmp = await tempDir('refbridge-parsers-');
    work = join(tmp.path, 'work');
    target = join(tmp.path, 'target.git');
    targetUrl = `file://${target}`;
    await initRepo(target, { bare: true });
    await git(target, ['config', 'receive.hideRefs', 'refs/pull']);
    await git(target, ['config', 'receive.advertisePushOptions', 'true']);
    await initRepo(work);
    c1 = await commitFiles(work, { f: '1' }, 'c1');
    c2 = await commitFiles(work, { f: '2' }, 'c2');
    c3 = await commitFiles(work, { f: '3' }, 'c3');
    await git(work, ['tag', '-a', 'v1', '-m', 'v1', c2]);
    await git(work, ['tag', 'lw', c1]);
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  // The cases build on each other: the target's state carries over in declaration order.
  it('new branch and tags (annotated and lightweight)', async () => {
    const r = await push(work, [targetUrl, `${c2}:refs/heads/main`, 'refs/tags/v1', 'refs/tags/lw']);
    expect(r.exitCode).toBe(0);
    expect(r.refs.map((s) => [s.to, s.flag, s.summary])).toEqual([
      ['refs/heads/main', 'new', '[new branch]'],
      ['refs/tags/v1', 'new', '[new tag]'],
      ['refs/tags/lw', 'new', '[new tag]'],
    ]);
    expect(r.refs[0]?.from).toBe(c2);
  });

  it('ls-remote of the result', async () => {
    const out = (await execa('git', ['ls-remote', targetUrl])).stdout;
    const tagObject = await git(work, ['rev-parse', 'refs/tags/v1']);
    expect(parseLsRemote(out)).toEqual([
      { ref: 'HEAD', sha: c2 },
      { ref: 'refs/heads/main', sha: c2 },
      { ref: 'refs/tags/lw', sha: c1 },
      { ref: 'refs/tags/v1', sha: tagObject, peeled: c2 },
    ]);
  });

  it('fast-forward with push options', async () => {
    const r = await push(work, ['-o', 'ci.skip', targetUrl, `${c3}:refs/heads/main`]);
    const shortC2 = await git(work, ['rev-parse', '--short', c2]);
    const shortC3 = await git(work, ['rev-parse', '--short', c3]);
    expect(r.refs).toEqual([
      {
        flag: 'fast-forward',
        from: c3,
        to: 'refs/heads/main',
        summary: `${shortC2}..${shortC3}`,
        oldAbbrev: shortC2,
        newAbbrev: shortC3,
      },
    ]);
  });

  it('rejected lease (stale info) and rejected non-fast-forward', async () => {
    const stale = await push(work, [`--force-with-lease=refs/heads/main:${c1}`, targetUrl, `${c2}:refs/heads/main`]);
    expect(stale.exitCode).toBe(1);
    expect(stale.refs).toEqual([
      { flag: 'rejected', from: c2, to: 'refs/heads/main', summary: '[rejected]', reason: 'stale info' },
    ]);
    const nonFf = await push(work, [targetUrl, `${c2}:refs/heads/main`]);
    expect(nonFf.refs[0]).toMatchObject({ flag: 'rejected', reason: 'non-fast-forward' });
    expect(nonFf.errors.join('\n')).toContain('failed to push some refs');
  });

  it('forced update under a matching lease', async () => {
    const r = await push(work, [`--force-with-lease=refs/heads/main:${c3}`, targetUrl, `${c1}:refs/heads/main`]);
    expect(r.exitCode).toBe(0);
    expect(r.refs[0]).toMatchObject({ flag: 'forced', reason: 'forced update' });
  });

  it('a pre-receive hook rejecting with a message', async () => {
    const hook = join(target, 'hooks', 'pre-receive');
    await writeFile(
      hook,
      '#!/bin/sh\necho "GitLab: You are not allowed to force push code to a protected branch on this project." >&2\nexit 1\n',
    );
    await chmod(hook, 0o755);
    try {
      const r = await push(work, [targetUrl, `${c3}:refs/heads/main`]);
      expect(r.exitCode).toBe(1);
      expect(r.refs[0]).toMatchObject({
        flag: 'rejected',
        summary: '[remote rejected]',
        reason: 'pre-receive hook declined',
      });
      expect(r.remoteMessages).toEqual([
        'GitLab: You are not allowed to force push code to a protected branch on this project.',
      ]);
    } finally {
      await rm(hook, { force: true });
    }
  });

  it('an atomic push where one ref fails takes the others down with it', async () => {
    const r = await push(work, ['--atomic', targetUrl, `${c3}:refs/heads/main`, `${c1}:refs/tags/v1`]);
    const byRef = Object.fromEntries(r.refs.map((s) => [s.to, [s.flag, s.reason]]));
    expect(byRef['refs/tags/v1']).toEqual(['rejected', 'already exists']);
    expect(byRef['refs/heads/main']).toEqual(['rejected', 'atomic push failed']);
  });

  it('deletion, up to date, and a hidden ref', async () => {
    const r = await push(work, [targetUrl, ':refs/tags/lw', 'refs/tags/v1', `${c3}:refs/pull/1/head`]);
    const byRef = Object.fromEntries(r.refs.map((s) => [s.to, s]));
    expect(byRef['refs/tags/lw']).toEqual({ flag: 'deleted', from: '', to: 'refs/tags/lw', summary: '[deleted]' });
    expect(byRef['refs/tags/v1']?.flag).toBe('up-to-date');
    expect(byRef['refs/pull/1/head']).toMatchObject({ flag: 'rejected', reason: 'deny updating a hidden ref' });
  });

  it('a shallow push the receiver refuses', async () => {
    const shallow = join(tmp.path, 'shallow');
    await git(tmp.path, ['clone', '-q', '--depth', '1', `file://${work}`, shallow]);
    await commitFiles(shallow, { g: 'new' }, 'on a shallow clone');
    const r = await push(shallow, [targetUrl, 'HEAD:refs/heads/from-shallow']);
    expect(r.refs[0]).toMatchObject({ flag: 'rejected', reason: 'shallow update not allowed' });
  });

  it('a forge-style protection rejection with a reason of its own (proc-receive)', async () => {
    const github = join(tmp.path, 'github.git');
    await initRepo(github, { bare: true });
    await git(github, ['config', 'receive.procReceiveRefs', 'refs/heads/main']);
    await writeFile(join(tmp.path, 'proc-receive.mjs'), PROC_RECEIVE);
    const hook = join(github, 'hooks', 'proc-receive');
    await writeFile(hook, `#!/bin/sh\nexec "${process.execPath}" "${join(tmp.path, 'proc-receive.mjs')}"\n`);
    await chmod(hook, 0o755);
    const r = await push(work, [`file://${github}`, `${c3}:refs/heads/main`, `${c3}:refs/heads/dev`]);
    const byRef = Object.fromEntries(r.refs.map((s) => [s.to, s]));
    expect(byRef['refs/heads/dev']?.flag).toBe('new');
    expect(byRef['refs/heads/main']).toMatchObject({
      flag: 'rejected',
      summary: '[remote rejected]',
      reason: 'protected branch hook declined',
    });
    expect(r.remoteMessages).toEqual([
      'error: GH006: Protected branch update failed for refs/heads/main.',
      'error: Cannot force-push to this branch',
    ]);
  });
});
