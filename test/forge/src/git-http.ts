import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createGunzip, type Gunzip } from 'node:zlib';
import type { ApiResponse } from './http-kit.js';
import {
  ZERO_OID,
  decidePush,
  githubCanRead,
  githubCanWrite,
  gitlabCanReadCode,
  gitlabTokenCanRead,
  gitlabTokenCanWrite,
  gitlabAccessLevel,
  refsNeedingForcedCheck,
  tokenUsable,
  type RefUpdate,
} from './push-policy.js';
import { protectGitlabDefaultBranch } from './repo-factory.js';
import { git, listRefs } from './repo-writer.js';
import type { ForgeContext } from './server.js';
import {
  now,
  type ForgeToken,
  type GithubRepo,
  type GitlabProject,
  type Platform,
  type PushLogEntry,
} from './state.js';

export { decidePush } from './push-policy.js';

/**
 * Git smart HTTP for both platforms through git's own `git http-backend` (CGI), with each
 * platform's authentication answers. Pushes are judged by the receive hooks (forge-hook.mjs),
 * which call back into `handleHookCall` with what git knows about each ref update.
 */

type Service = 'git-upload-pack' | 'git-receive-pack';
type AnyRepo = GithubRepo | GitlabProject;

const GIT_PATH = /^\/(.+?)\/(info\/refs|git-upload-pack|git-receive-pack)$/;

/** Settings the platforms have that a plain bare repo lacks, applied to every request. */
const PLATFORM_GIT_CONFIG: [string, string][] = [
  ['uploadpack.allowFilter', 'true'],
  ['uploadpack.allowReachableSHA1InWant', 'true'],
  ['uploadpack.allowAnySHA1InWant', 'false'],
  ['receive.shallowUpdate', 'false'],
];

interface PendingPush {
  id: string;
  platform: Platform;
  repo: AnyRepo;
  repoName: string;
  token: ForgeToken | undefined;
  bytes: number;
  /** Commands and push options read from the request body (what the client asked for). */
  attempted: { ref: string; old: string; new: string }[];
  pushOptions: string[];
  /** What the hooks reported. */
  analysed: RefUpdate[];
  rejected: Map<string, string>;
  messages: string[];
  applied: { ref: string; old: string; new: string }[] | undefined;
}

const pending = new Map<string, PendingPush>();

export function repoFullName(platform: Platform, repo: AnyRepo): string {
  return platform === 'github'
    ? `${(repo as GithubRepo).owner}/${(repo as GithubRepo).name}`
    : `${(repo as GitlabProject).namespace}/${(repo as GitlabProject).path}`;
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header?.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? { user: decoded, password: '' } : { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...headers,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-cache',
  });
  res.end(text);
}

const MESSAGES = {
  github: {
    realm: 'Basic realm="GitHub"',
    badCredentials: 'Invalid username or token. Password authentication is not supported for Git operations.\n',
    notFound: 'Repository not found.\n',
    archived: 'This repository was archived so it is read-only.\n',
    denied: (repo: string, login: string) => `Permission to ${repo}.git denied to ${login}.\n`,
  },
  gitlab: {
    realm: 'Basic realm="GitLab"',
    badCredentials: (web: string) =>
      `HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password. If a token was provided, it was either incorrect, expired, or improperly scoped. See ${web}/help/topics/git/troubleshooting_git.md#error-on-git-fetch-http-basic-access-denied\n`,
    notFound: "The project you were looking for could not be found or you don't have permission to view it.\n",
    archived: "You can't push code to an archived project.\n",
    download: 'You are not allowed to download code.\n',
    upload: 'You are not allowed to upload code.\n',
    push: 'You are not allowed to push code to this project.\n',
  },
} as const;

