import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LockedError } from '../src/errors.js';
import { acquireLock } from '../src/pair-lock.js';
import { repoRoot } from '../../../test/support/paths.js';
import { tempDir } from '../../../test/support/temp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir();
});
afterAll(async () => tmp.cleanup());

describe('acquireLock', () => {
  it('refuses a second holder in skip mode and frees the lock on release', async () => {
    const path = join(tmp.path, 'a.lock');
    const first = await acquireLock(path, { mode: 'skip', label: 'pair a' });
    await expect(acquireLock(path, { mode: 'skip', label: 'pair a' })).rejects.toBeInstanceOf(LockedError);
    await first.release();
    const second = await acquireLock(path, { mode: 'skip', label: 'pair a' });
    await second.release();
  });

  it('takes over a lock whose process is gone', async () => {
    const path = join(tmp.path, 'stale.lock');
    const dead = await execa(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    await writeFile(
      path,
      JSON.stringify({ pid: Number(dead.stdout), host: hostname(), startedAt: 'then', token: 'x' }),
    );
    const lock = await acquireLock(path, { mode: 'skip', label: 'pair stale' });
    await lock.release();
  });

  it('keeps a live holder on another process, waits in wait mode until it is released', async () => {
    const path = join(tmp.path, 'wait.lock');
    const held = await acquireLock(path, { mode: 'skip', label: 'pair w' });
    const waiting = acquireLock(path, { mode: 'wait', pollMs: 20, timeoutMs: 5000, label: 'pair w' });
    await new Promise((r) => setTimeout(r, 100));
    await held.release();
    const got = await waiting;
    await got.release();
  });

  it('gives mutual exclusion across processes', async () => {
    const path = join(tmp.path, 'count.lock');
    const counter = join(tmp.path, 'counter');
    await writeFile(counter, '0');
    const mod = pathToFileURL(join(repoRoot, 'packages/core/dist/pair-lock.js')).href;
    // Each child does a read-modify-write with a pause in between; without the lock, updates would be lost.
    const script = `
      import { readFile, writeFile } from 'node:fs/promises';
      const { acquireLock } = await import(${JSON.stringify(mod)});
      for (let i = 0; i < 5; i++) {
        const l = await acquireLock(${JSON.stringify(path)}, { mode: 'wait', pollMs: 5, timeoutMs: 30000, label: 'c' });
        const n = Number(await readFile(${JSON.stringify(counter)}, 'utf8'));
        await new Promise((r) => setTimeout(r, 2));
        await writeFile(${JSON.stringify(counter)}, String(n + 1));
        await l.release();
      }`;
    await Promise.all(Array.from({ length: 4 }, () => execa(process.execPath, ['--input-type=module', '-e', script])));
    expect(await readFile(counter, 'utf8')).toBe('20');
  });
});
