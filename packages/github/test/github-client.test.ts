import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { ForgeApiError, SecretMasker } from '@refbridge/core';
import type { Logger } from '@refbridge/core';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createGithubForge } from '../src/github-forge.js';

/**
 * The retry plumbing for answers the test forge does not produce: a plain 429 with only
 * `Retry-After` (a proxy, or GitHub without rate-limit headers) and a secondary rate limit. A
 * scripted loopback server answers each request from a queue, and counts them.
 */

interface Scripted {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

const REPO = {
  id: 7,
  full_name: 'o/r',
  private: false,
  visibility: 'public',
  default_branch: 'main',
  archived: false,
  fork: false,
  pushed_at: '2024-01-01T00:00:00Z',
  clone_url: 'https://example.invalid/o/r.git',
  description: null,
};

let server: Server;
let base: string;
let queue: Scripted[] = [];
let served = 0;
const lines: string[] = [];
const logger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (m) => lines.push(m),
  error: (m) => lines.push(m),
};

beforeAll(async () => {
  server = createServer((req, res) => {
    served++;
    const next = queue.shift() ?? { status: 500, body: { message: 'script ran out' } };
    const text = JSON.stringify(next.body);
    res.writeHead(next.status, { 'content-type': 'application/json; charset=utf-8', ...(next.headers ?? {}) });
    res.end(text);
    req.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  queue = [];
  served = 0;
  lines.length = 0;
});

const forge = (maxWaitSeconds = 60) =>
  createGithubForge({
    webUrl: base,
    token: 'ghp_canaryCLIENT000000000000000000000000',
    logger,
    masker: new SecretMasker(),
    retry: { retries: 2, unitMs: 1, writeIntervalMs: 0, maxWaitSeconds },
  });

describe('GitHub client retries', () => {
  it('honours Retry-After on a plain 429 instead of its own backoff', async () => {
    queue = [
      { status: 429, headers: { 'retry-after': '7' }, body: { message: 'Too Many Requests' } },
      { status: 200, body: REPO },
    ];
    expect((await forge().getRepo('o/r'))?.path).toBe('o/r');
    expect(served).toBe(2);
    expect(lines).toEqual([expect.stringContaining('429') as unknown as string]);
    expect(lines[0]).toContain('retrying after 7s');
  });

  it('fails at once when Retry-After is longer than it may wait', async () => {
    queue = [
      { status: 429, headers: { 'retry-after': '3600' }, body: { message: 'Too Many Requests' } },
      { status: 200, body: REPO },
    ];
    const error: unknown = await forge(60)
      .getRepo('o/r')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForgeApiError);
    expect((error as ForgeApiError).status).toBe(429);
    expect((error as ForgeApiError).message).toContain('asked to wait 3600s');
    expect(served).toBe(1);
  });

  it('stops after the configured number of retries', async () => {
    queue = Array.from({ length: 5 }, () => ({ status: 503, body: { message: 'Service Unavailable' } }));
    const error: unknown = await forge()
      .getRepo('o/r')
      .catch((e: unknown) => e);
    expect((error as ForgeApiError).message).toContain('kept answering 503');
    expect(served).toBe(3);
  });

  it('waits out a secondary rate limit (403 with its message)', async () => {
    queue = [
      {
        status: 403,
        headers: { 'retry-after': '2' },
        body: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.' },
      },
      { status: 200, body: REPO },
    ];
    expect((await forge().getRepo('o/r'))?.path).toBe('o/r');
    expect(served).toBe(2);
    expect(lines.some((l) => l.includes('secondary rate limit') && l.includes('waiting 2s'))).toBe(true);
  });

  it('does not retry what retrying cannot fix', async () => {
    queue = [
      { status: 422, body: { message: 'Validation Failed', errors: [{ message: 'name is invalid' }] } },
      { status: 200, body: REPO },
    ];
    const error: unknown = await forge()
      .createRepo('o/r', { visibility: 'private' })
      .catch((e: unknown) => e);
    // createRepo first asks GET /user; the script answers that with the 422.
    expect((error as ForgeApiError).message).toContain('422 Validation Failed: name is invalid');
    expect(served).toBe(1);
  });
});
