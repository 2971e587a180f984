/**
 * The CI fast path: mirror the one ref a push event is about, from the runner's (possibly depth-1)
 * checkout, moving O(new commits) rather than O(repository). The GitHub Action, the GitLab job and
 * `refbridge mirror` all run this.
 *
 * The rules it follows (platform-facts §7, peers §5):
 * - the target's tip T comes from `ls-remote`; T equal to the new tip means nothing to do, which is
 *   what ends CI bounce loops;
 * - every push is `--force-with-lease=<ref>:<T>` with an explicit refspec for this ref only, so a
 *   concurrent push to the target is rejected, never lost. A matching lease *forces* the update, so
 *   ancestry is proven before any non-forced update;
 * - "object missing" is never "diverged": history is deepened from the source (bounded, doubling,
 *   then `--unshallow`) until the question can be answered;
 * - a shallow client may only push when every shallow boundary it would send is already on the
 *   receiver, so history is deepened until the new commits connect to something the target has;
 * - no named remotes (URLs only), credentials only through the runner's environment, temporary refs
 *   removed again, nothing left in `.git/config`;
 * - LFS objects are not copied: a new tip whose root `.gitattributes` uses `filter=lfs` is refused
 *   before anything is pushed, or with `lfs: pointers` pushed with a warning (lfs-attributes.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ExitCode, RefbridgeError, UsageError } from './errors.js';
import type { GitCredential, GitResult, GitRunner, GitRunOptions } from './git-runner.js';
import { redactUrl } from './git-runner.js';
import type { LsRemoteEntry, PushFlag, PushRefStatus, PushReport } from './git-parsers.js';
import { isNullObjectId, isObjectId, parsePushPorcelain } from './git-parsers.js';
import {
  defaultLfsPolicy,
  describeLfsLines,
  findLfsTips,
  lfsCopyCommands,
  LfsNotMirroredError,
  lfsPolicies,
  type LfsAttributeLine,
  type LfsPolicy,
} from './lfs-attributes.js';
import type { Logger } from './logger.js';
import { isMirroredRef, listRemoteRefEntries, MIRRORED_REF_PATTERNS } from './remote-refs.js';

export interface MirrorEndpoint {
  /** Clone URL without credentials (https://…, file://… in tests). */
  url: string;
  credentials?: readonly GitCredential[];
}

export interface MirrorRefOptions {
  git: GitRunner;
  logger: Logger;
  /** The CI checkout (possibly a depth-1 shallow clone); history is fetched into it as needed. */
  workdir: string;
  source: MirrorEndpoint;
  target: MirrorEndpoint;
  /** Full ref name: `refs/heads/<branch>` or `refs/tags/<tag>`. */
  ref: string;
  /** The ref's previous value on the source (the push event's `before`), if known. */
  before?: string;
  /** The ref's new value on the source; all zeros for a deletion. For an annotated tag, the tag object. */
  after: string;
  deletions: 'propagate' | 'ignore';
  /**
   * Allow rewriting the target's ref when the source rewrote it. Only done when the target still
   * holds exactly `before` (it has nothing the source did not have), and always under a lease.
   */
  force: boolean;
  /** Sent as `-o <option>` (e.g. `ci.skip` for GitLab). */
  pushOptions?: readonly string[];
  /** Report the plan: only `ls-remote` and local inspection, no fetch, no push. */
  dryRun?: boolean;
  /** The pair's name as the config knows it, for the repair command in divergence reports. */
  pair?: string;
  /**
   * Doubling `--deepen` rounds per run before falling back to full history or to pushing from what
   * is there (default 8: up to 255 commits).
   */
  maxDeepenRounds?: number;
  /**
   * A new tip whose root `.gitattributes` stores files with Git LFS: `fail` (default) refuses to
   * push it with `LfsNotMirroredError`, since LFS objects are not copied; `pointers` pushes the git
   * data (pointer files included) and warns.
   */
  lfs?: LfsPolicy;
}

export type MirrorOutcome = 'pushed' | 'created' | 'deleted' | 'up-to-date' | 'skipped' | 'diverged';

export interface MirrorResult {
  result: MirrorOutcome;
  ref: string;
  /** The target's value before (from `ls-remote`); absent when the ref did not exist there. */
  targetBefore?: string;
  /** The target's value afterwards (planned value in a dry run); absent after a deletion. */
  targetAfter?: string;
  message: string;
  /** Generations fetched with `--deepen` into the checkout. */
  fetchedDepth?: number;
  /** Whether the checkout's history of the new tip had to be completed with `--unshallow`. */
  unshallowed?: boolean;
  /** For `diverged`: how to settle it. */
  repair?: string;
  /** For `diverged`, when known. */
  mergeBase?: string;
  /** Whether the update rewrote history on the target (force policy). */
  forced?: boolean;
  /** Set when nothing was changed because `dryRun` was asked for; `result` is then the plan. */
  dryRun?: boolean;
  /**
   * Set when the new tip stores files with Git LFS and was mirrored as pointer files (`lfs:
   * pointers`): the `.gitattributes` lines that route files through LFS.
   */
  lfsPointers?: readonly LfsAttributeLine[];
}

/** The ref is not a branch or tag: the platforms hide or refuse the rest, and `HEAD` is never mirrored. */
export class UnsupportedRefError extends RefbridgeError {
  readonly ref: string;

