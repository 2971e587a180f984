import type { Forge, ProtectionRule, Visibility } from './forge.js';
import type { GitCredential, GitRunner } from './git-runner.js';
import { parsePushPorcelain, type PushRefStatus } from './git-parsers.js';
import type { Logger } from './logger.js';
import { isMirroredRef, listRemoteRefs } from './remote-refs.js';

/**
 * Pushing a backup mirror on to a second forge (GitLab): branches and tags only, never hidden refs
 * (`refs/pull/*` would make GitLab refuse the push), never `--mirror`. Each ref is leased on the
 * tip the destination had when we looked, so a push made there in between is refused, not lost.
 * A destination ref is deleted only when refbridge itself put it there and it is still at that tip.
 *
 * Protected branches refuse rewrites; the refusal is reported with the rules that caused it. Only
 * with the explicit opt-in is force push allowed on those rules, for this one push, logged, and
 * restored in `finally` whatever happens.
 */

export interface DestinationTarget {
  forge: Forge;
  credentials: readonly GitCredential[];
  /** Project path on the destination, e.g. `mirrors/acme/widgets`. */
  path: string;
  visibility: Visibility;
  description?: string;
  pushOptions: readonly string[];
  temporarilyAllowForcePush: boolean;
}

export interface RefusedRef {
  ref: string;
  reason: string;
  /** The rules that refuse it, e.g. `protected branch "main"`. */
  rules: string[];
}

export interface DestinationResult {
  status: 'created' | 'pushed' | 'unchanged' | 'partial' | 'failed';
  path: string;
  created: boolean;
  updated: string[];
  deleted: string[];
  refused: RefusedRef[];
  /** What the destination holds now for the refs refbridge manages there. */
  tips: Record<string, string>;
  detail: string;
  /** Force push was allowed temporarily on these rules (and restored). */
  relaxed: string[];
}

export interface PushDestinationOptions {
  git: GitRunner;
  logger: Logger;
  gitDir: string;
  label: string;
  target: DestinationTarget;
  /** Branch and tag tips of the mirror. */
  sourceTips: Record<string, string>;
  /** The mirror's default branch; pushed first so a new project takes it as its default. */
  defaultBranch: string | null;
  /** What refbridge pushed last time (to know which destination refs it may delete). */
  previouslyPushed: Record<string, string> | undefined;
}

interface Write {
  ref: string;
  /** New tip; undefined deletes. */
  sha: string | undefined;
  /** The destination's tip when planned; '' = must not exist. */
  expected: string;
}

const CHUNK = 500;

function isProtectionRefusal(st: PushRefStatus | undefined, message: string): boolean {
  const text = `${st?.reason ?? ''} ${message}`;
  return /protected branch|protected tag|GH006|force.push|pre-receive hook declined|hook declined/i.test(text);
}

async function pushWrites(
  options: PushDestinationOptions,
  url: string,
  writes: readonly Write[],
): Promise<Map<string, { status: PushRefStatus; message: string }>> {
  const out = new Map<string, { status: PushRefStatus; message: string }>();
  for (let i = 0; i < writes.length; i += CHUNK) {
    const chunk = writes.slice(i, i + CHUNK);
    const args = ['push', '--porcelain', '--no-verify'];
    for (const o of options.target.pushOptions) args.push('-o', o);
    for (const w of chunk) args.push(`--force-with-lease=${w.ref}:${w.expected}`);
    args.push('--', url);
    for (const w of chunk) args.push(w.sha === undefined ? `:${w.ref}` : `${w.sha}:${w.ref}`);
    const r = await options.git.run(args, {
      cwd: options.gitDir,
      env: { GIT_DIR: options.gitDir },
      credentials: options.target.credentials,
      okExitCodes: [1],
      hint: `check that the ${options.target.forge.platform} token can push to ${url}`,
      retryTransient: true, // leased: a repeated push cannot overwrite anything unexpected
    });
    const report = parsePushPorcelain(r.stdout, r.stderr);
    const message = [...report.remoteMessages, ...report.errors].join(' ').trim();
    for (const st of report.refs) out.set(st.to, { status: st, message });
    if (report.refs.length === 0 && r.exitCode !== 0) {
      // git gave up before reporting refs (auth, network): every ref of the chunk failed.
      for (const w of chunk) {
        out.set(w.ref, {
          status: { flag: 'error', from: '', to: w.ref, summary: '[error]', reason: message || 'push failed' },
          message,
        });
      }
    }
  }
  return out;
}

const ok = (st: PushRefStatus | undefined): boolean =>
  st !== undefined && st.flag !== 'rejected' && st.flag !== 'error';

