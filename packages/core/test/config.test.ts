import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  checkGithubRepo,
  checkGitlabProjectPath,
  checkPairName,
  defaultPairPolicy,
  deriveGithubApiUrl,
  loadConfig,
  parseConfig,
  renderStarterConfig,
  type ConfigEnv,
  type RefbridgeConfig,
} from '../src/config.js';
import { configSchema, githubRepoPattern, gitlabPathPattern, pairNamePattern } from '../src/config-schema.js';
import { ConfigError, ExitCode, type ConfigProblem } from '../src/errors.js';
import { repoRoot } from '../../../test/support/paths.js';
import { tempDir } from '../../../test/support/temp.js';

const fixtures = join(repoRoot, 'packages/core/test/fixtures/config');
const minimal = 'pairs:\n  - github: acme/widgets\n    gitlab: platform/widgets\n';

/** Runs `fn` and returns the ConfigError it throws; fails the test if it throws anything else. */
async function configError(fn: () => unknown): Promise<ConfigError> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

function problemsOf(text: string, env: ConfigEnv = {}): Promise<readonly ConfigProblem[]> {
  return configError(() => parseConfig(text, { source: 'refbridge.yaml', env })).then((e) => e.problems);
}

interface Expectation {
  line?: number;
  column?: number;
  key?: string;
  message: string;
  hint?: string;
}

/** `# expect: LINE:COL KEY MESSAGE | HINT`, with `-` for an absent line, column or key. */
function expectations(text: string): Expectation[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('# expect: '))
    .map((l) => {
      const m = /^# expect: (\d+|-):(\d+|-) (\S+) (.+?)(?: \| (.+))?$/.exec(l);
      if (!m) throw new Error(`malformed expectation: ${l}`);
      const [, line, column, key, message, hint] = m;
      return {
        ...(line === '-' ? {} : { line: Number(line) }),
        ...(column === '-' ? {} : { column: Number(column) }),
        ...(key === '-' ? {} : { key }),
        message: message as string,
        ...(hint === undefined ? {} : { hint }),
      };
    });
}

describe('the bad-config corpus', () => {
  it('has a case for each kind of mistake', async () => {
    const names = (await readdir(fixtures)).filter((n) => n.startsWith('bad-'));
    for (const kind of [
      'malformed-yaml',
      'duplicate-key',
      'empty',
      'top-level-list',
      'wrong-types',
      'unknown-keys',
      'duplicate-pairs',
      'invalid-names',
      'path-traversal',
      'token-key',
      'urls',
    ]) {
      expect(names).toContain(`bad-${kind}.yaml`);
    }
  });

  it.each([
    'bad-duplicate-key.yaml',
    'bad-duplicate-pairs.yaml',
    'bad-empty-pairs.yaml',
    'bad-empty.yaml',
    'bad-invalid-names.yaml',
    'bad-malformed-yaml.yaml',
    'bad-missing-required.yaml',
    'bad-multiple-documents.yaml',
    'bad-no-pairs.yaml',
    'bad-pairs-and-repos.yaml',
    'bad-path-traversal.yaml',
    'bad-refs.yaml',
    'bad-tab-indent.yaml',
    'bad-token-key.yaml',
    'bad-top-level-list.yaml',
    'bad-top-level-scalar.yaml',
    'bad-unknown-keys.yaml',
    'bad-urls.yaml',
    'bad-wrong-types.yaml',
  ])('%s fails with exactly the problems it lists', async (name) => {
    const path = join(fixtures, name);
    const expected = expectations(await readFile(path, 'utf8'));
    expect(expected.length).toBeGreaterThan(0);
    const error = await configError(() => loadConfig({ path, env: {} }));
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.problems.map((p) => p.source)).toEqual(expected.map(() => path));
    expect(error.problems.map(({ source: _source, ...rest }) => rest)).toEqual(expected);
    // Every line of the message names the file and, where there is one, line and column.
    for (const p of error.problems) {
      expect(error.message).toContain(`${path}${p.line === undefined ? '' : `:${p.line}:${p.column}`}:`);
    }
  });

  it('lists every bad fixture in the table above', async () => {
    const names = (await readdir(fixtures)).filter((n) => n.startsWith('bad-')).sort();
    expect(names).toHaveLength(19);
  });

  it('never repeats a secret from the file in its messages', async () => {
    for (const name of ['bad-token-key.yaml', 'bad-urls.yaml']) {
      const error = await configError(() => loadConfig({ path: join(fixtures, name) }));
      const text = error.describe() + JSON.stringify(error.problems);
      for (const secret of ['ghp_0123456789', 'hunter2', 'glpat-abcdef', 'secret-value', 'oauth2:']) {
        expect(text).not.toContain(secret);
      }
    }
  });
});

