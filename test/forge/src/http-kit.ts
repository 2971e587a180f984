import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ForgeState, ForgeToken, Platform } from './state.js';

/**
 * A tiny router shared by the GitHub and GitLab API modules. Each platform registers routes with
 * its own path patterns; the server matches them, logs every request (for "how many API calls did
 * that take" assertions) and applies fault injection before the handler runs.
 */

export interface ApiRequest {
  platform: Platform;
  method: string;
  /** Path below the API prefix, e.g. `/repos/acme/widgets`. */
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Parsed JSON (or form) body; `undefined` when there is none. */
  body: unknown;
  rawBody: Buffer;
  token: ForgeToken | undefined;
  /** Raw token string presented, even if unknown (for 401 vs 403 decisions). */
  presentedToken: string | undefined;
  /** Base URL of this platform's server, e.g. http://127.0.0.1:1234 */
  baseUrl: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (req: ApiRequest, state: ForgeState) => ApiResponse | Promise<ApiResponse>;

export interface Route {
  method: string;
  pattern: string;
  regex: RegExp;
  keys: string[];
  handler: Handler;
}

/**
 * Patterns use `:name` for one segment and `*name` for the rest of the path (GitLab file paths,
 * git refs with slashes). Segments are URL-decoded after matching, so `%2F` inside a `:id`
 * segment stays one segment, the way GitLab treats `group%2Fproject`.
 */
export class Router {
  readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    const keys: string[] = [];
    const source = pattern
      .split('/')
      .map((seg) => {
        if (seg.startsWith(':')) {
          keys.push(seg.slice(1));
          return '([^/]+)';
        }
        if (seg.startsWith('*')) {
          keys.push(seg.slice(1));
          return '(.+)';
        }
        return seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('/');
    this.routes.push({ method, pattern, regex: new RegExp(`^${source}/?$`), keys, handler });
    return this;
  }

  get(p: string, h: Handler): this {
    return this.add('GET', p, h);
  }
  post(p: string, h: Handler): this {
    return this.add('POST', p, h);
  }
  put(p: string, h: Handler): this {
    return this.add('PUT', p, h);
  }
  patch(p: string, h: Handler): this {
    return this.add('PATCH', p, h);
  }
  delete(p: string, h: Handler): this {
    return this.add('DELETE', p, h);
  }

  /** Finds the route; `methodMismatch` tells 404 from 405-style misses. */
  match(method: string, rawPath: string): { route: Route; params: Record<string, string> } | undefined {
    for (const route of this.routes) {
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
      const m = route.regex.exec(rawPath);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => {
        params[k] = decodeURIComponent(m[i + 1] ?? '');
      });
      return { route, params };
    }
    return undefined;
  }
}

export async function readBody(req: IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export function parseBody(raw: Buffer, contentType: string | undefined): unknown {
  if (raw.length === 0) return undefined;
  const text = raw.toString('utf8');
  if (contentType?.includes('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return { __invalidJson: text };
  }
}

/** Token from `Authorization: token|Bearer X`, Basic auth (password), `PRIVATE-TOKEN` or `private_token`. */
export function presentedToken(headers: IncomingMessage['headers'], query: URLSearchParams): string | undefined {
  const auth = headers.authorization;
  if (auth) {
    const [scheme, value] = auth.split(/\s+/, 2);
    if (!value) return undefined;
    const s = scheme?.toLowerCase();
    if (s === 'token' || s === 'bearer') return value;
    if (s === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      return i >= 0 ? decoded.slice(i + 1) : decoded;
    }
  }
  const pt = headers['private-token'];
  if (typeof pt === 'string' && pt) return pt;
  return query.get('private_token') ?? query.get('access_token') ?? undefined;
}

/** Basic-auth user name, for GitLab's git rule (oauth2 or the token owner's login). */
export function basicUser(headers: IncomingMessage['headers']): string | undefined {
  const auth = headers.authorization;
  if (!auth?.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i >= 0 ? decoded.slice(0, i) : decoded;
}

export function sendJson(res: ServerResponse, r: ApiResponse): void {
  const headers: Record<string, string> = { ...(r.headers ?? {}) };
  if (r.body === undefined || r.status === 204 || r.status === 304) {
    res.writeHead(r.status, headers);
    res.end();
    return;
  }
  // Buffers go out as they are (raw file downloads); everything else not a string is JSON.
  const text = Buffer.isBuffer(r.body) ? r.body : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  headers['content-type'] ??= 'application/json; charset=utf-8';
  headers['content-length'] = String(Buffer.byteLength(text));
  res.writeHead(r.status, headers);
  res.end(text);
}
