/**
 * The JSON Schema of `refbridge.yaml`. One object serves two readers: `loadConfig` validates with it
 * (through ajv), and `scripts/write-config-schema.mjs` writes it to
 * `packages/cli/schema/refbridge.schema.json` for editor completion; a test keeps the two equal.
 *
 * Draft-07 because it is the draft every editor integration (yaml-language-server, VS Code) fully
 * understands. `additionalProperties: false` everywhere: a misspelt key must be an error, never a
 * setting silently ignored. The `pattern`s are there for editors; the loader reports the same rules
 * with a precise reason instead of "does not match pattern" (a test keeps both in agreement).
 */

/** The policy a pair gets when neither `defaults` nor the pair says otherwise. */
export const builtinPolicy = {
  divergence: 'halt-ref',
  deletions: 'propagate',
  rewrites: 'deny',
  refs: { branches: true, tags: true, include: [] as string[], exclude: [] as string[] },
  protectedBranches: { temporarilyAllowForcePush: false },
  pushOptions: { gitlabCiSkip: false },
  lfs: 'fail',
} as const;

export const builtinBootstrap = {
  github: { visibility: 'private' },
  gitlab: { visibility: 'private', protectVariables: false },
} as const;

/** What the committed CI files reference unless `bootstrap` says otherwise (as in ci-templates/). */
export const defaultGithubAction = 'refbridge/refbridge@v1';
export const defaultGitlabComponent = '$CI_SERVER_FQDN/refbridge/refbridge/mirror@0.1.0';

const actionRefPart = '[A-Za-z0-9_][A-Za-z0-9._-]*';
/**
 * `owner/repo@ref` or `owner/repo/path@ref`, as `uses:` takes it; `ref` a tag, branch or full
 * commit SHA. See `checkGithubActionRef` in config.ts for the same rules spelled out.
 */
export const githubActionPattern =
  '^[A-Za-z0-9][A-Za-z0-9_-]{0,38}/(?!\\.\\.?[/@])[A-Za-z0-9._-]{1,100}(?:/(?!\\.\\.?[/@])[A-Za-z0-9._-]{1,255})*' +
  `@(?!.*\\.\\.)(?!.*\\.$)${actionRefPart}(?:/${actionRefPart})*$`;

/** `<host>/<project path>/<component>@<version>`; see `checkGitlabComponent` in config.ts. */
export const gitlabComponentPattern = '^[A-Za-z0-9$_{}.:-]+(?:/[A-Za-z0-9_.-]+){3,}@[A-Za-z0-9_.~-]+$';

export const defaultGithubUrl = 'https://github.com';
export const defaultGitlabUrl = 'https://gitlab.com';

/** `owner/name`; see `checkGithubRepo` in config.ts for the same rules spelled out. */
export const githubRepoPattern = '^[A-Za-z0-9][A-Za-z0-9_-]{0,38}/(?!\\.\\.?$)(?!.*\\.git$)[A-Za-z0-9._-]{1,100}$';

const gitlabSegment = '(?!\\.\\.?(?:/|$))(?![^/]*\\.(?:git|atom)(?:/|$))[A-Za-z0-9._][A-Za-z0-9._-]{0,254}';
/** `group(/subgroup)*\/project`, at most 20 levels of subgroups. */
export const gitlabPathPattern = `^(?:${gitlabSegment}/){1,21}${gitlabSegment}$`;

/**
 * Pair names become file names and ref name components (locks, the daemon's cache), hence the
 * narrow alphabet and git's rules: no leading ".", no "..", no trailing "." or ".lock".
 */
export const pairNamePattern = '^(?!.*\\.\\.)(?!.*\\.lock$)(?!.*\\.$)[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$';

const refGlobs = (what: string) => ({
  type: 'array',
  description: what,
  items: {
    type: 'string',
    minLength: 1,
    description: 'A glob over short ref names such as `main`, `release/*` or `v*`.',
  },
  default: [],
});

const refsSchema = {
  type: 'object',
  description:
    "Which branches and tags to sync. A pair's `refs` override the defaults key by key (a list replaces the default list). Hidden refs (`refs/pull/*`, `refs/merge-requests/*`) are never synced.",
  additionalProperties: false,
  properties: {
    branches: {
      type: 'boolean',
      description: 'Sync branches (`refs/heads/*`).',
      default: builtinPolicy.refs.branches,
    },
    tags: { type: 'boolean', description: 'Sync tags (`refs/tags/*`).', default: builtinPolicy.refs.tags },
    include: refGlobs(
      'Sync only the refs whose short name (`main`, `release/1.2`, `v1.0.0`) matches one of these globs. Empty: every branch and tag.',
    ),
    exclude: refGlobs('Never sync the refs whose short name matches one of these globs; wins over `include`.'),
  },
};

