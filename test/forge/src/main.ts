import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../../packages/core/src/errors.js';
import { loadSeedFile } from './seed.js';
import { startForge, type RunningForge } from './server.js';

/**
 * `npm run -s forge -- --seed FILE --port 0 [--data DIR]`: starts the forge, prints one JSON line
 * with its URLs on stdout, and serves until SIGINT/SIGTERM. Everything else goes to stderr, so a
 * caller can read the first stdout line and parse it.
 */

const USAGE = 'usage: forge --seed FILE [--port N|0] [--data DIR]   (GitHub on N, GitLab on N+1; 0 picks free ports)';

async function main(): Promise<number> {
  let values: { seed?: string; port?: string; data?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        seed: { type: 'string' },
        port: { type: 'string', default: '0' },
        data: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(`forge: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65534) {
    process.stderr.write(`forge: --port must be 0 or a free port number below 65535, got ${values.port}\n${USAGE}\n`);
    return 2;
  }
  const seed = values.seed === undefined ? undefined : await loadSeedFile(resolve(values.seed));
  let dataDir: string | undefined;
  if (values.data !== undefined) {
    dataDir = resolve(values.data);
    await mkdir(dataDir, { recursive: true });
  }

  const forge: RunningForge = await startForge({
    ...(seed === undefined ? {} : { seed }),
    ...(dataDir === undefined ? {} : { dataDir }),
    githubPort: port === 0 ? 0 : port,
    gitlabPort: port === 0 ? 0 : port + 1,
  });
  const line = {
    github: { web: forge.urls.github.web, api: forge.urls.github.api, git: forge.urls.github.web },
    gitlab: { web: forge.urls.gitlab.web, api: forge.urls.gitlab.api, git: forge.urls.gitlab.web },
    admin: `${forge.urls.github.web}/_forge`,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);

  await new Promise<void>((done) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`forge: ${signal}, stopping\n`);
      forge.close().then(done, (error: unknown) => {
        process.stderr.write(`forge: error while stopping: ${String(error)}\n`);
        done();
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`forge: ${error.describe()}\n`);
      process.exit(2);
    }
    process.stderr.write(`forge: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
