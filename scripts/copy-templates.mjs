// Copies the CI files bootstrap commits (ci-templates/*.yml) into the CLI package's dist, so the
// published @refbridge/cli carries them. ci-templates/ stays the one source.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'packages', 'cli', 'dist', 'ci-templates');
mkdirSync(out, { recursive: true });
for (const name of readdirSync(join(root, 'ci-templates'))) {
  if (name.endsWith('.yml')) copyFileSync(join(root, 'ci-templates', name), join(out, name));
}
