import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GitRunner } from '../src/git-runner.js';
import type { GitResult, GitRunOptions } from '../src/git-runner.js';
import { SecretMasker } from '../src/secret-masker.js';
import type { Logger } from '../src/logger.js';
import { mirrorRef, PushRejectedError, UnsupportedRefError } from '../src/mirror-ref.js';
import { isMirroredRef, listRemoteRefEntries, listRemoteRefs, matchesRefPattern } from '../src/remote-refs.js';
import type { MirrorRefOptions, MirrorResult } from '../src/mirror-ref.js';
import { git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';

const ZERO = '0'.repeat(40);
const CANARY = 'canary-token-5d1e9b7c3a';
const HISTORY = 200;
const STATIC_FILES = 20;

/** One commit per entry; the first also adds STATIC_FILES files, so a snapshot is far bigger than a change. */
function fastImportStream(ref: string, from: string | undefined, messages: readonly string[], at: number): string {
  const data = (text: string): string => `data ${Buffer.byteLength(text)}\n${text}\n`;
  let s = '';
  messages.forEach((message, i) => {
    s += `commit ${ref}\n`;
    s += `committer Test <test@example.com> ${at + i} +0000\n`;
    s += data(message);
    if (i === 0 && from) s += `from ${from}\n`;
    if (i === 0 && !from) {
      for (let f = 0; f < STATIC_FILES; f++) s += `M 644 inline static/file-${f}.txt\n${data(`static ${f}\n`)}`;
    }
    s += `M 644 inline log.txt\n${data(`${message}\n`)}`;
  });
  return s;
}

/** Adds commits to `ref` of a (bare) repo with git fast-import; returns their ids, oldest first. */
async function addCommits(repo: string, ref: string, from: string | undefined, messages: string[]): Promise<string[]> {
  const at = 1_700_000_000 + Math.floor(Math.random() * 1_000_000);
  await execa('git', ['fast-import', '--quiet', '--force'], {
    cwd: repo,
    input: fastImportStream(ref, from, messages, at),
  });
  const ids = (await git(repo, ['rev-list', '--reverse', '-n', String(messages.length), ref])).split('\n');
  return ids;
}

/**
 * From now on the repo unpacks every push into loose objects, so counting objects counts exactly
 * what arrived (a kept pack would also count the bases git appends to complete a thin pack).
 * Seeding happens before: unpacking hundreds of objects one file each is slow.
 */
async function startCounting(repo: string): Promise<number> {
  await git(repo, ['config', 'receive.unpackLimit', '1000000']);
  return objectCount(repo);
}

async function objectCount(repo: string): Promise<number> {
  const out = await git(repo, ['count-objects', '-v']);
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(out)?.[1] ?? NaN);
  return field('count') + field('in-pack');
}

async function refValue(repo: string, ref: string): Promise<string | undefined> {
  const r = await execa('git', ['rev-parse', '--verify', '--quiet', ref], { cwd: repo, reject: false });
  return r.exitCode === 0 ? String(r.stdout).trim() : undefined;
}

/** A pre-receive hook that records every push it sees (and can refuse with a message). */
async function installHook(bare: string, body: string): Promise<void> {
  const hook = join(bare, 'hooks', 'pre-receive');
  await writeFile(hook, `#!/bin/sh\n${body}\n`);
  await chmod(hook, 0o755);
}

/** Runs git like the product does, but lets a test act right before the first push (a racing pusher). */
class RacingRunner extends GitRunner {
  private fired = false;
  constructor(private readonly beforeFirstPush: () => Promise<void>) {
    super({ masker: new SecretMasker() });
  }
  override async run(args: readonly string[], options?: GitRunOptions): Promise<GitResult> {
    if (args[0] === 'push' && !this.fired) {
      this.fired = true;
      await this.beforeFirstPush();
    }
    return super.run(args, options);
  }
}