export async function handleGitRequest(
  platform: Platform,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ctx: ForgeContext,
): Promise<boolean> {
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/_forge/')) return false;
  const m = GIT_PATH.exec(url.pathname);
  if (!m) return false;
  const action = m[2] as 'info/refs' | Service;
  let service: Service;
  if (action === 'info/refs') {
    const s = url.searchParams.get('service');
    if (s !== 'git-upload-pack' && s !== 'git-receive-pack') return false; // the dumb protocol is not served
    service = s;
  } else {
    service = action;
  }
  const method = req.method ?? 'GET';
  const routeKey = action === 'info/refs' ? `GET info/refs?service=${service}` : `POST ${service}`;
  const { state } = ctx;
  let user: string | undefined;
  let faultName: string | undefined;
  const log = (status: number): void => {
    state.requestLog.push({
      seq: state.nextSeq(),
      platform,
      kind: 'git',
      method,
      route: routeKey,
      path: url.pathname + (action === 'info/refs' ? `?service=${service}` : ''),
      status,
      ...(user === undefined ? {} : { user }),
      ...(faultName === undefined ? {} : { fault: faultName }),
      at: now(),
    });
  };
  const refuse = (status: number, text: string, headers: Record<string, string> = {}): true => {
    log(status);
    sendText(res, status, text, headers);
    return true;
  };

  if ((action === 'info/refs') !== (method === 'GET' || method === 'HEAD')) {
    return refuse(405, 'Method Not Allowed\n');
  }

  const fault = ctx.faults.decide(platform, 'git', routeKey, url.pathname);
  if (fault) {
    faultName = fault.kind;
    const applied = await ctx.faults.apply(fault, platform, res);
    if (applied.handled) {
      log(applied.status);
      return true;
    }
  }

  // Authentication: Basic only, as git sends it.
  const basic = parseBasic(req.headers.authorization);
  let token: ForgeToken | undefined;
  if (basic) {
    // GitHub also takes the token as the user name with an empty or `x-oauth-basic` password.
    const candidate =
      platform === 'github' && (basic.password === '' || basic.password === 'x-oauth-basic')
        ? basic.user
        : basic.password;
    const found = state.token(candidate, platform);
    const userOk =
      platform === 'github' ||
      (found !== undefined && (basic.user === 'oauth2' || basic.user.toLowerCase() === found.user.toLowerCase()));
    if (!tokenUsable(found) || !userOk) {
      return platform === 'github'
        ? refuse(401, MESSAGES.github.badCredentials, { 'www-authenticate': MESSAGES.github.realm })
        : refuse(401, MESSAGES.gitlab.badCredentials(ctx.urls.gitlab.web), {
            'www-authenticate': MESSAGES.gitlab.realm,
          });
    }
    token = found;
    user = found.user;
  }

  let repoPath: string;
  try {
    repoPath = decodeURIComponent(m[1]!);
  } catch {
    return refuse(400, 'Bad Request\n');
  }
  repoPath = repoPath.replace(/\.git$/i, '');
  const write = service === 'git-receive-pack';
  let repo: AnyRepo | undefined;

  if (platform === 'github') {
    const parts = repoPath.split('/');
    const r = parts.length === 2 ? state.githubRepo(parts[0]!, parts[1]!) : undefined;
    if (!r || !githubCanRead(state, r, token)) {
      // GitHub asks anonymous clients for credentials rather than saying whether a repo exists.
      if (!token) return refuse(401, MESSAGES.github.notFound, { 'www-authenticate': MESSAGES.github.realm });
      return refuse(404, MESSAGES.github.notFound);
    }
    if (write) {
      if (!token) return refuse(401, 'Authentication required.\n', { 'www-authenticate': MESSAGES.github.realm });
      if (!githubCanWrite(state, r, token))
        return refuse(403, MESSAGES.github.denied(`${r.owner}/${r.name}`, token.user));
      if (r.archived) return refuse(403, MESSAGES.github.archived);
    }
    repo = r;
  } else {
    const p = state.gitlabProject(repoPath);
    if (!p || !gitlabCanReadCode(state, p, token?.user)) {
      if (!token)
        return refuse(401, MESSAGES.gitlab.badCredentials(ctx.urls.gitlab.web), {
          'www-authenticate': MESSAGES.gitlab.realm,
        });
      return refuse(404, MESSAGES.gitlab.notFound);
    }
    if (token && !gitlabTokenCanRead(token)) return refuse(403, MESSAGES.gitlab.download);
    if (write) {
      if (!token)
        return refuse(401, MESSAGES.gitlab.badCredentials(ctx.urls.gitlab.web), {
          'www-authenticate': MESSAGES.gitlab.realm,
        });
      if (!gitlabTokenCanWrite(token)) return refuse(403, MESSAGES.gitlab.upload);
      if (gitlabAccessLevel(state, p, token.user) < 30) return refuse(403, MESSAGES.gitlab.push);
      if (p.archived) return refuse(403, MESSAGES.gitlab.archived);
    }
    repo = p;
  }

  const push: PendingPush | undefined =
    write && action !== 'info/refs'
      ? {
          id: randomUUID(),
          platform,
          repo,
          repoName: repoFullName(platform, repo),
          token,
          bytes: 0,
          attempted: [],
          pushOptions: [],
          analysed: [],
          rejected: new Map(),
          messages: [],
          applied: undefined,
        }
      : undefined;
  if (push) pending.set(push.id, push);
  try {
    await runBackend(platform, req, res, url, ctx, repo, action, push, log);
  } finally {
    if (push) pending.delete(push.id);
  }
  return true;
}