  constructor(ref: string) {
    const shortName = /^[^/]+$/.test(ref) && ref !== 'HEAD';
    super(
      `refusing to mirror ${JSON.stringify(ref)}: only branches (refs/heads/*) and tags (refs/tags/*) are mirrored`,
      {
        exitCode: ExitCode.usage,
        hint: shortName
          ? `pass the full ref name, e.g. refs/heads/${ref} or refs/tags/${ref}`
          : 'hidden refs (HEAD, refs/pull/*, refs/merge-requests/*, refs/remotes/*, ...) are refused by GitHub and GitLab and must not be pushed; run the mirror only for branch and tag events',
      },
    );
    this.ref = ref;
  }
}

/** The target refused the push of the ref. Never reported as success. */
export class PushRejectedError extends RefbridgeError {
  readonly ref: string;
  readonly status: PushRefStatus | undefined;
  readonly reason: string | undefined;
  readonly remoteMessages: readonly string[];

  constructor(ref: string, targetUrl: string, report: PushReport, status: PushRefStatus | undefined, stderr: string) {
    const reason = status?.reason;
    const what = status ? `${status.summary}${reason ? ` (${reason})` : ''}` : 'no status reported for the ref';
    const remote = report.remoteMessages.map((m) => `\n    remote: ${m}`).join('');
    const errors = status ? '' : report.errors.map((m) => `\n    ${m}`).join('') || `\n    ${stderr.trim()}`;
    super(redactUrl(`the target rejected the push of ${ref} to ${targetUrl}: ${what}${remote}${errors}`), {
      hint: rejectionHint(ref, reason, report.remoteMessages),
    });
    this.ref = ref;
    this.status = status;
    this.reason = reason;
    this.remoteMessages = report.remoteMessages;
  }
}

const PROTECTION =
  /protected branch|protected tag|GH006|GH013|repository rule|ruleset|not allowed to (?:force )?push|cannot force-push|not allowed to (?:create|delete|update)/i;

function rejectionHint(ref: string, reason: string | undefined, remoteMessages: readonly string[]): string {
  const protection =
    remoteMessages.find((m) => PROTECTION.test(m)) ?? (reason && PROTECTION.test(reason) ? reason : '');
  if (reason === 'stale info') {
    return `${ref} changed on the target while refbridge was mirroring it; nothing was overwritten. Re-run the job, or run \`refbridge sync\` to reconcile both sides`;
  }
  if (protection) {
    return `the target protects ${ref} ("${protection}"): let the mirror's user push there (GitHub: branch protection / ruleset bypass; GitLab: Settings > Repository > Protected branches, "Allowed to push and merge" and "Allowed to force push"), or exclude the ref from mirroring`;
  }
  if (reason === 'shallow update not allowed') {
    return 'the checkout is too shallow for the target to accept the push; check out with full history (actions/checkout `fetch-depth: 0`, GitLab `GIT_DEPTH: 0`) and re-run';
  }
  if (reason === 'deny updating a hidden ref') {
    return `the target hides ${ref}; only refs/heads/* and refs/tags/* can be mirrored`;
  }
  if (reason?.includes('hook declined')) {
    return 'a server-side hook on the target refused the push; its message is shown above (remote: ...)';
  }
  return "see the remote's message above; run `git push` by hand with the same refspec to investigate";
}

const DEFAULT_DEEPEN_ROUNDS = 8;

interface Classification {
  kind: 'ancestor' | 'descendant' | 'diverged' | 'unknown';
  mergeBase?: string;
}

/** Mirrors one ref from source to target; see the module comment for the rules. */
export async function mirrorRef(options: MirrorRefOptions): Promise<MirrorResult> {
  return new RefMirror(options).run();
}

function validate(options: MirrorRefOptions): { before: string | undefined } {
  if (!isMirroredRef(options.ref)) throw new UnsupportedRefError(options.ref);
  if (!isObjectId(options.after)) {
    throw new UsageError(
      `"after" must be a full object id, got ${JSON.stringify(options.after)}`,
      'pass the pushed commit (or tag object) id, all zeros for a deletion',
    );
  }
  const before = options.before === undefined || options.before === '' ? undefined : options.before;
  if (before !== undefined && !isObjectId(before)) {
    throw new UsageError(`"before" must be a full object id, got ${JSON.stringify(before)}`, 'omit it when unknown');
  }
  if (options.lfs !== undefined && !lfsPolicies.includes(options.lfs)) {
    throw new UsageError(
      `"lfs" must be ${lfsPolicies.join(' or ')}, got ${JSON.stringify(options.lfs)}`,
      'fail refuses to mirror refs that use Git LFS; pointers mirrors their git data and warns',
    );
  }
  for (const o of options.pushOptions ?? []) {
    if (o === '' || /[\n\0]/.test(o)) {
      throw new UsageError(`invalid push option ${JSON.stringify(o)}`, 'push options are single non-empty lines');
    }
  }
  return { before: before === undefined || isNullObjectId(before) ? undefined : before };
}

