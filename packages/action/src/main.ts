import * as core from '@actions/core';
import * as github from '@actions/github';
import { RefbridgeError } from '@refbridge/core';
import { readInputs } from './inputs.js';

/** The Action's entry: inputs -> core -> outputs. Every failure fails the step with a clear message. */
export function run(): void {
  try {
    // context.repo throws without GITHUB_REPOSITORY; an empty default lets the input check report it.
    const inputs = readInputs(process.env['GITHUB_REPOSITORY'] ?? '');
    core.info(`refbridge: mirroring ${github.context.ref || '(no ref)'} to ${inputs.gitlabUrl}/${inputs.gitlabRepo}`);
    throw new RefbridgeError('mirroring from the Action is not available in this build yet', {
      hint: 'pin a released version of refbridge',
    });
  } catch (error) {
    core.setFailed(
      error instanceof RefbridgeError ? error.describe() : error instanceof Error ? error.message : String(error),
    );
  }
}

run();
