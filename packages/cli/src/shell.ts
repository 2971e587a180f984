import { homedir } from 'node:os';
import { join } from 'node:path';
// Core's modules one by one, not its barrel: `refbridge mirror` (the CI fast path) runs through
// this file and must not pay for loading the config, sync and backup engines (yaml, ajv). What
// only other commands need is imported inside the functions that need it.
import { ExitCode, UsageError } from '@refbridge/core/errors';
import { GitRunner } from '@refbridge/core/git-runner';
import { createLogger, type LogLevel, type Logger } from '@refbridge/core/logger';
import { SecretMasker } from '@refbridge/core/secret-masker';
import type { Forge, RefbridgeConfig, ResolvedPair } from '@refbridge/core';
import type { CliIo } from './program.js';

/**
 * What every command needs from its surroundings, read once: tokens from the environment (never
 * from flags or files), a masker that knows them, a logger that masks, one git runner.
 */
export interface Shell {
  io: CliIo;
  masker: SecretMasker;
  logger: Logger;
  git: GitRunner;
  /** Machine-readable output requested: human lines go to stderr, JSON alone to stdout. */
  json: boolean;
}

export function createShell(io: CliIo, options: { verbose?: boolean; json?: boolean; quiet?: boolean } = {}): Shell {
  const masker = new SecretMasker();
  for (const name of ['GITHUB_TOKEN', 'GITLAB_TOKEN', 'CI_JOB_TOKEN']) masker.add(io.env[name]);
  const level: LogLevel = options.verbose ? 'debug' : options.quiet ? 'warn' : 'info';
  const logger = createLogger({ masker, level, write: (_l, line) => io.stderr(`${line}\n`) });
  // Transient network failures of git (5xx, 429, dropped connections) are retried with backoff;
  // REFBRIDGE_GIT_RETRIES / REFBRIDGE_GIT_RETRY_WAIT_MS tune that (tests shorten the waits).
  const retries = wholeEnv(io.env, 'REFBRIDGE_GIT_RETRIES');
  const baseDelayMs = wholeEnv(io.env, 'REFBRIDGE_GIT_RETRY_WAIT_MS');
  const git = new GitRunner({
    masker,
    logger,
    networkRetry: {
      ...(retries === undefined ? {} : { retries }),
      ...(baseDelayMs === undefined ? {} : { baseDelayMs }),
    },
  });
  return { io, masker, logger, git, json: options.json ?? false };
}