describe('a full config', () => {
  let config: RefbridgeConfig;

  it('resolves every key, with defaults and per-pair overrides', async () => {
    const path = join(fixtures, 'good-full.yaml');
    config = await loadConfig({ path, env: {} });
    expect(config.source).toBe(path);
    expect(config.github).toEqual({
      url: 'https://github.example.com',
      apiUrl: 'https://github.example.com/api/v3',
      origin: 'file',
    });
    expect(config.gitlab).toEqual({
      url: 'https://git.example.com/gitlab',
      apiUrl: 'https://git.example.com/gitlab/api/v4',
      origin: 'file',
    });
    expect(config.botUsers).toEqual({ github: 'refbridge-bot[bot]', gitlab: 'refbridge-bot' });
    expect(config.defaults).toEqual({
      divergence: 'halt-pair',
      deletions: 'propagate',
      rewrites: 'deny',
      refs: { branches: true, tags: true, include: [], exclude: ['wip/*', 'dependabot/*'] },
      protectedBranches: { temporarilyAllowForcePush: false },
      pushOptions: { gitlabCiSkip: true },
      lfs: 'fail',
    });
    expect(config.bootstrap).toEqual({
      github: { visibility: 'internal' },
      gitlab: { visibility: 'private', protectVariables: true },
    });

    const [widgets, dotGithub, gadgets] = config.pairs;
    expect(config.pairs).toHaveLength(3);
    expect(widgets).toEqual({
      name: 'widgets',
      github: { owner: 'acme', name: 'widgets', fullName: 'acme/widgets' },
      gitlab: { path: 'platform/tools/widgets', namespace: 'platform/tools', name: 'widgets' },
      policy: { ...config.defaults, deletions: 'ignore' },
      declaredAt: { source: path, key: 'pairs[0]', line: 29, column: 5 },
    });
    // `.github` repositories are common; the default name drops the dot a ref name cannot start with.
    expect(dotGithub?.name).toBe('github');
    expect(dotGithub?.policy).toEqual({
      ...config.defaults,
      rewrites: 'allow',
      protectedBranches: { temporarilyAllowForcePush: true },
      refs: { ...config.defaults.refs, exclude: [] },
    });
    // Keys merged in from an anchor (`<<: *release-only`) apply, and refs merge key by key.
    expect(gadgets?.name).toBe('Gadgets_2');
    expect(gadgets?.gitlab).toEqual({ path: 'a/b/c/d/gadgets', namespace: 'a/b/c/d', name: 'gadgets' });
    expect(gadgets?.policy).toEqual({
      ...config.defaults,
      divergence: 'halt-ref',
      refs: { branches: false, tags: true, include: ['v*'], exclude: ['wip/*', 'dependabot/*'] },
      pushOptions: { gitlabCiSkip: false },
    });
  });

  it('gives each pair its own policy objects', async () => {
    const c = await loadConfig({ path: join(fixtures, 'good-full.yaml') });
    expect(c.pairs[0]?.policy.refs.exclude).not.toBe(c.defaults.refs.exclude);
    expect(c.pairs[0]?.policy.refs.exclude).not.toBe(c.pairs[2]?.policy.refs.exclude);
  });
});

describe('the original repos.yaml form', () => {
  it('reads `repos:` as the pairs, with every default', async () => {
    const config = await loadConfig({ path: join(fixtures, 'good-repos-form.yaml') });
    expect(config.pairs.map((p) => [p.name, p.github.fullName, p.gitlab.path])).toEqual([
      ['a', 'org/a', 'group/a'],
      ['b', 'org/b', 'group/sub/b'],
    ]);
    expect(config.pairs[1]?.declaredAt.key).toBe('repos[1]');
    expect(config.pairs.every((p) => JSON.stringify(p.policy) === JSON.stringify(defaultPairPolicy()))).toBe(true);
    expect(config.github).toEqual({ url: 'https://github.com', apiUrl: 'https://api.github.com', origin: 'default' });
    expect(config.gitlab).toEqual({
      url: 'https://gitlab.com',
      apiUrl: 'https://gitlab.com/api/v4',
      origin: 'default',
    });
    expect(config.bootstrap).toEqual({
      github: { visibility: 'private' },
      gitlab: { visibility: 'private', protectVariables: false },
    });
  });
});