class RefMirror {
  /** Replaced once: `after` may become the annotated tag object (see `preferTagObject`). */
  private o: MirrorRefOptions;
  private readonly ref: string;
  private readonly before: string | undefined;
  private readonly isTag: boolean;
  private readonly dryRun: boolean;
  private readonly rounds: number;
  private afterCommit: string | undefined;
  private fetchedDepth = 0;
  private unshallowed = false;
  private thinBaseFetched = false;
  private roundsUsed = 0;
  private nextDeepen: number | undefined;
  private shallowCache: Set<string> | undefined;
  /** Where the checkout's `shallow` file is (asked once, with the repository check). */
  private shallowFile: string | undefined;
  /**
   * What this run learned about the checkout's objects. Objects are only ever added during a run,
   * so a present commit stays present; answers that depend on what is missing (absent commits,
   * connectivity) hold until the next fetch, which bumps `generation`.
   */
  private generation = 0;
  private readonly present = new Set<string>();
  private absent = { generation: -1, shas: new Set<string>() };
  private connectedMemo = new Map<string, boolean>();
  /** The new tip's LFS lines once looked at (empty: no LFS); undefined: not looked at yet. */
  private lfsLines: readonly LfsAttributeLine[] | undefined;

  constructor(options: MirrorRefOptions) {
    this.o = options;
    this.ref = options.ref;
    this.before = validate(options).before;
    this.isTag = options.ref.startsWith('refs/tags/');
    this.dryRun = options.dryRun === true;
    this.rounds = Math.max(0, Math.min(options.maxDeepenRounds ?? DEFAULT_DEEPEN_ROUNDS, 20));
  }

  async run(): Promise<MirrorResult> {
    const paths = await this.git(['rev-parse', '--git-dir', '--git-path', 'shallow'], {
      hint: 'run the mirror inside the CI checkout (a git repository), e.g. after actions/checkout',
    });
    const shallowPath = paths.stdout.split('\n')[1]?.trim() || 'shallow';
    this.shallowFile = isAbsolute(shallowPath) ? shallowPath : join(this.o.workdir, shallowPath);
    if (this.isTag && !isNullObjectId(this.o.after)) await this.preferTagObject();
    const { after } = this.o;
    const targetEntry = await this.targetEntry();
    const T = targetEntry?.sha;
    this.o.logger.info(
      `${this.ref}: source ${isNullObjectId(after) ? '(deleted)' : after}, target ${T ?? '(absent)'}${this.dryRun ? ' [dry run]' : ''}`,
    );
    if (T === after) {
      return this.result('up-to-date', T, T, `${this.ref} is already at ${short(after)} on the target; nothing to do`);
    }
    if (isNullObjectId(after)) return this.deletion(T);
    if (!(await this.ensureAfter())) {
      return this.result(
        T === undefined ? 'created' : 'pushed',
        T,
        after,
        `would fetch ${short(after)} from the source, then ${T === undefined ? 'create' : 'update'} ${this.ref} on the target if its history allows`,
      );
    }
    const outcome =
      T === undefined
        ? await this.create()
        : this.isTag
          ? await this.updateTag(targetEntry)
          : await this.updateBranch(T);
    // A real push passed the LFS check in `deliver`; a dry run reports what that check would say.
    if (this.dryRun && (outcome.result === 'created' || outcome.result === 'pushed')) await this.checkLfs();
    if (this.lfsLines !== undefined && this.lfsLines.length > 0 && outcome.targetAfter === after) {
      outcome.lfsPointers = this.lfsLines;
    }
    return outcome;
  }

  /**
   * GitLab CI names the commit a tag points to (`CI_COMMIT_SHA`), not the annotated tag object
   * (GitHub's push event names the tag object). Pushing the commit would turn an annotated tag
   * into a lightweight one on the target, and a bounce would then find two different tag values.
   * So when `after` is the commit of an annotated tag of this name (the checkout's tag ref, or
   * else the source's), the tag object is mirrored instead.
   */
  private async preferTagObject(): Promise<void> {
    const { after } = this.o;
    const local = await this.output(
      ['for-each-ref', '--format=%(refname) %(objectname) %(objecttype) %(*objectname)', this.ref],
      {},
    );
    const line = local.split('\n').find((l) => l.startsWith(`${this.ref} `));
    if (line) {
      const [, sha, type, peeled] = line.split(' ');
      if (sha === after) return;
      if (type === 'tag' && peeled === after && sha) return this.useTagObject(sha, 'the checkout');
    }
    const kind = await this.git(['cat-file', '-t', after], { okExitCodes: [128] });
    if (kind.exitCode === 0 && kind.stdout.trim() === 'tag') return;
    try {
      const { source } = this.o;
      const entries = await listRemoteRefEntries(this.o.git, source.url, {
        cwd: this.o.workdir,
        patterns: [this.ref],
        ...(source.credentials ? { credentials: source.credentials } : {}),
      });
      const entry = entries.find((e) => e.ref === this.ref);
      if (entry?.peeled === after) this.useTagObject(entry.sha, 'the source');
    } catch (error) {
      // Not knowing only costs the annotation: the commit is still the tag's target.
      this.o.logger.warn(
        `${this.ref}: could not ask the source whether the tag is annotated (${error instanceof Error ? error.message : String(error)}); mirroring it as it was given`,
      );
    }
  }

  private useTagObject(tagObject: string, where: string): void {
    if (!isObjectId(tagObject)) return;
    this.o.logger.info(
      `${this.ref}: ${short(this.o.after)} is the commit of an annotated tag; mirroring the tag object ${short(tagObject)} (from ${where})`,
    );
    this.o = { ...this.o, after: tagObject };
  }

