import { AsyncLocalStorage } from 'node:async_hooks';
import {
  createRequesterFn,
  getMatchingRateLimiter,
  type FormattedResponse,
  type RateLimiters,
  type RequesterType,
  type ResourceOptions,
} from '@gitbeaker/requester-utils';
import type { Logger, SecretMasker } from '@refbridge/core';

/**
 * The HTTP layer under gitbeaker. gitbeaker's own handler retries only 429 and 502, waits
 * 0.25 ms·2^i between tries (a quarter of a *millisecond*: ten tries are over in ~¼ s, far too
 * soon for a rate limit), ignores `Retry-After`, and offers no option to change any of that.
 * So refbridge plugs its own handler into gitbeaker's `requesterFn` hook: the same request
 * building (gitbeaker's option handler), plus
 *  - retries on 429/502/503 for every method and on 500/504/dropped connections for requests
 *    that are safe to repeat (not POST: a create that reached the server must not run twice),
 *  - waits that honour `Retry-After` (and GitLab's `RateLimit-Reset`), else exponential backoff,
 *    every wait capped and shortenable (tests pass `{ baseDelayMs: 1, sleep }`),
 *  - errors that carry status and GitLab's message but never the request, whose headers hold
 *    the token,
 *  - a count of HTTP requests per logical operation, for reports and benchmarks.
 */

export interface RetryOptions {
  /** Retries after the first attempt (default 5). */
  retries?: number;
  /** First backoff when the server gives no `Retry-After` (default 1000 ms), doubled per retry. */
  baseDelayMs?: number;
  /** Cap on any single wait, `Retry-After` included (default 60 s). */
  maxDelayMs?: number;
  /** Replaceable for tests; defaults to a timer. */
  sleep?: (ms: number) => Promise<void>;
}

type ResolvedRetry = Required<RetryOptions>;

export const defaultRetry: Readonly<Omit<ResolvedRetry, 'sleep'>> = {
  retries: 5,
  baseDelayMs: 1000,
  maxDelayMs: 60_000,
};

/** The server answered with an error status, after any retries. */
export class GitlabHttpError extends Error {
  constructor(
    readonly method: string,
    readonly endpoint: string,
    readonly status: number,
    /** GitLab's `message`/`error` text, already masked. */
    readonly description: string,
    readonly attempts: number,
    /** What the server asked to wait (`Retry-After`, `RateLimit-Reset`), if anything. */
    readonly retryAfterMs?: number,
  ) {
    super(`${method} ${endpoint} answered ${status}${description ? `: ${description}` : ''}`);
    this.name = 'GitlabHttpError';
  }
}

/** No HTTP answer at all (connection refused or dropped, DNS, TLS), after any retries. */
export class GitlabNetworkError extends Error {
  constructor(
    readonly method: string,
    readonly endpoint: string,
    readonly reason: string,
    readonly attempts: number,
  ) {
    super(`${method} ${endpoint} failed: ${reason}`);
    this.name = 'GitlabNetworkError';
  }
}

/** The whole call (retries included) ran past the query timeout. */
export class GitlabTimeoutError extends Error {
  constructor(
    readonly method: string,
    readonly endpoint: string,
  ) {
    super(`${method} ${endpoint} timed out`);
    this.name = 'GitlabTimeoutError';
  }
}

/** Milliseconds to wait from `Retry-After` (seconds or HTTP date), else GitLab's `RateLimit-Reset`. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const retryAfter = headers.get('retry-after')?.trim();
  if (retryAfter) {
    if (/^\d+(\.\d+)?$/.test(retryAfter)) return Math.round(Number(retryAfter) * 1000);
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = headers.get('ratelimit-reset')?.trim();
  if (reset && /^\d+$/.test(reset)) return Math.max(0, Number(reset) * 1000 - now);
  return undefined;
}

/** Whether an answer with `status` is worth repeating for `method`. */
export function isRetryableStatus(status: number, method: string): boolean {
  // Not processed, whatever the method: rate limited, or the proxy found no backend.
  if (status === 429 || status === 502 || status === 503) return true;
  // The backend may have done the work before failing: only repeat what is safe to repeat.
  if (status === 500 || status === 504) return method !== 'POST';
  return false;
}