export async function pushToDestination(options: PushDestinationOptions): Promise<DestinationResult> {
  const { target, logger } = options;
  const forge = target.forge;
  let created = false;
  if ((await forge.getRepo(target.path)) === undefined) {
    await forge.createRepo(target.path, {
      visibility: target.visibility,
      ...(target.description ? { description: target.description } : {}),
    });
    created = true;
  }
  const url = forge.gitUrl(target.path);
  const remote = await listRemoteRefs(options.git, url, { credentials: target.credentials, cwd: options.gitDir });

  const writes: Write[] = [];
  const defaultRef = options.defaultBranch ? `refs/heads/${options.defaultBranch}` : undefined;
  const sourceRefs = Object.keys(options.sourceTips)
    .filter(isMirroredRef)
    .sort((a, b) => (a === defaultRef ? -1 : b === defaultRef ? 1 : a.localeCompare(b)));
  for (const ref of sourceRefs) {
    const sha = options.sourceTips[ref] as string;
    if (remote.get(ref) !== sha) writes.push({ ref, sha, expected: remote.get(ref) ?? '' });
  }
  const tips: Record<string, string> = {};
  for (const ref of sourceRefs)
    if (remote.get(ref) === options.sourceTips[ref]) tips[ref] = options.sourceTips[ref] as string;
  for (const [ref, pushed] of Object.entries(options.previouslyPushed ?? {})) {
    if (ref in options.sourceTips) continue;
    const now = remote.get(ref);
    // Deleted upstream: delete here only what we put here and nobody has moved since.
    if (now !== undefined && now === pushed) writes.push({ ref, sha: undefined, expected: now });
  }

  if (writes.length === 0) {
    return {
      status: created ? 'created' : 'unchanged',
      path: target.path,
      created,
      updated: [],
      deleted: [],
      refused: [],
      tips,
      detail: 'up to date',
      relaxed: [],
    };
  }

  const results = await pushWrites(options, url, writes);
  const updated: string[] = [];
  const deleted: string[] = [];
  const refused: RefusedRef[] = [];
  const relaxed: string[] = [];
  const retry: { write: Write; rules: ProtectionRule[] }[] = [];
  // A refused write leaves the destination at its old tip; it stays "ours" only if we put it there.
  const keepOld = (w: Write): void => {
    if (w.expected !== '' && (w.sha === undefined || options.previouslyPushed?.[w.ref] === w.expected))
      tips[w.ref] = w.expected;
  };
  for (const w of writes) {
    const r = results.get(w.ref);
    if (ok(r?.status)) {
      if (w.sha === undefined) deleted.push(w.ref);
      else {
        updated.push(w.ref);
        tips[w.ref] = w.sha;
      }
      continue;
    }
    const reason = [r?.status.reason ?? 'no status from git', r?.message].filter((x) => x).join(': ');
    let rules: ProtectionRule[] = [];
    if (isProtectionRefusal(r?.status, r?.message ?? '')) {
      rules = (await forge.protectionRules(target.path, w.ref).catch(() => [] as ProtectionRule[])).filter((rule) =>
        w.sha === undefined ? !rule.allowDeletion : !rule.allowForcePush,
      );
    }
    if (w.sha !== undefined && target.temporarilyAllowForcePush && rules.length > 0) retry.push({ write: w, rules });
    else refused.push({ ref: w.ref, reason, rules: rules.map((x) => x.source) });
    keepOld(w);
  }

  for (const { write, rules } of retry) {
    const changed: ProtectionRule[] = [];
    let outcome: { status: PushRefStatus; message: string } | undefined;
    try {
      for (const rule of rules) {
        await forge.setForcePushAllowed(target.path, rule, true);
        changed.push(rule);
        logger.warn(
          `${options.label}: temporarily allowed force push on ${forge.platform} ${target.path} (${rule.source}) to update ${write.ref}`,
        );
      }
      outcome = (await pushWrites(options, url, [write])).get(write.ref);
    } finally {
      for (const rule of changed) {
        await forge.setForcePushAllowed(target.path, rule, false);
        logger.warn(`${options.label}: restored "no force push" on ${forge.platform} ${target.path} (${rule.source})`);
      }
    }
    if (ok(outcome?.status)) {
      updated.push(write.ref);
      tips[write.ref] = write.sha as string;
      relaxed.push(...rules.map((r) => r.source));
    } else {
      keepOld(write);
      refused.push({
        ref: write.ref,
        reason: [outcome?.status.reason ?? 'no status from git', outcome?.message].filter((x) => x).join(': '),
        rules: rules.map((r) => r.source),
      });
    }
  }

  const status: DestinationResult['status'] =
    refused.length === 0
      ? created
        ? 'created'
        : 'pushed'
      : updated.length + deleted.length > 0
        ? 'partial'
        : 'failed';
  const parts = [`${updated.length} updated`, `${deleted.length} deleted`];
  if (refused.length > 0) {
    parts.push(
      `${refused.length} refused: ${refused
        .map((r) => `${r.ref} (${r.rules.length > 0 ? `rule: ${r.rules.join(', ')}; ` : ''}${r.reason})`)
        .join('; ')}`,
    );
  }
  if (relaxed.length > 0)
    parts.push(`force push allowed temporarily on ${[...new Set(relaxed)].join(', ')} and restored`);
  return { status, path: target.path, created, updated, deleted, refused, tips, detail: parts.join(', '), relaxed };
}
