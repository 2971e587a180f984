/**
 * The sync planner: for every ref of a pair it compares GitHub's tip, GitLab's tip and the *base*
 * (the tip both sides last agreed on, stored by refbridge) and decides what to do. It is a pure
 * function: no git, no I/O. The one history question it needs, "does this commit contain that
 * one?", comes from a lookup the engine fills beforehand with `git merge-base --is-ancestor`;
 * `ancestryQuestions()` lists exactly the pairs it will ask.
 *
 * The decision (DESIGN.md, "The sync model"); every row also holds with github and gitlab swapped:
 *
 *   github vs base   gitlab vs base         action
 *   same             same                   nothing
 *   moved            same                   move gitlab to github's tip: fast-forward, or a
 *                                           rewrite that follows the rewrite policy
 *   deleted          same                   delete on gitlab (deletion policy)
 *   deleted          deleted                forget the base
 *   moved            moved to the same tip  record the new base
 *   moved            moved differently      diverged, unless one side only got further along the
 *                                           same line (then fast-forward the other, see `resolveDiffer`)
 *   deleted          moved                  diverged: deleting would lose the moved side's commits
 *   no base yet: equal -> record base; on one side only -> copy; one contains the other ->
 *   fast-forward; otherwise diverged
 *
 * What every rule below protects (DESIGN.md; reference/peers.md §5):
 * - Nothing is lost. A side only moves to a tip that contains its current tip, unless the policy
 *   allows a rewrite (the engine saves the old tip first). A side is only deleted while it is still
 *   at the base, so a deletion never takes commits the other side has not seen.
 * - Every push is `--force-with-lease=<ref>:<expected>`, so every update and delete carries the
 *   tip it was planned against; a race with a human push is then rejected instead of lost.
 * - "Unknown" ancestry (exit 128: objects missing, e.g. a shallow clone) is never read as
 *   "diverged" or "rewritten": the ref waits until the engine has fetched more history.
 * - Hidden refs (`refs/pull/*`, `refs/merge-requests/*`, `HEAD`, `refs/remotes/*`, ...) are never
 *   planned at all: servers refuse them and one refused ref can sink a whole push.
 */

import { RefbridgeError } from './errors.js';
import { globToRegExp } from './glob.js';

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

export type Side = 'github' | 'gitlab';

/** One ref as both sides and the stored base see it. A missing SHA means the ref does not exist there. */
export interface RefState {
  /** Full name: `refs/heads/<branch>` or `refs/tags/<tag>`; anything else is dropped. */
  ref: string;
  github?: string | undefined;
  gitlab?: string | undefined;
  /** The tip both sides last agreed on; missing before the first sync of this ref. */
  base?: string | undefined;
}

/**
 * How one pair is synced. Structurally the sync part of the configuration's pair policy, so that
 * can be passed as is.
 */
export interface SyncPolicy {
  /** `halt-ref`: only diverged refs wait. `halt-pair`: one diverged ref stops every push of the pair. */
  readonly divergence: 'halt-ref' | 'halt-pair';
  /** Whether a deletion on one side is repeated on the other. */
  readonly deletions: 'propagate' | 'ignore';
  /** Whether a force-push (or a moved tag) on one side is repeated on the other. */
  readonly rewrites: 'allow' | 'deny';
  /** Which refs are synced. Patterns are globs over short names (`release/*`, `v1.*`), see `matchRefGlob`. */
  readonly refs: {
    readonly branches: boolean;
    readonly tags: boolean;
    /** Empty means every ref (of the enabled kinds). */
    readonly include: readonly string[];
    /** Wins over `include`. */
    readonly exclude: readonly string[];
  };
}

/** `true`: the first commit is an ancestor of (or equal to) the second. `'unknown'`: git could not tell. */
export type AncestryAnswer = boolean | 'unknown';
export type Ancestry = (ancestor: string, descendant: string) => AncestryAnswer;
export type AncestryQuestion = readonly [ancestor: string, descendant: string];

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/** Both sides agree with the base (or the ref exists nowhere); `sha` is the agreed tip. */
export interface NoneAction {
  kind: 'none';
  ref: string;
  sha?: string;
}

