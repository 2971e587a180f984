import type { Command } from 'commander';
import type { CliIo } from '../program.js';

export interface MirrorFlags {
  sourceUrl?: string;
  targetUrl?: string;
  sourceTokenEnv?: string;
  targetTokenEnv?: string;
  ref?: string;
  before?: string;
  after?: string;
  workdir?: string;
  deletions: string;
  lfs?: string;
  force?: boolean;
  skipCi?: boolean;
  botUser?: string;
  dryRun?: boolean;
  json?: boolean;
  verbose?: boolean;
}

export function registerMirror(program: Command, io: CliIo, setExit: (code: number) => void): void {
  program
    .command('mirror')
    .description(
      'Mirror the ref that triggered this CI job to the other forge (the CI fast path). Detects GitLab CI and GitHub Actions; elsewhere pass the flags.',
    )
    .option('--source-url <url>', 'clone URL of the repo the push happened on (default: from the CI environment)')
    .option(
      '--target-url <url>',
      'clone URL of the mirror (default: GitLab CI -> $GITHUB_URL/$GITHUB_REPO; GitHub Actions -> $GITLAB_URL/$GITLAB_REPO)',
    )
    .option(
      '--source-token-env <name>',
      'environment variable holding the source token (default: CI_JOB_TOKEN on GitLab, GITHUB_TOKEN on GitHub)',
    )
    .option(
      '--target-token-env <name>',
      'environment variable holding the target token (default: GITHUB_TOKEN on GitLab, GITLAB_TOKEN on GitHub)',
    )
    .option('--ref <ref>', 'full ref name, e.g. refs/heads/main (default: from the CI environment)')
    .option(
      '--before <sha>',
      "the ref's previous value on the source (default: CI_COMMIT_BEFORE_SHA / the event's before)",
    )
    .option('--after <sha>', "the ref's new value; all zeros deletes (default: CI_COMMIT_SHA / the event's after)")
    .option('--workdir <dir>', 'the checkout (default: CI_PROJECT_DIR / GITHUB_WORKSPACE / the current directory)')
    .option('--deletions <policy>', 'propagate or ignore deletions', 'propagate')
    .option(
      '--force',
      'allow rewriting the target when the source was force-pushed (only if the target still has the old tip)',
    )
    .option(
      '--lfs <policy>',
      'refs whose files use Git LFS: fail (refbridge copies no LFS objects) or pointers (push the pointer files and warn) (default: $REFBRIDGE_LFS, else fail)',
    )
    .option('--skip-ci', 'send the ci.skip push option (GitLab targets start no pipeline)')
    .option('--bot-user <login>', 'skip pushes made by this user (default: $MIRROR_BOT_USER)')
    .option('--dry-run', 'print what would happen and change nothing')
    .option('--json', 'print the result as JSON on stdout')
    .option('-v, --verbose', 'log every git command (tokens masked)')
    .action(async (flags: MirrorFlags) => {
      // Loaded only now: the CI fast path loads the git runner and mirrorRef, nothing else.
      const { runMirror } = await import('./mirror-run.js');
      setExit(await runMirror(io, flags));
    });
}
