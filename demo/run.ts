import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentialEnv } from '@refbridge/core';
import { startForge, type RunningForge } from '../test/forge/src/server.js';
import { repoRoot } from '../test/support/paths.js';
import { node24 } from '../test/support/node24.js';
import { runGithubAction, runGitlabJob, writeCliShim, type CiWorld } from './ci-runners.js';
import { ALL_TOKENS, BOT, PAIRS, SEED, TOKENS, demoConfig } from './demo-world.js';
import { DemoFailure, Narrator, short } from './narrator.js';

/**
 * `npm run demo`: the whole of refbridge on one machine, with no account, token or network. A
 * local GitHub and GitLab (the test forge, in this process, on 127.0.0.1), the real CLI from
 * packages/cli/dist as a child process, the bundled Action from dist/ as GitHub's runner starts it,
 * and the GitLab component's job script as GitLab's runner starts it. Every temp directory lives
 * under one root that is removed at the end; the forge stops with the process.
 *
 * `--keep` leaves the forge running after the story and prints how to look around, until Ctrl-C.
 */

const USAGE = `usage: npm run demo [-- --keep]

  Runs the refbridge demo against a local, throwaway GitHub and GitLab (no token, no network).
  --keep   leave the local GitHub and GitLab running afterwards and print how to explore them,
           until Ctrl-C
`;

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const unknown = args.filter((a) => a !== '--keep');
if (unknown.length > 0) {
  process.stderr.write(`demo: unknown argument ${unknown.join(' ')}\n\n${USAGE}`);
  process.exit(2);
}
const keep = args.includes('--keep');

const cliBin = join(repoRoot, 'packages', 'cli', 'dist', 'bin.js');
if (!existsSync(cliBin)) {
  process.stderr.write(`demo: ${cliBin} is missing: build first (\`npm run demo\` does: npm run build)\n`);
  process.exit(2);
}
const narrator = new Narrator(ALL_TOKENS);
const started = Date.now();
/** What SIGINT/SIGTERM do now: clean up and exit during the story, end the exploration after it. */
let onSignal: () => void = () => undefined;
let interrupted = false;

interface Person {
  login: string;
  name: string;
  email: string;
}
const ALICE: Person = { login: 'alice', name: 'Alice Example', email: 'alice@example.com' };
const CAROL: Person = { login: 'carol', name: 'Carol Example', email: 'carol@example.com' };

