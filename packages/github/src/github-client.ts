// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- bottleneck has no types for light.js; this declares them for every program that compiles this file
/// <reference path="./bottleneck-light.d.ts" />
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import type { Logger, SecretMasker } from '@refbridge/core';
import Bottleneck from 'bottleneck/light.js';

/**
 * How the GitHub client waits and retries. The defaults follow GitHub's guidance (honour
 * `retry-after` and the rate-limit reset, back off exponentially, keep mutations ≥1 s apart);
 * tests shrink the time unit so retries take milliseconds.
 */
export interface GithubRetryOptions {
  /** Retries after a 5xx, a dropped connection or a 429 (default 3). */
  retries?: number;
  /**
   * Milliseconds per second of wait (default 1000). Backoff is (attempt²) units; `Retry-After`
   * and rate-limit resets are in seconds and scaled by this too.
   */
  unitMs?: number;
  /** Longest wait (in seconds, before scaling) for a rate-limit reset or `Retry-After` before failing instead (default 900). */
  maxWaitSeconds?: number;
  /** How many times a request may wait out a rate limit (default 2). */
  rateLimitRetries?: number;
  /** Minimum gap between mutating requests, as GitHub asks of integrators (default 1000 ms). */
  writeIntervalMs?: number;
  /** A request that has not finished after this long is abandoned and retried (default 60000 ms). */
  requestTimeoutMs?: number;
}

export type ResolvedRetryOptions = Required<GithubRetryOptions>;

export function resolveRetryOptions(options: GithubRetryOptions = {}): ResolvedRetryOptions {
  return {
    retries: options.retries ?? 3,
    unitMs: options.unitMs ?? 1000,
    maxWaitSeconds: options.maxWaitSeconds ?? 900,
    rateLimitRetries: options.rateLimitRetries ?? 2,
    writeIntervalMs: options.writeIntervalMs ?? 1000,
    requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
  };
}

/** The parts of Octokit's RequestError refbridge reads; duck-typed so no transitive package is imported. */
export interface HttpError extends Error {
  status: number;
  response?: { headers: Record<string, string | number | undefined>; data?: unknown };
  request?: { method?: string; url?: string; request?: Record<string, unknown> };
}

export function isHttpError(error: unknown): error is HttpError {
  return error instanceof Error && typeof (error as { status?: unknown }).status === 'number';
}

export function headerOf(error: HttpError, name: string): string | undefined {
  const value = error.response?.headers[name];
  return value === undefined ? undefined : String(value);
}

/** Statuses plugin-retry leaves alone: client errors that retrying cannot fix, and 429, which the hook below handles. */
const DO_NOT_RETRY = [400, 401, 403, 404, 409, 410, 422, 429, 451];

/** plugin-throttling handles these itself (secondary limits and exhausted primary limits). */
function isThrottlingCase(error: HttpError): boolean {
  return /\bsecondary rate\b/i.test(error.message) || headerOf(error, 'x-ratelimit-remaining') === '0';
}

function describeRequest(error: HttpError): string {
  const method = error.request?.method ?? 'request';
  const url = error.request?.url ?? '';
  return `${method} ${url.replace(/\?.*$/, '')}`;
}

/**
 * A plugin registered *before* plugin-retry, so its error hook runs inside retry's scheduler.
 * plugin-retry ignores `Retry-After` on a plain 429 (it only knows its own quadratic backoff),
 * so for those this hook tells the scheduler to wait what the server asked; it also logs each
 * retry so a slow run explains itself.
 */
