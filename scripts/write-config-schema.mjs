// Writes packages/cli/schema/refbridge.schema.json, the schema editors use to complete and check
// refbridge.yaml, from the object the loader validates with (packages/core/src/config-schema.ts),
// so the two cannot drift. Run `npx tsc -b` first: this reads the built module. `--check` fails
// when the committed file differs instead of writing it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'packages/core/dist/config-schema.js');
const target = join(root, 'packages/cli/schema/refbridge.schema.json');
const check = process.argv.includes('--check');

if (!existsSync(built)) {
  console.error(`${built} is missing. Run \`npx tsc -b\` first.`);
  process.exit(1);
}
const { configSchema } = await import(built);
const options = (await prettier.resolveConfig(target)) ?? {};
const text = await prettier.format(JSON.stringify(configSchema, null, 2), { ...options, filepath: target });

if (check) {
  const committed = existsSync(target) ? readFileSync(target, 'utf8') : '';
  if (committed !== text) {
    console.error(
      'packages/cli/schema/refbridge.schema.json is stale. Run `npx tsc -b && node scripts/write-config-schema.mjs` and commit it.',
    );
    process.exit(1);
  }
  console.log('packages/cli/schema/refbridge.schema.json matches the config schema.');
} else {
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, text);
  console.log(`wrote ${target}`);
}
