import { join } from 'node:path';
import { LockedError, RefbridgeError } from './errors.js';
import type { Forge, ProtectionRule } from './forge.js';
import type { GitCredential, GitRunner } from './git-runner.js';
import { parsePushPorcelain, type PushRefStatus } from './git-parsers.js';
import { describeLfsLines, findLfsTips, lfsCopyCommands, type LfsPolicy } from './lfs-attributes.js';
import type { Logger } from './logger.js';
import { clearStaleGitLocks } from './crash-recovery.js';
import { acquireLock } from './pair-lock.js';
import { BACKUP_NS, BASE_NS, OUT_NS, PairCache, pairCacheKey, sideNs, toNamespace } from './pair-cache.js';
import { isMirroredRef, listRemoteRefs } from './remote-refs.js';
import {
  ancestryAnswerFromExitCode,
  ancestryLookup,
  ancestryQuestions,
  planSync,
  type AncestryAnswer,
  type AncestryQuestion,
  type DeleteAction,
  type RefAction,
  type RefState,
  type Side,
  type SyncPolicy,
  type UpdateAction,
} from './sync-planner.js';

/**
 * Syncs one pair: snapshot both sides with ls-remote, fetch only what changed into the pair's
 * cache repo, ask the planner, push with leases, and move the base only after a push succeeded.
 * Every tip that gets overwritten or deleted is kept under refs/refbridge/backup/ first.
 * LFS objects are not copied: a tip that stores files with Git LFS is held back (`lfs: fail`) or
 * pushed with a warning (`lfs: pointers`), see `checkLfs`.
 */

export interface SyncSide {
  /** HTTPS git URL without credentials. */
  url: string;
  credentials: readonly GitCredential[];
  /** Push options sent when pushing to this side (e.g. `ci.skip` for GitLab). */
  pushOptions?: readonly string[];
  /** The adapter and repo path, used to name protection rules and (opt-in) relax them. */
  forge?: Forge;
  repoPath?: string;
}

export interface SyncPairOptions {
  git: GitRunner;
  logger: Logger;
  /** Root of the cache; the pair's repo and lock live below it. */
  cacheDir: string;
  name: string;
  github: SyncSide;
  gitlab: SyncSide;
  policy: SyncPolicy;
  dryRun?: boolean;
  /** `skip`: another process holding the pair makes this run skip it; `wait`: wait for it. */
  lockMode?: 'wait' | 'skip';
  lockTimeoutMs?: number;
  /**
   * Repair of diverged refs: keep one side's tip and overwrite the other (leased, old tip backed
   * up). Applies only to refs the planner reports as diverged or blocked.
   */
  resolve?: { refs: readonly string[]; keep: Side };
  /** Opt-in: allow force push on a refusing GitLab protected branch for one push, then restore. */
  temporarilyAllowForcePush?: boolean;
  /**
   * A tip to push whose root `.gitattributes` stores files with Git LFS: `fail` (default) does not
   * push that ref and reports it as failed; `pointers` pushes the git data (pointer files) and warns.
   */
  lfs?: LfsPolicy;
  now?: () => Date;
}

export type RefOutcomeStatus = 'nothing' | 'planned' | 'done' | 'failed' | 'attention';

export interface RefOutcome {
  ref: string;
  action: RefAction;
  status: RefOutcomeStatus;
  /** One line for people: what happened or why not. */
  detail: string;
  /** Merge base of the two tips, for diverged refs. */
  mergeBase?: string;
  /** Command that repairs a diverged ref, for the report. */
  repair?: string;
}

export type PairStatus = 'in-sync' | 'synced' | 'diverged' | 'failed' | 'locked';

export interface PairSyncResult {
  pair: string;
  status: PairStatus;
  outcomes: RefOutcome[];
  /** Set when the whole pair failed (unreachable side, bad cache, lock held). */
  error?: string;
  halted: boolean;
  cacheDir: string;
}

const short = (sha: string | undefined): string => (sha ? sha.slice(0, 12) : '(none)');
const other = (side: Side): Side => (side === 'github' ? 'gitlab' : 'github');

