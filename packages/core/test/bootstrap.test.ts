import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { join } from 'node:path';
import { commitFiles, git, initRepo } from '../../../test/support/git.js';
import { tempDir } from '../../../test/support/temp.js';
import { ScratchRepo, branchRelation, commitSideFor, type BranchRelation } from '../src/bootstrap-ci-files.js';
import { checkTokenScopes, requiredScopes } from '../src/bootstrap.js';
import { GitRunner } from '../src/git-runner.js';
import { SecretMasker } from '../src/secret-masker.js';
import { fingerprintMatches, fingerprintSecret } from '../src/secret-fingerprint.js';

const TOKEN = 'ghp_canaryBOOTSTRAPcore00000000000000001';

describe('secret fingerprints', () => {
  it('recognise the token they were made from, and only that one', () => {
    const fp = fingerprintSecret(TOKEN);
    expect(fp).toMatch(/^v1:[0-9a-f]{32}:[0-9a-f]{64}$/);
    expect(fp).not.toContain(TOKEN);
    expect(fingerprintMatches(fp, TOKEN)).toBe(true);
    expect(fingerprintMatches(fp, `${TOKEN}x`)).toBe(false);
  });

  it('use a fresh salt each time, so one token stored in many repos leaves unrelated fingerprints', () => {
    const a = fingerprintSecret(TOKEN);
    const b = fingerprintSecret(TOKEN);
    expect(a).not.toBe(b);
    expect(a.split(':')[2]).not.toBe(b.split(':')[2]);
    expect(fingerprintSecret(TOKEN, '00ff00ff00ff00ff')).toBe(fingerprintSecret(TOKEN, '00ff00ff00ff00ff'));
  });

  it('treat anything unreadable as "not this token" (one re-seal, never a wrong skip)', () => {
    for (const fp of [
      undefined,
      null,
      '',
      'v1:zz:00',
      'v2:00ff00ff00ff00ff:' + '0'.repeat(64),
      'v1:00ff00ff00ff00ff:' + '0'.repeat(64),
    ]) {
      expect(fingerprintMatches(fp, TOKEN)).toBe(false);
    }
  });
});

describe('token scope checks', () => {
  const github = (scopes: string[] | undefined, role: 'admin' | 'mirror' = 'admin', envName = 'GITHUB_TOKEN') =>
    ({ platform: 'github', role, envName, info: { login: 'alice', scopes } }) as const;
  const gitlab = (scopes: string[] | undefined, role: 'admin' | 'mirror' = 'admin', envName = 'GITLAB_TOKEN') =>
    ({ platform: 'gitlab', role, envName, info: { login: 'carol', scopes } }) as const;

  it('passes tokens with what they need', () => {
    const report = checkTokenScopes(
      [
        github(['repo', 'workflow', 'read:org']),
        gitlab(['api']),
        gitlab(['write_repository'], 'mirror', 'REFBRIDGE_MIRROR_GITLAB_TOKEN'),
      ],
      { githubPublicOnly: false },
    );
    expect(report).toEqual({ problems: [], notes: [] });
  });

  it('reports every missing scope of every token at once', () => {
    const report = checkTokenScopes(
      [
        github(['repo']),
        github(['public_repo'], 'mirror', 'REFBRIDGE_MIRROR_GITHUB_TOKEN'),
        gitlab(['read_api', 'write_repository']),
        gitlab(['read_repository'], 'mirror', 'REFBRIDGE_MIRROR_GITLAB_TOKEN'),
      ],
      { githubPublicOnly: false },
    );
    expect(report.problems).toHaveLength(4);
    expect(report.problems[0]).toMatch(/GITHUB_TOKEN \(GitHub\) of alice lacks `workflow` \(it has `repo`\)/);
    expect(report.problems[1]).toMatch(
      /REFBRIDGE_MIRROR_GITHUB_TOKEN \(GitHub, stored for the CI\) of alice lacks `repo` and `workflow`/,
    );
    expect(report.problems[2]).toMatch(/GITLAB_TOKEN \(GitLab\) of carol lacks `api`/);
    expect(report.problems[3]).toMatch(/lacks `write_repository` or `api`/);
  });

  it('accepts public_repo when only public GitHub repositories are created', () => {
    expect(checkTokenScopes([github(['public_repo', 'workflow'])], { githubPublicOnly: true }).problems).toEqual([]);
    expect(requiredScopes('github', 'admin', true)).toEqual([['repo', 'public_repo'], ['workflow']]);
  });

  it('notes tokens whose scopes are not reported and reports refused tokens', () => {
    const report = checkTokenScopes(
      [
        github(undefined),
        { platform: 'gitlab', role: 'admin', envName: 'GITLAB_TOKEN', info: new Error('401 Unauthorized') },
      ],
      { githubPublicOnly: false },
    );
    expect(report.notes).toEqual([expect.stringMatching(/not checked up front/)]);
    expect(report.problems).toEqual([expect.stringMatching(/GITLAB_TOKEN \(GitLab\) was refused: 401 Unauthorized/)]);
  });
});

