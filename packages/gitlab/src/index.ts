export const platform = 'gitlab' as const;
export {
  createGitlabForge,
  GitlabForge,
  UnmaskableSecretError,
  normalizeProjectPath,
  type GitlabForgeOptions,
} from './gitlab-forge.js';
export {
  GitlabHttpError,
  GitlabNetworkError,
  GitlabTimeoutError,
  defaultRetry,
  type RetryOptions,
} from './gitlab-requester.js';
export { isMaskable, maskingProblems, MASKABLE_MIN_LENGTH } from './masking.js';
export { matchesRefPattern } from './ref-patterns.js';
