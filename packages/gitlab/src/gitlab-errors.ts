import { ForgeApiError } from '@refbridge/core';
import { GitlabHttpError, GitlabNetworkError, GitlabTimeoutError } from './gitlab-requester.js';

/**
 * Turns what the HTTP layer threw into a `ForgeApiError` that says what refbridge was doing, what
 * GitLab answered and what to do about it. The messages are built only from the action, the
 * status and GitLab's (masked) message: the request, whose headers carry the token, is never
 * attached.
 */

export interface FailureContext {
  /** What refbridge was doing, e.g. `reading project "group/app"`. */
  action: string;
  webUrl: string;
  apiUrl: string;
  /** Overrides for the default hints, per status. */
  hints?: Partial<Record<401 | 403 | 404 | 'other', string>>;
}

export function httpStatusOf(error: unknown): number | undefined {
  return error instanceof GitlabHttpError ? error.status : undefined;
}

/** GitLab's message for an error answer (`404 Project Not Found`, `has already been taken`), if any. */
export function httpDescriptionOf(error: unknown): string {
  return error instanceof GitlabHttpError ? error.description : '';
}

export function isGitlabTransportError(error: unknown): boolean {
  return error instanceof GitlabHttpError || error instanceof GitlabNetworkError || error instanceof GitlabTimeoutError;
}

export function toForgeApiError(error: unknown, ctx: FailureContext): ForgeApiError {
  const hints = ctx.hints ?? {};
  if (error instanceof GitlabHttpError) {
    const detail = error.description ? `: ${error.description}` : '';
    switch (error.status) {
      case 401:
        return new ForgeApiError(
          'gitlab',
          `GitLab at ${ctx.webUrl} rejected the token while ${ctx.action} (401 Unauthorized)`,
          401,
          hints[401] ??
            'check GITLAB_TOKEN: it may be expired, revoked or issued by another GitLab instance; create a personal access token with the `api` scope',
        );
      case 403:
        return new ForgeApiError(
          'gitlab',
          `GitLab refused ${ctx.action} (403 Forbidden${detail})`,
          403,
          hints[403] ??
            'the token needs the `api` scope, and its user the role the action requires (Maintainer for CI/CD variables and protected branches, Developer to commit); ask a project owner to grant it',
        );
      case 404:
        return new ForgeApiError(
          'gitlab',
          `GitLab found nothing while ${ctx.action} (404${detail})`,
          404,
          hints[404] ??
            "check the path; GitLab also answers 404 when the token's user cannot see a private project or group",
        );
      default: {
        const transient = error.status === 429 || error.status >= 500;
        const tries = error.attempts > 1 ? ` after ${error.attempts} attempts` : '';
        return new ForgeApiError(
          'gitlab',
          `GitLab answered HTTP ${error.status} while ${ctx.action}${tries}${detail}`,
          error.status,
          hints.other ??
            (transient
              ? 'GitLab is rate limiting or unavailable; nothing further was changed, run again later'
              : 'GitLab refused the request as sent; the message above says which field it rejected'),
        );
      }
    }
  }
  if (error instanceof GitlabNetworkError) {
    const tries = error.attempts > 1 ? ` (${error.attempts} attempts)` : '';
    return new ForgeApiError(
      'gitlab',
      `could not reach GitLab at ${ctx.apiUrl} while ${ctx.action}${tries}: ${error.reason}`,
      undefined,
      hints.other ?? 'check GITLAB_URL / GITLAB_API_URL, the network and any proxy, then run again',
    );
  }
  if (error instanceof GitlabTimeoutError) {
    return new ForgeApiError(
      'gitlab',
      `GitLab at ${ctx.apiUrl} did not answer in time while ${ctx.action}`,
      undefined,
      hints.other ?? 'GitLab is slow or unreachable; run again later or raise the timeout',
    );
  }
  if (error instanceof ForgeApiError) return error;
  return new ForgeApiError(
    'gitlab',
    `unexpected failure while ${ctx.action}: ${error instanceof Error ? error.message : String(error)}`,
    undefined,
    'this looks like a refbridge bug; please report it with the command you ran',
  );
}
