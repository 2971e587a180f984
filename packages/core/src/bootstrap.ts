import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ScratchRepo,
  applyCiFiles,
  otherSide,
  planCiFiles,
  renderGithubWorkflow,
  type CiFilesPlan,
  type CiRepoSide,
} from './bootstrap-ci-files.js';
import type { BootstrapSettings, ForgeEndpoint, ResolvedPair } from './config.js';
import { RefbridgeError } from './errors.js';
import type { Forge, RepoInfo, TokenInfo } from './forge.js';
import { renderGitlabCi } from './gitlab-ci-include.js';
import type { GitRunner } from './git-runner.js';
import type { Logger } from './logger.js';
import { fingerprintMatches, fingerprintSecret } from './secret-fingerprint.js';
import type { Side } from './sync-planner.js';

/**
 * `refbridge bootstrap` for one pair, platform-free: both repos (created or adopted), the token
 * each side's CI needs to push to the other (a sealed Actions secret on GitHub, a masked and
 * hidden CI/CD variable on GitLab), the plain variables the CI files read, and the CI files
 * themselves (see bootstrap-ci-files.ts: one commit, the same on both sides).
 *
 * Idempotent by reading before writing: an existing repo is adopted, a variable with the wanted
 * value is not written, and a secret is re-sealed only when the token differs from the one stored
 * last time. Secrets cannot be read back, so each side keeps a fingerprint of its stored token in
 * a plain variable (secret-fingerprint.ts). With `dryRun` only reads happen, and the steps say
 * what would change.
 */

/** A plain variable (or, for `secret`, the metadata of a secret) as the platform reports it. */
export interface StoredVariable {
  /** undefined for secrets and hidden GitLab variables, whose value cannot be read back. */
  value: string | undefined;
  protected: boolean;
  masked: boolean;
}

/**
 * Reads settings back; the `Forge` interface only writes them. The shell provides one per
 * platform (GitHub: Actions variables and secrets; GitLab: CI/CD variables of scope `*`).
 */
export interface SettingsReader {
  variable(path: string, name: string): Promise<StoredVariable | undefined>;
  /** Whether a secret exists (GitHub Actions secret; GitLab: the CI/CD variable holding it). */
  secret(path: string, name: string): Promise<StoredVariable | undefined>;
}

/** The names bootstrap writes, per side. The CI templates read the same names. */
export const BOOTSTRAP_NAMES = {
  github: {
    secret: 'GITLAB_TOKEN',
    fingerprint: 'REFBRIDGE_GITLAB_TOKEN_FINGERPRINT',
    url: 'GITLAB_URL',
    repo: 'GITLAB_REPO',
    botUser: 'MIRROR_BOT_USER',
  },
  gitlab: {
    secret: 'GITHUB_TOKEN',
    fingerprint: 'REFBRIDGE_GITHUB_TOKEN_FINGERPRINT',
    url: 'GITHUB_URL',
    repo: 'GITHUB_REPO',
    botUser: 'MIRROR_BOT_USER',
  },
} as const;

export type StepStatus = 'unchanged' | 'planned' | 'done' | 'attention';

export interface BootstrapStep {
  side: Side;
  /** `repository`, `secret GITLAB_TOKEN`, `variable GITLAB_URL`, `CI files`, `branch main`. */
  item: string;
  status: StepStatus;
  /** One line for people; never a token. */
  detail: string;
}

export type PairBootstrapStatus = 'set-up' | 'already-set-up' | 'planned' | 'diverged' | 'failed';

export interface PairBootstrapResult {
  pair: string;
  github: string;
  gitlab: string;
  status: PairBootstrapStatus;
  steps: BootstrapStep[];
  /** The CI commit both sides have (absent in a dry run or when it could not be made). */
  commit?: string;
  branch?: string;
  error?: string;
}

export interface BootstrapSide {
  forge: Forge;
  reader: SettingsReader;
  /** Token stored on the OTHER side so that side's CI can push here (never logged). */
  mirrorToken: string;
  /** Login that pushes mirrored commits here; the CI on this side skips its pushes. */
  botUser: string | undefined;
  /** Scopes of the admin token on this side, when known (public-only GitHub tokens). */
  adminScopes?: readonly string[] | undefined;
}

export interface BootstrapPairOptions {
  pair: ResolvedPair;
  endpoints: { github: ForgeEndpoint; gitlab: ForgeEndpoint };
  settings: BootstrapSettings;
  github: BootstrapSide;
  gitlab: BootstrapSide;
  git: GitRunner;
  logger: Logger;
  templates: { githubWorkflow: string; gitlabCi: string };
  dryRun: boolean;
  /** Parent of the scratch repo (default: the OS temp dir). */
  tempDir?: string;
}

