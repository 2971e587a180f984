import { ForgeApiError } from '@refbridge/core';
import type { SecretMasker } from '@refbridge/core';
import { headerOf, isHttpError, type HttpError } from './github-client.js';

/** What was being done when a call failed, so the message can say it. */
export interface ErrorContext {
  /** e.g. `reading owner/name`, `listing repos of acme`. */
  action: string;
  /** `owner/name`, when the call was about one repo. */
  repo?: string;
  apiUrl: string;
  retries: number;
}

/** GitHub's own message from the body (`{ message, errors }`), without the documentation URL Octokit appends. */
export function githubMessage(error: HttpError): string {
  const data = error.response?.data;
  if (typeof data === 'object' && data !== null && typeof (data as { message?: unknown }).message === 'string') {
    const body = data as { message: string; errors?: unknown };
    const details = Array.isArray(body.errors)
      ? body.errors
          .map((e: unknown) =>
            typeof e === 'string'
              ? e
              : typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string'
                ? (e as { message: string }).message
                : JSON.stringify(e),
          )
          .filter((e) => e.length > 0)
      : [];
    return details.length > 0 ? `${body.message}: ${details.join('; ')}` : body.message;
  }
  return error.message.replace(/ - https:\/\/docs\.github\.com\S*$/, '');
}

const TOKEN_HELP =
  'classic tokens need the `repo` scope (and `workflow` to write .github/workflows); fine-grained tokens need Administration, Contents, Secrets, Variables and Workflows permissions on the repos';

function scopeHint(error: HttpError): string {
  const sso = headerOf(error, 'x-github-sso');
  if (sso)
    return `authorize the token for the organization's SAML single sign-on (${sso.replace(/^required; url=/, '')}) and run again`;
  const accepted = headerOf(error, 'x-accepted-oauth-scopes');
  const has = headerOf(error, 'x-oauth-scopes');
  if (accepted !== undefined && accepted !== '' && has !== undefined) {
    return `this call needs one of the scopes [${accepted}] and the token has [${has}]: add the scope to the token (or create a new one) and run again`;
  }
  return `check that the token's user may do this on the repo; ${TOKEN_HELP}`;
}

/**
 * Turns whatever a GitHub call threw (after retries) into a ForgeApiError that names the repo and
 * says what to do. Every text is passed through the masker: error bodies can echo request data.
 */
export function toForgeApiError(error: unknown, context: ErrorContext, masker: SecretMasker): ForgeApiError {
  if (error instanceof ForgeApiError) return error;
  const on = context.repo ? ` (${context.repo})` : '';
  const make = (message: string, status: number | undefined, hint: string): ForgeApiError =>
    new ForgeApiError('github', masker.mask(message), status, masker.mask(hint), error);

  if (!isHttpError(error)) {
    const message = error instanceof Error ? error.message : String(error);
    return make(
      `GitHub call failed while ${context.action}${on}: ${message}`,
      undefined,
      'run again; if it persists, report it with --verbose output',
    );
  }
  const status = error.status;
  const said = githubMessage(error);

  if (status === 500 && error.response === undefined) {
    return make(
      `could not reach GitHub at ${context.apiUrl} while ${context.action}${on}: ${said} (after ${context.retries} retries)`,
      undefined,
      'check GITHUB_API_URL / GITHUB_SERVER_URL and the network or proxy, then run again',
    );
  }
  if (status === 401) {
    return make(
      `GITHUB_TOKEN was rejected (401 ${said}) while ${context.action}${on}`,
      status,
      `create a new token (it may be expired, revoked or mistyped) and set GITHUB_TOKEN; ${TOKEN_HELP}`,
    );
  }
  if ((status === 403 || status === 429) && headerOf(error, 'x-ratelimit-remaining') === '0') {
    const reset = Number(headerOf(error, 'x-ratelimit-reset'));
    const when = Number.isFinite(reset) && reset > 0 ? new Date(reset * 1000).toISOString() : 'within the hour';
    return make(
      `GitHub API rate limit exhausted while ${context.action}${on}; it resets at ${when}`,
      status,
      'run again after the reset; lower --concurrency, or use a GitHub App token for a higher limit',
    );
  }
  if ((status === 403 || status === 429) && /\bsecondary rate\b/i.test(said)) {
    return make(
      `GitHub's secondary rate limit stopped ${context.action}${on}: ${said}`,
      status,
      'lower --concurrency and run again in a few minutes',
    );
  }
  if (status === 403) {
    return make(`GitHub refused ${context.action}${on} (403 ${said})`, status, scopeHint(error));
  }
  if (status === 404) {
    return make(
      `${context.repo ? `repo ${context.repo}` : 'resource'} not found on GitHub, or the token cannot see it, while ${context.action}`,
      status,
      `check the name and that the token's user has access; ${TOKEN_HELP}`,
    );
  }
  const retryAfter = Number(headerOf(error, 'retry-after'));
  if (status === 429 && Number.isFinite(retryAfter) && retryAfter > 0) {
    return make(
      `GitHub is rate limiting (429 ${said}) ${context.action}${on} and asked to wait ${retryAfter}s, longer than refbridge waits`,
      status,
      'run again later, with lower --concurrency',
    );
  }
  if (status === 429 || status >= 500) {
    return make(
      `GitHub kept answering ${status} (${said}) while ${context.action}${on}, after ${context.retries} retries`,
      status,
      'GitHub may be degraded (https://www.githubstatus.com); run again later',
    );
  }
  return make(
    `GitHub rejected ${context.action}${on} (${status} ${said})`,
    status,
    'fix the request as the message says and run again',
  );
}
