import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Secrets cannot be read back from GitHub (sealed) or from a hidden GitLab variable, so bootstrap
 * keeps a fingerprint of what it stored next to it (a plain variable on the same repo) and the
 * next run compares the token it holds against that: same token, no write; another token,
 * re-seal. The fingerprint is `v1:<salt>:<HMAC-SHA256(salt, token)>` with a random salt per
 * write, so the same token stored in many repos gives unrelated fingerprints, and the value is
 * useless for guessing a token (tokens carry far too much entropy to brute-force the HMAC).
 */

const PREFIX = 'v1';
const SALT_BYTES = 16;

function hmac(salt: string, secret: string): Buffer {
  return createHmac('sha256', Buffer.from(salt, 'hex')).update(secret, 'utf8').digest();
}

/** A fresh fingerprint of `secret`; `salt` (hex) is for tests, normally random. */
export function fingerprintSecret(secret: string, salt: string = randomBytes(SALT_BYTES).toString('hex')): string {
  if (!/^(?:[0-9a-f]{2})+$/.test(salt)) throw new Error('the fingerprint salt must be lower-case hex');
  return `${PREFIX}:${salt}:${hmac(salt, secret).toString('hex')}`;
}

/**
 * Whether `fingerprint` was made from `secret`. Anything unreadable (no value, an older or
 * hand-edited format) answers false, which only costs one re-seal.
 */
export function fingerprintMatches(fingerprint: string | undefined | null, secret: string): boolean {
  if (!fingerprint) return false;
  const m = /^v1:((?:[0-9a-f]{2}){8,64}):([0-9a-f]{64})$/.exec(fingerprint.trim());
  if (!m?.[1] || !m[2]) return false;
  const expected = hmac(m[1], secret);
  const actual = Buffer.from(m[2], 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
