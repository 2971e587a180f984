import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { badRequest, invalidParam, missingParams } from './gitlab-access.js';
import { ZERO_SHA, commitTree, git, resolveRef, writeBlob, type GitIdentity } from './repo-writer.js';

/**
 * Git reads and writes behind the GitLab repository endpoints (branches, tags, files, commits).
 * Reads batch into one git process per request where they can; the commits API applies its
 * actions the way Gitaly's UserCommitFiles does, in order, against the tree as it evolves, and
 * moves the branch with a compare-and-swap so a racing push is never silently overwritten.
 */

export interface CommitInfo {
  id: string;
  parentIds: string[];
  authorName: string;
  authorEmail: string;
  authoredDate: string;
  committerName: string;
  committerEmail: string;
  committedDate: string;
  message: string;
}

/** `git %aI` prints `2024-05-01T10:00:00+02:00`; GitLab prints milliseconds too. */
function gitlabDate(iso: string): string {
  return iso.replace(/(T\d\d:\d\d:\d\d)([+-]\d\d:\d\d|Z)$/, '$1.000$2');
}

const FIELD = '\x00';
const RECORD = '\x1e';
const COMMIT_FORMAT = ['%H', '%P', '%an', '%ae', '%aI', '%cn', '%ce', '%cI', '%B'].join('%x00') + '%x1e';

function parseCommits(out: string): CommitInfo[] {
  const commits: CommitInfo[] = [];
  for (const raw of out.split(RECORD)) {
    const rec = raw.replace(/^\n/, '');
    if (!rec) continue;
    const [id, parents, an, ae, ad, cn, ce, cd, ...msg] = rec.split(FIELD);
    if (!id || !/^[0-9a-f]{40}$/.test(id)) continue;
    commits.push({
      id,
      parentIds: parents ? parents.split(' ').filter(Boolean) : [],
      authorName: an ?? '',
      authorEmail: ae ?? '',
      authoredDate: gitlabDate(ad ?? ''),
      committerName: cn ?? '',
      committerEmail: ce ?? '',
      committedDate: gitlabDate(cd ?? ''),
      message: msg.join(FIELD),
    });
  }
  return commits;
}

/** Details of several commits in one git process, keyed by SHA. */
export async function commitInfos(gitDir: string, shas: readonly string[]): Promise<Map<string, CommitInfo>> {
  const unique = [...new Set(shas)];
  const map = new Map<string, CommitInfo>();
  if (unique.length === 0) return map;
  const out = await git(gitDir, ['log', '--no-walk=unsorted', `--format=${COMMIT_FORMAT}`, '--stdin'], {
    input: unique.join('\n') + '\n',
  });
  for (const c of parseCommits(out)) map.set(c.id, c);
  return map;
}

/** A commit by SHA, branch or tag name; undefined when the name does not resolve to a commit. */
export async function findCommit(gitDir: string, rev: string): Promise<CommitInfo | undefined> {
  if (rev.startsWith('-')) return undefined;
  const sha = await resolveRef(gitDir, `${rev}^{commit}`);
  if (!sha) return undefined;
  return (await commitInfos(gitDir, [sha])).get(sha);
}

/** One page of `git log` for the commits API, plus the total for the pagination headers. */
export async function logPage(
  gitDir: string,
  rev: string,
  options: { skip: number; limit: number; path?: string; since?: string; until?: string },
): Promise<{ commits: CommitInfo[]; total: number }> {
  const filters = [
    ...(options.since ? [`--since=${options.since}`] : []),
    ...(options.until ? [`--until=${options.until}`] : []),
  ];
  const paths = options.path ? ['--', options.path] : ['--'];
  const countOut = await git(gitDir, ['rev-list', '--count', ...filters, rev, ...paths], { ok: [128] });
  const total = Number(countOut.trim()) || 0;
  const out = await git(
    gitDir,
    [
      'log',
      `--skip=${options.skip}`,
      `--max-count=${options.limit}`,
      `--format=${COMMIT_FORMAT}`,
      ...filters,
      rev,
      ...paths,
    ],
    { ok: [128] },
  );
  return { commits: parseCommits(out), total };
}

