import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  GitRunner,
  SecretMasker,
  UsageError,
  createLogger,
  type Forge,
  type LogLevel,
  type Logger,
  type RefbridgeConfig,
} from '@refbridge/core';
import { createGithubForge } from '@refbridge/github';
import { createGitlabForge } from '@refbridge/gitlab';
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

export function githubForge(shell: Shell, config: Pick<RefbridgeConfig, 'github'>, token: string): Forge {
  // GitHub asks for writes at least 1 s apart; a GitHub Enterprise admin (or the test forge) can
  // lower that with REFBRIDGE_GITHUB_WRITE_INTERVAL_MS.
  const writeIntervalMs = wholeEnv(shell.io.env, 'REFBRIDGE_GITHUB_WRITE_INTERVAL_MS');
  // REFBRIDGE_API_RETRY_WAIT_MS: the time unit of API backoff and Retry-After waits (default 1000).
  const unitMs = wholeEnv(shell.io.env, 'REFBRIDGE_API_RETRY_WAIT_MS');
  const retry = {
    ...(writeIntervalMs === undefined ? {} : { writeIntervalMs }),
    ...(unitMs === undefined ? {} : { unitMs }),
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

export function gitlabForge(shell: Shell, config: Pick<RefbridgeConfig, 'gitlab'>, token: string): Forge {
  // First backoff of API retries when the server sends no Retry-After (default 1000 ms).
  const baseDelayMs = wholeEnv(shell.io.env, 'REFBRIDGE_API_RETRY_WAIT_MS');
  return createGitlabForge({
    webUrl: config.gitlab.url,
    apiUrl: config.gitlab.apiUrl,
    token,
    logger: shell.logger,
    masker: shell.masker,
    ...(baseDelayMs === undefined ? {} : { retry: { baseDelayMs } }),
  });
}

/** `$XDG_CACHE_HOME/refbridge`, else `~/.cache/refbridge`. */
export function defaultCacheDir(env: CliIo['env']): string {
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(env['HOME'] ?? homedir(), '.cache'), 'refbridge');
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
