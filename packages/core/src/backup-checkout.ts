import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { clearStaleGitLocks, createAtomically } from './crash-recovery.js';
import type { GitRunner } from './git-runner.js';
import { silentLogger, type Logger } from './logger.js';

/**
 * `--checkout`: a working tree beside each mirror (`<repo>/` next to `<repo>.git/`) showing the
 * default branch at its current tip. It is a clone *of the local mirror* (origin is a local path,
 * so no credentials are ever involved) and follows force pushes: it is moved to the new tip, not
 * merged or pulled.
 *
 * It is a mirror checkout, not a place to work. Still, refbridge never throws work away silently:
 * if the tree has uncommitted changes or untracked files, or HEAD is at a commit the mirror does
 * not have (a local commit), the checkout is left exactly as it is and reported; the mirror itself
 * is always updated. Clean it up (or delete the directory) and the next run moves it again.
 */

export type CheckoutStatus =
  'created' | 'updated' | 'unchanged' | 'kept-local-changes' | 'no-branch' | 'not-a-checkout';

export interface CheckoutResult {
  status: CheckoutStatus;
  branch?: string;
  tip?: string;
  detail: string;
}

export interface UpdateCheckoutOptions {
  git: GitRunner;
  gitDir: string;
  worktree: string;
  /** The upstream default branch; null for an empty repo. */
  branch: string | null;
  logger?: Logger;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function updateCheckout(options: UpdateCheckoutOptions): Promise<CheckoutResult> {
  const { git, gitDir, worktree, branch } = options;
  const inMirror = { cwd: gitDir, env: { GIT_DIR: gitDir } };
  if (branch === null) return { status: 'no-branch', detail: 'the repository is empty; no checkout' };
  const tipResult = await git.run(['rev-parse', '--verify', '-q', `refs/heads/${branch}^{commit}`], {
    ...inMirror,
    okExitCodes: [1],
  });
  const tip = tipResult.stdout.trim();
  if (tipResult.exitCode !== 0 || tip === '') {
    return { status: 'no-branch', detail: `the mirror has no branch ${branch}; no checkout` };
  }

  if (!(await exists(worktree))) {
    // Built aside and renamed into place: a clone killed before its checkout would otherwise look
    // like a tree whose files were all deleted, and be "kept" as local changes on every run.
    await createAtomically(worktree, async (tmp) => {
      await git.run(['clone', '-q', '--no-checkout', '--', gitDir, tmp]);
      await git.run(['checkout', '-q', '-B', branch, tip], { cwd: tmp });
    });
    return { status: 'created', branch, tip, detail: `checked out ${branch} at ${tip.slice(0, 12)}` };
  }
  const isCheckout = await exists(join(worktree, '.git'));
  const top = isCheckout
    ? await git.run(['rev-parse', '--show-toplevel'], { cwd: worktree }).catch(() => undefined)
    : undefined;
  if (!top) {
    return { status: 'not-a-checkout', detail: `${worktree} exists but is not a git checkout; left alone` };
  }
  // A checkout killed halfway leaves .git/index.lock, which would refuse every later checkout.
  await clearStaleGitLocks(join(worktree, '.git'), options.logger ?? silentLogger, worktree, worktree);

  const head = (
    await git.run(['rev-parse', '-q', '--verify', 'HEAD'], { cwd: worktree, okExitCodes: [1] })
  ).stdout.trim();
  const current = (
    await git.run(['symbolic-ref', '-q', '--short', 'HEAD'], { cwd: worktree, okExitCodes: [1] })
  ).stdout.trim();
  if (head === tip && current === branch) return { status: 'unchanged', branch, tip, detail: 'at the tip already' };

  if (head !== '') {
    const known = await git.run(['cat-file', '-e', `${head}^{commit}`], { ...inMirror, okExitCodes: [1, 128] });
    if (known.exitCode !== 0) {
      return {
        status: 'kept-local-changes',
        detail: `the checkout is at ${head.slice(0, 12)}, a commit the mirror does not have (a local commit); left as it is`,
      };
    }
  }
  // What the last run fetched to move to: if it was killed during that move, the tree holds its content.
  const previous = (
    await git.run(['rev-parse', '-q', '--verify', `refs/remotes/origin/${branch}^{commit}`], {
      cwd: worktree,
      okExitCodes: [1],
    })
  ).stdout.trim();
  // Straight from the mirror by path; `+` because a force-pushed tip is not a fast-forward. First,
  // because telling local changes from an interrupted move needs the tip's tree here.
  await git.run(['fetch', '-q', '--no-tags', '--', gitDir, `+refs/heads/${branch}:refs/remotes/origin/${branch}`], {
    cwd: worktree,
  });
  const dirty = (
    await git.run(['status', '--porcelain=v1', '--untracked-files=normal'], { cwd: worktree })
  ).stdout.trim();
  // A refbridge run killed in the middle of moving the checkout leaves files (and an index) that
  // already hold the content of the tip it was moving to; finishing the move loses nothing (that
  // content is in the mirror). Anything else is kept.
  const interrupted =
    dirty !== '' &&
    ((await onlyTowards(git, worktree, tip)) ||
      (previous !== '' && previous !== head && (await onlyTowards(git, worktree, previous))));
  if (dirty !== '' && !interrupted) {
    return {
      status: 'kept-local-changes',
      detail: `the checkout has local changes (${dirty.split('\n').length} path(s)); left as it is, the mirror is up to date`,
    };
  }
  // The tree is clean (or holds only the tip's own content) and HEAD holds nothing the mirror
  // lacks, so moving the branch loses nothing.
  await git.run(['checkout', '-q', ...(interrupted ? ['-f'] : []), '-B', branch, tip], { cwd: worktree });
  return {
    status: 'updated',
    branch,
    tip,
    detail: `moved ${branch} to ${tip.slice(0, 12)}${head ? ` (was ${head.slice(0, 12)})` : ''}`,
  };
}

/**
 * Whether every path where the checkout differs from its HEAD (staged, changed, added, deleted,
 * untracked) has exactly the content `tip` has there: the state a killed `git checkout` of `tip`
 * leaves. Any doubt (a path git cannot hash, a name with a newline) answers no.
 */
async function onlyTowards(git: GitRunner, worktree: string, tip: string): Promise<boolean> {
  try {
    const status = (
      await git.run(['status', '--porcelain=v1', '-z', '--untracked-files=all', '--no-renames'], { cwd: worktree })
    ).stdout;
    const paths = status
      .split('\0')
      .filter((e) => e.length > 3)
      .map((e) => e.slice(3));
    if (paths.some((p) => p.includes('\n'))) return false;
    const blobs = new Map<string, string>();
    for (const entry of (await git.run(['ls-tree', '-r', '-z', '--full-tree', tip], { cwd: worktree })).stdout.split(
      '\0',
    )) {
      const m = /^\d+ blob ([0-9a-f]+)\t([\s\S]+)$/.exec(entry);
      if (m?.[1] && m[2]) blobs.set(m[2], m[1]);
    }
    const present: string[] = [];
    for (const p of paths) {
      if (await exists(join(worktree, p))) present.push(p);
      else if (blobs.has(p)) return false; // deleted here, but the tip has it
    }
    if (present.length === 0) return true;
    const hashes = (
      await git.run(['hash-object', '--stdin-paths'], { cwd: worktree, input: present.join('\n') + '\n' })
    ).stdout
      .trim()
      .split('\n');
    return present.every((p, i) => blobs.get(p) === hashes[i]);
  } catch {
    return false;
  }
}
