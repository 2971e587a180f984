import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { credentialEnv } from '../../packages/core/src/git-runner.js';
import { git } from './git.js';

/** Test-side git against a forge repo, with the token passed the way refbridge passes it. */
export function forgeGit(webUrl: string, token: string, username = 'x-access-token') {
  const env = { ...credentialEnv([{ url: webUrl, username, token }]), GIT_TERMINAL_PROMPT: '0' };
  return (cwd: string, args: string[]): Promise<string> => git(cwd, args, env);
}

/** Every file below `dir` whose content contains `needle` (for canary scans). */
export async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && (await readFile(p)).includes(needle)) hits.push(p);
    }
  }
  await walk(dir);
  return hits;
}