/**
 * Whether the bare repo has no branch yet, from the ref files directly: listing a thousand
 * projects must not start a thousand git processes.
 */
export async function repoIsEmpty(gitDir: string): Promise<boolean> {
  if (await hasAnyFile(join(gitDir, 'refs', 'heads'), 0)) return false;
  try {
    const packed = await readFile(join(gitDir, 'packed-refs'), 'utf8');
    return !/ refs\/heads\//.test(packed);
  } catch {
    return true;
  }
}

async function hasAnyFile(dir: string, depth: number): Promise<boolean> {
  if (depth > 20) return false;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const e of entries) {
    if (e.isFile()) return true;
    if (e.isDirectory() && (await hasAnyFile(join(dir, e.name), depth + 1))) return true;
  }
  return false;
}

export interface RefTip {
  name: string;
  sha: string;
}

export async function listBranches(gitDir: string): Promise<RefTip[]> {
  const out = await git(gitDir, [
    'for-each-ref',
    '--sort=refname',
    '--format=%(refname:strip=2)%00%(objectname)',
    'refs/heads/',
  ]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [name = '', sha = ''] = line.split(FIELD);
      return { name, sha };
    });
}

/** Branch names whose tips are reachable from `target` (GitLab's `merged` flag). */
export async function branchesMergedInto(gitDir: string, target: string): Promise<Set<string>> {
  const sha = await resolveRef(gitDir, `refs/heads/${target}`);
  if (!sha) return new Set();
  const out = await git(gitDir, ['for-each-ref', `--merged=${sha}`, '--format=%(refname:strip=2)', 'refs/heads/']);
  return new Set(out.split('\n').filter(Boolean));
}

export interface TagInfo {
  name: string;
  /** The tag object for annotated tags, the commit otherwise (GitLab's `target`). */
  target: string;
  commit: string;
  message: string | null;
  createdAt: string | null;
}

export async function listTags(gitDir: string): Promise<TagInfo[]> {
  const format =
    [
      '%(refname:strip=2)',
      '%(objecttype)',
      '%(objectname)',
      '%(*objectname)',
      '%(creatordate:iso-strict)',
      '%(contents)',
    ].join('%00') + '%1e';
  const out = await git(gitDir, ['for-each-ref', '--sort=-creatordate', `--format=${format}`, 'refs/tags/']);
  const tags: TagInfo[] = [];
  for (const raw of out.split(RECORD)) {
    const rec = raw.replace(/^\n/, '');
    if (!rec) continue;
    const [name = '', type = '', sha = '', peeled = '', created = '', ...contents] = rec.split(FIELD);
    const annotated = type === 'tag';
    tags.push({
      name,
      target: sha,
      commit: annotated ? peeled : sha,
      message: annotated ? contents.join(FIELD) : '',
      createdAt: annotated && created ? gitlabDate(created) : null,
    });
  }
  return tags;
}

export interface TreeEntry {
  mode: string;
  type: 'blob' | 'tree' | 'commit';
  sha: string;
}

/** Every file of a commit's tree, by path (`ls-tree -r`). */
export async function treeFiles(gitDir: string, rev: string): Promise<Map<string, TreeEntry>> {
  const out = await git(gitDir, ['ls-tree', '-r', '-z', '--full-tree', rev]);
  const map = new Map<string, TreeEntry>();
  for (const rec of out.split('\0')) {
    const m = /^(\d+) (\w+) ([0-9a-f]{40})\t(.*)$/s.exec(rec);
    if (m) map.set(m[4]!, { mode: m[1]!, type: m[2] as TreeEntry['type'], sha: m[3]! });
  }
  return map;
}

export async function lastCommitForPath(gitDir: string, rev: string, path: string): Promise<string | undefined> {
  const out = await git(gitDir, ['log', '--max-count=1', '--format=%H', rev, '--', path], {
    ok: [128],
    env: { GIT_LITERAL_PATHSPECS: '1' },
  });
  return out.trim() || undefined;
}

