import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import * as prettier from 'prettier';
import { runChecked } from './proc.js';
import { field, formatBytes, formatRatio, formatSeconds, median, summarize, type Summary } from './stats.js';
import type { Sample, ScenarioResult, VariantResult } from './types.js';

/** The table on the console, `bench/results.json`, and the generated part of docs/benchmarks.md. */

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  node: string;
  git: string;
  loadAverageStart: number[];
  loadAverageEnd?: number[];
}

export async function describeMachine(): Promise<Machine> {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: `Linux ${release()}`,
    node: process.version,
    git: (await runChecked('git', ['--version'])).trim().replace(/^git version /, ''),
    loadAverageStart: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export interface Comparison {
  against: string;
  label: string;
  /** Baseline time / this variant's time: above 1, this variant is faster. */
  speedup: number;
  method: 'paired' | 'medians';
}

export interface VariantSummary {
  name: string;
  runs: number;
  seconds: Summary | undefined;
  peakRssBytes: number | undefined;
  cpuSeconds: number | undefined;
  forgeCpuSeconds: number | undefined;
  bytesUp: number | undefined;
  bytesDown: number | undefined;
  pushBytes: number | undefined;
  apiCalls: number | undefined;
  gitRequests: number | undefined;
  comparisons: Comparison[];
  note?: string;
  samples: Sample[];
}

/**
 * Ratios side by side: when both were measured in the same rounds, the median of per-round
 * ratios (each pair ran back to back under the same load); otherwise the ratio of medians.
 */
export function compare(v: VariantResult, base: VariantResult): Comparison {
  const a = v.samples.map((s) => s.seconds);
  const b = base.samples.map((s) => s.seconds);
  const label = base.label ?? base.name;
  if (a.length === b.length && a.length > 0) {
    return { against: base.name, label, speedup: median(b.map((x, i) => x / a[i]!)), method: 'paired' };
  }
  return { against: base.name, label, speedup: median(b) / median(a), method: 'medians' };
}

function med(samples: readonly Sample[], key: keyof Sample): number | undefined {
  const values = field(samples, key);
  return values.length > 0 ? median(values) : undefined;
}

export function summarizeVariant(v: VariantResult, all: readonly VariantResult[]): VariantSummary {
  return {
    name: v.name,
    runs: v.samples.length,
    seconds: summarize(v.samples.map((s) => s.seconds)),
    peakRssBytes: med(v.samples, 'peakRssBytes'),
    cpuSeconds: med(v.samples, 'cpuSeconds'),
    forgeCpuSeconds: med(v.samples, 'forgeCpuSeconds'),
    bytesUp: med(v.samples, 'bytesUp'),
    bytesDown: med(v.samples, 'bytesDown'),
    pushBytes: med(v.samples, 'pushBytes'),
    apiCalls: med(v.samples, 'apiCalls'),
    gitRequests: med(v.samples, 'gitRequests'),
    comparisons: (v.baselines ?? []).flatMap((name) => {
      const base = all.find((b) => b.name === name);
      return base && base.samples.length > 0 && v.samples.length > 0 ? [compare(v, base)] : [];
    }),
    ...(v.note === undefined ? {} : { note: v.note }),
    samples: v.samples,
  };
}

function comparisonText(c: Comparison): string {
  return c.speedup >= 1
    ? `${formatRatio(c.speedup)} faster than ${c.label}`
    : `${formatRatio(1 / c.speedup)} slower than ${c.label}`;
}

const HEADERS = [
  'Variant',
  'Runs',
  'Median',
  'Spread (min–max)',
  'Compared',
  'CPU (own / forge)',
  'Bytes',
  'Requests',
  'Peak RSS',
];

function variantRow(s: VariantSummary): string[] {
  const bytes =
    s.bytesUp !== undefined
      ? `up ${formatBytes(s.bytesUp)}, down ${formatBytes(s.bytesDown)}${s.pushBytes ? `, pushed ${formatBytes(s.pushBytes)}` : ''}`
      : s.pushBytes
        ? `pushed ${formatBytes(s.pushBytes)}`
        : '–';
  const requests =
    s.apiCalls !== undefined || s.gitRequests !== undefined
      ? `API ${s.apiCalls ?? '–'}, git ${s.gitRequests ?? '–'}`
      : '–';
  const spread = s.seconds && s.runs > 1 ? `${formatSeconds(s.seconds.min)} – ${formatSeconds(s.seconds.max)}` : '–';
  return [
    s.note ? `${s.name} †` : s.name,
    String(s.runs),
    s.seconds ? formatSeconds(s.seconds.median) : 'n/a',
    spread,
    s.comparisons.map(comparisonText).join('; ') || '–',
    `${s.cpuSeconds === undefined ? '–' : formatSeconds(s.cpuSeconds)} / ${s.forgeCpuSeconds === undefined ? '–' : formatSeconds(s.forgeCpuSeconds)}`,
    bytes,
    requests,
    formatBytes(s.peakRssBytes),
  ];
}

function verdict(met: boolean | null): string {
  return met === null ? 'n/a' : met ? 'MET' : 'MISSED';
}

export function textTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [
    `| ${headers.map(esc).join(' | ')} |`,
    `| ${headers.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

export interface BenchReport {
  generatedAt: string;
  command: string;
  profile: string;
  durationSeconds: number;
  machine: Machine;
  scenarios: (Omit<ScenarioResult, 'variants'> & { variants: VariantSummary[] })[];
}

export function buildReport(options: {
  command: string;
  profile: string;
  durationSeconds: number;
  machine: Machine;
  scenarios: readonly ScenarioResult[];
}): BenchReport {
  return {
    generatedAt: new Date().toISOString(),
    command: options.command,
    profile: options.profile,
    durationSeconds: Math.round(options.durationSeconds),
    machine: options.machine,
    scenarios: options.scenarios.map((s) => ({
      ...s,
      variants: s.variants.map((v) => summarizeVariant(v, s.variants)),
    })),
  };
}

function targetRows(report: BenchReport): string[][] {
  return report.scenarios.flatMap((s) =>
    s.targets.map((t) => [s.title.replace(/:.*$/, ''), t.target, t.measured, verdict(t.met)]),
  );
}

export function consoleReport(report: BenchReport): string {
  const out: string[] = [];
  for (const s of report.scenarios) {
    out.push(`\n${s.title}\n`);
    out.push(textTable(HEADERS, s.variants.map(variantRow)));
    for (const v of s.variants) if (v.note) out.push(`† ${v.name}: ${v.note}\n`);
  }
  out.push('\nTargets\n');
  out.push(textTable(['Scenario', 'Target', 'Measured', 'Result'], targetRows(report)));
  return out.join('');
}

function machineLine(m: Machine): string {
  const load = (l: number[] | undefined): string => (l ? l.map((x) => x.toFixed(2)).join(' / ') : '?');
  return (
    `${m.cpus} CPUs (${m.cpuModel}), ${formatBytes(m.memoryBytes)} memory, ${m.kernel}, node ${m.node}, git ${m.git}; ` +
    `load average (1/5/15 min) ${load(m.loadAverageStart)} at the start, ${load(m.loadAverageEnd)} at the end`
  );
}

export function markdownReport(report: BenchReport): string {
  const out: string[] = [];
  out.push(
    `Generated ${report.generatedAt.slice(0, 16).replace('T', ' ')} UTC by \`${report.command}\` (profile ${report.profile}, ${Math.round(report.durationSeconds / 60)} min).`,
  );
  out.push('');
  out.push(`Machine: ${machineLine(report.machine)}.`);
  out.push('');
  out.push('### Targets');
  out.push('');
  out.push(markdownTable(['Scenario', 'Target', 'Measured', 'Result'], targetRows(report)));
  for (const s of report.scenarios) {
    out.push('');
    out.push(`### ${s.title}`);
    out.push('');
    out.push(markdownTable(HEADERS, s.variants.map(variantRow)));
    const notes = [...s.variants.filter((v) => v.note).map((v) => `† ${v.name}: ${v.note}`), ...s.notes];
    if (notes.length > 0) {
      out.push('');
      for (const n of notes) out.push(`- ${n}`);
    }
  }
  return out.join('\n') + '\n';
}

export const BEGIN = '<!-- bench:results:begin (generated by npm run bench; edits here are overwritten) -->';
export const END = '<!-- bench:results:end -->';

/** Replaces the generated part of the doc, keeping the prose around it. */
export async function updateDoc(path: string, generated: string): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  const block = `${BEGIN}\n\n${generated}\n${END}`;
  const next =
    start >= 0 && end > start
      ? text.slice(0, start) + block + text.slice(end + END.length)
      : `${text.trimEnd()}${text ? '\n\n' : ''}## Results\n\n${block}\n`;
  // Formatted as the repo's own `prettier --check .` wants it.
  const options = (await prettier.resolveConfig(path)) ?? {};
  await writeFile(path, await prettier.format(next, { ...options, filepath: path }));
}
