/**
 * GitHub ruleset ref conditions: fnmatch-style patterns on full ref names (`refs/heads/release/*`),
 * plus `~ALL` and `~DEFAULT_BRANCH`. `*` stays within one path segment, `**` crosses them.
 */
export function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '*') {
      if (pattern.charAt(i + 1) === '*') {
        out += '.*';
        i++;
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end === -1) {
        out += '\\[';
      } else {
        const body = pattern.slice(i + 1, end).replace(/\\/g, '\\\\');
        out += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else {
      out += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
}

export function refMatches(pattern: string, ref: string, defaultBranch: string | undefined): boolean {
  if (pattern === '~ALL') return true;
  if (pattern === '~DEFAULT_BRANCH') return defaultBranch !== undefined && ref === `refs/heads/${defaultBranch}`;
  // GitHub stores conditions as full ref patterns (`refs/heads/main`), so they match full refs as is.
  return globToRegExp(pattern).test(ref);
}

/** `refs/heads/x` / `refs/tags/x` / a bare branch name -> its kind and short name. */
export function splitRef(ref: string): { kind: 'branch' | 'tag' | 'other'; name: string; full: string } {
  if (ref.startsWith('refs/heads/')) return { kind: 'branch', name: ref.slice('refs/heads/'.length), full: ref };
  if (ref.startsWith('refs/tags/')) return { kind: 'tag', name: ref.slice('refs/tags/'.length), full: ref };
  if (ref.startsWith('refs/')) return { kind: 'other', name: ref, full: ref };
  return { kind: 'branch', name: ref, full: `refs/heads/${ref}` };
}
