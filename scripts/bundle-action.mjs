// Bundles the Action's entry (packages/action/src/main.ts) into dist/index.js, the file the
// runner executes with `runs.using: node24`. `--check` rebuilds into a temp dir and fails when
// the committed dist/ differs, so a stale bundle never ships.
import { build } from 'esbuild';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const outDir = check ? mkdtempSync(join(tmpdir(), 'refbridge-dist-')) : join(root, 'dist');

const alias = Object.fromEntries(
  ['core', 'github', 'gitlab'].map((p) => [`@refbridge/${p}`, join(root, 'packages', p, 'src', 'index.ts')]),
);

if (!check) {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
}

await build({
  entryPoints: [join(root, 'packages/action/src/main.ts')],
  outfile: join(outDir, 'index.js'),
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  alias,
  legalComments: 'none',
  logLevel: 'warning',
  // CommonJS dependencies bundled into an ES module still call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __refbridgeCreateRequire } from 'node:module';\nconst require = __refbridgeCreateRequire(import.meta.url);",
  },
});
// The runner decides ESM vs CJS by the nearest package.json; keep dist self-describing.
writeFileSync(join(outDir, 'package.json'), JSON.stringify({ type: 'module' }, null, 2) + '\n');

if (check) {
  const committed = join(root, 'dist');
  const names = new Set([...readdirSync(outDir), ...(existsSync(committed) ? readdirSync(committed) : [])]);
  const stale = [...names].filter((n) => {
    const a = join(outDir, n);
    const b = join(committed, n);
    return !existsSync(a) || !existsSync(b) || !readFileSync(a).equals(readFileSync(b));
  });
  rmSync(outDir, { recursive: true, force: true });
  if (stale.length > 0) {
    console.error(
      `dist/ is stale (${stale.join(', ')} differ from a fresh build). Run \`npm run bundle\` and commit dist/.`,
    );
    process.exit(1);
  }
  console.log('dist/ matches a fresh build of the Action.');
}
