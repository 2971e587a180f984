import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { runChecked } from './proc.js';

/**
 * Set-up state reused across bench runs. Reaching "500 pairs in sync" or "1,000 repos backed up"
 * takes refbridge's own first run over all of them (minutes on two cores); the targets are about
 * the runs after it. So the directory that first run leaves (the daemon's pair cache, the backup's
 * storage) is kept under `bench/.cache/setup/<name>/` and copied back on later runs, like the
 * generated repos.
 *
 * The key covers what decides that state's content: the scenario's seed (the forge seeds with
 * fixed dates, so the same seed gives the same commits), the forge's seeding code, its ports (part
 * of the URLs refbridge keys its state by), and the git and node versions. It deliberately does
 * not cover refbridge's own code, which changes all the time while the state it leaves behind
 * rarely does. Instead every run over restored state is checked to behave as a warm run should
 * (daemon: one ref listing per side and pair, no fetch and no push; backup: no git request at all); if one does not,
 * the bench fails rather than report. The first-run numbers saved with the state are reported
 * with the date they were measured, and flagged when refbridge's build has changed since.
 * Delete `bench/.cache/setup/` to force fresh first runs.
 */

export interface SetupSnapshot<M> {
  restored: boolean;
  meta: M | undefined;
}

export async function setupKey(root: string, parts: unknown): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(parts));
  h.update((await runChecked('git', ['--version'])).trim());
  h.update(process.version);
  for (const file of ['seed.ts', 'repo-factory.ts', 'server.ts']) {
    h.update(file);
    h.update(await readFile(join(root, 'test', 'forge', 'src', file)));
  }
  return h.digest('hex');
}

/** Identifies the built refbridge (every file of the packages' dist directories). */
export async function buildHash(root: string): Promise<string> {
  const h = createHash('sha256');
  for (const pkg of ['core', 'cli', 'github', 'gitlab']) {
    for (const file of await listFiles(join(root, 'packages', pkg, 'dist'))) {
      h.update(relative(root, file));
      h.update(await readFile(file));
    }
  }
  return h.digest('hex').slice(0, 16);
}

/** The "†" note of a first run restored with its set-up. */
export function firstRunNote(meta: { builtAt: string; build?: string }, currentBuild: string): string {
  const when = `${meta.builtAt.slice(0, 16).replace('T', ' ')} UTC`;
  return meta.build === currentBuild
    ? `measured by this build of refbridge when the set-up was built (${when})`
    : `measured when the set-up was built (${when}) by an earlier build of refbridge; rm -rf bench/.cache/setup to measure it again`;
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile() && !e.name.endsWith('.tsbuildinfo')) out.push(p);
  }
  return out;
}

function slot(cacheDir: string, name: string): { dir: string; data: string; keyFile: string; metaFile: string } {
  const dir = join(cacheDir, 'setup', name);
  return { dir, data: join(dir, 'data'), keyFile: join(dir, 'key'), metaFile: join(dir, 'meta.json') };
}

/** Copies the saved state into `target` (which must not exist) when its key matches. */
export async function restoreSetup<M>(
  cacheDir: string,
  name: string,
  key: string,
  target: string,
): Promise<SetupSnapshot<M>> {
  const s = slot(cacheDir, name);
  const saved = await readFile(s.keyFile, 'utf8').catch(() => '');
  if (saved.trim() !== key || !(await stat(s.data).catch(() => undefined))) return { restored: false, meta: undefined };
  await runChecked('cp', ['-a', s.data, target]);
  const meta = JSON.parse(await readFile(s.metaFile, 'utf8')) as M;
  return { restored: true, meta };
}

/** Saves `source` (copied, not moved: the run goes on using it) as the state for `key`. */
export async function saveSetup(
  cacheDir: string,
  name: string,
  key: string,
  source: string,
  meta: unknown,
): Promise<void> {
  const s = slot(cacheDir, name);
  await rm(s.dir, { recursive: true, force: true });
  await mkdir(s.dir, { recursive: true });
  await runChecked('cp', ['-a', source, s.data]);
  await writeFile(s.metaFile, JSON.stringify(meta, null, 2) + '\n');
  // Written last: a run interrupted while saving leaves no key, so nothing half-saved is reused.
  await writeFile(s.keyFile, key + '\n');
}

/** Whether a loopback port is free right now (for the fixed ports that keep set-up state reusable). */
export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** The preferred pair of ports when both are free, else undefined (random ports, fresh set-up). */
export async function fixedPorts(github: number): Promise<{ githubPort: number; gitlabPort: number } | undefined> {
  return (await portFree(github)) && (await portFree(github + 1))
    ? { githubPort: github, gitlabPort: github + 1 }
    : undefined;
}