function retryAfterPlugin(settings: ResolvedRetryOptions, log: (line: string) => void) {
  return (octokit: {
    hook: { error: (name: 'request', hook: (error: unknown, options: unknown) => unknown) => void };
  }) => {
    octokit.hook.error('request', (error: unknown, options: unknown) => {
      if (!isHttpError(error) || error.status < 400) throw error;
      const retryCount = Number((options as { request?: { retryCount?: number } }).request?.retryCount ?? 0);
      if (error.status === 429 && !isThrottlingCase(error) && error.request?.request) {
        const asked = Number(headerOf(error, 'retry-after'));
        const wait = Number.isFinite(asked) && asked >= 0 ? asked : (retryCount + 1) ** 2;
        if (retryCount < settings.retries && wait <= settings.maxWaitSeconds) {
          log(
            `GitHub answered 429 to ${describeRequest(error)}; retrying after ${wait}s (retry ${retryCount + 1} of ${settings.retries})`,
          );
          error.request.request = { ...error.request.request, retries: settings.retries, retryAfter: wait };
        }
      } else if (!DO_NOT_RETRY.includes(error.status) && retryCount < settings.retries) {
        // No response at all: a dropped connection, a timeout, DNS; Octokit calls those status 500.
        const what = error.response === undefined ? `failed (${error.message})` : `answered ${error.status}`;
        log(
          `GitHub ${what} for ${describeRequest(error)}; retrying after ${(retryCount + 1) ** 2}s (retry ${retryCount + 1} of ${settings.retries})`,
        );
      }
      throw error;
    });
  };
}

export type GithubOctokit = Octokit;

/**
 * Octokit has no request timeout of its own, and a hung connection would stall a daemon forever.
 * The timeout rejects with a TimeoutError, which Octokit reports as a status-500 RequestError, so
 * plugin-retry retries it like any other server failure.
 */
function fetchWithTimeout(timeoutMs: number): typeof fetch {
  return (input, init) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return fetch(input, { ...init, signal });
  };
}

export interface GithubClientOptions {
  apiUrl: string;
  token: string;
  logger: Logger;
  masker: SecretMasker;
  retry?: GithubRetryOptions;
}

/** Octokit with bounded retries, rate-limit handling and logging through the (masked) refbridge logger. */
export function createGithubClient(options: GithubClientOptions): GithubOctokit {
  const settings = resolveRetryOptions(options.retry);
  const { logger, masker } = options;
  const mask = (message: unknown): string => masker.mask(String(message));
  const warn = (line: string): void => logger.warn(mask(line));

  const onLimit =
    (kind: string) =>
    (retryAfter: number, request: { method: string; url: string }, _octokit: unknown, retryCount: number): boolean => {
      const route = `${request.method} ${request.url}`;
      if (retryCount >= settings.rateLimitRetries || retryAfter > settings.maxWaitSeconds) {
        warn(
          `GitHub ${kind} hit on ${route}; not waiting ${retryAfter}s (limit ${settings.maxWaitSeconds}s), giving up`,
        );
        return false;
      }
      warn(
        `GitHub ${kind} hit on ${route}; waiting ${retryAfter}s before retry ${retryCount + 1} of ${settings.rateLimitRetries}`,
      );
      return true;
    };

  // Plugins registered later wrap earlier ones; the retry-after hook must sit *inside* plugin-retry.
  const Client = Octokit.plugin(retryAfterPlugin(settings, warn), retry, throttling);
  return new Client({
    auth: options.token,
    baseUrl: options.apiUrl,
    userAgent: 'refbridge',
    log: {
      // Octokit logs every request at info; for refbridge that is debug detail.
      debug: () => undefined,
      info: (m: string) => logger.debug(mask(m)),
      warn: (m: string) => warn(m),
      error: (m: string) => logger.debug(mask(m)),
    },
    request: { fetch: fetchWithTimeout(settings.requestTimeoutMs) },
    retry: { retries: settings.retries, retryAfterBaseValue: settings.unitMs, doNotRetry: DO_NOT_RETRY },
    throttle: {
      retryAfterBaseValue: settings.unitMs,
      fallbackSecondaryRateRetryAfter: 60,
      onRateLimit: onLimit('rate limit'),
      onSecondaryRateLimit: onLimit('secondary rate limit'),
      ...(settings.writeIntervalMs === 1000
        ? {}
        : { write: new Bottleneck.Group({ maxConcurrent: 1, minTime: settings.writeIntervalMs }) }),
    },
  });
}
