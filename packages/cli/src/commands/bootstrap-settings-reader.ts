import { ForgeApiError, type SecretMasker, type SettingsReader, type StoredVariable } from '@refbridge/core';

/**
 * Reads CI settings back for `refbridge bootstrap` (current variable values, whether a secret
 * exists): the `Forge` interface only writes them. Plain GET requests, with a short retry on
 * 429/5xx/network errors; the token goes in a header and every message is masked.
 *
 * Belongs in the adapters as `Forge.readVariable` / `Forge.secretExists` once the interface
 * grows them; until then it lives here so core stays platform-free.
 */

const ATTEMPTS = 3;
const TIMEOUT_MS = 30_000;

interface ReaderOptions {
  apiUrl: string;
  token: string;
  masker: SecretMasker;
  /** Waits between attempts (tests shorten them). */
  backoffMs?: number;
}

async function getJson(
  platform: 'github' | 'gitlab',
  url: string,
  headers: Record<string, string>,
  what: string,
  options: ReaderOptions,
): Promise<Record<string, unknown> | undefined> {
  let lastError = '';
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    let status: number | undefined;
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
      status = res.status;
      if (res.status === 404) return undefined;
      const text = await res.text();
      if (res.ok) return JSON.parse(text) as Record<string, unknown>;
      lastError = `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
      if (res.status !== 429 && res.status < 500) break;
      const retryAfter = Number(res.headers.get('retry-after'));
      if (attempt < ATTEMPTS) {
        const wait =
          Number.isFinite(retryAfter) && retryAfter > 0
            ? Math.min(retryAfter, 10) * 1000
            : (options.backoffMs ?? 500) * attempt;
        await new Promise((r) => setTimeout(r, wait));
      }
    } catch (error) {
      if (status !== undefined) throw error;
      lastError = error instanceof Error ? error.message : String(error);
      if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, (options.backoffMs ?? 500) * attempt));
    }
  }
  throw new ForgeApiError(
    platform,
    options.masker.mask(`${what} failed: ${lastError}`),
    undefined,
    platform === 'github'
      ? 'reading Actions variables and secrets needs admin access to the repository and the `repo` scope'
      : 'reading CI/CD variables needs the Maintainer role and the `api` scope',
  );
}

export function githubSettingsReader(options: ReaderOptions): SettingsReader {
  const api = options.apiUrl.replace(/\/+$/, '');
  const headers = {
    authorization: `Bearer ${options.token}`,
    accept: 'application/vnd.github+json',
    'x-github-api-version': '2022-11-28',
    'user-agent': 'refbridge',
  };
  const repoUrl = (path: string): string => {
    const [owner = '', name = ''] = path.split('/');
    return `${api}/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
  };
  return {
    async variable(path, name): Promise<StoredVariable | undefined> {
      const body = await getJson(
        'github',
        `${repoUrl(path)}/actions/variables/${encodeURIComponent(name)}`,
        headers,
        `reading Actions variable ${name} of ${path}`,
        options,
      );
      if (body === undefined) return undefined;
      return { value: typeof body['value'] === 'string' ? body['value'] : undefined, protected: false, masked: false };
    },
    async secret(path, name): Promise<StoredVariable | undefined> {
      const body = await getJson(
        'github',
        `${repoUrl(path)}/actions/secrets/${encodeURIComponent(name)}`,
        headers,
        `reading Actions secret ${name} of ${path}`,
        options,
      );
      return body === undefined ? undefined : { value: undefined, protected: false, masked: true };
    },
  };
}

export function gitlabSettingsReader(options: ReaderOptions): SettingsReader {
  const api = options.apiUrl.replace(/\/+$/, '');
  const headers = { 'private-token': options.token, accept: 'application/json', 'user-agent': 'refbridge' };
  const read = async (path: string, name: string): Promise<StoredVariable | undefined> => {
    const body = await getJson(
      'gitlab',
      `${api}/projects/${encodeURIComponent(path)}/variables/${encodeURIComponent(name)}?filter%5Benvironment_scope%5D=*`,
      headers,
      `reading CI/CD variable ${name} of ${path}`,
      options,
    );
    if (body === undefined) return undefined;
    return {
      // Hidden variables come back with value null.
      value: typeof body['value'] === 'string' ? body['value'] : undefined,
      protected: body['protected'] === true,
      masked: body['masked'] === true || body['hidden'] === true,
    };
  };
  return { variable: read, secret: read };
}

/**
 * Scopes and login of a GitLab token that may not call `GET /user`: a mirror token with only
 * `write_repository` (the least a mirror needs) gets 403 there. `/personal_access_tokens/self`
 * answers for any scope; the login then comes from `/users/:id`, asked with the admin token.
 */
export async function gitlabTokenInfoWithoutReadUser(options: {
  apiUrl: string;
  token: string;
  adminToken: string;
  masker: SecretMasker;
}): Promise<{ login: string; scopes: string[] | undefined } | undefined> {
  const api = options.apiUrl.replace(/\/+$/, '');
  const self = await getJson(
    'gitlab',
    `${api}/personal_access_tokens/self`,
    { 'private-token': options.token, accept: 'application/json', 'user-agent': 'refbridge' },
    'reading the token (GET /personal_access_tokens/self)',
    options,
  );
  if (self === undefined) return undefined;
  const scopes = Array.isArray(self['scopes'])
    ? self['scopes'].filter((s): s is string => typeof s === 'string')
    : undefined;
  const userId = self['user_id'];
  let login = '';
  if (typeof userId === 'number') {
    const user = await getJson(
      'gitlab',
      `${api}/users/${userId}`,
      { 'private-token': options.adminToken, accept: 'application/json', 'user-agent': 'refbridge' },
      `reading user ${userId}`,
      { ...options, token: options.adminToken },
    );
    if (typeof user?.['username'] === 'string') login = user['username'];
  }
  return { login, scopes };
}
