import { readFile } from 'node:fs/promises';

export type TemplateName = 'github-mirror.yml' | 'gitlab-mirror.yml';

/**
 * The CI files bootstrap commits. Published builds carry them in dist/ci-templates (copied at
 * build time from the repo's ci-templates/, the one source); running from the repo's sources
 * reads that folder directly.
 */
export async function readTemplate(name: TemplateName): Promise<string> {
  const candidates = [
    new URL(`./ci-templates/${name}`, import.meta.url),
    new URL(`../../../ci-templates/${name}`, import.meta.url),
  ];
  for (const url of candidates) {
    try {
      return await readFile(url, 'utf8');
    } catch {
      // try the next location
    }
  }
  throw new Error(`refbridge is installed without its CI templates (${name}); reinstall @refbridge/cli`);
}
