import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { commitFiles, git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';
import { updateCheckout } from '../src/backup-checkout.js';
import {
  PENDING_NS,
  backupRefName,
  backupRefTime,
  backupStamp,
  isBackupEligible,
  pruneMirrorBackups,
  syncMirror,
} from '../src/backup-mirror.js';
import { RefbridgeError } from '../src/errors.js';
import { GitRunner } from '../src/git-runner.js';
import { SecretMasker } from '../src/secret-masker.js';

/** Real git: an upstream work repo pushed to a bare "server" repo, mirrored over file://. */

let tmp: Awaited<ReturnType<typeof tempDir>>;
const runner = new GitRunner({ masker: new SecretMasker() });

beforeAll(async () => {
  tmp = await tempDir('refbridge-backup-mirror-');
});
afterAll(async () => tmp.cleanup());

interface Upstream {
  work: string;
  server: string;
  url: string;
  push(...refspecs: string[]): Promise<void>;
}

async function upstream(name: string): Promise<Upstream> {
  const work = join(tmp.path, name, 'work');
  const server = join(tmp.path, name, 'server.git');
  await initRepo(work);
  await initRepo(server, { bare: true });
  await commitFiles(work, { 'README.md': `# ${name}\n` }, 'first');
  await commitFiles(work, { 'a.txt': 'a\n' }, 'second');
  await git(work, ['remote', 'add', 'origin', server]);
  await git(work, ['push', '-q', 'origin', 'main']);
  return {
    work,
    server,
    url: pathToFileURL(server).href,
    push: async (...refspecs) => {
      await git(work, ['push', '-q', '--force', 'origin', ...refspecs]);
    },
  };
}

async function refs(gitDir: string, prefix = 'refs/'): Promise<Record<string, string>> {
  const out = await git(gitDir, ['for-each-ref', '--format=%(objectname) %(refname)', prefix]);
  return Object.fromEntries(
    out
      .split('\n')
      .filter((l) => l)
      .map((l) => l.split(' ').reverse() as [string, string]),
  );
}

const sync = (up: Upstream, gitDir: string, now = new Date('2024-05-01T12:00:00Z')) =>
  syncMirror({ git: runner, gitDir, url: up.url, credentials: [], now, label: 'test' });

describe('syncMirror', () => {
  it('creates a bare mirror with every ref, hidden ones too, and the upstream default branch as HEAD', async () => {
    const up = await upstream('create');
    await git(up.work, ['branch', 'develop']);
    await git(up.work, ['tag', '-a', '-m', 'r', 'v1']);
    await up.push('develop', 'v1', 'HEAD:refs/pull/7/head');
    await git(up.server, ['symbolic-ref', 'HEAD', 'refs/heads/develop']);
    const gitDir = join(tmp.path, 'create', 'mirror', 'acme', 'create.git');
    const r = await sync(up, gitDir);
    expect(r.created).toBe(true);
    expect(r.defaultBranch).toBe('develop');
    expect(await refs(gitDir)).toEqual(await refs(up.server));
    expect(Object.keys(r.tips).sort()).toEqual(['refs/heads/develop', 'refs/heads/main', 'refs/tags/v1']);
    expect(await git(gitDir, ['rev-parse', '--is-bare-repository'])).toBe('true');
    expect(await git(gitDir, ['symbolic-ref', 'HEAD'])).toBe('refs/heads/develop');
    expect(await git(gitDir, ['config', 'remote.origin.url'])).toBe(up.url);
    expect(r.bytes).toBeGreaterThan(0);

    const again = await sync(up, gitDir);
    expect(again).toMatchObject({ created: false, updated: [], deleted: [], backups: [], bytes: 0 });
  });

  it('keeps a force-pushed tip as a dated backup, and its commits', async () => {
    const up = await upstream('force');
    const gitDir = join(tmp.path, 'force', 'mirror.git');
    await sync(up, gitDir);
    const old = await git(up.work, ['rev-parse', 'HEAD']);
    await git(up.work, ['reset', '-q', '--hard', 'HEAD~1']);
    const rewritten = await commitFiles(up.work, { 'b.txt': 'b\n' }, 'rewrite');
    await up.push('main');
    const now = new Date('2024-05-02T08:30:00Z');
    const r = await sync(up, gitDir, now);
    expect(r.updated).toEqual(['refs/heads/main']);
    const backupRef = 'refs/refbridge/backup/20240502T083000Z/heads/main';
    expect(r.backups).toEqual([{ ref: 'refs/heads/main', backupRef, sha: old, reason: 'rewritten' }]);
    expect((await refs(gitDir))['refs/heads/main']).toBe(rewritten);
    expect((await refs(gitDir))[backupRef]).toBe(old);
    expect(await refs(gitDir, PENDING_NS)).toEqual({});
  });

  it('backs up nothing for a fast-forward or a deleted branch whose commits another ref still has', async () => {
    const up = await upstream('ff');
    await git(up.work, ['branch', 'merged']);
    await up.push('merged');
    const gitDir = join(tmp.path, 'ff', 'mirror.git');
    await sync(up, gitDir);
    await commitFiles(up.work, { 'c.txt': 'c\n' }, 'more');
    await up.push('main', ':refs/heads/merged');
    const r = await sync(up, gitDir);
    expect(r.updated).toEqual(['refs/heads/main']);
    expect(r.deleted).toEqual(['refs/heads/merged']);
    expect(r.backups).toEqual([]);
    expect(await refs(gitDir, 'refs/refbridge/')).toEqual({});
  });

  it('keeps a deleted branch with unique commits, and any moved or deleted tag', async () => {
    const up = await upstream('delete');
    await git(up.work, ['checkout', '-q', '-b', 'topic']);
    const topic = await commitFiles(up.work, { 't.txt': 't\n' }, 'topic work');
    await git(up.work, ['checkout', '-q', 'main']);
    await git(up.work, ['tag', 'moving', 'HEAD~1']);
    const tagBefore = await git(up.work, ['rev-parse', 'moving']);
    await up.push('topic', 'moving');
    const gitDir = join(tmp.path, 'delete', 'mirror.git');
    await sync(up, gitDir);
    await git(up.work, ['tag', '-f', 'moving', 'HEAD']);
    await up.push(':refs/heads/topic', '+refs/tags/moving');
    const r = await sync(up, gitDir, new Date('2024-06-01T00:00:00Z'));
    expect(r.backups.map((b) => [b.ref, b.sha, b.reason]).sort()).toEqual([
      ['refs/heads/topic', topic, 'deleted'],
      ['refs/tags/moving', tagBefore, 'rewritten'],
    ]);
    expect(await refs(gitDir)).toMatchObject({
      'refs/refbridge/backup/20240601T000000Z/heads/topic': topic,
      'refs/refbridge/backup/20240601T000000Z/tags/moving': tagBefore,
    });
    expect(await refs(gitDir)).not.toHaveProperty(['refs/heads/topic']);
  });

  it('handles a branch replaced by one nested below its name (feature -> feature/x)', async () => {
    const up = await upstream('df');
    await up.push('HEAD:refs/heads/feature');
    const gitDir = join(tmp.path, 'df', 'mirror.git');
    await sync(up, gitDir);
    await up.push(':refs/heads/feature');
    await up.push('HEAD:refs/heads/feature/x');
    const r = await sync(up, gitDir);
    expect(r.deleted).toEqual(['refs/heads/feature']);
    expect(r.updated).toEqual(['refs/heads/feature/x']);
    expect(await refs(gitDir)).toEqual(await refs(up.server));
  });

  it('numbers a second backup of the same ref within the same second instead of overwriting it', async () => {
    const up = await upstream('twice');
    const gitDir = join(tmp.path, 'twice', 'mirror.git');
    await sync(up, gitDir);
    const now = new Date('2024-07-01T00:00:00Z');
    const tips: string[] = [];
    for (const f of ['x', 'y']) {
      tips.push(await git(up.work, ['rev-parse', 'HEAD']));
      await git(up.work, ['reset', '-q', '--hard', 'HEAD~1']);
      await commitFiles(up.work, { [`${f}.txt`]: f }, f);
      await up.push('main');
      await sync(up, gitDir, now);
    }
    const backups = await refs(gitDir, 'refs/refbridge/backup/');
    expect(backups).toEqual({
      'refs/refbridge/backup/20240701T000000Z/heads/main': tips[0],
      'refs/refbridge/backup/20240701T000000Z-2/heads/main': tips[1],
    });
  });

  it('never lets upstream write into refs/refbridge/, and skips synthetic merge refs', async () => {
    const up = await upstream('own-ns');
    await up.push('HEAD:refs/refbridge/backup/20990101T000000Z/heads/main');
    const gitDir = join(tmp.path, 'own-ns', 'mirror.git');
    await sync(up, gitDir);
    expect(await refs(gitDir, 'refs/refbridge/')).toEqual({});
    expect(isBackupEligible('refs/pull/3/merge')).toBe(false);
    expect(isBackupEligible('refs/merge-requests/3/merge')).toBe(false);
    expect(isBackupEligible('refs/pull/3/head')).toBe(true);
  });

  it('sorts tips a crashed run left parked: kept when they would be lost, dropped otherwise', async () => {
    const up = await upstream('crash');
    const gitDir = join(tmp.path, 'crash', 'mirror.git');
    await sync(up, gitDir);
    // As if a run parked main's old tip, fetched a rewrite, and died before sorting.
    const old = await git(up.work, ['rev-parse', 'HEAD']);
    await git(gitDir, ['update-ref', `${PENDING_NS}heads/main`, old]);
    await git(up.work, ['reset', '-q', '--hard', 'HEAD~1']);
    const rewritten = await commitFiles(up.work, { 'r.txt': 'r\n' }, 'rewrite');
    await up.push('main');
    await git(gitDir, ['fetch', '-q', up.server, '+refs/heads/main:refs/heads/main']);
    const r = await sync(up, gitDir, new Date('2024-08-01T00:00:00Z'));
    expect(r.backups).toEqual([
      {
        ref: 'refs/heads/main',
        backupRef: 'refs/refbridge/backup/20240801T000000Z/heads/main',
        sha: old,
        reason: 'interrupted',
      },
    ]);
    expect((await refs(gitDir))['refs/heads/main']).toBe(rewritten);
    expect(await refs(gitDir, PENDING_NS)).toEqual({});
  });

  it('says when the default branch stores files with Git LFS, only when something was fetched', async () => {
    const up = await upstream('lfs');
    const gitDir = join(tmp.path, 'lfs', 'mirror.git');
    expect((await sync(up, gitDir)).lfs).toBeUndefined();
    await commitFiles(
      up.work,
      {
        '.gitattributes': '# big files\n*.psd filter=lfs diff=lfs merge=lfs -text\n',
        'art.psd': 'version https://git-lfs.github.com/spec/v1\noid sha256:' + 'b'.repeat(64) + '\nsize 7\n',
      },
      'track art with LFS',
    );
    // --no-verify: where git-lfs is installed, its pre-push hook would look for the object content.
    await git(up.work, ['push', '-q', '--no-verify', 'origin', 'main']);
    const r = await sync(up, gitDir);
    expect(r.updated).toEqual(['refs/heads/main']);
    expect(r.lfs).toEqual([{ line: 2, pattern: '*.psd', text: '*.psd filter=lfs diff=lfs merge=lfs -text' }]);
    // Nothing moved: no question asked, nothing reported.
    expect((await sync(up, gitDir)).lfs).toBeUndefined();
  });

  it('refuses a directory that exists but is not a bare repository', async () => {
    const up = await upstream('notbare');
    const gitDir = join(tmp.path, 'notbare', 'mirror.git');
    await mkdir(gitDir, { recursive: true });
    await writeFile(join(gitDir, 'precious.txt'), 'mine\n');
    await expect(sync(up, gitDir)).rejects.toBeInstanceOf(RefbridgeError);
    expect(await readFile(join(gitDir, 'precious.txt'), 'utf8')).toBe('mine\n');
  });
});

describe('backup retention', () => {
  it('names backups by UTC second and prunes only those older than --keep-days', async () => {
    expect(backupStamp(new Date('2024-01-31T23:59:59.999Z'))).toBe('20240131T235959Z');
    expect(backupRefName('20240131T235959Z', 'refs/heads/a/b')).toBe(
      'refs/refbridge/backup/20240131T235959Z/heads/a/b',
    );
    expect(backupRefTime('refs/refbridge/backup/20240131T235959Z-3/heads/x')?.toISOString()).toBe(
      '2024-01-31T23:59:59.000Z',
    );
    expect(backupRefTime('refs/refbridge/backup/manual/heads/x')).toBeUndefined();

    const up = await upstream('prune');
    const gitDir = join(tmp.path, 'prune', 'mirror.git');
    await sync(up, gitDir);
    const sha = await git(up.work, ['rev-parse', 'HEAD']);
    for (const ref of [
      'refs/refbridge/backup/20240101T000000Z/heads/old',
      'refs/refbridge/backup/20240525T000000Z/heads/recent',
      'refs/refbridge/backup/by-hand/heads/kept',
    ]) {
      await git(gitDir, ['update-ref', ref, sha]);
    }
    expect(await pruneMirrorBackups(runner, gitDir, 30, new Date('2024-06-01T00:00:00Z'))).toBe(1);
    expect(Object.keys(await refs(gitDir, 'refs/refbridge/')).sort()).toEqual([
      'refs/refbridge/backup/20240525T000000Z/heads/recent',
      'refs/refbridge/backup/by-hand/heads/kept',
    ]);
  });
});

describe('updateCheckout', () => {
  it('checks out the default branch beside the mirror and follows a force push', async () => {
    const up = await upstream('co');
    const gitDir = join(tmp.path, 'co', 'owner', 'user.github.io.git');
    const worktree = join(tmp.path, 'co', 'owner', 'user.github.io');
    await sync(up, gitDir);
    const created = await updateCheckout({ git: runner, gitDir, worktree, branch: 'main' });
    expect(created.status).toBe('created');
    expect(await git(worktree, ['rev-parse', 'HEAD'])).toBe(await git(gitDir, ['rev-parse', 'refs/heads/main']));
    expect(await readFile(join(worktree, 'a.txt'), 'utf8')).toBe('a\n');
    expect((await updateCheckout({ git: runner, gitDir, worktree, branch: 'main' })).status).toBe('unchanged');

    await git(up.work, ['reset', '-q', '--hard', 'HEAD~1']);
    const rewritten = await commitFiles(up.work, { 'z.txt': 'z\n' }, 'rewrite');
    await up.push('main');
    await sync(up, gitDir);
    const moved = await updateCheckout({ git: runner, gitDir, worktree, branch: 'main' });
    expect(moved.status).toBe('updated');
    expect(await git(worktree, ['rev-parse', 'HEAD'])).toBe(rewritten);
    expect(await git(worktree, ['status', '--porcelain'])).toBe('');
    expect(await git(worktree, ['ls-files'])).not.toContain('a.txt');
  });

  it('leaves local changes, untracked files and local commits alone', async () => {
    const up = await upstream('local');
    const gitDir = join(tmp.path, 'local', 'mirror.git');
    const worktree = join(tmp.path, 'local', 'mirror');
    await sync(up, gitDir);
    await updateCheckout({ git: runner, gitDir, worktree, branch: 'main' });
    const advance = async (): Promise<void> => {
      await commitFiles(up.work, { [`n${Date.now()}.txt`]: 'n\n' }, 'upstream moves');
      await up.push('main');
      await sync(up, gitDir);
    };

    await writeFile(join(worktree, 'README.md'), 'edited\n');
    await advance();
    const edited = await updateCheckout({ git: runner, gitDir, worktree, branch: 'main' });
    expect(edited.status).toBe('kept-local-changes');
    expect(await readFile(join(worktree, 'README.md'), 'utf8')).toBe('edited\n');
    await git(worktree, ['checkout', '-q', '--', 'README.md']);

    await writeFile(join(worktree, 'scratch.txt'), 'untracked\n');
    expect((await updateCheckout({ git: runner, gitDir, worktree, branch: 'main' })).status).toBe('kept-local-changes');
    await git(worktree, ['clean', '-qfd']);

    const mine = await commitFiles(worktree, { 'mine.txt': 'mine\n' }, 'local commit');
    await advance();
    const committed = await updateCheckout({ git: runner, gitDir, worktree, branch: 'main' });
    expect(committed.status).toBe('kept-local-changes');
    expect(committed.detail).toContain('local commit');
    expect(await git(worktree, ['rev-parse', 'HEAD'])).toBe(mine);
  });

  it('makes no checkout of an empty repo, and leaves a directory that is not a checkout alone', async () => {
    const up = await upstream('edge');
    const gitDir = join(tmp.path, 'edge', 'mirror.git');
    await sync(up, gitDir);
    expect(
      (await updateCheckout({ git: runner, gitDir, worktree: join(tmp.path, 'edge', 'x'), branch: null })).status,
    ).toBe('no-branch');
    const plain = join(tmp.path, 'edge', 'plain');
    await mkdir(plain, { recursive: true });
    await writeFile(join(plain, 'notes.txt'), 'not git\n');
    expect((await updateCheckout({ git: runner, gitDir, worktree: plain, branch: 'main' })).status).toBe(
      'not-a-checkout',
    );
    expect(await readFile(join(plain, 'notes.txt'), 'utf8')).toBe('not git\n');
  });
});
