import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ConfigError } from '../../../packages/core/src/errors.js';
import { FaultInjector } from '../src/faults.js';
import { loadSeedFile, validateSeed } from '../src/seed.js';
import { startForge, type RunningForge } from '../src/server.js';
import type { PushLogEntry, RequestLogEntry } from '../src/state.js';
import { repoRoot } from '../../support/paths.js';
import { tempDir } from '../../support/temp.js';

/**
 * The forge's seed, admin API, fault injection and CLI. Git and API requests are real; faults are
 * checked by what a client sees (status, headers, a dropped socket) and by the request log.
 */

const EXAMPLE = join(repoRoot, 'test', 'forge', 'seeds', 'example.yaml');
const GH_TOKEN = 'ghp_example_alice_0000000000000000000000';
const GL_TOKEN = 'glpat-example-carol-000000';

let forge: RunningForge;
let tmp: Awaited<ReturnType<typeof tempDir>>;

function basic(user: string, token: string): string {
  return `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
}

function gitEnv(url: string, user: string, token: string): Record<string, string> {
  return {
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${url}/.extraheader`,
    GIT_CONFIG_VALUE_0: `AUTHORIZATION: ${basic(user, token)}`,
  };
}

async function lsRemote(url: string, token = GH_TOKEN): Promise<{ code: number; stdout: string; stderr: string }> {
  const origin = new URL(url).origin;
  const user = token.startsWith('glpat-') ? 'oauth2' : 'x-access-token';
  const r = await execa('git', ['ls-remote', url], {
    reject: false,
    timeout: 30_000,
    env: gitEnv(origin, user, token),
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function admin<T = unknown>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(`${forge.urls.github.web}/_forge${path}`, init);
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function setFaults(rules: unknown): Promise<void> {
  const r = await admin('/faults', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(rules),
  });
  expect(r.status).toBe(200);
}

beforeAll(async () => {
  tmp = await tempDir('forge-admin-');
  forge = await startForge({ seed: EXAMPLE });
});

afterAll(async () => {
  await forge?.close();
  await tmp?.cleanup();
});

describe('seed', () => {
  it('loads the documented example with nested groups, counts, branches, tags and tokens', async () => {
    const { state } = forge;
    expect([...state.githubRepos.values()].map((r) => `${r.owner}/${r.name}`).sort()).toEqual([
      'acme/bulk-1',
      'acme/bulk-2',
      'acme/bulk-3',
      'acme/widgets',
      'alice/empty',
      'alice/notes',
    ]);
    expect(state.gitlabGroups.get('acme/platform/tools')?.parentId).toBe(state.gitlabGroups.get('acme/platform')?.id);
    const api = state.gitlabProject('acme/platform/tools/api')!;
    expect(api.protectedBranches.map((p) => p.name).sort()).toEqual(['main', 'release/*']);
    expect(state.gitlabProject('carol/scratch')?.namespaceKind).toBe('user');
    expect(state.tokens.get('glpat-example-expired-000')?.expired).toBe(true);

    const widgets = await lsRemote(`${forge.urls.github.web}/acme/widgets.git`);
    expect(widgets.code).toBe(0);
    for (const ref of [
      'refs/heads/main',
      'refs/heads/develop',
      'refs/heads/feature/login',
      'refs/tags/v1.0.0^{}',
      'refs/tags/nightly',
      'refs/pull/1/head',
    ]) {
      expect(widgets.stdout).toContain(ref);
    }
    // Copies made with `count` share the first repo's content exactly.
    const b1 = await lsRemote(`${forge.urls.github.web}/acme/bulk-1.git`);
    const b3 = await lsRemote(`${forge.urls.github.web}/acme/bulk-3.git`);
    expect(b3.stdout).toBe(b1.stdout);
    const svc = await lsRemote(`${forge.urls.gitlab.web}/acme/platform/svc-2.git`, GL_TOKEN);
    expect(svc.code).toBe(0);
    expect(svc.stdout).toContain('refs/heads/main');
  });

  it('seeds the same commit SHAs on every run', async () => {
    const again = await startForge({ seed: EXAMPLE });
    try {
      const a = await lsRemote(`${forge.urls.github.web}/acme/widgets.git`);
      const b = await lsRemote(`${again.urls.github.web}/acme/widgets.git`);
      expect(b.stdout).toBe(a.stdout);
    } finally {
      await again.close();
    }
  });

  it('reports every problem of a bad seed at once, with lines, and no token values', async () => {
    const file = join(tmp.path, 'bad.yaml');
    await writeFile(
      file,
      [
        'github:',
        '  users: [alice]',
        '  repos:',
        '    - owner: nobody',
        '      name: x',
        '      privat: true',
        'gitlab:',
        '  groups:',
        '    - path: a/b',
        'tokens:',
        '  - value: ghp_secretvalue_should_not_echo',
        '    platform: github',
        '    user: zed',
        '    scopes: [repo, nonsense]',
        '',
      ].join('\n'),
    );
    const error = await loadSeedFile(file).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => [p.key, p.line])).toEqual([
      ['github.repos[0].privat', 6],
      ['github.repos[0].owner', 4],
      ['gitlab.groups[0].path', 9],
      ['tokens[0].user', 13],
      ['tokens[0].scopes[1]', 14],
    ]);
    expect((error as ConfigError).message).toContain('"nobody" is not a declared GitHub user or org');
    expect((error as ConfigError).message).toContain('parent group "a" is not declared');
    expect((error as ConfigError).message).not.toContain('ghp_secretvalue_should_not_echo');
  });

  it('validates seeds given as objects too', () => {
    expect(() => validateSeed({ gitlab: { projects: [{ path: 'lonely' }] } })).toThrow(/needs a namespace/);
    expect(() =>
      validateSeed({
        github: { users: ['a'], repos: [{ owner: 'a', name: 'r', branches: { x: { from: 'missing' } } }] },
      }),
    ).toThrow(/"missing" is not the default branch or a declared branch/);
    expect(validateSeed({})).toEqual({});
  });
});

