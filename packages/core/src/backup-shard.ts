import { createHash } from 'node:crypto';
import { UsageError } from './errors.js';

/**
 * `--shard K/N`: a CI matrix of N jobs each backs up the repos whose stable hash falls in its
 * slot. The hash is of the repo's key (`<host>/<owner>/<name>`, lower-cased), never of its
 * position in a listing, so a repo stays in the same shard when others are created or deleted,
 * and every job computes the same split without talking to the others.
 */

export interface Shard {
  /** 1-based, as written on the command line. */
  index: number;
  total: number;
}

/** Largest N accepted; more jobs than this is a configuration mistake, not a plan. */
export const MAX_SHARDS = 1024;

export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const index = Number(m?.[1]);
  const total = Number(m?.[2]);
  if (!m || !Number.isInteger(index) || !Number.isInteger(total) || total < 1 || total > MAX_SHARDS) {
    throw new UsageError(
      `--shard must be K/N with N from 1 to ${MAX_SHARDS}, got "${text}"`,
      'e.g. --shard 2/4 for the second of four jobs (GitHub Actions: ${{ matrix.shard }}/4; GitLab: $CI_NODE_INDEX/$CI_NODE_TOTAL)',
    );
  }
  if (index < 1 || index > total) {
    throw new UsageError(
      `--shard ${text}: K must be from 1 to ${total}`,
      'shards are numbered from 1, like CI_NODE_INDEX',
    );
  }
  return { index, total };
}

/** The 1-based shard a key belongs to among `total`. */
export function shardOf(key: string, total: number): number {
  const digest = createHash('sha256').update(key.toLowerCase()).digest();
  // 48 bits are exact in a double and spread evenly for any total up to MAX_SHARDS.
  return (digest.readUIntBE(0, 6) % total) + 1;
}

export function inShard(key: string, shard: Shard | undefined): boolean {
  return shard === undefined || shardOf(key, shard.total) === shard.index;
}
