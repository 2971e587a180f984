/**
 * Parsers for the machine-readable output of `git ls-remote` and `git push --porcelain`.
 * They are strict on purpose: a line they do not understand is an error, because a half-read ref
 * listing looks exactly like a repository with fewer refs (and deleting from an incomplete view is
 * how mirrors lose branches).
 */
import { RefbridgeError } from './errors.js';

/** Git prints output it cannot be parsed from; usually a git version or transport we do not know. */
export class GitOutputError extends RefbridgeError {
  readonly line: string;

  constructor(command: string, line: string, detail: string) {
    super(`could not read the output of git ${command}: ${detail}: ${JSON.stringify(line.slice(0, 200))}`, {
      hint: 'run the same git command by hand to see what it prints; report it with your git version (`git version`)',
    });
    this.line = line;
  }
}

const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** True for a full object id (SHA-1 or SHA-256), lowercase as git prints them. */
export function isObjectId(value: string): boolean {
  return OBJECT_ID.test(value);
}

/** The all-zero id git and the platforms use for "no such ref" (creation `before`, deletion `after`). */
export function isNullObjectId(value: string): boolean {
  return /^0+$/.test(value) && (value.length === 40 || value.length === 64);
}

export interface LsRemoteEntry {
  /** Full ref name (`refs/heads/main`), or `HEAD`. */
  ref: string;
  /** What the ref points at: for an annotated tag, the tag object. */
  sha: string;
  /** For annotated tags: the object the tag finally points at (from the `<tag>^{}` line). */
  peeled?: string;
  /** For symbolic refs listed with `--symref`: the ref they point to (`HEAD` -> `refs/heads/main`). */
  symref?: string;
}

/**
 * Parses `git ls-remote [--symref]` output. `<tag>^{}` lines are folded into `peeled` of their tag;
 * `ref: <target>\t<name>` lines into `symref`. Order of first appearance is kept.
 */
export function parseLsRemote(stdout: string): LsRemoteEntry[] {
  const entries = new Map<string, LsRemoteEntry>();
  const symrefs = new Map<string, string>();
  const peeled = new Map<string, string>();
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '') continue;
    const tab = line.indexOf('\t');
    if (tab < 0) throw new GitOutputError('ls-remote', line, 'expected "<object id><TAB><ref>"');
    const left = line.slice(0, tab);
    const name = line.slice(tab + 1);
    if (name === '') throw new GitOutputError('ls-remote', line, 'empty ref name');
    if (left.startsWith('ref: ')) {
      symrefs.set(name, left.slice('ref: '.length));
      continue;
    }
    if (!isObjectId(left)) throw new GitOutputError('ls-remote', line, 'not an object id');
    if (name.endsWith('^{}')) {
      peeled.set(name.slice(0, -3), left);
      continue;
    }
    if (entries.has(name)) throw new GitOutputError('ls-remote', line, 'ref listed twice');
    entries.set(name, { ref: name, sha: left });
  }
  for (const [name, sha] of peeled) {
    const entry = entries.get(name);
    // A peeled line without its tag line would mean a truncated listing: refuse rather than guess.
    if (!entry) throw new GitOutputError('ls-remote', `${sha}\t${name}^{}`, 'peeled line without its tag');
    entry.peeled = sha;
  }
  for (const [name, target] of symrefs) {
    const entry = entries.get(name);
    if (entry) entry.symref = target;
  }
  return [...entries.values()];
}

export type PushFlag = 'new' | 'fast-forward' | 'forced' | 'deleted' | 'up-to-date' | 'rejected' | 'error';

export interface PushRefStatus {
  flag: PushFlag;
  /** Source side of the refspec as git prints it (`HEAD`, `refs/heads/x`, an object id); empty for a deletion. */
  from: string;
  /** The remote ref. */
  to: string;
  /** `[new branch]`, `[rejected]`, `[remote rejected]`, `abc1234..def5678`, ... */
  summary: string;
  /** The text in parentheses: `stale info`, `non-fast-forward`, `pre-receive hook declined`, `forced update`, ... */
  reason?: string;
  /** Abbreviated old and new ids, for fast-forward and forced updates. */
  oldAbbrev?: string;
  newAbbrev?: string;
}

