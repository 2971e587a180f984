import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../../../test/support/paths.js';

// Startup cost is what a command loads before it reads argv: `--version`, `--help` and the CI fast
// path `mirror` must not load the engines and API clients other commands need. Checked on the
// built bin (`npm test` builds first) by recording every module the process loads.
const bin = join(repoRoot, 'packages', 'cli', 'dist', 'bin.js');
const recorder = join(repoRoot, 'packages', 'cli', 'test', 'fixtures', 'record-imports.mjs');

let dir: string;
let runs = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'refbridge-startup-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the bin outside any CI and returns its exit code, stderr and the modules it loaded (paths from the repo root). */
async function loaded(args: string[]): Promise<{ exitCode: number | undefined; stderr: string; modules: string[] }> {
  const file = join(dir, `run-${++runs}.txt`);
  const r = await execa(process.execPath, ['--import', pathToFileURL(recorder).href, bin, ...args], {
    env: { PATH: process.env['PATH'] ?? '', HOME: dir, REFBRIDGE_RECORD_IMPORTS: file },
    extendEnv: false,
    cwd: dir,
    reject: false,
  });
  const root = pathToFileURL(repoRoot).href + '/';
  const modules = (await readFile(file, 'utf8'))
    .split('\n')
    .filter((u) => u.startsWith(root))
    .map((u) => u.slice(root.length));
  return { exitCode: r.exitCode, stderr: r.stderr, modules };
}

const nodeModule = (path: string): string | undefined => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1];

describe('refbridge startup', () => {
  it.each([['--version'], ['--help'], ['mirror', '--help'], ['sync', '--help'], ['backup', '--help']])(
    '%s loads the option definitions only',
    async (...args) => {
      const r = await loaded(args);
      expect(r.exitCode).toBe(0);
      expect(r.modules).toContain('packages/cli/dist/program.js');
      // Of core, only the errors module main() catches with; no command implementation.
      expect(r.modules.filter((m) => m.startsWith('packages/core/'))).toEqual(['packages/core/dist/errors.js']);
      expect(r.modules.filter((m) => m.endsWith('-run.js'))).toEqual([]);
      expect([...new Set(r.modules.map(nodeModule).filter((m) => m !== undefined))]).toEqual(['commander']);
    },
  );

  it('mirror loads the git runner and mirrorRef, not the barrel, the API clients, yaml or ajv', async () => {
    const r = await loaded(['mirror']);
    // Through to argument checking: outside CI the flags are required.
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('not running in GitLab CI or GitHub Actions');
    expect(r.modules).toContain('packages/cli/dist/commands/mirror-run.js');
    expect(r.modules).toContain('packages/core/dist/mirror-ref.js');
    expect(r.modules).not.toContain('packages/core/dist/index.js');
    expect(r.modules.filter((m) => /^packages\/(github|gitlab)\//.test(m))).toEqual([]);
    expect(r.modules.filter((m) => m.endsWith('-run.js'))).toEqual(['packages/cli/dist/commands/mirror-run.js']);
    const packages = new Set(r.modules.map(nodeModule));
    for (const heavy of ['yaml', 'ajv', '@octokit/rest', '@octokit/core', '@gitbeaker/rest', '@gitbeaker/core'])
      expect(packages).not.toContain(heavy);
  });
});
