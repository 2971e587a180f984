import * as core from '@actions/core';
import { ConfigError, lfsPolicies, type ConfigProblem, type LfsPolicy } from '@refbridge/core';

export interface ActionInputs {
  gitlabUrl: string;
  gitlabRepo: string;
  gitlabToken: string;
  githubToken: string;
  botUser: string;
  skipCi: boolean;
  deletions: 'propagate' | 'ignore';
  force: boolean;
  dryRun: boolean;
  lfs: LfsPolicy;
}

/**
 * Reads every input once and reports all problems together, naming each input as it is spelled
 * in the workflow file.
 */
export function readInputs(defaultRepo: string): ActionInputs {
  const problems: ConfigProblem[] = [];
  const source = 'action inputs';
  const text = (name: string): string => core.getInput(name).trim();
  const bool = (name: string): boolean => {
    const v = text(name).toLowerCase();
    if (v === '' || v === 'false') return false;
    if (v === 'true') return true;
    problems.push({ source, key: name, message: `must be true or false, got "${v}"` });
    return false;
  };

  const gitlabToken = text('gitlab-token');
  if (!gitlabToken) {
    problems.push({
      source,
      key: 'gitlab-token',
      message: 'Input required and not supplied: gitlab-token',
      hint: 'add `gitlab-token: ${{ secrets.GITLAB_TOKEN }}` under `with:`',
    });
  } else {
    core.setSecret(gitlabToken);
  }
  const githubToken = text('github-token');
  if (githubToken) core.setSecret(githubToken);

  const gitlabUrl = text('gitlab-url') || 'https://gitlab.com';
  try {
    const u = new URL(gitlabUrl);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
    if (u.username || u.password) {
      problems.push({
        source,
        key: 'gitlab-url',
        message: 'must not contain credentials',
        hint: 'pass the token as gitlab-token',
      });
    }
  } catch {
    problems.push({ source, key: 'gitlab-url', message: `"${gitlabUrl}" is not an http(s) URL` });
  }

  const gitlabRepo = (text('gitlab-repo') || defaultRepo).replace(/^\/+|\/+$/g, '');
  if (!/^[\w.-]+(\/[\w.-]+)+$/.test(gitlabRepo) || gitlabRepo.split('/').some((s) => s === '.' || s === '..')) {
    problems.push({
      source,
      key: 'gitlab-repo',
      message: `"${gitlabRepo}" is not a GitLab project path`,
      hint: 'use group/project or group/subgroup/project',
    });
  }

  const deletionsRaw = text('deletions') || 'propagate';
  if (deletionsRaw !== 'propagate' && deletionsRaw !== 'ignore') {
    problems.push({ source, key: 'deletions', message: `must be propagate or ignore, got "${deletionsRaw}"` });
  }

  const lfsRaw = text('lfs') || 'fail';
  const lfs = lfsPolicies.find((p) => p === lfsRaw);
  if (lfs === undefined) {
    problems.push({
      source,
      key: 'lfs',
      message: `must be ${lfsPolicies.join(' or ')}, got "${lfsRaw}"`,
      hint: 'fail refuses to mirror refs that use Git LFS; pointers mirrors their git data and warns',
    });
  }

  const inputs: ActionInputs = {
    gitlabUrl,
    gitlabRepo,
    gitlabToken,
    githubToken,
    botUser: text('bot-user'),
    skipCi: bool('skip-ci'),
    deletions: deletionsRaw === 'ignore' ? 'ignore' : 'propagate',
    force: bool('force'),
    dryRun: bool('dry-run'),
    lfs: lfs ?? 'fail',
  };
  if (problems.length > 0)
    throw new ConfigError(problems, 'fix the `with:` block of the refbridge step in your workflow');
  return inputs;
}