/** Both sides already hold `sha`; only the stored base has to catch up. Changes no side. */
export interface RecordBaseAction {
  kind: 'record-base';
  ref: string;
  sha: string;
}

/**
 * Push `sha` to `to`. `expected` is `to`'s current tip, the lease of
 * `--force-with-lease=<ref>:<expected>`; undefined means the ref must not exist yet.
 * After the push succeeds the engine records `sha` as the base. For `rewrite` the engine saves the
 * old tip (`expected`) first.
 */
export interface UpdateAction {
  kind: 'update';
  ref: string;
  to: Side;
  sha: string;
  expected: string | undefined;
  mode: 'create' | 'fast-forward' | 'rewrite';
}

/** Delete the ref on `on`, leased on its current tip `expected` (which is the base). Then forget the base. */
export interface DeleteAction {
  kind: 'delete';
  ref: string;
  on: Side;
  expected: string;
}

/** The ref is gone on both sides; drop the stored base. Changes no side. */
export interface ForgetBaseAction {
  kind: 'forget-base';
  ref: string;
}

/** Both sides have commits the other lacks; neither is touched. Carries the tips for the report. */
export interface DivergedAction {
  kind: 'diverged';
  ref: string;
  github?: string;
  gitlab?: string;
  base?: string;
  reason: string;
}

/** Something should happen but the policy forbids it (a rewrite with `rewrites: deny`). */
export interface BlockedAction {
  kind: 'blocked';
  ref: string;
  reason: string;
}

/** Left alone on purpose: outside the ref selection, an ignored deletion, or a halted pair. */
export interface SkippedAction {
  kind: 'skipped';
  ref: string;
  reason: string;
}

/** Ancestry could not be decided; fetch the history of `need` and plan again. */
export interface UnknownAction {
  kind: 'unknown';
  ref: string;
  need: string[];
  reason: string;
}

export type RefAction =
  | NoneAction
  | RecordBaseAction
  | UpdateAction
  | DeleteAction
  | ForgetBaseAction
  | DivergedAction
  | BlockedAction
  | SkippedAction
  | UnknownAction;

export type RefActionKind = RefAction['kind'];

/** Every action kind, in the order reports list them. */
export const REF_ACTION_KINDS: readonly RefActionKind[] = [
  'none',
  'record-base',
  'update',
  'delete',
  'forget-base',
  'diverged',
  'blocked',
  'skipped',
  'unknown',
];

export interface SyncPlan {
  /** One action per syncable input ref, in input order; hidden refs have none. */
  actions: RefAction[];
  /** `halt-pair` was triggered: every update and delete of the pair became `skipped`. */
  halted: boolean;
}

export type PlanSummary = Record<RefActionKind, number>;

// ---------------------------------------------------------------------------------------------
// Which refs are planned
// ---------------------------------------------------------------------------------------------

export type SyncableRefKind = 'branch' | 'tag';

const BRANCH_PREFIX = 'refs/heads/';
const TAG_PREFIX = 'refs/tags/';

/** `branch` or `tag` for refs refbridge syncs; undefined for everything it must never push. */
export function syncableRefKind(ref: string): SyncableRefKind | undefined {
  // `ls-remote` prints peeled tags as `refs/tags/v1^{}`: a listing line, not a ref.
  if (ref.endsWith('^{}')) return undefined;
  if (ref.startsWith(BRANCH_PREFIX)) {
    const name = ref.slice(BRANCH_PREFIX.length);
    // A branch named HEAD is what pushing `refs/remotes/origin/*` creates; servers reject it.
    return name === '' || name === 'HEAD' ? undefined : 'branch';
  }
  if (ref.startsWith(TAG_PREFIX)) return ref.length > TAG_PREFIX.length ? 'tag' : undefined;
  return undefined;
}

/**
 * Glob over ref names in refbridge's one dialect (glob.ts: `*` within a segment, `**` across,
 * `?` one character). A pattern starting with `refs/` is matched
 * against the full name, so `refs/tags/v1.*` can select tags without also selecting a branch
 * `v1.x`; any other pattern is matched against the short name (`release/1.0`, `v1.2`).
 */
