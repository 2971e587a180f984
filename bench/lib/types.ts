/** What every scenario reports; `report.ts` turns it into the table, results.json and the doc. */

export interface Sample {
  seconds: number;
  peakRssBytes?: number | undefined;
  /** CPU of the command's own processes (refbridge or git, and their children). */
  cpuSeconds?: number | undefined;
  /** CPU of the forge serving it, on the same cores (see `Measured.forgeCpuSeconds`). */
  forgeCpuSeconds?: number | undefined;
  /** Bytes client -> forge through the counting proxy (HTTP included). */
  bytesUp?: number;
  /** Bytes forge -> client through the counting proxy. */
  bytesDown?: number;
  /** Request bodies of pushes as the forge received them (its push log's bytesReceived). */
  pushBytes?: number;
  apiCalls?: number;
  gitRequests?: number;
  /** Of those, POSTs (ls-refs, fetches and pushes; not the capability GETs). */
  gitPosts?: number;
}

export interface VariantResult {
  /** Name shown in the table. */
  name: string;
  /** Short name used when other variants are compared with this one ("naive", "c=1"). */
  label?: string;
  /** Variants (by name) it is compared with: the table shows the time ratio to each. */
  baselines?: string[];
  samples: Sample[];
  note?: string;
}

export interface TargetCheck {
  target: string;
  measured: string;
  /** null: not measurable in this run (reported as such, never as met). */
  met: boolean | null;
}

export interface ScenarioResult {
  id: string;
  title: string;
  params: Record<string, unknown>;
  variants: VariantResult[];
  targets: TargetCheck[];
  notes: string[];
  seconds: number;
}

export interface BenchContext {
  root: string;
  cacheDir: string;
  quick: boolean;
  /** Measured repetitions per variant. */
  runs: number;
  /** The built CLI (`packages/cli/dist/bin.js`), run as a child process. */
  cli: string;
  log(message: string): void;
}
