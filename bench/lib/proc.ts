import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfAndChildrenCpuSeconds } from './cpu.js';

/**
 * Child processes for the benchmarks. Everything measured runs as its own process (the built CLI,
 * git, a shell for the baselines), so its wall time and peak memory are its own, not the bench's.
 */

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  /** Kill the process after this long (a hung command must not hang the whole bench). */
  timeoutMs?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 15 * 60_000;

export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env ? clean(options.env) : process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : -1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

function clean(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** Runs a command that must succeed; returns its stdout. */
export async function runChecked(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().slice(-2000)}`);
  }
  return r.stdout;
}

export interface Measured extends RunResult {
  seconds: number;
  /** Peak RSS of the largest process in the command's tree (GNU time's %M), in bytes. */
  peakRssBytes: number | undefined;
  /** User + system CPU of the command and the children it waited for. */
  cpuSeconds: number | undefined;
  /**
   * CPU this (bench) process and its children used meanwhile: the in-process forge serving the
   * command, its `git http-backend` children and, in the CI scenario, the counting relay.
   */
  forgeCpuSeconds: number | undefined;
}

const GNU_TIME = '/usr/bin/time';
const hasGnuTime = existsSync(GNU_TIME);

/**
 * Runs and measures one command: wall time from here, peak RSS and CPU from GNU time when present
 * (its %M is the largest resident set of the process or any child it waited for), else peak RSS of
 * the direct child sampled from /proc/<pid>/status (VmHWM).
 */
export async function measure(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<Measured> {
  const before = selfAndChildrenCpuSeconds();
  const m = await measureCommand(cmd, args, options);
  const after = selfAndChildrenCpuSeconds();
  return { ...m, forgeCpuSeconds: before !== undefined && after !== undefined ? after - before : undefined };
}

async function measureCommand(
  cmd: string,
  args: readonly string[],
  options: RunOptions,
): Promise<Omit<Measured, 'forgeCpuSeconds'>> {
  if (hasGnuTime) {
    const dir = await mkdtemp(join(tmpdir(), 'refbridge-bench-time-'));
    const file = join(dir, 'time.txt');
    try {
      const started = process.hrtime.bigint();
      const r = await run(GNU_TIME, ['-f', '%M %U %S', '-o', file, cmd, ...args], options);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const text = (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').at(-1) ?? '';
      const [rss, user, sys] = text.split(' ').map(Number);
      return {
        ...r,
        seconds,
        peakRssBytes: rss !== undefined && Number.isFinite(rss) ? rss * 1024 : undefined,
        cpuSeconds: user !== undefined && sys !== undefined && Number.isFinite(user + sys) ? user + sys : undefined,
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return measureByProc(cmd, args, options);
}

async function measureByProc(
  cmd: string,
  args: readonly string[],
  options: RunOptions,
): Promise<Omit<Measured, 'forgeCpuSeconds'>> {
  const started = process.hrtime.bigint();
  let peak = 0;
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: options.env ? clean(options.env) : process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const sample = async (): Promise<void> => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    if (kb * 1024 > peak) peak = kb * 1024;
  };
  const timer = setInterval(() => void sample(), 50);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const kill = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c ?? -1));
  });
  clearInterval(timer);
  clearTimeout(kill);
  return {
    code,
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
    peakRssBytes: peak || undefined,
    cpuSeconds: undefined,
  };
}

/** Throws with the command's output when a measured command failed: a failed run is not a data point. */
export function mustSucceed(what: string, m: Measured): Measured {
  if (m.code !== 0) throw new Error(`${what} failed (exit ${m.code}):\n${(m.stderr + m.stdout).trim().slice(-3000)}`);
  return m;
}
