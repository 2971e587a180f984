/**
 * One jest run for the whole repo. ESM throughout: the @actions/* and Octokit packages ship only
 * ESM, so tests run with --experimental-vm-modules (see the `test` script) and ts-jest in ESM mode.
 * Workspace packages map to their sources so tests never depend on a stale build.
 */
/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  resolver: 'ts-jest-resolver',
  moduleNameMapper: {
    '^@refbridge/(core|github|gitlab|cli)$': '<rootDir>/packages/$1/src/index.ts',
    // Core's subpath entries (package.json exports), named after their modules.
    '^@refbridge/core/([a-z-]+)$': '<rootDir>/packages/core/src/$1.ts',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.test.json' }],
  },
  testMatch: ['<rootDir>/packages/*/test/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  modulePathIgnorePatterns: ['<rootDir>/bench/.cache/'],
  // The machine has 2 cores; e2e tests start servers and git processes of their own.
  maxWorkers: 2,
  testTimeout: 60_000,
  verbose: false,
};
