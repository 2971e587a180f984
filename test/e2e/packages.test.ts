import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Ajv } from 'ajv';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../packages/core/src/config.js';
import { startForge, type RunningForge } from '../forge/src/server.js';
import { buildUnlessPretest, repoRoot } from '../support/paths.js';
import { tempDir } from '../support/temp.js';

/**
 * The packages as npm users get them: `npm pack` of the four public packages, installed together
 * into an empty directory (third-party dependencies from the registry, --prefer-offline so a warm
 * cache is enough), then the installed `refbridge` is run the ways the README shows. One pack and
 * one install serve every check.
 */

const PACKAGES = ['core', 'github', 'gitlab', 'cli'] as const;

interface PackResult {
  name: string;
  version: string;
  filename: string;
  files: { path: string }[];
}

interface Manifest {
  version: string;
  main?: string;
  types?: string;
  bin?: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let installDir: string;
let packs: Map<string, PackResult>;

/**
 * npm run from `npm test` hands its own configuration down as npm_config_* variables (prefix,
 * workspace, ...): the nested npm must not see them, or it would install into the monorepo.
 */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

async function npm(args: string[], cwd: string): Promise<string> {
  const r = await execa('npm', args, { cwd, env: cleanEnv(), extendEnv: false });
  return r.stdout;
}

/** The installed bin, started through its shebang as a shell would. */
const refbridge = (args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) =>
  execa(join(installDir, 'node_modules', '.bin', 'refbridge'), args, {
    cwd: options.cwd ?? installDir,
    env: options.env ?? { PATH: process.env['PATH'] ?? '', HOME: tmp.path },
    extendEnv: false,
    reject: false,
  });

beforeAll(async () => {
  tmp = await tempDir('refbridge-packages-');
  installDir = join(tmp.path, 'install');
  await mkdir(installDir);
  // Packs what is built.
  await buildUnlessPretest();
  const packed = await npm(
    ['pack', '--json', '--pack-destination', tmp.path, ...PACKAGES.flatMap((p) => ['-w', `packages/${p}`])],
    repoRoot,
  );
  packs = new Map((JSON.parse(packed) as PackResult[]).map((p) => [p.name, p]));
  const tarballs = PACKAGES.map((p) => join(tmp.path, packs.get(`@refbridge/${p}`)!.filename));
  await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], installDir);
}, 300_000);

afterAll(async () => {
  await tmp?.cleanup();
});

async function manifest(pkg: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(repoRoot, 'packages', pkg, 'package.json'), 'utf8')) as Manifest;
}

