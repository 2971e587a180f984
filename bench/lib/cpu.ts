import { readFileSync } from 'node:fs';

/**
 * CPU seconds used so far by this process and the children it has waited for (utime + stime +
 * cutime + cstime from /proc/self/stat). The forge runs in the bench process and runs git
 * http-backend as its children, so the difference over a measured command is the server side's
 * CPU, next to the client's own (from GNU time).
 */
export function selfAndChildrenCpuSeconds(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].map((i) => Number(fields[i] ?? NaN)).reduce((a, b) => a + b, 0);
    return Number.isFinite(ticks) ? ticks / 100 : undefined;
  } catch {
    return undefined;
  }
}
