import type { RunningForge } from '../forge/src/server.js';
import type { RequestLogEntry } from '../forge/src/state.js';

// The forge's request log as the end-to-end tests read it: the witness for "this run wrote
// nothing" (see test/forge/README.md for the admin routes).

/** GET of a forge admin route (`/requests`, `/pushes`, `/secrets/...`), parsed. */
export async function adminGet<T>(forge: RunningForge, path: string): Promise<T> {
  return (await (await fetch(`${forge.urls.github.web}/_forge${path}`)).json()) as T;
}

/** The newest request's number: pass it to `requestsSince` to see what a run did. */
export async function logMark(forge: RunningForge): Promise<number> {
  return Math.max(0, ...(await adminGet<RequestLogEntry[]>(forge, '/requests')).map((e) => e.seq));
}

export function requestsSince(forge: RunningForge, seq: number): Promise<RequestLogEntry[]> {
  return adminGet<RequestLogEntry[]>(forge, `/requests?since=${seq}`);
}

/** API calls that write, and git pushes: what "changes nothing" must not contain. */
export function writesIn(log: readonly RequestLogEntry[]): string[] {
  return log
    .filter((e) => (e.kind === 'api' && e.method !== 'GET' && e.method !== 'HEAD') || e.route.includes('receive-pack'))
    .map((e) => `${e.method} ${e.path}`);
}
