import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { GitRunner } from '../src/git-runner.js';
import { SecretMasker } from '../src/secret-masker.js';
import {
  REF_ACTION_KINDS,
  ancestryAnswerFromExitCode,
  ancestryLookup,
  ancestryQuestions,
  excludedBySelection,
  matchRefGlob,
  planSync,
  summarizePlan,
  syncableRefKind,
} from '../src/sync-planner.js';
import type {
  Ancestry,
  AncestryAnswer,
  AncestryQuestion,
  RefAction,
  RefActionKind,
  RefState,
  Side,
  SyncPlan,
  SyncPolicy,
} from '../src/sync-planner.js';
import { commitFiles, git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';

// ---------------------------------------------------------------------------------------------
// A tiny commit model: parent pointers give a real ancestry oracle, and "missing" commits give
// the 'unknown' answers a shallow clone gives.
// ---------------------------------------------------------------------------------------------

class History {
  private readonly parents = new Map<string, readonly string[]>();

  add(sha: string, parents: readonly string[] = []): string {
    for (const p of parents) if (!this.parents.has(p)) throw new Error(`unknown parent ${p}`);
    this.parents.set(sha, parents);
    return sha;
  }

  /** Like `git merge-base --is-ancestor`: a commit counts as its own ancestor. */
  isAncestor(ancestor: string, descendant: string): boolean {
    if (!this.parents.has(ancestor) || !this.parents.has(descendant)) {
      throw new Error(`the planner asked about a commit that does not exist: ${ancestor} ${descendant}`);
    }
    const todo = [descendant];
    const seen = new Set<string>();
    for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
      if (next === ancestor) return true;
      if (seen.has(next)) continue;
      seen.add(next);
      todo.push(...(this.parents.get(next) ?? []));
    }
    return false;
  }

  get commits(): string[] {
    return [...this.parents.keys()];
  }
}

/** An oracle over the model that records what it was asked; `missing` commits answer 'unknown'. */
function oracle(history: History, missing: ReadonlySet<string> = new Set()): Ancestry & { asked: AncestryQuestion[] } {
  const asked: AncestryQuestion[] = [];
  const ask = (ancestor: string, descendant: string): AncestryAnswer => {
    asked.push([ancestor, descendant]);
    if (missing.has(ancestor) || missing.has(descendant)) return 'unknown';
    return history.isAncestor(ancestor, descendant);
  };
  return Object.assign(ask, { asked });
}

const sha = (label: string): string => createHash('sha1').update(label).digest('hex');

// The history the row-by-row tests use:  A - B - C   (main line)
//                                         \
//                                          D         (a side line)
const h = new History();
const A = h.add(sha('A'));
const B = h.add(sha('B'), [A]);
const C = h.add(sha('C'), [B]);
const D = h.add(sha('D'), [A]);
const E = h.add(sha('E'), [C]);

const POLICY: SyncPolicy = {
  divergence: 'halt-ref',
  deletions: 'propagate',
  rewrites: 'deny',
  refs: { branches: true, tags: true, include: [], exclude: [] },
};

function policy(
  overrides: Partial<Omit<SyncPolicy, 'refs'>> & { refs?: Partial<SyncPolicy['refs']> } = {},
): SyncPolicy {
  return { ...POLICY, ...overrides, refs: { ...POLICY.refs, ...overrides.refs } };
}

const MAIN = 'refs/heads/main';
const TAG = 'refs/tags/v1.0';

/** `state` as seen with the two platforms swapped: every row's mirror image. */
function mirrored(state: Omit<RefState, 'ref'>): Omit<RefState, 'ref'> {
  return { github: state.gitlab, gitlab: state.github, base: state.base };
}
const other = (side: Side): Side => (side === 'github' ? 'gitlab' : 'github');

/** Plans one ref and checks the planner asked exactly what `ancestryQuestions` listed. */
function planOne(
  state: Omit<RefState, 'ref'>,
  options: { ref?: string; policy?: SyncPolicy; missing?: string[] } = {},
): RefAction {
  const refs = [{ ref: options.ref ?? MAIN, ...state }];
  const p = options.policy ?? POLICY;
  const ask = oracle(h, new Set(options.missing));
  const plan = planSync(refs, p, ask);
  expect(ask.asked).toEqual(ancestryQuestions(refs, p));
  expect(plan.actions).toHaveLength(1);
  return plan.actions[0] as RefAction;
}

// ---------------------------------------------------------------------------------------------
// The sync table, row by row; `describe.each` gives every row its mirror image.
// ---------------------------------------------------------------------------------------------

