import type { SecretMasker } from './secret-masker.js';

/** What the core needs from a shell's logging; shells decide where lines go. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const order: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/** A logger that masks every line and writes to the given sinks (stderr by default). */
export function createLogger(options: {
  masker: SecretMasker;
  level?: LogLevel;
  write?: (level: Exclude<LogLevel, 'silent'>, line: string) => void;
}): Logger {
  const min = order[options.level ?? 'info'];
  const write = options.write ?? ((_level, line) => process.stderr.write(`${line}\n`));
  const emit = (level: Exclude<LogLevel, 'silent'>, message: string): void => {
    if (order[level] < min) return;
    write(level, options.masker.mask(message));
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
}

/** Discards everything; for library callers that do not want output. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
