import { UsageError } from './errors.js';
import { globToRegExp } from './glob.js';
import type { RepoInfo } from './forge.js';

/**
 * Which listed repos a backup run takes: `--include`/`--exclude` globs on the repo path
 * (`owner/name`, or the full GitLab path), `--skip-forks`, `--skip-archived`. Exclusion wins over
 * inclusion; no include pattern means "everything". Matching ignores case, as both platforms do.
 *
 * The patterns are refbridge's one glob dialect (see glob.ts): `acme/*` every repo of acme,
 * `platform/**` every project below the group, nested too.
 */

export interface RepoFilter {
  include: readonly string[];
  exclude: readonly string[];
  skipForks: boolean;
  skipArchived: boolean;
}

export const emptyFilter: RepoFilter = { include: [], exclude: [], skipForks: false, skipArchived: false };

export function compileRepoGlob(pattern: string): RegExp {
  const trimmed = pattern.trim();
  if (trimmed === '' || trimmed.startsWith('/') || /\s/.test(trimmed) || trimmed.includes('\\')) {
    throw new UsageError(
      `"${pattern}" is not a repo pattern`,
      'write it as owner/name with * wildcards, e.g. acme/* or group/**, without spaces or a leading slash',
    );
  }
  return globToRegExp(trimmed, { ignoreCase: true });
}

export interface CompiledFilter {
  /** Why the repo is left out, or undefined when it is taken. */
  reason(repo: Pick<RepoInfo, 'path' | 'fork' | 'archived'>): string | undefined;
}

export function compileFilter(filter: RepoFilter): CompiledFilter {
  const include = filter.include.map((p) => ({ p, re: compileRepoGlob(p) }));
  const exclude = filter.exclude.map((p) => ({ p, re: compileRepoGlob(p) }));
  return {
    reason(repo) {
      if (filter.skipForks && repo.fork) return 'fork (--skip-forks)';
      if (filter.skipArchived && repo.archived) return 'archived (--skip-archived)';
      const excluded = exclude.find((x) => x.re.test(repo.path));
      if (excluded) return `matches --exclude ${excluded.p}`;
      if (include.length > 0 && !include.some((x) => x.re.test(repo.path))) return 'matches no --include';
      return undefined;
    },
  };
}
