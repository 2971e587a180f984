import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { repoRoot } from '../../../test/support/paths.js';

// Startup cost is what a command loads before it reads argv: `--version`, `--help` and the CI fast
// path `mirror` must not load the engines and API clients other commands need. Checked on the
// built bin (`npm test` builds first), which is a bundle (scripts/bundle-cli.mjs): one entry file
// and a chunk per lazily loaded part. So the process's loaded files are recorded and their code is
// searched for a string each part is known to contain.
const bin = join(repoRoot, 'packages', 'cli', 'dist', 'bin.js');
const recorder = join(repoRoot, 'packages', 'cli', 'test', 'fixtures', 'record-imports.mjs');

/** A string found in each part's code and nowhere else in the CLI. */
const MARKERS = {
  commander: 'CommanderError',
  execa: 'Command was killed with',
  mirrorRef: 'deepening the checkout',
  syncEngine: 'refs/refbridge/base/',
  octokit: 'octokit-rest.js',
  gitbeaker: 'gitbeaker',
  yaml: 'YAMLParseError',
  ajv: 'strictSchema',
  libsodium: 'crypto_box_seal',
} as const;
type Part = keyof typeof MARKERS;

let dir: string;
let runs = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'refbridge-startup-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the bin outside any CI; returns its exit code, stderr, the files it loaded (paths from the repo root) and the parts in them. */
async function loaded(
  args: string[],
): Promise<{ exitCode: number | undefined; stderr: string; modules: string[]; parts: Set<Part> }> {
  const file = join(dir, `run-${++runs}.txt`);
  const r = await execa(process.execPath, ['--import', pathToFileURL(recorder).href, bin, ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: dir, REFBRIDGE_RECORD_IMPORTS: file },
    extendEnv: false,
    cwd: dir,
    reject: false,
  });
  const root = pathToFileURL(repoRoot).href + '/';
  const urls = [...new Set((await readFile(file, 'utf8')).split('\n').filter((u) => u.startsWith(root)))];
  const code = (await Promise.all(urls.map((u) => readFile(fileURLToPath(u), 'utf8')))).join('\n');
  const parts = new Set((Object.keys(MARKERS) as Part[]).filter((p) => code.includes(MARKERS[p])));
  return { exitCode: r.exitCode, stderr: r.stderr, modules: urls.map((u) => u.slice(root.length)), parts };
}

describe('refbridge startup', () => {
  it.each([['--version'], ['--help'], ['mirror', '--help'], ['sync', '--help'], ['backup', '--help']])(
    '%s loads the option definitions only',
    async (...args) => {
      const r = await loaded(args);
      expect(r.exitCode).toBe(0);
      // The bundle is self-contained: nothing from node_modules or the other packages.
      expect(r.modules.filter((m) => !m.startsWith('packages/cli/dist/'))).toEqual([]);
      expect([...r.parts]).toEqual(['commander']);
    },
  );

  it('mirror loads the git runner and mirrorRef, not the sync engine, the API clients, yaml, ajv or libsodium', async () => {
    const r = await loaded(['mirror']);
    // Through to argument checking: outside CI the flags are required.
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('not running in GitLab CI or GitHub Actions');
    expect(r.modules.filter((m) => !m.startsWith('packages/cli/dist/'))).toEqual([]);
    expect([...r.parts].sort()).toEqual(['commander', 'execa', 'mirrorRef']);
  });

  it('every marker is in the bundle, in a file of its own part, so its absence above means something', async () => {
    const dist = join(repoRoot, 'packages', 'cli', 'dist');
    const files = (await readdir(dist)).filter((f) => f === 'bin.js' || /^chunk-.*\.js$/.test(f));
    const code = await Promise.all(files.map((f) => readFile(join(dist, f), 'utf8')));
    for (const part of Object.keys(MARKERS) as Part[]) {
      expect([part, code.filter((c) => c.includes(MARKERS[part])).length]).toEqual([part, 1]);
    }
  });
});