  // ---- the cases ----------------------------------------------------------------------------

  private async deletion(T: string | undefined): Promise<MirrorResult> {
    if (T === undefined) {
      return this.result('up-to-date', undefined, undefined, `${this.ref} is already absent on the target`);
    }
    if (this.o.deletions === 'ignore') {
      return this.result(
        'skipped',
        T,
        T,
        `${this.ref} was deleted on the source; kept on the target (deletions: ignore)`,
      );
    }
    // The target holding something other than what the source deleted means someone pushed there:
    // deleting would lose their commits, so that needs the force policy (or proof it is older).
    if (this.before !== undefined && T !== this.before && !this.o.force && !(await this.olderThanBefore(T))) {
      const dst = redactUrl(this.o.target.url);
      return this.diverged(
        T,
        undefined,
        `${this.ref} was deleted on the source at ${short(this.before)}, but the target has ${short(T)}, which may hold commits the source never had; not deleting it`,
        [
          `Check the target's ${this.ref} (${T}); if it can go, delete it there, e.g.`,
          `  git push --force-with-lease=${this.ref}:${T} ${dst} :${this.ref}`,
          `or set force (or deletions: ignore) for this ref.`,
        ].join('\n'),
      );
    }
    if (this.dryRun)
      return this.result('deleted', T, undefined, `would delete ${this.ref} (at ${short(T)}) on the target`);
    try {
      await this.pushLeased(`:${this.ref}`, T);
    } catch (error) {
      // Someone else deleting it first is the outcome we wanted; anything else is a race to report.
      if (!(error instanceof PushRejectedError && error.reason === 'stale info' && !(await this.targetEntry()))) {
        throw error;
      }
      return this.result('up-to-date', T, undefined, `${this.ref} was deleted on the target meanwhile`);
    }
    return this.result('deleted', T, undefined, `deleted ${this.ref} (was ${short(T)}) on the target`);
  }

  private async create(): Promise<MirrorResult> {
    const { after } = this.o;
    const tips = await this.targetTips();
    if (tips.length === 0) {
      // A shallow boundary is never accepted by a receiver that lacks it: an empty target needs it all.
      if (this.dryRun) {
        return this.result(
          'created',
          undefined,
          after,
          `would create ${this.ref} at ${short(after)} in the empty target, with full history`,
        );
      }
      if (!(await this.complete())) await this.unshallow('the target is empty, so it needs the full history');
    }
    if (this.dryRun)
      return this.result('created', undefined, after, `would create ${this.ref} at ${short(after)} on the target`);
    // A new tag nearly always names a commit the target has already: pushing straight away is
    // cheapest. A new branch nearly always brings new commits: connect them to a target tip first.
    const status = await this.deliver(undefined, tips, this.isTag);
    if (status === 'up-to-date') return this.raced();
    return this.result('created', undefined, after, `created ${this.ref} at ${short(after)} on the target`);
  }

  private async updateTag(entry: LsRemoteEntry | undefined): Promise<MirrorResult> {
    const T = entry?.sha ?? '';
    const { after } = this.o;
    if (this.o.force && T === this.before) return await this.rewrite(T, 'the tag was moved on the source');
    const samePeeled = entry?.peeled ?? T;
    const sameCommit = samePeeled === this.afterCommit;
    return this.diverged(
      T,
      undefined,
      `tag ${this.ref} is ${short(T)} on the target but ${short(after)} on the source${sameCommit ? ' (same commit, different tag object)' : ''}; tags are only moved with force, and only when the target still has the source's previous value`,
    );
  }

  private async updateBranch(T: string): Promise<MirrorResult> {
    const { after } = this.o;
    if (this.o.force && T === this.before) {
      // Whatever T's relation to the new tip, policy allows replacing it: no need to prove ancestry
      // (which for a rewrite would mean fetching all history), only to send a push the target
      // accepts. Stop deepening at whichever comes first: T in our history, or a connection to any
      // of the target's tips (a rebase onto the target's main, say).
      const tips = [...(await this.targetTips()), T];
      await this.deepenUntil(async () => (await this.fastForwardReady(T)) || (await this.connected(tips)), false);
      if (await this.fastForwardReady(T)) return this.fastForward(T);
      if (this.dryRun) {
        return this.result(
          'pushed',
          T,
          after,
          `would update ${this.ref} from ${short(T)} to ${short(after)}: a fast-forward, or a rewrite, which force allows since the target is at the source's previous value`,
        );
      }
      return this.rewrite(T, 'the source rewrote the branch');
    }
    const c = await this.classify(T);
    switch (c.kind) {
      case 'ancestor':
        return this.fastForward(T);
      case 'descendant':
        return this.result(
          'skipped',
          T,
          T,
          `the target's ${this.ref} (${short(T)}) already contains ${short(after)} and more; not moving it back`,
        );
      case 'diverged':
        if (this.o.force) {
          return this.diverged(
            T,
            c.mergeBase,
            `${this.ref} has diverged and the target (${short(T)}) is not at the source's previous value (${this.before ? short(this.before) : 'unknown'}), so force does not apply`,
          );
        }
        return this.diverged(T, c.mergeBase, `${this.ref} has diverged between source and target`);
      case 'unknown':
        return this.result(
          'pushed',
          T,
          after,
          `would fetch more history to check that ${short(T)} is an ancestor of ${short(after)}, then fast-forward ${this.ref} (or report divergence)`,
        );
    }
  }

