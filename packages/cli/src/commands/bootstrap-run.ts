import {
  ExitCode,
  ForgeApiError,
  bootstrapPair,
  checkTokenScopes,
  type Forge,
  type PairBootstrapResult,
  type TokenCheck,
  type TokenInfo,
} from '@refbridge/core';
import { maskingProblems } from '@refbridge/gitlab';
import type { CliIo } from '../program.js';
import {
  createShell,
  dryRunNote,
  exitCodeFor,
  githubForge,
  gitlabForge,
  loadPairs,
  mapLimit,
  positiveInt,
  printJson,
  printSummary,
  requireTokens,
  statusTag,
  table,
  type Shell,
} from '../shell.js';
import { readTemplate } from '../templates.js';
import { MIRROR_TOKEN_ENV, type BootstrapFlags } from './bootstrap-command.js';
import {
  githubSettingsReader,
  gitlabSettingsReader,
  gitlabTokenInfoWithoutReadUser,
} from './bootstrap-settings-reader.js';

/**
 * `refbridge bootstrap`: reads the config and the tokens, checks every token's scopes before
 * anything changes (all problems at once, exit 2), then sets up each pair (core's
 * `bootstrapPair`), a failing pair never stopping the others. Exit 1 if any pair failed, 3 if a
 * pair's branch diverged (CI files not committed), else 0.
 *
 * Tokens stored for the CI: `REFBRIDGE_MIRROR_GITHUB_TOKEN` / `REFBRIDGE_MIRROR_GITLAB_TOKEN`
 * when set (a bot's token, the recommended set-up), else the admin `GITHUB_TOKEN` /
 * `GITLAB_TOKEN` that bootstrap itself uses.
 */

