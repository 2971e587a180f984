export * from './errors.js';
export * from './secret-masker.js';
export * from './logger.js';
export * from './git-runner.js';