/**
 * A failure after which the server may or may not have done the work and a later try may
 * succeed: rate limiting, 5xx, no answer at all. What a create must look up before repeating.
 */
export function isTransientFailure(error: unknown): boolean {
  if (error instanceof GitlabHttpError) return error.status === 429 || error.status >= 500;
  return error instanceof GitlabNetworkError || error instanceof GitlabTimeoutError;
}

export function backoffMs(attempt: number, retry: Pick<ResolvedRetry, 'baseDelayMs' | 'maxDelayMs'>): number {
  return Math.min(retry.baseDelayMs * 2 ** attempt, retry.maxDelayMs);
}

function describeBody(text: string, contentType: string | null): string {
  let description = text;
  if (contentType?.includes('json')) {
    try {
      const parsed = JSON.parse(text) as { error?: unknown; error_description?: unknown; message?: unknown } | null;
      const content = parsed?.message ?? parsed?.error ?? '';
      description = typeof content === 'string' ? content : JSON.stringify(content);
      // OAuth-style errors (`insufficient_scope`) put the readable part in error_description.
      if (typeof parsed?.error_description === 'string') description += ` (${parsed.error_description})`;
    } catch {
      // Not JSON after all; keep the text.
    }
  }
  description = description.trim().replace(/\s+/g, ' ');
  return description.length > 500 ? `${description.slice(0, 500)}…` : description;
}