export function matchRefGlob(pattern: string, ref: string): boolean {
  return compileGlob(pattern)(ref);
}

function compileGlob(pattern: string): (ref: string) => boolean {
  const re = globToRegExp(pattern);
  const full = pattern.startsWith('refs/');
  return (ref) => re.test(full ? ref : shortRefName(ref));
}

function shortRefName(ref: string): string {
  if (ref.startsWith(BRANCH_PREFIX)) return ref.slice(BRANCH_PREFIX.length);
  if (ref.startsWith(TAG_PREFIX)) return ref.slice(TAG_PREFIX.length);
  return ref;
}

/** Why the selection leaves this syncable ref out, or undefined when it is selected. */
export function excludedBySelection(ref: string, selection: SyncPolicy['refs']): string | undefined {
  return compileSelection(selection)(ref);
}

function compileSelection(selection: SyncPolicy['refs']): (ref: string) => string | undefined {
  const include = selection.include.map(compileGlob);
  const exclude = selection.exclude.map((p) => ({ pattern: p, matches: compileGlob(p) }));
  return (ref) => {
    const kind = syncableRefKind(ref);
    if (kind === 'branch' && !selection.branches) return 'branches are not synced (refs.branches is false)';
    if (kind === 'tag' && !selection.tags) return 'tags are not synced (refs.tags is false)';
    const excluded = exclude.find((e) => e.matches(ref));
    if (excluded) return `excluded by refs.exclude pattern "${excluded.pattern}"`;
    if (include.length > 0 && !include.some((matches) => matches(ref))) {
      return 'not matched by any refs.include pattern';
    }
    return undefined;
  };
}

// ---------------------------------------------------------------------------------------------
// Step 1: where does each side stand relative to the base? (SHAs only, no history yet)
// ---------------------------------------------------------------------------------------------

type Situation =
  /** Both sides at the base, or the ref exists nowhere. */
  | { type: 'in-sync'; sha: string | undefined }
  /** Both sides at one tip the base does not record yet. */
  | { type: 'agreed'; sha: string }
  /** Deleted on both sides since the base. */
  | { type: 'gone' }
  /** `side` moved from the base to `to`; the other side is still at the base. */
  | { type: 'moved'; side: Side; from: string; to: string }
  /** `side` deleted the ref; the other side is still at the base. */
  | { type: 'deleted'; side: Side; base: string }
  /** `side` deleted the ref while the other side moved it. */
  | { type: 'deleted-and-moved'; side: Side; base: string; movedTo: string }
  /** No base, and only `side` has the ref. */
  | { type: 'only-on'; side: Side; sha: string }
  /** Both sides have the ref at different tips, and neither is at the base (both moved, or no base). */
  | { type: 'differ'; github: string; gitlab: string; base: string | undefined };

function otherSide(side: Side): Side {
  return side === 'github' ? 'gitlab' : 'github';
}

function classify({ github, gitlab, base }: RefState): Situation {
  if (github === undefined) {
    if (gitlab !== undefined) return presentOnOneSide('gitlab', gitlab, base);
    return base === undefined ? { type: 'in-sync', sha: undefined } : { type: 'gone' };
  }
  if (gitlab === undefined) return presentOnOneSide('github', github, base);
  if (github === gitlab) return github === base ? { type: 'in-sync', sha: base } : { type: 'agreed', sha: github };
  if (gitlab === base) return { type: 'moved', side: 'github', from: base, to: github };
  if (github === base) return { type: 'moved', side: 'gitlab', from: base, to: gitlab };
  return { type: 'differ', github, gitlab, base };
}

/** The ref exists only on `side`, at `sha`: new there, deleted on the other side, or both. */
function presentOnOneSide(side: Side, sha: string, base: string | undefined): Situation {
  const absent = otherSide(side);
  if (base === undefined) return { type: 'only-on', side, sha };
  if (sha === base) return { type: 'deleted', side: absent, base };
  return { type: 'deleted-and-moved', side: absent, base, movedTo: sha };
}