/** Line additions/deletions of a commit against its first parent (GitLab's `stats`). */
export async function commitStats(
  gitDir: string,
  sha: string,
): Promise<{ additions: number; deletions: number; total: number }> {
  const out = await git(gitDir, ['show', '--numstat', '--format=', '--no-renames', sha]);
  let additions = 0;
  let deletions = 0;
  for (const line of out.split('\n')) {
    const m = /^(\d+|-)\t(\d+|-)\t/.exec(line);
    if (!m) continue;
    additions += m[1] === '-' ? 0 : Number(m[1]);
    deletions += m[2] === '-' ? 0 : Number(m[2]);
  }
  return { additions, deletions, total: additions + deletions };
}

// ---------------------------------------------------------------------------------------------
// Writes

const locks = new Map<string, Promise<unknown>>();

/** Serialises the forge's own writes per repository, as GitLab's per-ref lease does. */
export async function withRepoLock<T>(gitDir: string, fn: () => Promise<T>): Promise<T> {
  const previous = locks.get(gitDir) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => undefined);
  locks.set(gitDir, tail);
  try {
    return await run;
  } finally {
    if (locks.get(gitDir) === tail) locks.delete(gitDir);
  }
}

export interface CommitAction {
  action: string;
  filePath: string;
  previousPath?: string | undefined;
  content?: string | undefined;
  encoding?: string | undefined;
  lastCommitId?: string | undefined;
  executeFilemode?: boolean | undefined;
}

/** Reads `actions[]` as the commits API receives them (snake_case JSON). */
export function parseActions(raw: unknown): CommitAction[] {
  if (!Array.isArray(raw)) throw missingParams('actions');
  if (raw.length === 0) throw badRequest('No actions provided');
  return raw.map((a: unknown, i) => {
    if (!a || typeof a !== 'object') throw invalidParam(`actions[${i}]`);
    const r = a as Record<string, unknown>;
    const s = (k: string): string | undefined => {
      const v = r[k];
      if (typeof v === 'string') return v;
      return typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
    };
    const action = s('action');
    const filePath = s('file_path');
    if (!action) throw missingParams(`actions[${i}][action]`);
    if (!['create', 'update', 'delete', 'move', 'chmod'].includes(action)) {
      throw invalidParam(`actions[${i}][action]`, 'does not have a valid value');
    }
    if (!filePath) throw missingParams(`actions[${i}][file_path]`);
    const encoding = s('encoding');
    if (encoding !== undefined && encoding !== 'text' && encoding !== 'base64') {
      throw invalidParam(`actions[${i}][encoding]`, 'does not have a valid value');
    }
    const exec = r['execute_filemode'];
    return {
      action,
      filePath,
      previousPath: s('previous_path'),
      content: s('content'),
      encoding,
      lastCommitId: s('last_commit_id'),
      executeFilemode: exec === undefined || exec === null ? undefined : exec === true || exec === 'true',
    };
  });
}

/** Paths come from API callers: refuse anything that could leave the tree or the repo. */
function checkPath(path: string): void {
  const parts = path.split('/');
  if (
    path.startsWith('/') ||
    parts.some((p) => p === '..' || p === '.' || p === '') ||
    parts.some((p) => p.toLowerCase() === '.git')
  ) {
    throw badRequest(`Your changes could not be committed, because the file path \`${path}\` is not valid.`);
  }
}

export interface CommitRequest {
  branch: string;
  startBranch?: string | undefined;
  startSha?: string | undefined;
  force: boolean;
  message: string;
  actions: CommitAction[];
  author: GitIdentity;
  committer: GitIdentity;
  /** A matching protected-branch rule forbids force pushes: `force` may then only fast-forward. */
  forbidForcePush?: boolean;
}

export interface CommitResult {
  sha: string;
  /** Tip of the branch before the commit; undefined when the commit created the branch. */
  previousTip: string | undefined;
  /** Whether the repository had no branch before this commit. */
  wasEmpty: boolean;
}