async function main(root: string, onForge: (f: RunningForge) => void): Promise<void> {
  const home = join(root, 'home');
  const work = join(root, 'work');
  const people = join(root, 'people');
  const ci = join(root, 'ci');
  const shimDir = join(root, 'bin');
  for (const d of [home, work, people, ci]) await mkdir(d, { recursive: true });

  // Only what the demo chooses goes to child processes: a token in the caller's own environment
  // (a real GITHUB_TOKEN, say) must never reach them.
  const baseEnv: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: home,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    ...(process.env['TMPDIR'] ? { TMPDIR: process.env['TMPDIR'] } : {}),
  };
  const gitEnv = {
    GIT_AUTHOR_NAME: 'Demo',
    GIT_AUTHOR_EMAIL: 'demo@example.com',
    GIT_COMMITTER_NAME: 'Demo',
    GIT_COMMITTER_EMAIL: 'demo@example.com',
  };

  // 1. The forge --------------------------------------------------------------------------------
  narrator.title('refbridge demo: GitHub and GitLab kept in step, on this machine (no account, no token, no network)');
  narrator.section('A local GitHub and GitLab');
  const forge = await startForge({ seed: SEED, dataDir: join(root, 'forge') });
  onForge(forge);
  const gh = forge.urls.github;
  const gl = forge.urls.gitlab;
  narrator.say(
    'The test forge serves both platforms (REST API and git over HTTP) on loopback:',
    `  GitHub  ${gh.web}   org acme: widgets (main, develop, tag v1.0.0), gadgets`,
    `  GitLab  ${gl.web}   group acme: tools (main, tag v0.1.0)`,
    `People: alice (GitHub org admin), carol (GitLab group owner), ${BOT} (the account mirrors push as).`,
    'Their tokens are fake and valid only there. refbridge.yaml pairs widgets, gadgets and tools.',
  );
  await writeFile(
    join(work, 'refbridge.yaml'),
    demoConfig({ githubWeb: gh.web, githubApi: gh.api, gitlabWeb: gl.web }),
  );

  const adminEnv = {
    ...baseEnv,
    GITHUB_TOKEN: TOKENS.githubAdmin,
    GITLAB_TOKEN: TOKENS.gitlabAdmin,
    // GitHub asks API clients to space writes 1 s apart; the forge does not need it.
    REFBRIDGE_GITHUB_WRITE_INTERVAL_MS: '0',
  };
  const refbridge = async (
    argv: string[],
    options: { expect?: readonly number[]; env?: Record<string, string>; hide?: (line: string) => boolean } = {},
  ) => {
    narrator.command(`refbridge ${argv.join(' ')}`);
    return narrator.run(process.execPath, [cliBin, ...argv], {
      cwd: work,
      env: options.env ?? adminEnv,
      ...(options.expect ? { expect: options.expect } : {}),
      ...(options.hide ? { hide: options.hide } : {}),
      // The report on stdout says what the log on stderr said as it happened.
      hideStderr: argv[0] !== 'backup',
    });
  };

  // People push with plain git and their own token (through the environment, like refbridge).
  const personGit = (who: Person, platform: 'github' | 'gitlab') => {
    const token = platform === 'github' ? TOKENS.githubAdmin : TOKENS.gitlabAdmin;
    const env = {
      ...baseEnv,
      GIT_AUTHOR_NAME: who.name,
      GIT_AUTHOR_EMAIL: who.email,
      GIT_COMMITTER_NAME: who.name,
      GIT_COMMITTER_EMAIL: who.email,
      ...credentialEnv([{ url: forge.urls[platform].web, username: who.login, token }]),
    };
    return async (cwd: string, argv: string[]): Promise<string> =>
      (await narrator.run('git', argv, { cwd, env, quiet: true })).stdout.trim();
  };
  const alice = personGit(ALICE, 'github');
  const carol = personGit(CAROL, 'gitlab');
  const commit = async (g: typeof alice, dir: string, file: string, content: string, message: string) => {
    await writeFile(join(dir, file), content);
    await g(dir, ['add', file]);
    await g(dir, ['commit', '-q', '-m', message]);
    return g(dir, ['rev-parse', 'HEAD']);
  };

  // 2. Bootstrap --------------------------------------------------------------------------------
  narrator.section('refbridge bootstrap: set every pair up, once');
  narrator.say(
    "An admin runs it with their own tokens (GITHUB_TOKEN, GITLAB_TOKEN) and the bot's",
    '(REFBRIDGE_MIRROR_GITHUB_TOKEN, REFBRIDGE_MIRROR_GITLAB_TOKEN). It creates missing repositories, stores',
    "the bot's tokens (a sealed GitHub secret, a masked GitLab variable) and commits the CI files into",
    'each pair: one commit that both sides receive.',
  );
  // The report has one table per pair; the demo shows the first and the summary.
  let shownPairs = 0;
  let inSummary = false;
  await refbridge(['bootstrap'], {
    env: {
      ...adminEnv,
      REFBRIDGE_MIRROR_GITHUB_TOKEN: TOKENS.githubBot,
      REFBRIDGE_MIRROR_GITLAB_TOKEN: TOKENS.gitlabBot,
    },
    hide: (line) => {
      if (/^\w+: GitHub \S+ <-> GitLab \S+$/.test(line)) {
        shownPairs++;
        if (shownPairs === 2)
          narrator.output('(gadgets: the same; tools: the same with the repository created on GitHub)');
      }
      if (/^pair\s+status/.test(line)) inSummary = true;
      return shownPairs > 1 && !inSummary;
    },
  });

  // 3. First sync -------------------------------------------------------------------------------
  narrator.section('refbridge sync: the first full copy');
  narrator.say(
    'bootstrap gave both sides the default branch; the daemon copies every other branch and tag and',
    'records, per ref, the tip both sides agree on (the base it compares with next time).',
  );
  await refbridge(['sync']);

  // 4. A push on GitHub, mirrored by the Action -------------------------------------------------
  narrator.section('A push on GitHub, mirrored by the Action');
  const aliceWidgets = join(people, 'alice-widgets');
  await alice(people, ['clone', '-q', `${gh.web}/acme/widgets.git`, aliceWidgets]);
  const ghBefore = await alice(aliceWidgets, ['rev-parse', 'HEAD']);
  const ghAfter = await commit(alice, aliceWidgets, 'src/widget.txt', 'a better widget\n', 'Improve the widget');
  await alice(aliceWidgets, ['push', '-q', 'origin', 'main']);
  narrator.say(`alice pushes ${short(ghAfter)} "Improve the widget" to acme/widgets main on GitHub.`);
  const world: CiWorld = { forge, narrator, repoRoot, work: ci, baseEnv, gitEnv };
  let actionNode: string;
  try {
    actionNode = node24();
  } catch {
    actionNode = process.execPath;
    narrator.say(`(Node 24 is not installed here: the Action runs under this Node, ${process.version}.)`);
  }
  const action = await runGithubAction(
    world,
    { repo: 'acme/widgets', actor: 'alice', branch: 'main', before: ghBefore, after: ghAfter },
    { node: actionNode, runnerToken: TOKENS.githubRunner },
  );
  if (action.result !== 'pushed' || action.targetSha !== ghAfter)
    throw new DemoFailure(`the Action reported ${action.result} ${action.targetSha}, expected pushed ${ghAfter}`);
  narrator.say(`Step outputs: result=${action.result}, target-sha=${short(action.targetSha)}: GitLab has the commit.`);
  await writeCliShim(shimDir, process.execPath, cliBin);
  narrator.say(`GitLab starts a pipeline for ${BOT}'s push; the job sees the bot and stops (no bounce):`);
  await runGitlabJob(
    world,
    { repo: 'acme/widgets', actor: BOT, branch: 'main', before: ghBefore, after: ghAfter },
    { shimDir, jobToken: TOKENS.gitlabJob },
  );

  // 5. A push on GitLab, mirrored by the GitLab job --------------------------------------------
  narrator.section('A push on GitLab, mirrored by the GitLab CI/CD component');
  const carolTools = join(people, 'carol-tools');
  await carol(people, ['clone', '-q', `${gl.web}/acme/tools.git`, carolTools]);
  const glBefore = await carol(carolTools, ['rev-parse', 'HEAD']);
  const glAfter = await commit(carol, carolTools, 'build.sh', '#!/bin/sh\nmake all\n', 'Add a build script');
  await carol(carolTools, ['push', '-q', 'origin', 'main']);
  narrator.say(
    `carol pushes ${short(glAfter)} "Add a build script" to acme/tools main on GitLab. The pipeline runs`,
    'the job that the include in .gitlab-ci.yml brings in: a shallow checkout, then `refbridge mirror`.',
  );
  const job = await runGitlabJob(
    world,
    { repo: 'acme/tools', actor: 'carol', branch: 'main', before: glBefore, after: glAfter },
    { shimDir, jobToken: TOKENS.gitlabJob },
  );
  if (!/refs\/heads\/main: pushed/.test(job.stdout))
    throw new DemoFailure('the GitLab job did not push refs/heads/main to GitHub');
  await runGithubAction(
    world,
    { repo: 'acme/tools', actor: BOT, branch: 'main', before: glBefore, after: glAfter },
    { node: actionNode, runnerToken: TOKENS.githubRunner },
  );

  // 6. Divergence -------------------------------------------------------------------------------
  narrator.section('Both sides change the same branch: refbridge sync catches it');
  await alice(aliceWidgets, ['fetch', '-q', 'origin']);
  await alice(aliceWidgets, ['checkout', '-q', 'develop']);
  const ghDev = await commit(alice, aliceWidgets, 'src/next.txt', 'next widget, GitHub take\n', 'Next widget: v2');
  await alice(aliceWidgets, ['push', '-q', 'origin', 'develop']);
  const carolWidgets = join(people, 'carol-widgets');
  await carol(people, ['clone', '-q', '--branch', 'develop', `${gl.web}/acme/widgets.git`, carolWidgets]);
  const glDev = await commit(carol, carolWidgets, 'src/next.txt', 'next widget, GitLab take\n', 'Next widget: v3');
  await carol(carolWidgets, ['push', '-q', 'origin', 'develop']);
  narrator.say(
    `alice pushes ${short(ghDev)} to develop on GitHub and carol pushes ${short(glDev)} to develop on GitLab,`,
    'while no runner was up to mirror either. Neither commit contains the other: no side may overwrite.',
    'The daemon (cron or `sync --watch`) is the safety net: it finds it, touches neither side of that ref,',
    'keeps syncing the rest and exits 3.',
  );
  const diverged = await refbridge(['sync'], { expect: [3] });
  const repair = /repair: refbridge (sync .*--keep) github\|gitlab/.exec(diverged.stdout)?.[1];
  const repairArgs = repair
    ? [...repair.split(/\s+/), 'github']
    : ['sync', '--pair', 'widgets', '--resolve', 'refs/heads/develop', '--keep', 'github'];

  // 7. Repair -----------------------------------------------------------------------------------
  narrator.section('The repair: keep one side');
  narrator.say(
    "The team decides GitHub's develop wins. refbridge moves GitLab's develop under a lease (only if it",
    'is still at the tip it saw) and keeps the commit it replaces in its cache, so nothing is lost.',
  );
  await refbridge(repairArgs);
  const pairsCache = join(home, '.cache', 'refbridge', 'pairs');
  for (const entry of (await readdir(pairsCache)).filter((e) => e.endsWith('.git')).sort()) {
    const kept = await narrator.run(
      'git',
      [
        '--git-dir',
        join(pairsCache, entry),
        'for-each-ref',
        '--format=%(objectname:short=7) %(refname)',
        'refs/refbridge/backup/',
      ],
      { cwd: work, env: baseEnv, quiet: true },
    );
    if (!kept.stdout.trim()) continue;
    narrator.command(`git --git-dir ~/.cache/refbridge/pairs/${entry} for-each-ref refs/refbridge/backup/`);
    for (const line of kept.stdout.trim().split('\n')) narrator.output(line);
  }
  narrator.say('A last run finds everything in step:');
  await refbridge(['sync']);

  // 8. Backup -----------------------------------------------------------------------------------
  narrator.section('refbridge backup: every repository of the org, with a checkout');
  narrator.say(
    'Bare mirrors of every ref (pull-request refs included) on local disk, and a working copy beside',
    'each with --checkout. A state file makes the next run fetch only what changed.',
  );
  const backupEnv = {
    ...baseEnv,
    GITHUB_TOKEN: TOKENS.githubAdmin,
    GITHUB_API_URL: gh.api,
    GITHUB_SERVER_URL: gh.web,
  };
  await refbridge(
    ['backup', '--backup-only', '--owner', 'acme', '--checkout', '--storage', 'mirror-data', '--progress', 'plain'],
    { env: backupEnv },
  );
  narrator.command('find mirror-data -maxdepth 3 -not -path "*/.refbridge*"');
  for (const line of await tree(join(work, 'mirror-data'), 'mirror-data', 3)) narrator.output(line);

  // 9. The final state --------------------------------------------------------------------------
  narrator.section('Final state: both sides, ref by ref');
  const refsOf = async (platform: 'github' | 'gitlab', path: string): Promise<Map<string, string>> => {
    const token = platform === 'github' ? TOKENS.githubAdmin : TOKENS.gitlabAdmin;
    const r = await narrator.run('git', ['ls-remote', '--heads', '--tags', `${forge.urls[platform].web}/${path}.git`], {
      cwd: work,
      env: {
        ...baseEnv,
        ...credentialEnv([
          { url: forge.urls[platform].web, username: platform === 'github' ? 'x-access-token' : 'oauth2', token },
        ]),
      },
      quiet: true,
    });
    const refs = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const [sha, ref] = line.split('\t');
      if (sha && ref && !ref.endsWith('^{}')) refs.set(ref, sha);
    }
    return refs;
  };
  const rows: string[][] = [];
  let differing = 0;
  for (const pair of PAIRS) {
    const [ghRefs, glRefs] = await Promise.all([refsOf('github', pair.github), refsOf('gitlab', pair.gitlab)]);
    const names = [...new Set([...ghRefs.keys(), ...glRefs.keys()])].sort(
      (a, b) => Number(a.startsWith('refs/tags/')) - Number(b.startsWith('refs/tags/')) || a.localeCompare(b),
    );
    names.forEach((ref, i) => {
      const same = ghRefs.get(ref) === glRefs.get(ref);
      if (!same) differing++;
      rows.push([
        i === 0 ? pair.name : '',
        ref.replace(/^refs\/heads\//, '').replace(/^refs\/tags\/(.*)$/, 'tag $1'),
        short(ghRefs.get(ref)),
        short(glRefs.get(ref)),
        same ? 'same' : 'DIFFERENT',
      ]);
    });
  }
  for (const line of table(['pair', 'ref', 'GitHub', 'GitLab', ''], rows)) narrator.output(line);
  if (differing > 0) throw new DemoFailure(`${differing} ref(s) differ between GitHub and GitLab at the end`);

  if (narrator.leaks.length > 0) {
    throw new DemoFailure(`a token appeared in output:\n  ${narrator.leaks.join('\n  ')}`);
  }
  narrator.say(
    '',
    'Every line above was checked: no token appeared in any output. refbridge passed them to git through',
    `its environment, never argv, URLs or files. Done in ${((Date.now() - started) / 1000).toFixed(1)} s.`,
  );

  if (keep) await explore(forge, work, home);
}

