import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { initBareRepo } from './crash-recovery.js';
import { RefbridgeError } from './errors.js';
import type { GitCredential, GitRunner } from './git-runner.js';
import type { Side } from './sync-planner.js';

/**
 * The daemon's persistent cache: one bare repo per pair. Each side's refs are fetched into their
 * own namespace, the agreed tips live under `refs/refbridge/base/`, and every tip refbridge
 * overwrites or deletes is kept under `refs/refbridge/backup/` so any commit can be recovered.
 *
 *   refs/refbridge/github/heads/main      what GitHub had at the last look
 *   refs/refbridge/gitlab/tags/v1         what GitLab had
 *   refs/refbridge/base/heads/main        the tip both last agreed on
 *   refs/refbridge/backup/<utc>/<side>/heads/main   a tip refbridge replaced or deleted
 *   refs/refbridge/out/<side>/...         refs staged for the push in progress
 */

export const BASE_NS = 'refs/refbridge/base/';
export const BACKUP_NS = 'refs/refbridge/backup/';
/** Refs staged for one push (see sync-engine's push); empty between runs. */
export const OUT_NS = 'refs/refbridge/out/';
export const sideNs = (side: Side): string => `refs/refbridge/${side}/`;

/** `refs/heads/x` -> `<ns>heads/x`. */
export function toNamespace(ns: string, ref: string): string {
  return ns + ref.slice('refs/'.length);
}

export function fromNamespace(ns: string, nsRef: string): string {
  return `refs/${nsRef.slice(ns.length)}`;
}

/** Stable, collision-free directory name for a pair: readable name plus a hash of both repo URLs. */
export function pairCacheKey(name: string, githubUrl: string, gitlabUrl: string): string {
  const slug =
    name
      .replace(/[^A-Za-z0-9._-]+/g, '-')
      .replace(/^[.-]+/, '')
      .slice(0, 60) || 'pair';
  const hash = createHash('sha256').update(`${githubUrl}\n${gitlabUrl}`).digest('hex').slice(0, 10);
  return `${slug}-${hash}`;
}

export class PairCache {
  constructor(
    readonly git: GitRunner,
    readonly dir: string,
  ) {}

  /** Creates the bare repo on first use; refuses a directory that exists but is not one. */
  async ensure(): Promise<void> {
    const exists = await stat(this.dir).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (!exists) {
      // Atomic: a run killed while creating the cache must not leave a directory it then refuses.
      await initBareRepo(this.git, this.dir, async (dir) => {
        // The cache is the safety net; never let git prune what only a backup ref still holds.
        await this.git.run(['config', 'gc.pruneExpire', 'never'], { cwd: dir, env: { GIT_DIR: dir } });
        await this.git.run(['config', 'core.logAllRefUpdates', 'false'], { cwd: dir, env: { GIT_DIR: dir } });
      });
      return;
    }
    // git's own test for "is this a git directory" (HEAD, objects/, refs/), without a process:
    // the daemon asks for every pair on every round.
    const [head, objects, refs] = await Promise.all(
      ['HEAD', 'objects', 'refs'].map((name) =>
        stat(join(this.dir, name)).then(
          (s) => (name === 'HEAD' ? s.isFile() : s.isDirectory()),
          () => false,
        ),
      ),
    );
    if (!head || !objects || !refs) {
      throw new RefbridgeError(
        `the cache directory ${this.dir} exists but is not a refbridge cache (not a bare git repository)`,
        {
          hint: 'point --cache at an empty or refbridge-owned directory, or move this one away',
        },
      );
    }
  }

  private run(
    args: string[],
    options: {
      input?: string;
      credentials?: readonly GitCredential[];
      okExitCodes?: number[];
      retryTransient?: boolean;
    } = {},
  ) {
    return this.git.run(args, { cwd: this.dir, env: { GIT_DIR: this.dir }, ...options });
  }

  /** Every ref under refs/refbridge/, grouped. */
  async readRefs(): Promise<{ base: Map<string, string>; github: Map<string, string>; gitlab: Map<string, string> }> {
    const { stdout } = await this.run(['for-each-ref', '--format=%(objectname) %(refname)', 'refs/refbridge/']);
    const base = new Map<string, string>();
    const github = new Map<string, string>();
    const gitlab = new Map<string, string>();
    for (const line of stdout.split('\n')) {
      const space = line.indexOf(' ');
      if (space < 0) continue;
      const sha = line.slice(0, space);
      const name = line.slice(space + 1);
      if (name.startsWith(BASE_NS)) base.set(fromNamespace(BASE_NS, name), sha);
      else if (name.startsWith(sideNs('github'))) github.set(fromNamespace(sideNs('github'), name), sha);
      else if (name.startsWith(sideNs('gitlab'))) gitlab.set(fromNamespace(sideNs('gitlab'), name), sha);
    }
    return { base, github, gitlab };
  }

