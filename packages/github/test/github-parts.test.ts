import { describe, expect, it } from '@jest/globals';
import { ForgeApiError, RefbridgeError, SecretMasker, silentLogger, UsageError } from '@refbridge/core';
import sodium from 'libsodium-wrappers';
import { toForgeApiError } from '../src/github-errors.js';
import { createGithubForge, defaultGithubApiUrl } from '../src/github-forge.js';
import { globToRegExp, refMatches, splitRef } from '../src/ref-patterns.js';
import { isValidRepoPath, parseRepoPath } from '../src/repo-info.js';
import { nextLink } from '../src/repo-listing.js';
import { sealSecret } from '../src/secret-box.js';

const CANARY = 'ghp_canaryPARTS0123456789abcdefghijklmnop';

describe('API URL defaults', () => {
  it('uses api.github.com for github.com, api.<sub>.ghe.com for GHE.com, and /api/v3 for Enterprise Server', () => {
    expect(defaultGithubApiUrl('https://github.com')).toBe('https://api.github.com');
    expect(defaultGithubApiUrl('https://github.com/')).toBe('https://api.github.com');
    expect(defaultGithubApiUrl('https://octocorp.ghe.com')).toBe('https://api.octocorp.ghe.com');
    expect(defaultGithubApiUrl('https://github.example.com/')).toBe('https://github.example.com/api/v3');
    expect(defaultGithubApiUrl('http://127.0.0.1:4001')).toBe('http://127.0.0.1:4001/api/v3');
  });

  it('builds git URLs and credentials without the token in any URL', () => {
    const masker = new SecretMasker();
    const forge = createGithubForge({
      webUrl: 'https://github.example.com/',
      token: CANARY,
      logger: silentLogger,
      masker,
    });
    expect(forge.apiUrl).toBe('https://github.example.com/api/v3');
    expect(forge.gitUrl('acme/widgets')).toBe('https://github.example.com/acme/widgets.git');
    expect(forge.gitCredential()).toEqual({
      url: 'https://github.example.com',
      username: 'x-access-token',
      token: CANARY,
    });
    // Constructing the adapter registers the token, so nothing printed later can show it.
    expect(masker.mask(`token ${CANARY}`)).toBe('token ***');
  });
});

describe('repo paths', () => {
  it('accepts owner/name and refuses anything that could escape a URL or directory', () => {
    expect(parseRepoPath('acme/widgets.js')).toEqual({ owner: 'acme', name: 'widgets.js' });
    expect(isValidRepoPath('user_emu/x')).toBe(true);
    for (const bad of ['acme', 'acme/a/b', '../x', 'acme/..', 'acme/.', 'ac me/x', 'acme/x?y', '-acme/x', '/x']) {
      expect(isValidRepoPath(bad)).toBe(false);
    }
    expect(() => parseRepoPath('acme/../../etc')).toThrow(UsageError);
  });
});

describe('Link header', () => {
  it('finds rel="next" among the other relations', () => {
    const link =
      '<https://api.github.com/user/repos?page=1&per_page=100>; rel="prev", <https://api.github.com/user/repos?page=3&per_page=100>; rel="next", <https://api.github.com/user/repos?page=5&per_page=100>; rel="last"';
    expect(nextLink(link)).toBe('https://api.github.com/user/repos?page=3&per_page=100');
    expect(nextLink('<https://x/a?page=1>; rel="first", <https://x/a?page=4>; rel="prev"')).toBeUndefined();
    expect(nextLink(undefined)).toBeUndefined();
  });
});

describe('ruleset ref patterns', () => {
  it('matches fnmatch patterns on full refs: * within a segment, ** across', () => {
    expect(globToRegExp('refs/tags/v*').test('refs/tags/v1.2.3')).toBe(true);
    expect(globToRegExp('refs/tags/v*').test('refs/tags/v1/rc')).toBe(false);
    expect(globToRegExp('refs/heads/release/**').test('refs/heads/release/2024/q1')).toBe(true);
    expect(globToRegExp('refs/tags/v[0-9].?').test('refs/tags/v1.x')).toBe(true);
    expect(globToRegExp('refs/tags/v1.0').test('refs/tags/v1x0')).toBe(false);
    expect(refMatches('~ALL', 'refs/tags/anything', undefined)).toBe(true);
    expect(refMatches('~DEFAULT_BRANCH', 'refs/heads/main', 'main')).toBe(true);
    expect(refMatches('~DEFAULT_BRANCH', 'refs/heads/dev', 'main')).toBe(false);
  });

  it('splits refs into branch, tag and other', () => {
    expect(splitRef('refs/heads/feature/x')).toEqual({
      kind: 'branch',
      name: 'feature/x',
      full: 'refs/heads/feature/x',
    });
    expect(splitRef('refs/tags/v1')).toEqual({ kind: 'tag', name: 'v1', full: 'refs/tags/v1' });
    expect(splitRef('main')).toEqual({ kind: 'branch', name: 'main', full: 'refs/heads/main' });
    expect(splitRef('refs/pull/1/head').kind).toBe('other');
  });
});