describe('mirrorRef with real repositories', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let template: string;
  let C: string[]; // C[1]..C[HISTORY] on main of the template source
  let n = 0;
  const runner = new GitRunner({ masker: new SecretMasker() });

  interface Repos {
    dir: string;
    source: string;
    sourceUrl: string;
    target: string;
    targetUrl: string;
    checkout: string;
    log: string[];
  }

  beforeAll(async () => {
    tmp = await tempDir('refbridge-mirror-');
    template = join(tmp.path, 'template.git');
    await initRepo(template, { bare: true });
    const ids = await addCommits(
      template,
      'refs/heads/main',
      undefined,
      Array.from({ length: HISTORY }, (_, i) => `c${i + 1}`),
    );
    C = ['', ...ids];
    // The CI checkout asks for commits by id; GitHub and GitLab allow that.
    await git(template, ['config', 'uploadpack.allowReachableSHA1InWant', 'true']);
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  /** A fresh source (copy of the template), an empty bare target, and no checkout yet. */
  async function repos(): Promise<Repos> {
    const dir = join(tmp.path, `case-${++n}`);
    await mkdir(dir);
    const source = join(dir, 'source.git');
    await cp(template, source, { recursive: true });
    const target = join(dir, 'target.git');
    await initRepo(target, { bare: true });
    return {
      dir,
      source,
      sourceUrl: `file://${source}`,
      target,
      targetUrl: `file://${target}`,
      checkout: join(dir, 'checkout'),
      log: [],
    };
  }

  async function seed(r: Repos, sha: string, ref = 'refs/heads/main'): Promise<void> {
    await git(r.source, ['push', '-q', r.targetUrl, `${sha}:${ref}`]);
  }

  /** The runner's view: a depth-1 clone of one branch or tag, as actions/checkout makes it. */
  async function checkout(r: Repos, name: string, depth = 1): Promise<void> {
    await git(r.dir, ['clone', '-q', '--no-tags', `--depth=${depth}`, '--branch', name, r.sourceUrl, r.checkout]);
  }

  function logger(r: Repos): Logger {
    const add = (level: string) => (m: string) => void r.log.push(`${level}: ${m}`);
    return { debug: add('debug'), info: add('info'), warn: add('warn'), error: add('error') };
  }

  function mirror(r: Repos, options: Partial<MirrorRefOptions> & { after: string }): Promise<MirrorResult> {
    return mirrorRef({
      git: runner,
      logger: logger(r),
      workdir: r.checkout,
      source: { url: r.sourceUrl },
      target: { url: r.targetUrl },
      ref: 'refs/heads/main',
      deletions: 'propagate',
      force: false,
      ...options,
    });
  }

  async function pushMarker(r: Repos): Promise<string> {
    const marker = join(r.dir, 'pushed');
    await installHook(r.target, `cat >> "${marker}"`);
    return marker;
  }

  async function leftovers(r: Repos): Promise<string> {
    return git(r.checkout, ['for-each-ref', 'refs/refbridge']);
  }

  it('fast-forwards several commits from a depth-1 checkout, sending only the new objects', async () => {
    const r = await repos();
    await seed(r, C[197]!);
    await checkout(r, 'main');
    const configBefore = await readFile(join(r.checkout, '.git', 'config'), 'utf8');
    const objectsBefore = await startCounting(r.target);

    const result = await mirror(r, { before: C[197]!, after: C[200]! });

    expect(result).toMatchObject({ result: 'pushed', targetBefore: C[197], targetAfter: C[200] });
    expect(await refValue(r.target, 'refs/heads/main')).toBe(C[200]);
    // Three commits, each with a commit, a root tree and one changed blob: 9 objects, not 600+.
    expect((await objectCount(r.target)) - objectsBefore).toBe(9);
    expect(result.fetchedDepth).toBeGreaterThanOrEqual(3);
    expect(result.fetchedDepth).toBeLessThanOrEqual(7);
    expect(result.unshallowed).toBeUndefined();
    expect(await readFile(join(r.checkout, '.git', 'config'), 'utf8')).toBe(configBefore);
    expect(await leftovers(r)).toBe('');
  });

  it('does nothing when the target already has the tip (ends CI bounce loops)', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    await checkout(r, 'main');
    const marker = await pushMarker(r);
    const shallowBefore = await readFile(join(r.checkout, '.git', 'shallow'), 'utf8');

    const result = await mirror(r, { before: C[199]!, after: C[200]! });

    expect(result).toMatchObject({ result: 'up-to-date', targetBefore: C[200], targetAfter: C[200] });
    expect(existsSync(marker)).toBe(false);
    expect(result.fetchedDepth).toBeUndefined();
    expect(await readFile(join(r.checkout, '.git', 'shallow'), 'utf8')).toBe(shallowBefore);
  });

  it('creates a new branch that carries new commits, connecting them to the target first', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    const [, f2] = await addCommits(r.source, 'refs/heads/feature', C[200], ['f1', 'f2']);
    await checkout(r, 'feature');
    const objectsBefore = await startCounting(r.target);

    const result = await mirror(r, { ref: 'refs/heads/feature', before: ZERO, after: f2! });

    expect(result).toMatchObject({ result: 'created', targetAfter: f2 });
    expect(result.targetBefore).toBeUndefined();
    expect(await refValue(r.target, 'refs/heads/feature')).toBe(f2);
    expect((await objectCount(r.target)) - objectsBefore).toBe(6);
    expect(result.unshallowed).toBeUndefined();
  });

  it('creates a branch forked from an old commit, completing history without sending all of it', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    const [g1] = await addCommits(r.source, 'refs/heads/old-fork', C[150], ['g1']);
    await checkout(r, 'old-fork');
    const objectsBefore = await startCounting(r.target);

    const result = await mirror(r, { ref: 'refs/heads/old-fork', after: g1! });

    expect(result.result).toBe('created');
    expect(await refValue(r.target, 'refs/heads/old-fork')).toBe(g1);
    expect((await objectCount(r.target)) - objectsBefore).toBe(3);
    expect(await git(r.target, ['rev-list', '--count', 'refs/heads/old-fork'])).toBe('151');
    expect(await leftovers(r)).toBe('');
  });

  it('seeds an empty target with the full history', async () => {
    const r = await repos();
    await checkout(r, 'main');

    const result = await mirror(r, { before: C[199]!, after: C[200]! });

    expect(result).toMatchObject({ result: 'created', unshallowed: true, targetAfter: C[200] });
    expect(await git(r.target, ['rev-list', '--count', 'refs/heads/main'])).toBe(String(HISTORY));
    expect(await git(r.target, ['fsck', '--connectivity-only', '--no-dangling'])).toBe('');
  });

  it('creates an annotated tag whose tag object is not in the checkout, then finds it in sync', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    await checkout(r, 'main');
    await git(r.source, ['tag', '-a', 'v1.0', '-m', 'release 1.0', C[200]!]);
    const tagObject = await git(r.source, ['rev-parse', 'refs/tags/v1.0']);
    expect(tagObject).not.toBe(C[200]);

    const result = await mirror(r, { ref: 'refs/tags/v1.0', before: ZERO, after: tagObject });

    expect(result).toMatchObject({ result: 'created', targetAfter: tagObject });
    expect(await refValue(r.target, 'refs/tags/v1.0')).toBe(tagObject);
    expect(await git(r.target, ['cat-file', '-t', tagObject])).toBe('tag');
    expect(await git(r.target, ['rev-parse', 'refs/tags/v1.0^{commit}'])).toBe(C[200]);

    const again = await mirror(r, { ref: 'refs/tags/v1.0', before: ZERO, after: tagObject });
    expect(again.result).toBe('up-to-date');
  });

  it('creates a lightweight tag on an older commit without fetching history', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    await git(r.source, ['tag', 'old', C[150]!]);
    await checkout(r, 'old');
    const objectsBefore = await startCounting(r.target);

    const result = await mirror(r, { ref: 'refs/tags/old', before: ZERO, after: C[150]! });

    expect(result).toMatchObject({ result: 'created', targetAfter: C[150] });
    expect(await refValue(r.target, 'refs/tags/old')).toBe(C[150]);
    expect(result.fetchedDepth).toBeUndefined();
    expect(result.unshallowed).toBeUndefined();
    // The target had the commit: at most a re-sent snapshot (which the receiver drops), no history.
    expect((await objectCount(r.target)) - objectsBefore).toBe(0);
  });

  it('creates a tag on commits the target does not have yet, after a refused shallow push', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    const [, t2] = await addCommits(r.source, 'refs/heads/next', C[200], ['t1', 't2']);
    await git(r.source, ['tag', '-a', 'v2.0-rc', '-m', 'rc', t2!]);
    const tagObject = await git(r.source, ['rev-parse', 'refs/tags/v2.0-rc']);
    await checkout(r, 'v2.0-rc');
    const objectsBefore = await startCounting(r.target);

    const result = await mirror(r, { ref: 'refs/tags/v2.0-rc', before: ZERO, after: tagObject });

    expect(result).toMatchObject({ result: 'created', targetAfter: tagObject });
    expect(result.unshallowed).toBeUndefined();
    expect(r.log.join('\n')).toContain('refused a shallow push');
    expect(await git(r.target, ['rev-parse', 'refs/tags/v2.0-rc^{commit}'])).toBe(t2);
    // Two commits (commit, tree, blob each) and the tag object.
    expect((await objectCount(r.target)) - objectsBefore).toBe(7);
  });

  it('refuses to move a tag that differs on the target unless forced from the previous value', async () => {
    const r = await repos();
    await seed(r, C[190]!, 'refs/tags/moving');
    await seed(r, C[200]!);
    await checkout(r, 'main');
    const diverged = await mirror(r, { ref: 'refs/tags/moving', before: C[190]!, after: C[200]! });
    expect(diverged.result).toBe('diverged');
    expect(await refValue(r.target, 'refs/tags/moving')).toBe(C[190]);

    const forced = await mirror(r, { ref: 'refs/tags/moving', before: C[190]!, after: C[200]!, force: true });
    expect(forced).toMatchObject({ result: 'pushed', forced: true });
    expect(await refValue(r.target, 'refs/tags/moving')).toBe(C[200]);
  });

  it('propagates a branch deletion, or keeps the branch under deletions: ignore', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    await seed(r, C[190]!, 'refs/heads/feature');
    await checkout(r, 'main');
    const marker = await pushMarker(r);

    const ignored = await mirror(r, { ref: 'refs/heads/feature', before: C[190]!, after: ZERO, deletions: 'ignore' });
    expect(ignored).toMatchObject({ result: 'skipped', targetBefore: C[190] });
    expect(await refValue(r.target, 'refs/heads/feature')).toBe(C[190]);
    expect(existsSync(marker)).toBe(false);

    const deleted = await mirror(r, { ref: 'refs/heads/feature', before: C[190]!, after: ZERO });
    expect(deleted).toMatchObject({ result: 'deleted', targetBefore: C[190] });
    expect(deleted.targetAfter).toBeUndefined();
    expect(await refValue(r.target, 'refs/heads/feature')).toBeUndefined();
    expect(await refValue(r.target, 'refs/heads/main')).toBe(C[200]);

    const again = await mirror(r, { ref: 'refs/heads/feature', before: C[190]!, after: ZERO });
    expect(again.result).toBe('up-to-date');
  });

  it('does not delete a branch the target moved past the deleted tip, unless forced', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    await seed(r, C[195]!, 'refs/heads/feature');
    await checkout(r, 'main');

    const kept = await mirror(r, { ref: 'refs/heads/feature', before: C[190]!, after: ZERO });
    expect(kept.result).toBe('diverged');
    expect(kept.repair).toContain(`--force-with-lease=refs/heads/feature:${C[195]}`);
    expect(await refValue(r.target, 'refs/heads/feature')).toBe(C[195]);

    const forced = await mirror(r, { ref: 'refs/heads/feature', before: C[190]!, after: ZERO, force: true });
    expect(forced.result).toBe('deleted');
    expect(await refValue(r.target, 'refs/heads/feature')).toBeUndefined();
  });

  it('reports a diverged target with both tips, the merge base and a repair, and leaves it alone', async () => {
    const r = await repos();
    await seed(r, C[197]!);
    const [d] = await addCommits(r.target, 'refs/heads/main', C[197], ['pushed to the target only']);
    await checkout(r, 'main');
    const marker = await pushMarker(r);

    // Two doubling rounds, then the complete history: the target's tip is not in it.
    const credentials = (url: string) => [{ url, username: 'oauth2', token: CANARY }];
    const result = await mirror(r, {
      before: C[197]!,
      after: C[200]!,
      pair: 'acme/app',
      maxDeepenRounds: 2,
      source: { url: r.sourceUrl, credentials: credentials(r.sourceUrl) },
      target: { url: r.targetUrl, credentials: credentials(r.targetUrl) },
    });
    // Credentials travel only in git's environment: never in results, logs or the checkout's config.
    expect(JSON.stringify(result) + r.log.join('\n')).not.toContain(CANARY);
    expect(await readFile(join(r.checkout, '.git', 'config'), 'utf8')).not.toContain(CANARY);

    expect(result).toMatchObject({ result: 'diverged', targetBefore: d, mergeBase: C[197], unshallowed: true });
    expect(result.message).toContain(C[200]);
    expect(result.message).toContain(d);
    expect(result.message).toContain(`merge base: ${C[197]}`);
    expect(result.repair).toContain('refbridge sync --pair acme/app');
    expect(result.repair).toContain(
      `git push --force-with-lease=refs/heads/main:${d} ${r.targetUrl} ${C[200]}:refs/heads/main`,
    );
    expect(await refValue(r.target, 'refs/heads/main')).toBe(d);
    expect(existsSync(marker)).toBe(false);
    expect(await leftovers(r)).toBe('');
  });

  it('with force, rewrites the target when it still has the previous tip', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    // The source's main is amended: C200 is replaced by a sibling on top of C199.
    const [amended] = await addCommits(r.source, 'refs/heads/main', C[199], ['c200, amended']);
    await checkout(r, 'main');
    const objectsBefore = await startCounting(r.target);

    const result = await mirror(r, { before: C[200]!, after: amended!, force: true });

    expect(result).toMatchObject({ result: 'pushed', forced: true, targetBefore: C[200], targetAfter: amended });
    expect(await refValue(r.target, 'refs/heads/main')).toBe(amended);
    expect((await objectCount(r.target)) - objectsBefore).toBeLessThanOrEqual(3);
    expect(result.unshallowed).toBeUndefined();
  });

  it('with force and a small deepening bound, pushes the rewrite without fetching all history', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    const [amended] = await addCommits(r.source, 'refs/heads/main', C[199], ['c200, amended']);
    await checkout(r, 'main');

    const result = await mirror(r, { before: C[200]!, after: amended!, force: true, maxDeepenRounds: 2 });

    expect(result).toMatchObject({ result: 'pushed', forced: true, fetchedDepth: 3 });
    expect(result.unshallowed).toBeUndefined();
    expect(await refValue(r.target, 'refs/heads/main')).toBe(amended);
    expect(await git(r.checkout, ['rev-list', '--count', 'HEAD'])).toBe('4');
  });

  it('with force, still refuses when the target is not at the previous tip', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    const [amended] = await addCommits(r.source, 'refs/heads/main', C[199], ['c200, amended']);
    await checkout(r, 'main');

    // The event says the source was at C198 before; the target has C200, which the source never had then.
    const result = await mirror(r, { before: C[198]!, after: amended!, force: true, maxDeepenRounds: 2 });

    expect(result.result).toBe('diverged');
    expect(result.message).toContain('force does not apply');
    expect(await refValue(r.target, 'refs/heads/main')).toBe(C[200]);
  });

  it('skips when the target is already ahead of the source', async () => {
    const r = await repos();
    await seed(r, C[200]!);
    await git(r.source, ['update-ref', 'refs/heads/main', C[198]!]);
    await checkout(r, 'main');
    const marker = await pushMarker(r);

    const result = await mirror(r, { before: C[197]!, after: C[198]!, maxDeepenRounds: 2 });

    expect(result).toMatchObject({ result: 'skipped', targetBefore: C[200], unshallowed: true });
    expect(await refValue(r.target, 'refs/heads/main')).toBe(C[200]);
    expect(existsSync(marker)).toBe(false);
    expect(await leftovers(r)).toBe('');
  });

  it('refuses hidden refs, HEAD and short names before touching anything', async () => {
    const r = await repos();
    await checkout(r, 'main');
    const marker = await pushMarker(r);
    const refs = [
      'HEAD',
      'refs/pull/1/head',
      'refs/merge-requests/3/head',
      'refs/remotes/origin/main',
      'main',
      'refs/heads/a..b',
    ];
    for (const ref of refs) {
      const error = await mirror(r, { ref, after: C[200]! }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnsupportedRefError);
      expect((error as UnsupportedRefError).describe()).toMatch(
        ref === 'main' ? /refs\/heads\/main/ : /refs\/heads\/\*/,
      );
    }
    expect(await git(r.target, ['for-each-ref'])).toBe('');
    expect(existsSync(marker)).toBe(false);
  });

  it('fails with the hook message when a server-side hook rejects the push', async () => {
    const r = await repos();
    await seed(r, C[199]!);
    await checkout(r, 'main');
    await installHook(
      r.target,
      'echo "GitLab: You are not allowed to force push code to a protected branch on this project." >&2\nexit 1',
    );

    const error = await mirror(r, { before: C[199]!, after: C[200]! }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PushRejectedError);
    const rejected = error as PushRejectedError;
    expect(rejected.reason).toBe('pre-receive hook declined');
    expect(rejected.message).toContain('You are not allowed to force push code to a protected branch on this project.');
    expect(rejected.hint).toMatch(/protects refs\/heads\/main/);
    expect(await refValue(r.target, 'refs/heads/main')).toBe(C[199]);
  });

  it('sends push options', async () => {
    const r = await repos();
    await seed(r, C[199]!);
    await checkout(r, 'main');
    await git(r.target, ['config', 'receive.advertisePushOptions', 'true']);
    const seen = join(r.dir, 'options');
    await installHook(r.target, `echo "$GIT_PUSH_OPTION_COUNT $GIT_PUSH_OPTION_0 $GIT_PUSH_OPTION_1" > "${seen}"`);

    await mirror(r, { before: C[199]!, after: C[200]!, pushOptions: ['ci.skip', 'ci.variable=A=1'] });

    expect((await readFile(seen, 'utf8')).trim()).toBe('2 ci.skip ci.variable=A=1');
  });

  it('rejects, and does not overwrite, a push that lands on the target between ls-remote and push', async () => {
    const r = await repos();
    await seed(r, C[197]!);
    await checkout(r, 'main');
    const racer = new RacingRunner(() => seed(r, C[198]!));

    const error = await mirror(r, { git: racer, before: C[197]!, after: C[200]! }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PushRejectedError);
    expect((error as PushRejectedError).reason).toBe('stale info');
    expect((error as PushRejectedError).hint).toMatch(/changed on the target/);
    expect(await refValue(r.target, 'refs/heads/main')).toBe(C[198]);
  });

  it('treats another run having pushed the same tip meanwhile as up to date', async () => {
    const r = await repos();
    await seed(r, C[197]!);
    await checkout(r, 'main');
    const racer = new RacingRunner(() => seed(r, C[200]!));

    const result = await mirror(r, { git: racer, before: C[197]!, after: C[200]! });

    expect(result).toMatchObject({ result: 'up-to-date', targetAfter: C[200] });
  });

  it('plans without fetching or pushing in a dry run', async () => {
    const r = await repos();
    await seed(r, C[197]!);
    await checkout(r, 'main');
    const marker = await pushMarker(r);
    const shallowBefore = await readFile(join(r.checkout, '.git', 'shallow'), 'utf8');

    const result = await mirror(r, { before: C[197]!, after: C[200]!, dryRun: true });

    expect(result).toMatchObject({ result: 'pushed', dryRun: true, targetBefore: C[197], targetAfter: C[200] });
    expect(result.message).toMatch(/^would /);
    expect(await refValue(r.target, 'refs/heads/main')).toBe(C[197]);
    expect(existsSync(marker)).toBe(false);
    expect(await readFile(join(r.checkout, '.git', 'shallow'), 'utf8')).toBe(shallowBefore);
  });

  describe('listRemoteRefs', () => {
    let url: string;
    let tagObject: string;

    beforeAll(async () => {
      const r = await repos();
      url = r.targetUrl;
      await seed(r, C[200]!);
      await seed(r, C[100]!, 'refs/heads/release/1.x');
      await seed(r, C[150]!, 'refs/pull/7/head');
      await seed(r, C[150]!, 'refs/merge-requests/7/head');
      await git(r.source, ['tag', '-a', 'v1.0', '-m', 'v1.0', C[120]!]);
      await git(r.source, ['tag', 'light', C[110]!]);
      tagObject = await git(r.source, ['rev-parse', 'refs/tags/v1.0']);
      await git(r.source, ['push', '-q', url, 'refs/tags/v1.0', 'refs/tags/light']);
    });

    it('returns branches and tags only, by default', async () => {
      const refs = await listRemoteRefs(runner, url);
      expect(Object.fromEntries(refs)).toEqual({
        'refs/heads/main': C[200],
        'refs/heads/release/1.x': C[100],
        'refs/tags/light': C[110],
        'refs/tags/v1.0': tagObject,
      });
    });

    it('returns hidden refs and HEAD only when a pattern asks for them', async () => {
      const pulls = await listRemoteRefs(runner, url, { patterns: ['refs/pull/*'] });
      expect([...pulls.keys()]).toEqual(['refs/pull/7/head']);
      const head = await listRemoteRefs(runner, url, { patterns: ['HEAD'] });
      expect(Object.fromEntries(head)).toEqual({ HEAD: C[200] });
    });

    it('matches exact names exactly (git itself matches name tails) and peels exact tags', async () => {
      expect([...(await listRemoteRefs(runner, url, { patterns: ['refs/heads/main'] })).keys()]).toEqual([
        'refs/heads/main',
      ]);
      // git ls-remote's own matching would also list refs/heads/release/1.x for "1.x"-style tails.
      expect(await listRemoteRefs(runner, url, { patterns: ['refs/heads/1.x'] })).toEqual(new Map());
      expect(await listRemoteRefEntries(runner, url, { patterns: ['refs/tags/v1.0'] })).toEqual([
        { ref: 'refs/tags/v1.0', sha: tagObject, peeled: C[120] },
      ]);
    });

    it('refuses patterns that are not full ref names', async () => {
      await expect(listRemoteRefs(runner, url, { patterns: ['main'] })).rejects.toThrow(/invalid ref pattern/);
      await expect(listRemoteRefs(runner, url, { patterns: ['--upload-pack=x'] })).rejects.toThrow(
        /invalid ref pattern/,
      );
    });

    it('pattern and ref name helpers', () => {
      expect(matchesRefPattern('refs/heads/a/b', 'refs/heads/*')).toBe(true);
      expect(matchesRefPattern('refs/heads/a.b', 'refs/heads/a*b')).toBe(true);
      expect(matchesRefPattern('refs/heads/axb', 'refs/heads/a.b')).toBe(false);
      expect(isMirroredRef('refs/heads/feature/x')).toBe(true);
      expect(isMirroredRef('refs/tags/v1.0')).toBe(true);
      for (const bad of [
        'HEAD',
        'refs/pull/1/head',
        'refs/heads/',
        'refs/heads/x.lock',
        'refs/heads/.x',
        'refs/heads/a b',
        'refs/heads/a\u0001',
      ]) {
        expect(isMirroredRef(bad)).toBe(false);
      }
    });
  });
});
