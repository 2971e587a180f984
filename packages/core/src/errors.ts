/**
 * The typed errors refbridge raises. Every message says what went wrong *and* what to do next,
 * because these reach people through CI logs where there is no one to ask. `exitCode` follows the
 * CLI contract: 1 failure, 2 usage or config error, 3 divergence.
 */

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  diverged: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class RefbridgeError extends Error {
  readonly exitCode: ExitCode;
  /** What the user should do next; printed after the message. */
  readonly hint: string | undefined;

  constructor(message: string, options: { hint?: string; exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.hint = options.hint;
  }

  /** Message plus hint, the form shells print. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

/** Bad flags or missing inputs. */
export class UsageError extends RefbridgeError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.usage, ...(hint === undefined ? {} : { hint }) });
  }
}

/** One problem found in a settings source; all of them are reported together. */
export interface ConfigProblem {
  /** File path, or a label such as `environment` / `action inputs`. */
  source: string;
  line?: number;
  column?: number;
  /** Dotted path of the key, e.g. `pairs[2].github`. */
  key?: string;
  message: string;
  hint?: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = [
    p.source,
    p.line === undefined ? undefined : String(p.line),
    p.column === undefined ? undefined : String(p.column),
  ]
    .filter((x) => x !== undefined)
    .join(':');
  const key = p.key ? ` ${p.key}:` : '';
  const hint = p.hint ? ` (${p.hint})` : '';
  return `${where}:${key} ${p.message}${hint}`;
}

/** Invalid configuration; carries every problem found, not just the first. */
export class ConfigError extends RefbridgeError {
  readonly problems: readonly ConfigProblem[];

  constructor(
    problems: readonly ConfigProblem[],
    hint = 'fix the listed keys and run again; `refbridge init` writes a commented example',
  ) {
    const lines = problems.map((p) => `  - ${formatProblem(p)}`);
    super(
      `${problems.length === 1 ? 'A problem' : `${problems.length} problems`} in the configuration:\n${lines.join('\n')}`,
      {
        exitCode: ExitCode.usage,
        hint,
      },
    );
    this.problems = problems;
  }
}

/** A git command failed. `args` are already redacted; stderr is redacted too. */
export class GitCommandError extends RefbridgeError {
  readonly args: readonly string[];
  readonly gitExitCode: number | undefined;
  readonly stderr: string;

  constructor(args: readonly string[], gitExitCode: number | undefined, stderr: string, hint?: string) {
    // The end says what failed last; git's first line often names the culprit (a file, a URL).
    const lines = stderr.trim().split('\n');
    const firstLines = (lines.length <= 6 ? lines : [lines[0], '…', ...lines.slice(-5)]).join('\n    ');
    super(
      `git ${args.join(' ')} failed${gitExitCode === undefined ? '' : ` with exit code ${gitExitCode}`}${firstLines ? `:\n    ${firstLines}` : ''}`,
      {
        ...(hint === undefined ? {} : { hint }),
      },
    );
    this.args = args;
    this.gitExitCode = gitExitCode;
    this.stderr = stderr;
  }
}

/** A forge API call failed in a way retries did not fix. */
export class ForgeApiError extends RefbridgeError {
  readonly status: number | undefined;
  readonly platform: 'github' | 'gitlab';

  constructor(
    platform: 'github' | 'gitlab',
    message: string,
    status: number | undefined,
    hint?: string,
    cause?: unknown,
  ) {
    super(message, { ...(hint === undefined ? {} : { hint }), cause });
    this.platform = platform;
    this.status = status;
  }
}

/** Another refbridge process holds the lock for this pair or repo. */
export class LockedError extends RefbridgeError {}
