import * as core from '@actions/core';
import * as github from '@actions/github';
import { GitRunner, RefbridgeError, SecretMasker, createLogger, mirrorRef, type MirrorResult } from '@refbridge/core';
import { readInputs } from './inputs.js';
import { readEvent } from './event.js';

/**
 * The Action's entry: inputs -> core -> outputs. Everything that can fail fails the step with a
 * message that says what to do; nothing leaves a token behind.
 */
export async function run(): Promise<void> {
  const started = Date.now();
  try {
    const env = process.env;
    // context.repo throws without GITHUB_REPOSITORY; an empty default lets the input check report it.
    const inputs = readInputs(env['GITHUB_REPOSITORY'] ?? '');
    const masker = new SecretMasker();
    masker.onSecret((s) => core.setSecret(s));
    masker.add(inputs.gitlabToken);
    masker.add(inputs.githubToken);
    const logger = createLogger({
      masker,
      level: core.isDebug() ? 'debug' : 'info',
      write: (level, line) =>
        level === 'debug'
          ? core.debug(line)
          : level === 'warn'
            ? core.warning(line)
            : level === 'error'
              ? core.error(line)
              : core.info(line),
    });

    const event = readEvent(github.context);
    if (event.kind === 'ignored') {
      core.info(`refbridge: nothing to mirror (${event.reason})`);
      setOutputs('skipped', '');
      return;
    }
    if (inputs.botUser && github.context.actor.toLowerCase() === inputs.botUser.toLowerCase()) {
      core.info(`refbridge: the push was made by the mirror bot ${inputs.botUser}; skipping so mirrors never loop`);
      setOutputs('skipped', '');
      await summary(event.ref, event.before, event.after, 'skipped (bot push)', started);
      return;
    }

    const serverUrl = (env['GITHUB_SERVER_URL'] ?? 'https://github.com').replace(/\/+$/, '');
    const sourceUrl = `${serverUrl}/${env['GITHUB_REPOSITORY'] ?? ''}.git`;
    const gitlabBase = inputs.gitlabUrl.replace(/\/+$/, '');
    const targetUrl = `${gitlabBase}/${inputs.gitlabRepo}.git`;
    const result: MirrorResult = await mirrorRef({
      git: new GitRunner({ masker, logger }),
      logger,
      workdir: env['GITHUB_WORKSPACE'] ?? process.cwd(),
      source: {
        url: sourceUrl,
        credentials: inputs.githubToken
          ? [{ url: serverUrl, username: 'x-access-token', token: inputs.githubToken }]
          : [],
      },
      target: { url: targetUrl, credentials: [{ url: gitlabBase, username: 'oauth2', token: inputs.gitlabToken }] },
      ref: event.ref,
      ...(event.before === undefined ? {} : { before: event.before }),
      after: event.after,
      deletions: inputs.deletions,
      force: inputs.force,
      pushOptions: inputs.skipCi ? ['ci.skip'] : [],
      dryRun: inputs.dryRun,
      lfs: inputs.lfs,
    });
    setOutputs(result.result, result.targetAfter ?? '');
    core.info(`refbridge: ${event.ref}: ${result.result}${result.dryRun ? ' (dry run)' : ''}: ${result.message}`);
    await summary(event.ref, event.before, event.after, result.result + (result.dryRun ? ' (dry run)' : ''), started);
    if (result.result === 'diverged') {
      core.setFailed(`refbridge: ${result.message}${result.repair ? `\n  repair: ${result.repair}` : ''}`);
    }
  } catch (error) {
    core.setFailed(
      error instanceof RefbridgeError ? error.describe() : error instanceof Error ? error.message : String(error),
    );
  }
}

function setOutputs(result: string, targetSha: string): void {
  core.setOutput('result', result);
  core.setOutput('target-sha', targetSha);
}

async function summary(
  ref: string,
  before: string | undefined,
  after: string,
  action: string,
  started: number,
): Promise<void> {
  if (!process.env['GITHUB_STEP_SUMMARY']) return;
  await core.summary
    .addHeading('refbridge mirror', 3)
    .addTable([
      [
        { data: 'ref', header: true },
        { data: 'before', header: true },
        { data: 'after', header: true },
        { data: 'action', header: true },
        { data: 'time', header: true },
      ],
      [
        ref,
        before ? before.slice(0, 12) : '',
        after.slice(0, 12),
        action,
        `${((Date.now() - started) / 1000).toFixed(1)} s`,
      ],
    ])
    .write();
}

await run();
