// Core's modules one by one, as in shell.ts: this file is loaded on the CLI's start-up path.
import { ExitCode, RefbridgeError } from '@refbridge/core/errors';
import type { Logger } from '@refbridge/core/logger';

export interface WatchLoopOptions {
  /** `--watch`: rounds until a signal; else exactly one round. */
  watch: boolean;
  /** The wait between the end of one round and the start of the next. */
  intervalMs: number;
  logger: Logger;
  /** Logged once, at the first SIGTERM or SIGINT. */
  stopMessage: string;
}

/**
 * The loop of `sync --watch` and `backup --watch`: a round, then a wait of the interval, again.
 * SIGTERM or SIGINT aborts `signal`, which the round reads to start nothing new while it finishes
 * what it has in hand; the loop then ends with exit 0, because a container platform or systemd
 * stopping the process is not a failure. A second signal ends the process at once. A failed round does not end the loop: its report is its
 * log, and the next round may succeed; so does a round that throws, unless with a usage or
 * configuration error. Without `watch` the signals keep their default (the process
 * ends at once) and the exit code is the one round's.
 */
export async function watchLoop(
  options: WatchLoopOptions,
  round: (signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const controller = new AbortController();
  let wake: (() => void) | undefined;
  const onSignal = (): void => {
    if (controller.signal.aborted) return;
    // The first signal lets the round finish; a second one (Ctrl-C again, a supervisor losing
    // patience) gets node's default and ends the process at once.
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    controller.abort();
    options.logger.info(options.stopMessage);
    wake?.();
  };
  if (options.watch) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  try {
    for (;;) {
      if (!options.watch) return await round(controller.signal);
      try {
        await round(controller.signal);
      } catch (error) {
        // A round that throws (rather than reporting its failures) is still one round: a daemon
        // that stops at the first unexpected error is a mirror that silently stopped. Usage and
        // configuration errors are different: nothing will change them but a person.
        if (error instanceof RefbridgeError && error.exitCode === ExitCode.usage) throw error;
        const message =
          error instanceof RefbridgeError ? error.describe() : error instanceof Error ? error.message : String(error);
        options.logger.error(`round failed: ${message}; the next one starts as usual`);
      }
      if (controller.signal.aborted) return ExitCode.ok;
      await new Promise<void>((done) => {
        const t = setTimeout(done, options.intervalMs);
        wake = () => {
          clearTimeout(t);
          done();
        };
      });
      wake = undefined;
      if (controller.signal.aborted) return ExitCode.ok;
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