/** A whole number from the environment; anything else is ignored (these are tuning knobs, not settings). */
function wholeEnv(env: CliIo['env'], name: string): number | undefined {
  const value = env[name];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** A whole-number flag within [min, max]; anything else is a usage error naming the flag. */
export function wholeNumber(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

export function positiveInt(flag: string, value: string, max = 10_000): number {
  return wholeNumber(flag, value, 1, max);
}

/** A flag that takes one of a few words; the error lists them in the order given. */
export function oneOf<const T extends string>(flag: string, value: string, choices: readonly T[]): T {
  const match = choices.find((c) => c === value);
  if (match !== undefined) return match;
  const list = `${choices.slice(0, -1).join(', ')} or ${choices.at(-1) ?? ''}`;
  throw new UsageError(`${flag} must be ${list}, got "${value}"`);
}

/** Reads the tokens a command needs; reports every missing one at once. */
export function requireTokens<K extends 'GITHUB_TOKEN' | 'GITLAB_TOKEN'>(
  shell: Shell,
  names: readonly K[],
): Record<K, string> {
  const out = {} as Record<K, string>;
  const missing: string[] = [];
  for (const n of names) {
    const v = shell.io.env[n]?.trim();
    if (v) out[n] = v;
    else missing.push(n);
  }
  if (missing.length > 0) {
    throw new UsageError(
      `${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} not set`,
      'export the token(s) in the environment; refbridge never takes tokens from flags or files (see README: Security)',
    );
  }
  return out;
}

/** `--config` (or the file found in the working directory) and the pairs `--pair` names (all if none). */
export async function loadPairs(
  io: CliIo,
  flags: { config?: string | undefined; pair?: readonly string[] | undefined },
): Promise<{ config: RefbridgeConfig; pairs: readonly ResolvedPair[] }> {
  const { loadConfig } = await import('@refbridge/core');
  const config = await loadConfig({
    ...(flags.config === undefined ? { cwd: io.cwd } : { path: flags.config }),
    env: io.env,
  });
  return { config, pairs: selectPairs(config, flags.pair) };
}

function selectPairs(config: RefbridgeConfig, names: readonly string[] | undefined): readonly ResolvedPair[] {
  if (!names || names.length === 0) return config.pairs;
  const byName = new Map(config.pairs.map((p) => [p.name.toLowerCase(), p]));
  const unknown = names.filter((n) => !byName.has(n.toLowerCase()));
  if (unknown.length > 0) {
    throw new UsageError(
      `no pair named ${unknown.map((n) => `"${n}"`).join(', ')} in ${config.source}`,
      `known pairs: ${config.pairs.map((p) => p.name).join(', ') || '(none)'}`,
    );
  }
  // A pair named twice would run twice at once and race for its own lock.
  return [...new Set(names.map((n) => byName.get(n.toLowerCase())!))];
}

/** API retry settings a command takes from its flags; unset ones come from the environment. */
export interface ApiRetry {
  retries?: number;
  /** GitHub: the time unit of backoff and Retry-After waits; GitLab: the first backoff. */
  waitMs?: number;
}

export async function githubForge(
  shell: Shell,
  config: Pick<RefbridgeConfig, 'github'>,
  token: string,
  options: ApiRetry = {},
): Promise<Forge> {
  const { createGithubForge } = await import('@refbridge/github');
  // GitHub asks for writes at least 1 s apart; a GitHub Enterprise admin (or the test forge) can
  // lower that with REFBRIDGE_GITHUB_WRITE_INTERVAL_MS.
  const writeIntervalMs = wholeEnv(shell.io.env, 'REFBRIDGE_GITHUB_WRITE_INTERVAL_MS');
  // REFBRIDGE_API_RETRY_WAIT_MS: the time unit of API backoff and Retry-After waits (default 1000).
  const unitMs = options.waitMs ?? wholeEnv(shell.io.env, 'REFBRIDGE_API_RETRY_WAIT_MS');
  const retry = {
    ...(writeIntervalMs === undefined ? {} : { writeIntervalMs }),
    ...(unitMs === undefined ? {} : { unitMs }),
    ...(options.retries === undefined ? {} : { retries: options.retries }),
  };
  return createGithubForge({
    webUrl: config.github.url,
    apiUrl: config.github.apiUrl,
    token,
    logger: shell.logger,
    masker: shell.masker,
    ...(Object.keys(retry).length === 0 ? {} : { retry }),
  });
}

export async function gitlabForge(
  shell: Shell,
  config: Pick<RefbridgeConfig, 'gitlab'>,
  token: string,
  options: ApiRetry = {},
): Promise<Forge> {
  const { createGitlabForge } = await import('@refbridge/gitlab');
  // First backoff of API retries when the server sends no Retry-After (default 1000 ms).
  const baseDelayMs = options.waitMs ?? wholeEnv(shell.io.env, 'REFBRIDGE_API_RETRY_WAIT_MS');
  const retry = {
    ...(baseDelayMs === undefined ? {} : { baseDelayMs }),
    ...(options.retries === undefined ? {} : { retries: options.retries }),
  };
  return createGitlabForge({
    webUrl: config.gitlab.url,
    apiUrl: config.gitlab.apiUrl,
    token,
    logger: shell.logger,
    masker: shell.masker,
    ...(Object.keys(retry).length === 0 ? {} : { retry }),
  });
}

/** `$XDG_CACHE_HOME/refbridge`, else `~/.cache/refbridge`. */
export function defaultCacheDir(env: CliIo['env']): string {
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(env['HOME'] ?? homedir(), '.cache'), 'refbridge');
}

/** 1 if anything failed, else 3 if anything diverged, else 0 (pairs skipped for a lock are not failures). */
export function exitCodeFor(results: readonly { status: string }[]): number {
  if (results.some((r) => r.status === 'failed')) return ExitCode.failure;
  if (results.some((r) => r.status === 'diverged')) return ExitCode.diverged;
  return ExitCode.ok;
}

/**
 * Writes to stdout, masked: results carry messages from git and the servers, which may echo a
 * token back.
 */
export function printText(shell: Shell, text: string): void {
  shell.io.stdout(shell.masker.mask(text));
}

/** The one JSON document `--json` prints, alone on stdout. */
export function printJson(shell: Shell, value: unknown): void {
  printText(shell, JSON.stringify(value) + '\n');
}

/** How a step or ref shows in a dry run's listing: what would be done is the plan. */
export function statusTag(status: string, dryRun: boolean): string {
  return dryRun && status === 'planned' ? 'plan' : status;
}

/** The end of a run's last line. */
export function dryRunNote(dryRun: boolean): string {
  return dryRun ? ' (dry run: nothing changed)' : '';
}

/**
 * The end of a run: the JSON document with `--json`; else the lines about single pairs or repos,
 * an empty line, the counts table and a closing line.
 */
export function printSummary(
  shell: Shell,
  summary: {
    json: () => unknown;
    details: string;
    headers: readonly string[];
    rows: readonly (readonly string[])[];
    closing: string;
  },
): void {
  if (shell.json) printJson(shell, summary.json());
  else printText(shell, `${summary.details}\n${table(summary.headers, summary.rows)}${summary.closing}\n`);
}

/** Renders rows as an aligned text table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/** Runs tasks with at most `limit` in flight, keeping result order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return results;
}
