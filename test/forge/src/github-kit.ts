import { createHash, randomBytes } from 'node:crypto';
import type { ApiRequest, ApiResponse, Router } from './http-kit.js';
import type { ForgeState, ForgeToken, ForgeUser } from './state.js';

/**
 * The plumbing every GitHub route shares: authentication the way GitHub answers it, error bodies
 * (`{message, documentation_url, status}`), OAuth scope and rate-limit headers, ETags with
 * `If-None-Match` -> 304, and page/per_page pagination with `Link` headers.
 */

export const API_PREFIX = '/api/v3';
const GENERIC_DOCS = 'https://docs.github.com/rest';

/** Thrown by handlers and helpers; the route wrapper turns it into GitHub's error body. */
export class GhError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly docs?: string,
  ) {
    super(message);
  }
}

export const notFound = (message = 'Not Found'): GhError => new GhError(404, message);

/** GitHub's JSON-schema validation failure text, e.g. `Invalid request.\n\n"sha" wasn't supplied.` */
export const notSupplied = (field: string): GhError =>
  new GhError(422, `Invalid request.\n\n"${field}" wasn't supplied.`);

export interface GhCall {
  req: ApiRequest;
  state: ForgeState;
  token: ForgeToken | undefined;
  user: ForgeUser | undefined;
  /** Absolute REST base, e.g. http://127.0.0.1:4001/api/v3 */
  api: string;
  /** Web and git base, e.g. http://127.0.0.1:4001 */
  web: string;
  body: Record<string, unknown>;
}

export interface GhRouteOptions {
  /** The operation's page on docs.github.com, echoed in error bodies as GitHub does. */
  docs: string;
  /** Value of `x-accepted-oauth-scopes` for this endpoint. */
  accepted?: string;
  /** Anonymous callers get 401 `Requires authentication`. */
  auth?: boolean;
  /** `/rate_limit` is free. */
  free?: boolean;
}

export type GhHandler = (call: GhCall) => Promise<ApiResponse> | ApiResponse;

export interface RateLimitSettings {
  /** Primary limit for token holders (GitHub: 5,000/h for a personal access token). */
  limit: number;
  /** Anonymous limit (GitHub: 60/h per IP). */
  anonymousLimit: number;
  /** Refuse with 403 once a bucket is empty. Off by default so long benchmark runs are not cut off. */
  enforce: boolean;
  windowSeconds: number;
}

interface Bucket {
  used: number;
  reset: number;
}

/** Per-forge rate-limit bookkeeping, keyed by user (GitHub limits per user, not per token). */
export class GithubRateLimiter {
  readonly settings: RateLimitSettings = { limit: 5000, anonymousLimit: 60, enforce: false, windowSeconds: 3600 };
  private readonly buckets = new Map<string, Bucket>();

  bucket(user: string | undefined): { key: string; limit: number; bucket: Bucket } {
    const key = user ?? '<anonymous>';
    const nowSec = Math.floor(Date.now() / 1000);
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.reset <= nowSec) {
      bucket = { used: 0, reset: nowSec + this.settings.windowSeconds };
      this.buckets.set(key, bucket);
    }
    return { key, limit: user ? this.settings.limit : this.settings.anonymousLimit, bucket };
  }

  reset(): void {
    this.buckets.clear();
  }

  headers(user: string | undefined): Record<string, string> {
    const { limit, bucket } = this.bucket(user);
    return {
      'x-ratelimit-limit': String(limit),
      'x-ratelimit-remaining': String(Math.max(0, limit - bucket.used)),
      'x-ratelimit-used': String(bucket.used),
      'x-ratelimit-reset': String(bucket.reset),
      'x-ratelimit-resource': 'core',
    };
  }
}

export function errorBody(
  status: number,
  message: string,
  docs: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { message, ...extra, documentation_url: docs, status: String(status) };
}

function etagOf(body: unknown, user: string | undefined): string {
  // GitHub's ETags differ per token holder (github/docs#34689), so the caller is part of the hash.
  const hash = createHash('sha256')
    .update(JSON.stringify(body) ?? '')
    .update('\0')
    .update(user ?? '')
    .digest('hex');
  return `W/"${hash.slice(0, 40)}"`;
}

function etagMatches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(',') : header;
  const strip = (t: string): string => t.trim().replace(/^W\//, '');
  return value.split(',').some((t) => t.trim() === '*' || strip(t) === strip(etag));
}