describe('environment overrides (environment > file > defaults)', () => {
  const file = `github:
  url: https://ghe.example.com
  apiUrl: https://ghe.example.com/api/v3
gitlab:
  url: https://gitlab.example.com
botUsers:
  github: file-bot
  gitlab: file-bot
${minimal}`;

  it('takes the URLs from the environment, each forge as a unit', () => {
    const c = parseConfig(file, {
      source: 'refbridge.yaml',
      env: { GITHUB_SERVER_URL: 'https://github.com', GITLAB_URL: 'http://127.0.0.1:8929/' },
    });
    // The file's GHE apiUrl must not survive next to the environment's github.com.
    expect(c.github).toEqual({ url: 'https://github.com', apiUrl: 'https://api.github.com', origin: 'environment' });
    expect(c.gitlab).toEqual({
      url: 'http://127.0.0.1:8929',
      apiUrl: 'http://127.0.0.1:8929/api/v4',
      origin: 'environment',
    });
  });

  it('derives the web URL from an API URL alone', () => {
    const c = parseConfig(minimal, {
      source: 'refbridge.yaml',
      env: { GITHUB_API_URL: 'https://ghe.example.com/api/v3', GITLAB_API_URL: 'https://gl.example.com/sub/api/v4/' },
    });
    expect(c.github).toEqual({
      url: 'https://ghe.example.com',
      apiUrl: 'https://ghe.example.com/api/v3',
      origin: 'environment',
    });
    expect(c.gitlab).toEqual({
      url: 'https://gl.example.com/sub',
      apiUrl: 'https://gl.example.com/sub/api/v4',
      origin: 'environment',
    });
  });

  it('uses both variables when both are set, as a runner sets them', () => {
    const c = parseConfig(minimal, {
      source: 'refbridge.yaml',
      env: { GITHUB_SERVER_URL: 'https://octo.ghe.com', GITHUB_API_URL: 'https://api.octo.ghe.com' },
    });
    expect(c.github).toEqual({
      url: 'https://octo.ghe.com',
      apiUrl: 'https://api.octo.ghe.com',
      origin: 'environment',
    });
  });

  it('overrides the bot users, and treats empty variables as unset', () => {
    const c = parseConfig(file, {
      source: 'refbridge.yaml',
      env: { MIRROR_BOT_USER_GITHUB: 'env-bot', MIRROR_BOT_USER_GITLAB: '', GITHUB_SERVER_URL: ' ' },
    });
    expect(c.botUsers).toEqual({ github: 'env-bot', gitlab: 'file-bot' });
    expect(c.github.origin).toBe('file');
  });

  it('reports bad variables together with the file problems', async () => {
    const problems = await problemsOf(`${minimal}    deletions: sometimes\n`, {
      GITHUB_SERVER_URL: 'https://x-access-token:abc@github.com',
      GITLAB_API_URL: 'https://gitlab.example.com/api',
      MIRROR_BOT_USER_GITLAB: 'two words',
    });
    expect(problems).toEqual([
      expect.objectContaining({ source: 'refbridge.yaml', line: 4, column: 16, key: 'pairs[0].deletions' }),
      {
        source: 'environment',
        key: 'GITHUB_SERVER_URL',
        message: 'must not contain a user name or password',
        hint: 'remove it from the URL; refbridge reads the token from GITHUB_TOKEN',
      },
      {
        source: 'environment',
        key: 'GITLAB_API_URL',
        message: 'cannot tell the GitLab web URL from this API URL',
        hint: 'set GITLAB_URL too',
      },
      expect.objectContaining({ source: 'environment', key: 'MIRROR_BOT_USER_GITLAB' }),
    ]);
  });

  describe('never reads process.env', () => {
    const saved = process.env.GITLAB_URL;
    afterEach(() => {
      if (saved === undefined) delete process.env.GITLAB_URL;
      else process.env.GITLAB_URL = saved;
    });

    it('ignores the process environment when the caller passes none', () => {
      process.env.GITLAB_URL = 'https://from-process.example.com';
      const c = parseConfig(minimal, { source: 'refbridge.yaml' });
      expect(c.gitlab.url).toBe('https://gitlab.com');
    });
  });
});

describe('API URL defaults', () => {
  it.each([
    ['https://github.com', 'https://api.github.com'],
    ['https://octo.ghe.com', 'https://api.octo.ghe.com'],
    ['https://ghe.example.com', 'https://ghe.example.com/api/v3'],
    ['https://example.com/github/', 'https://example.com/github/api/v3'],
  ])('GitHub %s -> %s', (url, api) => {
    expect(deriveGithubApiUrl(url)).toBe(api);
  });
});

