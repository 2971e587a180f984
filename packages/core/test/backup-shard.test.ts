import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { UsageError } from '../src/errors.js';
import { compileFilter, compileRepoGlob } from '../src/backup-filter.js';
import { inShard, parseShard, shardOf } from '../src/backup-shard.js';

const keys = Array.from({ length: 3000 }, (_, i) => `github.com/owner-${i % 37}/repo-${i}`);

describe('parseShard', () => {
  it('reads K/N', () => {
    expect(parseShard('2/3')).toEqual({ index: 2, total: 3 });
    expect(parseShard(' 1 / 1 ')).toEqual({ index: 1, total: 1 });
  });

  it.each(['0/3', '4/3', '1/0', '3', 'a/b', '1/3/5', '-1/3', '1.5/3', '1/5000'])(
    'refuses %j as a usage error',
    (text) => {
      expect(() => parseShard(text)).toThrow(UsageError);
    },
  );
});

describe('shardOf', () => {
  it('puts every key in exactly one of N shards, the same one on every call', () => {
    for (const total of [1, 2, 3, 7]) {
      for (const key of keys.slice(0, 300)) {
        const owners = Array.from({ length: total }, (_, i) => i + 1).filter((index) => inShard(key, { index, total }));
        expect(owners).toHaveLength(1);
        expect(shardOf(key, total)).toBe(owners[0]);
      }
    }
  });

  it('is a hash of the key alone (SHA-256, first 48 bits), so every CI job computes the same split', () => {
    const key = 'github.com/acme/widgets';
    const expected = (createHash('sha256').update(key).digest().readUIntBE(0, 6) % 5) + 1;
    expect(shardOf(key, 5)).toBe(expected);
    expect(shardOf('GitHub.com/Acme/Widgets', 5)).toBe(expected);
  });

  it('spreads keys evenly enough that no job gets a pile', () => {
    const counts = [0, 0, 0];
    for (const key of keys) counts[shardOf(key, 3) - 1]! += 1;
    for (const c of counts) expect(c).toBeGreaterThan(keys.length / 3 - 150);
  });

  it('takes everything without a shard', () => {
    expect(inShard('any/thing', undefined)).toBe(true);
  });
});

describe('repo filters', () => {
  it('matches * within one path part and ** across parts, ignoring case', () => {
    expect(compileRepoGlob('acme/*').test('acme/tools')).toBe(true);
    expect(compileRepoGlob('acme/*').test('Acme/Tools')).toBe(true);
    expect(compileRepoGlob('acme/*').test('acme/sub/tools')).toBe(false);
    expect(compileRepoGlob('acme/**').test('acme/sub/tools')).toBe(true);
    expect(compileRepoGlob('*/user.github.io').test('alice/user.github.io')).toBe(true);
    expect(compileRepoGlob('*/user.github.io').test('alice/userXgithubXio')).toBe(false);
    expect(compileRepoGlob('lib-?').test('lib-1')).toBe(true);
  });

  it('refuses patterns that cannot match a repo path', () => {
    for (const p of ['', ' ', '/acme/*', 'acme tools', 'a\\b']) expect(() => compileRepoGlob(p)).toThrow(UsageError);
  });

  it('says why a repo is left out; exclusion wins over inclusion', () => {
    const f = compileFilter({ include: ['acme/*'], exclude: ['acme/secret-*'], skipForks: true, skipArchived: true });
    const repo = (path: string, extra: { fork?: boolean; archived?: boolean } = {}) => ({
      path,
      fork: false,
      archived: false,
      ...extra,
    });
    expect(f.reason(repo('acme/tools'))).toBeUndefined();
    expect(f.reason(repo('acme/secret-sauce'))).toBe('matches --exclude acme/secret-*');
    expect(f.reason(repo('beta/tools'))).toBe('matches no --include');
    expect(f.reason(repo('acme/fork', { fork: true }))).toBe('fork (--skip-forks)');
    expect(f.reason(repo('acme/old', { archived: true }))).toBe('archived (--skip-archived)');
    const all = compileFilter({ include: [], exclude: [], skipForks: false, skipArchived: false });
    expect(all.reason(repo('x/y', { fork: true, archived: true }))).toBeUndefined();
  });
});
