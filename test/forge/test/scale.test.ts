import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { performance } from 'node:perf_hooks';
import { startForge, type RunningForge } from '../src/server.js';
import type { SeedSpec } from '../src/seed.js';
import type { Platform } from '../src/state.js';

/**
 * The forge with 1,000 repos on each platform and 16 clients at once, each listing every repo
 * through the API and running ls-remote on some of them. The test checks that every answer is
 * complete and correct; it measures latencies but never asserts them (set FORGE_SCALE_REPORT=1 to
 * print them; test/forge/README.md keeps one measurement).
 */

const REPOS = 1000;
const CLIENTS = 16;
const LS_REMOTES_PER_CLIENT = 6;
const GH_TOKEN = 'ghp_canaryScale0000000000000000000000';
const GL_TOKEN = 'glpat-canaryScale00000000';

const seed: SeedSpec = {
  github: {
    users: ['alice'],
    orgs: [{ login: 'scale', members: ['alice'] }],
    repos: [
      {
        owner: 'scale',
        name: 'repo-{n}',
        count: REPOS,
        private: true,
        files: { 'README.md': 'scale\n' },
        history: 3,
        tags: [{ name: 'v1' }],
      },
    ],
  },
  gitlab: {
    users: ['carol'],
    groups: [{ path: 'scale', members: { carol: 40 } }],
    projects: [{ path: 'scale/project-{n}', count: REPOS, files: { 'README.md': 'scale\n' }, history: 3 }],
  },
  tokens: [
    { value: GH_TOKEN, platform: 'github', user: 'alice', scopes: ['repo'] },
    { value: GL_TOKEN, platform: 'gitlab', user: 'carol', scopes: ['api'] },
  ],
};

let forge: RunningForge;
let seedMs = 0;

beforeAll(async () => {
  const started = performance.now();
  forge = await startForge({ seed });
  seedMs = performance.now() - started;
}, 180_000);

afterAll(async () => {
  await forge?.close();
});

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2;
}

/** Follows GitHub's `Link: rel="next"` or GitLab's `x-next-page` until the last page. */
async function listAll(platform: Platform, latencies: number[]): Promise<string[]> {
  const names: string[] = [];
  let url: string | undefined =
    platform === 'github'
      ? `${forge.urls.github.api}/orgs/scale/repos?per_page=100`
      : `${forge.urls.gitlab.api}/groups/scale/projects?per_page=100&simple=true`;
  const headers: Record<string, string> =
    platform === 'github' ? { authorization: `token ${GH_TOKEN}` } : { 'private-token': GL_TOKEN };
  for (let pages = 0; url && pages < 50; pages++) {
    const t = performance.now();
    const res: Response = await fetch(url, { headers });
    const body = (await res.json()) as { full_name?: string; path_with_namespace?: string }[];
    latencies.push(performance.now() - t);
    expect(res.status).toBe(200);
    names.push(...body.map((r) => (platform === 'github' ? r.full_name! : r.path_with_namespace!)));
    if (platform === 'github') {
      url = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
    } else {
      const next = res.headers.get('x-next-page');
      url = next ? `${forge.urls.gitlab.api}/groups/scale/projects?per_page=100&simple=true&page=${next}` : undefined;
    }
  }
  return names;
}

async function lsRemote(platform: Platform, path: string, latencies: number[]): Promise<string> {
  const web = forge.urls[platform].web;
  const user = platform === 'github' ? 'x-access-token' : 'oauth2';
  const token = platform === 'github' ? GH_TOKEN : GL_TOKEN;
  const t = performance.now();
  const r = await execa('git', ['ls-remote', `${web}/${path}.git`], {
    reject: false,
    timeout: 60_000,
    env: {
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: `http.${web}/.extraheader`,
      GIT_CONFIG_VALUE_0: `AUTHORIZATION: basic ${Buffer.from(`${user}:${token}`).toString('base64')}`,
    },
  });
  latencies.push(performance.now() - t);
  expect({ path, code: r.exitCode, stderr: String(r.stderr) }).toEqual({ path, code: 0, stderr: '' });
  return String(r.stdout);
}

describe('1,000 repos per platform, 16 concurrent clients', () => {
  it('answers every listing completely and every ls-remote correctly', async () => {
    expect(forge.state.githubRepos.size).toBe(REPOS);
    expect(forge.state.gitlabProjects.size).toBe(REPOS);
    const expectedGithub = (await lsRemote('github', 'scale/repo-1', [])).trim();
    const expectedGitlab = (await lsRemote('gitlab', 'scale/project-1', [])).trim();
    expect(expectedGithub).toContain('refs/tags/v1');

    const apiLatency: number[] = [];
    const gitLatency: number[] = [];
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        const platform: Platform = client % 2 === 0 ? 'github' : 'gitlab';
        const names = await listAll(platform, apiLatency);
        const outputs: string[] = [];
        for (let i = 0; i < LS_REMOTES_PER_CLIENT; i++) {
          // Spread clients over the repos so they hit different bare repos at once.
          const n = ((client * 61 + i * 167) % REPOS) + 1;
          outputs.push(
            (
              await lsRemote(platform, platform === 'github' ? `scale/repo-${n}` : `scale/project-${n}`, gitLatency)
            ).trim(),
          );
        }
        return { platform, names, outputs };
      }),
    );
    const wallMs = performance.now() - started;

    for (const r of results) {
      expect(new Set(r.names).size).toBe(REPOS);
      expect(r.names).toHaveLength(REPOS);
      for (const out of r.outputs) expect(out).toBe(r.platform === 'github' ? expectedGithub : expectedGitlab);
    }
    const gitRequests = forge.state.requestLog.filter((e) => e.kind === 'git');
    expect(gitRequests.every((e) => e.status === 200)).toBe(true);
    expect(JSON.stringify(forge.state.requestLog)).not.toContain(GH_TOKEN);
    expect(JSON.stringify(forge.state.requestLog)).not.toContain(GL_TOKEN);

    if (process.env['FORGE_SCALE_REPORT']) {
      console.log(
        JSON.stringify({
          seedMs: Math.round(seedMs),
          repos: REPOS * 2,
          clients: CLIENTS,
          apiPages: apiLatency.length,
          apiMedianMs: Math.round(median(apiLatency)),
          lsRemotes: gitLatency.length,
          lsRemoteMedianMs: Math.round(median(gitLatency)),
          wallMs: Math.round(wallMs),
        }),
      );
    }
  }, 300_000);
});