const errorText = (error: unknown): string =>
  error instanceof RefbridgeError ? error.describe() : error instanceof Error ? error.message : String(error);

/** Sets up one pair (or plans it); never throws: failures end up in the result. */
export async function bootstrapPair(options: BootstrapPairOptions): Promise<PairBootstrapResult> {
  const { pair } = options;
  const result: PairBootstrapResult = {
    pair: pair.name,
    github: pair.github.fullName,
    gitlab: pair.gitlab.path,
    status: 'already-set-up',
    steps: [],
  };
  let scratchDir: string | undefined;
  try {
    const repos = {
      github: await ensureRepo(options, 'github', result),
      gitlab: await ensureRepo(options, 'gitlab', result),
    };
    await ensureSettings(options, 'github', repos.github, result);
    await ensureSettings(options, 'gitlab', repos.gitlab, result);

    scratchDir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'refbridge-bootstrap-'));
    const scratch = new ScratchRepo(options.git, join(scratchDir, 'repo.git'));
    const ci = {
      github: ciSide(options, 'github', repos.github),
      gitlab: ciSide(options, 'gitlab', repos.gitlab),
    };
    const plan = await planCiFiles({
      git: options.git,
      ...ci,
      workflow: renderGithubWorkflow(options.templates.githubWorkflow, options.settings.github.action),
      gitlabCiTemplate: renderGitlabCi(options.templates.gitlabCi, options.settings.gitlab.include),
      enforceInclude: options.settings.gitlab.include !== undefined,
      scratch,
    });
    result.branch = plan.branch;
    if (plan.commitSide === undefined) {
      result.steps.push({
        side: 'github',
        item: `branch ${plan.branch}`,
        status: 'attention',
        detail: `differs on GitHub (${short(plan.tips.github)}) and GitLab (${short(plan.tips.gitlab)}) and neither contains the other: CI files not committed. Settle it with \`refbridge sync --pair ${pair.name} --resolve ${plan.branch} --keep github\` (or gitlab), then run bootstrap again`,
      });
      result.status = 'diverged';
      return result;
    }
    describeCiPlan(plan, result);
    if (!options.dryRun && needsCiWork(plan)) {
      const done = await applyCiFiles({
        git: options.git,
        logger: options.logger,
        ...ci,
        plan,
        scratch,
        pairName: pair.name,
      });
      result.commit = done.sha;
      for (const step of result.steps) if (step.status === 'planned') step.status = 'done';
      const target = otherSide(plan.commitSide);
      const last = result.steps.find((s) => s.side === target && s.item === `branch ${plan.branch}`);
      if (last) {
        last.detail =
          done.propagated === 'already-there'
            ? `already has ${short(done.sha)} (mirrored by CI meanwhile)`
            : `${done.propagated === 'created' ? 'created' : 'fast-forwarded'} at ${short(done.sha)}, the same commit as ${label(plan.commitSide)}`;
      }
      const commitStep = result.steps.find((s) => s.side === plan.commitSide && s.item === 'CI files');
      if (commitStep && done.committed) commitStep.detail += ` -> ${short(done.sha)}`;
    } else if (!needsCiWork(plan)) {
      result.commit = plan.tips[plan.commitSide];
    }
    result.status = statusOf(result.steps, options.dryRun);
    return result;
  } catch (error) {
    result.status = 'failed';
    result.error = errorText(error);
    return result;
  } finally {
    if (scratchDir !== undefined) await rm(scratchDir, { recursive: true, force: true });
  }
}

const label = (side: Side): string => (side === 'github' ? 'GitHub' : 'GitLab');
const short = (sha: string | undefined): string => (sha ? sha.slice(0, 12) : '(none)');

function statusOf(steps: readonly BootstrapStep[], dryRun: boolean): PairBootstrapStatus {
  if (steps.some((s) => s.status === 'attention')) return 'diverged';
  if (dryRun) return steps.some((s) => s.status === 'planned') ? 'planned' : 'already-set-up';
  return steps.some((s) => s.status === 'done') ? 'set-up' : 'already-set-up';
}

function repoPath(options: BootstrapPairOptions, side: Side): string {
  return side === 'github' ? options.pair.github.fullName : options.pair.gitlab.path;
}