interface Backend {
  /** Program and arguments that run `git http-backend`. */
  command: string;
  args: string[];
  /** The part of its environment that is the same for every request to one platform's root. */
  env: Readonly<Record<string, string>>;
}

const backends = new Map<string, Promise<Backend>>();

/**
 * How to run http-backend for one platform's root, worked out once. `git http-backend` is not a
 * builtin: the `git` wrapper only sets GIT_EXEC_PATH, puts the exec path first in PATH and runs
 * `<exec-path>/git-http-backend`. Doing that here leaves http-backend with the very same
 * environment and saves one git process per request.
 */
function backendFor(root: string): Promise<Backend> {
  let backend = backends.get(root);
  if (!backend) {
    backend = resolveBackend(root);
    backends.set(root, backend);
  }
  return backend;
}

async function resolveBackend(root: string): Promise<Backend> {
  const path = process.env['PATH'] ?? '/usr/bin:/bin';
  const env: Record<string, string> = {
    PATH: path,
    HOME: root,
    LC_ALL: 'C',
    // The machine's git config must not change what the forge serves.
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_CONFIG_COUNT: String(PLATFORM_GIT_CONFIG.length),
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
  };
  PLATFORM_GIT_CONFIG.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  // Asked with the same environment, so that it is the exec path the wrapper would use.
  const execPath = await new Promise<string | undefined>((resolve) => {
    execFile('git', ['--exec-path'], { env: { ...env } }, (error, stdout) =>
      resolve(error ? undefined : stdout.trim() || undefined),
    );
  });
  if (execPath === undefined || !(await isFile(join(execPath, 'git-http-backend')))) {
    return { command: 'git', args: ['http-backend'], env };
  }
  return {
    command: join(execPath, 'git-http-backend'),
    args: [],
    env: { ...env, GIT_EXEC_PATH: execPath, PATH: `${execPath}:${path}` },
  };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** http-backend's environment for one request (CGI variables on top of the constant part). */
function requestEnv(
  backend: Backend,
  platform: Platform,
  req: IncomingMessage,
  url: URL,
  ctx: ForgeContext,
  repo: AnyRepo,
  action: string,
  push: PendingPush | undefined,
): Record<string, string> {
  const root = join(ctx.state.dataDir, platform);
  const env: Record<string, string> = {
    ...backend.env,
    PATH_INFO: `/${relative(root, repo.gitDir).split('\\').join('/')}/${action}`,
    QUERY_STRING: url.search.replace(/^\?/, ''),
    REQUEST_METHOD: req.method ?? 'GET',
    CONTENT_TYPE: header(req, 'content-type') ?? '',
    REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
  };
  const contentLength = header(req, 'content-length');
  if (contentLength !== undefined) env['CONTENT_LENGTH'] = contentLength;
  const encoding = header(req, 'content-encoding');
  if (encoding !== undefined) env['HTTP_CONTENT_ENCODING'] = encoding;
  const protocol = header(req, 'git-protocol');
  if (protocol !== undefined) env['GIT_PROTOCOL'] = protocol;
  if (push?.token) env['REMOTE_USER'] = push.token.user;
  if (push) {
    env['FORGE_PUSH_ID'] = push.id;
    env['FORGE_HOOK_URL'] = `${ctx.urls[platform].web}/_forge/hooks`;
  }
  return env;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

/** Splits a CGI header block into the status and the headers to send, in their order. */
function parseCgiHead(head: string): { status: number; headers: Record<string, string> } {
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    if (name.toLowerCase() === 'status') status = parseInt(value, 10) || 500;
    else headers[name] = value;
  }
  return { status, headers };
}

/**
 * Runs http-backend for one request and relays its answer, streaming the request body from `req`.
 */
async function runBackend(
  platform: Platform,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ctx: ForgeContext,
  repo: AnyRepo,
  action: string,
  push: PendingPush | undefined,
  log: (status: number) => void,
): Promise<void> {
  const backend = await backendFor(join(ctx.state.dataDir, platform));
  const env = requestEnv(backend, platform, req, url, ctx, repo, action, push);

  // Streams, not buffers: packs can be large and the client should see progress as it comes.
  // node's own spawn rather than execa: this runs for every git request, and execa's per-spawn
  // bookkeeping cost the forge about 1.5 ms of CPU each time, close to the spawn itself.
  const child = spawn(backend.command, backend.args, { env, stdio: 'pipe' });
  const stderr: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 64) stderr.push(c);
  });
  child.stdin.on('error', () => {
    // The backend may stop reading early (e.g. a refused request); the client sees its answer.
  });
  child.stdout.on('error', () => undefined);
  child.stderr.on('error', () => undefined);
  // 'close' comes after the process exited and its output was read to the end; 'error' when it
  // could not be started.
  const closed = new Promise<number | null>((resolve) => {
    child.on('close', (code) => resolve(code));
    child.on('error', () => resolve(-1));
  });

  // Request body -> backend, counting bytes and reading the push commands on the way.
  const parser = push ? new PushCommandParser(header(req, 'content-encoding') === 'gzip') : undefined;
  let requestDone = false;
  req.on('data', (chunk: Buffer) => {
    if (push) push.bytes += chunk.length;
    parser?.push(chunk);
    if (!child.stdin.write(chunk)) {
      req.pause();
      child.stdin.once('drain', () => req.resume());
    }
  });
  req.on('end', () => {
    requestDone = true;
    child.stdin.end();
  });
  req.on('close', () => {
    if (!requestDone) child.kill('SIGKILL');
  });
  res.on('close', () => {
    if (!res.writableFinished) child.kill('SIGKILL');
  });

  // Backend output: CGI headers, then the body streamed as it comes.
  let head = Buffer.alloc(0);
  let headText: string | undefined;
  let status = 200;
  const write = (b: Buffer): void => {
    if (b.length === 0) return;
    if (!res.write(b)) {
      child.stdout.pause();
      res.once('drain', () => child.stdout.resume());
    }
  };
  child.stdout.on('data', (chunk: Buffer) => {
    if (headText !== undefined) return write(chunk);
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf('\r\n\r\n');
    let sep = 4;
    if (end < 0) {
      end = head.indexOf('\n\n');
      sep = 2;
    }
    if (end < 0) return;
    headText = head.subarray(0, end + sep).toString('latin1');
    const parsed = parseCgiHead(head.subarray(0, end).toString('latin1'));
    status = parsed.status;
    res.writeHead(status, parsed.headers);
    write(head.subarray(end + sep));
  });

  const code = await closed;
  if (push) {
    if (parser) {
      push.attempted = parser.commands;
      if (parser.options.length > 0) push.pushOptions = parser.options;
    }
    finishPush(ctx, push);
  }
  if (headText === undefined) {
    const detail = Buffer.concat(stderr).toString('utf8').trim().split('\n').slice(-3).join('\n');
    log(500);
    if (!res.headersSent && !res.destroyed) sendText(res, 500, `git http-backend failed (${code}): ${detail}\n`);
    return;
  }
  log(status);
  if (!res.destroyed) res.end();
}