describe('the sync table with a base', () => {
  it('same | same -> nothing', () => {
    expect(planOne({ github: B, gitlab: B, base: B })).toEqual({ kind: 'none', ref: MAIN, sha: B });
  });

  it('moved | moved to the same tip -> record the new base', () => {
    expect(planOne({ github: C, gitlab: C, base: A })).toEqual({ kind: 'record-base', ref: MAIN, sha: C });
  });

  it('deleted | deleted -> forget the base', () => {
    expect(planOne({ base: A })).toEqual({ kind: 'forget-base', ref: MAIN });
  });

  describe.each(['github', 'gitlab'] as const)('%s is the side that changed', (side) => {
    const target = other(side);
    const fromSide = (s: Omit<RefState, 'ref'>): Omit<RefState, 'ref'> => (side === 'github' ? s : mirrored(s));

    it(`moved | same -> fast-forward ${target} to ${side}'s tip, leased on ${target}'s tip`, () => {
      expect(planOne(fromSide({ github: C, gitlab: A, base: A }))).toEqual({
        kind: 'update',
        ref: MAIN,
        to: target,
        sha: C,
        expected: A,
        mode: 'fast-forward',
      });
    });

    it(`moved (rewrite) | same, rewrites: allow -> rewrite ${target}, leased on its old tip`, () => {
      expect(planOne(fromSide({ github: D, gitlab: B, base: B }), { policy: policy({ rewrites: 'allow' }) })).toEqual({
        kind: 'update',
        ref: MAIN,
        to: target,
        sha: D,
        expected: B,
        mode: 'rewrite',
      });
    });

    it(`moved (rewrite) | same, rewrites: deny -> blocked, ${target} untouched`, () => {
      const action = planOne(fromSide({ github: D, gitlab: B, base: B }), { policy: policy({ rewrites: 'deny' }) });
      expect(action).toMatchObject({ kind: 'blocked', ref: MAIN });
      expect(action.kind === 'blocked' && action.reason).toMatch(new RegExp(`${side} rewrote.*rewrites: deny`));
    });

    it(`moved backwards (reset) | same counts as a rewrite`, () => {
      expect(
        planOne(fromSide({ github: A, gitlab: C, base: C }), { policy: policy({ rewrites: 'allow' }) }),
      ).toMatchObject({
        kind: 'update',
        to: target,
        sha: A,
        expected: C,
        mode: 'rewrite',
      });
    });

    it(`moved | same with history missing -> unknown, naming what to fetch`, () => {
      const action = planOne(fromSide({ github: C, gitlab: A, base: A }), { missing: [A] });
      expect(action).toMatchObject({ kind: 'unknown', ref: MAIN, need: [A, C] });
    });

    it(`deleted | same, deletions: propagate -> delete on ${target}, leased on its tip`, () => {
      expect(planOne(fromSide({ gitlab: B, base: B }), { policy: policy({ deletions: 'propagate' }) })).toEqual({
        kind: 'delete',
        ref: MAIN,
        on: target,
        expected: B,
      });
    });

    it(`deleted | same, deletions: ignore -> skipped and the base stays`, () => {
      const action = planOne(fromSide({ gitlab: B, base: B }), { policy: policy({ deletions: 'ignore' }) });
      expect(action).toMatchObject({ kind: 'skipped', ref: MAIN });
      expect(action.kind === 'skipped' && action.reason).toMatch(`deleted on ${side}`);
    });

    it(`deleted | moved -> diverged: the moved side's commits are never deleted`, () => {
      for (const deletions of ['propagate', 'ignore'] as const) {
        const action = planOne(fromSide({ gitlab: C, base: B }), { policy: policy({ deletions }) });
        expect(action).toMatchObject({ kind: 'diverged', ref: MAIN, [target]: C, base: B });
        expect(action.kind === 'diverged' && action.reason).toMatch(`deleted on ${side} but moved on ${target}`);
      }
    });

    it(`moved | moved differently -> diverged with both tips, whatever the rewrite policy`, () => {
      for (const rewrites of ['allow', 'deny'] as const) {
        expect(planOne(fromSide({ github: C, gitlab: D, base: A }), { policy: policy({ rewrites }) })).toMatchObject({
          kind: 'diverged',
          ref: MAIN,
          ...fromSide({ github: C, gitlab: D }),
          base: A,
        });
      }
    });

    it(`moved | moved less far along the same line -> fast-forward ${target} (a race, not a divergence)`, () => {
      expect(planOne(fromSide({ github: C, gitlab: B, base: A }))).toEqual({
        kind: 'update',
        ref: MAIN,
        to: target,
        sha: C,
        expected: B,
        mode: 'fast-forward',
      });
    });

    it(`moved on | rewound below the base -> diverged, never undoing the rewind`, () => {
      // base C; the target was reset to A while the changed side moved on to a child of C.
      const action = planOne(fromSide({ github: E, gitlab: A, base: C }), { policy: policy({ rewrites: 'allow' }) });
      expect(action).toMatchObject({ kind: 'diverged', ...fromSide({ github: E, gitlab: A }), base: C });
      expect(action.kind === 'diverged' && action.reason).toMatch(`${target} was rewound or rewritten`);
    });

    it(`moved | moved less far, base history missing -> unknown`, () => {
      expect(planOne(fromSide({ github: C, gitlab: B, base: A }), { missing: [A] })).toMatchObject({
        kind: 'unknown',
        need: [A, B],
      });
    });

    it(`moved | moved differently with history missing -> unknown, never diverged`, () => {
      expect(planOne(fromSide({ github: C, gitlab: D, base: A }), { missing: [D] })).toMatchObject({
        kind: 'unknown',
        need: side === 'github' ? [D, C] : [C, D],
      });
    });

    it(`tag moved | same -> a rewrite even when the new tip contains the old one`, () => {
      const allowed = planOne(fromSide({ github: C, gitlab: A, base: A }), {
        ref: TAG,
        policy: policy({ rewrites: 'allow' }),
      });
      expect(allowed).toEqual({ kind: 'update', ref: TAG, to: target, sha: C, expected: A, mode: 'rewrite' });
      const denied = planOne(fromSide({ github: C, gitlab: A, base: A }), {
        ref: TAG,
        policy: policy({ rewrites: 'deny' }),
      });
      expect(denied).toMatchObject({ kind: 'blocked', ref: TAG });
      expect(denied.kind === 'blocked' && denied.reason).toMatch(`tag moved on ${side}`);
    });

    it(`tag moved | moved along the same line -> diverged (tags do not fast-forward)`, () => {
      expect(planOne(fromSide({ github: C, gitlab: B, base: A }), { ref: TAG })).toMatchObject({ kind: 'diverged' });
    });

    it(`tag deleted | same -> deleted on ${target} like a branch`, () => {
      expect(planOne(fromSide({ gitlab: A, base: A }), { ref: TAG })).toEqual({
        kind: 'delete',
        ref: TAG,
        on: target,
        expected: A,
      });
    });
  });
});