  private async fastForward(T: string): Promise<MirrorResult> {
    const { after } = this.o;
    if (this.dryRun)
      return this.result('pushed', T, after, `would fast-forward ${this.ref} from ${short(T)} to ${short(after)}`);
    const status = await this.deliver(T, [T], false);
    if (status === 'up-to-date') return this.raced();
    return this.result(
      'pushed',
      T,
      after,
      `fast-forwarded ${this.ref} from ${short(T)} to ${short(after)} on the target`,
    );
  }

  private async rewrite(T: string, why: string): Promise<MirrorResult> {
    const { after } = this.o;
    if (this.dryRun) {
      return {
        ...this.result(
          'pushed',
          T,
          after,
          `would force ${this.ref} from ${short(T)} to ${short(after)} (${why}; force allowed)`,
        ),
        forced: true,
      };
    }
    const tips = await this.targetTips();
    const status = await this.deliver(T, [...tips, T], false);
    if (status === 'up-to-date') return this.raced();
    if (status === 'fast-forward') {
      // Git could tell it was a fast-forward after all (T was beyond our deepening bound).
      return this.result(
        'pushed',
        T,
        after,
        `fast-forwarded ${this.ref} from ${short(T)} to ${short(after)} on the target`,
      );
    }
    // The old tip, in full, so it can be restored from a log if the policy turns out to be wrong.
    this.o.logger.warn(`${this.ref}: rewrote the target's history (${why}); previous tip was ${T}, now ${after}`);
    return {
      ...this.result(
        'pushed',
        T,
        after,
        `forced ${this.ref} from ${short(T)} to ${short(after)} on the target (${why}; force allowed, target was at the source's previous value)`,
      ),
      forced: true,
    };
  }

  private raced(): MirrorResult {
    const { after } = this.o;
    return this.result(
      'up-to-date',
      after,
      after,
      `${this.ref} reached ${short(after)} on the target meanwhile (another mirror run); nothing to do`,
    );
  }

  private diverged(T: string, mergeBase: string | undefined, why: string, customRepair?: string): MirrorResult {
    const { after, source, target } = this.o;
    // The Action and the GitLab job know the repositories, not what refbridge.yaml calls them.
    const pair = this.o.pair ?? "<this pair's name in refbridge.yaml>";
    const src = redactUrl(source.url);
    const dst = redactUrl(target.url);
    const repair =
      customRepair ??
      [
        `Decide which side is right, then either`,
        `  refbridge sync --pair ${pair} --dry-run   # shows both tips; settles the pair with its force policy`,
        `or make the target match the source by hand (this discards ${short(T)} on the target; the lease keeps a concurrent push safe):`,
        `  git fetch ${src} ${after}`,
        `  git push --force-with-lease=${this.ref}:${T} ${dst} ${after}:${this.ref}`,
      ].join('\n');
    const lines = [
      why,
      `  source: ${isNullObjectId(after) ? '(deleted)' : after}`,
      `  target: ${T}`,
      ...(mergeBase ? [`  merge base: ${mergeBase}`] : []),
      'Nothing was pushed.',
    ];
    this.o.logger.error(`${this.ref}: diverged (source ${short(after)}, target ${short(T)})`);
    const result = this.result('diverged', T, T, lines.join('\n'));
    result.repair = repair;
    if (mergeBase) result.mergeBase = mergeBase;
    return result;
  }

  private result(
    result: MirrorOutcome,
    before: string | undefined,
    afterValue: string | undefined,
    message: string,
  ): MirrorResult {
    const r: MirrorResult = { result, ref: this.ref, message };
    if (before !== undefined) r.targetBefore = before;
    if (afterValue !== undefined) r.targetAfter = afterValue;
    if (this.fetchedDepth > 0) r.fetchedDepth = this.fetchedDepth;
    if (this.unshallowed) r.unshallowed = true;
    if (this.dryRun) r.dryRun = true;
    return r;
  }

  // ---- deciding -----------------------------------------------------------------------------

  /**
   * Where T stands relative to the new tip. "Not an ancestor" is only believed from complete
   * history: in a shallow checkout a missing path just looks like no path.
   */
  private async classify(T: string): Promise<Classification> {
    if (await this.deepenUntil(() => this.fastForwardReady(T), true)) return { kind: 'ancestor' };
    if (!(await this.complete())) {
      if (this.dryRun) return { kind: 'unknown' };
      throw new RefbridgeError(`could not get the complete history of ${short(this.o.after)} from the source`, {
        hint: 'the source answered --unshallow with partial history (is it a shallow clone itself?); mirror from a complete repository',
      });
    }
    const after = this.commitOfAfter();
    if (!(await this.hasCommit(T))) {
      if (this.dryRun) return { kind: 'unknown' };
      // Not in the source's history of the new tip at all: fetch the target's ref to see whether
      // it is ahead of us or elsewhere.
      await this.fetchTargetRef();
      if (!(await this.hasCommit(T))) {
        throw new RefbridgeError(
          `${this.ref} moved on the target while refbridge was inspecting it (expected ${short(T)})`,
          {
            hint: 'someone is pushing to the target; re-run the job, or run `refbridge sync` to reconcile',
          },
        );
      }
    }
    if (await this.isAncestor(T, after)) return { kind: 'ancestor' };
    if (await this.isAncestor(after, T)) return { kind: 'descendant' };
    const base = await this.mergeBase(T, after);
    return base ? { kind: 'diverged', mergeBase: base } : { kind: 'diverged' };
  }