/** Appends the push log entry once the backend is done, before the client sees the end of the answer. */
function finishPush(ctx: ForgeContext, push: PendingPush): void {
  const attempted =
    push.attempted.length > 0 ? push.attempted : push.analysed.map(({ ref, old, new: n }) => ({ ref, old, new: n }));
  if (attempted.length === 0 && push.bytes === 0) return;
  const applied = push.applied ?? [];
  const appliedRefs = new Set(applied.map((u) => u.ref));
  const hidden = push.platform === 'github' ? 'refs/pull/' : 'refs/merge-requests/';
  const rejected = attempted
    .filter((a) => !appliedRefs.has(a.ref))
    .map((a) => ({
      ...a,
      reason:
        push.rejected.get(a.ref) ??
        (a.ref.startsWith(hidden) ? 'deny updating a hidden ref' : 'not updated (see git output)'),
    }));
  const entry: PushLogEntry = {
    seq: ctx.state.nextSeq(),
    platform: push.platform,
    repo: push.repoName,
    ...(push.token ? { user: push.token.user } : {}),
    updates: applied,
    pushOptions: push.pushOptions,
    bytesReceived: push.bytes,
    accepted: rejected.length === 0 && applied.length > 0,
    ...(push.messages.length > 0 ? { message: push.messages.join('\n') } : {}),
    rejected,
    at: now(),
  };
  ctx.state.pushLog.push(entry);
}

