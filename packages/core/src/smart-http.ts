/**
 * Ref listing over git's smart HTTP protocol, in-process: what `git ls-remote` does for an
 * http(s) URL, without starting git and git-remote-http for every listing. The daemon lists both
 * sides of every pair on every round; for an unchanged pair that listing is all the work there is,
 * so two processes per side were most of its cost.
 *
 * Protocol v2 (`ls-refs`, gitprotocol-v2) is asked for, with the server-side prefix filter and
 * peeled tags in the same answer. The protocol is stateless over HTTP, so the `ls-refs` POST goes
 * out straight away, without the capability GET git makes first: one round trip instead of two.
 * When that POST does not get a v2 answer (a v0-only server, a proxy that drops the Git-Protocol
 * header), the listing starts again the way git does, with the GET; a server that answers it
 * with the v0 advertisement (every ref in the `info/refs` reply) is understood too, and its later
 * listings start with the GET.
 *
 * Failures are reported in git's own words (`fatal: repository '…' not found`, `The requested URL
 * returned error: 503`, `Empty reply from server`), so the runner's retry rules and messages apply
 * unchanged to both transports.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LsRemoteEntry } from './git-parsers.js';
import { GitOutputError, isObjectId } from './git-parsers.js';

export interface SmartHttpListOptions {
  /**
   * `ref-prefix` arguments: the server sends only refs starting with one of them (all refs when
   * empty). v0 servers send everything; the caller filters anyway.
   */
  prefixes: readonly string[];
  /** `Authorization` header value for this URL's origin, if any. */
  authorization?: string;
  timeoutMs?: number;
  /** Sent as `User-Agent` (GitHub serves the smart protocol to `git/*` agents). */
  userAgent: string;
}

/** A failure in git's words; `exitCode` 128 as git's `fatal:`. */
export class SmartHttpError extends Error {
  constructor(readonly stderr: string) {
    super(stderr);
    this.name = 'SmartHttpError';
  }
}

/** Origins that answered with protocol v0 in this process: their listings start with the GET. */
const v0Origins = new Set<string>();

/** Forget what was learned about servers (tests that restart a server on the same port). */
export function forgetSmartHttpServers(): void {
  v0Origins.clear();
}

const FLUSH = '0000';
const DELIM = '0001';

function pkt(line: string): string {
  const length = Buffer.byteLength(line) + 4;
  return length.toString(16).padStart(4, '0') + line;
}

/** The special packets 0001 (delimiter) and 0002 (response end); a flush (0000) is `null`. */
const DELIM_PKT = Symbol('delim-pkt');
const END_PKT = Symbol('response-end-pkt');
type Packet = string | null | typeof DELIM_PKT | typeof END_PKT;

/** Splits a pkt-line stream into its packets. */
function readPktLines(body: Buffer, what: string): Packet[] {
  const out: Packet[] = [];
  let at = 0;
  while (at < body.length) {
    if (at + 4 > body.length)
      throw new GitOutputError(what, body.subarray(at).toString('latin1'), 'truncated pkt-line');
    const head = body.subarray(at, at + 4).toString('latin1');
    const length = Number.parseInt(head, 16);
    if (!/^[0-9a-f]{4}$/i.test(head) || Number.isNaN(length))
      throw new GitOutputError(what, body.subarray(at, at + 40).toString('latin1'), 'not a pkt-line');
    if (length === 0) out.push(null);
    else if (length === 1) out.push(DELIM_PKT);
    else if (length === 2) out.push(END_PKT);
    else if (length < 4 || at + length > body.length)
      throw new GitOutputError(what, body.subarray(at, at + 40).toString('latin1'), 'truncated pkt-line');
    else
      out.push(
        body
          .subarray(at + 4, at + length)
          .toString('utf8')
          .replace(/\n$/, ''),
      );
    at += length < 4 ? 4 : length;
  }
  return out;
}

function repoUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

/** An HTTP answer, read whole: ref listings are small. */
interface Answer {
  status: number;
  contentType: string;
  body: Buffer;
}

/** What git prints for a failed request, so classification and messages match `git ls-remote`. */
function failure(answer: Answer, url: string): SmartHttpError {
  const shown = `${repoUrl(url)}/`;
  let remote = '';
  // Like git, show a plain-text error body: the platforms explain refusals there.
  if (answer.contentType.startsWith('text/plain')) {
    remote = answer.body
      .subarray(0, 2000)
      .toString('utf8')
      .split('\n')
      .map((l) => l.trimEnd())
      .filter(Boolean)
      .slice(0, 10)
      .map((l) => `remote: ${l}\n`)
      .join('');
  }
  if (answer.status === 404) return new SmartHttpError(`${remote}fatal: repository '${shown}' not found\n`);
  if (answer.status === 401) return new SmartHttpError(`${remote}fatal: Authentication failed for '${shown}'\n`);
  return new SmartHttpError(
    `${remote}fatal: unable to access '${shown}': The requested URL returned error: ${answer.status}\n`,
  );
}

