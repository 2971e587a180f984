/**
 * The one glob dialect of refbridge's own settings (`refs.include`/`exclude` in the config,
 * `backup --include/--exclude`), so a pattern means the same everywhere:
 *
 *   *    any characters except "/"      release/*   acme/*
 *   **   any characters, "/" included   platform/**
 *   **\/ zero or more whole segments    **\/docs
 *   ?    one character except "/"
 *
 * (Platform rules keep their platforms' own dialects in the adapters: GitHub rulesets are
 * fnmatch-style, GitLab's protected-branch `*` crosses slashes.)
 */
export function globToRegExp(pattern: string, options: { ignoreCase?: boolean } = {}): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length;) {
    if (pattern.startsWith('**/', i)) {
      source += '(?:.*/)?';
      i += 3;
    } else if (pattern.startsWith('**', i)) {
      source += '.*';
      i += 2;
    } else if (pattern[i] === '*') {
      source += '[^/]*';
      i += 1;
    } else if (pattern[i] === '?') {
      source += '[^/]';
      i += 1;
    } else {
      source += (pattern[i] ?? '').replace(/[\\^$.|+()[\]{}]/g, '\\$&');
      i += 1;
    }
  }
  return new RegExp(`^${source}$`, options.ignoreCase ? 'i' : '');
}