async function info(forge: Forge): Promise<TokenInfo | Error> {
  try {
    return await forge.tokenInfo();
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** A `write_repository`-only GitLab token may not read `/user`; its scopes are still readable. */
async function gitlabMirrorInfo(
  forge: Forge,
  options: { token: string; adminToken: string; shell: Shell },
): Promise<TokenInfo | Error> {
  const first = await info(forge);
  if (!(first instanceof ForgeApiError) || first.status !== 403) return first;
  try {
    return (
      (await gitlabTokenInfoWithoutReadUser({
        apiUrl: forge.apiUrl,
        token: options.token,
        adminToken: options.adminToken,
        masker: options.shell.masker,
      })) ?? first
    );
  } catch (error) {
    return error instanceof Error ? error : first;
  }
}

export async function runBootstrap(io: CliIo, flags: BootstrapFlags): Promise<number> {
  const shell = createShell(io, flags);
  const concurrency = positiveInt('--concurrency', flags.concurrency, 32);
  const dryRun = flags.dryRun ?? false;
  const { config, pairs } = await loadPairs(io, flags);
  const tokens = requireTokens(shell, ['GITHUB_TOKEN', 'GITLAB_TOKEN']);
  const mirrorEnv = {
    github: io.env[MIRROR_TOKEN_ENV.github]?.trim() ? MIRROR_TOKEN_ENV.github : 'GITHUB_TOKEN',
    gitlab: io.env[MIRROR_TOKEN_ENV.gitlab]?.trim() ? MIRROR_TOKEN_ENV.gitlab : 'GITLAB_TOKEN',
  };
  const mirror = {
    github: io.env[mirrorEnv.github]?.trim() ?? tokens.GITHUB_TOKEN,
    gitlab: io.env[mirrorEnv.gitlab]?.trim() ?? tokens.GITLAB_TOKEN,
  };
  shell.masker.add(mirror.github);
  shell.masker.add(mirror.gitlab);

  const github = await githubForge(shell, config, tokens.GITHUB_TOKEN);
  const gitlab = await gitlabForge(shell, config, tokens.GITLAB_TOKEN);
  const mirrorGithub = mirror.github === tokens.GITHUB_TOKEN ? github : await githubForge(shell, config, mirror.github);
  const mirrorGitlab = mirror.gitlab === tokens.GITLAB_TOKEN ? gitlab : await gitlabForge(shell, config, mirror.gitlab);

  // Before anything changes: every token, every missing scope, reported together.
  const [ghInfo, glInfo, ghMirrorInfo, glMirrorInfo] = await Promise.all([
    info(github),
    info(gitlab),
    mirrorGithub === github ? undefined : info(mirrorGithub),
    mirrorGitlab === gitlab
      ? undefined
      : gitlabMirrorInfo(mirrorGitlab, { token: mirror.gitlab, adminToken: tokens.GITLAB_TOKEN, shell }),
  ]);
  const checks: TokenCheck[] = [
    { platform: 'github', role: 'admin', envName: 'GITHUB_TOKEN', info: ghInfo },
    { platform: 'gitlab', role: 'admin', envName: 'GITLAB_TOKEN', info: glInfo },
  ];
  if (ghMirrorInfo !== undefined)
    checks.push({ platform: 'github', role: 'mirror', envName: mirrorEnv.github, info: ghMirrorInfo });
  if (glMirrorInfo !== undefined)
    checks.push({ platform: 'gitlab', role: 'mirror', envName: mirrorEnv.gitlab, info: glMirrorInfo });
  const report = checkTokenScopes(checks, { githubPublicOnly: config.bootstrap.github.visibility === 'public' });
  const unmaskable = maskingProblems(mirror.github);
  if (unmaskable.length > 0) {
    report.problems.push(
      `${mirrorEnv.github} cannot be stored in GitLab as a masked variable (${unmaskable.join('; ')}), and unmasked it would show in job logs`,
    );
  }
  for (const note of report.notes) shell.logger.warn(`refbridge bootstrap: ${note}`);
  if (report.problems.length > 0) {
    printTokenProblems(shell, report.problems, dryRun);
    return ExitCode.usage;
  }

  const login = (i: TokenInfo | Error | undefined): string | undefined =>
    i instanceof Error ? undefined : i?.login || undefined;
  // Pushes mirrored INTO GitHub are made with the GitHub mirror token, so its user is the bot the
  // GitHub workflow skips. Only a dedicated mirror token names a bot: when the admin's own token
  // is stored, skipping its user would stop mirroring that person's own pushes (loops still end,
  // at the first no-op).
  const botUsers = {
    github: config.botUsers.github ?? login(ghMirrorInfo),
    gitlab: config.botUsers.gitlab ?? login(glMirrorInfo),
  };
  const templates = {
    githubWorkflow: await readTemplate('github-mirror.yml'),
    gitlabCi: await readTemplate('gitlab-mirror.yml'),
  };
  const readers = {
    github: githubSettingsReader({ apiUrl: github.apiUrl, token: tokens.GITHUB_TOKEN, masker: shell.masker }),
    gitlab: gitlabSettingsReader({ apiUrl: gitlab.apiUrl, token: tokens.GITLAB_TOKEN, masker: shell.masker }),
  };
  const adminScopes = ghInfo instanceof Error ? undefined : ghInfo.scopes;

  const started = Date.now();
  const results = await mapLimit(pairs, concurrency, (pair) =>
    bootstrapPair({
      pair,
      endpoints: { github: config.github, gitlab: config.gitlab },
      settings: config.bootstrap,
      github: {
        forge: github,
        reader: readers.github,
        mirrorToken: mirror.github,
        botUser: botUsers.github,
        adminScopes,
      },
      gitlab: { forge: gitlab, reader: readers.gitlab, mirrorToken: mirror.gitlab, botUser: botUsers.gitlab },
      git: shell.git,
      logger: shell.logger,
      templates,
      dryRun,
    }),
  );
  const code = exitCodeFor(results);
  printResults(shell, results, dryRun, code, Date.now() - started);
  return code;
}

function printTokenProblems(shell: Shell, problems: readonly string[], dryRun: boolean): void {
  const { io, masker } = shell;
  if (shell.json) {
    printJson(shell, { dryRun, exitCode: ExitCode.usage, problems, pairs: [] });
    return;
  }
  io.stderr(
    masker.mask(
      `refbridge bootstrap: the tokens cannot do everything bootstrap needs; nothing was changed:\n${problems.map((p) => `  - ${p}\n`).join('')}  hint: add the scopes (GitHub: Settings > Developer settings > Personal access tokens; GitLab: User settings > Access tokens) or use other tokens, then run again\n`,
    ),
  );
}

const STATUS_TEXT: Record<PairBootstrapResult['status'], string> = {
  'set-up': 'set up',
  'already-set-up': 'already set up',
  planned: 'planned',
  diverged: 'DIVERGED',
  failed: 'FAILED',
};

function printResults(
  shell: Shell,
  results: readonly PairBootstrapResult[],
  dryRun: boolean,
  code: number,
  ms: number,
): void {
  const blocks = results.map((r) => {
    let block = `${r.pair}: GitHub ${r.github} <-> GitLab ${r.gitlab}\n`;
    const shown = r.steps.map((s) => [
      s.side === 'github' ? 'GitHub' : 'GitLab',
      s.item,
      statusTag(s.status, dryRun),
      s.detail,
    ]);
    if (shown.length > 0) block += indent(table(['side', 'item', 'status', 'detail'], shown));
    if (r.error) block += `  FAILED: ${r.error.replace(/\n/g, '\n  ')}\n`;
    else if (r.status === 'already-set-up') block += '  already set up: nothing to change\n';
    return block;
  });
  const count = (status: PairBootstrapResult['status']): number => results.filter((r) => r.status === status).length;
  const parts = (['set-up', 'already-set-up', 'planned', 'diverged', 'failed'] as const)
    .filter((s) => count(s) > 0)
    .map((s) => `${count(s)} ${STATUS_TEXT[s].toLowerCase()}`);
  printSummary(shell, {
    json: () => ({ dryRun, exitCode: code, durationMs: ms, pairs: results }),
    // An empty line between the pairs' blocks (and, from printSummary, before the table).
    details: blocks.join('\n'),
    headers: ['pair', 'status', dryRun ? 'planned' : 'changed', 'CI commit'],
    rows: results.map((r) => [
      r.pair,
      STATUS_TEXT[r.status],
      String(r.steps.filter((s) => s.status === 'done' || s.status === 'planned').length),
      r.commit ? r.commit.slice(0, 12) : '-',
    ]),
    closing: `${results.length} pair(s): ${parts.join(', ')} in ${(ms / 1000).toFixed(1)} s${dryRunNote(dryRun)}`,
  });
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
}
