import type { SeedSpec } from '../test/forge/src/seed.js';

/**
 * The little world the demo plays in: who exists on the local GitHub and GitLab, their tokens,
 * and the refbridge.yaml an admin would write for it. Every token here is fake and only valid
 * on the demo's own forge, which lives for one run on 127.0.0.1.
 */

export const TOKENS = {
  /** alice: an admin of the GitHub org acme; bootstrap, sync and backup run with her token. */
  githubAdmin: 'ghp_demoFAKEtokenAliceAdmin0000000000000',
  /** refbridge-bot's GitHub token: stored in GitLab for the GitLab job to push with. */
  githubBot: 'ghp_demoFAKEtokenMirrorBot00000000000000',
  /** What the runner hands the Action as `github.token` (reads the repo the workflow runs in). */
  githubRunner: 'ghs_demoFAKEtokenActionsRunner0000000000',
  /** carol: owner of the GitLab group acme. */
  gitlabAdmin: 'glpat-demoFAKEtokenCarolAdmin00',
  /** refbridge-bot's GitLab token: stored on GitHub for the Action to push with. */
  gitlabBot: 'glpat-demoFAKEtokenMirrorBot000',
  /** The job token GitLab gives each CI job (read access to its own project). */
  gitlabJob: 'glcbt-demoFAKEtokenCiJob0000000',
} as const;

export const ALL_TOKENS: readonly string[] = Object.values(TOKENS);

export const BOT = 'refbridge-bot';

const widgetsFiles = {
  'README.md': '# widgets\n\nThe widget library.\n',
  'src/widget.txt': 'a widget\n',
};

export const SEED: SeedSpec = {
  github: {
    users: [{ login: 'alice', name: 'Alice Example', email: 'alice@example.com' }, BOT, 'github-actions'],
    orgs: [{ login: 'acme', members: ['alice', BOT, 'github-actions'] }],
    repos: [
      {
        owner: 'acme',
        name: 'widgets',
        private: true,
        description: 'Widgets: on GitHub first',
        files: widgetsFiles,
        history: 4,
        branches: { develop: { files: { 'src/next.txt': 'the next widget\n' }, message: 'Start the next widget' } },
        tags: [{ name: 'v1.0.0', message: 'Release 1.0.0' }],
        // A pull request's ref: GitHub refuses pushes to it, so sync leaves it alone; backup keeps it.
        refs: { 'refs/pull/1/head': 'develop' },
      },
      {
        owner: 'acme',
        name: 'gadgets',
        private: true,
        description: 'Gadgets: on GitHub first',
        files: { 'README.md': '# gadgets\n' },
        history: 2,
      },
    ],
  },
  gitlab: {
    users: [{ login: 'carol', name: 'Carol Example' }, BOT, 'gitlab-ci-token'],
    // The bot is a maintainer: GitLab lets only maintainers push to the protected default branch.
    groups: [{ path: 'acme', members: { carol: 50, [BOT]: 40, 'gitlab-ci-token': 20 } }],
    projects: [
      {
        path: 'acme/tools',
        name: 'tools',
        files: { 'README.md': '# tools\n\nBuild tools: on GitLab first.\n' },
        history: 3,
        tags: [{ name: 'v0.1.0' }],
      },
    ],
  },
  tokens: [
    { value: TOKENS.githubAdmin, platform: 'github', user: 'alice', scopes: ['repo', 'workflow', 'read:org'] },
    { value: TOKENS.githubBot, platform: 'github', user: BOT, scopes: ['repo', 'workflow'] },
    { value: TOKENS.githubRunner, platform: 'github', user: 'github-actions', scopes: ['repo'] },
    { value: TOKENS.gitlabAdmin, platform: 'gitlab', user: 'carol', scopes: ['api'] },
    { value: TOKENS.gitlabBot, platform: 'gitlab', user: BOT, scopes: ['write_repository'] },
    // GitLab's job token authenticates as "gitlab-ci-token"; the forge models it as that user.
    { value: TOKENS.gitlabJob, platform: 'gitlab', user: 'gitlab-ci-token', scopes: ['read_repository'] },
  ],
};

/** The config an admin writes: two repos that start on GitHub, one that starts on GitLab. */
export function demoConfig(urls: { githubWeb: string; githubApi: string; gitlabWeb: string }): string {
  return `# refbridge.yaml for the demo: the forge's local URLs instead of github.com and gitlab.com.
github:
  url: ${urls.githubWeb}
  apiUrl: ${urls.githubApi}
gitlab:
  url: ${urls.gitlabWeb}
defaults:
  divergence: halt-ref # a diverged ref stops; the other refs of the pair still sync
pairs:
  - github: acme/widgets
    gitlab: acme/widgets
  - github: acme/gadgets
    gitlab: acme/gadgets
  - github: acme/tools # exists only on GitLab so far: bootstrap creates it on GitHub
    gitlab: acme/tools
`;
}

export const PAIRS = [
  { name: 'widgets', github: 'acme/widgets', gitlab: 'acme/widgets' },
  { name: 'gadgets', github: 'acme/gadgets', gitlab: 'acme/gadgets' },
  { name: 'tools', github: 'acme/tools', gitlab: 'acme/tools' },
] as const;