describe('positions', () => {
  it('points at the value, through flow mappings, CRLF line endings and a BOM', async () => {
    const text =
      '\uFEFFgithub: { url: "ssh://git@example.com" }\r\npairs:\r\n  - { github: acme/ok, gitlab: "a/../b" }\r\n';
    expect(await problemsOf(text)).toEqual([
      expect.objectContaining({ line: 1, column: 16, key: 'github.url' }),
      expect.objectContaining({ line: 3, column: 32, key: 'pairs[0].gitlab' }),
    ]);
  });

  it('points at the key for unknown keys and for missing or collection values', async () => {
    const text = ['pairs:', '  - github: acme/ok', '    gitlab: a/b', '    refs:', '      - main', '    extra:'].join(
      '\n',
    );
    expect(await problemsOf(text)).toEqual([
      expect.objectContaining({
        line: 4,
        column: 5,
        key: 'pairs[0].refs',
        message: expect.stringContaining('mapping'),
      }),
      expect.objectContaining({ line: 6, column: 5, key: 'pairs[0].extra', message: 'unknown key "extra"' }),
    ]);
  });

  it('points at the anchor when a bad key came in through `<<: *alias`', async () => {
    const text = [
      'x-base: &base',
      '  rewrites: maybe',
      'pairs:',
      '  - <<: *base',
      '    github: acme/ok',
      '    gitlab: a/b',
    ].join('\n');
    expect(await problemsOf(text)).toEqual([
      expect.objectContaining({ line: 2, column: 13, key: 'pairs[0].rewrites' }),
    ]);
  });

  it('reports a secret merged in through an anchor once, where it is written', async () => {
    const text = [
      'x-base: &base',
      '  gitlabToken: abc',
      'pairs:',
      '  - <<: *base',
      '    github: acme/ok',
      '    gitlab: a/b',
    ];
    expect(await problemsOf(text.join('\n'))).toEqual([
      expect.objectContaining({
        line: 2,
        column: 3,
        key: 'x-base.gitlabToken',
        hint: expect.stringContaining('GITLAB_TOKEN'),
      }),
    ]);
  });

  it('keeps quoted digit-only mapping keys as keys, not list indexes', async () => {
    expect(await problemsOf(`${minimal}"0": x\n`)).toEqual([
      expect.objectContaining({ line: 4, column: 1, key: '["0"]', message: 'unknown key "0"' }),
    ]);
  });
});

