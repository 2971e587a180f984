/**
 * Git LFS detection. refbridge copies git objects only: a ref whose files are stored with Git LFS
 * would reach the other side as pointer files whose content is missing there (the failure of
 * mirroring actions that reports success and leaves `LFS upload failed: (missing)` for the next
 * clone). So before a tip is pushed, its root `.gitattributes` is read for `filter=lfs`, which is
 * what `git lfs track` writes, and by default the push is refused with what to do instead.
 *
 * Only the root `.gitattributes` is read: that is where `git lfs track` writes, and reading one
 * blob per tip keeps the check to a single `git cat-file` for a whole push.
 */
import { randomBytes } from 'node:crypto';
import { ExitCode, RefbridgeError } from './errors.js';
import type { GitRunner, GitRunOptions } from './git-runner.js';
import { redactUrl } from './git-runner.js';

/** `fail`: refuse to push a tip that uses LFS. `pointers`: push the git data (pointers) and warn. */
export type LfsPolicy = 'fail' | 'pointers';
export const lfsPolicies: readonly LfsPolicy[] = ['fail', 'pointers'];
export const defaultLfsPolicy: LfsPolicy = 'fail';

export const LFS_ATTRIBUTES_FILE = '.gitattributes';

/** One line of `.gitattributes` that routes files through the LFS filter. */
export interface LfsAttributeLine {
  /** 1-based line number in `.gitattributes`. */
  line: number;
  /** The pattern of that line, e.g. `*.bin`. */
  pattern: string;
  /** The whole line, trimmed. */
  text: string;
}

/**
 * The lines of a `.gitattributes` text that set `filter=lfs`, directly or through a macro
 * (`[attr]big filter=lfs ...` then `*.bin big`). Comments, unset (`-filter`) and other filters
 * do not count.
 */
export function lfsAttributeLines(text: string): LfsAttributeLine[] {
  const macros = new Set<string>();
  const found: LfsAttributeLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    const [pattern, rest] = splitPattern(line);
    const attrs = rest.split(/\s+/).filter(Boolean);
    const lfs = attrs.some((a) => a === 'filter=lfs' || macros.has(a));
    if (pattern.startsWith('[attr]')) {
      // A macro only names attributes; files are routed by the lines that use it.
      if (lfs) macros.add(pattern.slice('[attr]'.length));
      return;
    }
    if (lfs) found.push({ line: i + 1, pattern, text: line });
  });
  return found;
}

/** A line's pattern (git allows a C-style quoted one) and the attributes after it. */
function splitPattern(line: string): [string, string] {
  if (line.startsWith('"')) {
    for (let i = 1; i < line.length; i++) {
      if (line[i] === '\\') i++;
      else if (line[i] === '"') return [line.slice(0, i + 1), line.slice(i + 1)];
    }
    return [line, ''];
  }
  const m = /^(\S+)\s*(.*)$/.exec(line);
  return m ? [m[1] ?? '', m[2] ?? ''] : [line, ''];
}

/**
 * Which of `tips` (commits or tag objects, all present in the repository `options.cwd` / GIT_DIR
 * names) track files with LFS in their root `.gitattributes`. One `git cat-file --batch` for all
 * of them; tips without the file, or without LFS lines in it, are absent from the result.
 */
export async function findLfsTips(
  git: GitRunner,
  tips: Iterable<string>,
  options: Pick<GitRunOptions, 'cwd' | 'env'>,
): Promise<Map<string, LfsAttributeLine[]>> {
  const unique = [...new Set(tips)];
  const found = new Map<string, LfsAttributeLine[]>();
  if (unique.length === 0) return found;
  // Records are split on a marker, not on the byte sizes cat-file prints: the runner hands
  // output over as decoded text, whose length differs from the bytes for non-UTF-8 content.
  const marker = `refbridge-${randomBytes(8).toString('hex')}`;
  const names = unique.map((tip) => `${tip}:${LFS_ATTRIBUTES_FILE}`);
  const { stdout } = await git.run(['cat-file', `--batch=${marker} %(objecttype)`], {
    ...options,
    input: names.join('\n') + '\n',
  });
  // Each record starts at a line boundary with "<marker> <type>\n<content>\n" for an object, or
  // "<name> missing\n" for a tip without the file.
  let at = 0;
  unique.forEach((tip, i) => {
    const missing = `${names[i]} missing\n`;
    if (stdout.startsWith(missing, at)) {
      at += missing.length;
      return;
    }
    const header = `${marker} `;
    if (!stdout.startsWith(header, at)) {
      throw new RefbridgeError(`could not read ${LFS_ATTRIBUTES_FILE} of ${tip}: unexpected output of git cat-file`, {
        hint: 'run `git cat-file -p <tip>:.gitattributes` in the repository to see what git reports',
      });
    }
    const eol = stdout.indexOf('\n', at);
    const type = stdout.slice(at + header.length, eol);
    const next = nextRecord(stdout, eol + 1, marker, names[i + 1]);
    // cat-file ends each content with a newline of its own.
    const content = stdout.slice(eol + 1, Math.max(eol + 1, next - 1));
    at = next;
    if (type !== 'blob') return;
    const lines = lfsAttributeLines(content);
    if (lines.length > 0) found.set(tip, lines);
  });
  return found;
}

function nextRecord(out: string, from: number, marker: string, nextName: string | undefined): number {
  if (nextName === undefined) return out.length;
  const candidates = [out.indexOf(`\n${marker} `, from - 1), out.indexOf(`\n${nextName} missing\n`, from - 1)]
    .filter((p) => p >= 0)
    .map((p) => p + 1);
  return candidates.length > 0 ? Math.min(...candidates) : out.length;
}

/** `line 3 ("*.bin filter=lfs diff=lfs merge=lfs -text")`, for messages. */
export function describeLfsLines(lines: readonly LfsAttributeLine[]): string {
  const shown = lines.slice(0, 3).map((l) => `line ${l.line} (${JSON.stringify(l.text)})`);
  const more = lines.length > 3 ? ` and ${lines.length - 3} more` : '';
  return `${LFS_ATTRIBUTES_FILE} ${shown.join(', ')}${more}`;
}

/** How to copy the LFS objects by hand, between two clone URLs (credentials removed). */
export function lfsCopyCommands(sourceUrl: string, targetUrl: string): string {
  return `git lfs fetch --all ${redactUrl(sourceUrl)} && git lfs push --all ${redactUrl(targetUrl)}`;
}

/** A tip that uses Git LFS was not pushed (policy `lfs: fail`). */
export class LfsNotMirroredError extends RefbridgeError {
  readonly ref: string;
  readonly lines: readonly LfsAttributeLine[];

  constructor(ref: string, sourceUrl: string, targetUrl: string, lines: readonly LfsAttributeLine[]) {
    super(
      redactUrl(
        `${ref} of ${sourceUrl} stores files with Git LFS (${describeLfsLines(lines)}), and refbridge copies git objects only, not LFS objects: ${targetUrl} would get pointer files whose content is missing. ${ref} was not pushed.`,
      ),
      {
        exitCode: ExitCode.failure,
        hint: `copy the LFS objects separately, from a clone of the source: \`${lfsCopyCommands(sourceUrl, targetUrl)}\`; then re-run with lfs set to pointers (Action and component input \`lfs: pointers\`, \`refbridge mirror --lfs pointers\`, \`lfs: pointers\` in refbridge.yaml, or REFBRIDGE_LFS=pointers), which pushes the git data and warns each time`,
      },
    );
    this.ref = ref;
    this.lines = lines;
  }
}
