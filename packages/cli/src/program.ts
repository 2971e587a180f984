import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ExitCode, RefbridgeError } from '@refbridge/core';

/** Where the CLI reads and writes; tests pass their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(io: CliIo): Command {
  const program = new Command('refbridge')
    .description('Keep GitHub and GitLab repositories in step, ref by ref, and mirror whole accounts.')
    .version(version(), '-V, --version')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  return program;
}

/** Runs the CLI and returns the exit code instead of exiting, so it can be tested in-process. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.ok;
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
