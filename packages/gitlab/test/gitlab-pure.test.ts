import { describe, expect, it } from '@jest/globals';
import { SecretMasker, UsageError } from '@refbridge/core';
import { createGitlabForge, normalizeProjectPath } from '../src/gitlab-forge.js';
import { backoffMs, isRetryableStatus, retryAfterMs } from '../src/gitlab-requester.js';
import { isMaskable, maskingProblems, variableKeyProblem } from '../src/masking.js';
import { matchesRefPattern, parseRef } from '../src/ref-patterns.js';

describe('maskingProblems', () => {
  it('accepts the tokens refbridge stores', () => {
    expect(maskingProblems('ghp_16C7e42F292c6912E7710c838347Ae178B4a')).toEqual([]);
    expect(maskingProblems('glpat-xxxxxxxxxxxxxxxxxxxx')).toEqual([]);
    expect(maskingProblems('github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz')).toEqual([]);
    // Every extra character GitLab allows besides the Base64 alphabets.
    expect(isMaskable('a+b/c=d@e:f.g~h-i_j')).toBe(true);
    expect(isMaskable('12345678')).toBe(true);
  });

  it('refuses short values, saying how long they are and what GitLab needs', () => {
    expect(maskingProblems('abc1234')).toEqual(['it is 7 characters long and GitLab needs at least 8']);
    expect(maskingProblems('')).toEqual(['it is 0 characters long and GitLab needs at least 8']);
  });

  it('refuses whitespace, line breaks and other characters without naming them', () => {
    expect(maskingProblems('abcd efgh')).toEqual(['it contains whitespace or line breaks']);
    expect(maskingProblems('abcdefgh\n')).toEqual(['it contains whitespace or line breaks']);
    const problems = maskingProblems('pa$$word|xyz');
    expect(problems).toEqual(['it contains 3 characters outside A-Z a-z 0-9 and + / = @ : . ~ - _']);
    expect(problems.join(' ')).not.toContain('$');
    expect(problems.join(' ')).not.toContain('|');
    expect(maskingProblems('ünïcødé-value')).toHaveLength(1);
  });

  it('reports every problem at once', () => {
    expect(maskingProblems('a b!')).toHaveLength(3);
  });
});

describe('variableKeyProblem', () => {
  it('follows GitLab key rules', () => {
    expect(variableKeyProblem('MIRROR_TOKEN')).toBeUndefined();
    expect(variableKeyProblem('')).toBe('the name is empty');
    expect(variableKeyProblem('A-B')).toBe('the name may contain only letters, digits and _');
    expect(variableKeyProblem('A'.repeat(256))).toBe('the name is longer than 255 characters');
  });
});

describe('matchesRefPattern (GitLab protected branch wildcards)', () => {
  it('matches exact names only when there is no star', () => {
    expect(matchesRefPattern('main', 'main')).toBe(true);
    expect(matchesRefPattern('main', 'main2')).toBe(false);
    expect(matchesRefPattern('Main', 'main')).toBe(false);
  });

  it('lets * match any run of characters, slashes included, anchored at both ends', () => {
    expect(matchesRefPattern('release/*', 'release/1.0')).toBe(true);
    expect(matchesRefPattern('release/*', 'release/1.0/hotfix')).toBe(true);
    expect(matchesRefPattern('release/*', 'release/')).toBe(true);
    expect(matchesRefPattern('release/*', 'release')).toBe(false);
    expect(matchesRefPattern('release/*', 'pre-release/1.0')).toBe(false);
    expect(matchesRefPattern('*-stable', '16-4-stable')).toBe(true);
    expect(matchesRefPattern('*-stable', '16-4-stable-ee')).toBe(false);
    expect(matchesRefPattern('*', 'anything/at/all')).toBe(true);
    expect(matchesRefPattern('a*b*c', 'aXXbYYbZZc')).toBe(true);
    expect(matchesRefPattern('a*b*c', 'aXXcYYb')).toBe(false);
  });

  it('treats regex metacharacters literally', () => {
    expect(matchesRefPattern('v1.*', 'v1.2')).toBe(true);
    expect(matchesRefPattern('v1.*', 'v1x2')).toBe(false);
    expect(matchesRefPattern('feat(x)+*', 'feat(x)+y')).toBe(true);
  });

  it('stays fast on patterns built to backtrack', () => {
    const pattern = `${'*a'.repeat(30)}*b`;
    const name = 'a'.repeat(5000);
    expect(matchesRefPattern(pattern, name)).toBe(false);
  });

  it('parses refs', () => {
    expect(parseRef('refs/heads/release/1')).toEqual({ kind: 'branch', name: 'release/1' });
    expect(parseRef('refs/tags/v1')).toEqual({ kind: 'tag', name: 'v1' });
    expect(parseRef('main')).toEqual({ kind: 'branch', name: 'main' });
    expect(parseRef('refs/merge-requests/1/head').kind).toBe('other');
  });
});

