import { mkdir } from 'node:fs/promises';
import { RefbridgeError } from './errors.js';
import type { Forge, RepoInfo } from './forge.js';
import { parsePushPorcelain } from './git-parsers.js';
import type { GitCredential, GitRunner } from './git-runner.js';
import { GITLAB_CI_FILE, ensureMirrorInclude, yamlScalar } from './gitlab-ci-include.js';
import type { Logger } from './logger.js';
import { listRemoteRefs } from './remote-refs.js';
import type { Side } from './sync-planner.js';

/**
 * The CI files of a pair, committed once and the same commit on both sides.
 *
 * Committing through each platform's API separately would give GitHub commit A (the workflow)
 * and GitLab commit B (the include): the pair would diverge at once, and the daemon would halt
 * the branch. So bootstrap makes ONE commit holding both files through one side's API and puts
 * that very commit on the other side with git (fetch into a scratch repo, then a leased push
 * that can only fast-forward or create the branch). Each side receives exactly one commit, the
 * same SHA. The committing side is the one whose branch contains the other's: GitHub when both
 * are equal or GitHub is ahead, GitLab when GitLab is ahead or GitHub has no branch yet. Two
 * empty repos get their first commit through GitLab's commits API, which writes several files
 * in one commit into an empty project (GitHub's contents API writes one file per commit there).
 * Sides that differ so that neither contains the other get nothing: that is a divergence for
 * `refbridge sync --resolve` to settle first, and forcing either side would lose commits.
 */

export const WORKFLOW_FILE = '.github/workflows/refbridge-mirror.yml';
export const CI_COMMIT_MESSAGE =
  'Mirror this repository between GitHub and GitLab\n\nAdded by `refbridge bootstrap`: the workflow mirrors GitHub pushes to GitLab, the GitLab CI/CD component mirrors GitLab pushes to GitHub.\n';

/**
 * The workflow template with the configured Action in its `uses:` line. Without a setting the
 * template is returned as it is, byte for byte what earlier versions committed. The workflow is
 * refbridge's own file, compared whole: a different reference makes the next run replace it.
 */
export function renderGithubWorkflow(template: string, action: string | undefined): string {
  if (action === undefined) return template;
  const lines = [...template.matchAll(/^([ \t]*- uses: )[A-Za-z0-9_.-]+\/refbridge(?:\/[^@\s]*)?@\S+[ \t]*$/gm)];
  const line = lines[0];
  if (lines.length !== 1 || line === undefined) {
    throw new RefbridgeError('the GitHub workflow template has no single `uses: refbridge/refbridge@<ref>` line', {
      hint: 'reinstall @refbridge/cli; its ci-templates/github-mirror.yml is damaged',
    });
  }
  return (
    template.slice(0, line.index) +
    `${line[1] ?? ''}${yamlScalar(action)}` +
    template.slice(line.index + line[0].length)
  );
}

export interface CiRepoSide {
  forge: Forge;
  path: string;
  /** undefined: the repo does not exist yet (a dry run that would create it). */
  info: RepoInfo | undefined;
  url: string;
  credentials: readonly GitCredential[];
  /** Push options when pushing to this side (`ci.skip` per the pair's policy). */
  pushOptions?: readonly string[];
}

/** How the branch on the two sides relates before bootstrap commits. */
export type BranchRelation =
  'both-empty' | 'github-only' | 'gitlab-only' | 'equal' | 'github-ahead' | 'gitlab-ahead' | 'diverged';

export type FileChange = 'create' | 'update' | 'unchanged';

export interface PlannedFile {
  path: string;
  content: string;
  change: FileChange;
  detail: string;
}

export interface CiFilesPlan {
  branch: string;
  relation: BranchRelation;
  tips: Record<Side, string | undefined>;
  /** The side whose API commits; undefined when the sides diverged. */
  commitSide: Side | undefined;
  files: PlannedFile[];
}

export interface CiFilesResult {
  /** The tip both sides have now. */
  sha: string;
  committed: boolean;
  /** What happened on the side that did not commit. */
  propagated: 'in-step' | 'created' | 'fast-forward' | 'already-there';
}