// ---------------------------------------------------------------------------------------------
// Step 2: which history questions decide it? Tags never need any: they do not fast-forward.
// ---------------------------------------------------------------------------------------------

function questionsFor(kind: SyncableRefKind, s: Situation): AncestryQuestion[] {
  if (kind === 'tag') return [];
  if (s.type === 'moved') return [[s.from, s.to]];
  if (s.type === 'differ') {
    const { github, gitlab, base } = s;
    const containment: AncestryQuestion[] = [
      [gitlab, github],
      [github, gitlab],
    ];
    // With a base, the side that is behind must also still contain the base (see resolveDiffer).
    return base === undefined ? containment : [...containment, [base, gitlab], [base, github]];
  }
  return [];
}

/** Every ancestry pair `planSync` will ask for these refs, without duplicates; precompute exactly these. */
export function ancestryQuestions(refs: readonly RefState[], policy: SyncPolicy): AncestryQuestion[] {
  const excluded = compileSelection(policy.refs);
  const seen = new Map<string, AncestryQuestion>();
  for (const state of refs) {
    const kind = syncableRefKind(state.ref);
    if (kind === undefined || excluded(state.ref) !== undefined) continue;
    for (const q of questionsFor(kind, classify(state))) seen.set(questionKey(q[0], q[1]), q);
  }
  return [...seen.values()];
}

function questionKey(ancestor: string, descendant: string): string {
  return `${ancestor} ${descendant}`;
}

// ---------------------------------------------------------------------------------------------
// Step 3: decide, per ref
// ---------------------------------------------------------------------------------------------

function short(sha: string | undefined): string {
  return sha === undefined ? '(absent)' : sha.slice(0, 12);
}

function resolve(ref: string, kind: SyncableRefKind, s: Situation, policy: SyncPolicy, answer: Ancestry): RefAction {
  switch (s.type) {
    case 'in-sync':
      return s.sha === undefined ? { kind: 'none', ref } : { kind: 'none', ref, sha: s.sha };
    case 'agreed':
      return { kind: 'record-base', ref, sha: s.sha };
    case 'gone':
      return { kind: 'forget-base', ref };
    case 'only-on':
      return { kind: 'update', ref, to: otherSide(s.side), sha: s.sha, expected: undefined, mode: 'create' };
    case 'deleted': {
      const target = otherSide(s.side);
      if (policy.deletions === 'ignore') {
        return {
          kind: 'skipped',
          ref,
          reason: `deleted on ${s.side}; not deleted on ${target} because deletions are ignored (deletions: ignore)`,
        };
      }
      return { kind: 'delete', ref, on: target, expected: s.base };
    }
    case 'deleted-and-moved': {
      const mover = otherSide(s.side);
      return {
        kind: 'diverged',
        ref,
        [mover]: s.movedTo,
        base: s.base,
        reason:
          `deleted on ${s.side} but moved on ${mover} (${short(s.base)} -> ${short(s.movedTo)}): ` +
          `deleting would lose ${mover}'s new commits and restoring would undo the deletion`,
      };
    }
    case 'moved':
      return resolveMoved(ref, kind, s, policy, answer);
    case 'differ':
      return resolveDiffer(ref, kind, s, answer);
  }
}

/** One side moved, the other is still at the base: carry the move over, if the policy lets us. */
function resolveMoved(
  ref: string,
  kind: SyncableRefKind,
  s: Extract<Situation, { type: 'moved' }>,
  policy: SyncPolicy,
  answer: Ancestry,
): RefAction {
  const target = otherSide(s.side);
  const update = { kind: 'update', ref, to: target, sha: s.to, expected: s.from } as const;
  if (kind === 'branch') {
    const forward = answer(s.from, s.to);
    if (forward === true) return { ...update, mode: 'fast-forward' };
    if (forward === 'unknown') {
      return {
        kind: 'unknown',
        ref,
        need: [s.from, s.to],
        reason: `cannot tell whether ${s.side}'s new tip ${short(s.to)} contains ${short(s.from)}: history is missing`,
      };
    }
  }
  const what =
    kind === 'tag'
      ? `tag moved on ${s.side} from ${short(s.from)} to ${short(s.to)}`
      : `${s.side} rewrote the branch: ${short(s.to)} does not contain ${short(s.from)}`;
  if (policy.rewrites === 'allow') return { ...update, mode: 'rewrite' };
  return {
    kind: 'blocked',
    ref,
    reason: `${what}; rewrites are denied (rewrites: deny), so ${target} keeps ${short(s.from)}`,
  };
}

