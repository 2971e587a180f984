import { ForgeApiError } from '@refbridge/core';
import type { ListingCache, RepoInfo, SecretMasker } from '@refbridge/core';
import { isHttpError, type GithubOctokit } from './github-client.js';
import { toForgeApiError, type ErrorContext } from './github-errors.js';
import { isRepoInfo, isValidRepoPath, toRepoInfo, type GithubRepoJson } from './repo-info.js';

/** No real account needs more; a server whose `Link` never ends must not keep us looping. */
const MAX_PAGES = 10_000;

/** `Link: <url>; rel="next", <url>; rel="last"` -> the next URL. */
export function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="([^"]+)"/.exec(part);
    if (m && m[2]?.split(/\s+/).includes('next')) return m[1];
  }
  return undefined;
}

export type ConditionalResult =
  { notModified: false; data: unknown; etag: string | undefined; link: string | undefined } | { notModified: true };

/** GET with `If-None-Match`; Octokit throws on 304, which here is the answer "your copy is current". */
export async function conditionalGet(
  octokit: GithubOctokit,
  url: string,
  etag: string | undefined,
): Promise<ConditionalResult> {
  try {
    const res = await octokit.request({
      method: 'GET',
      url,
      headers: etag === undefined ? {} : { 'if-none-match': etag },
    });
    return { notModified: false, data: res.data, etag: res.headers.etag, link: res.headers.link };
  } catch (error) {
    if (etag !== undefined && isHttpError(error) && error.status === 304) return { notModified: true };
    throw error;
  }
}

interface CachedPage {
  repos: RepoInfo[];
  next: string | null;
}

function isCachedPage(body: unknown): body is CachedPage {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as Record<string, unknown>;
  return (
    Array.isArray(b['repos']) && b['repos'].every(isRepoInfo) && (b['next'] === null || typeof b['next'] === 'string')
  );
}

export interface ListPagesOptions {
  octokit: GithubOctokit;
  apiUrl: string;
  firstUrl: string;
  /** For messages: `repos of acme`, `repos the token can see`. */
  what: string;
  cache: ListingCache | undefined;
  masker: SecretMasker;
  errorContext: ErrorContext;
  cloneUrl: (path: string) => string;
}

export interface ListPagesResult {
  repos: RepoInfo[];
  requests: number;
  notModified: number;
}

/**
 * Follows `Link: rel="next"` itself (rather than `octokit.paginate`) so each page can be sent
 * with its cached ETag: an unchanged listing then costs only 304s, which GitHub does not count
 * against the rate limit. A page that fails (after the client's retries) fails the whole listing:
 * a partial list must never look complete, or callers would treat missing repos as deleted.
 */
export async function listAllPages(options: ListPagesOptions): Promise<ListPagesResult> {
  const { octokit, cache, masker } = options;
  const apiOrigin = new URL(options.apiUrl).origin;
  const repos: RepoInfo[] = [];
  const seen = new Set<string>();
  let requests = 0;
  let notModified = 0;
  let url: string | undefined = options.firstUrl;
  let page = 0;

  const incomplete = (reason: string, status: number | undefined, hint: string, cause?: unknown): ForgeApiError =>
    new ForgeApiError(
      'github',
      masker.mask(`listing ${options.what} is incomplete: page ${page} failed after ${page - 1} were read: ${reason}`),
      status,
      masker.mask(hint),
      cause,
    );

  while (url !== undefined) {
    page++;
    if (page > MAX_PAGES || seen.has(url)) {
      throw incomplete(
        'GitHub kept returning more pages (a Link header loop)',
        undefined,
        'run again; if it persists, report it',
      );
    }
    seen.add(url);
    if (new URL(url).origin !== apiOrigin) {
      // The token goes with every request; never follow a link to another host.
      throw incomplete(`the next-page link points outside ${apiOrigin}`, undefined, 'check GITHUB_API_URL');
    }
    const cached = cache?.get(url);
    const usable = cached !== undefined && isCachedPage(cached.body) ? cached : undefined;
    let result: ConditionalResult;
    try {
      requests++;
      result = await conditionalGet(octokit, url, usable?.etag);
    } catch (error) {
      const inner = toForgeApiError(error, options.errorContext, masker);
      // Nothing was read yet, so nothing can look complete: the plain error says it best.
      if (page === 1) throw inner;
      throw incomplete(inner.message, inner.status, inner.hint ?? 'run again', error);
    }

    let body: CachedPage;
    if (result.notModified) {
      notModified++;
      // `usable` is defined: conditionalGet only reports 304 when an ETag was sent.
      body = (usable as { body: CachedPage }).body;
    } else {
      if (!Array.isArray(result.data)) {
        throw incomplete('GitHub returned something other than a list of repos', undefined, 'check GITHUB_API_URL');
      }
      const pageRepos: RepoInfo[] = [];
      for (const item of result.data as GithubRepoJson[]) {
        if (typeof item?.full_name !== 'string' || !isValidRepoPath(item.full_name)) {
          // Names end up in file paths (backups); refuse rather than skip, so nothing goes missing silently.
          throw incomplete(
            `GitHub returned an invalid repo name ${JSON.stringify(item?.full_name)}`,
            undefined,
            'report it',
          );
        }
        pageRepos.push(toRepoInfo(item, options.cloneUrl));
      }
      body = { repos: pageRepos, next: nextLink(result.link) ?? null };
      if (cache !== undefined && result.etag !== undefined) cache.set(url, { etag: result.etag, body });
    }
    repos.push(...body.repos);
    url = body.next ?? undefined;
  }
  return { repos, requests, notModified };
}