export const otherSide = (side: Side): Side => (side === 'github' ? 'gitlab' : 'github');

/** Which side commits, given the relation; undefined when neither may. */
export function commitSideFor(relation: BranchRelation): Side | undefined {
  switch (relation) {
    case 'both-empty':
    case 'gitlab-only':
    case 'gitlab-ahead':
      return 'gitlab';
    case 'github-only':
    case 'equal':
    case 'github-ahead':
      return 'github';
    case 'diverged':
      return undefined;
  }
}

/**
 * The relation from both tips; `ancestry` is asked only when both exist and differ:
 * `ancestry(a, b)` answers whether a is an ancestor of b.
 */
export async function branchRelation(
  tips: Record<Side, string | undefined>,
  ancestry: (ancestor: string, descendant: string) => Promise<boolean>,
): Promise<BranchRelation> {
  const { github, gitlab } = tips;
  if (github === undefined && gitlab === undefined) return 'both-empty';
  if (gitlab === undefined) return 'github-only';
  if (github === undefined) return 'gitlab-only';
  if (github === gitlab) return 'equal';
  if (await ancestry(gitlab, github)) return 'github-ahead';
  if (await ancestry(github, gitlab)) return 'gitlab-ahead';
  return 'diverged';
}

/** A bare repo in a temp dir: where the commit travels from one side to the other. */
export class ScratchRepo {
  private ready = false;

  constructor(
    private readonly git: GitRunner,
    readonly dir: string,
  ) {}

  private async ensure(): Promise<void> {
    if (this.ready) return;
    await mkdir(this.dir, { recursive: true });
    await this.git.run(['init', '--bare', '-q', this.dir]);
    this.ready = true;
  }

  private run(
    args: string[],
    options: {
      credentials?: readonly GitCredential[];
      okExitCodes?: number[];
      hint?: string;
      retryTransient?: boolean;
    } = {},
  ) {
    return this.git.run(args, { cwd: this.dir, env: { GIT_DIR: this.dir }, ...options });
  }

  /** Fetches one branch (full history: the push must be able to tell what the other side lacks). */
  async fetchBranch(url: string, branch: string, into: string, credentials: readonly GitCredential[]): Promise<void> {
    await this.ensure();
    await this.run(
      [
        'fetch',
        '--quiet',
        '--no-tags',
        '--no-write-fetch-head',
        '--no-auto-gc',
        '--',
        url,
        `+refs/heads/${branch}:${into}`,
      ],
      { credentials, hint: 'check that the token can read the repository', retryTransient: true },
    );
  }

  async hasCommit(sha: string): Promise<boolean> {
    await this.ensure();
    const r = await this.run(['cat-file', '-e', `${sha}^{commit}`], { okExitCodes: [1, 128] });
    return r.exitCode === 0;
  }

  /** `merge-base --is-ancestor`; a missing object counts as "no" (it is not in the fetched history). */
  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    await this.ensure();
    const r = await this.run(['merge-base', '--is-ancestor', ancestor, descendant], { okExitCodes: [1, 128] });
    return r.exitCode === 0;
  }

  /** Pushes `sha` to `refs/heads/<branch>` leased on `expected` (undefined: the branch must not exist). */
  async pushLeased(
    url: string,
    branch: string,
    sha: string,
    expected: string | undefined,
    options: { credentials: readonly GitCredential[]; pushOptions?: readonly string[] },
  ): Promise<{ ok: boolean; message: string }> {
    await this.ensure();
    const ref = `refs/heads/${branch}`;
    const args = ['push', '--porcelain', '--no-verify'];
    for (const o of options.pushOptions ?? []) args.push('-o', o);
    args.push(`--force-with-lease=${ref}:${expected ?? ''}`, '--', url, `${sha}:${ref}`);
    const r = await this.run(args, { credentials: options.credentials, okExitCodes: [1], retryTransient: true });
    const report = parsePushPorcelain(r.stdout, r.stderr);
    const status = report.refs.find((s) => s.to === ref);
    const ok = r.exitCode === 0 && status !== undefined && status.flag !== 'rejected' && status.flag !== 'error';
    const message = [status?.summary, status?.reason, ...report.remoteMessages, ...report.errors]
      .filter((s): s is string => s !== undefined && s !== '')
      .join('; ');
    return { ok, message };
  }
}

