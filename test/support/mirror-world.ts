import { join } from 'node:path';
import { startForge, type RunningForge } from '../forge/src/server.js';
import type { SeedGitlabGroup, SeedGitlabProject, SeedRepoContent, SeedToken } from '../forge/src/seed.js';
import { gitArgvRecorder } from './action-runner.js';
import { forgeGit } from './forge-git.js';
import { tempDir } from './temp.js';

/**
 * The set-up the CI mirror tests share (test/e2e/action.test.ts, component.test.ts): a forge with
 * one repo each side, GitHub `acme/app` (org acme, alice) and a GitLab project in group acme
 * (carol, owner); git for the test's own pushes and clones, with set-up tokens that are not the
 * canaries the code under test gets, so a canary found anywhere came from that code; and a `git`
 * first on PATH that records every command line the code under test runs.
 */

// Set-up tokens: the test's own git uses these, never a canary.
const GH_SETUP = 'ghp_setupMIRRORworldGithub00000000000001';
const GL_SETUP = 'glpat-setupMIRRORworldGitlab0001';

export interface MirrorWorldOptions {
  /** Temp dir prefix. */
  prefix: string;
  /** Content of GitHub's acme/app. */
  github: SeedRepoContent;
  /** GitHub users besides alice, members of org acme too (e.g. the mirror bot). */
  githubUsers?: string[];
  /** The GitLab project of the pair (path and content). */
  gitlab: SeedGitlabProject;
  /** GitLab groups besides acme (e.g. a subgroup the project sits in). */
  gitlabGroups?: SeedGitlabGroup[];
  /** The canaries: the tokens the code under test gets. */
  canaries: SeedToken[];
}

export interface MirrorWorld {
  forge: RunningForge;
  /** The test's temp dir (removed by `close`). */
  root: string;
  ghUrl: string;
  glUrl: string;
  /** git with the set-up token for GitHub, resp. GitLab. */
  ghGit: (cwd: string, args: string[]) => Promise<string>;
  glGit: (cwd: string, args: string[]) => Promise<string>;
  /** Every git command line run with `argv.binDir` first on PATH is appended to `argv.log`. */
  argv: { binDir: string; log: string };
  /** Ref -> SHA of the pair's repo on one side, as `git ls-remote` lists it. */
  lsRemote(platform: 'github' | 'gitlab'): Promise<Record<string, string>>;
  /** The forge's admin API (`/_forge/...`): request and push logs, resets. */
  admin<T>(path: string, method?: string): Promise<T>;
  /** Routes of the git requests the forge logged for one platform since the last reset. */
  gitRoutes(platform: 'github' | 'gitlab'): Promise<string[]>;
  close(): Promise<void>;
}

export async function startMirrorWorld(o: MirrorWorldOptions): Promise<MirrorWorld> {
  const tmp = await tempDir(o.prefix);
  const githubUsers = ['alice', ...(o.githubUsers ?? [])];
  const forge = await startForge({
    seed: {
      github: {
        users: githubUsers,
        orgs: [{ login: 'acme', members: githubUsers }],
        repos: [{ owner: 'acme', name: 'app', private: true, ...o.github }],
      },
      gitlab: {
        users: ['carol'],
        groups: [{ path: 'acme', members: { carol: 50 } }, ...(o.gitlabGroups ?? [])],
        projects: [o.gitlab],
      },
      tokens: [
        ...o.canaries,
        { value: GH_SETUP, platform: 'github', user: 'alice', scopes: ['repo', 'workflow'] },
        { value: GL_SETUP, platform: 'gitlab', user: 'carol', scopes: ['api'] },
      ],
    },
  });
  const ghGit = forgeGit(forge.urls.github.web, GH_SETUP);
  const glGit = forgeGit(forge.urls.gitlab.web, GL_SETUP, 'oauth2');
  const ghUrl = `${forge.urls.github.web}/acme/app.git`;
  const glUrl = `${forge.urls.gitlab.web}/${o.gitlab.path}.git`;
  const argv = await gitArgvRecorder(join(tmp.path, 'recorder'));
  const admin = async <T>(path: string, method = 'GET'): Promise<T> => {
    const res = await fetch(`${forge.urls.github.web}/_forge/${path}`, { method });
    return (await res.json()) as T;
  };
  return {
    forge,
    root: tmp.path,
    ghUrl,
    glUrl,
    ghGit,
    glGit,
    argv,
    lsRemote: async (platform) => {
      const out =
        platform === 'github'
          ? await ghGit(tmp.path, ['ls-remote', ghUrl])
          : await glGit(tmp.path, ['ls-remote', glUrl]);
      return Object.fromEntries(
        out
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('\t').reverse() as [string, string]),
      );
    },
    admin,
    gitRoutes: async (platform) =>
      (await admin<{ route: string }[]>(`requests?kind=git&platform=${platform}`)).map((r) => r.route),
    close: async () => {
      await forge.close();
      await tmp.cleanup();
    },
  };
}
