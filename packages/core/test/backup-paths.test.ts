import { describe, expect, it } from '@jest/globals';
import { join, resolve } from 'node:path';
import {
  UnsafeRepoNameError,
  hostDirName,
  mirrorPaths,
  repoLockPath,
  repoPathProblem,
  stateFilePath,
} from '../src/backup-paths.js';
import type { PlatformName } from '../src/forge.js';

const storage = resolve('/srv/mirror-data');

describe('hostDirName', () => {
  it('names a forge by its host, keeping port and path prefix apart without ":"', () => {
    expect(hostDirName('https://github.com')).toBe('github.com');
    expect(hostDirName('https://GitHub.Example.com/')).toBe('github.example.com');
    expect(hostDirName('http://127.0.0.1:4001')).toBe('127.0.0.1_4001');
    expect(hostDirName('https://git.example.com/gitlab')).toBe('git.example.com_gitlab');
    expect(hostDirName('http://[::1]:8080')).toBe('ipv6---1_8080');
  });

  it('refuses a base URL whose path would not make a plain directory name', () => {
    expect(() => hostDirName('https://git.example.com/a%20b')).toThrow(UnsafeRepoNameError);
  });
});

describe('mirrorPaths', () => {
  it('puts each owner in its own directory, so one name under two owners never collides', () => {
    const a = mirrorPaths(storage, 'github.com', 'github', 'alice/tools');
    const b = mirrorPaths(storage, 'github.com', 'github', 'acme/tools');
    expect(a.gitDir).toBe(join(storage, 'github.com', 'alice', 'tools.git'));
    expect(b.gitDir).toBe(join(storage, 'github.com', 'acme', 'tools.git'));
    expect(a.key).not.toBe(b.key);
    expect(a.relativeGitDir).toBe('github.com/alice/tools.git');
  });

  it('keeps dots in names: user.github.io stays user.github.io, and the checkout sits beside the mirror', () => {
    const p = mirrorPaths(storage, 'github.com', 'github', 'user/user.github.io');
    expect(p.gitDir).toBe(join(storage, 'github.com', 'user', 'user.github.io.git'));
    expect(p.worktree).toBe(join(storage, 'github.com', 'user', 'user.github.io'));
    const dotted = mirrorPaths(storage, 'github.com', 'github', 'acme/.github');
    expect(dotted.gitDir).toBe(join(storage, 'github.com', 'acme', '.github.git'));
  });

  it('keeps GitLab nesting as directories', () => {
    const p = mirrorPaths(storage, 'gitlab.com', 'gitlab', 'platform/tools/api');
    expect(p.gitDir).toBe(join(storage, 'gitlab.com', 'platform', 'tools', 'api.git'));
    expect(p.worktree).toBe(join(storage, 'gitlab.com', 'platform', 'tools', 'api'));
  });

  it('keys ignore case, as both platforms do', () => {
    expect(mirrorPaths(storage, 'github.com', 'github', 'Acme/Tools').key).toBe(
      mirrorPaths(storage, 'github.com', 'github', 'acme/tools').key,
    );
  });

  it.each<[PlatformName, string]>([
    ['github', '../etc/passwd'],
    ['github', 'acme/..'],
    ['github', '/etc/passwd'],
    ['github', 'acme/tools.git'],
    ['github', 'acme'],
    ['github', 'a/b/c'],
    ['github', 'acme/to ols'],
    ['github', 'acme\\tools'],
    ['gitlab', 'group/../../x'],
    ['gitlab', 'group/.refbridge'],
    ['gitlab', 'group//x'],
    ['gitlab', 'group/x.git'],
  ])('refuses the %s name %j before it touches the filesystem', (platform, path) => {
    expect(repoPathProblem(platform, path)).toBeDefined();
    expect(() => mirrorPaths(storage, 'github.com', platform, path)).toThrow(UnsafeRepoNameError);
  });

  it('keeps state and locks in .refbridge, one lock per repo key', () => {
    expect(stateFilePath(storage)).toBe(join(storage, '.refbridge', 'backup-state.json'));
    const a = repoLockPath(storage, 'github.com/acme/tools');
    expect(a.startsWith(join(storage, '.refbridge', 'locks'))).toBe(true);
    expect(a).not.toBe(repoLockPath(storage, 'github.com/alice/tools'));
    expect(a).toBe(repoLockPath(storage, 'github.com/acme/tools'));
  });
});