export interface PlanCiFilesOptions {
  git: GitRunner;
  github: CiRepoSide;
  gitlab: CiRepoSide;
  /** Content of `.github/workflows/refbridge-mirror.yml`. */
  workflow: string;
  /** `ci-templates/gitlab-mirror.yml` (rendered): the new `.gitlab-ci.yml`, and the include to add to an existing one. */
  gitlabCiTemplate: string;
  /** The include is configured: replace a different refbridge entry in an existing file (see `ensureMirrorInclude`). */
  enforceInclude?: boolean;
  scratch: ScratchRepo;
}

async function branchTips(git: GitRunner, side: CiRepoSide): Promise<Map<string, string>> {
  if (side.info === undefined) return new Map();
  return listRemoteRefs(git, side.url, { credentials: side.credentials, patterns: ['refs/heads/*'] });
}

/** Reads both sides and decides the commit; changes nothing. */
export async function planCiFiles(options: PlanCiFilesOptions): Promise<CiFilesPlan> {
  const sides: Record<Side, CiRepoSide> = { github: options.github, gitlab: options.gitlab };
  const [ghRefs, glRefs] = await Promise.all([
    branchTips(options.git, sides.github),
    branchTips(options.git, sides.gitlab),
  ]);
  // The branch of the side that has content, GitHub first; two empty repos use GitHub's default.
  const pick = (refs: Map<string, string>, info: RepoInfo | undefined): string | undefined => {
    if (refs.size === 0) return undefined;
    const def = info?.defaultBranch;
    if (def && refs.has(`refs/heads/${def}`)) return def;
    return refs.has('refs/heads/main') ? 'main' : refs.has('refs/heads/master') ? 'master' : def || undefined;
  };
  const branch =
    pick(ghRefs, sides.github.info) ??
    pick(glRefs, sides.gitlab.info) ??
    sides.github.info?.defaultBranch ??
    sides.gitlab.info?.defaultBranch ??
    'main';
  const ref = `refs/heads/${branch}`;
  const tips: Record<Side, string | undefined> = { github: ghRefs.get(ref), gitlab: glRefs.get(ref) };

  let fetched = false;
  const relation = await branchRelation(tips, async (ancestor, descendant) => {
    if (!fetched) {
      await options.scratch.fetchBranch(sides.github.url, branch, 'refs/bootstrap/github', sides.github.credentials);
      await options.scratch.fetchBranch(sides.gitlab.url, branch, 'refs/bootstrap/gitlab', sides.gitlab.credentials);
      fetched = true;
    }
    return options.scratch.isAncestor(ancestor, descendant);
  });
  const commitSide = commitSideFor(relation);
  if (commitSide === undefined) return { branch, relation, tips, commitSide, files: [] };

  const source = sides[commitSide];
  const read = (file: string): Promise<string | undefined> =>
    tips[commitSide] === undefined ? Promise.resolve(undefined) : source.forge.readFile(source.path, branch, file);
  const [workflowNow, gitlabCiNow] = await Promise.all([read(WORKFLOW_FILE), read(GITLAB_CI_FILE)]);
  const include = ensureMirrorInclude(
    gitlabCiNow,
    options.gitlabCiTemplate,
    `${GITLAB_CI_FILE} on ${source.path}@${branch}`,
    { enforce: options.enforceInclude === true },
  );
  const files: PlannedFile[] = [
    {
      path: WORKFLOW_FILE,
      content: options.workflow,
      change: workflowNow === undefined ? 'create' : workflowNow === options.workflow ? 'unchanged' : 'update',
      detail:
        workflowNow === undefined
          ? 'new workflow'
          : workflowNow === options.workflow
            ? 'up to date'
            : "replaced with this refbridge's version",
    },
    {
      path: GITLAB_CI_FILE,
      content: include.content,
      change: include.change === 'created' ? 'create' : include.change === 'unchanged' ? 'unchanged' : 'update',
      detail: include.detail,
    },
  ];
  return { branch, relation, tips, commitSide, files };
}

