import { describe, expect, it } from '@jest/globals';
import { UsageError } from '@refbridge/core';
import type { CliIo } from '../src/program.js';
import { createShell, exitCodeFor, oneOf, positiveInt, printSummary, wholeNumber } from '../src/shell.js';

function capture(env: CliIo['env'] = {}): { io: CliIo; out: () => string } {
  let stdout = '';
  return {
    io: {
      stdout: (t) => {
        stdout += t;
      },
      stderr: () => undefined,
      env,
      cwd: '/',
    },
    out: () => stdout,
  };
}

describe('flag parsing shared by the commands', () => {
  it('names the flag, the range and the value given', () => {
    expect(positiveInt('--concurrency', '8', 64)).toBe(8);
    expect(() => positiveInt('--concurrency', '0', 64)).toThrow(
      new UsageError('--concurrency must be a whole number from 1 to 64, got "0"'),
    );
    expect(() => positiveInt('--interval', '1.5', 604800)).toThrow(
      '--interval must be a whole number from 1 to 604800, got "1.5"',
    );
    expect(wholeNumber('--window', '0', 0, 10080)).toBe(0);
    expect(() => wholeNumber('--metrics-port', '65536', 0, 65535)).toThrow(
      '--metrics-port must be a whole number from 0 to 65535, got "65536"',
    );
  });

  it('lists the words a flag takes, in the order given', () => {
    expect(oneOf('--lock', 'skip', ['wait', 'skip'])).toBe('skip');
    expect(() => oneOf('--lock', 'never', ['wait', 'skip'])).toThrow('--lock must be wait or skip, got "never"');
    expect(() => oneOf('--gitlab-visibility', 'open', ['private', 'internal', 'public', 'source'])).toThrow(
      '--gitlab-visibility must be private, internal, public or source, got "open"',
    );
  });
});

describe('run summaries', () => {
  it('exit 1 if anything failed, else 3 if anything diverged, else 0', () => {
    expect(exitCodeFor([{ status: 'diverged' }, { status: 'failed' }])).toBe(1);
    expect(exitCodeFor([{ status: 'diverged' }, { status: 'locked' }])).toBe(3);
    expect(exitCodeFor([{ status: 'synced' }, { status: 'locked' }])).toBe(0);
  });

  const summary = {
    json: () => ({ pairs: ['a'], note: 'ghp_secretSECRETsecret0001' }),
    details: 'a  refs/heads/main  done: pushed with ghp_secretSECRETsecret0001\n',
    headers: ['pair', 'status'],
    rows: [['a', 'synced']],
    closing: '1 pair(s) in 0.1 s',
  };

  it('prints details, an empty line, the table and the closing line, masked', () => {
    const { io, out } = capture({ GITHUB_TOKEN: 'ghp_secretSECRETsecret0001' });
    printSummary(createShell(io), summary);
    expect(out()).toBe(
      'a  refs/heads/main  done: pushed with ***\n\npair  status\n----  ------\na     synced\n1 pair(s) in 0.1 s\n',
    );
  });

  it('prints one JSON document alone with --json, masked', () => {
    const { io, out } = capture({ GITHUB_TOKEN: 'ghp_secretSECRETsecret0001' });
    printSummary(createShell(io, { json: true }), summary);
    expect(JSON.parse(out())).toEqual({ pairs: ['a'], note: '***' });
  });
});
