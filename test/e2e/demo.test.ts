import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ALL_TOKENS, TOKENS } from '../../demo/demo-world.js';
import { git } from '../support/git.js';
import { repoRoot } from '../support/paths.js';
import { tempDir } from '../support/temp.js';

/**
 * `npm run demo` is the first command of the README, so it is tested as a newcomer runs it: as a
 * child process in its own process group, with its own TMPDIR. Both modes run at once (each has
 * its own forge on its own ports): the plain run must exit 0 by itself; the `--keep` run must
 * serve what it prints until SIGINT, then exit 0. Afterwards nothing may be left: no process of
 * its group, no listening port, no temp directory.
 */

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pgid: number;
  tmp: string;
  /** What the --keep run saw while the forge was up. */
  explored?: { lsRemote: string; branches: unknown; gitlabBranches: unknown };
}

let work: Awaited<ReturnType<typeof tempDir>>;
let plain: DemoRun;
let kept: DemoRun;

const STORY_TIMEOUT_MS = 150_000;

async function runDemo(
  name: string,
  args: string[],
  whileUp?: (stdout: string) => Promise<DemoRun['explored']>,
): Promise<DemoRun> {
  const tmp = join(work.path, name);
  await mkdir(tmp, { recursive: true });
  const child = spawn(process.execPath, ['--import', 'tsx', join('demo', 'run.ts'), ...args], {
    cwd: repoRoot,
    // A group of its own: whatever the demo starts stays in it, so leftovers can be found.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '', HOME: work.path, TMPDIR: tmp },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('close', (code, signal) => resolve([code, signal])),
  );
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), STORY_TIMEOUT_MS);
  let explored: DemoRun['explored'];
  try {
    if (whileUp) {
      const deadline = Date.now() + STORY_TIMEOUT_MS;
      while (!stdout.includes('Press Ctrl-C') && child.exitCode === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
      }
      if (stdout.includes('Press Ctrl-C')) {
        try {
          explored = await whileUp(stdout);
        } finally {
          child.kill('SIGINT');
        }
      }
    }
    const [code, signal] = await exited;
    return { code, signal, stdout, stderr, pgid: child.pid!, tmp, ...(explored ? { explored } : {}) };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the commands the --keep text prints, as a reader would paste them. */
async function explore(stdout: string): Promise<DemoRun['explored']> {
  const line = (re: RegExp): string => {
    const m = stdout.split('\n').find((l) => re.test(l.trim()));
    if (!m) throw new Error(`the --keep text has no line matching ${re}`);
    return m.trim();
  };
  const lsRemote = line(/^git ls-remote http:\/\/alice:/).split(/\s+/);
  const curl = line(/^curl -s -H 'Authorization: Bearer/);
  const gitlabCurl = line(/^curl -s -H 'PRIVATE-TOKEN/);
  const bearer = /Bearer ([^']+)'/.exec(curl)?.[1] ?? '';
  const privateToken = /PRIVATE-TOKEN: ([^']+)'/.exec(gitlabCurl)?.[1] ?? '';
  const url = (l: string): string => l.split(/\s+/).at(-1) ?? '';
  return {
    lsRemote: await git(work.path, lsRemote.slice(1)),
    branches: await (await fetch(url(curl), { headers: { authorization: `Bearer ${bearer}` } })).json(),
    gitlabBranches: await (await fetch(url(gitlabCurl), { headers: { 'private-token': privateToken } })).json(),
  };
}

/** Processes still in the demo's process group (Linux: /proc/<pid>/stat, field 5). */
async function groupMembers(pgid: number): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) found.push(`${pid} ${stat.slice(0, stat.lastIndexOf(')') + 1)}`);
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(2000, () => done(true));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function forgePorts(stdout: string): number[] {
  return [...stdout.matchAll(/^\s+Git(?:Hub|Lab)\s+http:\/\/127\.0\.0\.1:(\d+)/gm)].map((m) => Number(m[1]));
}

async function expectNothingLeft(run: DemoRun): Promise<void> {
  // tsx's esbuild service ends when its parent's pipe closes, a moment after the demo: give the
  // group a few seconds to empty, then whatever is still there was left running.
  let members = await groupMembers(run.pgid);
  for (let i = 0; i < 50 && members.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    members = await groupMembers(run.pgid);
  }
  expect(members).toEqual([]);
  const ports = forgePorts(run.stdout);
  expect(ports).toHaveLength(2);
  for (const port of ports) expect(await listening(port)).toBe(false);
  // tsx keeps its compile cache in TMPDIR (tsx-<uid>); everything the demo made must be gone.
  expect((await readdir(run.tmp)).filter((e) => !e.startsWith('tsx-'))).toEqual([]);
}

beforeAll(async () => {
  work = await tempDir('refbridge-demo-e2e-');
  [plain, kept] = await Promise.all([runDemo('plain', []), runDemo('keep', ['--keep'], explore)]);
}, 2 * STORY_TIMEOUT_MS);

afterAll(async () => {
  await work?.cleanup();
});

describe('npm run demo', () => {
  it('tells the whole story and exits 0 by itself', () => {
    expect({ code: plain.code, stderr: plain.stderr }).toEqual({ code: 0, stderr: '' });
    const out = plain.stdout;
    for (const heading of [
      /^1\. A local GitHub and GitLab$/m,
      /^2\. refbridge bootstrap/m,
      /^3\. refbridge sync/m,
      /^4\. A push on GitHub, mirrored by the Action$/m,
      /^5\. A push on GitLab, mirrored by the GitLab CI\/CD component$/m,
      /^6\. .*refbridge sync catches it$/m,
      /^7\. The repair/m,
      /^8\. refbridge backup/m,
      /^9\. Final state/m,
    ]) {
      expect(out).toMatch(heading);
    }
    expect(out).toMatch(/\$ refbridge bootstrap\n/);
    expect(out).toMatch(/3 pair\(s\): 3 set up/);
    expect(out).toMatch(/GitHub Actions step refbridge\/refbridge@v1 \(node dist\/index\.js, Node \d+\)/);
    expect(out).toMatch(/refbridge: refs\/heads\/main: pushed: fast-forwarded/);
    expect(out).toMatch(/Step outputs: result=pushed, target-sha=[0-9a-f]{7}/);
    expect(out).toMatch(/pushed by the mirror bot refbridge-bot; not mirroring it back/);
    expect(out).toMatch(/GitLab CI job refbridge-mirror[^\n]*\n[^\n]*\n\s+refs\/heads\/main: pushed: fast-forwarded/);
    expect(out).toMatch(/refs\/heads\/develop\s+attention: diverged/);
    expect(out).toMatch(/\$ refbridge sync --pair widgets --resolve refs\/heads\/develop --keep github\n/);
    expect(out).toMatch(/refs\/refbridge\/backup\/\d{8}T\d{6}Z\/gitlab\/heads\/develop/);
    expect(out).toMatch(/--checkout --storage mirror-data/);
    expect(out).toMatch(/mirror-data\/127\.0\.0\.1_\d+\/acme\/widgets\.git$/m);

    // The final table: every ref of every pair at the same commit on both sides.
    const final = out.slice(out.indexOf('9. Final state'));
    const rows = final.split('\n').filter((l) => /\b[0-9a-f]{7}\s+[0-9a-f]{7}\b/.test(l));
    expect(rows.length).toBeGreaterThanOrEqual(6);
    for (const row of rows) {
      const [, a, b] = /([0-9a-f]{7})\s+([0-9a-f]{7})\s+same$/.exec(row) ?? [];
      expect(a).toBeDefined();
      expect(a).toBe(b);
    }
    expect(out).not.toMatch(/DIFFERENT|FAILED/);
  });

  it('never prints a token in the plain run', () => {
    for (const token of ALL_TOKENS) {
      expect(plain.stdout.includes(token)).toBe(false);
      expect(plain.stderr.includes(token)).toBe(false);
    }
  });

  it('leaves no process, port or temp directory behind', async () => {
    await expectNothingLeft(plain);
  });

  it('--keep serves what it prints until Ctrl-C, then cleans up and exits 0', async () => {
    expect({ code: kept.code, stderr: kept.stderr }).toEqual({ code: 0, stderr: '' });
    expect(kept.explored).toBeDefined();
    expect(kept.explored!.lsRemote).toMatch(/^[0-9a-f]{40}\trefs\/heads\/develop$/m);
    expect(kept.explored!.branches).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'main' }), expect.objectContaining({ name: 'develop' })]),
    );
    expect(kept.explored!.gitlabBranches).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'develop' })]),
    );
    expect(kept.stdout).toMatch(/demo: stopped the local GitHub and GitLab and removed /);
    // The demo tokens appear only in the exploration text, which exists to show them.
    const story = kept.stdout.slice(0, kept.stdout.indexOf('The local GitHub and GitLab keep running'));
    expect(story.length).toBeGreaterThan(1000);
    for (const token of ALL_TOKENS) expect(story.includes(token)).toBe(false);
    expect(kept.stdout).toContain(`export GITHUB_TOKEN=${TOKENS.githubAdmin}`);
    await expectNothingLeft(kept);
  });
});
