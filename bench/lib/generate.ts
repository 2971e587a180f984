import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChecked } from './proc.js';

/**
 * The long-history repo of the CI scenario, made with one `git fast-import` and cached in
 * `bench/.cache/`, keyed by its parameters: the same parameters always give the same SHAs (fixed
 * dates, a deterministic byte stream), so a cached repo is reused across runs and machines.
 *
 * Every commit edits one of 200 text files (small line changes: what git deltas well, like real
 * source) and rewrites one of 500 binary assets with incompressible bytes; the assets carry the
 * bulk, so the packed size is close to `sizeMb`. Tags are annotated, spread evenly over history.
 */

export interface LongHistorySpec {
  commits: number;
  sizeMb: number;
  tags: number;
}

export interface GeneratedRepo {
  /** Bare repo holding the history (one pack with a bitmap, packed refs). */
  gitDir: string;
  /** Tip of refs/heads/main. */
  tip: string;
  packBytes: number;
  generatedNow: boolean;
  seconds: number;
}

/** Bump when the generated content changes, so stale caches are not reused. */
const GENERATOR_VERSION = 1;
const EPOCH = 1_600_000_000;
const WHO = 'Bench Generator <bench@refbridge.invalid>';
const TEXT_FILES = 200;
const ASSETS = 500;

/** Deterministic incompressible bytes: AES-128-CTR over zeros, from a fixed key. */
class ByteStream {
  private readonly cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));

  next(n: number): Buffer {
    return this.cipher.update(Buffer.alloc(n));
  }
}

function textFile(file: number, version: number): string {
  // 60 lines; each version changes the line the version number points at, as an edit would.
  const lines: string[] = [`// module ${file}`];
  for (let j = 0; j < 60; j++) {
    const value = j === version % 60 ? `${version * 7919}` : `${j * file}`;
    lines.push(`export const value${j} = ${value}; // helper number ${j} of module ${file}`);
  }
  return lines.join('\n') + '\n';
}

export function cacheKey(spec: LongHistorySpec): string {
  return `long-v${GENERATOR_VERSION}-${spec.commits}c-${spec.sizeMb}mb-${spec.tags}t`;
}

/** Returns the cached repo, generating it first when missing (or left incomplete by an interrupted run). */
export async function longHistoryRepo(cacheDir: string, spec: LongHistorySpec): Promise<GeneratedRepo> {
  const dir = join(cacheDir, cacheKey(spec));
  const gitDir = join(dir, 'repo.git');
  const marker = join(dir, 'done.json');
  const started = Date.now();
  const known = await readFile(marker, 'utf8').then(
    (t) => JSON.parse(t) as { tip: string; packBytes: number },
    () => undefined,
  );
  if (known) return { gitDir, ...known, generatedNow: false, seconds: 0 };

  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await runChecked('git', ['init', '-q', '--bare', '-b', 'main', gitDir]);
  await fastImport(gitDir, spec);
  // Servers keep repos packed with bitmaps; a clone from an unpacked repo would be unfairly slow.
  await runChecked('git', ['-C', gitDir, 'repack', '-a', '-d', '-q', '--write-bitmap-index']);
  await runChecked('git', ['-C', gitDir, 'pack-refs', '--all']);
  await runChecked('git', ['-C', gitDir, 'config', 'gc.auto', '0']);
  const tip = (await runChecked('git', ['-C', gitDir, 'rev-parse', 'refs/heads/main'])).trim();
  const packBytes = await packSize(gitDir);
  await writeFile(marker, JSON.stringify({ tip, packBytes, spec }, null, 2) + '\n');
  return { gitDir, tip, packBytes, generatedNow: true, seconds: (Date.now() - started) / 1000 };
}

export async function packSize(gitDir: string): Promise<number> {
  const out = await runChecked('git', ['-C', gitDir, 'count-objects', '-v']);
  const kib = new Map(out.split('\n').map((l) => [l.split(':')[0] ?? '', Number(l.split(':')[1] ?? 0)]));
  return ((kib.get('size-pack') ?? 0) + (kib.get('size') ?? 0)) * 1024;
}

async function fastImport(gitDir: string, spec: LongHistorySpec): Promise<void> {
  const child = spawn('git', ['fast-import', '--quiet', '--done', '--date-format=raw'], {
    env: { ...process.env, GIT_DIR: gitDir },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
  const stdin = child.stdin;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const chunk = Buffer.concat(pending);
    pending = [];
    pendingBytes = 0;
    if (!stdin.write(chunk)) await new Promise<void>((resolve) => stdin.once('drain', resolve));
  };
  const out = (s: string | Buffer): void => {
    const b = typeof s === 'string' ? Buffer.from(s) : s;
    pending.push(b);
    pendingBytes += b.length;
  };
  const data = (b: Buffer | string): void => {
    const buf = typeof b === 'string' ? Buffer.from(b) : b;
    out(`data ${buf.length}\n`);
    out(buf);
    out('\n');
  };

  const bytes = new ByteStream();
  // Commits, trees and text deltas take about 1.7 KB per commit once packed; the assets fill the rest.
  const perCommit = (spec.sizeMb * 1024 * 1024) / Math.max(1, spec.commits);
  const assetBytes = Math.max(256, Math.floor(perCommit - 1700));
  const tagEvery = spec.tags > 0 ? Math.max(1, Math.floor(spec.commits / spec.tags)) : 0;
  let tagged = 0;
  for (let i = 1; i <= spec.commits; i++) {
    const when = EPOCH + i * 600;
    out(`commit refs/heads/main\nmark :${i}\nauthor ${WHO} ${when} +0000\ncommitter ${WHO} ${when} +0000\n`);
    data(`Change ${i}\n\nGenerated commit ${i} of ${spec.commits}.\n`);
    if (i > 1) out(`from :${i - 1}\n`);
    const file = i % TEXT_FILES;
    out(`M 100644 inline src/module-${file}.ts\n`);
    data(textFile(file, Math.floor(i / TEXT_FILES)));
    out(`M 100644 inline assets/asset-${i % ASSETS}.bin\n`);
    data(bytes.next(assetBytes));
    out('\n');
    if (tagEvery > 0 && i % tagEvery === 0 && tagged < spec.tags) {
      tagged++;
      out(`tag v${Math.floor(tagged / 100)}.${tagged % 100}.0\nfrom :${i}\ntagger ${WHO} ${when + 1} +0000\n`);
      data(`Release ${tagged}\n`);
    }
    if (pendingBytes > 1 << 20) await flush();
  }
  out('done\n');
  await flush();
  stdin.end();
  const code = await exited;
  if (code !== 0) throw new Error(`git fast-import failed (${code}): ${stderr.trim()}`);
}