describe('admin API', () => {
  it('serves the request log with filters, a per-route summary and a reset', async () => {
    await admin('/requests/reset', { method: 'POST' });
    await lsRemote(`${forge.urls.github.web}/acme/widgets.git`);
    await fetch(`${forge.urls.gitlab.api}/projects?private_token=${GL_TOKEN}`);
    await fetch(`${forge.urls.github.api}/user`, { headers: { authorization: `token ${GH_TOKEN}` } });
    const all = await admin<RequestLogEntry[]>('/requests');
    expect(all.body.map((e) => `${e.platform} ${e.kind} ${e.route} ${e.status}`)).toEqual([
      'github git GET info/refs?service=git-upload-pack 200',
      'github git POST git-upload-pack 200',
      'gitlab api GET /projects 200',
      'github api GET /user 200',
    ]);
    expect(all.body[0]!.user).toBe('alice');
    // The GitLab token went in the query string; the log keeps the route, not the token.
    expect(JSON.stringify(all.body)).not.toContain(GL_TOKEN);
    const git = await admin<RequestLogEntry[]>('/requests?platform=github&kind=git');
    expect(git.body).toHaveLength(2);
    const since = await admin<RequestLogEntry[]>(`/requests?since=${all.body[1]!.seq}`);
    expect(since.body).toHaveLength(2);
    const summary = await admin<{
      total: number;
      routes: { route: string; count: number; statuses: Record<string, number> }[];
    }>('/requests/summary');
    expect(summary.body.total).toBe(4);
    expect(summary.body.routes).toContainEqual(
      expect.objectContaining({ route: 'POST git-upload-pack', count: 1, statuses: { '200': 1 } }),
    );
    const reset = await admin<{ removed: number }>('/requests/reset', { method: 'POST' });
    expect(reset.body.removed).toBe(4);
    expect((await admin<RequestLogEntry[]>('/requests')).body).toEqual([]);
  });

  it('serves the push log, decrypted secrets and a state summary', async () => {
    const dir = join(tmp.path, 'push');
    const env = gitEnv(forge.urls.github.web, 'x-access-token', GH_TOKEN);
    await execa('git', ['clone', '-q', `${forge.urls.github.web}/acme/widgets.git`, dir], { env });
    await execa(
      'git',
      ['-c', 'user.name=T', '-c', 'user.email=t@example.com', 'commit', '-q', '--allow-empty', '-m', 'x'],
      { cwd: dir },
    );
    await execa('git', ['push', '-q', '-o', 'ci.skip', 'origin', 'HEAD:refs/heads/admin-test'], { cwd: dir, env });
    const pushes = await admin<PushLogEntry[]>('/pushes?repo=acme/widgets');
    expect(pushes.body.at(-1)).toMatchObject({
      platform: 'github',
      repo: 'acme/widgets',
      user: 'alice',
      accepted: true,
      pushOptions: ['ci.skip'],
      updates: [expect.objectContaining({ ref: 'refs/heads/admin-test' })],
    });
    expect(pushes.body.at(-1)!.bytesReceived).toBeGreaterThan(0);
    expect((await admin<PushLogEntry[]>('/pushes?platform=gitlab')).body).toEqual([]);

    const secrets = await admin('/secrets/github/acme/widgets');
    expect(secrets.body).toEqual({ DEPLOY_TOKEN: 'not-a-real-secret' });
    expect((await admin('/secrets/github/acme/nope')).status).toBe(404);

    const state = await admin<{
      github: { repos: { fullName: string; refs?: Record<string, string> }[] };
      tokens: object[];
    }>('/state?refs=1');
    const widgets = state.body.github.repos.find((r) => r.fullName === 'acme/widgets')!;
    expect(widgets.refs?.['refs/heads/admin-test']).toMatch(/^[0-9a-f]{40}$/);
    expect(JSON.stringify(state.body)).not.toContain(GH_TOKEN);
    expect((await admin('/nothing')).status).toBe(404);
  });

  it('answers on the GitLab port as well', async () => {
    const res = await fetch(`${forge.urls.gitlab.web}/_forge/state`);
    expect(res.status).toBe(200);
  });
});