  /** T is here, is an ancestor of the new tip, and the history in between reaches something the target has. */
  private async fastForwardReady(T: string): Promise<boolean> {
    if (!(await this.hasCommit(T))) return false;
    if (!(await this.isAncestor(T, this.commitOfAfter()))) return false;
    return this.connected([T]);
  }

  /**
   * Whether a push of the new tip would send no shallow boundary the target lacks: every shallow
   * commit in the new tip's local history must be reachable from one of the target's tips.
   */
  private async connected(targetTips: readonly string[]): Promise<boolean> {
    const shallow = await this.shallowCommits();
    if (shallow.size === 0) return true;
    const present = await this.presentCommits(targetTips);
    const after = this.commitOfAfter();
    // The new tip itself a boundary (a depth-1 checkout) and not one of the tips: not connected.
    if (shallow.has(after) && !present.has(after)) return false;
    const key = `${this.generation} ${[...present].sort().join(' ')}`;
    const known = this.connectedMemo.get(key);
    if (known !== undefined) return known;
    const input = [after, ...[...present].map((t) => `^${t}`)].join('\n') + '\n';
    const out = await this.output(['rev-list', '--stdin'], { input });
    const answer = !out.split('\n').some((c) => shallow.has(c));
    this.connectedMemo.set(key, answer);
    return answer;
  }

  /** The new tip's history is all here (no shallow boundary reachable from it). */
  private complete(): Promise<boolean> {
    return this.connected([]);
  }

  /** An old target value that is an ancestor of `before` holds nothing the source did not have. */
  private async olderThanBefore(T: string): Promise<boolean> {
    if (this.before === undefined) return false;
    const present = await this.presentCommits([T, this.before]);
    if (present.size !== 2) return false;
    return this.isAncestor(T, this.before);
  }

  // ---- fetching -------------------------------------------------------------------------------

  /**
   * Deepens the checkout from the source (doubling, bounded) until `ready` holds; with
   * `thenUnshallow`, finally fetches the complete history. Returns whether `ready` holds.
   */
  private async deepenUntil(ready: () => Promise<boolean>, thenUnshallow: boolean): Promise<boolean> {
    if (await ready()) return true;
    if (this.dryRun) return false;
    // One budget of rounds for the whole run: later questions continue where earlier ones stopped.
    this.nextDeepen ??= await this.initialDeepen();
    while (this.roundsUsed < this.rounds) {
      if (await this.complete()) return false;
      const n: number = this.nextDeepen;
      this.o.logger.debug(`${this.ref}: deepening the checkout by ${n} commits`);
      await this.fetchSource(['--deepen', String(n)], this.commitOfAfter());
      this.roundsUsed++;
      this.fetchedDepth += n;
      this.nextDeepen = n * 2;
      if (await ready()) return true;
    }
    if (!thenUnshallow || (await this.complete())) return false;
    await this.unshallow(`${this.rounds} rounds of deepening were not enough`);
    return ready();
  }

  /** Starting step: the number of new commits when `before` is here already, else one. */
  private async initialDeepen(): Promise<number> {
    if (this.before === undefined || !(await this.hasCommit(this.before))) return 1;
    const count = Number(await this.output(['rev-list', '--count', `${this.before}..${this.commitOfAfter()}`]));
    return Number.isInteger(count) && count > 0 ? count : 1;
  }

  private async unshallow(why: string): Promise<void> {
    this.o.logger.info(`${this.ref}: fetching the full history from the source (${why})`);
    await this.fetchSource(['--unshallow'], this.commitOfAfter());
    this.unshallowed = true;
  }

  /** Makes the new tip (commit or tag object) present; false in a dry run when it is not. */
  private async ensureAfter(): Promise<boolean> {
    const { after } = this.o;
    // One query for both: is the new tip here, and which commit is it (tags peeled)?
    const ask = async (): Promise<string[]> =>
      (
        await this.output(['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
          input: `${after}\n${after}^{commit}\n`,
        })
      ).split('\n');
    let lines = await ask();
    if (lines[0]?.endsWith('missing')) {
      if (this.dryRun) return false;
      // Depth 1 in a shallow checkout: a plain fetch of an unrelated commit would bring all its history.
      const shallow = (await this.shallowCommits()).size > 0;
      this.o.logger.info(`${this.ref}: fetching ${short(after)} from the source`);
      await this.fetchSource(shallow ? ['--depth', '1'] : [], after);
      lines = await ask();
    }
    const [commit, type] = (lines[1] ?? '').split(' ');
    if (type !== 'commit' || commit === undefined || !isObjectId(commit)) {
      throw new RefbridgeError(`${short(after)} (${this.ref}) does not point to a commit`, {
        hint: 'refbridge mirrors branches and tags of commits only',
      });
    }
    this.afterCommit = commit;
    return true;
  }

  private commitOfAfter(): string {
    if (this.afterCommit === undefined) throw new Error('internal: new tip not resolved yet');
    return this.afterCommit;
  }

