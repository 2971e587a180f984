import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BackupRunResult } from '@refbridge/core';

/**
 * `--metrics-port` in watch mode: Prometheus text on `/metrics` and a health check on `/healthz`.
 * Built so that a mirror which *looks* fresh but is not shows up: the last fully successful round
 * (complete listing, no failed repo) is reported separately from the last round, repos whose
 * mirror does not yet hold what the listing says are counted, and the lag is the age of the oldest
 * such change. `/healthz` turns 503 when no round has fully succeeded for too long.
 */

interface Snapshot {
  result: BackupRunResult;
  durationSeconds: number;
  /** Activity time of the oldest change the mirrors do not hold yet (ms), if any. */
  oldestBehindMs: number | undefined;
  behind: number;
  failing: string[];
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export class BackupMetrics {
  private last: Snapshot | undefined;
  private lastSuccessMs: number | undefined;
  private rounds = { success: 0, failure: 0 };
  private repoFailures = 0;
  private listingFailures = 0;
  private bytes = 0;
  private readonly startedMs = Date.now();

  constructor(
    /** Seconds between rounds: health allows a few of them to pass without success. */
    private readonly intervalSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  record(result: BackupRunResult): void {
    const started = Date.parse(result.startedAt);
    const finished = Date.parse(result.finishedAt);
    let oldestBehindMs: number | undefined;
    let behind = 0;
    for (const r of result.repos) {
      if (r.current) continue;
      behind++;
      const t = r.pushedAt === null ? finished : Date.parse(r.pushedAt);
      if (!Number.isNaN(t)) oldestBehindMs = oldestBehindMs === undefined ? t : Math.min(oldestBehindMs, t);
    }
    const ok = result.exitCode === 0 && !result.interrupted;
    if (ok) {
      this.rounds.success++;
      this.lastSuccessMs = finished;
    } else {
      this.rounds.failure++;
    }
    this.repoFailures += result.counts.failed;
    if (!result.listing.complete) this.listingFailures++;
    this.bytes += result.bytes;
    this.last = {
      result,
      durationSeconds: Math.max(0, (finished - started) / 1000),
      oldestBehindMs,
      behind,
      failing: result.repos.filter((r) => r.status === 'failed').map((r) => r.repo),
    };
  }

  /** Seconds without a fully successful round after which the backup counts as unhealthy. */
  private staleAfterSeconds(): number {
    const duration = this.last?.durationSeconds ?? 0;
    return Math.max(300, 3 * this.intervalSeconds + 2 * duration);
  }

  health(): { status: number; body: Record<string, unknown> } {
    const now = this.now();
    const reference = this.lastSuccessMs ?? this.startedMs;
    const age = (now - reference) / 1000;
    const limit = this.staleAfterSeconds();
    const body: Record<string, unknown> = {
      lastSuccess: this.lastSuccessMs === undefined ? null : new Date(this.lastSuccessMs).toISOString(),
      lastRound: this.last ? this.last.result.finishedAt : null,
      listingComplete: this.last?.result.listing.complete ?? null,
      failing: this.last?.failing.length ?? 0,
      behind: this.last?.behind ?? 0,
      staleAfterSeconds: limit,
    };
    if (this.last === undefined) {
      return age > limit
        ? { status: 503, body: { ...body, status: 'no round finished yet' } }
        : { status: 200, body: { ...body, status: 'starting' } };
    }
    if (age > limit)
      return { status: 503, body: { ...body, status: `no fully successful round for ${Math.round(age)} s` } };
    return { status: 200, body: { ...body, status: 'ok' } };
  }

  render(): string {
    const now = this.now();
    const out: string[] = [];
    const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [string, number][]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) out.push(`${name}${labels} ${Number.isFinite(value) ? value : 0}`);
    };
    const last = this.last;
    metric(
      'refbridge_backup_rounds_total',
      'counter',
      'Backup rounds by result (success: complete listing and no failed repo).',
      [
        ['{result="success"}', this.rounds.success],
        ['{result="failure"}', this.rounds.failure],
      ],
    );
    metric(
      'refbridge_backup_last_success_timestamp_seconds',
      'gauge',
      'End of the last fully successful round (0: none yet).',
      [['', this.lastSuccessMs === undefined ? 0 : this.lastSuccessMs / 1000]],
    );
    metric(
      'refbridge_backup_last_round_timestamp_seconds',
      'gauge',
      'End of the last round, successful or not (0: none yet).',
      [['', last ? Date.parse(last.result.finishedAt) / 1000 : 0]],
    );
    metric('refbridge_backup_round_duration_seconds', 'gauge', 'Duration of the last round.', [
      ['', last?.durationSeconds ?? 0],
    ]);
    metric(
      'refbridge_backup_listing_complete',
      'gauge',
      '1 if the last repo listing was complete, 0 if a page failed after retries.',
      [['', last ? (last.result.listing.complete ? 1 : 0) : 0]],
    );
    metric('refbridge_backup_listing_failures_total', 'counter', 'Rounds whose repo listing was incomplete.', [
      ['', this.listingFailures],
    ]);
    metric('refbridge_backup_repos', 'gauge', 'Repos in the last round by outcome.', [
      ['{status="listed"}', last?.result.listing.listed ?? 0],
      ['{status="selected"}', last?.result.listing.selected ?? 0],
      ...Object.entries(last?.result.counts ?? {}).map(
        ([k, v]) => [`{status="${escapeLabel(k)}"}`, v] as [string, number],
      ),
    ]);
    metric('refbridge_backup_repo_failures_total', 'counter', 'Failed repo backups over all rounds.', [
      ['', this.repoFailures],
    ]);
    metric('refbridge_backup_fetched_bytes_total', 'counter', 'Bytes added to the mirrors over all rounds.', [
      ['', this.bytes],
    ]);
    metric(
      'refbridge_backup_repos_behind',
      'gauge',
      'Repos whose mirror does not hold what the listing shows (failed, locked or interrupted).',
      [['', last?.behind ?? 0]],
    );
    metric(
      'refbridge_backup_lag_seconds',
      'gauge',
      'Age of the oldest upstream change not yet in a mirror (0: all current).',
      [['', last?.oldestBehindMs === undefined ? 0 : Math.max(0, (now - last.oldestBehindMs) / 1000)]],
    );
    metric(
      'refbridge_backup_repo_failing',
      'gauge',
      'Repos that failed in the last round.',
      (last?.failing ?? []).map((r) => [`{repo="${escapeLabel(r)}"}`, 1] as [string, number]),
    );
    return `${out.join('\n')}\n`;
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(metrics: BackupMetrics, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metrics.render());
      return;
    }
    if (path === '/healthz') {
      const h = metrics.health();
      res.writeHead(h.status, { 'content-type': 'application/json' }).end(JSON.stringify(h.body));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
