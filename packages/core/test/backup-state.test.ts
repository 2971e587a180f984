import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../../../test/support/temp.js';
import { RefbridgeError } from '../src/errors.js';
import { isSettled, planRepoSync, sameTips, type PlanRepoInput } from '../src/backup-plan.js';
import { BackupStateStore, type BackupRepoState } from '../src/backup-state.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('refbridge-backup-state-');
});
afterAll(async () => tmp.cleanup());

function entry(overrides: Partial<BackupRepoState> = {}): BackupRepoState {
  return {
    platform: 'github',
    path: 'acme/tools',
    id: 1,
    gitDir: 'github.com/acme/tools.git',
    pushedAt: '2024-01-01T10:00:00Z',
    verifiedAt: '2024-01-01T12:00:00.000Z',
    tips: { 'refs/heads/main': 'a'.repeat(40) },
    defaultBranch: 'main',
    failures: 0,
    ...overrides,
  };
}

describe('BackupStateStore', () => {
  it('starts empty, saves atomically and reads back what it saved', async () => {
    const storage = join(tmp.path, 'roundtrip');
    const store = await BackupStateStore.open(storage);
    expect(store.repo('github.com/acme/tools')).toBeUndefined();
    store.setRepo('github.com/acme/tools', entry());
    store.listingCache.set('https://api/user/repos?page=1', { etag: 'W/"1"', body: { repos: [], next: null } });
    await store.save();
    const files = await readdir(join(storage, '.refbridge'));
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const again = await BackupStateStore.open(storage);
    expect(again.repo('github.com/acme/tools')).toEqual(entry());
    expect(again.listingCache.get('https://api/user/repos?page=1')).toEqual({
      etag: 'W/"1"',
      body: { repos: [], next: null },
    });
  });

  it('merges: two processes that touched different repos both keep their entries', async () => {
    const storage = join(tmp.path, 'merge');
    const a = await BackupStateStore.open(storage);
    const b = await BackupStateStore.open(storage);
    a.setRepo('github.com/a/one', entry({ path: 'a/one' }));
    b.setRepo('github.com/b/two', entry({ path: 'b/two' }));
    await Promise.all([a.save(), b.save()]);
    const merged = await BackupStateStore.open(storage);
    expect(merged.repoKeys().sort()).toEqual(['github.com/a/one', 'github.com/b/two']);
    // A store continues from the merged view after saving.
    expect(b.repo('github.com/a/one')?.path).toBe('a/one');
  });

  it('keeps what is recorded while a save is being written, for the next save', async () => {
    const storage = join(tmp.path, 'during');
    const store = await BackupStateStore.open(storage);
    store.setRepo('github.com/a/first', entry({ path: 'a/first' }));
    const saving = store.save();
    store.setRepo('github.com/a/second', entry({ path: 'a/second' }));
    await saving;
    expect(store.repo('github.com/a/second')?.path).toBe('a/second');
    await store.save();
    expect((await BackupStateStore.open(storage)).repoKeys().sort()).toEqual([
      'github.com/a/first',
      'github.com/a/second',
    ]);
  });

  it('sets an unreadable file aside with a warning and starts empty', async () => {
    const storage = join(tmp.path, 'corrupt');
    await mkdir(join(storage, '.refbridge'), { recursive: true });
    await writeFile(join(storage, '.refbridge', 'backup-state.json'), '{"version": 1, "repos": {"x": ');
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {} };
    const store = await BackupStateStore.open(storage, logger);
    expect(store.repoKeys()).toEqual([]);
    expect(warnings.join('\n')).toContain('could not be read');
    const files = await readdir(join(storage, '.refbridge'));
    expect(files.some((f) => f.startsWith('backup-state.json.unreadable-'))).toBe(true);
  });

  it('drops single malformed entries but keeps the rest', async () => {
    const storage = join(tmp.path, 'partial');
    await mkdir(join(storage, '.refbridge'), { recursive: true });
    await writeFile(
      join(storage, '.refbridge', 'backup-state.json'),
      JSON.stringify({ version: 1, repos: { good: entry(), bad: { path: 3 } }, listings: {} }),
    );
    const store = await BackupStateStore.open(storage);
    expect(store.repoKeys()).toEqual(['good']);
  });

  it('refuses to overwrite a state written by a newer refbridge', async () => {
    const storage = join(tmp.path, 'newer');
    await mkdir(join(storage, '.refbridge'), { recursive: true });
    const path = join(storage, '.refbridge', 'backup-state.json');
    await writeFile(path, JSON.stringify({ version: 99, repos: {} }));
    await expect(BackupStateStore.open(storage)).rejects.toBeInstanceOf(RefbridgeError);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ version: 99, repos: {} });
  });
});