  /**
   * The one way the checkout fetches, from either side: only what was asked for (no tags,
   * FETCH_HEAD, submodules or gc), retried on transient failures since a fetch is safe to repeat.
   * Any fetch can move the shallow boundary, so the cached list is dropped.
   */
  private async fetchFrom(
    endpoint: MirrorEndpoint,
    extra: readonly string[],
    refspec: string,
    hint: string,
  ): Promise<void> {
    await this.git(
      [
        'fetch',
        '--no-tags',
        '--no-write-fetch-head',
        '--no-recurse-submodules',
        '--no-auto-gc',
        ...extra,
        '--',
        endpoint.url,
        refspec,
      ],
      {
        ...(endpoint.credentials ? { credentials: endpoint.credentials } : {}),
        hint,
        retryTransient: true,
      },
    );
    this.shallowCache = undefined;
    this.generation++;
  }

  private async fetchSource(extra: readonly string[], want: string): Promise<void> {
    await this.fetchFrom(
      this.o.source,
      extra,
      want,
      'check that the source URL and token can read the repository and that the pushed commit still exists there',
    );
  }

  /**
   * Fetches the target's ref through a temporary ref (deleted again: nothing must be left in the
   * checkout), so its objects can be compared with the source's.
   */
  private async fetchTargetRef(remoteRef: string = this.ref): Promise<void> {
    const { target } = this.o;
    const tmp = `refs/refbridge/tmp/${randomBytes(6).toString('hex')}`;
    this.o.logger.info(`${this.ref}: fetching the target's ${remoteRef} to compare histories`);
    try {
      await this.fetchFrom(
        target,
        [],
        `+${remoteRef}:${tmp}`,
        'check that the target URL and token can read the repository',
      );
    } finally {
      await this.git(['update-ref', '-d', tmp]);
    }
  }

  /**
   * Best effort: with none of the target's tips here, a push from complete history would send all
   * of it; the target's default branch gives the pack something to be thin against.
   */
  private async fetchTargetHead(): Promise<void> {
    try {
      await this.fetchTargetRef('HEAD');
    } catch (error) {
      this.o.logger.debug(
        `could not fetch the target's HEAD (${error instanceof Error ? error.message : String(error)})`,
      );
    }
  }

  // ---- pushing --------------------------------------------------------------------------------

  /**
   * Pushes the new tip under the lease so that a shallow checkout's push is accepted, in at most
   * three attempts: deepen until the new commits connect to one of the target's tips (or, with
   * `pushFirst`, try the push before that), then push; if the target still refuses a shallow
   * boundary, complete the history and push again. Returns the ref's push flag.
   */
  private async deliver(expect: string | undefined, tips: readonly string[], pushFirst: boolean): Promise<PushFlag> {
    await this.checkLfs();
    const refspec = `${this.o.after}:${this.ref}`;
    const attempt = async (): Promise<PushFlag | 'shallow'> => {
      await this.ensureThinBase(tips);
      return this.tryPush(refspec, expect);
    };
    if (!pushFirst) await this.deepenUntil(() => this.connected(tips), false);
    let flag = await attempt();
    if (flag !== 'shallow') return flag;
    if (pushFirst && (await this.deepenUntil(() => this.connected(tips), false))) {
      flag = await attempt();
      if (flag !== 'shallow') return flag;
    }
    if (!(await this.complete())) await this.unshallow('the target refused a shallow push');
    flag = await attempt();
    if (flag === 'shallow') throw new Error('internal: shallow rejection of a push from complete history');
    return flag;
  }

  /**
   * Refuses (policy `fail`) or warns about (policy `pointers`) a new tip that stores files with Git
   * LFS: only git objects are pushed, so the target would get pointers without their content. Run
   * only on the way to a push, once: refs that push nothing cost nothing.
   */
  private async checkLfs(): Promise<void> {
    if (this.lfsLines !== undefined) return;
    const { after, source, target } = this.o;
    const found = await findLfsTips(this.o.git, [after], { cwd: this.o.workdir });
    this.lfsLines = found.get(after) ?? [];
    if (this.lfsLines.length === 0) return;
    if ((this.o.lfs ?? defaultLfsPolicy) === 'fail') {
      this.o.logger.error(`${this.ref}: uses Git LFS; not mirrored (lfs: fail)`);
      throw new LfsNotMirroredError(this.ref, source.url, target.url, this.lfsLines);
    }
    this.o.logger.warn(
      redactUrl(
        `${this.ref}: stores files with Git LFS (${describeLfsLines(this.lfsLines)}); mirroring the git data only (lfs: pointers), so the target gets pointer files: copy their content separately (${lfsCopyCommands(source.url, target.url)})`,
      ),
    );
  }

  /**
   * Git sends everything not reachable from the target's tips *that it has locally*: with complete
   * history but none of those tips, that is the whole history. The target's default branch gives
   * the pack a base. Only from complete history: into a shallow one, that fetch could itself bring
   * the target's whole history.
   */
  private async ensureThinBase(tips: readonly string[]): Promise<void> {
    if (this.thinBaseFetched || tips.length === 0) return;
    if ((await this.presentCommits(tips)).size > 0 || !(await this.complete())) return;
    this.thinBaseFetched = true;
    await this.fetchTargetHead();
  }