/**
 * GitLab's `Files::MultiService` + `Commits::CreateService` validation order and messages
 * (`app/services/commits/create_service.rb`, `app/services/files/multi_service.rb`), then Gitaly's
 * per-action checks ("A file with this name already exists" / "doesn't exist").
 */
export async function applyCommit(gitDir: string, r: CommitRequest): Promise<CommitResult> {
  return withRepoLock(gitDir, async () => {
    const wasEmpty = await repoIsEmpty(gitDir);
    const startBranch = r.startSha ? r.startBranch : (r.startBranch ?? r.branch);

    if (r.startSha) {
      if (r.startBranch) throw badRequest("You can't pass both start_branch and start_sha");
      if (!/^[0-9a-f]{7,40}$/.test(r.startSha)) throw badRequest(`Invalid start_sha '${r.startSha}'`);
    }
    let base: string | undefined;
    if (r.startSha) {
      base = await resolveRef(gitDir, `${r.startSha}^{commit}`);
      if (!base) throw badRequest(`Cannot find start_sha '${r.startSha}'`);
    } else if (startBranch) {
      base = await resolveRef(gitDir, `refs/heads/${startBranch}`);
      if (!base && !wasEmpty) throw badRequest('You can only create or edit files when you are on a branch');
    }
    const currentTip = await resolveRef(gitDir, `refs/heads/${r.branch}`);
    const differentBranch = startBranch !== r.branch || r.startSha !== undefined;
    if (!wasEmpty && differentBranch && currentTip && !r.force) {
      throw badRequest(`A branch called '${r.branch}' already exists. Switch to that branch in order to make changes`);
    }
    if (r.force && r.forbidForcePush && currentTip && currentTip !== base) {
      const fastForward = base !== undefined && (await isAncestor(gitDir, currentTip, base));
      if (!fastForward)
        throw badRequest('You are not allowed to force push code to a protected branch on this project.');
    }
    if (!isValidBranchName(r.branch)) {
      throw badRequest(`Something went wrong when we tried to create '${r.branch}' for you: Branch name is invalid`);
    }

    for (const a of r.actions) {
      if (!['update', 'move', 'delete', 'chmod'].includes(a.action) || !a.lastCommitId || !base) continue;
      const path = a.previousPath ?? a.filePath;
      if ((await lastCommitForPath(gitDir, base, path)) !== a.lastCommitId) {
        throw badRequest(`The file has changed since you started editing it: ${path}`);
      }
    }

    const files = base ? await treeFiles(gitDir, base) : new Map<string, TreeEntry>();
    const dirs = new Set<string>();
    const addDirs = (p: string): void => {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    };
    for (const p of files.keys()) addDirs(p);
    const changed = new Map<string, TreeEntry | null>();
    const set = (p: string, e: TreeEntry | null): void => {
      if (e) {
        files.set(p, e);
        addDirs(p);
      } else files.delete(p);
      changed.set(p, e);
    };
    const blobOf = async (a: CommitAction): Promise<string> => {
      const content =
        a.encoding === 'base64' ? Buffer.from(a.content ?? '', 'base64') : Buffer.from(a.content ?? '', 'utf8');
      return writeBlob(gitDir, content);
    };
    const fileMode = (exec: boolean | undefined, fallback = '100644'): string =>
      exec === undefined ? fallback : exec ? '100755' : '100644';
    const existsAsFile = (p: string): boolean => files.get(p)?.type === 'blob' || files.get(p)?.type === 'commit';
    const blockedByFile = (p: string): boolean => {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) if (files.has(parts.slice(0, i).join('/'))) return true;
      return false;
    };

    for (const a of r.actions) {
      checkPath(a.filePath);
      if (a.previousPath !== undefined) checkPath(a.previousPath);
      switch (a.action) {
        case 'create': {
          if (dirs.has(a.filePath)) throw badRequest('A directory with this name already exists');
          if (existsAsFile(a.filePath) || blockedByFile(a.filePath))
            throw badRequest('A file with this name already exists');
          set(a.filePath, { mode: fileMode(a.executeFilemode), type: 'blob', sha: await blobOf(a) });
          break;
        }
        case 'update': {
          const cur = files.get(a.filePath);
          if (!cur || cur.type !== 'blob') throw badRequest("A file with this name doesn't exist");
          set(a.filePath, { mode: fileMode(a.executeFilemode, cur.mode), type: 'blob', sha: await blobOf(a) });
          break;
        }
        case 'delete': {
          if (!existsAsFile(a.filePath)) throw badRequest("A file with this name doesn't exist");
          set(a.filePath, null);
          break;
        }
        case 'chmod': {
          const cur = files.get(a.filePath);
          if (!cur || cur.type !== 'blob') throw badRequest("A file with this name doesn't exist");
          set(a.filePath, { ...cur, mode: fileMode(a.executeFilemode ?? false) });
          break;
        }
        case 'move': {
          const from = a.previousPath;
          if (from === undefined) throw missingParams('previous_path');
          const cur = files.get(from);
          if (!cur || cur.type !== 'blob') throw badRequest("A file with this name doesn't exist");
          if (dirs.has(a.filePath)) throw badRequest('A directory with this name already exists');
          if (from !== a.filePath && (existsAsFile(a.filePath) || blockedByFile(a.filePath))) {
            throw badRequest('A file with this name already exists');
          }
          // Without content, a move keeps the blob as it is.
          const sha = a.content === undefined ? cur.sha : await blobOf(a);
          set(from, null);
          set(a.filePath, { mode: cur.mode, type: 'blob', sha });
          break;
        }
        default:
          throw badRequest(`Unknown action '${a.action}'`);
      }
    }

    const sha = await writeCommit(gitDir, {
      base,
      changed,
      message: r.message,
      author: r.author,
      committer: r.committer,
    });
    const ref = `refs/heads/${r.branch}`;
    try {
      await git(gitDir, ['update-ref', ref, sha, currentTip ?? ZERO_SHA]);
    } catch {
      throw badRequest(`Could not update refs/heads/${r.branch}. Please refresh and try again.`);
    }
    return { sha, previousTip: currentTip, wasEmpty };
  });
}