describe('faults', () => {
  afterAll(async () => {
    await admin('/faults', { method: 'DELETE' });
  });

  it('rejects invalid rules with the field at fault', async () => {
    const r = await admin<{ message: string }>('/faults', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ fault: 'status', status: 418 }]),
    });
    expect(r.status).toBe(422);
    expect(r.body.message).toBe('faults[0].status: must be 500, 502 or 503');
  });

  it('fails git routes with 500 on the Nth request only', async () => {
    await setFaults([
      { platform: 'github', kind: 'git', route: 'POST git-upload-pack', fault: 'status', status: 500, nth: 2 },
    ]);
    // ls-remote makes one POST (protocol v2 ls-refs) after the advertisement.
    const url = `${forge.urls.github.web}/acme/widgets.git`;
    expect((await lsRemote(url)).code).toBe(0);
    const second = await lsRemote(url);
    expect(second.code).not.toBe(0);
    expect(second.stderr).toContain('500');
    expect((await lsRemote(url)).code).toBe(0);
    const rules = await admin<{ matched: number; fired: number }[]>('/faults');
    expect(rules.body[0]).toMatchObject({ matched: 3, fired: 1 });
    const faulted = (await admin<RequestLogEntry[]>('/requests?kind=git')).body.filter((e) => e.fault);
    expect(faulted.at(-1)).toMatchObject({ route: 'POST git-upload-pack', status: 500, fault: 'status' });
  });

  it('answers 429 with Retry-After (and GitHub rate-limit headers) on API and git routes', async () => {
    await setFaults([
      { platform: 'github', kind: 'api', route: 'GET /user', fault: 'rate-limit', retryAfter: 7, times: 1 },
      { platform: 'gitlab', kind: 'git', fault: 'rate-limit', retryAfter: 3, times: 1 },
    ]);
    const gh = await fetch(`${forge.urls.github.api}/user`, { headers: { authorization: `token ${GH_TOKEN}` } });
    expect(gh.status).toBe(429);
    expect(gh.headers.get('retry-after')).toBe('7');
    expect(gh.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(gh.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
    expect(((await gh.json()) as { message: string }).message).toMatch(/rate limit/);
    // `times: 1`: the next call goes through.
    expect(
      (await fetch(`${forge.urls.github.api}/user`, { headers: { authorization: `token ${GH_TOKEN}` } })).status,
    ).toBe(200);

    const gl = await fetch(`${forge.urls.gitlab.web}/acme/platform/tools/api.git/info/refs?service=git-upload-pack`, {
      headers: { authorization: basic('oauth2', GL_TOKEN) },
    });
    expect(gl.status).toBe(429);
    expect(gl.headers.get('retry-after')).toBe('3');
    expect(await gl.text()).toBe('Retry later\n');
  });

  it('drops connections and slows responses', async () => {
    await setFaults([
      { platform: 'gitlab', kind: 'api', route: 'GET /projects', fault: 'drop', times: 1 },
      { kind: 'git', path: '/alice/notes', fault: 'slow', delayMs: 200, times: 1 },
    ]);
    await expect(fetch(`${forge.urls.gitlab.api}/projects`)).rejects.toThrow();
    expect((await fetch(`${forge.urls.gitlab.api}/projects`)).status).toBe(200);
    const slow = await lsRemote(`${forge.urls.github.web}/alice/notes.git`);
    expect(slow.code).toBe(0);
    const log = (await admin<RequestLogEntry[]>('/requests')).body;
    expect(log.filter((e) => e.fault === 'drop')).toEqual([
      expect.objectContaining({ platform: 'gitlab', kind: 'api', status: 0 }),
    ]);
    expect(log.filter((e) => e.fault === 'slow')).toEqual([
      expect.objectContaining({ route: 'GET info/refs?service=git-upload-pack', status: 200 }),
    ]);

    await setFaults([{ kind: 'git', path: '/alice/notes', fault: 'drop' }]);
    const dropped = await lsRemote(`${forge.urls.github.web}/alice/notes.git`);
    expect(dropped.code).not.toBe(0);
    expect(dropped.stderr).toMatch(/Empty reply|transfer closed|Recv failure|unable to access/);
  });

  it('fires at a seeded rate, the same requests every time', async () => {
    const pattern = async (): Promise<boolean[]> => {
      await setFaults([
        {
          platform: 'github',
          kind: 'api',
          path: '/api/v3/rate_limit',
          fault: 'status',
          status: 503,
          rate: 0.3,
          seed: 42,
        },
      ]);
      const out: boolean[] = [];
      for (let i = 0; i < 60; i++) out.push((await fetch(`${forge.urls.github.api}/rate_limit`)).status === 503);
      return out;
    };
    const first = await pattern();
    const second = await pattern();
    expect(second).toEqual(first);
    const fired = first.filter(Boolean).length;
    expect(fired).toBeGreaterThan(5);
    expect(fired).toBeLessThan(40);
    expect((await admin<{ fired: number }[]>('/faults')).body[0]!.fired).toBe(fired);
  });

  it('applies a request and then fails its answer with afterApply', async () => {
    await setFaults([
      {
        platform: 'gitlab',
        kind: 'api',
        route: 'POST /projects/:id/variables',
        fault: 'status',
        status: 502,
        nth: 1,
        afterApply: true,
      },
      {
        platform: 'gitlab',
        kind: 'api',
        route: 'POST /projects/:id/variables',
        fault: 'drop',
        nth: 2,
        afterApply: true,
      },
    ]);
    const create = (key: string) =>
      fetch(`${forge.urls.gitlab.api}/projects/${encodeURIComponent('acme/platform/tools/api')}/variables`, {
        method: 'POST',
        headers: { 'private-token': GL_TOKEN, 'content-type': 'application/json' },
        body: JSON.stringify({ key, value: 'applied-value' }),
      });
    const lost = await create('LOST_502');
    expect(lost.status).toBe(502);
    await expect(create('LOST_DROP')).rejects.toThrow();
    // Both writes happened although neither client saw them succeed.
    const variables = forge.state.gitlabProject('acme/platform/tools/api')!.variables.map((v) => v.key);
    expect(variables).toEqual(expect.arrayContaining(['LOST_502', 'LOST_DROP']));
    const log = (await admin<RequestLogEntry[]>('/requests?platform=gitlab&kind=api')).body.filter((e) => e.fault);
    expect(log.slice(-2)).toEqual([
      expect.objectContaining({ route: 'POST /projects/:id/variables', status: 502, fault: 'status', user: 'carol' }),
      expect.objectContaining({ route: 'POST /projects/:id/variables', status: 0, fault: 'drop', user: 'carol' }),
    ]);

    const invalid = async (rule: unknown): Promise<string> => {
      const r = await admin<{ message: string }>('/faults', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([rule]),
      });
      expect(r.status).toBe(422);
      return r.body.message;
    };
    expect(await invalid({ fault: 'status', afterApply: true })).toMatch(/^faults\[0\]\.afterApply: .*"kind": "api"/);
    expect(await invalid({ kind: 'api', fault: 'slow', afterApply: true })).toMatch(/^faults\[0\]\.afterApply: /);
    expect(await invalid({ kind: 'api', fault: 'drop', afterApply: 'yes' })).toBe(
      'faults[0].afterApply: must be true or false',
    );
  });

  it('counts each rule on its own and supports regex routes (unit)', () => {
    const f = new FaultInjector();
    f.set([
      { route: 're:^GET /repos/', fault: 'status', nth: 2 },
      { kind: 'api', fault: 'slow', delayMs: 0, times: 2 },
    ]);
    const seen = ['GET /repos/:owner/:repo', 'GET /user', 'GET /repos/:owner/:repo', 'GET /user'].map(
      (r) => f.decide('github', 'api', r)?.kind,
    );
    expect(seen).toEqual(['slow', 'slow', 'status', undefined]);
    expect(() => f.set([{ route: 're:(', fault: 'drop' }])).toThrow(/invalid regular expression/);
  });
});

