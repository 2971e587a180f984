import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { GitRunner } from '../src/git-runner.js';
import { silentLogger } from '../src/logger.js';
import { SecretMasker } from '../src/secret-masker.js';
import { syncPair, type SyncPairOptions } from '../src/sync-engine.js';
import type { SyncPolicy } from '../src/sync-planner.js';
import { commitFiles, git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';

// The engine against plain bare repos over file:// (real git, no forge): the forge-based
// end-to-end tests cover credentials and platform rules.

const policy: SyncPolicy = {
  divergence: 'halt-ref',
  deletions: 'propagate',
  rewrites: 'deny',
  refs: { branches: true, tags: true, include: [], exclude: [] },
};

let tmp: Awaited<ReturnType<typeof tempDir>>;
let n = 0;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => tmp.cleanup());

interface Fixture {
  gh: string;
  gl: string;
  work: string;
  cache: string;
  run: (extra?: Partial<SyncPairOptions>) => ReturnType<typeof syncPair>;
  refs: (repo: string) => Promise<Record<string, string>>;
}

async function fixture(): Promise<Fixture> {
  const dir = join(tmp.path, `f${++n}`);
  const gh = join(dir, 'gh.git');
  const gl = join(dir, 'gl.git');
  const work = join(dir, 'work');
  await initRepo(gh, { bare: true });
  await initRepo(gl, { bare: true });
  await initRepo(work);
  const runner = new GitRunner({ masker: new SecretMasker() });
  const cache = join(dir, 'cache');
  return {
    gh,
    gl,
    work,
    cache,
    run: (extra = {}) =>
      syncPair({
        git: runner,
        logger: silentLogger,
        cacheDir: cache,
        name: 'p',
        github: { url: pathToFileURL(gh).href, credentials: [] },
        gitlab: { url: pathToFileURL(gl).href, credentials: [] },
        policy,
        ...extra,
      }),
    refs: async (repo) => {
      const out = await git(repo, ['for-each-ref', '--format=%(refname) %(objectname)']);
      return Object.fromEntries(
        out
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split(' ') as [string, string]),
      );
    },
  };
}

async function pushTo(work: string, repo: string, refspec: string, force = false): Promise<void> {
  await git(work, ['push', '-q', ...(force ? ['--force'] : []), repo, refspec]);
}

