import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
// Only the errors module of core: the barrel would load every engine (yaml, ajv, execa) before
// argv is read. Each command loads its implementation when it runs (see commands/*-command.ts).
import { ExitCode, RefbridgeError } from '@refbridge/core/errors';
import { registerBackup } from './commands/backup-command.js';
import { registerBootstrap } from './commands/bootstrap-command.js';
import { registerInit } from './commands/init-command.js';
import { registerMirror } from './commands/mirror-command.js';
import { registerSync } from './commands/sync-command.js';

/** Where the CLI reads and writes; tests pass their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Whether stderr is a terminal (live progress display); tests leave it unset. */
  isTTY?: boolean;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(io: CliIo, setExit: (code: number) => void = () => undefined): Command {
  const program = new Command('refbridge')
    .description('Keep GitHub and GitLab repositories in step, ref by ref, and mirror whole accounts.')
    .version(version(), '-V, --version')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  registerInit(program, io);
  registerSync(program, io, setExit);
  registerMirror(program, io, setExit);
  registerBootstrap(program, io, setExit);
  registerBackup(program, io, setExit);
  return program;
}

/** Runs the CLI and returns the exit code instead of exiting, so it can be tested in-process. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (error instanceof RefbridgeError) {
      io.stderr(`refbridge: ${error.describe()}\n`);
      return error.exitCode;
    }
    io.stderr(
      `refbridge: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return ExitCode.failure;
  }
}
