import { execa } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Plain git for test set-up (the product's runner is what is under test, not this). */
export async function git(cwd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await execa('git', args, {
    cwd,
    env: {
      GIT_AUTHOR_NAME: 'Test',
      GIT_AUTHOR_EMAIL: 'test@example.com',
      GIT_COMMITTER_NAME: 'Test',
      GIT_COMMITTER_EMAIL: 'test@example.com',
      GIT_TERMINAL_PROMPT: '0',
      ...env,
    },
  });
  return r.stdout.trim();
}

export async function initRepo(dir: string, options: { bare?: boolean; branch?: string } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(dir, ['init', '-q', ...(options.bare ? ['--bare'] : []), '-b', options.branch ?? 'main']);
}

/** Writes files and commits them; returns the new commit's SHA. */
export async function commitFiles(dir: string, files: Record<string, string>, message = 'change'): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
  }
  await git(dir, ['add', '-A']);
  await git(dir, ['commit', '-q', '-m', message]);
  return git(dir, ['rev-parse', 'HEAD']);
}