async function parseResponse(response: Response, asStream: boolean): Promise<FormattedResponse> {
  const headers = Object.fromEntries(response.headers.entries());
  if (asStream) return { body: response.body ?? null, headers, status: response.status };
  if (response.status === 204) return { body: null, headers, status: response.status };
  const contentType = (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
  let body: FormattedResponse['body'];
  if (contentType === 'application/json') body = ((await response.json()) as FormattedResponse['body']) ?? {};
  else if (contentType.startsWith('text/')) body = await response.text();
  else body = await response.blob();
  return { body, headers, status: response.status };
}

function networkReason(error: unknown): string {
  const err = error as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err.cause?.code ?? err.cause?.message;
  return cause ? `${err.message ?? 'fetch failed'} (${cause})` : (err.message ?? String(error));
}

export interface GitlabRequesterOptions {
  logger: Logger;
  masker: SecretMasker;
  retry?: RetryOptions;
}

/** Builds gitbeaker's `requesterFn` and keeps the request counters. */
export class GitlabRequester {
  /** HTTP requests sent by this client, retries included. */
  totalRequests = 0;
  private readonly scope = new AsyncLocalStorage<{ requests: number }>();
  /** Set while `once` runs: the caller retries itself, after checking what the server did. */
  private readonly single = new AsyncLocalStorage<true>();
  private readonly retry: ResolvedRetry;

  constructor(private readonly options: GitlabRequesterOptions) {
    this.retry = {
      ...defaultRetry,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      ...Object.fromEntries(Object.entries(options.retry ?? {}).filter(([, v]) => v !== undefined)),
    };
  }

  /** Runs `fn` and reports how many HTTP requests it made (concurrent calls are counted apart). */
  async counting<T>(fn: () => Promise<T>): Promise<{ value: T; requests: number }> {
    const counter = { requests: 0 };
    const value = await this.scope.run(counter, fn);
    return { value, requests: counter.requests };
  }

  /** Retries after the first attempt, for callers that retry themselves (`once`). */
  get retries(): number {
    return this.retry.retries;
  }

  /**
   * Runs `fn` with every request sent exactly once: a failure is thrown at once. For creates,
   * whose caller must find out whether a failed try was applied before it sends another.
   */
  once<T>(fn: () => Promise<T>): Promise<T> {
    return this.single.run(true, fn);
  }

  /** The wait before retry `attempt + 1` after `error`: its `Retry-After` if any, else the backoff. */
  waitAfter(error: unknown, attempt: number): number {
    const hinted = error instanceof GitlabHttpError ? error.retryAfterMs : undefined;
    return Math.min(hinted ?? backoffMs(attempt, this.retry), this.retry.maxDelayMs);
  }

  sleep(ms: number): Promise<void> {
    return this.retry.sleep(ms);
  }

  /** Pass as gitbeaker's `requesterFn`. */
  readonly requesterFn = (serviceOptions: ResourceOptions): RequesterType =>
    createRequesterFn(
      (_service, requestOptions) => Promise.resolve(requestOptions),
      (endpoint, options) => this.handle(endpoint, options ?? {}),
    )(serviceOptions);

  private async handle(endpoint: string, options: Record<string, unknown>): Promise<FormattedResponse> {
    const { rateLimiters, agent: _agent, asStream, prefixUrl, searchParams, method: rawMethod, ...init } = options;
    const method = typeof rawMethod === 'string' ? rawMethod.toUpperCase() : 'GET';
    const base = typeof prefixUrl === 'string' ? (prefixUrl.endsWith('/') ? prefixUrl : `${prefixUrl}/`) : undefined;
    const url = new URL(endpoint, base);
    url.search = typeof searchParams === 'string' ? searchParams : '';
    const rateLimit = getMatchingRateLimiter(endpoint, rateLimiters as RateLimiters | undefined, method);
    const { logger, masker } = this.options;
    // The path below /api/v4 (resources like ProjectVariables pass only their tail as endpoint).
    const label = url.pathname.replace(/^.*?\/api\/v4\//, '');

    for (let attempt = 0; ; attempt += 1) {
      await rateLimit();
      this.totalRequests += 1;
      const counter = this.scope.getStore();
      if (counter) counter.requests += 1;
      const canRetry = this.single.getStore() === undefined && attempt < this.retry.retries;

      let response: Response;
      try {
        response = await fetch(new Request(url, { ...(init as RequestInit), method }));
      } catch (error) {
        const name = (error as { name?: string }).name;
        if (name === 'TimeoutError' || name === 'AbortError') throw new GitlabTimeoutError(method, label);
        const reason = masker.mask(networkReason(error));
        if (canRetry && method !== 'POST') {
          const wait = backoffMs(attempt, this.retry);
          logger.warn(
            `GitLab API ${method} ${label} failed (${reason}); retry ${attempt + 1} of ${this.retry.retries} in ${formatWait(wait)}`,
          );
          await this.retry.sleep(wait);
          continue;
        }
        throw new GitlabNetworkError(method, label, reason, attempt + 1);
      }

      logger.debug(`GitLab API ${method} ${label} -> ${response.status}`);
      if (response.ok) return parseResponse(response, asStream === true);

      const text = await response.text().catch(() => '');
      const description = masker.mask(describeBody(text, response.headers.get('content-type')));
      if (canRetry && isRetryableStatus(response.status, method)) {
        const hinted = retryAfterMs(response.headers);
        const wait = Math.min(hinted ?? backoffMs(attempt, this.retry), this.retry.maxDelayMs);
        logger.warn(
          `GitLab API ${method} ${label} answered ${response.status}${response.status === 429 ? ' (rate limited)' : ''}; retry ${attempt + 1} of ${this.retry.retries} in ${formatWait(wait)}`,
        );
        await this.retry.sleep(wait);
        continue;
      }
      throw new GitlabHttpError(
        method,
        label,
        response.status,
        description,
        attempt + 1,
        retryAfterMs(response.headers),
      );
    }
  }
}

function formatWait(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}