/**
 * Both sides hold the ref at different tips and neither is at the base. The table calls that
 * diverged, but one case is only a race: the CI fast path already copied part of the work, e.g.
 * base A, github A-B-C, gitlab A-B. Then the side that is behind still contains the base and the
 * other side contains it, so fast-forwarding it loses nothing and undoes nothing. If instead the
 * behind side no longer contains the base, it was rewound or rewritten on purpose while the
 * other side moved on: that is a real divergence. Without a base (initial sync) containment
 * alone decides. Tags never fast-forward, so differing tags are always diverged.
 */
function resolveDiffer(
  ref: string,
  kind: SyncableRefKind,
  s: Extract<Situation, { type: 'differ' }>,
  answer: Ancestry,
): RefAction {
  const diverged = (reason: string): DivergedAction => ({
    kind: 'diverged',
    ref,
    github: s.github,
    gitlab: s.gitlab,
    ...(s.base === undefined ? {} : { base: s.base }),
    reason,
  });
  if (kind === 'tag') {
    return diverged(
      s.base === undefined
        ? `the tag points at ${short(s.github)} on github and ${short(s.gitlab)} on gitlab`
        : `the tag moved on both sides since ${short(s.base)}, to ${short(s.github)} on github and ${short(s.gitlab)} on gitlab`,
    );
  }
  const unknownNeed: string[] = [];
  const candidates = [
    { behind: 'gitlab', behindTip: s.gitlab, ahead: 'github', aheadTip: s.github },
    { behind: 'github', behindTip: s.github, ahead: 'gitlab', aheadTip: s.gitlab },
  ] as const;
  for (const { behind, behindTip, ahead, aheadTip } of candidates) {
    const contained = answer(behindTip, aheadTip);
    if (contained === 'unknown') unknownNeed.push(behindTip, aheadTip);
    if (contained !== true) continue;
    const update: UpdateAction = {
      kind: 'update',
      ref,
      to: behind,
      sha: aheadTip,
      expected: behindTip,
      mode: 'fast-forward',
    };
    if (s.base === undefined) return update;
    const keptBase = answer(s.base, behindTip);
    if (keptBase === true) return update;
    if (keptBase === 'unknown') {
      return {
        kind: 'unknown',
        ref,
        need: [s.base, behindTip],
        reason: `cannot tell whether ${behind}'s tip ${short(behindTip)} contains the base ${short(s.base)}: history is missing`,
      };
    }
    return diverged(
      `${behind} was rewound or rewritten to ${short(behindTip)} (no longer containing the base ${short(s.base)}) ` +
        `while ${ahead} moved on to ${short(aheadTip)}`,
    );
  }
  if (unknownNeed.length > 0) {
    return {
      kind: 'unknown',
      ref,
      need: [...new Set(unknownNeed)],
      reason: `cannot tell whether github's ${short(s.github)} and gitlab's ${short(s.gitlab)} contain each other: history is missing`,
    };
  }
  return diverged(
    s.base === undefined
      ? `github is at ${short(s.github)} and gitlab at ${short(s.gitlab)}, and neither contains the other`
      : `both sides moved since ${short(s.base)}, github to ${short(s.github)} and gitlab to ${short(s.gitlab)}, and neither contains the other`,
  );
}

// ---------------------------------------------------------------------------------------------
// The planner
// ---------------------------------------------------------------------------------------------

/**
 * Plans every syncable ref of a pair. `ancestry` must answer every pair `ancestryQuestions(refs,
 * policy)` returned (and is asked nothing else); see `ancestryLookup`.
 */