// ---------------------------------------------------------------------------------------------
// Hook callbacks (POST /_forge/hooks/:phase)

interface HookBody {
  pushId?: string;
  phase?: string;
  updates?: RefUpdate[];
  pushOptions?: string[];
}

/** Answers the receive hooks; see forge-hook.mjs for the other side. */
export async function handleHookCall(ctx: ForgeContext, phase: string, body: unknown): Promise<ApiResponse> {
  const b = (body ?? {}) as HookBody;
  const push = b.pushId ? pending.get(b.pushId) : undefined;
  if (!push) return { status: 404, body: { message: 'unknown push id' } };
  const updates = (b.updates ?? []).filter((u) => typeof u?.ref === 'string');
  if (b.pushOptions && b.pushOptions.length > 0 && push.pushOptions.length === 0) push.pushOptions = b.pushOptions;
  switch (phase) {
    case 'plan':
      return {
        status: 200,
        body: {
          forced: refsNeedingForcedCheck(push.platform, push.repo, updates),
          workflows: push.platform === 'github' && !(push.token?.scopes.includes('workflow') ?? false),
        },
      };
    case 'decide': {
      push.analysed = updates;
      const decision = decidePush(ctx, push.platform, push.repo, push.token, updates, push.pushOptions);
      if (decision.ok) return { status: 200, body: { ok: true, messages: decision.messages ?? [], rejected: [] } };
      for (const r of decision.rejected) push.rejected.set(r.ref, r.reason);
      const messages = decision.message === '' ? [] : decision.message.split('\n');
      push.messages.push(...messages);
      return { status: 200, body: { ok: false, messages, rejected: decision.rejected } };
    }
    case 'post-receive': {
      push.applied = updates.map(({ ref, old, new: n }) => ({ ref, old, new: n }));
      const messages = await afterPush(ctx, push);
      return { status: 200, body: { messages } };
    }
    default:
      return { status: 404, body: { message: `unknown hook phase ${phase}` } };
  }
}

/**
 * What the platforms do once refs moved: activity timestamps, the default branch of a repo that
 * was empty, GitLab's default-branch protection, and the "create a pull/merge request" hints.
 */
