import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { buildUnlessPretest, repoRoot } from './paths.js';

// gitlab-ci-local runs a project's .gitlab-ci.yml on this machine. It is pinned to 4.73.0, the last
// release that runs on Node 20 (4.74 moved to execa 10, which needs Node 22's Set methods), so it
// runs on the Node the tests run on and on every machine the project supports, not only where the
// Linux-x64 Node 24 binary is installed. Everything the component needs is there: local components
// (4.52), spec:inputs with types, options and regex, --shell-isolation and --force-shell-executor.

export const gitlabCiLocalBin = join(repoRoot, 'node_modules', 'gitlab-ci-local', 'dist', 'index.js');

export interface GitlabCiLocalRun {
  code: number;
  /** stdout and stderr interleaved as printed. */
  output: string;
}

export interface GitlabCiLocalOptions {
  /** The project: a git clone whose `origin` is the GitLab project, with .gitlab-ci.yml. */
  cwd: string;
  /** Jobs to run (all when empty), or `['--list']`-style extra arguments via `args`. */
  jobs?: string[];
  args?: string[];
  /** `--variable K=V`: CI/CD variables as a project would define them. */
  variables?: Record<string, string>;
  /** `--unset-variable K`: predefined variables the simulated pipeline does not have. */
  unset?: string[];
  /** The whole environment of gitlab-ci-local (shell jobs inherit it). */
  env: Record<string, string>;
}

/**
 * Runs gitlab-ci-local with the shell executor, each job in an rsync'ed copy of the project
 * (`--shell-isolation`). `--force-shell-executor` because the component's job names an `image:`
 * and there is no container engine here.
 */
export async function runGitlabCiLocal(o: GitlabCiLocalOptions): Promise<GitlabCiLocalRun> {
  const args = [
    gitlabCiLocalBin,
    '--shell-isolation',
    '--force-shell-executor',
    '--color=false',
    '--timestamps=false',
    ...Object.entries(o.variables ?? {}).flatMap(([k, v]) => ['--variable', `${k}=${v}`]),
    ...(o.unset ?? []).flatMap((k) => ['--unset-variable', k]),
    ...(o.args ?? []),
    ...(o.jobs ?? []),
  ];
  const r = await execa(process.execPath, args, {
    cwd: o.cwd,
    env: o.env,
    extendEnv: false,
    all: true,
    reject: false,
    timeout: 180_000,
  });
  return { code: r.exitCode ?? -1, output: r.all ?? '' };
}

/**
 * PATH without any node_modules/.bin (under `npm test` this repo's holds a `refbridge` link and a
 * Node 24 `node`), with `extra` first: the job must find only what the test puts there.
 */
export function jobPath(extra: string[] = []): string {
  const system = (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin')
    .split(delimiter)
    .filter((p) => p && !p.split(/[\\/]/).includes('node_modules'));
  return [...extra, ...system].join(delimiter);
}

/**
 * The npm configuration a job inherits on a runner: this machine's user config (registry, CA
 * file) and cache, preferring cached packages. A registry mirror would be configured the same way.
 */
export async function npmJobEnv(): Promise<Record<string, string>> {
  const get = async (key: string): Promise<string> =>
    (await execa('npm', ['config', 'get', key], { cwd: repoRoot })).stdout.trim();
  const env: Record<string, string> = {
    npm_config_userconfig: await get('userconfig'),
    npm_config_cache: await get('cache'),
    npm_config_prefer_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  };
  // TLS through this machine's CA bundle, as the runner's image would have it.
  for (const k of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR']) {
    const v = process.env[k];
    if (v) env[k] = v;
  }
  return env;
}

/**
 * `npm pack` of the four published packages, built, into `dir`; returns the tarballs' paths
 * (what the component's `refbridge-package` input takes, space-separated).
 */
export async function packCli(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  await buildUnlessPretest();
  const workspaces = ['@refbridge/core', '@refbridge/github', '@refbridge/gitlab', '@refbridge/cli'];
  const { stdout } = await execa(
    'npm',
    ['pack', '--json', '--pack-destination', dir, ...workspaces.flatMap((w) => ['-w', w])],
    { cwd: repoRoot },
  );
  const packed = JSON.parse(stdout) as { filename: string }[];
  if (packed.length !== workspaces.length) throw new Error(`npm pack made ${packed.length} tarballs: ${stdout}`);
  return packed.map((p) => join(dir, p.filename));
}