async function ensureRepo(
  options: BootstrapPairOptions,
  side: Side,
  result: PairBootstrapResult,
): Promise<RepoInfo | undefined> {
  const { forge, adminScopes } = options[side];
  const path = repoPath(options, side);
  const visibility = options.settings[side].visibility;
  let info = await forge.getRepo(path);
  if (info?.archived) {
    throw new RefbridgeError(`${label(side)} ${path} is archived: nothing can be pushed or configured there`, {
      hint: 'unarchive it, or remove the pair from the config',
    });
  }
  const item = 'repository';
  if (info) {
    result.steps.push({ side, item, status: 'unchanged', detail: `${path} exists (${info.visibility}); adopted` });
  } else if (options.dryRun) {
    result.steps.push({ side, item, status: 'planned', detail: `create ${path} (${visibility})` });
  } else {
    info = await forge.createRepo(path, { visibility });
    result.steps.push({ side, item, status: 'done', detail: `created ${info.path} (${info.visibility})` });
  }
  const willBePrivate = (info?.visibility ?? visibility) !== 'public';
  if (side === 'github' && adminScopes !== undefined && willBePrivate && !adminScopes.includes('repo')) {
    throw new RefbridgeError(
      `GITHUB_TOKEN has no \`repo\` scope, which ${path} needs (it is ${info?.visibility ?? visibility}; \`public_repo\` covers public repositories only)`,
      { hint: 'add the `repo` scope to the token, then run again' },
    );
  }
  return info;
}

function ciSide(options: BootstrapPairOptions, side: Side, info: RepoInfo | undefined): CiRepoSide {
  const { forge } = options[side];
  const path = repoPath(options, side);
  return {
    forge,
    path,
    info,
    url: forge.gitUrl(path),
    credentials: [forge.gitCredential()],
    ...(side === 'gitlab' && options.pair.policy.pushOptions.gitlabCiSkip ? { pushOptions: ['ci.skip'] } : {}),
  };
}

/** The secret and the plain variables of one side. */
async function ensureSettings(
  options: BootstrapPairOptions,
  side: Side,
  info: RepoInfo | undefined,
  result: PairBootstrapResult,
): Promise<void> {
  const names = BOOTSTRAP_NAMES[side];
  const other = otherSide(side);
  const { forge, reader } = options[side];
  const path = repoPath(options, side);
  // GitHub Actions variables have no protection; on GitLab it follows the config (both ways).
  const wantProtected = side === 'gitlab' ? options.settings.gitlab.protectVariables : undefined;
  const exists = info !== undefined;

  // The token stored here is the one for the OTHER platform: this side's CI pushes there with it.
  const token = options[other].mirrorToken;
  const stored = exists ? await reader.secret(path, names.secret) : undefined;
  const fingerprint = exists ? await reader.variable(path, names.fingerprint) : undefined;
  const sameToken = fingerprintMatches(fingerprint?.value, token);
  const protectionOk = wantProtected === undefined || stored?.protected === wantProtected;
  const flagsOk = stored?.masked === true && protectionOk;
  const secretItem = `secret ${names.secret}`;
  if (stored !== undefined && sameToken && flagsOk) {
    result.steps.push({
      side,
      item: secretItem,
      status: 'unchanged',
      detail: 'holds the same token as stored last time',
    });
  } else {
    const why =
      stored === undefined
        ? 'not set yet'
        : !sameToken
          ? fingerprint === undefined
            ? 'set by someone else (no fingerprint)'
            : 'the token changed'
          : !stored.masked
            ? 'it was stored unmasked'
            : `protection ${wantProtected ? 'on' : 'off'} per the config`;
    const what =
      side === 'github'
        ? 'seal with the repository key'
        : `store masked and hidden${wantProtected ? ', protected' : ''}`;
    if (options.dryRun) {
      result.steps.push({ side, item: secretItem, status: 'planned', detail: `${what} (${why})` });
    } else {
      const outcome = await forge.setSecret(
        path,
        names.secret,
        token,
        wantProtected === undefined ? {} : { protected: wantProtected },
      );
      // Written after the secret, so a failure in between costs one re-seal next time, never a stale secret.
      if (!sameToken)
        await forge.setVariable(
          path,
          names.fingerprint,
          fingerprintSecret(token),
          side === 'gitlab' ? { protected: false } : {},
        );
      result.steps.push({
        side,
        item: secretItem,
        status: 'done',
        detail: outcome === 'created' ? 'created' : `updated (${why})`,
      });
    }
  }

  const endpoint = options.endpoints[other];
  const variables: [string, string | undefined][] = [
    [names.url, endpoint.url],
    [names.repo, repoPath(options, other)],
    [names.botUser, options[side].botUser],
  ];
  for (const [name, value] of variables) {
    const item = `variable ${name}`;
    if (value === undefined || value === '') {
      result.steps.push({
        side,
        item,
        status: 'unchanged',
        detail: `not set: no mirror bot for ${label(side)} (set botUsers.${side} in the config, or store a bot's token); loops still end at the first no-op`,
      });
      continue;
    }
    const current = exists ? await reader.variable(path, name) : undefined;
    if (
      current !== undefined &&
      current.value === value &&
      (wantProtected === undefined || current.protected === wantProtected)
    ) {
      result.steps.push({ side, item, status: 'unchanged', detail: value });
      continue;
    }
    const verb = current === undefined ? 'create' : 'update';
    if (options.dryRun) {
      result.steps.push({ side, item, status: 'planned', detail: `${verb}: ${value}` });
      continue;
    }
    const outcome = await forge.setVariable(
      path,
      name,
      value,
      wantProtected === undefined ? {} : { protected: wantProtected },
    );
    result.steps.push({
      side,
      item,
      status: outcome === 'unchanged' ? 'unchanged' : 'done',
      detail: `${outcome}: ${value}`,
    });
  }
}

