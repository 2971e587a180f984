/**
 * GitLab protected branch and tag names are exact names or patterns where `*` stands for any
 * run of characters, slashes included (`release/*` covers `release/1.0/hotfix`), anchored at
 * both ends and case-sensitive, as GitLab's `RefMatcher` does with `\A…\z` and `.*?`.
 *
 * Matched with a two-pointer scan instead of a regular expression so that a pattern with many
 * stars cannot make matching slow (GitLab itself had to move these to an untrusted-regexp engine).
 */
export function matchesRefPattern(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    if (p < pattern.length && pattern[p] === '*') {
      starP = p;
      starN = n;
      p += 1;
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p += 1;
      n += 1;
    } else if (starP >= 0) {
      // Let the last star swallow one more character and retry from there.
      p = starP + 1;
      starN += 1;
      n = starN;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p += 1;
  return p === pattern.length;
}

/** `refs/heads/x` -> branch `x`, `refs/tags/v1` -> tag `v1`; a bare name is a branch. */
export function parseRef(ref: string): { kind: 'branch' | 'tag' | 'other'; name: string } {
  if (ref.startsWith('refs/heads/')) return { kind: 'branch', name: ref.slice('refs/heads/'.length) };
  if (ref.startsWith('refs/tags/')) return { kind: 'tag', name: ref.slice('refs/tags/'.length) };
  if (ref.startsWith('refs/')) return { kind: 'other', name: ref };
  return { kind: 'branch', name: ref };
}
