import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { GitRunner } from './git-runner.js';

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
    await mkdir(dirname(worktree), { recursive: true });
    await git.run(['clone', '-q', '--no-checkout', '--', gitDir, worktree]);
    await git.run(['checkout', '-q', '-B', branch, tip], { cwd: worktree });
    return { status: 'created', branch, tip, detail: `checked out ${branch} at ${tip.slice(0, 12)}` };
  }
  const isCheckout = await exists(join(worktree, '.git'));
  const top = isCheckout
    ? await git.run(['rev-parse', '--show-toplevel'], { cwd: worktree }).catch(() => undefined)
    : undefined;
  if (!top) {
    return { status: 'not-a-checkout', detail: `${worktree} exists but is not a git checkout; left alone` };
  }

  const head = (
    await git.run(['rev-parse', '-q', '--verify', 'HEAD'], { cwd: worktree, okExitCodes: [1] })
  ).stdout.trim();
  const current = (
    await git.run(['symbolic-ref', '-q', '--short', 'HEAD'], { cwd: worktree, okExitCodes: [1] })
  ).stdout.trim();
  if (head === tip && current === branch) return { status: 'unchanged', branch, tip, detail: 'at the tip already' };

  const dirty = (
    await git.run(['status', '--porcelain=v1', '--untracked-files=normal'], { cwd: worktree })
  ).stdout.trim();
  if (dirty !== '') {
    return {
      status: 'kept-local-changes',
      detail: `the checkout has local changes (${dirty.split('\n').length} path(s)); left as it is, the mirror is up to date`,
    };
  }
  if (head !== '') {
    const known = await git.run(['cat-file', '-e', `${head}^{commit}`], { ...inMirror, okExitCodes: [1, 128] });
    if (known.exitCode !== 0) {
      return {
        status: 'kept-local-changes',
        detail: `the checkout is at ${head.slice(0, 12)}, a commit the mirror does not have (a local commit); left as it is`,
      };
    }
  }
  // Straight from the mirror by path; `+` because a force-pushed tip is not a fast-forward.
  await git.run(['fetch', '-q', '--no-tags', '--', gitDir, `+refs/heads/${branch}:refs/remotes/origin/${branch}`], {
    cwd: worktree,
  });
  // The tree is clean and HEAD holds nothing the mirror lacks, so moving the branch loses nothing.
  await git.run(['checkout', '-q', '-B', branch, tip], { cwd: worktree });
  return {
    status: 'updated',
    branch,
    tip,
    detail: `moved ${branch} to ${tip.slice(0, 12)}${head ? ` (was ${head.slice(0, 12)})` : ''}`,
  };
}