export interface ApplyCiFilesOptions {
  git: GitRunner;
  logger: Logger;
  github: CiRepoSide;
  gitlab: CiRepoSide;
  plan: CiFilesPlan;
  scratch: ScratchRepo;
  /** For messages. */
  pairName: string;
}

/** Commits the planned files (if any changed) on the committing side and puts that commit on the other. */
export async function applyCiFiles(options: ApplyCiFilesOptions): Promise<CiFilesResult> {
  const { plan, scratch } = options;
  const sides: Record<Side, CiRepoSide> = { github: options.github, gitlab: options.gitlab };
  const commitSide = plan.commitSide;
  if (commitSide === undefined) {
    throw new RefbridgeError(
      `${options.pairName}: the CI files cannot be committed while ${plan.branch} differs on the two sides`,
    );
  }
  const source = sides[commitSide];
  const target = sides[otherSide(commitSide)];
  const changed = plan.files.filter((f) => f.change !== 'unchanged');
  let sha: string;
  let committed = false;
  if (changed.length > 0) {
    sha = await source.forge.commitFiles(source.path, {
      branch: plan.branch,
      message: CI_COMMIT_MESSAGE,
      files: changed.map((f) => ({ path: f.path, content: f.content })),
    });
    committed = sha !== plan.tips[commitSide];
  } else {
    const tip = plan.tips[commitSide];
    if (tip === undefined)
      throw new RefbridgeError(`${options.pairName}: nothing to commit and no ${plan.branch} on ${commitSide}`);
    sha = tip;
  }

  const expected = plan.tips[otherSide(commitSide)];
  if (expected === sha) return { sha, committed, propagated: 'in-step' };

  await scratch.fetchBranch(source.url, plan.branch, 'refs/bootstrap/source', source.credentials);
  if (!(await scratch.hasCommit(sha))) {
    throw new RefbridgeError(
      `${options.pairName}: ${plan.branch} on ${commitSide} no longer contains the commit ${sha.slice(0, 12)} bootstrap just made`,
      { hint: 'someone rewrote the branch meanwhile; run `refbridge bootstrap` again' },
    );
  }
  if (expected !== undefined && !(await scratch.isAncestor(expected, sha))) {
    throw new RefbridgeError(
      `${options.pairName}: ${plan.branch} on ${otherSide(commitSide)} (${expected.slice(0, 12)}) is not contained in ${commitSide}'s ${sha.slice(0, 12)}; not forcing it`,
      { hint: `run \`refbridge sync --pair ${options.pairName}\` to see how the sides differ, then bootstrap again` },
    );
  }
  const pushed = await scratch.pushLeased(target.url, plan.branch, sha, expected, {
    credentials: target.credentials,
    ...(target.pushOptions === undefined ? {} : { pushOptions: target.pushOptions }),
  });
  if (pushed.ok) {
    options.logger.info(
      `${options.pairName}: ${plan.branch} ${expected === undefined ? 'created' : 'fast-forwarded'} on ${otherSide(commitSide)} at ${sha.slice(0, 12)}`,
    );
    return { sha, committed, propagated: expected === undefined ? 'created' : 'fast-forward' };
  }
  // The lease fails when the branch moved meanwhile, typically because the mirror job that this
  // very commit triggered got there first. That is success if it now has our commit.
  const now = (
    await listRemoteRefs(options.git, target.url, {
      credentials: target.credentials,
      patterns: [`refs/heads/${plan.branch}`],
    })
  ).get(`refs/heads/${plan.branch}`);
  if (now === sha) return { sha, committed, propagated: 'already-there' };
  throw new RefbridgeError(
    `${options.pairName}: pushing ${sha.slice(0, 12)} to ${plan.branch} on ${otherSide(commitSide)} was refused (${pushed.message || 'no reason given'})`,
    {
      hint: `${commitSide} has the CI files now; once the cause is fixed, \`refbridge sync --pair ${options.pairName}\` or another bootstrap run brings them over`,
    },
  );
}