function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

export async function syncPair(options: SyncPairOptions): Promise<PairSyncResult> {
  const key = pairCacheKey(options.name, options.github.url, options.gitlab.url);
  const repoDir = join(options.cacheDir, 'pairs', `${key}.git`);
  const base: PairSyncResult = {
    pair: options.name,
    status: 'in-sync',
    outcomes: [],
    halted: false,
    cacheDir: repoDir,
  };
  let lock;
  try {
    lock = await acquireLock(join(options.cacheDir, 'pairs', `${key}.lock`), {
      mode: options.lockMode ?? 'wait',
      ...(options.lockTimeoutMs === undefined ? {} : { timeoutMs: options.lockTimeoutMs }),
      label: `pair ${options.name}`,
    });
  } catch (error) {
    // Held by another run: skipped, not failed. Anything else (a cache path that is a file, a
    // read-only or full disk) is a failure that must show, never a quiet skip.
    if (error instanceof LockedError) return { ...base, status: 'locked', error: error.describe() };
    return {
      ...base,
      status: 'failed',
      error: `cannot use the cache directory ${options.cacheDir}: ${messageOf(error)}\n  hint: point --cache at a writable directory (it holds one bare repo and one lock file per pair)`,
    };
  }
  try {
    return await syncLocked(options, new PairCache(options.git, repoDir), base);
  } catch (error) {
    const message =
      error instanceof RefbridgeError ? error.describe() : error instanceof Error ? error.message : String(error);
    return { ...base, status: 'failed', error: withDiskHint(message, repoDir) };
  } finally {
    await lock.release();
  }
}

/** The message of any thrown value (file system errors may come from another realm, so no instanceof). */
function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : String(error);
}

/** A git failure that is about the local disk names the cache repository it happened in. */
function withDiskHint(message: string, repoDir: string): string {
  if (!/No space left on device|Read-only file system|Permission denied|Disk quota exceeded/i.test(message))
    return message;
  return `${message}\n  hint: the pair's cache is ${repoDir}: free some space there or point --cache at a writable directory with room`;
}

