import { spawn, type ChildProcess } from 'node:child_process';

/**
 * The demo's voice, and the one way it starts processes. Everything a process prints is shown
 * indented under the command that produced it, line by line as it arrives, after a check that no
 * token is in it: the demo's promise is that refbridge never prints one, so a line that holds a
 * token is shown redacted and turns the whole run into a failure.
 */

export class DemoFailure extends Error {}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd: string;
  env: Record<string, string>;
  /** Exit codes that mean the step worked (the divergence step expects 3). */
  expect?: readonly number[];
  /** Lines not worth showing (e.g. the runner's own `::add-mask::` commands). */
  hide?: (line: string) => boolean;
  /** Turns a line into what the reader sees (e.g. workflow commands into the runner's log text). */
  render?: (line: string) => string;
  /** Lines in which a token is allowed (the runner's `::add-mask::` commands carry them by design). */
  tokenAllowed?: (line: string) => boolean;
  /** Show nothing; the caller prints what matters. */
  quiet?: boolean;
  /** Leave out stderr (refbridge's progress log) when stdout's report says the same. */
  hideStderr?: boolean;
  timeoutMs?: number;
}

export class Narrator {
  readonly leaks: string[] = [];
  private step = 0;
  private readonly running = new Set<ChildProcess>();

  constructor(
    private readonly secrets: readonly string[],
    private readonly write: (text: string) => void = (t) => process.stdout.write(t),
  ) {}

  title(text: string): void {
    this.write(`${text}\n`);
  }

  section(text: string): void {
    this.step++;
    this.write(`\n${this.step}. ${text}\n`);
  }

  say(...lines: string[]): void {
    for (const l of lines) this.write(`   ${l}`.trimEnd() + '\n');
  }

  /** Names what produced the output below when it is not a command the reader would type. */
  label(text: string): void {
    this.write(`   > ${text}\n`);
  }

  /** A command as the reader would type it. */
  command(text: string): void {
    this.write(`   $ ${text}\n`);
  }

  output(line: string): void {
    this.write(`     ${line}`.trimEnd() + '\n');
  }

  /** Redacts and records a token found in `line`; `where` says which process printed it. */
  private guard(line: string, where: string): string {
    let shown = line;
    for (const s of this.secrets) {
      if (shown.includes(s)) {
        this.leaks.push(`${where}: ${line.replaceAll(s, '[TOKEN]')}`);
        shown = shown.replaceAll(s, '[LEAKED TOKEN]');
      }
    }
    return shown;
  }

  /** Checks text that is not printed line by line (files, outputs) the same way. */
  checkText(text: string, where: string): void {
    for (const line of text.split('\n')) this.guard(line, where);
  }

  /** Stops every process still running (an interrupted demo leaves none behind). */
  killAll(): void {
    for (const child of this.running) child.kill('SIGTERM');
  }

  async run(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
    const where = this.secrets.reduce(
      (w, secret) => w.replaceAll(secret, '[TOKEN]'),
      [file.split('/').at(-1), ...args.slice(0, 2)].join(' '),
    );
    const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.running.add(child);
    child.once('close', () => this.running.delete(child));
    let stdout = '';
    let stderr = '';
    const partial = { stdout: '', stderr: '' };
    const show = (stream: 'stdout' | 'stderr', chunk: string, flush: boolean): void => {
      const text = partial[stream] + chunk;
      const lines = text.split('\n');
      partial[stream] = flush ? '' : (lines.pop() ?? '');
      for (const raw of lines) {
        if (flush && raw === '') continue;
        const allowed = options.tokenAllowed?.(raw) ?? false;
        const line = allowed ? raw : this.guard(raw, where);
        if (options.quiet || (stream === 'stderr' && options.hideStderr) || options.hide?.(raw)) continue;
        this.output(options.render ? options.render(line) : line);
      }
    };
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      show('stdout', c, false);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      show('stderr', c, false);
    });
    const timeoutMs = options.timeoutMs ?? 120_000;
    const code = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new DemoFailure(`${where} did not finish within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('close', (c, signal) => {
        clearTimeout(timer);
        resolve(c ?? (signal ? 128 : 1));
      });
    });
    show('stdout', '', true);
    show('stderr', '', true);
    const expected = options.expect ?? [0];
    if (!expected.includes(code)) {
      if (options.quiet || options.hideStderr)
        for (const l of (options.quiet ? stdout + stderr : stderr).split('\n'))
          if (l) this.output(this.guard(l, where));
      throw new DemoFailure(`${where} exited with ${code}, expected ${expected.join(' or ')}`);
    }
    return { code, stdout, stderr };
  }
}

/** The first 7 characters, as git shows a commit. */
export const short = (sha: string | undefined): string => (sha ? sha.slice(0, 7) : '-');