/** Keys allowed both under `defaults` and on each pair. */
const policyProperties = {
  divergence: {
    description:
      'What to stop when GitHub and GitLab moved one ref to different commits since they last agreed. `halt-ref`: leave that ref alone on both sides, report it with both tips and exit 3, keep syncing the other refs. `halt-pair`: sync nothing more for the pair until it is repaired (what the original daemon did).',
    enum: ['halt-ref', 'halt-pair'],
    default: builtinPolicy.divergence,
  },
  deletions: {
    description:
      'A branch or tag deleted on one side. `propagate`: delete it on the other side too (only on an explicit delete event or from a complete ref listing, never from a partial view). `ignore`: keep it there.',
    enum: ['propagate', 'ignore'],
    default: builtinPolicy.deletions,
  },
  rewrites: {
    description:
      'A ref moved to a commit that does not contain its previous tip (force push, rebase, moved tag). `deny`: report it and leave the other side as it is. `allow`: replay it on the other side with `--force-with-lease`, after saving the old tip.',
    enum: ['allow', 'deny'],
    default: builtinPolicy.rewrites,
  },
  refs: refsSchema,
  protectedBranches: {
    type: 'object',
    description: 'How to treat branch protection on the target side.',
    additionalProperties: false,
    properties: {
      temporarilyAllowForcePush: {
        type: 'boolean',
        description:
          'When branch protection refuses a rewrite or deletion that the policy allows, enable "allow force push" for that one push and restore it right after, logging both changes. Off: report the blocking rule and leave protection alone.',
        default: builtinPolicy.protectedBranches.temporarilyAllowForcePush,
      },
    },
  },
  pushOptions: {
    type: 'object',
    description: 'Push options sent with pushes to the target.',
    additionalProperties: false,
    properties: {
      gitlabCiSkip: {
        type: 'boolean',
        description:
          'Push to GitLab with `-o ci.skip`, so mirrored commits start no branch pipeline. Off by default: most teams want GitLab pipelines on mirrored commits.',
        default: builtinPolicy.pushOptions.gitlabCiSkip,
      },
    },
  },
  lfs: {
    description:
      "Refs whose root `.gitattributes` stores files with Git LFS (`filter=lfs`, as `git lfs track` writes). refbridge copies git objects only, never LFS objects. `fail`: do not push such a ref, report it as failed (exit 1) with what to do; the pair's other refs still sync. `pointers`: push the git data, pointer files included, and warn every time; copy the LFS objects yourself (`git lfs fetch --all <source>`, `git lfs push --all <target>`). REFBRIDGE_LFS in the environment overrides this for every pair.",
    enum: ['fail', 'pointers'],
    default: builtinPolicy.lfs,
  },
};

const pairSchema = {
  type: 'object',
  description: 'One GitHub repository and one GitLab project kept in step. Any key of `defaults` can be set here too.',
  additionalProperties: false,
  required: ['github', 'gitlab'],
  properties: {
    name: {
      type: 'string',
      description:
        'Name of the pair in logs, reports, locks and the daemon cache: letters, digits, `.`, `_`, `-`, not starting with `.` or `-`. Default: the GitHub repository name without leading dots (`.github` -> `github`). Must be unique.',
      pattern: pairNamePattern,
    },
    github: {
      type: 'string',
      description: 'The GitHub repository as `owner/name`.',
      examples: ['acme/widgets'],
      pattern: githubRepoPattern,
    },
    gitlab: {
      type: 'string',
      description: 'The GitLab project as its full path: `group/project`, `group/subgroup/project`, ...',
      examples: ['platform/tools/widgets'],
      pattern: gitlabPathPattern,
    },
    ...policyProperties,
  },
};

const pairList = (description: string) => ({
  type: 'array',
  description,
  minItems: 1,
  items: { $ref: '#/definitions/pair' },
});