describe('sealSecret', () => {
  it('produces a sealed box only the key pair opens, in base64 ORIGINAL', async () => {
    await sodium.ready;
    const pair = sodium.crypto_box_keypair();
    const publicKey = sodium.to_base64(pair.publicKey, sodium.base64_variants.ORIGINAL);
    const sealed = await sealSecret(publicKey, 'hunter2-ü');
    expect(sealed).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const bytes = sodium.from_base64(sealed, sodium.base64_variants.ORIGINAL);
    expect(bytes.length).toBe(Buffer.byteLength('hunter2-ü') + 48);
    const opened = sodium.crypto_box_seal_open(bytes, pair.publicKey, pair.privateKey);
    expect(sodium.to_string(opened)).toBe('hunter2-ü');
    // Sealed boxes use a fresh ephemeral key each time.
    expect(await sealSecret(publicKey, 'hunter2-ü')).not.toBe(sealed);
  });
});

describe('error messages', () => {
  const masker = new SecretMasker();
  masker.add(CANARY);
  const context = {
    action: 'reading the repository',
    repo: 'acme/widgets',
    apiUrl: 'https://api.github.com',
    retries: 3,
  };
  const httpError = (status: number, data: unknown, headers: Record<string, string> = {}) =>
    Object.assign(new Error(typeof data === 'object' && data && 'message' in data ? String(data.message) : 'x'), {
      status,
      response: { headers, data },
      request: { method: 'GET', url: 'https://api.github.com/repos/acme/widgets' },
    });

  it('401 says the token was rejected and what to do', () => {
    const e = toForgeApiError(httpError(401, { message: 'Bad credentials' }), context, masker);
    expect(e).toBeInstanceOf(ForgeApiError);
    expect(e.status).toBe(401);
    expect(e.message).toContain('GITHUB_TOKEN was rejected (401 Bad credentials)');
    expect(e.hint).toContain('create a new token');
  });

  it('403 names the scopes GitHub wanted and the ones the token has', () => {
    const e = toForgeApiError(
      httpError(
        403,
        { message: 'Must have admin rights to Repository.' },
        { 'x-accepted-oauth-scopes': 'repo', 'x-oauth-scopes': 'read:org' },
      ),
      context,
      masker,
    );
    expect(e.message).toContain('acme/widgets');
    expect(e.hint).toContain('[repo]');
    expect(e.hint).toContain('[read:org]');
  });

  it('an exhausted rate limit says when it resets', () => {
    const e = toForgeApiError(
      httpError(
        403,
        { message: 'API rate limit exceeded' },
        { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1893456000' },
      ),
      context,
      masker,
    );
    expect(e.message).toContain('rate limit exhausted');
    expect(e.message).toContain('2030-01-01T00:00:00.000Z');
  });

  it('a network failure names the API URL, and nothing echoes the token', () => {
    const network = Object.assign(new Error(`connect ECONNREFUSED (auth ${CANARY})`), { status: 500 });
    const e = toForgeApiError(network, context, masker);
    expect(e.message).toContain('could not reach GitHub at https://api.github.com');
    expect(e.message).not.toContain(CANARY);
    const body = toForgeApiError(httpError(422, { message: `Invalid value ${CANARY}` }), context, masker);
    expect(body.message).not.toContain(CANARY);
    expect(body.message).toContain('422');
  });
});

describe('setForcePushAllowed', () => {
  it('never weakens GitHub protection and explains the bypass list instead', async () => {
    const forge = createGithubForge({
      webUrl: 'https://github.com',
      token: CANARY,
      logger: silentLogger,
      masker: new SecretMasker(),
    });
    const rule = {
      source: 'ruleset "main guard"',
      pattern: 'refs/heads/main',
      allowForcePush: false,
      allowDeletion: false,
    };
    const error: unknown = await forge.setForcePushAllowed('acme/widgets', rule, true).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RefbridgeError);
    expect((error as RefbridgeError).hint).toContain('bypass list');
    expect((error as RefbridgeError).message).toContain('ruleset "main guard"');
  });
});