async function syncLocked(options: SyncPairOptions, cache: PairCache, result: PairSyncResult): Promise<PairSyncResult> {
  const { logger, policy } = options;
  await cache.ensure();
  // A run killed mid-write leaves git's lock files; with the pair lock held they are stale.
  await clearStaleGitLocks(cache.dir, logger, options.name);
  const sides: Record<Side, SyncSide> = { github: options.github, gitlab: options.gitlab };

  const [githubRefs, gitlabRefs, cached] = await Promise.all([
    listRemoteRefs(options.git, sides.github.url, { credentials: sides.github.credentials }),
    listRemoteRefs(options.git, sides.gitlab.url, { credentials: sides.gitlab.credentials }),
    cache.readRefs(),
  ]);
  const remote: Record<Side, Map<string, string>> = { github: githubRefs, gitlab: gitlabRefs };
  // A name git refuses (planted on a server by other means) cannot be fetched or pushed; one such
  // ref must not sink the pair: leave it alone and say so.
  const unusable: RefOutcome[] = [];
  for (const side of ['github', 'gitlab'] as const) {
    for (const ref of [...remote[side].keys()].filter((r) => !isMirroredRef(r))) {
      remote[side].delete(ref);
      const reason = `not a valid git ref name on ${side}; refbridge cannot mirror it and leaves it alone (rename it there)`;
      logger.warn(`${options.name}: ${ref}: ${reason}`);
      unusable.push({ ref, action: { kind: 'skipped', ref, reason }, status: 'nothing', detail: `skipped: ${reason}` });
    }
  }

  // Fetch only refs whose tips the cache lacks; everything else is already here.
  const known = new Set([...cached.github.values(), ...cached.gitlab.values(), ...cached.base.values()]);
  const missing = await cache.missing([...githubRefs.values(), ...gitlabRefs.values()], known);
  for (const side of ['github', 'gitlab'] as const) {
    const refs = [...remote[side]].filter(([, sha]) => missing.has(sha)).map(([ref]) => ref);
    if (refs.length > 0) logger.debug(`${options.name}: fetching ${refs.length} ref(s) from ${side}`);
    await cache.fetchRefs(side, sides[side].url, refs, sides[side].credentials);
  }
  // Mirror each side's listing into its namespace so the cache holds (and keeps) every tip seen.
  const nsChanges: { ref: string; sha?: string }[] = [];
  for (const side of ['github', 'gitlab'] as const) {
    const seen = cached[side];
    for (const [ref, sha] of remote[side])
      if (seen.get(ref) !== sha) nsChanges.push({ ref: toNamespace(sideNs(side), ref), sha });
    for (const ref of seen.keys()) if (!remote[side].has(ref)) nsChanges.push({ ref: toNamespace(sideNs(side), ref) });
  }
  await cache.updateRefs(nsChanges);

  const names = new Set([...githubRefs.keys(), ...gitlabRefs.keys(), ...cached.base.keys()]);
  const states: RefState[] = [...names].sort().map((ref) => ({
    ref,
    github: githubRefs.get(ref),
    gitlab: gitlabRefs.get(ref),
    base: cached.base.get(ref),
  }));

  const answers: [AncestryQuestion, AncestryAnswer][] = [];
  for (const q of ancestryQuestions(states, policy)) {
    answers.push([q, ancestryAnswerFromExitCode(await cache.isAncestor(q[0], q[1]))]);
  }
  const plan = planSync(states, policy, ancestryLookup(answers));
  if (options.resolve) applyResolution(plan.actions, states, options.resolve);
  result.halted = plan.halted;

  const outcomes = new Map<string, RefOutcome>();
  for (const action of plan.actions) outcomes.set(action.ref, await describe(action, cache, options));
  result.outcomes = [...plan.actions.map((a) => outcomes.get(a.ref)!), ...unusable];
  const lfsHeld = await checkLfs(plan.actions, cache, sides, outcomes, options);

  if (!options.dryRun) {
    const baseChanges: { ref: string; sha?: string }[] = [];
    for (const action of plan.actions) {
      if (action.kind === 'record-base') baseChanges.push({ ref: toNamespace(BASE_NS, action.ref), sha: action.sha });
      if (action.kind === 'forget-base') baseChanges.push({ ref: toNamespace(BASE_NS, action.ref) });
      if (action.kind === 'record-base' || action.kind === 'forget-base') outcomes.get(action.ref)!.status = 'done';
    }
    await cache.updateRefs(baseChanges);
    for (const target of ['github', 'gitlab'] as const) {
      const writes = plan.actions.filter(
        (a): a is UpdateAction | DeleteAction =>
          ((a.kind === 'update' && a.to === target) || (a.kind === 'delete' && a.on === target)) && !lfsHeld.has(a.ref),
      );
      if (writes.length > 0) await pushSide(target, writes, sides[target], cache, outcomes, options);
    }
  }

  const all = [...outcomes.values()];
  if (all.some((o) => o.status === 'failed')) result.status = 'failed';
  else if (all.some((o) => o.status === 'attention')) result.status = 'diverged';
  else if (
    all.some((o) => o.status === 'done' && o.action.kind !== 'record-base' && o.action.kind !== 'forget-base') ||
    all.some((o) => o.status === 'planned')
  )
    result.status = 'synced';
  else result.status = 'in-sync';
  return result;
}

