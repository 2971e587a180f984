import type { ApiRequest, ApiResponse } from './http-kit.js';
import { invalidParam } from './gitlab-access.js';

/**
 * GitLab's offset pagination (`doc/api/rest/_index.md`, "Offset-based pagination"): `page` and
 * `per_page` (default 20, max 100), `x-page`, `x-per-page`, `x-next-page`, `x-prev-page` (empty
 * when there is none), `x-total`, `x-total-pages`, and a `Link` header with `prev`, `next`, `first`
 * and `last`. Above 10,000 results GitLab stops counting: `x-total`, `x-total-pages` and
 * `rel="last"` are left out.
 */

export const MAX_PER_PAGE = 100;
export const DEFAULT_PER_PAGE = 20;
export const COUNT_LIMIT = 10_000;

export function pageParams(req: ApiRequest): { page: number; perPage: number } {
  const page = positiveInt(req.query.get('page'), 'page') ?? 1;
  const perPage = Math.min(positiveInt(req.query.get('per_page'), 'per_page') ?? DEFAULT_PER_PAGE, MAX_PER_PAGE);
  return { page, perPage };
}

function positiveInt(raw: string | null, name: string): number | undefined {
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw invalidParam(name);
  // GitLab treats page/per_page below 1 as the defaults rather than failing.
  return n < 1 ? undefined : n;
}

function pageUrl(req: ApiRequest, changes: Record<string, string>, drop: string[] = []): string {
  const q = new URLSearchParams(req.query);
  for (const d of drop) q.delete(d);
  for (const [k, v] of Object.entries(changes)) q.set(k, v);
  // Rails' `to_query` sorts the keys; GitLab's links come out that way.
  const sorted = new URLSearchParams([...q.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${req.baseUrl}/api/v4${req.path}?${sorted.toString()}`;
}

/** The offset-pagination headers for one page of `total` results. */
export function offsetHeaders(req: ApiRequest, page: number, perPage: number, total: number): Record<string, string> {
  const counted = total <= COUNT_LIMIT;
  const totalPages = Math.max(1, Math.ceil(total / perPage));
  const hasNext = page * perPage < total;
  const hasPrev = page > 1;
  const headers: Record<string, string> = {
    'x-page': String(page),
    'x-per-page': String(perPage),
    'x-next-page': hasNext ? String(page + 1) : '',
    'x-prev-page': hasPrev ? String(page - 1) : '',
  };
  if (counted) {
    headers['x-total'] = String(total);
    headers['x-total-pages'] = String(totalPages);
  }
  const links: string[] = [];
  const per = String(perPage);
  if (hasPrev) links.push(`<${pageUrl(req, { page: String(page - 1), per_page: per })}>; rel="prev"`);
  if (hasNext) links.push(`<${pageUrl(req, { page: String(page + 1), per_page: per })}>; rel="next"`);
  links.push(`<${pageUrl(req, { page: '1', per_page: per })}>; rel="first"`);
  if (counted) links.push(`<${pageUrl(req, { page: String(totalPages), per_page: per })}>; rel="last"`);
  headers['link'] = links.join(', ');
  return headers;
}

/** Slices `items` for the requested page and renders only that slice. */
export async function paginate<T>(
  req: ApiRequest,
  items: readonly T[],
  render: (slice: T[]) => unknown[] | Promise<unknown[]>,
): Promise<ApiResponse> {
  const { page, perPage } = pageParams(req);
  const start = (page - 1) * perPage;
  const slice = items.slice(start, start + perPage);
  return { status: 200, body: await render(slice), headers: offsetHeaders(req, page, perPage, items.length) };
}

/**
 * Keyset pagination, which GitLab offers on `/projects` with `pagination=keyset&order_by=id`:
 * only a `Link rel="next"` carrying `id_after`/`id_before`, no totals.
 */
export async function paginateKeyset<T extends { id: number }>(
  req: ApiRequest,
  items: readonly T[],
  sort: 'asc' | 'desc',
  render: (slice: T[]) => unknown[] | Promise<unknown[]>,
): Promise<ApiResponse> {
  const { perPage } = pageParams(req);
  const after = req.query.get('id_after');
  const before = req.query.get('id_before');
  let rest = [...items].sort((a, b) => (sort === 'asc' ? a.id - b.id : b.id - a.id));
  if (after !== null && after !== '') rest = rest.filter((i) => i.id > Number(after));
  if (before !== null && before !== '') rest = rest.filter((i) => i.id < Number(before));
  const slice = rest.slice(0, perPage);
  const headers: Record<string, string> = { 'x-per-page': String(perPage) };
  const last = slice[slice.length - 1];
  if (rest.length > perPage && last) {
    const key = sort === 'asc' ? 'id_after' : 'id_before';
    headers['link'] =
      `<${pageUrl(req, { [key]: String(last.id), per_page: String(perPage) }, ['id_after', 'id_before', 'page'])}>; rel="next"`;
  }
  return { status: 200, body: await render(slice), headers };
}