export interface PushReport {
  /** From the `To <url>` line. */
  url?: string;
  refs: PushRefStatus[];
  /**
   * Lines the remote printed (`remote: ` stripped, trailing padding removed). Hooks, GitHub and
   * GitLab explain rejections here: "GH006: Protected branch update failed", "You are not allowed
   * to force push code to a protected branch on this project.", ...
   */
  remoteMessages: string[];
  /** `error:` and `fatal:` lines from git itself. */
  errors: string[];
  /** Whether git printed the final `Done` (it does even when refs were rejected). */
  done: boolean;
}

const FLAGS: Record<string, PushFlag | undefined> = {
  ' ': 'fast-forward',
  '+': 'forced',
  '-': 'deleted',
  '*': 'new',
  '=': 'up-to-date',
};

function parsePushLine(line: string): PushRefStatus {
  const parts = line.split('\t');
  const flagChar = parts[0];
  const refspec = parts[1];
  const rest = parts[2];
  if (parts.length !== 3 || flagChar === undefined || flagChar.length !== 1 || !refspec || !rest) {
    throw new GitOutputError('push --porcelain', line, 'expected "<flag><TAB><from>:<to><TAB><summary>"');
  }
  const colon = refspec.indexOf(':');
  if (colon < 0) throw new GitOutputError('push --porcelain', line, 'refspec without ":"');
  const from = refspec.slice(0, colon);
  const to = refspec.slice(colon + 1);

  // `[new branch]` has a space inside the brackets, `abc..def (forced update)` does not.
  let summary: string;
  let tail: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new GitOutputError('push --porcelain', line, 'unterminated "["');
    summary = rest.slice(0, close + 1);
    tail = rest.slice(close + 1).trim();
  } else {
    const space = rest.indexOf(' ');
    summary = space < 0 ? rest : rest.slice(0, space);
    tail = space < 0 ? '' : rest.slice(space + 1).trim();
  }
  const reason = tail.startsWith('(') && tail.endsWith(')') ? tail.slice(1, -1) : tail || undefined;

  let flag: PushFlag;
  if (flagChar === '!') {
    flag = summary === '[rejected]' || summary === '[remote rejected]' ? 'rejected' : 'error';
  } else {
    const known = FLAGS[flagChar];
    if (!known) throw new GitOutputError('push --porcelain', line, `unknown flag ${JSON.stringify(flagChar)}`);
    flag = known;
  }
  const status: PushRefStatus = { flag, from, to, summary };
  if (reason !== undefined) status.reason = reason;
  const range = /^([0-9a-f]+)\.\.\.?([0-9a-f]+)$/.exec(summary);
  if (range?.[1] && range[2]) {
    status.oldAbbrev = range[1];
    status.newAbbrev = range[2];
  }
  return status;
}

/**
 * Parses `git push --porcelain` stdout (one status line per ref) and collects the `remote:` lines
 * from stderr, where servers put the *why* of a rejection.
 */
export function parsePushPorcelain(stdout: string, stderr = ''): PushReport {
  const report: PushReport = { refs: [], remoteMessages: [], errors: [], done: false };
  for (const raw of stdout.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '') continue;
    if (line.startsWith('To ')) {
      report.url = line.slice(3);
      continue;
    }
    if (line === 'Done') {
      report.done = true;
      continue;
    }
    report.refs.push(parsePushLine(line));
  }
  // Progress output rewrites lines with \r; remote lines are padded (or end in ESC[K on a terminal).
  for (const raw of stderr.split(/\r?\n|\r/)) {
    const line = raw.split('\u001b[K').join('').replace(/\s+$/, '');
    const remote = /^remote:\s?(.*)$/.exec(line);
    if (remote) {
      const text = remote[1]?.trim() ?? '';
      if (text !== '') report.remoteMessages.push(text);
    } else if (/^(?:error|fatal): /.test(line)) {
      report.errors.push(line);
    }
  }
  return report;
}