async function writeCommit(
  gitDir: string,
  o: {
    base: string | undefined;
    changed: Map<string, TreeEntry | null>;
    message: string;
    author: GitIdentity;
    committer: GitIdentity;
  },
): Promise<string> {
  const indexDir = join(tmpdir(), `forge-gl-index-${randomUUID()}`);
  await mkdir(indexDir, { recursive: true });
  const env = { GIT_INDEX_FILE: join(indexDir, 'index') };
  try {
    await git(gitDir, o.base ? ['read-tree', o.base] : ['read-tree', '--empty'], { env });
    const lines: string[] = [];
    for (const [path, e] of o.changed) {
      lines.push(e ? `${e.mode} ${e.sha}\t${path}` : `0 ${ZERO_SHA}\t${path}`);
    }
    if (lines.length > 0)
      await git(gitDir, ['update-index', '-z', '--index-info'], { env, input: lines.join('\0') + '\0' });
    const tree = (await git(gitDir, ['write-tree'], { env })).trim();
    return await commitTree(gitDir, {
      tree,
      parents: o.base ? [o.base] : [],
      message: o.message,
      author: o.author,
      committer: o.committer,
    });
  } finally {
    await rm(indexDir, { recursive: true, force: true });
  }
}

async function isAncestor(gitDir: string, ancestor: string, descendant: string): Promise<boolean> {
  try {
    await git(gitDir, ['merge-base', '--is-ancestor', ancestor, descendant]);
    return true;
  } catch {
    return false;
  }
}

/** git's own `check-ref-format --branch` rules, reduced to what callers can trip over. */
export function isValidBranchName(name: string): boolean {
  if (!name || name.startsWith('-') || name.startsWith('/') || name.endsWith('/') || name.endsWith('.')) return false;
  if (name === 'HEAD' || name.includes('..') || name.includes('@{') || name.includes('//')) return false;
  // eslint-disable-next-line no-control-regex -- git refuses control characters in ref names
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return false;
  return !name.split('/').some((c) => c.startsWith('.') || c.endsWith('.lock'));
}