async function afterPush(ctx: ForgeContext, push: PendingPush): Promise<string[]> {
  const applied = push.applied ?? [];
  if (applied.length === 0) return [];
  const t = now();
  if (push.platform === 'github') {
    (push.repo as GithubRepo).pushedAt = t;
    (push.repo as GithubRepo).updatedAt = t;
  } else {
    (push.repo as GitlabProject).lastActivityAt = t;
  }
  const created = applied
    .filter((u) => u.old === ZERO_OID && u.ref.startsWith('refs/heads/'))
    .map((u) => u.ref.slice(11));
  if (created.length > 0) {
    const branches = await listRefs(push.repo.gitDir, 'refs/heads/');
    const wasEmpty = branches.size === created.length;
    if (wasEmpty) {
      const current = push.repo.defaultBranch;
      const chosen = current && created.includes(current) ? current : created[0]!;
      if (chosen !== current) {
        push.repo.defaultBranch = chosen;
        await git(push.repo.gitDir, ['symbolic-ref', 'HEAD', `refs/heads/${chosen}`]);
      }
      if (push.platform === 'gitlab') protectGitlabDefaultBranch(ctx, push.repo as GitlabProject);
    }
  }
  const messages: string[] = [];
  for (const branch of created) {
    if (branch === push.repo.defaultBranch) continue;
    const web = ctx.urls[push.platform].web;
    if (push.platform === 'github') {
      messages.push(
        '',
        `Create a pull request for '${branch}' on GitHub by visiting:`,
        `     ${web}/${push.repoName}/pull/new/${branch}`,
        '',
      );
    } else {
      const q = encodeURIComponent(branch);
      messages.push(
        '',
        `To create a merge request for ${branch}, visit:`,
        `  ${web}/${push.repoName}/-/merge_requests/new?merge_request%5Bsource_branch%5D=${q}`,
        '',
      );
    }
  }
  return messages.slice(0, 40);
}

// ---------------------------------------------------------------------------------------------
// Reading the receive-pack request's command list

/**
 * Reads `old new ref` commands and push options from the start of a receive-pack request, for the
 * push log; the pack that follows is ignored. Handles gzip request bodies.
 */
class PushCommandParser {
  readonly commands: { ref: string; old: string; new: string }[] = [];
  readonly options: string[] = [];
  private buf = Buffer.alloc(0);
  private stage: 'commands' | 'options' | 'done' = 'commands';
  private wantsOptions = false;
  private gunzip: Gunzip | undefined;

  constructor(gzip: boolean) {
    if (gzip) {
      this.gunzip = createGunzip();
      this.gunzip.on('data', (c: Buffer) => this.feed(c));
      this.gunzip.on('error', () => {
        this.stage = 'done';
      });
    }
  }

  push(chunk: Buffer): void {
    if (this.stage === 'done') return;
    if (this.gunzip) this.gunzip.write(chunk);
    else this.feed(chunk);
  }

  private feed(chunk: Buffer): void {
    if (this.stage === 'done') return;
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.buf.length > 64 * 1024 * 1024) return this.finish();
    while (!this.finished() && this.buf.length >= 4) {
      const len = parseInt(this.buf.subarray(0, 4).toString('ascii'), 16);
      if (Number.isNaN(len)) return this.finish();
      if (len === 0) {
        this.buf = this.buf.subarray(4);
        if (this.stage === 'commands' && this.wantsOptions) this.stage = 'options';
        else return this.finish();
        continue;
      }
      if (len < 4) return this.finish();
      if (this.buf.length < len) return;
      const line = this.buf.subarray(4, len).toString('utf8').replace(/\n$/, '');
      this.buf = this.buf.subarray(len);
      if (this.stage === 'options') {
        this.options.push(line);
        continue;
      }
      const [cmd, caps] = line.split('\0');
      if (caps !== undefined && caps.split(' ').includes('push-options')) this.wantsOptions = true;
      if (!cmd || cmd.startsWith('shallow ') || cmd.startsWith('push-cert')) continue;
      const [oldOid, newOid, ref] = cmd.split(' ');
      if (oldOid && newOid && ref) this.commands.push({ ref, old: oldOid, new: newOid });
    }
  }

  private finished(): boolean {
    return this.stage === 'done';
  }

  private finish(): void {
    this.stage = 'done';
    this.buf = Buffer.alloc(0);
    if (this.gunzip) {
      this.gunzip.removeAllListeners('data');
      this.gunzip.destroy();
      this.gunzip = undefined;
    }
  }
}