describe('retry policy', () => {
  it('reads Retry-After as seconds or a date, then RateLimit-Reset', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': '3' }), now)).toBe(3000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:10 GMT' }), now)).toBe(10_000);
    expect(retryAfterMs(new Headers({ 'ratelimit-reset': String(now / 1000 + 7) }), now)).toBe(7000);
    expect(retryAfterMs(new Headers({}), now)).toBeUndefined();
  });

  it('repeats only what is safe to repeat', () => {
    for (const method of ['GET', 'PUT', 'POST', 'PATCH']) {
      expect(isRetryableStatus(429, method)).toBe(true);
      expect(isRetryableStatus(502, method)).toBe(true);
      expect(isRetryableStatus(404, method)).toBe(false);
    }
    expect(isRetryableStatus(500, 'GET')).toBe(true);
    expect(isRetryableStatus(500, 'POST')).toBe(false);
    expect(isRetryableStatus(504, 'POST')).toBe(false);
  });

  it('backs off exponentially up to the cap', () => {
    const r = { baseDelayMs: 100, maxDelayMs: 1000 };
    expect([0, 1, 2, 3, 4].map((a) => backoffMs(a, r))).toEqual([100, 200, 400, 800, 1000]);
  });
});

describe('createGitlabForge configuration', () => {
  const masker = () => new SecretMasker();

  it('derives the API URL and git URLs from the web URL, for self-managed paths too', () => {
    const forge = createGitlabForge({
      webUrl: 'https://git.example.com/gitlab/',
      token: 'glpat-abcdefgh',
      masker: masker(),
    });
    expect(forge.webUrl).toBe('https://git.example.com/gitlab');
    expect(forge.apiUrl).toBe('https://git.example.com/gitlab/api/v4');
    expect(forge.gitUrl('a/b/c')).toBe('https://git.example.com/gitlab/a/b/c.git');
    expect(forge.gitCredential()).toEqual({
      url: 'https://git.example.com/gitlab',
      username: 'oauth2',
      token: 'glpat-abcdefgh',
    });
  });

  it('registers the token with the masker', () => {
    const m = masker();
    createGitlabForge({ webUrl: 'https://gitlab.com', token: 'glpat-canary-123456', masker: m });
    expect(m.mask('x glpat-canary-123456 y')).toBe('x *** y');
  });

  it('refuses bad URLs, paths and missing tokens with usage errors', () => {
    expect(() => createGitlabForge({ webUrl: 'gitlab.com', token: 't0k3n-123', masker: masker() })).toThrow(UsageError);
    expect(() =>
      createGitlabForge({
        webUrl: 'https://gitlab.com',
        apiUrl: 'https://gitlab.com/api',
        token: 't',
        masker: masker(),
      }),
    ).toThrow(/does not end in \/api\/v4/);
    expect(() => createGitlabForge({ webUrl: 'https://gitlab.com', token: '', masker: masker() })).toThrow(
      /no GitLab token/,
    );
    expect(normalizeProjectPath('/group/sub/app.git/')).toBe('group/sub/app');
    expect(() => normalizeProjectPath('app')).toThrow(UsageError);
    expect(() => normalizeProjectPath('group/../app')).toThrow(UsageError);
  });
});
