import { execa } from 'execa';
import { GitCommandError, RefbridgeError } from './errors.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import type { SecretMasker } from './secret-masker.js';
import type { LsRemoteEntry } from './git-parsers.js';
import { parseLsRemote } from './git-parsers.js';
import { listRefsOverHttp, SmartHttpError } from './smart-http.js';

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
  /**
   * The command talks to a remote and is safe to repeat (ls-remote, fetch, and pushes, whose
   * leases and fast-forward-only updates make a second attempt unable to lose anything): retried
   * with backoff when git reports a transient transport failure (5xx, 429, a dropped connection),
   * never after an authentication or not-found answer. See {@link isTransientGitFailure}.
   */
  retryTransient?: boolean;
}

/** How often and how patiently transient network failures of {@link GitRunOptions.retryTransient} commands are retried. */
export interface GitNetworkRetry {
  /** Retries after the first attempt (default 3). */
  retries: number;
  /** Wait before the first retry, doubled for each further one (default 1000 ms). */
  baseDelayMs: number;
  /** Cap on any single wait (default 30000 ms). */
  maxDelayMs: number;
}

export const defaultGitNetworkRetry: Readonly<GitNetworkRetry> = { retries: 3, baseDelayMs: 1000, maxDelayMs: 30_000 };

/** Answers that retrying cannot change: wrong token, no access, no such repo. */
const PERMANENT_FAILURE =
  /Authentication failed|could not read (?:Username|Password)|Repository not found|not found|does not appear to be a git repository|denied|declined|not allowed|Invalid username or password/i;

/** What git and curl print when the connection, not the request, failed. */
const TRANSIENT_FAILURE = [
  /Empty reply from server/i,
  /Connection reset/i,
  /Connection refused/i,
  /Connection timed out|Operation timed out/i,
  /Failed to connect to/i,
  /Recv failure|Send failure/i,
  /transfer closed with/i,
  /RPC failed/i,
  /unexpected disconnect while reading sideband packet/i,
  /the remote end hung up unexpectedly/i,
  /early EOF/i,
  /HTTP\/2 stream \d+ was not closed cleanly/i,
  /SSL_read|SSL_write|gnutls_handshake|TLS connection was non-properly terminated/i,
];

/** The line of git's stderr that says what went wrong with the transfer, for the retry message. */
const TRANSIENT_LINE = new RegExp(
  ['returned error: \\d{3}', 'RPC failed', ...TRANSIENT_FAILURE.map((re) => re.source)].join('|'),
  'i',
);

/**
 * Whether a failed network git command is worth repeating: an HTTP status of 408, 429 or 5xx, or
 * a connection that broke. Authentication, permission and not-found answers are final, and so is
 * a host name that does not resolve (a typo in a URL should fail at once, not after the backoff).
 */