/** Every file a manifest points at: main, types, bin, and each export condition. */
function entryFiles(m: Manifest): string[] {
  const targets = [m.main, m.types, ...Object.values(m.bin ?? {})];
  for (const value of Object.values(m.exports)) {
    targets.push(...(typeof value === 'string' ? [value] : Object.values(value)));
  }
  return targets.filter((t): t is string => t !== undefined).map((t) => t.replace(/^\.\//, ''));
}

describe('the published packages', () => {
  it('hold only what a user runs: compiled JavaScript, declarations, the schema and the CI templates', async () => {
    const templates = (await readdir(join(repoRoot, 'ci-templates'))).filter((f) => f.endsWith('.yml')).sort();
    expect(templates.length).toBeGreaterThan(0);
    for (const pkg of PACKAGES) {
      const pack = packs.get(`@refbridge/${pkg}`);
      expect(pack).toBeDefined();
      const files = pack!.files.map((f) => f.path);
      const allowed = [
        /^package\.json$/,
        /^(README|LICENSE|CHANGELOG)(\.md)?$/i,
        /^dist\/[\w./-]+\.js$/,
        /^dist\/[\w./-]+\.d\.ts$/,
        ...(pkg === 'cli' ? [/^schema\/refbridge\.schema\.json$/, /^dist\/ci-templates\/[\w-]+\.yml$/] : []),
      ];
      expect(files.filter((f) => !allowed.some((re) => re.test(f)))).toEqual([]);
      // Spelled out, as these are what slip in: tests, sources, build info, source maps.
      expect(files.filter((f) => /(^|\/)(test|src)\/|tsbuildinfo|\.map$|(?<!\.d)\.ts$/.test(f))).toEqual([]);
      const m = await manifest(pkg);
      expect(pack!.version).toBe(m.version);
      for (const entry of entryFiles(m)) expect(files).toContain(entry);
      if (pkg === 'cli') {
        expect(files.filter((f) => f.startsWith('dist/ci-templates/')).sort()).toEqual(
          templates.map((t) => `dist/ci-templates/${t}`),
        );
      }
    }
  });

  it('ship declarations whose relative imports all resolve inside the package', async () => {
    const missing: string[] = [];
    for (const pkg of PACKAGES) {
      const root = join(installDir, 'node_modules', '@refbridge', pkg);
      for (const { path } of packs.get(`@refbridge/${pkg}`)!.files) {
        if (!path.endsWith('.d.ts')) continue;
        const text = await readFile(join(root, path), 'utf8');
        for (const [, spec] of text.matchAll(/(?:from|import\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
          const target = resolve(dirname(join(root, path)), spec!.replace(/\.js$/, '.d.ts'));
          if (!existsSync(target)) missing.push(`@refbridge/${pkg}/${path} -> ${spec}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it('carry the templates bootstrap commits, identical to ci-templates/', async () => {
    for (const name of (await readdir(join(repoRoot, 'ci-templates'))).filter((f) => f.endsWith('.yml'))) {
      const installed = join(installDir, 'node_modules', '@refbridge', 'cli', 'dist', 'ci-templates', name);
      expect(await readFile(installed, 'utf8')).toBe(await readFile(join(repoRoot, 'ci-templates', name), 'utf8'));
    }
  });

  it('import as ESM with their entry points, and the schema resolves by its package path', async () => {
    const script = `
      const core = await import('@refbridge/core');
      const github = await import('@refbridge/github');
      const gitlab = await import('@refbridge/gitlab');
      const cli = await import('@refbridge/cli');
      const { readFileSync } = await import('node:fs');
      const { fileURLToPath } = await import('node:url');
      const schemaPath = fileURLToPath(import.meta.resolve('@refbridge/cli/schema/refbridge.schema.json'));
      console.log(JSON.stringify({
        core: ['mirrorRef', 'syncPair', 'loadConfig', 'GitRunner', 'SecretMasker', 'RefbridgeError'].filter((k) => typeof core[k] !== 'function'),
        github: typeof github.createGithubForge,
        gitlab: typeof gitlab.createGitlabForge,
        cli: [typeof cli.main, typeof cli.buildProgram],
        schemaPath,
        schemaTitle: JSON.parse(readFileSync(schemaPath, 'utf8')).title,
      }));`;
    const r = await execa(process.execPath, ['--input-type=module', '-e', script], { cwd: installDir });
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toEqual({
      core: [],
      github: 'function',
      gitlab: 'function',
      cli: ['function', 'function'],
      schemaPath: join(installDir, 'node_modules', '@refbridge', 'cli', 'schema', 'refbridge.schema.json'),
      schemaTitle: 'refbridge configuration',
    });
  });
});

/** `refbridge --help` and each subcommand's `--help`, from the installed bin (run once). */
let helps: Promise<{
  top: Awaited<ReturnType<typeof refbridge>>;
  commands: Map<string, Awaited<ReturnType<typeof refbridge>>>;
}>;
function helpTexts(): typeof helps {
  helps ??= (async () => {
    const top = await refbridge(['--help']);
    const section = top.stdout.slice(top.stdout.indexOf('Commands:'));
    const names = [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    const runs = await Promise.all(names.map((c) => refbridge([c, '--help'])));
    return { top, commands: new Map(names.map((c, i) => [c, runs[i]!])) };
  })();
  return helps;
}

describe('the installed refbridge', () => {
  it('prints help for itself and for every subcommand', async () => {
    const { top, commands } = await helpTexts();
    expect(top.exitCode).toBe(0);
    expect(top.stdout).toMatch(/^Usage: refbridge /);
    expect([...commands.keys()]).toEqual(expect.arrayContaining(['init', 'sync', 'mirror', 'bootstrap', 'backup']));
    for (const [command, r] of commands) {
      expect({ command, code: r.exitCode, stderr: r.stderr }).toEqual({ command, code: 0, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^Usage: refbridge ${command} `));
      expect(r.stdout).toContain('--help');
    }
  });

  it('has every subcommand and flag that the README, docs/ and the Dockerfile use', async () => {
    const { commands } = await helpTexts();
    const doc = await readFile(join(repoRoot, 'docs', 'operations.md'), 'utf8');
    const dockerfile = await readFile(join(repoRoot, 'Dockerfile'), 'utf8');
    const docs = await Promise.all(
      (await readdir(join(repoRoot, 'docs')))
        .filter((f) => f.endsWith('.md'))
        .map((f) => readFile(join(repoRoot, 'docs', f), 'utf8')),
    );
    const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
    const invocations: string[][] = [];
    for (const text of [readme, ...docs, dockerfile]) {
      const joined = text.replace(/\\\n[\s#]*/g, ' '); // shell line continuations
      for (const m of joined.matchAll(/\brefbridge ([a-z]+(?: +[^\s`|&;>)]+)*)/g)) invocations.push(m[1]!.split(/ +/));
      // Kubernetes args and Dockerfile CMD: [sync, --config, ...] / ["sync", "--watch"]
      for (const m of joined.matchAll(/(?:args: |CMD )\[([^\]]+)\]/g))
        invocations.push(m[1]!.split(',').map((a) => a.trim().replace(/^"|"$/g, '')));
    }
    const known = new Set(commands.keys());
    const used = invocations.filter((args) => known.has(args[0]!));
    expect(used.length).toBeGreaterThan(8);
    const unknownFlags: string[] = [];
    for (const [command, ...args] of used) {
      const help = commands.get(command!)!.stdout;
      // `--source-url/--target-url` in prose names two flags.
      for (const flag of args
        .flatMap((a) => a.split('/'))
        .filter((a) => /^--[a-z]/.test(a))
        .map((a) => a.replace(/=.*$/, ''))) {
        if (!new RegExp(`(^|[\\s,])${flag}([\\s,<=]|$)`, 'm').test(help)) unknownFlags.push(`${command} ${flag}`);
      }
    }
    expect(unknownFlags).toEqual([]);
    // The README's configuration example is a valid refbridge.yaml.
    const configBlock = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .find((b) => b.includes('pairs:'));
    expect(configBlock).toBeDefined();
    expect(() => parseConfig(configBlock!, { source: 'README.md', env: {} })).not.toThrow();
    // The manifests in the doc are YAML that parses (one or more documents per block).
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) {
      for (const d of parseAllDocuments(block)) expect(d.errors.map((e) => e.message)).toEqual([]);
    }
  });

  it('runs through npx, by bin name and by package name, from the installed tarball', async () => {
    const { version } = await manifest('cli');
    // npm_config_offline: if npx did not find the installed package it would fail here instead of
    // fetching some other @refbridge/cli from the registry.
    const env = cleanEnv({ npm_config_offline: 'true', npm_config_update_notifier: 'false' });
    const byBin = await execa('npx', ['--no-install', 'refbridge', '--version'], {
      cwd: installDir,
      env,
      extendEnv: false,
    });
    expect(byBin.stdout.trim()).toBe(version);
    const byPackage = await execa('npx', ['@refbridge/cli', '--version'], { cwd: installDir, env, extendEnv: false });
    expect(byPackage.stdout.trim()).toBe(version);
  });
});

describe('refbridge init', () => {
  let forge: RunningForge;
  const GH = 'ghp_canaryPACKAGESinit000000000000000000001';
  const GL = 'glpat-canaryPACKAGESinit0000002';

  beforeAll(async () => {
    // The starter's example pair, on a local GitHub and GitLab.
    forge = await startForge({
      seed: {
        github: {
          users: ['alice'],
          orgs: [{ login: 'acme', members: ['alice'] }],
          repos: [{ owner: 'acme', name: 'widgets', private: true, files: { 'README.md': '# widgets\n' } }],
        },
        gitlab: {
          users: ['carol'],
          groups: [{ path: 'platform', members: { carol: 50 } }, { path: 'platform/tools' }],
          projects: [{ path: 'platform/tools/widgets' }],
        },
        tokens: [
          { value: GH, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
          { value: GL, platform: 'gitlab', user: 'carol', scopes: ['api'] },
        ],
      },
    });
  }, 60_000);

  afterAll(async () => {
    await forge?.close();
  });

  it('writes a commented starter that points editors at the shipped schema and that sync --dry-run accepts', async () => {
    const project = installDir; // where node_modules/@refbridge/cli is, as in a user's project
    const first = await refbridge(['init'], { cwd: project });
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toMatch(/wrote .*refbridge\.yaml/);
    const text = await readFile(join(project, 'refbridge.yaml'), 'utf8');
    expect(text.split('\n').filter((l) => /^\s*#/.test(l)).length).toBeGreaterThan(10);

    // The yaml-language-server modeline names the schema relative to the file: it must exist there.
    const modeline = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text);
    expect(modeline).not.toBeNull();
    const schemaFile = resolve(project, modeline![1]!);
    expect(existsSync(schemaFile)).toBe(true);
    const schema = JSON.parse(await readFile(schemaFile, 'utf8')) as object;
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect({ valid: validate(parse(text)), errors: validate.errors ?? [] }).toEqual({ valid: true, errors: [] });

    const again = await refbridge(['init'], { cwd: project });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toMatch(/already exists.*--force/s);

    // The starter as written, pointed at the forge by the environment (which overrides its URLs).
    const sync = await refbridge(['sync', '--dry-run', '--config', 'refbridge.yaml', '--cache', join(tmp.path, 'c')], {
      cwd: project,
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: tmp.path,
        GITHUB_TOKEN: GH,
        GITLAB_TOKEN: GL,
        GITHUB_SERVER_URL: forge.urls.github.web,
        GITHUB_API_URL: forge.urls.github.api,
        GITLAB_URL: forge.urls.gitlab.web,
      },
    });
    expect({ code: sync.exitCode, stderr: sync.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(sync.stdout).toMatch(/widgets\s+refs\/heads\/main\s+plan: create github -> gitlab/);
    expect(sync.stdout).toMatch(/dry run: nothing changed/);
    const pushes = (await (await fetch(`${forge.urls.github.web}/_forge/pushes`)).json()) as unknown[];
    expect(pushes).toEqual([]);
    expect(sync.stdout + sync.stderr).not.toContain(GH);
    expect(sync.stdout + sync.stderr).not.toContain(GL);
  });
});