async function describe(action: RefAction, cache: PairCache, options: SyncPairOptions): Promise<RefOutcome> {
  const planned: RefOutcomeStatus = 'planned';
  switch (action.kind) {
    case 'none':
      return { ref: action.ref, action, status: 'nothing', detail: 'in sync' };
    case 'record-base':
      return {
        ref: action.ref,
        action,
        status: planned,
        detail: `both sides at ${short(action.sha)}; recording it as the base`,
      };
    case 'forget-base':
      return { ref: action.ref, action, status: planned, detail: 'deleted on both sides; forgetting the base' };
    case 'update':
      return {
        ref: action.ref,
        action,
        status: planned,
        detail: `${action.mode} ${other(action.to)} -> ${action.to}: ${short(action.expected)} -> ${short(action.sha)}`,
      };
    case 'delete':
      return {
        ref: action.ref,
        action,
        status: planned,
        detail: `delete on ${action.on} (was ${short(action.expected)}; deleted on ${other(action.on)})`,
      };
    case 'skipped':
      return { ref: action.ref, action, status: 'nothing', detail: `skipped: ${action.reason}` };
    case 'unknown':
      return { ref: action.ref, action, status: 'failed', detail: `could not decide: ${action.reason}` };
    case 'blocked':
      return {
        ref: action.ref,
        action,
        status: 'attention',
        detail: `blocked: ${action.reason}`,
        repair: repairCommand(options.name, action.ref),
      };
    case 'diverged': {
      const mergeBase =
        action.github && action.gitlab ? await cache.mergeBase(action.github, action.gitlab) : undefined;
      return {
        ref: action.ref,
        action,
        status: 'attention',
        detail: `diverged: github ${short(action.github)}, gitlab ${short(action.gitlab)}${mergeBase ? `, merge base ${short(mergeBase)}` : ''} (${action.reason})`,
        ...(mergeBase === undefined ? {} : { mergeBase }),
        repair: repairCommand(options.name, action.ref),
      };
    }
  }
}

/**
 * Refbridge copies git objects only, so a ref whose new tip stores files with Git LFS would reach
 * the other side as pointer files without content. With `lfs: fail` such refs are held back and
 * reported as failed (the others still sync); with `pointers` they are pushed with a warning.
 * One `cat-file` for every tip of the run, and none when nothing is to be pushed. Returns the refs
 * held back.
 */
async function checkLfs(
  actions: readonly RefAction[],
  cache: PairCache,
  sides: Record<Side, SyncSide>,
  outcomes: Map<string, RefOutcome>,
  options: SyncPairOptions,
): Promise<Set<string>> {
  const held = new Set<string>();
  const updates = actions.filter((a): a is UpdateAction => a.kind === 'update');
  if (updates.length === 0) return held;
  const found = await findLfsTips(
    options.git,
    updates.map((u) => u.sha),
    { cwd: cache.dir, env: { GIT_DIR: cache.dir } },
  );
  for (const u of updates) {
    const lines = found.get(u.sha);
    if (lines === undefined) continue;
    const from = other(u.to);
    const copy = lfsCopyCommands(sides[from].url, sides[u.to].url);
    const what = `${from}'s ${short(u.sha)} stores files with Git LFS (${describeLfsLines(lines)})`;
    if (options.lfs === 'pointers') {
      options.logger.warn(
        `${options.name}: ${u.ref}: ${what}; pushing the git data only (lfs: pointers), so ${u.to} gets pointer files: copy their content separately (${copy})`,
      );
      continue;
    }
    held.add(u.ref);
    const outcome = outcomes.get(u.ref)!;
    outcome.status = 'failed';
    outcome.detail = `${outcome.detail} — not pushed: ${what}, and refbridge copies git objects only, not LFS objects: ${u.to} would get pointer files whose content is missing`;
    outcome.repair = `copy the LFS objects separately (${copy}), then set \`lfs: pointers\` on pair ${options.name} in the config (or REFBRIDGE_LFS=pointers) and run refbridge sync --pair ${options.name}`;
    options.logger.error(`${options.name}: ${u.ref}: ${outcome.detail}`);
  }
  return held;
}

function repairCommand(pair: string, ref: string): string {
  return `refbridge sync --pair ${pair} --resolve ${ref} --keep github|gitlab   (or merge both tips on one side and run refbridge sync --pair ${pair})`;
}

