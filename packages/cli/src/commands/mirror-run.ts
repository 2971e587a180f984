import { readFile } from 'node:fs/promises';
// Core's modules one by one, not its barrel (yaml, ajv, the sync and backup engines): this is the
// CI fast path, benchmarked against a bare `git push`.
import { ExitCode, UsageError } from '@refbridge/core/errors';
import type { GitCredential } from '@refbridge/core/git-runner';
import { defaultLfsPolicy, lfsPolicies } from '@refbridge/core/lfs-attributes';
import { mirrorRef, type MirrorResult } from '@refbridge/core/mirror-ref';
import type { CliIo } from '../program.js';
import { createShell, oneOf, printJson, printText } from '../shell.js';
import type { MirrorFlags } from './mirror-command.js';

const ZERO = '0'.repeat(40);

/** Everything `mirrorRef` needs that comes from the CI environment. */
interface CiContext {
  ci: 'gitlab' | 'github' | 'flags';
  sourceUrl: string;
  sourceCredentials: GitCredential[];
  targetUrl: string;
  targetCredentials: GitCredential[];
  ref: string;
  before: string | undefined;
  after: string;
  workdir: string;
  actor: string | undefined;
}

function trimUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

function originOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    throw new UsageError(`"${url}" is not a URL`, 'pass an https:// clone URL');
  }
}

function credential(io: CliIo, url: string, envName: string, username: string): GitCredential[] {
  const token = io.env[envName]?.trim();
  return token && /^https?:/.test(url) ? [{ url: originOf(url), username, token }] : [];
}

/**
 * GitLab's runner sets GITLAB_CI=true. gitlab-ci-local, which people use to try pipelines on their
 * machine, sets it to "false" but provides the same CI_* variables, so those count as GitLab CI too.
 */
function inGitlabCi(env: Readonly<Record<string, string | undefined>>): boolean {
  return env['GITLAB_CI'] === 'true' || Boolean(env['CI_SERVER_URL'] && env['CI_PROJECT_PATH'] && env['CI_COMMIT_SHA']);
}

async function detect(io: CliIo, flags: MirrorFlags): Promise<CiContext> {
  const env = io.env;
  if (inGitlabCi(env) && !flags.sourceUrl) {
    const server = trimUrl(env['CI_SERVER_URL'] ?? '');
    const githubUrl = trimUrl(env['GITHUB_URL'] || 'https://github.com');
    const repo = env['GITHUB_REPO'] ?? '';
    const sourceUrl = `${server}/${env['CI_PROJECT_PATH'] ?? ''}.git`;
    const targetUrl = flags.targetUrl ?? (repo ? `${githubUrl}/${repo}.git` : '');
    const tag = env['CI_COMMIT_TAG'];
    const branch = env['CI_COMMIT_BRANCH'] ?? env['CI_COMMIT_REF_NAME'];
    const before = env['CI_COMMIT_BEFORE_SHA'];
    if (!targetUrl)
      throw new UsageError(
        'GITHUB_REPO is not set',
        'set the GITHUB_REPO CI/CD variable (owner/name), or pass --target-url',
      );
    return {
      ci: 'gitlab',
      sourceUrl,
      sourceCredentials: flags.sourceTokenEnv
        ? credential(io, sourceUrl, flags.sourceTokenEnv, 'oauth2')
        : credential(io, sourceUrl, 'CI_JOB_TOKEN', 'gitlab-ci-token'),
      targetUrl,
      targetCredentials: credential(io, targetUrl, flags.targetTokenEnv ?? 'GITHUB_TOKEN', 'x-access-token'),
      ref: flags.ref ?? (tag ? `refs/tags/${tag}` : branch ? `refs/heads/${branch}` : ''),
      before: flags.before ?? (before && before !== ZERO ? before : undefined),
      after: flags.after ?? env['CI_COMMIT_SHA'] ?? '',
      workdir: flags.workdir ?? env['CI_PROJECT_DIR'] ?? io.cwd,
      actor: env['GITLAB_USER_LOGIN'],
    };
  }
  if (env['GITHUB_ACTIONS'] === 'true' && !flags.sourceUrl) {
    const server = trimUrl(env['GITHUB_SERVER_URL'] ?? 'https://github.com');
    const sourceUrl = `${server}/${env['GITHUB_REPOSITORY'] ?? ''}.git`;
    const gitlabUrl = trimUrl(env['GITLAB_URL'] || 'https://gitlab.com');
    const targetUrl = flags.targetUrl ?? `${gitlabUrl}/${env['GITLAB_REPO'] || env['GITHUB_REPOSITORY'] || ''}.git`;
    let payload: Record<string, unknown> = {};
    if (env['GITHUB_EVENT_PATH'])
      payload = JSON.parse(await readFile(env['GITHUB_EVENT_PATH'], 'utf8')) as Record<string, unknown>;
    const str = (k: string): string | undefined => {
      const v = payload[k];
      return typeof v === 'string' ? v : undefined;
    };
    const deleted = payload['deleted'] === true;
    const before = str('before');
    return {
      ci: 'github',
      sourceUrl,
      sourceCredentials: credential(io, sourceUrl, flags.sourceTokenEnv ?? 'GITHUB_TOKEN', 'x-access-token'),
      targetUrl,
      targetCredentials: credential(io, targetUrl, flags.targetTokenEnv ?? 'GITLAB_TOKEN', 'oauth2'),
      ref: flags.ref ?? str('ref') ?? env['GITHUB_REF'] ?? '',
      before: flags.before ?? (before && before !== ZERO ? before : undefined),
      after: flags.after ?? (deleted ? ZERO : (str('after') ?? env['GITHUB_SHA'] ?? '')),
      workdir: flags.workdir ?? env['GITHUB_WORKSPACE'] ?? io.cwd,
      actor: env['GITHUB_ACTOR'],
    };
  }
  const missing = (['sourceUrl', 'targetUrl', 'ref', 'after'] as const).filter((k) => !flags[k]);
  if (missing.length > 0) {
    throw new UsageError(
      `not running in GitLab CI or GitHub Actions, so ${missing.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} must be given`,
      'pass the flags, and name the environment variables holding the tokens with --source-token-env / --target-token-env',
    );
  }
  const sourceUrl = flags.sourceUrl!;
  const targetUrl = flags.targetUrl!;
  return {
    ci: 'flags',
    sourceUrl,
    sourceCredentials: flags.sourceTokenEnv ? credential(io, sourceUrl, flags.sourceTokenEnv, 'x-access-token') : [],
    targetUrl,
    targetCredentials: flags.targetTokenEnv ? credential(io, targetUrl, flags.targetTokenEnv, 'oauth2') : [],
    ref: flags.ref!,
    before: flags.before,
    after: flags.after!,
    workdir: flags.workdir ?? io.cwd,
    actor: undefined,
  };
}

