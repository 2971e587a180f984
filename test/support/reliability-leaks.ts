import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * The secrets half of the reliability suite: every canary token, in every form a leak would take
 * (raw, URL-encoded, Basic-auth base64 for the user names git and the adapters use), looked for in
 * everything refbridge emits (stdout, stderr, --json, job summaries), in every file below the
 * directories it writes (caches, storage, checkouts, `.git/config`), and in the argv of every
 * process on the machine while commands run (/proc/<pid>/cmdline, sampled every few ms by a worker
 * thread, so git and its `git-remote-http` helpers are seen however briefly they live).
 */

const BASIC_USERS = ['x-access-token', 'oauth2', 'git', 'token', 'gitlab-ci-token', 'carol', 'alice'];

/** The strings whose presence means a token leaked, with a label that does not repeat them. */
export function leakForms(tokens: readonly string[]): { value: string; label: string }[] {
  const forms = new Map<string, string>();
  tokens.forEach((t, i) => {
    forms.set(t, `token #${i + 1}`);
    forms.set(encodeURIComponent(t), `token #${i + 1} URL-encoded`);
    forms.set(Buffer.from(t).toString('base64'), `token #${i + 1} base64`);
    for (const u of BASIC_USERS)
      forms.set(Buffer.from(`${u}:${t}`).toString('base64'), `token #${i + 1} as Basic ${u}:…`);
  });
  return [...forms].map(([value, label]) => ({ value, label }));
}

export interface Leak {
  where: string;
  form: string;
  excerpt: string;
}

export interface SamplerReport {
  samples: number;
  /** Distinct command lines seen (capped). */
  processes: number;
  /** Distinct git processes that talk to a remote (ls-remote, fetch, push, remote-http). */
  gitNetworkProcesses: number;
  /** Of those, how many had the credentials in their environment (GIT_CONFIG_* extra header). */
  gitNetworkWithEnvCredentials: number;
  hits: { pid: string; cmdline: string }[];
}

// Plain CommonJS run in a worker thread: a tight loop that does not wait for the test's event loop.
const SAMPLER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const flag = new Int32Array(workerData.stop);
const needles = workerData.needles;
let samples = 0;
const seen = new Set();
const network = new Set();
const withEnv = new Set();
const hits = [];
while (Atomics.load(flag, 0) === 0) {
  let pids = [];
  try { pids = fs.readdirSync('/proc'); } catch {}
  for (const pid of pids) {
    if (pid < '0' || pid > '9') continue;
    let raw;
    try { raw = fs.readFileSync('/proc/' + pid + '/cmdline'); } catch { continue; }
    if (raw.length === 0) continue;
    const cmd = raw.toString('utf8').split('\\0').join(' ').trim();
    const key = pid + ' ' + cmd.slice(0, 300);
    if (seen.size < 20000) seen.add(key);
    if (/(^|\\/)git(-remote-https?)?\\s/.test(cmd) && /\\b(ls-remote|fetch|push|remote-https?|clone)\\b/.test(cmd) && network.size < 20000) {
      network.add(key);
      if (!withEnv.has(key)) {
        let env = '';
        try { env = fs.readFileSync('/proc/' + pid + '/environ').toString('utf8'); } catch {}
        if (/GIT_CONFIG_VALUE_\\d+=AUTHORIZATION: basic /.test(env)) withEnv.add(key);
      }
    }
    for (const n of needles) if (cmd.includes(n) && hits.length < 50 && !hits.some((h) => h.pid === pid)) hits.push({ pid, cmdline: cmd.slice(0, 400) });
  }
  samples++;
  Atomics.wait(flag, 0, 0, workerData.intervalMs);
}
parentPort.postMessage({ samples, processes: seen.size, gitNetworkProcesses: network.size, gitNetworkWithEnvCredentials: withEnv.size, hits });
`;

/** Samples every process's argv until stopped. */
export class ArgvSampler {
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly worker: Worker;
  private readonly result: Promise<SamplerReport>;

  constructor(tokens: readonly string[], intervalMs = 3) {
    if (process.platform !== 'linux') throw new Error('the argv sampler reads /proc (Linux only)');
    this.worker = new Worker(SAMPLER_SOURCE, {
      eval: true,
      workerData: { stop: this.stopFlag.buffer, needles: leakForms(tokens).map((f) => f.value), intervalMs },
    });
    this.result = new Promise((resolve, reject) => {
      this.worker.once('message', (m: SamplerReport) => resolve(m));
      this.worker.once('error', reject);
    });
  }

  async stop(): Promise<SamplerReport> {
    Atomics.store(this.stopFlag, 0, 1);
    Atomics.notify(this.stopFlag, 0);
    const report = await this.result;
    await this.worker.terminate();
    return report;
  }
}

/** Collects leaks from everything a test shows it, then reports them all at once. */
export class LeakCheck {
  readonly forms: { value: string; label: string }[];
  readonly leaks: Leak[] = [];
  /** How many texts and files were checked, for the figures. */
  textsChecked = 0;
  filesChecked = 0;

  constructor(readonly tokens: readonly string[]) {
    this.forms = leakForms(tokens);
  }

  /**
   * Checks one text. `::add-mask::` lines of an Action are the runner's masking protocol (they
   * carry the secret to the runner so it can hide it) and are the one place a token belongs.
   */
  text(where: string, text: string): void {
    this.textsChecked++;
    const visible = text
      .split('\n')
      .filter((l) => !l.startsWith('::add-mask::'))
      .join('\n');
    for (const form of this.forms) {
      const at = visible.indexOf(form.value);
      if (at >= 0) {
        const excerpt = visible
          .slice(Math.max(0, at - 60), at + form.value.length + 60)
          .split(form.value)
          .join('<TOKEN>');
        this.leaks.push({ where, form: form.label, excerpt });
        return; // one leak per text is enough to fail (encodings of one token overlap)
      }
    }
  }

  /** Checks every file below `dir` (symlinks not followed). */
  async tree(dir: string, skip: (path: string) => boolean = () => false): Promise<void> {
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
        const p = join(d, e.name);
        if (skip(p)) continue;
        if (e.isDirectory()) await walk(p);
        else if (e.isFile()) {
          this.filesChecked++;
          const content = await readFile(p).catch(() => undefined);
          if (!content) continue;
          const form = this.forms.find((f) => content.includes(f.value));
          if (form) this.leaks.push({ where: p, form: form.label, excerpt: '(file content)' });
        }
      }
    };
    await walk(dir);
  }

  sampler(report: SamplerReport, label: string): void {
    for (const h of report.hits) {
      let excerpt = h.cmdline;
      for (const form of this.forms) excerpt = excerpt.split(form.value).join('<TOKEN>');
      this.leaks.push({ where: `${label}: argv of pid ${h.pid}`, form: 'a token', excerpt });
    }
  }

  /** Failure message listing every leak, or undefined. */
  describe(): string | undefined {
    if (this.leaks.length === 0) return undefined;
    return `${this.leaks.length} leak(s):\n${this.leaks.map((l) => `  - ${l.where}: ${l.form} in "${l.excerpt}"`).join('\n')}`;
  }
}
