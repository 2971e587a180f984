export const platform = 'github' as const;

export { createGithubForge, defaultGithubApiUrl, GithubForge, type GithubForgeOptions } from './github-forge.js';
export { type GithubRetryOptions } from './github-client.js';
export { sealSecret } from './secret-box.js';
export { isValidRepoPath, parseRepoPath, type RepoPath } from './repo-info.js';