  /** Refs below a namespace (full names) with their SHAs. */
  async refsUnder(ns: string): Promise<Map<string, string>> {
    const { stdout } = await this.run(['for-each-ref', '--format=%(objectname) %(refname)', ns]);
    const refs = new Map<string, string>();
    for (const line of stdout.split('\n')) {
      const space = line.indexOf(' ');
      if (space > 0) refs.set(line.slice(space + 1), line.slice(0, space));
    }
    return refs;
  }

  /**
   * The subset of `shas` whose history is not complete in the cache. An object being present is
   * not enough: a fetch killed halfway leaves loose objects behind (a commit without its tree),
   * so a tip that no ref reaches yet counts as present only if every object below it is there,
   * the check git's own fetch makes before skipping a transfer. Tips in `complete` (values of the
   * cache's own refs, written only after a complete fetch) are taken as they are, without a git
   * process: for an unchanged pair every tip is one of them, and this costs nothing.
   */
  async missing(shas: Iterable<string>, complete: ReadonlySet<string> = new Set()): Promise<Set<string>> {
    const list = [...new Set(shas)].filter((sha) => !complete.has(sha));
    if (list.length === 0) return new Set();
    const { stdout } = await this.run(['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
      input: list.join('\n') + '\n',
    });
    const missing = new Set<string>();
    for (const line of stdout.split('\n')) {
      const m = /^([0-9a-f]{40,64}) missing$/.exec(line.trim());
      if (m?.[1]) missing.add(m[1]);
    }
    const present = list.filter((sha) => !missing.has(sha));
    if (present.length > 0 && !(await this.connected(present))) {
      // Rare (only after a crash): find the incomplete ones one by one.
      for (const sha of present) if (!(await this.connected([sha]))) missing.add(sha);
    }
    return missing;
  }

  /** Whether every object reachable from `shas` is in the cache (walking only what no ref reaches). */
  private async connected(shas: readonly string[]): Promise<boolean> {
    const r = await this.run(['rev-list', '--objects', '--quiet', '--stdin', '--not', '--all'], {
      input: shas.join('\n') + '\n',
      okExitCodes: [1, 128],
    });
    return r.exitCode === 0;
  }

  /**
   * Fetches the named refs of one side into its namespace. A few refs go as explicit refspecs; past
   * that, one wildcard per kind, because git's client matches each explicit refspec against every
   * advertised ref (seconds per thousand refs). Only missing objects travel either way.
   */
  async fetchRefs(
    side: Side,
    url: string,
    refs: readonly string[],
    credentials: readonly GitCredential[],
  ): Promise<void> {
    if (refs.length === 0) return;
    const ns = sideNs(side);
    const specs =
      refs.length <= 32
        ? refs.map((r) => `+${r}:${toNamespace(ns, r)}`)
        : [...new Set(refs.map((r) => r.split('/').slice(0, 2).join('/')))].map(
            (prefix) => `+${prefix}/*:${toNamespace(ns, prefix)}/*`,
          );
    await this.run(['fetch', '--quiet', '--no-tags', '--no-write-fetch-head', '--no-auto-gc', '--stdin', '--', url], {
      input: specs.join('\n') + '\n',
      credentials,
      retryTransient: true,
    });
  }

  /** Applies ref changes in one transaction (`update-ref --stdin`): all or nothing. */
  async updateRefs(changes: readonly { ref: string; sha?: string | undefined }[]): Promise<void> {
    if (changes.length === 0) return;
    const lines = changes.map((c) => (c.sha ? `update ${c.ref} ${c.sha}` : `delete ${c.ref}`));
    await this.run(['update-ref', '--stdin'], { input: ['start', ...lines, 'prepare', 'commit'].join('\n') + '\n' });
  }

  /** `git merge-base --is-ancestor`: 0 yes, 1 no, 128 unknown (objects missing). */
  async isAncestor(ancestor: string, descendant: string): Promise<number> {
    const r = await this.run(['merge-base', '--is-ancestor', ancestor, descendant], { okExitCodes: [1, 128] });
    return r.exitCode;
  }

  async mergeBase(a: string, b: string): Promise<string | undefined> {
    const r = await this.run(['merge-base', a, b], { okExitCodes: [1, 128] });
    return r.exitCode === 0 ? r.stdout.trim() || undefined : undefined;
  }
}