/** A request that got no HTTP answer at all, in curl's words. */
function transportFailure(error: unknown, url: string): SmartHttpError {
  const shown = `${repoUrl(url)}/`;
  const e = error as { code?: string; message?: string } | undefined;
  const code = e?.code ?? '';
  const why =
    code === 'ETIMEDOUT'
      ? (e?.message ?? 'Operation timed out')
      : code === 'ECONNREFUSED'
        ? 'Failed to connect: Connection refused'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'Could not resolve host'
          : code === 'ECONNRESET' || code === 'EPIPE'
            ? 'Empty reply from server'
            : code.startsWith('ERR_TLS') || /certificate|SSL|TLS/i.test(e?.message ?? '')
              ? `SSL certificate problem: ${e?.message ?? code}`
              : `Recv failure: ${e?.message ?? 'connection failed'}`;
  return new SmartHttpError(`fatal: unable to access '${shown}': ${why}\n`);
}

/**
 * Connections are kept open between listings (the daemon lists two servers' repositories over and
 * over); idle ones do not keep the process alive.
 */
const agents = { 'http:': new HttpAgent({ keepAlive: true }), 'https:': new HttpsAgent({ keepAlive: true }) };

/**
 * One request with node's own HTTP client (loaded with node already; `fetch` would first load its
 * own client, a visible part of a short CLI run). Redirects are followed as git follows them: a
 * few, keeping the method and body only for 307/308, and never taking the credentials to another
 * origin.
 */
function request(
  url: string,
  init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
  timeoutMs: number | undefined,
  redirects = 0,
  staleRetried = false,
): Promise<Answer> {
  const target = new URL(url);
  const protocol = target.protocol === 'https:' ? 'https:' : 'http:';
  const send = protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<Answer>((resolve, reject) => {
    const req = send(
      target,
      {
        method: init.method,
        headers: {
          ...init.headers,
          ...(init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) }),
        },
        agent: agents[protocol],
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (error) => reject(transportFailure(error, url)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const location = res.headers.location;
          if ([301, 302, 303, 307, 308].includes(status) && location !== undefined && redirects < 5) {
            const next = new URL(location, target);
            const keep = status === 307 || status === 308;
            const headers = { ...init.headers };
            if (next.origin !== target.origin) delete headers['authorization'];
            const method = keep ? init.method : 'GET';
            resolve(
              request(
                next.href,
                { method, headers, ...(keep && init.body !== undefined ? { body: init.body } : {}) },
                timeoutMs,
                redirects + 1,
              ),
            );
            return;
          }
          resolve({ status, contentType: res.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
        });
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive connection the server closed while it sat idle: not a failure of the
      // server, and nothing was sent on it. One more try on a new connection (node's advice).
      if (req.reusedSocket && error.code === 'ECONNRESET' && !staleRetried) {
        resolve(request(url, init, timeoutMs, redirects, true));
        return;
      }
      reject(transportFailure(error, url));
    });
    if (timeoutMs !== undefined) {
      req.setTimeout(timeoutMs, () =>
        req.destroy(
          Object.assign(new Error(`Operation timed out after ${timeoutMs} milliseconds`), { code: 'ETIMEDOUT' }),
        ),
      );
    }
    req.end(init.body);
  });
}

function headersFor(options: SmartHttpListOptions): Record<string, string> {
  return {
    'git-protocol': 'version=2',
    'user-agent': options.userAgent,
    ...(options.authorization === undefined ? {} : { authorization: options.authorization }),
  };
}

/** Parses `<oid> <ref>[ symref-target:<t>][ peeled:<oid>]` lines of an ls-refs answer. */
function parseLsRefs(lines: readonly Packet[]): LsRemoteEntry[] {
  const entries: LsRemoteEntry[] = [];
  const seen = new Set<string>();
  let flushed = false;
  for (const line of lines) {
    if (line === null) {
      flushed = true;
      break;
    }
    if (typeof line !== 'string')
      throw new GitOutputError('ls-remote', String(line), 'unexpected packet in an ls-refs answer');
    const [sha, ref, ...attributes] = line.split(' ');
    if (sha === undefined || !isObjectId(sha) || !ref)
      throw new GitOutputError('ls-remote', line, 'expected "<object id> <ref>"');
    if (seen.has(ref)) throw new GitOutputError('ls-remote', line, 'ref listed twice');
    seen.add(ref);
    const entry: LsRemoteEntry = { ref, sha };
    for (const a of attributes) {
      if (a.startsWith('peeled:')) entry.peeled = a.slice('peeled:'.length);
      else if (a.startsWith('symref-target:')) entry.symref = a.slice('symref-target:'.length);
    }
    entries.push(entry);
  }
  // An answer cut short looks exactly like a repository with fewer refs: refuse it.
  if (!flushed) throw new GitOutputError('ls-remote', '', 'the ls-refs answer ended without its flush packet');
  return entries;
}

