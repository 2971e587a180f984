import type * as github from '@actions/github';

type Context = typeof github.context;

const ZERO = '0'.repeat(40);

export type MirrorEvent =
  { kind: 'ref'; ref: string; before: string | undefined; after: string } | { kind: 'ignored'; reason: string };

/**
 * Turns the triggering event into the one ref to mirror. `push` carries before/after (after all
 * zeros when the ref was deleted); `delete` carries only the short name and its type. Anything
 * else (pull_request, schedule, ...) has no ref to mirror and is ignored rather than guessed at:
 * GITHUB_REF of a pull_request is refs/pull/N/merge, a hidden ref.
 */
export function readEvent(context: Pick<Context, 'eventName' | 'payload'>): MirrorEvent {
  const p = context.payload as Record<string, unknown>;
  if (context.eventName === 'push') {
    const ref = typeof p['ref'] === 'string' ? p['ref'] : '';
    const after = typeof p['after'] === 'string' ? p['after'] : '';
    const before = typeof p['before'] === 'string' && p['before'] !== ZERO ? p['before'] : undefined;
    if (!ref || !after) return { kind: 'ignored', reason: 'push event without ref/after' };
    return { kind: 'ref', ref, before, after: p['deleted'] === true ? ZERO : after };
  }
  if (context.eventName === 'delete') {
    const name = typeof p['ref'] === 'string' ? p['ref'] : '';
    const type = p['ref_type'];
    if (!name || (type !== 'branch' && type !== 'tag'))
      return { kind: 'ignored', reason: 'delete event without a branch or tag' };
    return { kind: 'ref', ref: `refs/${type === 'tag' ? 'tags' : 'heads'}/${name}`, before: undefined, after: ZERO };
  }
  return {
    kind: 'ignored',
    reason: `the ${context.eventName || 'unknown'} event does not name a branch or tag to mirror; use push and delete triggers`,
  };
}