export function isTransientGitFailure(stderr: string): boolean {
  const status = /returned error: (\d{3})|RPC failed; HTTP (\d{3})/.exec(stderr);
  if (status) {
    const code = Number(status[1] ?? status[2]);
    return code === 408 || code === 429 || code >= 500;
  }
  if (PERMANENT_FAILURE.test(stderr)) return false;
  return TRANSIENT_FAILURE.some((re) => re.test(stderr));
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

function basicAuthorization(c: GitCredential): string {
  return `basic ${Buffer.from(`${c.username}:${c.token}`).toString('base64')}`;
}

/** How git says "HTTP 401" when prompts are off, spelled out. */
const AUTH_FAILED_EXPLANATION =
  '\nthe server refused the credentials (HTTP 401): the token is missing, expired or revoked, or not meant for this host';

/** Environment that changes how git's HTTP transport reaches a server (proxies, tracing, config). */
const GIT_HTTP_ENV =
  /^(?:https?_proxy|all_proxy|HTTPS?_PROXY|ALL_PROXY|GIT_PROXY_\w+|GIT_CURL_\w+|GIT_TRACE_CURL\w*|GIT_CONFIG_COUNT|GIT_CONFIG_PARAMETERS|GIT_HTTP_\w+)$/;
/** ... and how it checks certificates, for https only (node has its own CA store). */
const GIT_TLS_ENV = /^GIT_SSL_\w+$/;

/** What the in-process listing calls itself; GitHub serves the smart protocol to `git/` agents. */
const USER_AGENT = 'git/2 (refbridge)';

export interface LsRemoteOptions extends Pick<GitRunOptions, 'cwd' | 'credentials' | 'env' | 'hint' | 'timeoutMs'> {
  /** Full ref names or globs (`*` = any run of characters, `/` included); every ref when empty. */
  patterns?: readonly string[];
  /** Also report what `HEAD` points to (`git ls-remote --symref`). */
  symref?: boolean;
}

/** Exact matching for ls-remote patterns (git itself matches their tails). */
export function refPatternRegExp(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/**
 * `git ls-remote` arguments for the patterns. Git matches patterns against the *tail* of ref
 * names and lists `<tag>^{}` only for glob matches, so exact names also ask for their peeled line,
 * and the result is filtered again with exact semantics. `--heads`/`--tags` let protocol v2
 * servers send only those namespaces (GitHub repositories can have many thousands of
 * `refs/pull/*`).
 */
function lsRemoteArgs(url: string, patterns: readonly string[], symref: boolean): string[] {
  const args = ['ls-remote'];
  if (symref) args.push('--symref');
  const heads = patterns.some((p) => p.startsWith('refs/heads/'));
  const tags = patterns.some((p) => p.startsWith('refs/tags/'));
  const onlyHeadsAndTags =
    patterns.length > 0 && patterns.every((p) => p.startsWith('refs/heads/') || p.startsWith('refs/tags/'));
  if (onlyHeadsAndTags) {
    if (heads) args.push('--heads');
    if (tags) args.push('--tags');
  }
  // `--` first: a URL from a config file must never be read as an option.
  args.push('--', url);
  for (const p of patterns) {
    args.push(p);
    if (!p.includes('*') && p.startsWith('refs/tags/')) args.push(`${p}^{}`);
  }
  return args;
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

/** Failures that were timeouts: another attempt would only wait as long again. */
const timedOut = new WeakSet<GitCommandError>();

/** The one way refbridge runs git: argument arrays, no shell, no prompts, masked errors. */
export class GitRunner {
  private readonly masker: SecretMasker;
  private readonly logger: Logger;
  private readonly gitPath: string;
  private readonly baseEnv: Readonly<Record<string, string>>;
  private readonly networkRetry: GitNetworkRetry;
  private readonly sleep: (ms: number) => Promise<void>;
  private versionChecked: Promise<void> | undefined;
  private httpConfigChecked: Promise<boolean> | undefined;

  constructor(options: {
    masker: SecretMasker;
    logger?: Logger;
    gitPath?: string;
    env?: Readonly<Record<string, string>>;
    /** Retries of transient network failures (commands run with `retryTransient`). */
    networkRetry?: Partial<GitNetworkRetry>;
    /** Replaceable for tests; defaults to a timer. */
    sleep?: (ms: number) => Promise<void>;
  }) {
    this.masker = options.masker;
    this.logger = options.logger ?? silentLogger;
    this.gitPath = options.gitPath ?? 'git';
    this.baseEnv = options.env ?? {};
    const given = Object.fromEntries(Object.entries(options.networkRetry ?? {}).filter(([, v]) => v !== undefined));
    this.networkRetry = { ...defaultGitNetworkRetry, ...given };
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** Fails with a clear message when git is missing or older than MIN_GIT_VERSION. */
  async ensureVersion(): Promise<void> {
    // Started alongside, so the first ref listing does not wait for it.
    void this.probeHttpConfig();
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
    return this.retrying(shown, options, () => this.runOnce(args, shown, options));
  }

  /**
   * `git ls-remote`: the refs of a remote repository matching the patterns (full ref names or
   * globs where `*` matches any run of characters, `/` included; every ref when empty), with
   * peeled ids of annotated tags and, with `symref`, the target of `HEAD`.
   *
   * For http(s) URLs this speaks git's smart HTTP protocol in-process (see smart-http.ts) unless
   * the machine's git configuration or environment could change how git would reach the server
   * (a proxy, certificates, URL rewriting, extra headers): then, and for every other transport,
   * it runs `git ls-remote`. Both answer the same, fail in the same words and retry alike.
   */
  async lsRemote(url: string, options: LsRemoteOptions = {}): Promise<LsRemoteEntry[]> {
    const patterns = options.patterns ?? [];
    const exact = patterns.map(refPatternRegExp);
    const keep = (entries: LsRemoteEntry[]): LsRemoteEntry[] =>
      exact.length === 0 ? entries : entries.filter((e) => exact.some((r) => r.test(e.ref)));
    const gitOptions: GitRunOptions = {
      ...options,
      hint: options.hint ?? 'check the repository URL and that the token can read the repository',
      retryTransient: true,
    };
    if (!(await this.inProcessHttp(url, options.env))) {
      const { stdout } = await this.run(lsRemoteArgs(url, patterns, options.symref === true), gitOptions);
      return keep(parseLsRemote(stdout));
    }
    for (const c of options.credentials ?? []) this.masker.add(c.token);
    const shown = ['ls-remote', '--', this.masker.mask(redactUrl(url))];
    const credential = (options.credentials ?? []).find((c) => originOf(c.url) === originOf(url));
    const prefixes = [...new Set(patterns.map((p) => p.split('*')[0] ?? p))];
    return this.retrying(shown, gitOptions, async () => {
      this.logger.debug(`git ${shown.join(' ')} (smart HTTP, in-process)`);
      try {
        const entries = await listRefsOverHttp(url, {
          prefixes: prefixes.some((p) => p === '' || p === 'refs/') ? [] : prefixes,
          userAgent: USER_AGENT,
          ...(credential === undefined ? {} : { authorization: basicAuthorization(credential) }),
          ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        });
        return keep(options.symref ? entries : entries.map(({ symref: _, ...e }) => e));
      } catch (error) {
        if (!(error instanceof SmartHttpError)) throw error;
        let reason = error.stderr;
        if (/Authentication failed/.test(reason)) reason = reason.trimEnd() + AUTH_FAILED_EXPLANATION;
        throw new GitCommandError(shown, 128, this.masker.mask(redactUrl(reason)), gitOptions.hint);
      }
    });
  }

  /**
   * Whether ls-remote of this URL may go in-process: an http(s) URL, and nothing in the
   * environment or in git's global/system configuration that git would apply to the request.
   */
  private async inProcessHttp(url: string, extraEnv: Readonly<Record<string, string>> = {}): Promise<boolean> {
    if (!/^https?:\/\//i.test(url)) return false;
    const env = { ...process.env, ...this.baseEnv, ...extraEnv };
    if (env['REFBRIDGE_GIT_HTTP'] === 'git') return false;
    const tls = /^https:/i.test(url);
    const applies = (k: string): boolean => GIT_HTTP_ENV.test(k) || (tls && GIT_TLS_ENV.test(k));
    if (Object.keys(env).some((k) => applies(k) && (env[k] ?? '') !== '')) return false;
    return this.httpConfigChecked ?? this.probeHttpConfig();
  }

  /** True when git's global and system config have no `http.*` or `url.*` key (exit 1: none). */
  private probeHttpConfig(): Promise<boolean> {
    this.httpConfigChecked ??= execa(
      this.gitPath,
      ['config', '--null', '--name-only', '--get-regexp', '^(http|url)\\.'],
      {
        env: { ...this.baseEnv, LC_ALL: 'C' },
        reject: false,
        stdin: 'ignore',
      },
    ).then(
      (r) => r.exitCode === 1 && r.stdout === '',
      () => false,
    );
    return this.httpConfigChecked;
  }

  /** Runs `attempt`, repeating it with backoff while it fails transiently and the options allow. */
  private async retrying<T>(shown: readonly string[], options: GitRunOptions, attempt: () => Promise<T>): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        const { retries, baseDelayMs, maxDelayMs } = this.networkRetry;
        if (
          !options.retryTransient ||
          n >= retries ||
          !(error instanceof GitCommandError) ||
          timedOut.has(error) ||
          !isTransientGitFailure(error.stderr)
        )
          throw error;
        const wait = Math.min(baseDelayMs * 2 ** n, maxDelayMs);
        const lines = error.stderr
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean);
        const why = lines.find((l) => TRANSIENT_LINE.test(l)) ?? lines.at(-1) ?? `exit code ${error.gitExitCode}`;
        const url = shown.find((a) => /^[a-z][a-z0-9+.-]*:\/\//i.test(a));
        this.logger.warn(
          `git ${shown[0] ?? ''}${url ? ` ${url}` : ''} failed (${why}); retry ${n + 1} of ${retries} in ${wait} ms`,
        );
        await this.sleep(wait);
      }
    }
  }

  private async runOnce(args: readonly string[], shown: readonly string[], options: GitRunOptions): Promise<GitResult> {
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
    // A push whose connection broke exits 1 (an "answer" for callers reading porcelain) without a
    // single ref line: for a retried command that is the transport failing, not an answer.
    const brokenTransfer =
      options.retryTransient === true &&
      exitCode !== 0 &&
      !/^[ +\-*!=]\t/m.test(stdout) &&
      isTransientGitFailure(stderr);
    const ok =
      !brokenTransfer && (exitCode === 0 || (exitCode !== undefined && (options.okExitCodes ?? []).includes(exitCode)));
    if (!ok) {
      let reason = result.timedOut
        ? `timed out after ${options.timeoutMs} ms\n${stderr}`
        : stderr || (result.originalMessage ?? '');
      // How git says "HTTP 401" when prompts are off: spell out what it means.
      if (/could not read Username|Authentication failed/i.test(reason)) reason += AUTH_FAILED_EXPLANATION;
      const error = new GitCommandError(shown, exitCode, this.masker.mask(redactUrl(reason)), options.hint);
      if (result.timedOut) timedOut.add(error);
      throw error;
    }
    return { stdout, stderr: this.masker.mask(stderr), exitCode: exitCode ?? 0 };
  }

  /** Runs and returns trimmed stdout. */
  async output(args: readonly string[], options: GitRunOptions = {}): Promise<string> {
    return (await this.run(args, options)).stdout.trim();
  }
}