describe('npm run forge', () => {
  it('prints one JSON line, serves, and exits 0 on SIGTERM', async () => {
    const child = execa(
      process.execPath,
      ['--import', 'tsx', 'test/forge/src/main.ts', '--seed', EXAMPLE, '--port', '0'],
      {
        cwd: repoRoot,
        reject: false,
        timeout: 120_000,
        stdin: 'ignore',
      },
    );
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the forge printed nothing within 60 s')), 60_000);
      lines.once('line', (line) => {
        clearTimeout(timer);
        resolve(line);
      });
      child.once('exit', () => reject(new Error('the forge exited before printing its URLs')));
    });
    const urls = JSON.parse(first) as {
      github: { web: string; api: string; git: string };
      gitlab: { api: string };
      admin: string;
    };
    expect(urls.github.api).toBe(`${urls.github.web}/api/v3`);
    expect(urls.gitlab.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/v4$/);
    const state = (await (await fetch(`${urls.admin}/state`)).json()) as { github: { users: string[] } };
    expect(state.github.users).toEqual(['alice', 'bob']);
    expect(await lsRemote(`${urls.github.git}/acme/widgets.git`)).toMatchObject({ code: 0 });
    child.kill('SIGTERM');
    const result = await child;
    // The object form shows the forge's stderr if this fails.
    expect({ exitCode: result.exitCode, signal: result.signal, stderr: String(result.stderr) }).toMatchObject({
      exitCode: 0,
    });
    expect(String(result.stdout)).toBe(first);
    expect(String(result.stderr)).not.toContain(GH_TOKEN);
  });

  it('exits non-zero with the seed problems on stderr', async () => {
    const bad = join(tmp.path, 'cli-bad.yaml');
    await writeFile(bad, 'github:\n  users: [alice]\n  orgs:\n    - login: acme\n      members: [ghost]\n');
    const r = await execa(
      process.execPath,
      ['--import', 'tsx', 'test/forge/src/main.ts', '--seed', bad, '--port', '0'],
      {
        cwd: repoRoot,
        reject: false,
        timeout: 60_000,
      },
    );
    expect(r.exitCode).toBe(2);
    expect(String(r.stdout)).toBe('');
    expect(String(r.stderr)).toContain(`${bad}:5:`);
    expect(String(r.stderr)).toContain('member "ghost" is not a declared GitHub user');
  });
});