describe('which side commits, and moving its commit to the other side with git', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let runner: GitRunner;
  let work: string;
  let base: string;
  let ahead: string;
  let other: string;

  beforeAll(async () => {
    tmp = await tempDir('refbridge-bootstrap-core-');
    runner = new GitRunner({ masker: new SecretMasker() });
    work = join(tmp.path, 'work');
    await initRepo(work);
    base = await commitFiles(work, { 'README.md': 'one\n' }, 'one');
    ahead = await commitFiles(work, { 'README.md': 'two\n' }, 'two');
    await git(work, ['checkout', '-q', '-b', 'side', base]);
    other = await commitFiles(work, { 'OTHER.md': 'x\n' }, 'other');
    for (const name of ['github', 'gitlab']) await initRepo(join(tmp.path, `${name}.git`), { bare: true });
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  const url = (name: string): string => join(tmp.path, `${name}.git`);
  const remoteTip = async (name: string): Promise<string | undefined> =>
    (await git(tmp.path, ['ls-remote', url(name), 'refs/heads/main'])).split('\t')[0] || undefined;

  it('decides the relation from both tips, asking git only when they differ', async () => {
    const scratch = new ScratchRepo(runner, join(tmp.path, 'scratch-relation.git'));
    await git(work, ['push', '-q', url('github'), `${ahead}:refs/heads/main`]);
    await git(work, ['push', '-q', url('gitlab'), `${other}:refs/heads/main`]);
    await scratch.fetchBranch(url('github'), 'main', 'refs/x/github', []);
    await scratch.fetchBranch(url('gitlab'), 'main', 'refs/x/gitlab', []);
    let asked = 0;
    const ancestry = (a: string, d: string): Promise<boolean> => {
      asked++;
      return scratch.isAncestor(a, d);
    };
    const cases: [string | undefined, string | undefined, BranchRelation][] = [
      [undefined, undefined, 'both-empty'],
      [base, undefined, 'github-only'],
      [undefined, base, 'gitlab-only'],
      [base, base, 'equal'],
    ];
    for (const [github, gitlab, expected] of cases)
      expect(await branchRelation({ github, gitlab }, ancestry)).toBe(expected);
    expect(asked).toBe(0);
    expect(await branchRelation({ github: ahead, gitlab: base }, ancestry)).toBe('github-ahead');
    expect(await branchRelation({ github: base, gitlab: ahead }, ancestry)).toBe('gitlab-ahead');
    expect(await branchRelation({ github: ahead, gitlab: other }, ancestry)).toBe('diverged');
    // An object the scratch repo never saw is "not an ancestor", never an error.
    expect(await scratch.isAncestor('0123456789012345678901234567890123456789', ahead)).toBe(false);

    expect(commitSideFor('both-empty')).toBe('gitlab');
    expect(commitSideFor('gitlab-ahead')).toBe('gitlab');
    expect(commitSideFor('equal')).toBe('github');
    expect(commitSideFor('github-ahead')).toBe('github');
    expect(commitSideFor('diverged')).toBeUndefined();
  });

  it('creates the branch, fast-forwards it, and lets a lease on a stale tip fail', async () => {
    await git(tmp.path, ['--git-dir', url('gitlab'), 'update-ref', '-d', 'refs/heads/main']);
    const scratch = new ScratchRepo(runner, join(tmp.path, 'scratch-push.git'));
    await scratch.fetchBranch(url('github'), 'main', 'refs/bootstrap/source', []);
    expect(await scratch.hasCommit(ahead)).toBe(true);
    expect(await scratch.hasCommit(other)).toBe(false);

    // Create: the lease says "must not exist yet".
    expect(await scratch.pushLeased(url('gitlab'), 'main', base, undefined, { credentials: [] })).toMatchObject({
      ok: true,
    });
    expect(await remoteTip('gitlab')).toBe(base);
    // A create lease against an existing branch is refused, not forced.
    const again = await scratch.pushLeased(url('gitlab'), 'main', ahead, undefined, { credentials: [] });
    expect(again.ok).toBe(false);
    expect(again.message).toMatch(/stale info|rejected/);
    expect(await remoteTip('gitlab')).toBe(base);
    // Fast-forward leased on the tip seen.
    expect(await scratch.pushLeased(url('gitlab'), 'main', ahead, base, { credentials: [] })).toMatchObject({
      ok: true,
    });
    expect(await remoteTip('gitlab')).toBe(ahead);
    // A lease on a tip that is no longer there is refused.
    const stale = await scratch.pushLeased(url('gitlab'), 'main', base, base, { credentials: [] });
    expect(stale.ok).toBe(false);
    expect(await remoteTip('gitlab')).toBe(ahead);
  });
});