  /** One leased push; a shallow rejection is returned (the caller can fix it), other rejections thrown. */
  private async tryPush(refspec: string, expect: string | undefined): Promise<PushFlag | 'shallow'> {
    try {
      return await this.pushLeased(refspec, expect);
    } catch (error) {
      if (!(error instanceof PushRejectedError)) throw error;
      if (error.reason === 'shallow update not allowed' && !(await this.complete())) {
        this.o.logger.info(`${this.ref}: the target refused a shallow push; fetching more history`);
        return 'shallow';
      }
      if (error.reason === 'stale info') {
        // Another mirror run may have pushed the very same commit; that is success, anything else is a race.
        const now = await this.targetEntry();
        if (now?.sha === this.o.after) return 'up-to-date';
      }
      throw error;
    }
  }

  private async pushLeased(refspec: string, expect: string | undefined): Promise<PushFlag> {
    const { target } = this.o;
    const args = [
      'push',
      '--porcelain',
      // A mirror re-sends what already exists: no local hooks, no extra tags, no submodules, no signing.
      '--no-verify',
      '--no-follow-tags',
      '--no-signed',
      '--recurse-submodules=no',
      `--force-with-lease=${this.ref}:${expect ?? ''}`,
      ...(this.o.pushOptions ?? []).flatMap((o) => ['-o', o]),
      '--',
      target.url,
      refspec,
    ];
    const { stdout, stderr, exitCode } = await this.git(args, {
      okExitCodes: [1],
      ...(target.credentials ? { credentials: target.credentials } : {}),
      hint: 'check that the target URL and token can write to the repository',
      retryTransient: true, // leased on the expected tip; a push that landed already reads "up to date"
    });
    const report = parsePushPorcelain(stdout, stderr);
    const status = report.refs.find((r) => r.to === this.ref);
    if (exitCode !== 0 || !status || status.flag === 'rejected' || status.flag === 'error') {
      throw new PushRejectedError(this.ref, target.url, report, status, stderr);
    }
    for (const m of report.remoteMessages) this.o.logger.info(`remote: ${m}`);
    return status.flag;
  }

  // ---- small git queries ------------------------------------------------------------------

  private async targetEntry(): Promise<LsRemoteEntry | undefined> {
    const { target } = this.o;
    const entries = await listRemoteRefEntries(this.o.git, target.url, {
      cwd: this.o.workdir,
      patterns: [this.ref],
      ...(target.credentials ? { credentials: target.credentials } : {}),
    });
    return entries.find((e) => e.ref === this.ref);
  }

  /** Commits the target's branches and tags point at (tags peeled). */
  private async targetTips(): Promise<string[]> {
    const { target } = this.o;
    const entries = await listRemoteRefEntries(this.o.git, target.url, {
      cwd: this.o.workdir,
      patterns: MIRRORED_REF_PATTERNS,
      ...(target.credentials ? { credentials: target.credentials } : {}),
    });
    return [...new Set(entries.map((e) => e.peeled ?? e.sha))];
  }

  private async shallowCommits(): Promise<Set<string>> {
    if (this.shallowCache) return this.shallowCache;
    let file = this.shallowFile;
    if (file === undefined) {
      const path = await this.output(['rev-parse', '--git-path', 'shallow']);
      file = this.shallowFile = isAbsolute(path) ? path : join(this.o.workdir, path);
    }
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    this.shallowCache = new Set(
      text
        .split('\n')
        .filter((l) => isObjectId(l.trim()))
        .map((l) => l.trim()),
    );
    return this.shallowCache;
  }

  /** The ones among `shas` whose commits (peeling tags) are in the local object store. */
  private async presentCommits(shas: readonly string[]): Promise<Set<string>> {
    if (this.absent.generation !== this.generation) this.absent = { generation: this.generation, shas: new Set() };
    const unique = [...new Set(shas)];
    const unknown = unique.filter((s) => !this.present.has(s) && !this.absent.shas.has(s));
    if (unknown.length > 0) {
      const out = await this.output(['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
        input: unknown.map((s) => `${s}^{commit}`).join('\n') + '\n',
      });
      // One line per input, in order: "<commit id> commit", or "<input> missing".
      const lines = out.split('\n');
      unknown.forEach((sha, i) => (lines[i]?.endsWith(' commit') ? this.present : this.absent.shas).add(sha));
    }
    return new Set(unique.filter((s) => this.present.has(s)));
  }

  private async hasCommit(sha: string): Promise<boolean> {
    return (await this.presentCommits([sha])).has(sha);
  }

  /** `merge-base --is-ancestor`: exit 1 is "no"; 128 (object missing) stays an error, never "no". */
  private async isAncestor(a: string, b: string): Promise<boolean> {
    const r = await this.git(['merge-base', '--is-ancestor', a, b], { okExitCodes: [1] });
    return r.exitCode === 0;
  }

  private async mergeBase(a: string, b: string): Promise<string | undefined> {
    const r = await this.git(['merge-base', a, b], { okExitCodes: [1] });
    const base = r.stdout.trim();
    return r.exitCode === 0 && isObjectId(base) ? base : undefined;
  }

  private git(args: readonly string[], options: Omit<GitRunOptions, 'cwd'> = {}): Promise<GitResult> {
    return this.o.git.run(args, { ...options, cwd: this.o.workdir });
  }

  private async output(args: readonly string[], options: { input?: string } = {}): Promise<string> {
    return (await this.git(args, options)).stdout.trim();
  }
}

function short(sha: string): string {
  return sha.slice(0, 12);
}