/** Turns the chosen diverged/blocked refs into leased rewrites of the other side. */
function applyResolution(
  actions: RefAction[],
  states: readonly RefState[],
  resolve: { refs: readonly string[]; keep: Side },
): void {
  const byRef = new Map(states.map((s) => [s.ref, s]));
  for (let i = 0; i < actions.length; i++) {
    const a = actions[i]!;
    if (!resolve.refs.includes(a.ref) || (a.kind !== 'diverged' && a.kind !== 'blocked')) continue;
    const st = byRef.get(a.ref)!;
    const keepSha = st[resolve.keep];
    const to = other(resolve.keep);
    const current = st[to];
    if (keepSha) {
      actions[i] = {
        kind: 'update',
        ref: a.ref,
        to,
        sha: keepSha,
        expected: current,
        mode: current ? 'rewrite' : 'create',
      };
    } else if (current) {
      actions[i] = { kind: 'delete', ref: a.ref, on: to, expected: current };
    }
  }
}

async function pushSide(
  target: Side,
  writes: (UpdateAction | DeleteAction)[],
  side: SyncSide,
  cache: PairCache,
  outcomes: Map<string, RefOutcome>,
  options: SyncPairOptions,
): Promise<void> {
  const now = options.now?.() ?? new Date();
  // Keep every tip about to be replaced or deleted, before anything is pushed.
  const backups = writes
    .map((w) => ({ ref: w.ref, old: w.kind === 'delete' ? w.expected : w.mode === 'rewrite' ? w.expected : undefined }))
    .filter((b): b is { ref: string; old: string } => b.old !== undefined)
    .map((b) => ({ ref: `${BACKUP_NS}${stamp(now)}/${target}/${b.ref.slice('refs/'.length)}`, sha: b.old }));
  await cache.updateRefs(backups);

  const statuses = await push(target, writes, side, cache, options);
  const baseChanges: { ref: string; sha?: string }[] = [];
  const retry: (UpdateAction | DeleteAction)[] = [];
  for (const w of writes) {
    const outcome = outcomes.get(w.ref)!;
    const st = statuses.get(w.ref);
    if (st && st.flag !== 'rejected' && st.flag !== 'error') {
      outcome.status = 'done';
      baseChanges.push({ ref: toNamespace(BASE_NS, w.ref), ...(w.kind === 'update' ? { sha: w.sha } : {}) });
      options.logger.info(`${options.name}: ${w.ref}: ${outcome.detail}`);
    } else {
      outcome.status = 'failed';
      outcome.detail = `${outcome.detail} — refused by ${target}: ${st?.reason ?? 'no status from git'}`;
      if (st?.message) outcome.detail += `: ${st.message}`;
      if (w.kind === 'update' && w.mode === 'rewrite' && isProtectionRefusal(st) && side.forge && side.repoPath) {
        const rules = await side.forge.protectionRules(side.repoPath, w.ref).catch(() => [] as ProtectionRule[]);
        const blocking = rules.filter((r) => !r.allowForcePush);
        if (blocking.length > 0) outcome.detail += ` [rule: ${blocking.map((r) => r.source).join(', ')}]`;
        if (options.temporarilyAllowForcePush && blocking.length > 0) retry.push(w);
      }
    }
  }
  await cache.updateRefs(baseChanges);

  for (const w of retry) {
    await withForcePushAllowed(side, w.ref, options, async () => {
      const again = (await push(target, [w], side, cache, options)).get(w.ref);
      const outcome = outcomes.get(w.ref)!;
      if (again && again.flag !== 'rejected' && again.flag !== 'error') {
        outcome.status = 'done';
        outcome.detail = `${outcome.detail.split(' — ')[0]} (force push allowed temporarily on ${target})`;
        await cache.updateRefs([{ ref: toNamespace(BASE_NS, w.ref), sha: (w as UpdateAction).sha }]);
      }
    });
  }
}

function isProtectionRefusal(st: (PushRefStatus & { message?: string }) | undefined): boolean {
  const text = `${st?.reason ?? ''} ${st?.message ?? ''}`;
  return /protected branch|GH006|force.push|pre-receive hook declined/i.test(text);
}

