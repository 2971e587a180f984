import { describe, expect, it } from '@jest/globals';
import { UsageError } from '@refbridge/core/errors';
import { createLogger } from '@refbridge/core/logger';
import { SecretMasker } from '@refbridge/core/secret-masker';
import { watchLoop, type WatchLoopOptions } from '../src/watch-loop.js';

// `process.emit('SIGTERM')` calls the listeners the loop registered, as a delivered signal does,
// without sending a real signal to the test process.

function options(watch: boolean, intervalMs: number): { options: WatchLoopOptions; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ masker: new SecretMasker(), write: (_level, line) => lines.push(line) });
  return { options: { watch, intervalMs, logger, stopMessage: 'test: stopping after the work in hand' }, lines };
}

/** A round's own asynchronous work. */
const work = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const listeners = (): number[] => [process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')];

describe('watch loop', () => {
  it('without --watch runs one round, returns its exit code and leaves the signals alone', async () => {
    const before = listeners();
    const during: number[][] = [];
    const { options: o } = options(false, 0);
    const code = await watchLoop(o, async () => {
      await work();
      during.push(listeners());
      return 3;
    });
    expect(code).toBe(3);
    expect(during).toEqual([before]);
  });

  it('keeps going after failed rounds; a signal lets the round in hand finish, then exits 0', async () => {
    const before = listeners();
    const { options: o, lines } = options(true, 0);
    const seen: boolean[] = [];
    const code = await watchLoop(o, async (signal) => {
      seen.push(signal.aborted);
      await work();
      if (seen.length === 3) {
        process.emit('SIGTERM', 'SIGTERM');
        // The loop's handlers are gone after the first signal (a real second one would end the
        // process the default way); emitted here, it reaches no one.
        process.emit('SIGINT', 'SIGINT');
        seen.push(signal.aborted);
      }
      return 1;
    });
    expect(code).toBe(0);
    expect(seen).toEqual([false, false, false, true]);
    expect(lines.filter((l) => l.includes('test: stopping after the work in hand'))).toHaveLength(1);
    expect(listeners()).toEqual(before);
  });

  it('a signal during the wait between rounds ends it at once', async () => {
    const before = listeners();
    // An hour's interval: were the wait not cut short, the test would time out.
    const { options: o } = options(true, 3_600_000);
    let rounds = 0;
    const code = await watchLoop(o, async () => {
      rounds++;
      await work();
      // Delivered after the round has returned, when the loop is waiting.
      setTimeout(() => process.emit('SIGINT', 'SIGINT'), 0);
      return 0;
    });
    expect(code).toBe(0);
    expect(rounds).toBe(1);
    expect(listeners()).toEqual(before);
  });

  it('in --watch, a round that throws is logged and the next round runs; a usage error still ends the loop', async () => {
    const before = listeners();
    const { options: o, lines } = options(true, 0);
    let rounds = 0;
    const code = await watchLoop(o, async () => {
      rounds++;
      await work();
      if (rounds === 1) throw new Error('the disk went away for a moment');
      if (rounds === 2) process.emit('SIGTERM', 'SIGTERM');
      return 0;
    });
    expect(code).toBe(0);
    expect(rounds).toBe(2);
    expect(lines.some((l) => l.includes('round failed: the disk went away for a moment'))).toBe(true);
    expect(listeners()).toEqual(before);

    const bad = watchLoop(o, async () => {
      await work();
      throw new UsageError('--interval must be a whole number');
    });
    await expect(bad).rejects.toThrow('--interval must be a whole number');
    expect(listeners()).toEqual(before);
  });
});