describe('syncPair', () => {
  it('copies an initial repo, then is a no-op, then fast-forwards in both directions', async () => {
    const f = await fixture();
    const c1 = await commitFiles(f.work, { a: '1' });
    await git(f.work, ['tag', '-a', 'v1', '-m', 'v1']);
    await git(f.work, ['tag', 'light']);
    await pushTo(f.work, f.gh, 'main');
    await pushTo(f.work, f.gh, 'refs/tags/v1');
    await pushTo(f.work, f.gh, 'refs/tags/light');
    const first = await f.run();
    expect(first.status).toBe('synced');
    expect(await f.refs(f.gl)).toEqual(await f.refs(f.gh));

    const again = await f.run();
    expect(again.status).toBe('in-sync');
    expect(again.outcomes.every((o) => o.status === 'nothing')).toBe(true);

    const c2 = await commitFiles(f.work, { a: '2' });
    await pushTo(f.work, f.gl, 'main');
    const back = await f.run();
    expect(back.status).toBe('synced');
    expect((await f.refs(f.gh))['refs/heads/main']).toBe(c2);
    expect(c1).not.toBe(c2);
  });

  it('propagates deletions by policy and keeps the deleted tip in the cache', async () => {
    const f = await fixture();
    await commitFiles(f.work, { a: '1' });
    await git(f.work, ['branch', 'feature']);
    await pushTo(f.work, f.gh, 'main');
    await pushTo(f.work, f.gh, 'feature');
    await f.run();
    await git(f.work, ['push', '-q', f.gl, ':feature']);

    const ignored = await f.run({ policy: { ...policy, deletions: 'ignore' } });
    expect(ignored.outcomes.find((o) => o.ref === 'refs/heads/feature')?.action.kind).toBe('skipped');
    expect(await f.refs(f.gh)).toHaveProperty(['refs/heads/feature']);

    const propagated = await f.run();
    expect(propagated.outcomes.find((o) => o.ref === 'refs/heads/feature')?.status).toBe('done');
    expect(await f.refs(f.gh)).not.toHaveProperty(['refs/heads/feature']);
    const cacheRefs = await f.refs(
      join(
        f.cache,
        'pairs',
        (await import('node:fs')).readdirSync(join(f.cache, 'pairs')).find((d) => d.endsWith('.git'))!,
      ),
    );
    expect(
      Object.keys(cacheRefs).some((r) => r.startsWith('refs/refbridge/backup/') && r.endsWith('/github/heads/feature')),
    ).toBe(true);
  });

  it('handles a one-sided force push by the rewrite policy, backing up the old tip', async () => {
    const f = await fixture();
    await commitFiles(f.work, { a: '1' });
    const old = await commitFiles(f.work, { a: '2' });
    await pushTo(f.work, f.gh, 'main');
    await f.run();
    await git(f.work, ['reset', '-q', '--hard', 'HEAD~1']);
    const rewritten = await commitFiles(f.work, { b: 'x' });
    await pushTo(f.work, f.gh, 'main', true);

    const denied = await f.run();
    expect(denied.status).toBe('diverged');
    expect(denied.outcomes[0]?.action.kind).toBe('blocked');
    expect((await f.refs(f.gl))['refs/heads/main']).toBe(old);

    const allowed = await f.run({ policy: { ...policy, rewrites: 'allow' } });
    expect(allowed.status).toBe('synced');
    expect((await f.refs(f.gl))['refs/heads/main']).toBe(rewritten);
    const pairs = join(f.cache, 'pairs');
    const dir = (await import('node:fs')).readdirSync(pairs).find((d) => d.endsWith('.git'))!;
    const backups = Object.entries(await f.refs(join(pairs, dir))).filter(([r]) =>
      r.startsWith('refs/refbridge/backup/'),
    );
    expect(backups.map(([, sha]) => sha)).toContain(old);
  });

  it('reports divergence without touching either side, halting only that ref or the pair', async () => {
    const f = await fixture();
    await commitFiles(f.work, { a: '1' });
    await git(f.work, ['branch', 'other']);
    await pushTo(f.work, f.gh, 'main');
    await pushTo(f.work, f.gh, 'other');
    await f.run();
    const a = await commitFiles(f.work, { gh: '1' });
    await pushTo(f.work, f.gh, 'main');
    await git(f.work, ['reset', '-q', '--hard', 'HEAD~1']);
    const b = await commitFiles(f.work, { gl: '1' });
    await pushTo(f.work, f.gl, 'main', true);
    await git(f.work, ['checkout', '-q', 'other']);
    const o = await commitFiles(f.work, { o: '1' });
    await pushTo(f.work, f.gh, 'other');

    const halted = await f.run({ policy: { ...policy, divergence: 'halt-pair' } });
    expect(halted.status).toBe('diverged');
    expect(halted.halted).toBe(true);
    expect((await f.refs(f.gl))['refs/heads/other']).not.toBe(o);

    const perRef = await f.run();
    expect(perRef.status).toBe('diverged');
    const main = perRef.outcomes.find((x) => x.ref === 'refs/heads/main')!;
    expect(main.detail).toContain(a.slice(0, 12));
    expect(main.detail).toContain(b.slice(0, 12));
    expect(main.mergeBase).toBeDefined();
    expect(main.repair).toContain('--resolve refs/heads/main');
    expect((await f.refs(f.gl))['refs/heads/other']).toBe(o);
    expect((await f.refs(f.gh))['refs/heads/main']).toBe(a);
    expect((await f.refs(f.gl))['refs/heads/main']).toBe(b);

    const resolved = await f.run({ resolve: { refs: ['refs/heads/main'], keep: 'gitlab' } });
    expect(resolved.status).toBe('synced');
    expect((await f.refs(f.gh))['refs/heads/main']).toBe(b);
  });

  it('never pushes hidden refs', async () => {
    const f = await fixture();
    const c = await commitFiles(f.work, { a: '1' });
    await pushTo(f.work, f.gh, 'main');
    await git(f.gh, ['update-ref', 'refs/pull/1/head', c]);
    await git(f.gh, ['update-ref', 'refs/remotes/origin/HEAD', c]);
    await f.run();
    expect(Object.keys(await f.refs(f.gl))).toEqual(['refs/heads/main']);
  });

  it('loses a real lease race instead of overwriting a human push, and converges next run', async () => {
    const f = await fixture();
    await commitFiles(f.work, { a: '1' });
    await pushTo(f.work, f.gh, 'main');
    await f.run();
    const ghTip = await commitFiles(f.work, { a: '2' });
    await pushTo(f.work, f.gh, 'main');
    const human = join(tmp.path, `human-${n}`);
    await git(tmp.path, ['clone', '-q', f.gl, human]);
    const humanTip = await commitFiles(human, { h: 'human' });
    await git(human, ['pull', '-q', '--no-rebase', '--no-edit', f.gh, 'main']);
    const merged = await git(human, ['rev-parse', 'HEAD']);
    // A git wrapper that lands the human's push on GitLab right before the daemon's push runs,
    // after the daemon listed and planned: the window a real race hits.
    const wrapper = join(tmp.path, `git-race-${n}.sh`);
    const marker = join(tmp.path, `raced-${n}`);
    const { writeFile, chmod } = await import('node:fs/promises');
    await writeFile(
      wrapper,
      `#!/bin/sh\nif [ "$1" = "push" ] && [ ! -f ${marker} ]; then touch ${marker}; env -u GIT_DIR git -C ${human} push -q origin main; fi\nexec git "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    const racing = new GitRunner({ masker: new SecretMasker(), gitPath: wrapper });
    const raced = await f.run({ git: racing });
    expect(raced.status).toBe('failed');
    // A fast-forward goes out without force, so the server itself refuses it ('fetch first').
    expect(raced.outcomes[0]?.detail).toMatch(/fetch first|stale info/);
    // The human's commits survived; the next run fast-forwards GitHub to the merge.
    expect((await f.refs(f.gl))['refs/heads/main']).toBe(merged);
    const next = await f.run();
    expect(next.status).toBe('synced');
    expect((await f.refs(f.gh))['refs/heads/main']).toBe(merged);
    expect([ghTip, humanTip]).not.toContain(merged);
  });
});