/** Directory entries down to `depth`, as `find` would list them (without refbridge's own state). */
async function tree(dir: string, shown: string, depth: number): Promise<string[]> {
  if (depth === 0) return [];
  const out: string[] = [];
  const entries = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && e.name !== '.refbridge')
    .sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    out.push(`${shown}/${e.name}`);
    if (!e.name.endsWith('.git')) out.push(...(await tree(join(dir, e.name), `${shown}/${e.name}`, depth - 1)));
  }
  return out;
}

function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** `--keep`: print how to look around, then wait for Ctrl-C. */
async function explore(forge: RunningForge, work: string, home: string): Promise<void> {
  const gh = forge.urls.github.web;
  const gl = forge.urls.gitlab.web;
  const lines = [
    '',
    "The local GitHub and GitLab keep running. Look around (the tokens are the demo's fake ones):",
    '',
    `  git ls-remote http://alice:${TOKENS.githubAdmin}@${gh.slice('http://'.length)}/acme/widgets.git`,
    `  git ls-remote http://oauth2:${TOKENS.gitlabAdmin}@${gl.slice('http://'.length)}/acme/widgets.git`,
    `  git clone http://alice:${TOKENS.githubAdmin}@${gh.slice('http://'.length)}/acme/tools.git`,
    `  curl -s -H 'Authorization: Bearer ${TOKENS.githubAdmin}' ${forge.urls.github.api}/repos/acme/widgets/branches`,
    `  curl -s -H 'PRIVATE-TOKEN: ${TOKENS.gitlabAdmin}' ${forge.urls.gitlab.api}/projects/acme%2Fwidgets/repository/branches`,
    `  curl -s ${gh}/_forge/pushes        # every push either side received (the forge's admin API)`,
    `  curl -s '${gh}/_forge/state?refs=1' # users, repos, variables, refs`,
    '',
    'Or run refbridge against it:',
    '',
    `  cd ${work}`,
    `  export GITHUB_TOKEN=${TOKENS.githubAdmin} GITLAB_TOKEN=${TOKENS.gitlabAdmin}`,
    `  export XDG_CACHE_HOME=${join(home, '.cache')} REFBRIDGE_GITHUB_WRITE_INTERVAL_MS=0`,
    `  node ${cliBin} sync --dry-run`,
    '',
    'Press Ctrl-C to stop the forge and remove every file the demo made.',
  ];
  process.stdout.write(lines.join('\n') + '\n');
  await new Promise<void>((resolve) => {
    onSignal = resolve;
  });
}

async function run(): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'refbridge-demo-'));
  let forge: RunningForge | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      narrator.killAll();
      await forge?.close();
      await rm(root, { recursive: true, force: true, maxRetries: 3 });
    })());
  // Ctrl-C in the middle of the story: stop the processes in flight, the forge, and remove the
  // files. While exploring (--keep), Ctrl-C is the normal way out.
  onSignal = () => {
    interrupted = true;
    process.stderr.write('\ndemo: interrupted, cleaning up\n');
    void stop().then(() => process.exit(130));
  };
  const handler = (): void => onSignal();
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    await main(root, (f) => (forge = f));
    return 0;
  } catch (error) {
    const message = error instanceof DemoFailure ? error.message : error instanceof Error ? error.stack : String(error);
    // Interrupted: the steps in flight fail because their processes were stopped; that is no news.
    if (!interrupted) process.stderr.write(`\ndemo FAILED: ${message}\n`);
    return 1;
  } finally {
    await stop();
    if (keep) process.stdout.write(`\ndemo: stopped the local GitHub and GitLab and removed ${root}\n`);
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}

process.exitCode = await run();
