import type { ProtectionRule } from '@refbridge/core';
import { isHttpError, type GithubOctokit } from './github-client.js';
import { githubMessage } from './github-errors.js';
import { refMatches, splitRef } from './ref-patterns.js';
import type { RepoPath } from './repo-info.js';

/** Rule types that refuse what a mirror does: rewrite (`non_fast_forward`) and delete refs. */
const BLOCKING_RULES = new Set(['non_fast_forward', 'deletion']);

interface RulesetDetail {
  id: number;
  name: string;
  target?: string;
  enforcement: string;
  conditions?: unknown;
  rules?: { type: string }[];
}

export interface ProtectionDeps {
  octokit: GithubOctokit;
  repo: RepoPath;
  /** Maps a failure to the adapter's ForgeApiError (with the action named). */
  fail: (error: unknown, action: string) => Error;
}

function is404(error: unknown): boolean {
  return isHttpError(error) && error.status === 404;
}

function refNameCondition(conditions: unknown): { include: string[]; exclude: string[] } {
  const refName = (conditions as { ref_name?: { include?: unknown; exclude?: unknown } } | undefined)?.ref_name;
  const strings = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  return { include: strings(refName?.include), exclude: strings(refName?.exclude) };
}

function ruleFromRuleset(
  ruleset: RulesetDetail | undefined,
  id: number,
  types: Set<string>,
  ref: string,
): ProtectionRule {
  const include = ruleset ? refNameCondition(ruleset.conditions).include : [];
  return {
    source: ruleset ? `ruleset "${ruleset.name}"` : `ruleset #${id}`,
    pattern: include.length > 0 ? include.join(', ') : ref,
    allowForcePush: !types.has('non_fast_forward'),
    allowDeletion: !types.has('deletion'),
  };
}

async function getRuleset(deps: ProtectionDeps, id: number): Promise<RulesetDetail | undefined> {
  try {
    const res = await deps.octokit.rest.repos.getRepoRuleset({
      owner: deps.repo.owner,
      repo: deps.repo.name,
      ruleset_id: id,
      includes_parents: true,
    });
    return res.data;
  } catch (error) {
    // Only the name is missing then; the rule itself is known from the rules endpoint.
    if (is404(error)) return undefined;
    throw deps.fail(error, `reading ruleset #${id}`);
  }
}

/** Classic branch protection: one rule per branch (GitHub resolves wildcard rules to the branch). */
async function branchProtection(deps: ProtectionDeps, branch: string): Promise<ProtectionRule | undefined> {
  try {
    const res = await deps.octokit.rest.repos.getBranchProtection({
      owner: deps.repo.owner,
      repo: deps.repo.name,
      branch,
    });
    return {
      source: 'branch protection',
      pattern: branch,
      allowForcePush: res.data.allow_force_pushes?.enabled ?? false,
      allowDeletion: res.data.allow_deletions?.enabled ?? false,
    };
  } catch (error) {
    // 404: "Branch not protected" (or no such branch yet) - nothing to refuse a push.
    if (is404(error)) return undefined;
    // Private repos on free plans: protection does not exist there at all.
    if (
      isHttpError(error) &&
      error.status === 403 &&
      /upgrade to github pro|make this repository public/i.test(githubMessage(error))
    ) {
      return undefined;
    }
    throw deps.fail(error, `reading the branch protection of ${branch} (needs admin access to the repo)`);
  }
}

/** Active ruleset rules for a branch, one ProtectionRule per ruleset that blocks force pushes or deletion. */
async function branchRulesets(deps: ProtectionDeps, branch: string, ref: string): Promise<ProtectionRule[]> {
  let rules: { type: string; ruleset_id?: number }[];
  try {
    const res = await deps.octokit.rest.repos.getBranchRules({
      owner: deps.repo.owner,
      repo: deps.repo.name,
      branch,
      per_page: 100,
    });
    rules = res.data;
  } catch (error) {
    // GitHub Enterprise Server before rulesets (3.10 and older) has no such endpoint.
    if (is404(error)) return [];
    throw deps.fail(error, `reading the rulesets that apply to ${branch}`);
  }
  const byRuleset = new Map<number, Set<string>>();
  for (const rule of rules) {
    if (!BLOCKING_RULES.has(rule.type)) continue;
    const id = rule.ruleset_id ?? 0;
    const types = byRuleset.get(id) ?? new Set<string>();
    types.add(rule.type);
    byRuleset.set(id, types);
  }
  const out: ProtectionRule[] = [];
  for (const [id, types] of byRuleset) out.push(ruleFromRuleset(await getRuleset(deps, id), id, types, ref));
  return out;
}

/** Tags have only rulesets (target `tag`); GitHub has no per-tag rules endpoint, so match their conditions here. */
async function tagRulesets(deps: ProtectionDeps, ref: string): Promise<ProtectionRule[]> {
  let summaries: { id: number; target?: string; enforcement: string }[];
  try {
    summaries = await deps.octokit.paginate(deps.octokit.rest.repos.getRepoRulesets, {
      owner: deps.repo.owner,
      repo: deps.repo.name,
      includes_parents: true,
      per_page: 100,
    });
  } catch (error) {
    if (is404(error)) return [];
    throw deps.fail(error, 'listing rulesets');
  }
  const out: ProtectionRule[] = [];
  for (const summary of summaries) {
    if (summary.target !== 'tag' || summary.enforcement !== 'active') continue;
    const ruleset = await getRuleset(deps, summary.id);
    if (!ruleset) continue;
    const { include, exclude } = refNameCondition(ruleset.conditions);
    // `~DEFAULT_BRANCH` never names a tag, so no default branch is needed here.
    const applies =
      include.some((p) => refMatches(p, ref, undefined)) && !exclude.some((p) => refMatches(p, ref, undefined));
    if (!applies) continue;
    const types = new Set((ruleset.rules ?? []).map((r) => r.type).filter((t) => BLOCKING_RULES.has(t)));
    if (types.size > 0) out.push(ruleFromRuleset(ruleset, ruleset.id, types, ref));
  }
  return out;
}

/**
 * Every rule that can refuse a mirror's update of `ref`: classic branch protection and each
 * ruleset, named so a report can say which one blocked (peers check only the default branch).
 */
export async function protectionRulesFor(deps: ProtectionDeps, ref: string): Promise<ProtectionRule[]> {
  const r = splitRef(ref);
  if (r.kind === 'branch') {
    const classic = await branchProtection(deps, r.name);
    const rulesets = await branchRulesets(deps, r.name, r.full);
    return classic ? [classic, ...rulesets] : rulesets;
  }
  if (r.kind === 'tag') return tagRulesets(deps, r.full);
  return [];
}