function needsCiWork(plan: CiFilesPlan): boolean {
  if (plan.commitSide === undefined) return false;
  return plan.files.some((f) => f.change !== 'unchanged') || plan.tips.github !== plan.tips.gitlab;
}

function describeCiPlan(plan: CiFilesPlan, result: PairBootstrapResult): void {
  const commitSide = plan.commitSide;
  if (commitSide === undefined) return;
  const changed = plan.files.filter((f) => f.change !== 'unchanged');
  if (changed.length === 0) {
    result.steps.push({
      side: commitSide,
      item: 'CI files',
      status: 'unchanged',
      detail: `${plan.files.map((f) => f.path).join(' and ')} up to date on ${plan.branch}`,
    });
  } else {
    const list = changed.map((f) => `${f.path} (${f.detail})`).join(', ');
    result.steps.push({
      side: commitSide,
      item: 'CI files',
      status: 'planned',
      detail: `one commit on ${plan.branch} through the ${label(commitSide)} API: ${list}`,
    });
  }
  const target = otherSide(commitSide);
  const targetTip = plan.tips[target];
  const sourceTip = plan.tips[commitSide];
  if (changed.length === 0 && targetTip === sourceTip) {
    result.steps.push({
      side: target,
      item: `branch ${plan.branch}`,
      status: 'unchanged',
      detail: `same commit as ${label(commitSide)} (${short(targetTip)})`,
    });
    return;
  }
  result.steps.push({
    side: target,
    item: `branch ${plan.branch}`,
    status: 'planned',
    detail:
      targetTip === undefined
        ? 'create it with the same commit (git push, leased on "does not exist")'
        : `fast-forward to the same commit (git push, leased on ${short(targetTip)})`,
  });
}

// ---------------------------------------------------------------------------------------------
// Token checks, before anything changes

export type TokenRole = 'admin' | 'mirror';

export interface TokenCheck {
  platform: Side;
  role: TokenRole;
  /** The environment variable it came from, for messages. */
  envName: string;
  /** What `tokenInfo()` answered, or the error it threw. */
  info: TokenInfo | Error;
}

export interface TokenReport {
  problems: string[];
  /** Tokens whose scopes the platform does not report (fine-grained, app, OAuth): not checked. */
  notes: string[];
}

/**
 * Scopes each token needs. GitHub admin: create repos and secrets (`repo`, or `public_repo`
 * when only public repos are involved) and write the workflow file (`workflow`). GitHub mirror
 * (stored in GitLab): push mirrored commits, which may touch workflow files (`repo` + `workflow`).
 * GitLab admin: `api`. GitLab mirror (stored on GitHub): push (`write_repository`, or `api`).
 */
export function requiredScopes(platform: Side, role: TokenRole, publicOnly: boolean): string[][] {
  if (platform === 'github') return [publicOnly ? ['repo', 'public_repo'] : ['repo'], ['workflow']];
  return role === 'admin' ? [['api']] : [['write_repository', 'api']];
}

/** Every missing scope of every token, at once. */
export function checkTokenScopes(checks: readonly TokenCheck[], options: { githubPublicOnly: boolean }): TokenReport {
  const problems: string[] = [];
  const notes: string[] = [];
  for (const c of checks) {
    const who = `${c.envName} (${label(c.platform)}${c.role === 'mirror' ? ', stored for the CI' : ''})`;
    if (c.info instanceof Error) {
      problems.push(`${who} was refused: ${errorText(c.info)}`);
      continue;
    }
    const scopes = c.info.scopes;
    if (scopes === undefined) {
      notes.push(`${who}: the platform does not report this token's scopes; they are not checked up front`);
      continue;
    }
    const missing = requiredScopes(c.platform, c.role, c.platform === 'github' && options.githubPublicOnly)
      .filter((anyOf) => !anyOf.some((s) => scopes.includes(s)))
      .map((anyOf) => anyOf.map((s) => `\`${s}\``).join(' or '));
    if (missing.length > 0) {
      problems.push(
        `${who} of ${c.info.login || 'an unknown user'} lacks ${missing.join(' and ')} (it has ${scopes.map((s) => `\`${s}\``).join(', ') || 'no scopes'})`,
      );
    }
  }
  return { problems, notes };
}