async function withForcePushAllowed(
  side: SyncSide,
  ref: string,
  options: SyncPairOptions,
  fn: () => Promise<void>,
): Promise<void> {
  const forge = side.forge!;
  const path = side.repoPath!;
  const rules = (await forge.protectionRules(path, ref)).filter((r) => !r.allowForcePush);
  const changed: ProtectionRule[] = [];
  try {
    for (const rule of rules) {
      await forge.setForcePushAllowed(path, rule, true);
      changed.push(rule);
      options.logger.warn(
        `${options.name}: temporarily allowed force push on ${forge.platform} ${path} (${rule.source}) to update ${ref}`,
      );
    }
    await fn();
  } finally {
    for (const rule of changed) {
      await forge.setForcePushAllowed(path, rule, false);
      options.logger.warn(`${options.name}: restored "no force push" on ${forge.platform} ${path} (${rule.source})`);
    }
  }
}

/**
 * One push per side for all its ref changes. Creates and fast-forwards go out without force: the
 * server itself then refuses anything that is not a fast-forward of what it holds, so a race with
 * a human push can only be rejected, never lose a commit. They are staged under
 * refs/refbridge/out/ and pushed with one wildcard refspec, because git's client matches every
 * explicit refspec and lease against every ref (quadratic: minutes for thousands of tags).
 * Rewrites and deletions are the pushes that could drop commits, so each carries
 * `--force-with-lease=<ref>:<expected>`.
 * Not `--atomic`: one refused ref (a protected branch) must not hold back the others.
 */
async function push(
  target: Side,
  writes: readonly (UpdateAction | DeleteAction)[],
  side: SyncSide,
  cache: PairCache,
  options: SyncPairOptions,
): Promise<Map<string, PushRefStatus & { message?: string }>> {
  const stage = `${OUT_NS}${target}/`;
  const plain = writes.filter((w): w is UpdateAction => w.kind === 'update' && w.mode !== 'rewrite');
  const leased = writes.filter((w) => !(w.kind === 'update' && w.mode !== 'rewrite'));
  const staged = plain.map((w) => ({ ref: toNamespace(stage, w.ref), sha: w.sha }));
  // Clear leftovers of an interrupted run first: the wildcard pushes whatever is staged. A
  // leftover this push stages again is simply overwritten (one transaction may not name a ref twice).
  const restaged = new Set(staged.map((s) => s.ref));
  const stale = [...(await cache.refsUnder(stage)).keys()].filter((ref) => !restaged.has(ref)).map((ref) => ({ ref }));
  await cache.updateRefs([...stale, ...staged]);
  try {
    const args = ['push', '--porcelain', '--no-verify', '--no-follow-tags'];
    for (const o of side.pushOptions ?? []) args.push('-o', o);
    for (const w of leased) args.push(`--force-with-lease=${w.ref}:${w.expected ?? ''}`);
    args.push('--', side.url);
    if (staged.length > 0) args.push(`${stage}*:refs/*`);
    for (const w of leased) args.push(w.kind === 'update' ? `${w.sha}:${w.ref}` : `:${w.ref}`);
    const r = await options.git.run(args, {
      cwd: cache.dir,
      env: { GIT_DIR: cache.dir },
      credentials: side.credentials,
      okExitCodes: [1],
      hint: `check that the ${target} token can push to ${side.url}`,
      // Safe to repeat: creates and fast-forwards are refused unless they still fast-forward, the
      // rest carry leases, and an update that landed the first time reports "up to date".
      retryTransient: true,
    });
    const report = parsePushPorcelain(r.stdout, r.stderr);
    const message = report.remoteMessages.join(' ').trim();
    const statuses = new Map<string, PushRefStatus & { message?: string }>();
    for (const st of report.refs) statuses.set(st.to, { ...st, ...(message ? { message } : {}) });
    return statuses;
  } finally {
    await cache.updateRefs(staged.map((s) => ({ ref: s.ref })));
  }
}
