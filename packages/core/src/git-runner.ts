import { execa } from 'execa';
import { GitCommandError, RefbridgeError } from './errors.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import type { SecretMasker } from './secret-masker.js';

/**
 * Credentials for one HTTP(S) origin. They reach git only through the environment
 * (`GIT_CONFIG_COUNT`/`KEY`/`VALUE` with `http.<origin>/.extraheader`), so they never appear in
 * argv, remote URLs or `.git/config`.
 */
export interface GitCredential {
  /** Any URL on the origin; only scheme, host and port are used. */
  url: string;
  /** `x-access-token` for GitHub, `oauth2` for GitLab; any non-empty name works for both. */
  username: string;
  token: string;
}

export interface GitRunOptions {
  cwd?: string;
  credentials?: readonly GitCredential[];
  /** Exit codes that are answers rather than failures (e.g. 1 from `merge-base --is-ancestor`). */
  okExitCodes?: readonly number[];
  input?: string;
  env?: Readonly<Record<string, string>>;
  /** Hint attached to the error if the command fails. */
  hint?: string;
  timeoutMs?: number;
}

export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** git >= 2.31 reads config from GIT_CONFIG_COUNT, which is how credentials stay out of argv. */
export const MIN_GIT_VERSION = [2, 31, 0] as const;

export function parseGitVersion(output: string): [number, number, number] | undefined {
  const m = /git version (\d+)\.(\d+)(?:\.(\d+))?/.exec(output);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

function originOf(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}/`;
}

/**
 * Builds the environment that hands credentials to git. The empty first value resets any
 * extraheader inherited from other config (actions/checkout persists one for github.com that
 * would otherwise be sent too and win).
 */
export function credentialEnv(credentials: readonly GitCredential[]): Record<string, string> {
  const env: Record<string, string> = {};
  let i = 0;
  for (const c of credentials) {
    const key = `http.${originOf(c.url)}.extraheader`;
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = '';
    i++;
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = `AUTHORIZATION: basic ${Buffer.from(`${c.username}:${c.token}`).toString('base64')}`;
    i++;
  }
  env['GIT_CONFIG_COUNT'] = String(i);
  return env;
}

/** Strips userinfo from URLs so a URL with credentials never reaches a message. */
export function redactUrl(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s:]+(?::[^/@\s]*)?@/gi, '$1***@');
}

/** The one way refbridge runs git: argument arrays, no shell, no prompts, masked errors. */
export class GitRunner {
  private readonly masker: SecretMasker;
  private readonly logger: Logger;
  private readonly gitPath: string;
  private readonly baseEnv: Readonly<Record<string, string>>;
  private versionChecked: Promise<void> | undefined;

  constructor(options: {
    masker: SecretMasker;
    logger?: Logger;
    gitPath?: string;
    env?: Readonly<Record<string, string>>;
  }) {
    this.masker = options.masker;
    this.logger = options.logger ?? silentLogger;
    this.gitPath = options.gitPath ?? 'git';
    this.baseEnv = options.env ?? {};
  }

  /** Fails with a clear message when git is missing or older than MIN_GIT_VERSION. */
  async ensureVersion(): Promise<void> {
    this.versionChecked ??= (async () => {
      let out: string;
      try {
        out = (await execa(this.gitPath, ['version'], { env: { LC_ALL: 'C' } })).stdout;
      } catch (error) {
        throw new RefbridgeError(`git was not found (${this.gitPath})`, {
          hint: `install git ${MIN_GIT_VERSION.join('.')} or newer and make sure it is on PATH`,
          cause: error,
        });
      }
      const v = parseGitVersion(out);
      const min = MIN_GIT_VERSION;
      const tooOld = !v || v[0] < min[0] || (v[0] === min[0] && (v[1] < min[1] || (v[1] === min[1] && v[2] < min[2])));
      if (tooOld) {
        throw new RefbridgeError(`git ${v ? v.join('.') : '(unknown version)'} is too old`, {
          hint: `refbridge needs git ${min.join('.')} or newer to pass credentials through the environment; upgrade git`,
        });
      }
    })();
    return this.versionChecked;
  }

  async run(args: readonly string[], options: GitRunOptions = {}): Promise<GitResult> {
    await this.ensureVersion();
    for (const c of options.credentials ?? []) this.masker.add(c.token);
    const shown = args.map((a) => this.masker.mask(redactUrl(a)));
    this.logger.debug(`git ${shown.join(' ')}`);
    const env: Record<string, string> = {
      ...this.baseEnv,
      ...(options.env ?? {}),
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: '',
      SSH_ASKPASS: '',
      LC_ALL: 'C',
      ...credentialEnv(options.credentials ?? []),
    };
    const result = await execa(this.gitPath, [...args], {
      cwd: options.cwd,
      env,
      reject: false,
      stripFinalNewline: false,
      maxBuffer: 512 * 1024 * 1024,
      ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
      ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }),
    });
    const stdout = typeof result.stdout === 'string' ? result.stdout : '';
    const stderr = typeof result.stderr === 'string' ? result.stderr : '';
    const exitCode = result.exitCode;
    const ok = exitCode === 0 || (exitCode !== undefined && (options.okExitCodes ?? []).includes(exitCode));
    if (!ok) {
      const reason = result.timedOut
        ? `timed out after ${options.timeoutMs} ms\n${stderr}`
        : stderr || (result.originalMessage ?? '');
      throw new GitCommandError(shown, exitCode, this.masker.mask(redactUrl(reason)), options.hint);
    }
    return { stdout, stderr: this.masker.mask(stderr), exitCode: exitCode ?? 0 };
  }

  /** Runs and returns trimmed stdout. */
  async output(args: readonly string[], options: GitRunOptions = {}): Promise<string> {
    return (await this.run(args, options)).stdout.trim();
  }
}