export function planSync(refs: readonly RefState[], policy: SyncPolicy, ancestry: Ancestry): SyncPlan {
  const excluded = compileSelection(policy.refs);
  const seen = new Set<string>();
  let actions: RefAction[] = [];
  for (const state of refs) {
    if (seen.has(state.ref)) {
      throw new RefbridgeError(`The sync planner was given ${state.ref} twice.`, {
        hint: 'this is a bug in refbridge: merge the two listings by ref name before planning (please report it)',
      });
    }
    seen.add(state.ref);
    const kind = syncableRefKind(state.ref);
    if (kind === undefined) continue;
    const reason = excluded(state.ref);
    if (reason !== undefined) {
      actions.push({ kind: 'skipped', ref: state.ref, reason });
      continue;
    }
    const situation = classify(state);
    // Ask every question up front and decide from these answers only, so the planner can never
    // ask something `ancestryQuestions` did not list.
    const answers = new Map<string, AncestryAnswer>();
    for (const [a, d] of questionsFor(kind, situation)) answers.set(questionKey(a, d), ancestry(a, d));
    const answer: Ancestry = (a, d) => {
      const value = answers.get(questionKey(a, d));
      if (value === undefined) throw new Error(`sync planner: unlisted ancestry question ${a} ${d} for ${state.ref}`);
      return value;
    };
    actions.push(resolve(state.ref, kind, situation, policy, answer));
  }

  const diverged = actions.filter((a) => a.kind === 'diverged').length;
  const halted = policy.divergence === 'halt-pair' && diverged > 0;
  if (halted) {
    // Only pushes stop; base bookkeeping changes no side and stays correct.
    const reason = `pair halted: ${diverged} diverged ref(s)`;
    actions = actions.map((a) =>
      a.kind === 'update' || a.kind === 'delete' ? { kind: 'skipped', ref: a.ref, reason } : a,
    );
  }
  return { actions, halted };
}

/** How many actions of each kind a plan has; every kind is present, zero included. */
export function summarizePlan(plan: SyncPlan): PlanSummary {
  const summary = Object.fromEntries(REF_ACTION_KINDS.map((k) => [k, 0])) as PlanSummary;
  for (const action of plan.actions) summary[action.kind] += 1;
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Helpers for the engine that precomputes the answers
// ---------------------------------------------------------------------------------------------

/**
 * Turns the exit code of `git merge-base --is-ancestor A B` into an answer: 0 yes, 1 no, 128 unknown
 * (an object is missing: fetch more, never call it diverged). Run git with `okExitCodes: [1, 128]`;
 * anything else is a failure, not an answer. In a shallow repository (`git rev-parse
 * --is-shallow-repository`) git also says 1 when both commits are present but the path between
 * them lies beyond the shallow boundary, so there a "no" is only an "unknown".
 */
export function ancestryAnswerFromExitCode(exitCode: number, options: { shallow?: boolean } = {}): AncestryAnswer {
  if (exitCode === 0) return true;
  if (exitCode === 1) return options.shallow ? 'unknown' : false;
  if (exitCode === 128) return 'unknown';
  throw new RefbridgeError(`git merge-base --is-ancestor exited with ${exitCode}, which is not an answer.`, {
    hint: 'check the git output above; run it with okExitCodes [1, 128] so only real failures reach here',
  });
}

/** An `Ancestry` over precomputed answers; asking for a pair that was not precomputed is a bug and throws. */
export function ancestryLookup(answers: Iterable<readonly [AncestryQuestion, AncestryAnswer]>): Ancestry {
  const table = new Map<string, AncestryAnswer>();
  for (const [[a, d], value] of answers) table.set(questionKey(a, d), value);
  return (ancestor, descendant) => {
    const value = table.get(questionKey(ancestor, descendant));
    if (value === undefined) {
      throw new RefbridgeError(`No precomputed answer to whether ${ancestor} is an ancestor of ${descendant}.`, {
        hint: 'this is a bug in refbridge: precompute every pair ancestryQuestions() returns (please report it)',
      });
    }
    return value;
  };
}