export async function runMirror(io: CliIo, flags: MirrorFlags): Promise<number> {
  const shell = createShell(io, flags);
  const deletions = oneOf('--deletions', flags.deletions, ['propagate', 'ignore']);
  const lfsFromEnv = io.env['REFBRIDGE_LFS']?.trim();
  const lfs =
    flags.lfs !== undefined
      ? oneOf('--lfs', flags.lfs, lfsPolicies)
      : lfsFromEnv
        ? oneOf('REFBRIDGE_LFS', lfsFromEnv, lfsPolicies)
        : defaultLfsPolicy;
  for (const name of [flags.sourceTokenEnv, flags.targetTokenEnv]) if (name) shell.masker.add(io.env[name]);
  const ctx = await detect(io, flags);
  for (const [what, url] of [
    ['source', ctx.sourceUrl],
    ['target', ctx.targetUrl],
  ] as const) {
    // git would get the token in its argv (visible to every user of the machine) and in messages.
    if (/^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*@/i.test(url)) {
      throw new UsageError(
        `the ${what} URL contains a user name or token`,
        `remove it from the URL and name the environment variable that holds the token with --${what}-token-env; refbridge hands tokens to git through the environment only`,
      );
    }
  }
  if (!ctx.ref)
    throw new UsageError('could not tell which ref to mirror', 'pass --ref refs/heads/<branch> or refs/tags/<tag>');
  const botUser = flags.botUser ?? io.env['MIRROR_BOT_USER'];
  const print = (result: MirrorResult | { result: 'skipped'; ref: string; message: string }): void => {
    if (shell.json) printJson(shell, { ci: ctx.ci, ...result });
    else printText(shell, `${result.ref}: ${result.result}: ${result.message}\n`);
  };
  if (botUser && ctx.actor && ctx.actor.toLowerCase() === botUser.toLowerCase()) {
    print({ result: 'skipped', ref: ctx.ref, message: `pushed by the mirror bot ${botUser}; not mirroring it back` });
    return ExitCode.ok;
  }
  const result = await mirrorRef({
    git: shell.git,
    logger: shell.logger,
    workdir: ctx.workdir,
    source: { url: ctx.sourceUrl, credentials: ctx.sourceCredentials },
    target: { url: ctx.targetUrl, credentials: ctx.targetCredentials },
    ref: ctx.ref,
    ...(ctx.before === undefined ? {} : { before: ctx.before }),
    after: ctx.after,
    deletions,
    lfs,
    force: flags.force ?? false,
    pushOptions: flags.skipCi ? ['ci.skip'] : [],
    dryRun: flags.dryRun ?? false,
  });
  print(result);
  if (result.result === 'diverged') {
    if (!shell.json && result.repair) io.stderr(`  repair: ${result.repair}\n`);
    return ExitCode.diverged;
  }
  return ExitCode.ok;
}