describe('initial sync (no base yet)', () => {
  it('equal -> record the base', () => {
    expect(planOne({ github: B, gitlab: B })).toEqual({ kind: 'record-base', ref: MAIN, sha: B });
  });

  it('absent on both -> nothing', () => {
    expect(planOne({})).toEqual({ kind: 'none', ref: MAIN });
  });

  it('differing tags -> diverged, without asking about history', () => {
    expect(planOne({ github: B, gitlab: C }, { ref: TAG })).toMatchObject({ kind: 'diverged', github: B, gitlab: C });
  });

  it('neither contains the other -> diverged', () => {
    const action = planOne({ github: C, gitlab: D });
    expect(action).toMatchObject({ kind: 'diverged', github: C, gitlab: D });
    expect(action).not.toHaveProperty('base');
  });

  it('history missing -> unknown, never diverged', () => {
    expect(planOne({ github: C, gitlab: D }, { missing: [C] })).toMatchObject({ kind: 'unknown', need: [D, C] });
  });

  describe.each(['github', 'gitlab'] as const)('%s has the ref', (side) => {
    const target = other(side);
    const fromSide = (s: Omit<RefState, 'ref'>): Omit<RefState, 'ref'> => (side === 'github' ? s : mirrored(s));

    it(`only on ${side} -> create on ${target} with an empty lease`, () => {
      for (const ref of [MAIN, TAG]) {
        expect(planOne(fromSide({ github: B }), { ref })).toEqual({
          kind: 'update',
          ref,
          to: target,
          sha: B,
          expected: undefined,
          mode: 'create',
        });
      }
    });

    it(`${side} contains ${target}'s tip -> fast-forward ${target}`, () => {
      expect(planOne(fromSide({ github: C, gitlab: A }))).toEqual({
        kind: 'update',
        ref: MAIN,
        to: target,
        sha: C,
        expected: A,
        mode: 'fast-forward',
      });
    });

    it(`${side} contains ${target}'s tip but history is missing -> unknown`, () => {
      expect(planOne(fromSide({ github: C, gitlab: A }), { missing: [A] })).toMatchObject({ kind: 'unknown' });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Policies that act on the whole plan, and which refs are planned at all
// ---------------------------------------------------------------------------------------------

describe('divergence policy', () => {
  const refs: RefState[] = [
    { ref: 'refs/heads/diverged', github: C, gitlab: D, base: A },
    { ref: 'refs/heads/ahead', github: C, gitlab: B, base: B },
    { ref: 'refs/heads/gone', gitlab: B, base: B },
    { ref: 'refs/heads/agreed', github: C, gitlab: C, base: B },
    { ref: 'refs/heads/both-gone', base: B },
    { ref: 'refs/heads/rewritten', github: D, gitlab: B, base: B },
    { ref: 'refs/heads/in-sync', github: A, gitlab: A, base: A },
  ];
  const kinds = (plan: SyncPlan): string[] => plan.actions.map((a) => a.kind);

  it('halt-ref: only the diverged ref waits', () => {
    const plan = planSync(refs, policy({ divergence: 'halt-ref' }), oracle(h));
    expect(plan.halted).toBe(false);
    expect(kinds(plan)).toEqual(['diverged', 'update', 'delete', 'record-base', 'forget-base', 'blocked', 'none']);
  });

  it('halt-pair: every push of the pair is skipped, base bookkeeping stays', () => {
    const plan = planSync(refs, policy({ divergence: 'halt-pair' }), oracle(h));
    expect(plan.halted).toBe(true);
    expect(kinds(plan)).toEqual(['diverged', 'skipped', 'skipped', 'record-base', 'forget-base', 'blocked', 'none']);
    expect(plan.actions[1]).toEqual({
      kind: 'skipped',
      ref: 'refs/heads/ahead',
      reason: 'pair halted: 1 diverged ref(s)',
    });
  });

  it('halt-pair without a diverged ref halts nothing', () => {
    const plan = planSync(refs.slice(1), policy({ divergence: 'halt-pair' }), oracle(h));
    expect(plan.halted).toBe(false);
    expect(kinds(plan)).toEqual(['update', 'delete', 'record-base', 'forget-base', 'blocked', 'none']);
  });

  it('halt-pair: an unknown ref is not a divergence', () => {
    const plan = planSync(refs.slice(0, 2), policy({ divergence: 'halt-pair' }), oracle(h, new Set([D])));
    expect(plan.halted).toBe(false);
    expect(kinds(plan)).toEqual(['unknown', 'update']);
  });

  it('summarizePlan counts every kind, zero included', () => {
    const summary = summarizePlan(planSync(refs, policy({ divergence: 'halt-pair' }), oracle(h)));
    expect(summary).toEqual({
      none: 1,
      'record-base': 1,
      update: 0,
      delete: 0,
      'forget-base': 1,
      diverged: 1,
      blocked: 1,
      skipped: 2,
      unknown: 0,
    });
    expect(Object.keys(summary)).toEqual([...REF_ACTION_KINDS]);
  });
});

describe('which refs are planned', () => {
  const hidden = [
    'HEAD',
    'refs/heads/HEAD',
    'refs/heads/',
    'refs/tags/',
    'refs/pull/12/head',
    'refs/pull/12/merge',
    'refs/merge-requests/3/head',
    'refs/remotes/origin/main',
    'refs/remotes/origin/HEAD',
    'refs/github-services/x',
    'refs/notes/commits',
    'refs/keep-around/abc',
    'refs/tags/v1.0^{}',
  ];

  it('never plans hidden refs, not even as skipped, and asks nothing about them', () => {
    const refs: RefState[] = hidden.map((ref) => ({ ref, github: C, gitlab: D, base: A }));
    refs.push({ ref: 'refs/heads/feature/HEAD', github: C, gitlab: A, base: A });
    const ask = oracle(h);
    const plan = planSync(refs, POLICY, ask);
    expect(plan.actions.map((a) => a.ref)).toEqual(['refs/heads/feature/HEAD']);
    expect(ask.asked).toEqual([[A, C]]);
    expect(ancestryQuestions(refs, POLICY)).toEqual([[A, C]]);
    for (const ref of hidden) expect(syncableRefKind(ref)).toBeUndefined();
  });

  it('skips branches or tags when the policy turns them off, and asks nothing about them', () => {
    const refs: RefState[] = [
      { ref: MAIN, github: C, gitlab: A, base: A },
      { ref: TAG, github: C },
    ];
    const noBranches = planSync(refs, policy({ refs: { branches: false } }), oracle(h));
    expect(noBranches.actions).toEqual([
      { kind: 'skipped', ref: MAIN, reason: 'branches are not synced (refs.branches is false)' },
      { kind: 'update', ref: TAG, to: 'gitlab', sha: C, expected: undefined, mode: 'create' },
    ]);
    expect(ancestryQuestions(refs, policy({ refs: { branches: false } }))).toEqual([]);
    const noTags = planSync(refs, policy({ refs: { tags: false } }), oracle(h));
    expect(noTags.actions.map((a) => a.kind)).toEqual(['update', 'skipped']);
  });

  it('applies include and exclude globs to short names, exclude winning', () => {
    const names = ['main', 'release/1.0', 'release/2.0/hotfix', 'feature/x'];
    const refs: RefState[] = [
      ...names.map((n) => ({ ref: `refs/heads/${n}`, github: B })),
      { ref: 'refs/tags/v1.2', github: B },
      { ref: 'refs/tags/v2.0', github: B },
    ];
    const p = policy({ refs: { include: ['main', 'release/*', 'v1.*'], exclude: ['release/1.*'] } });
    const plan = planSync(refs, p, oracle(h));
    expect(plan.actions.map((a) => [a.ref, a.kind])).toEqual([
      ['refs/heads/main', 'update'],
      ['refs/heads/release/1.0', 'skipped'],
      ['refs/heads/release/2.0/hotfix', 'skipped'],
      ['refs/heads/feature/x', 'skipped'],
      ['refs/tags/v1.2', 'update'],
      ['refs/tags/v2.0', 'skipped'],
    ]);
    expect(plan.actions[1]).toMatchObject({ reason: 'excluded by refs.exclude pattern "release/1.*"' });
    expect(plan.actions[3]).toMatchObject({ reason: 'not matched by any refs.include pattern' });
    expect(excludedBySelection('refs/heads/release/2.0', p.refs)).toBeUndefined();
  });

  it('matches globs: * within a segment, ** across, full names when the pattern starts with refs/', () => {
    const cases: Array<[string, string, boolean]> = [
      ['release/*', 'refs/heads/release/1.0', true],
      ['release/*', 'refs/heads/release/1.0/fix', false],
      ['release/**', 'refs/heads/release/1.0/fix', true],
      ['**/fix', 'refs/heads/fix', true],
      ['**/fix', 'refs/heads/a/b/fix', true],
      ['a/**/b', 'refs/heads/a/b', true],
      ['a/**/b', 'refs/heads/a/x/y/b', true],
      ['v1.*', 'refs/tags/v1.2', true],
      ['v1.*', 'refs/tags/v102', false], // the dot is literal
      ['v1.*', 'refs/heads/v1.x', true], // short names cover both kinds...
      ['refs/tags/v1.*', 'refs/heads/v1.x', false], // ...a full-name pattern does not
      ['refs/tags/v1.*', 'refs/tags/v1.2', true],
      ['main', 'refs/heads/main', true],
      ['main', 'refs/heads/mainline', false],
      ['ma?n', 'refs/heads/main', true], // `?` is one character, as in backup's repo globs (glob.ts)
      ['ma?n', 'refs/heads/ma/n', false],
      ['feat+(x)', 'refs/heads/feat+(x)', true],
      ['*', 'refs/heads/a/b', false],
      ['**', 'refs/heads/a/b', true],
    ];
    for (const [pattern, ref, expected] of cases) {
      expect([pattern, ref, matchRefGlob(pattern, ref)]).toEqual([pattern, ref, expected]);
    }
  });

  it('refuses a ref listed twice instead of guessing which state is right', () => {
    expect(() =>
      planSync(
        [
          { ref: MAIN, github: A },
          { ref: MAIN, github: B },
        ],
        POLICY,
        oracle(h),
      ),
    ).toThrow(/refs\/heads\/main twice/);
  });
});

describe('ancestryQuestions and the precomputed answers', () => {
  it('lists each pair once, across refs, and none for decided refs or tags', () => {
    const refs: RefState[] = [
      { ref: 'refs/heads/a', github: C, gitlab: A, base: A },
      { ref: 'refs/heads/b', github: C, gitlab: A, base: A },
      { ref: 'refs/heads/c', github: B, gitlab: B, base: A },
      { ref: 'refs/tags/t', github: C, gitlab: A, base: A },
      { ref: 'refs/heads/d', github: C, gitlab: D },
      { ref: 'refs/heads/e', github: C, gitlab: D, base: A },
    ];
    expect(ancestryQuestions(refs, POLICY)).toEqual([
      [A, C],
      [D, C],
      [C, D],
      [A, D],
    ]);
  });

  it('maps merge-base exit codes: 0 yes, 1 no, 128 unknown, anything else is an error', () => {
    expect([0, 1, 128].map((code) => ancestryAnswerFromExitCode(code))).toEqual([true, false, 'unknown']);
    expect([0, 1, 128].map((code) => ancestryAnswerFromExitCode(code, { shallow: true }))).toEqual([
      true,
      'unknown',
      'unknown',
    ]);
    expect(() => ancestryAnswerFromExitCode(129)).toThrow(/not an answer/);
  });

  it('ancestryLookup answers precomputed pairs and refuses others', () => {
    const lookup = ancestryLookup([[[A, C], 'unknown']]);
    expect(lookup(A, C)).toBe('unknown');
    expect(() => lookup(C, A)).toThrow(/No precomputed answer/);
  });

  describe('answers from real git', () => {
    const runner = new GitRunner({ masker: new SecretMasker() });
    /** What the engine does: ask git every listed pair in the cache repo, then plan from the answers. */
    const precompute = async (cwd: string, refs: RefState[]): Promise<Ancestry> => {
      const shallow = (await runner.output(['rev-parse', '--is-shallow-repository'], { cwd })) === 'true';
      const answers = await Promise.all(
        ancestryQuestions(refs, POLICY).map(async ([a, d]) => {
          const r = await runner.run(['merge-base', '--is-ancestor', a, d], { cwd, okExitCodes: [1, 128] });
          return [[a, d], ancestryAnswerFromExitCode(r.exitCode, { shallow })] as const;
        }),
      );
      return ancestryLookup(answers);
    };
    let tmp: Awaited<ReturnType<typeof tempDir>>;
    beforeAll(async () => {
      tmp = await tempDir();
    });
    afterAll(async () => {
      await tmp.cleanup();
    });

    it('plans unknown from a shallow clone (exit 128), and a fast-forward once history is fetched', async () => {
      const source = join(tmp.path, 'source');
      await initRepo(source);
      const base = await commitFiles(source, { 'a.txt': 'a' });
      await commitFiles(source, { 'b.txt': 'b' });
      const tip = await commitFiles(source, { 'c.txt': 'c' });
      const cache = join(tmp.path, 'cache');
      await git(tmp.path, ['clone', '-q', '--bare', '--depth', '1', `file://${source}`, cache]);

      const refs: RefState[] = [{ ref: MAIN, github: tip, gitlab: base, base }];
      const answer = (): Promise<Ancestry> => precompute(cache, refs);

      expect(planSync(refs, POLICY, await answer()).actions).toEqual([
        expect.objectContaining({ kind: 'unknown', need: [base, tip] }),
      ]);
      await git(cache, ['fetch', '-q', '--unshallow', `file://${source}`, 'main']);
      expect(planSync(refs, POLICY, await answer()).actions).toEqual([
        { kind: 'update', ref: MAIN, to: 'gitlab', sha: tip, expected: base, mode: 'fast-forward' },
      ]);
    });

    it('does not plan a rewrite from a shallow "no" (exit 1 with the path cut off)', async () => {
      const source = join(tmp.path, 'source2');
      await initRepo(source);
      const base = await commitFiles(source, { 'a.txt': 'a' });
      await git(source, ['tag', 'old', base]);
      await commitFiles(source, { 'b.txt': 'b' });
      const tip = await commitFiles(source, { 'c.txt': 'c' });
      const cache = join(tmp.path, 'cache2');
      await git(tmp.path, ['clone', '-q', '--bare', '--depth', '1', `file://${source}`, cache]);
      // Both commits are now present, but the history between them is not.
      await git(cache, ['fetch', '-q', '--depth', '1', `file://${source}`, 'refs/tags/old:refs/tags/old']);
      const raw = await runner.run(['merge-base', '--is-ancestor', base, tip], { cwd: cache, okExitCodes: [1, 128] });
      expect(raw.exitCode).toBe(1);

      const refs: RefState[] = [{ ref: MAIN, github: tip, gitlab: base, base }];
      const plan = planSync(refs, policy({ rewrites: 'allow' }), await precompute(cache, refs));
      expect(plan.actions).toEqual([expect.objectContaining({ kind: 'unknown', need: [base, tip] })]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Generated cases: random histories, tips, bases and policies, checked against invariants
// ---------------------------------------------------------------------------------------------

/** mulberry32: small, fast and deterministic, so a failing seed reproduces exactly. */
function rng(seed: number): { next: () => number; int: (n: number) => number; pick: <T>(xs: readonly T[]) => T } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  return { next, int, pick };
}

const REF_POOL = [
  'refs/heads/main',
  'refs/heads/feature/x',
  'refs/heads/release/1.0',
  'refs/heads/release/2.0/fix',
  'refs/tags/v1.0',
  'refs/tags/v2.0-rc1',
  'refs/tags/release/1.0',
  'refs/pull/7/head',
  'refs/merge-requests/3/head',
  'HEAD',
  'refs/heads/HEAD',
  'refs/remotes/origin/main',
  'refs/tags/v1.0^{}',
  'refs/notes/commits',
];
const PATTERNS = ['main', 'release/*', 'release/**', 'v1.*', 'refs/tags/**', 'feature/x', '**/fix', 'nothing'];

/** Written independently of the planner on purpose: what the design says may be pushed. */
const isVisible = (ref: string): boolean =>
  /^refs\/(heads|tags)\/./.test(ref) && ref !== 'refs/heads/HEAD' && !ref.endsWith('^{}');
const isTag = (ref: string): boolean => ref.startsWith('refs/tags/');

interface Case {
  history: History;
  missing: Set<string>;
  refs: RefState[];
  policy: SyncPolicy;
}

function randomCase(r: ReturnType<typeof rng>, label: string): Case {
  const history = new History();
  const commits: string[] = [];
  const size = 3 + r.int(10);
  for (let i = 0; i < size; i++) {
    const parents: string[] = [];
    const roll = r.next();
    if (i > 0 && roll > 0.1) parents.push(r.next() < 0.5 ? (commits[i - 1] as string) : r.pick(commits));
    if (i > 1 && roll > 0.8) parents.push(r.pick(commits.filter((c) => !parents.includes(c))));
    commits.push(history.add(sha(`${label}/${i}`), parents));
  }
  const descendantOf = (c: string): string => r.pick(commits.filter((x) => history.isAncestor(c, x)));
  const missing = new Set(r.next() < 0.4 ? commits.filter(() => r.next() < 0.3) : []);

  const names = REF_POOL.filter(() => r.next() < 0.45);
  const refs = names.map((ref): RefState => {
    const base = r.next() < 0.25 ? undefined : r.pick(commits);
    const tip = (otherTip: string | undefined): string | undefined => {
      const roll = r.next();
      if (roll < 0.15) return undefined;
      if (roll < 0.5 && base !== undefined) return base;
      if (roll < 0.6 && otherTip !== undefined) return otherTip;
      if (roll < 0.8) return descendantOf(otherTip ?? base ?? r.pick(commits));
      return r.pick(commits);
    };
    const github = tip(undefined);
    const gitlab = tip(github);
    return Object.freeze(
      r.next() < 0.5 ? { ref, github, gitlab, base } : { ref, github: gitlab, gitlab: github, base },
    );
  });
  const policy: SyncPolicy = {
    divergence: r.pick(['halt-ref', 'halt-pair'] as const),
    deletions: r.pick(['propagate', 'ignore'] as const),
    rewrites: r.pick(['allow', 'deny'] as const),
    refs: {
      branches: r.next() < 0.9,
      tags: r.next() < 0.9,
      include: r.next() < 0.7 ? [] : PATTERNS.filter(() => r.next() < 0.4),
      exclude: r.next() < 0.7 ? [] : PATTERNS.filter(() => r.next() < 0.2),
    },
  };
  return { history, missing, refs, policy };
}

/** What the sides and the base look like after the engine carried out every push of the plan. */
function apply(refs: readonly RefState[], plan: SyncPlan): RefState[] {
  const byRef = new Map(plan.actions.map((a) => [a.ref, a]));
  return refs.map((s) => {
    const a = byRef.get(s.ref);
    switch (a?.kind) {
      case 'update':
        return { ...s, [a.to]: a.sha, base: a.sha };
      case 'delete':
        return { ...s, [a.on]: undefined, base: undefined };
      case 'record-base':
        return { ...s, base: a.sha };
      case 'forget-base':
        return { ...s, base: undefined };
      default:
        return s;
    }
  });
}

/** Checks one plan against the invariants; returns the violations. */
function violations(c: Case, plan: SyncPlan): string[] {
  const out: string[] = [];
  const states = new Map(c.refs.map((s) => [s.ref, s]));
  const visible = c.refs.filter((s) => isVisible(s.ref)).map((s) => s.ref);
  // (3) no hidden ref, and every visible ref exactly once, in order.
  if (JSON.stringify(plan.actions.map((a) => a.ref)) !== JSON.stringify(visible)) {
    out.push(`planned refs ${plan.actions.map((a) => a.ref).join(',')} != visible refs ${visible.join(',')}`);
  }
  for (const a of plan.actions) {
    const s = states.get(a.ref);
    if (!s) continue;
    if (a.kind === 'update') {
      const current = s[a.to];
      const source = s[a.to === 'github' ? 'gitlab' : 'github'];
      // (2) the lease is the target's current tip.
      if (a.expected !== current) out.push(`${a.ref}: lease ${a.expected} != ${a.to}'s tip ${current}`);
      if (a.sha !== source) out.push(`${a.ref}: update to ${a.sha}, which is not the other side's tip`);
      if ((a.mode === 'create') !== (current === undefined)) out.push(`${a.ref}: mode ${a.mode} with tip ${current}`);
      // (1) nothing lost: the new tip contains the old one, unless an allowed rewrite from the base.
      if (a.mode === 'rewrite') {
        if (c.policy.rewrites !== 'allow') out.push(`${a.ref}: rewrite while rewrites are denied`);
        if (current !== s.base) out.push(`${a.ref}: rewrite of ${a.to}, which had moved away from the base`);
      } else if (current !== undefined && !c.history.isAncestor(current, a.sha)) {
        out.push(`${a.ref}: ${a.mode} of ${a.to} to ${a.sha} loses ${current}`);
      }
      if (isTag(a.ref) && a.mode === 'fast-forward') out.push(`${a.ref}: a tag was fast-forwarded`);
      // ...and a side rewound or rewritten away from the base is not fast-forwarded back over it.
      if (current !== undefined && s.base !== undefined && !c.history.isAncestor(s.base, current)) {
        out.push(`${a.ref}: ${a.mode} undoes ${a.to}'s rewrite away from the base`);
      }
    }
    if (a.kind === 'delete') {
      const current = s[a.on];
      if (a.expected !== current) out.push(`${a.ref}: delete lease ${a.expected} != ${a.on}'s tip ${current}`);
      if (current === undefined || current !== s.base) out.push(`${a.ref}: delete of ${a.on}, not at the base`);
      if (s[a.on === 'github' ? 'gitlab' : 'github'] !== undefined)
        out.push(`${a.ref}: deleted while the other side has it`);
      if (c.policy.deletions !== 'propagate') out.push(`${a.ref}: delete while deletions are ignored`);
    }
    if (plan.halted && (a.kind === 'update' || a.kind === 'delete')) out.push(`${a.ref}: ${a.kind} in a halted plan`);
  }
  if (plan.halted !== (c.policy.divergence === 'halt-pair' && plan.actions.some((a) => a.kind === 'diverged'))) {
    out.push(`halted is ${plan.halted}`);
  }
  return out;
}

const SEEDS = [0x5eed0001, 0x5eed0002, 0x5eed0003, 0x5eed0004, 0xc0ffee, 0xdecade, 0x1234567, 0xbadc0de];
const CASES_PER_SEED = 300;
const STABLE_KINDS: ReadonlySet<RefActionKind> = new Set([
  'none',
  'record-base',
  'forget-base',
  'skipped',
  'blocked',
  'diverged',
]);

describe('generated cases', () => {
  for (const seed of SEEDS) {
    it(`seed 0x${seed.toString(16)}: ${CASES_PER_SEED} random pairs keep every invariant`, () => {
      const r = rng(seed);
      const seen = new Set<string>();
      for (let i = 0; i < CASES_PER_SEED; i++) {
        const c = randomCase(r, `${seed}/${i}`);
        const where = `seed 0x${seed.toString(16)} case ${i}: ${JSON.stringify({ refs: c.refs, policy: c.policy, missing: [...c.missing] })}`;
        const full = oracle(c.history);
        const partial = oracle(c.history, c.missing);
        const questions = ancestryQuestions(c.refs, c.policy);
        const planFull = planSync(c.refs, c.policy, full);
        const planPartial = planSync(c.refs, c.policy, partial);
        const problems = [...violations(c, planFull), ...violations(c, planPartial)];

        // (5) the planner asks exactly the listed pairs, nothing else.
        for (const ask of [full, partial]) {
          const asked = new Set(ask.asked.map((q) => q.join(' ')));
          const listed = new Set(questions.map((q) => q.join(' ')));
          if ([...asked].sort().join() !== [...listed].sort().join()) problems.push('asked != ancestryQuestions');
        }
        // (4) an unknown answer only ever yields `unknown`: compared per ref with full knowledge
        // (halt-ref, so one ref's outcome cannot change another's), every decision is the same.
        const haltRef = { ...c.policy, divergence: 'halt-ref' } as const;
        const perRefFull = planSync(c.refs, haltRef, oracle(c.history)).actions;
        const perRefPartial = planSync(c.refs, haltRef, oracle(c.history, c.missing)).actions;
        perRefPartial.forEach((a, k) => {
          const truth = perRefFull[k];
          if (a.kind !== 'unknown' && JSON.stringify(a) !== JSON.stringify(truth)) {
            problems.push(`${a.ref}: ${a.kind} with missing history but ${truth?.kind} with full history`);
          }
        });
        if (planFull.actions.some((a) => a.kind === 'unknown')) problems.push('unknown with full history');
        // (6) carrying out the plan converges: re-planning finds nothing left to push.
        const after = apply(c.refs, planFull);
        const replan = planSync(after, c.policy, oracle(c.history));
        for (const a of replan.actions) {
          if (!STABLE_KINDS.has(a.kind)) problems.push(`${a.ref}: ${a.kind} after applying the plan`);
          const before = planFull.actions.find((b) => b.ref === a.ref);
          if ((before?.kind === 'update' || before?.kind === 'delete') && a.kind !== 'none' && a.kind !== 'skipped') {
            problems.push(`${a.ref}: ${a.kind} right after its ${before.kind}`);
          }
        }
        // ...and a second run changes nothing at all, not even a base.
        if (JSON.stringify(apply(after, replan)) !== JSON.stringify(after))
          problems.push('a second run still changes state');

        expect({ where, problems }).toEqual({ where, problems: [] });
        for (const a of [...planFull.actions, ...planPartial.actions]) {
          seen.add(a.kind === 'update' ? `update:${a.mode}` : a.kind);
        }
      }
      // The generator must reach every outcome, or the invariants above prove little.
      const wanted = [
        ...REF_ACTION_KINDS.filter((k) => k !== 'update'),
        'update:create',
        'update:fast-forward',
        'update:rewrite',
      ];
      expect(wanted.filter((k) => !seen.has(k))).toEqual([]);
    });
  }
});
