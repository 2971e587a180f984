// Bundles the CLI's entry (packages/cli/src/bin.ts) over the tsc output of the same name,
// packages/cli/dist/bin.js, with one chunk per lazily loaded command beside it. Why: node 20 spends
// 100 ms and more resolving and compiling the ~200 small ES modules of the CLI's dependencies
// (execa alone is most of them), a fixed cost of every run that the CI fast path, run once per
// push, pays in full. One file per command is read and compiled in a fraction of that.
//
// The chunks sit in dist/ itself (not a subdirectory) because the CLI finds its own files
// relative to the module that asks: ../package.json and ./ci-templates/. The other tsc outputs
// stay: they are the package's library entry (dist/index.js) and its types. A later `tsc -b` that
// re-emits dist/bin.js only swaps the bundle for the unbundled entry, which works the same.
import { build } from 'esbuild';
import { readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'packages', 'cli', 'dist');

const result = await build({
  // Written below, file by file through a rename: a CLI started while this runs (tests that
  // build while other suites run the bin) sees the old files or the new ones, never a gap.
  write: false,
  entryPoints: { bin: join(root, 'packages/cli/src/bin.ts') },
  outdir: outDir,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // Workspace packages from their sources, exactly as the Action's bundle takes them.
  alias: Object.fromEntries(
    ['core', 'github', 'gitlab'].map((p) => [`@refbridge/${p}`, join(root, 'packages', p, 'src', 'index.ts')]),
  ),
  plugins: [
    {
      // Core's subpath entries (@refbridge/core/git-runner, ...) likewise.
      name: 'core-subpaths',
      setup(b) {
        b.onResolve({ filter: /^@refbridge\/core\/[a-z-]+$/ }, (args) => ({
          path: join(root, 'packages', 'core', 'src', `${args.path.slice('@refbridge/core/'.length)}.ts`),
        }));
      },
    },
  ],
  legalComments: 'none',
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __refbridgeCreateRequire } from 'node:module';\nconst require = __refbridgeCreateRequire(import.meta.url);",
  },
});

const written = new Set();
for (const file of result.outputFiles) {
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, file.contents);
  renameSync(temp, file.path);
  written.add(file.path);
}
// Chunks of an earlier build: their names carry a content hash, so stale ones would pile up.
// Removed only after the new ones are in place, and never one this build wrote.
for (const name of readdirSync(outDir)) {
  if (/^chunk-.*\.js$/.test(name) && !written.has(join(outDir, name))) rmSync(join(outDir, name));
}