const visibility = (values: string[], description: string) => ({
  description,
  enum: values,
  default: 'private',
});

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'refbridge configuration',
  description:
    'refbridge.yaml: the GitHub and GitLab instances, the repository pairs to keep in step and how. Tokens never go here: they come from GITHUB_TOKEN and GITLAB_TOKEN in the environment.',
  type: 'object',
  additionalProperties: false,
  patternProperties: {
    '^x-': {
      description:
        'Free for your own use and ignored by refbridge, e.g. to hold `&anchors` that pairs merge with `<<: *name`.',
    },
  },
  properties: {
    $schema: {
      type: 'string',
      description: 'Where editors find this schema. refbridge ignores it.',
    },
    github: {
      type: 'object',
      description:
        'The GitHub instance. GitHub Enterprise works by URL alone. GITHUB_SERVER_URL / GITHUB_API_URL in the environment override this section.',
      additionalProperties: false,
      properties: {
        url: {
          type: 'string',
          description: 'Web and git base URL, e.g. `https://github.example.com`.',
          default: defaultGithubUrl,
        },
        apiUrl: {
          type: 'string',
          description:
            'REST API base URL. Default: `https://api.github.com` for github.com, `https://api.<name>.ghe.com` for GHE.com, else `<url>/api/v3`.',
        },
      },
    },
    gitlab: {
      type: 'object',
      description:
        'The GitLab instance. Self-managed GitLab works by URL alone. GITLAB_URL / GITLAB_API_URL in the environment override this section.',
      additionalProperties: false,
      properties: {
        url: {
          type: 'string',
          description: 'Web and git base URL, e.g. `https://gitlab.example.com`.',
          default: defaultGitlabUrl,
        },
        apiUrl: { type: 'string', description: 'REST API base URL. Default: `<url>/api/v4`.' },
      },
    },
    botUsers: {
      type: 'object',
      description:
        'The accounts refbridge pushes as. A push made by one of them is not mirrored back, which ends loops early. MIRROR_BOT_USER_GITHUB / MIRROR_BOT_USER_GITLAB override these.',
      additionalProperties: false,
      properties: {
        github: { type: 'string', minLength: 1, description: 'GitHub login of the mirror bot, e.g. `refbridge-bot`.' },
        gitlab: { type: 'string', minLength: 1, description: 'GitLab username of the mirror bot.' },
      },
    },
    defaults: {
      type: 'object',
      description: 'Policies for every pair; each pair can override any of them.',
      additionalProperties: false,
      properties: policyProperties,
    },
    pairs: pairList('The repository pairs to keep in step.'),
    repos: pairList('The same as `pairs`, in the form of the original `repos.yaml`. Use one of the two.'),
    bootstrap: {
      type: 'object',
      description: 'Used by `refbridge bootstrap` when it creates missing repositories and sets their CI variables.',
      additionalProperties: false,
      properties: {
        github: {
          type: 'object',
          additionalProperties: false,
          properties: {
            visibility: visibility(
              ['private', 'internal', 'public'],
              'Visibility of GitHub repositories it creates. `internal` needs an Enterprise organization.',
            ),
            action: {
              type: 'string',
              description:
                'The refbridge Action the committed workflow runs (`uses:`), as `owner/repo@ref` or `owner/repo/path@ref`; `ref` is a tag, a branch or a full commit SHA. For GitHub Enterprise instances that mirror actions under another organization, or to pin a SHA. Changing it makes the next bootstrap run update the workflow.',
              examples: [defaultGithubAction, 'actions-mirror/refbridge@0123456789abcdef0123456789abcdef01234567'],
              default: defaultGithubAction,
              pattern: githubActionPattern,
            },
          },
        },
        gitlab: {
          type: 'object',
          additionalProperties: false,
          properties: {
            visibility: visibility(['private', 'internal', 'public'], 'Visibility of GitLab projects it creates.'),
            protectVariables: {
              type: 'boolean',
              description:
                'Create the CI/CD variables as protected. Protected variables reach only jobs on protected branches and tags, so mirroring other branches would fail.',
              default: builtinBootstrap.gitlab.protectVariables,
            },
            include: {
              type: 'object',
              description:
                "The `include:` entry the committed `.gitlab-ci.yml` gets: either `component:` (a CI/CD catalog component address) or, on instances without the catalog, `project:` + `ref:` + `file:` (the mirror template from a project on your instance). When set, bootstrap keeps refbridge's entry in an existing `.gitlab-ci.yml` equal to it, replacing a different one instead of adding a second. Default: `component: " +
                defaultGitlabComponent +
                '`.',
              additionalProperties: false,
              examples: [
                { component: '$CI_SERVER_FQDN/tools/refbridge/mirror@0.1.0' },
                { project: 'tools/refbridge', ref: 'v0.1.0', file: 'templates/mirror.yml' },
              ],
              properties: {
                component: {
                  type: 'string',
                  description:
                    'Component address `<host>/<project path>/<component>@<version>`, e.g. `$CI_SERVER_FQDN/tools/refbridge/mirror@0.1.0`.',
                  pattern: gitlabComponentPattern,
                },
                project: {
                  type: 'string',
                  description: 'Full path of the project holding the mirror template, e.g. `tools/refbridge`.',
                  pattern: gitlabPathPattern,
                },
                ref: {
                  type: 'string',
                  description:
                    "Tag, branch or commit SHA of that project to include from. Default: the project's default branch.",
                  minLength: 1,
                },
                file: {
                  type: 'string',
                  description:
                    'Path of the template in that project, ending in `.yml` or `.yaml`, e.g. `templates/mirror.yml`.',
                  minLength: 1,
                },
              },
            },
          },
        },
      },
    },
  },
  definitions: {
    pair: pairSchema,
  },
};