describe('reading files', () => {
  it('names a missing file and says what to do', async () => {
    const tmp = await tempDir();
    try {
      const path = join(tmp.path, 'nope.yaml');
      const error = await configError(() => loadConfig({ path }));
      expect(error.problems).toEqual([
        {
          source: path,
          message: 'the config file does not exist',
          hint: 'check the path, or run `refbridge init` to write a starter refbridge.yaml there',
        },
      ]);
      expect(error.describe()).toContain(path);
    } finally {
      await tmp.cleanup();
    }
  });

  it('says so when the path is a directory', async () => {
    const tmp = await tempDir();
    try {
      const error = await configError(() => loadConfig({ path: tmp.path }));
      expect(error.problems).toEqual([
        expect.objectContaining({ source: tmp.path, message: 'is a directory, not a config file' }),
      ]);
    } finally {
      await tmp.cleanup();
    }
  });

  it('finds refbridge.yaml, then repos.yaml, in the given directory', async () => {
    const tmp = await tempDir();
    try {
      const none = await configError(() => loadConfig({ cwd: tmp.path }));
      expect(none.problems).toEqual([
        expect.objectContaining({
          source: tmp.path,
          message: 'no config file found (looked for refbridge.yaml, refbridge.yml, repos.yaml)',
        }),
      ]);
      await writeFile(join(tmp.path, 'repos.yaml'), 'repos:\n  - { github: org/a, gitlab: group/a }\n');
      expect((await loadConfig({ cwd: tmp.path })).source).toBe(join(tmp.path, 'repos.yaml'));
      await writeFile(join(tmp.path, 'refbridge.yaml'), minimal);
      expect((await loadConfig({ cwd: tmp.path })).source).toBe(join(tmp.path, 'refbridge.yaml'));
      // A directory in the way is reported for that path instead of being skipped silently.
      await mkdir(join(tmp.path, 'sub', 'refbridge.yaml'), { recursive: true });
      const dir = await configError(() => loadConfig({ cwd: join(tmp.path, 'sub') }));
      expect(dir.problems[0]?.message).toBe('is a directory, not a config file');
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('the starter file', () => {
  const text = renderStarterConfig();

  it('parses cleanly into one example pair with the built-in policy', () => {
    const c = parseConfig(text, { source: 'refbridge.yaml', env: {} });
    expect(c.pairs.map((p) => [p.name, p.github.fullName, p.gitlab.path])).toEqual([
      ['widgets', 'acme/widgets', 'platform/tools/widgets'],
    ]);
    expect(c.defaults).toEqual(defaultPairPolicy());
  });

  it('points editors at the schema and mentions every key the schema knows', () => {
    expect(text.split('\n')[0]).toBe(
      '# yaml-language-server: $schema=./node_modules/@refbridge/cli/schema/refbridge.schema.json',
    );
    for (const key of schemaKeys(configSchema)) {
      if (key === '$schema' || key === 'repos') continue;
      expect(text).toMatch(new RegExp(`\\b${key}:`));
    }
  });

  it('documents what the built-in policy really is', () => {
    const written = parseYaml(text) as { defaults: unknown };
    expect(written.defaults).toEqual(defaultPairPolicy());
  });
});

function schemaKeys(schema: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) schema.forEach((s) => schemaKeys(s, out));
  else if (typeof schema === 'object' && schema !== null) {
    for (const [k, v] of Object.entries(schema)) {
      if (k === 'properties') Object.keys(v as object).forEach((p) => out.add(p));
      schemaKeys(v, out);
    }
  }
  return out;
}

describe('the JSON Schema', () => {
  it('is committed for editors exactly as the loader uses it', async () => {
    const file = join(repoRoot, 'packages/cli/schema/refbridge.schema.json');
    const committed: unknown = JSON.parse(await readFile(file, 'utf8'));
    expect(committed).toEqual(JSON.parse(JSON.stringify(configSchema)));
  });

  it('states the same defaults the loader applies', () => {
    const props = configSchema.definitions.pair.properties;
    const refs = props.refs.properties;
    expect({
      divergence: props.divergence.default,
      deletions: props.deletions.default,
      rewrites: props.rewrites.default,
      refs: {
        branches: refs.branches.default,
        tags: refs.tags.default,
        include: refs.include.default,
        exclude: refs.exclude.default,
      },
      protectedBranches: {
        temporarilyAllowForcePush: props.protectedBranches.properties.temporarilyAllowForcePush.default,
      },
      pushOptions: { gitlabCiSkip: props.pushOptions.properties.gitlabCiSkip.default },
      lfs: props.lfs.default,
    }).toEqual(defaultPairPolicy());
  });

  // The patterns are what editors check as you type; the loader explains the same rules.
  const agree = (pattern: string, check: (v: string) => unknown, values: string[]) => {
    const re = new RegExp(pattern, 'u');
    for (const v of values) {
      expect([v, re.test(v)]).toEqual([v, check(v) === undefined]);
    }
  };

  it('accepts and rejects the same GitHub repositories as the loader', () => {
    agree(githubRepoPattern, checkGithubRepo, [
      'acme/widgets',
      'Acme-Corp/Gadgets_2',
      'octo_emu/.github',
      'a/b.c-d_e',
      `${'a'.repeat(39)}/x`,
      `${'a'.repeat(40)}/x`,
      `a/${'b'.repeat(100)}`,
      `a/${'b'.repeat(101)}`,
      'widgets',
      'a/b/c',
      'a/..',
      'a/.',
      '../a',
      '/a/b',
      'a/b/',
      'a//b',
      'a\\b',
      'a/b c',
      'a/b.git',
      '-a/b',
      'a/b$',
      'https://github.com/a/b',
      '',
    ]);
  });

  it('accepts and rejects the same GitLab paths as the loader', () => {
    agree(gitlabPathPattern, checkGitlabProjectPath, [
      'group/project',
      'group/sub/sub2/project',
      'user_name/.dotfiles',
      'g/p.name-x_y',
      Array.from({ length: 22 }, (_, i) => `g${i}`).join('/'),
      Array.from({ length: 23 }, (_, i) => `g${i}`).join('/'),
      'project',
      'g/../p',
      'g/./p',
      './p',
      '/g/p',
      'g/p/',
      'g//p',
      'g\\p',
      'g/p q',
      'g/p.git',
      'g.atom/p',
      'g/-p',
      'g/p%',
      'g/p\u0000',
      'git@gitlab.com:g/p',
      '',
    ]);
  });

  it('accepts and rejects the same pair names as the loader', () => {
    agree(pairNamePattern, checkPairName, [
      'widgets',
      'Gadgets_2',
      'a.b-c',
      '_x',
      '.github',
      '-x',
      'a..b',
      'a.lock',
      'a.',
      'a/b',
      '..',
      'a b',
      'x'.repeat(100),
      'x'.repeat(101),
      '',
    ]);
  });
});