/** Parses a v0 advertisement (after the optional `# service=` block). */
function parseV0(lines: readonly Packet[]): LsRemoteEntry[] {
  const entries = new Map<string, LsRemoteEntry>();
  const peeled = new Map<string, string>();
  let symrefs: string[] = [];
  let flushed = false;
  for (const [i, raw] of lines.entries()) {
    if (raw === null) {
      flushed = true;
      break;
    }
    if (typeof raw !== 'string')
      throw new GitOutputError('ls-remote', String(raw), 'unexpected packet in a ref advertisement');
    let line = raw;
    if (i === 0) {
      const nul = raw.indexOf('\0');
      if (nul >= 0) {
        line = raw.slice(0, nul);
        symrefs = raw
          .slice(nul + 1)
          .split(' ')
          .filter((c) => c.startsWith('symref='))
          .map((c) => c.slice('symref='.length));
      }
    }
    const space = line.indexOf(' ');
    const sha = line.slice(0, space);
    const ref = line.slice(space + 1);
    if (space < 0 || !isObjectId(sha) || ref === '')
      throw new GitOutputError('ls-remote', line, 'expected "<object id> <ref>"');
    if (ref === 'capabilities^{}') continue; // an empty repository
    if (ref.endsWith('^{}')) peeled.set(ref.slice(0, -3), sha);
    else entries.set(ref, { ref, sha });
  }
  if (!flushed) throw new GitOutputError('ls-remote', '', 'the ref advertisement ended without its flush packet');
  for (const [ref, sha] of peeled) {
    const entry = entries.get(ref);
    if (entry) entry.peeled = sha;
  }
  for (const s of symrefs) {
    const colon = s.indexOf(':');
    const entry = entries.get(s.slice(0, colon));
    if (entry && colon > 0) entry.symref = s.slice(colon + 1);
  }
  return [...entries.values()];
}

async function lsRefs(url: string, options: SmartHttpListOptions): Promise<LsRemoteEntry[]> {
  const body =
    pkt('command=ls-refs\n') +
    pkt(`agent=${options.userAgent.replace(/\s.*$/, '')}\n`) +
    DELIM +
    pkt('peel\n') +
    pkt('symrefs\n') +
    options.prefixes.map((p) => pkt(`ref-prefix ${p}\n`)).join('') +
    FLUSH;
  const endpoint = `${repoUrl(url)}/git-upload-pack`;
  const response = await request(
    endpoint,
    {
      method: 'POST',
      headers: {
        ...headersFor(options),
        'content-type': 'application/x-git-upload-pack-request',
        accept: 'application/x-git-upload-pack-result',
      },
      body,
    },
    options.timeoutMs,
  );
  if (response.status !== 200) throw failure(response, url);
  const type = response.contentType;
  if (type !== 'application/x-git-upload-pack-result') {
    throw new SmartHttpError(
      `fatal: unable to access '${repoUrl(url)}/': the server answered ls-refs with ${type || 'no content type'}\n`,
    );
  }
  return parseLsRefs(readPktLines(response.body, 'ls-remote'));
}

function originOf(url: string): string {
  return new URL(url).origin;
}

/**
 * Lists refs of the repository at an http(s) URL: name, id, peeled id of annotated tags and
 * symref targets (HEAD). Throws {@link SmartHttpError} (git's wording) or GitOutputError.
 */
export async function listRefsOverHttp(url: string, options: SmartHttpListOptions): Promise<LsRemoteEntry[]> {
  const origin = originOf(url);
  if (!v0Origins.has(origin)) {
    try {
      return await lsRefs(url, options);
    } catch (error) {
      // Authentication and not-found answers mean the same with or without the GET. Anything else
      // (a v0-only server, a proxy that drops the Git-Protocol header, a failed request) is asked
      // again the way git asks, from the start.
      if (error instanceof SmartHttpError && /not found|Authentication failed|error: 403/.test(error.stderr))
        throw error;
    }
  }
  const response = await request(
    `${repoUrl(url)}/info/refs?service=git-upload-pack`,
    { method: 'GET', headers: headersFor(options) },
    options.timeoutMs,
  );
  if (response.status !== 200) throw failure(response, url);
  const type = response.contentType;
  if (type !== 'application/x-git-upload-pack-advertisement') {
    // What git says when a URL serves something else (a web page, a dumb server).
    throw new SmartHttpError(`fatal: repository '${repoUrl(url)}/' not found\n`);
  }
  const lines = readPktLines(response.body, 'ls-remote');
  let at = 0;
  if (typeof lines[0] === 'string' && lines[0].startsWith('# service=')) {
    at = lines.indexOf(null, 1) + 1;
    if (at === 0) throw new GitOutputError('ls-remote', lines[0], 'service announcement without its flush packet');
  }
  if (lines[at] === 'version 2') {
    const capabilities = [];
    for (let i = at + 1; i < lines.length && lines[i] !== null; i++) capabilities.push(lines[i]);
    if (capabilities.some((c) => typeof c === 'string' && (c === 'ls-refs' || c.startsWith('ls-refs='))))
      return lsRefs(url, options);
    throw new SmartHttpError(
      `fatal: unable to access '${repoUrl(url)}/': the server speaks protocol v2 without ls-refs\n`,
    );
  }
  const entries = parseV0(lines.slice(at));
  v0Origins.add(origin);
  return options.prefixes.length === 0
    ? entries
    : entries.filter((e) => options.prefixes.some((p) => e.ref.startsWith(p)));
}