describe('planRepoSync', () => {
  const hour = 3_600_000;
  const base = (overrides: Partial<PlanRepoInput> = {}): PlanRepoInput => ({
    platform: 'github',
    listedPushedAt: '2024-01-01T10:00:00Z',
    entry: entry(),
    mirrorExists: true,
    now: new Date('2024-01-01T13:00:00Z'),
    windowMs: hour,
    ...overrides,
  });

  it('clones without a mirror, fetches without state or after a failure', () => {
    expect(planRepoSync(base({ mirrorExists: false })).action).toBe('clone');
    expect(planRepoSync(base({ entry: undefined })).action).toBe('fetch');
    expect(planRepoSync(base({ entry: entry({ lastError: 'boom' }) })).action).toBe('fetch');
  });

  it('fetches when pushed_at moved, in either direction', () => {
    const later = planRepoSync(base({ listedPushedAt: '2024-01-01T10:00:01Z' }));
    expect(later.action).toBe('fetch');
    expect(later.reason).toContain('pushed_at moved');
    expect(planRepoSync(base({ listedPushedAt: '2023-12-31T10:00:00Z' })).action).toBe('fetch');
    expect(planRepoSync(base({ listedPushedAt: null })).action).toBe('fetch');
  });

  it('skips an unchanged repo whose last look came after the window: no git at all', () => {
    expect(planRepoSync(base())).toEqual({ action: 'skip', reason: 'unchanged' });
    expect(planRepoSync(base({ platform: 'gitlab' }))).toEqual({ action: 'skip', reason: 'unchanged' });
  });

  it('GitHub: a fetch right after a push is confirmed once, when the window has passed, and not before', () => {
    const hot = entry({ verifiedAt: '2024-01-01T10:00:00.500Z' }); // same second as the push
    const soon = planRepoSync(base({ entry: hot, now: new Date('2024-01-01T10:05:00Z') }));
    expect(soon.action).toBe('skip');
    expect(soon).toHaveProperty('verifyAfter', '2024-01-01T11:00:01.000Z');
    expect(planRepoSync(base({ entry: hot, now: new Date('2024-01-01T11:00:01Z') })).action).toBe('verify');
    // After that confirmation the repo is settled and costs nothing again.
    expect(isSettled(entry({ verifiedAt: '2024-01-01T11:00:01Z' }), hour)).toBe(true);
  });

  it('GitLab: last_activity_at moves at most hourly, so a recently active project is confirmed on every run', () => {
    const hot = entry({ platform: 'gitlab', verifiedAt: '2024-01-01T10:20:00Z' });
    expect(planRepoSync(base({ platform: 'gitlab', entry: hot, now: new Date('2024-01-01T10:21:00Z') })).action).toBe(
      'verify',
    );
    expect(planRepoSync(base({ platform: 'gitlab', entry: hot, now: new Date('2024-01-01T10:50:00Z') })).action).toBe(
      'verify',
    );
  });

  it('--window 0 trusts the timestamps: settled as soon as the look is a second past the push', () => {
    const e = entry({ verifiedAt: '2024-01-01T10:00:01Z' });
    expect(planRepoSync(base({ entry: e, windowMs: 0, platform: 'gitlab' })).action).toBe('skip');
  });
});

describe('sameTips', () => {
  it('compares branch and tag maps exactly', () => {
    expect(sameTips({ a: '1' }, { a: '1' })).toBe(true);
    expect(sameTips({ a: '1' }, { a: '2' })).toBe(false);
    expect(sameTips({ a: '1' }, { a: '1', b: '1' })).toBe(false);
    expect(sameTips(undefined, {})).toBe(true);
  });
});
