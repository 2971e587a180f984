import type { RepoBackupResult } from '@refbridge/core';

/**
 * Progress of a backup run. On a terminal: a live block at the bottom of stderr (repos done of
 * total, failures, bytes fetched, the repos in hand), redrawn in place, with log lines printed
 * above it. In CI and pipes: plain lines, one per repo that changed or failed, and a heartbeat
 * every 30 s so a long run never looks hung. Unchanged repos are silent unless --verbose.
 */

export type ProgressMode = 'live' | 'plain' | 'off';

export interface Progress {
  /** Writes text (log lines) without tearing the live block. */
  print(text: string): void;
  listed(info: { listed: number; selected: number; complete: boolean }): void;
  start(repo: string, action: string): void;
  done(result: RepoBackupResult): void;
  /** Clears the live block; call before the summary. */
  stop(): void;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Chooses the mode for `--progress auto`: live only on a real terminal outside CI. */
export function autoProgressMode(
  env: Readonly<Record<string, string | undefined>>,
  stderrIsTTY: boolean,
): ProgressMode {
  if (!stderrIsTTY || env['CI'] || env['TERM'] === 'dumb') return 'plain';
  return 'live';
}

const ESC = '\u001b[';

export function createProgress(
  mode: ProgressMode,
  write: (text: string) => void,
  options: { verbose?: boolean; columns?: number; heartbeatMs?: number } = {},
): Progress {
  let total = 0;
  let finished = 0;
  let failed = 0;
  let bytes = 0;
  const started = Date.now();
  const active = new Map<string, { action: string; since: number }>();
  let drawnLines = 0;
  let timer: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  const columns = Math.max(40, options.columns ?? 100);

  const summaryLine = (): string =>
    `backup: ${finished}/${total} repos${failed ? `, ${failed} failed` : ''}, ${formatBytes(bytes)} fetched, ${formatDuration(Date.now() - started)}`;

  const clear = (): void => {
    if (mode !== 'live' || drawnLines === 0) return;
    write(`${ESC}${drawnLines}F${ESC}J`);
    drawnLines = 0;
  };
  const draw = (): void => {
    if (mode !== 'live') return;
    clear();
    const lines = [summaryLine()];
    const now = Date.now();
    for (const [repo, a] of [...active].slice(0, 8)) {
      lines.push(`  ${a.action.padEnd(7)} ${repo} (${Math.round((now - a.since) / 1000)} s)`.slice(0, columns - 1));
    }
    if (active.size > 8) lines.push(`  ... and ${active.size - 8} more`);
    write(lines.map((l) => `${l}\n`).join(''));
    drawnLines = lines.length;
  };

  const line = (text: string): void => {
    if (mode === 'off') return;
    clear();
    write(text.endsWith('\n') ? text : `${text}\n`);
    draw();
  };

  return {
    print(text) {
      if (mode === 'live') {
        clear();
        write(text);
        draw();
      } else {
        write(text);
      }
    },
    listed(info) {
      total = info.selected;
      line(
        `backup: ${info.listed} repo(s) listed${info.complete ? '' : ' (LIST INCOMPLETE)'}, ${info.selected} to look at`,
      );
      if (mode === 'live') timer = setInterval(draw, 250).unref();
      if (mode === 'plain') heartbeat = setInterval(() => line(summaryLine()), options.heartbeatMs ?? 30_000).unref();
    },
    start(repo, action) {
      active.set(repo, { action, since: Date.now() });
      draw();
    },
    done(result) {
      active.delete(result.repo);
      finished++;
      bytes += result.bytes;
      if (result.status === 'failed') failed++;
      const quiet = result.status === 'unchanged' && result.warnings.length === 0;
      if (!quiet || options.verbose) {
        const size = result.bytes > 0 ? ` (${formatBytes(result.bytes)})` : '';
        line(
          `[${String(finished).padStart(String(total).length)}/${total}] ${result.status.padEnd(9)} ${result.repo}: ${result.detail}${size}`,
        );
        for (const w of result.warnings) line(`    warning: ${w}`);
      } else {
        draw();
      }
    },
    stop() {
      if (timer) clearInterval(timer);
      if (heartbeat) clearInterval(heartbeat);
      timer = undefined;
      heartbeat = undefined;
      clear();
    },
  };
}