/** Registers GitHub routes through one wrapper that gives every response GitHub's headers. */
export function githubRoutes(router: Router, limiter: GithubRateLimiter) {
  return (method: string, pattern: string, options: GhRouteOptions, handler: GhHandler): void => {
    router.add(method, pattern, async (req, state) => {
      const web = req.baseUrl;
      const api = `${web}${API_PREFIX}`;
      const token = req.token && !req.token.expired ? req.token : undefined;
      const user = token ? state.githubUsers.get(token.user) : undefined;
      const authed = token !== undefined && user !== undefined;
      const headers: Record<string, string> = {
        'x-github-media-type': 'github.v3; format=json',
        'x-github-api-version-selected': '2022-11-28',
        'x-github-request-id': randomBytes(8).toString('hex').toUpperCase(),
      };
      if (authed) {
        headers['x-oauth-scopes'] = token.scopes.join(', ');
        headers['x-accepted-oauth-scopes'] = options.accepted ?? '';
      }
      const finish = (response: ApiResponse, counts: boolean): ApiResponse => {
        const rateUser = authed ? user.login : undefined;
        if (counts && !options.free) limiter.bucket(rateUser).bucket.used++;
        return { ...response, headers: { ...headers, ...limiter.headers(rateUser), ...(response.headers ?? {}) } };
      };
      const fail = (e: GhError): ApiResponse =>
        finish({ status: e.status, body: errorBody(e.status, e.message, e.docs ?? options.docs, e.extra) }, true);

      // A token that is presented but unknown (or expired) is refused everywhere, public data included.
      if (req.presentedToken !== undefined && !authed) {
        return fail(new GhError(401, 'Bad credentials', {}, GENERIC_DOCS));
      }
      if (options.auth && !authed) return fail(new GhError(401, 'Requires authentication'));
      if (limiter.settings.enforce && !options.free) {
        const { limit, bucket } = limiter.bucket(authed ? user.login : undefined);
        if (bucket.used >= limit) {
          const message = authed
            ? `API rate limit exceeded for user ID ${user.id}.`
            : "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)";
          return finish(
            {
              status: 403,
              body: errorBody(403, message, 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api'),
            },
            false,
          );
        }
      }

      const body =
        req.body && typeof req.body === 'object' && !Array.isArray(req.body)
          ? (req.body as Record<string, unknown>)
          : {};
      if (req.body && typeof req.body === 'object' && '__invalidJson' in req.body) {
        return fail(new GhError(400, 'Problems parsing JSON'));
      }
      let response: ApiResponse;
      try {
        response = await handler({
          req,
          state,
          token: authed ? token : undefined,
          user: authed ? user : undefined,
          api,
          web,
          body,
        });
      } catch (error) {
        if (error instanceof GhError) return fail(error);
        throw error;
      }
      if ((req.method === 'GET' || req.method === 'HEAD') && response.status === 200 && response.body !== undefined) {
        const etag = etagOf(response.body, authed ? user.login : undefined);
        const cache = authed ? 'private, max-age=60, s-maxage=60' : 'public, max-age=60, s-maxage=60';
        const extra = { etag, 'cache-control': cache, vary: 'Accept, Authorization, Cookie, X-GitHub-OTP' };
        if (etagMatches(req.headers['if-none-match'], etag)) {
          // Conditional hits with a valid token are free, as on GitHub.
          return finish(
            { status: 304, headers: { ...extra, ...(response.headers?.link ? { link: response.headers.link } : {}) } },
            !authed,
          );
        }
        response = { ...response, headers: { ...(response.headers ?? {}), ...extra } };
      }
      return finish(response, true);
    });
  };
}

export interface PageOptions {
  defaultPerPage?: number;
  maxPerPage?: number;
}

/** Slices `items` by `page`/`per_page` and builds GitHub's `Link` header (prev, next, last, first). */
export function paginate<T>(
  call: GhCall,
  items: T[],
  options: PageOptions = {},
): { items: T[]; headers: Record<string, string> } {
  const max = options.maxPerPage ?? 100;
  const def = options.defaultPerPage ?? 30;
  const rawPer = Number.parseInt(call.req.query.get('per_page') ?? '', 10);
  const perPage = Number.isFinite(rawPer) && rawPer > 0 ? Math.min(rawPer, max) : def;
  const rawPage = Number.parseInt(call.req.query.get('page') ?? '', 10);
  const page = Number.isFinite(rawPage) && rawPage > 0 ? rawPage : 1;
  const lastPage = Math.max(1, Math.ceil(items.length / perPage));
  const slice = items.slice((page - 1) * perPage, page * perPage);
  const link = (p: number): string => {
    const q = new URLSearchParams(call.req.query);
    q.set('page', String(p));
    // GitHub keeps per_page in its links only when the caller sent it; Octokit follows either way.
    return `<${call.api}${call.req.path}?${q.toString()}>`;
  };
  const rels: string[] = [];
  if (page > 1) rels.push(`${link(Math.min(page - 1, lastPage))}; rel="prev"`);
  if (page < lastPage) rels.push(`${link(page + 1)}; rel="next"`, `${link(lastPage)}; rel="last"`);
  if (page > 1) rels.push(`${link(1)}; rel="first"`);
  return { items: slice, headers: rels.length > 0 ? { link: rels.join(', ') } : {} };
}

export function hasScope(call: GhCall, ...scopes: string[]): boolean {
  return call.token !== undefined && scopes.some((s) => call.token!.scopes.includes(s));
}

export const nodeId = (kind: string, id: number): string =>
  Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64');
