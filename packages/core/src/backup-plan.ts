import type { BackupRepoState } from './backup-state.js';
import type { PlatformName } from './forge.js';

/**
 * Decides, from the listing and the state file alone, what a backup run does with one repo. The
 * point is that an unchanged repo costs no git traffic at all, while a changed one is never missed:
 *
 *  - no mirror yet                         -> clone
 *  - no state, or the last attempt failed  -> fetch (a fetch of an up-to-date mirror transfers nothing)
 *  - `pushed_at` differs from the recorded -> fetch
 *  - unchanged and settled                 -> skip, no git at all
 *  - unchanged but not settled             -> verify (one ls-remote; fetch only if a tip moved), see below
 *
 * "Settled" means refbridge looked at the repo (fetch or ls-remote) at least `window` after its
 * recorded activity time, so no push can hide behind an unchanged timestamp:
 *  - GitHub's `pushed_at` moves on every push but has 1-second resolution, and listings are cached
 *    for up to 60 s; a push in the same second as our fetch keeps the old value. One confirmation
 *    once the window has passed closes that gap, and costs one ls-remote per burst of pushes.
 *  - GitLab's `last_activity_at` moves at most once an hour (GitLab throttles it), so pushes within
 *    the hour after an update do not show. Within the window such a project is confirmed on every
 *    run; with the default window of 60 minutes that covers GitLab's throttle exactly.
 * `--window 0` trusts the timestamps completely (Holocron-like, cheapest, can miss those cases).
 */

export type SyncDecision =
  | { action: 'clone'; reason: string }
  | { action: 'fetch'; reason: string }
  | { action: 'verify'; reason: string }
  | { action: 'skip'; reason: string; verifyAfter?: string };

export interface PlanRepoInput {
  platform: PlatformName;
  /** `pushed_at` / `last_activity_at` from this run's listing. */
  listedPushedAt: string | null;
  entry: BackupRepoState | undefined;
  mirrorExists: boolean;
  now: Date;
  windowMs: number;
}

/** Timestamps from the APIs have whole seconds; anything inside the same second is ambiguous. */
const RESOLUTION_MS = 1000;

function time(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

/** The moment after which a look at the repo proves its recorded activity time tells the whole story. */
export function settleTime(pushedAt: string | null, windowMs: number): number {
  return (time(pushedAt) ?? 0) + windowMs + RESOLUTION_MS;
}

export function isSettled(entry: Pick<BackupRepoState, 'pushedAt' | 'verifiedAt'>, windowMs: number): boolean {
  const verified = time(entry.verifiedAt);
  return verified !== undefined && verified >= settleTime(entry.pushedAt, windowMs);
}

export function planRepoSync(input: PlanRepoInput): SyncDecision {
  const { entry } = input;
  if (!input.mirrorExists) return { action: 'clone', reason: 'no mirror yet' };
  if (!entry) return { action: 'fetch', reason: 'mirror exists but the state has no record of it' };
  if (entry.lastError !== undefined) return { action: 'fetch', reason: 'the last attempt failed' };
  if (input.listedPushedAt !== entry.pushedAt) {
    return {
      action: 'fetch',
      reason: `${input.platform === 'gitlab' ? 'last_activity_at' : 'pushed_at'} moved: ${entry.pushedAt ?? '(none)'} -> ${input.listedPushedAt ?? '(none)'}`,
    };
  }
  if (isSettled(entry, input.windowMs)) return { action: 'skip', reason: 'unchanged' };
  const due = settleTime(entry.pushedAt, input.windowMs);
  if (input.platform === 'gitlab') {
    return {
      action: 'verify',
      reason: 'recent activity: GitLab updates last_activity_at at most hourly, so the tips are confirmed',
    };
  }
  if (input.now.getTime() >= due) {
    return { action: 'verify', reason: 'pushed shortly before the last fetch: confirming the tips once' };
  }
  return { action: 'skip', reason: 'unchanged', verifyAfter: new Date(due).toISOString() };
}

/** Branch and tag maps equal? */
export function sameTips(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const ka = Object.keys(a ?? {});
  if (ka.length !== Object.keys(b ?? {}).length) return false;
  return ka.every((k) => a?.[k] === b?.[k]);
}
