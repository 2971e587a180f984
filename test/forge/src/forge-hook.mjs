// The forge's receive hooks: `node forge-hook.mjs pre-receive|proc-receive|post-receive`.
//
// git runs them inside `git http-backend` -> `git receive-pack`. They work out what git alone
// knows (is the update a force push? does it touch .github/workflows?) and ask the forge, over
// loopback HTTP, for the platform's decision. Plain JavaScript so each hook starts in a few ms.
//
// Env from the forge: FORGE_HOOK_URL (…/_forge/hooks), FORGE_PUSH_ID. Without them (a push made
// straight into the bare repo by a test or the seed) every hook lets the push through.
import { spawnSync } from 'node:child_process';
import { readFileSync, readSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import { URL } from 'node:url';

const ZERO = '0'.repeat(40);
const phase = process.argv[2];
const hookUrl = process.env.FORGE_HOOK_URL;
const pushId = process.env.FORGE_PUSH_ID;

function git(args, input) {
  const r = spawnSync('git', args, {
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
    ...(input === undefined ? {} : { input }),
  });
  return { code: r.status ?? -1, stdout: r.stdout ?? '' };
}

function post(path, body) {
  const url = new URL(`${hookUrl}/${path}`);
  const payload = Buffer.from(JSON.stringify({ pushId, ...body }));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': payload.length } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`forge answered ${res.statusCode}: ${text}`));
          else resolve(JSON.parse(text));
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function pushOptions() {
  const n = Number(process.env.GIT_PUSH_OPTION_COUNT ?? 0);
  const out = [];
  for (let i = 0; i < n; i++) out.push(process.env[`GIT_PUSH_OPTION_${i}`] ?? '');
  return out;
}

function parseLines(text) {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [oldOid, newOid, ref] = l.trim().split(' ');
      return { ref, old: oldOid, new: newOid, forced: false, touchesWorkflows: false };
    });
}

/** Fills `forced` and `touchesWorkflows` where the forge says a rule needs them. */
async function analyze(updates) {
  const plan = await post('plan', { updates });
  const needsForced = new Set(plan.forced);
  for (const u of updates) {
    if (!needsForced.has(u.ref)) continue;
    // 0: old is an ancestor (fast-forward); 1: not; 128: unknown objects, treated as forced.
    u.forced = git(['merge-base', '--is-ancestor', u.old, u.new]).code !== 0;
  }
  if (plan.workflows) {
    const filesOf = workflowChanges(updates.filter((u) => u.new !== ZERO).map((u) => u.new));
    for (const u of updates) {
      if (u.new === ZERO) continue;
      const files = filesOf(u.new);
      if (files.length > 0) {
        u.touchesWorkflows = true;
        u.workflowFiles = files;
      }
    }
  }
  return updates;
}

/**
 * For each new tip, the `.github/workflows/` files its new commits change, as
 * `git log --name-only <tip> --not --all -- .github/workflows/` lists them — but with one git
 * process for the whole push rather than one per ref (a push of thousands of branches would
 * otherwise start thousands). `--sparse --parents` prints every commit that walk visits with the
 * parents it follows (a merge TREESAME to one parent follows only that one), so each tip's share
 * of the walk is what its own `git log` would have visited.
 */
function workflowChanges(tips) {
  const unique = [...new Set(tips)];
  const graph = new Map(); // commit -> { parents, files: [{ file, seq }] }
  if (unique.length > 0) {
    const { stdout } = git(
      [
        'log',
        '--format=%x00%H %P',
        '--sparse',
        '--parents',
        '--name-only',
        '--no-renames',
        '--stdin',
        '--not',
        '--all',
        '--',
        '.github/workflows/',
      ],
      `${unique.join('\n')}\n`,
    );
    let seq = 0;
    for (const record of stdout.split('\0').slice(1)) {
      const [head = '', ...rest] = record.split('\n');
      const [commit, ...parents] = head.trim().split(' ').filter(Boolean);
      if (!commit) continue;
      const files = rest.filter((l) => l !== '').map((file) => ({ file, seq: seq++ }));
      graph.set(commit, { parents, files });
    }
  }
  // Memo: commit -> Map(file -> first position in log order) over everything it reaches.
  const EMPTY = new Map();
  const memo = new Map();
  const reach = (start) => {
    const stack = [start];
    for (let guard = 0; stack.length > 0 && guard < 50_000_000; guard++) {
      const c = stack[stack.length - 1];
      if (memo.has(c)) {
        stack.pop();
        continue;
      }
      const node = graph.get(c);
      if (!node) {
        memo.set(c, EMPTY);
        stack.pop();
        continue;
      }
      const pending = node.parents.filter((p) => !memo.has(p));
      if (pending.length > 0) {
        stack.push(...pending);
        continue;
      }
      stack.pop();
      const inherited = node.parents.map((p) => memo.get(p)).filter((m) => m.size > 0);
      if (node.files.length === 0 && inherited.length <= 1) {
        memo.set(c, inherited[0] ?? EMPTY);
        continue;
      }
      const merged = new Map();
      for (const m of [new Map(node.files.map((f) => [f.file, f.seq])), ...inherited]) {
        for (const [file, at] of m) {
          const seen = merged.get(file);
          if (seen === undefined || at < seen) merged.set(file, at);
        }
      }
      memo.set(c, merged);
    }
    return memo.get(start) ?? EMPTY;
  };
  return (tip) => [...reach(tip)].sort((a, b) => a[1] - b[1]).map(([file]) => file);
}

function say(lines) {
  for (const line of lines ?? []) process.stderr.write(`${line}\n`);
}

// --- pkt-line, for proc-receive -------------------------------------------------------------

function readExact(n) {
  const buf = Buffer.alloc(n);
  let off = 0;
  while (off < n) {
    let got;
    try {
      got = readSync(0, buf, off, n - off, null);
    } catch (error) {
      if (error.code === 'EAGAIN') continue;
      throw error;
    }
    if (got === 0) throw new Error('unexpected end of input from receive-pack');
    off += got;
  }
  return buf;
}

function readPkt() {
  const len = parseInt(readExact(4).toString('ascii'), 16);
  if (len === 0) return null;
  return readExact(len - 4)
    .toString('utf8')
    .replace(/\n$/, '');
}

function readPkts() {
  const out = [];
  for (let p = readPkt(); p !== null; p = readPkt()) out.push(p);
  return out;
}

function writePkt(s) {
  const b = Buffer.from(`${s}\n`, 'utf8');
  writeSync(1, (b.length + 4).toString(16).padStart(4, '0'));
  writeSync(1, b);
}

async function procReceive() {
  const [version] = readPkts();
  const caps = (version ?? '').split('\0')[1]?.split(' ') ?? [];
  const wantsOptions = caps.includes('push-options');
  writePkt(`version=1\0${wantsOptions ? 'push-options' : ''}`);
  writeSync(1, '0000');
  const updates = readPkts().map((line) => {
    const [oldOid, newOid, ref] = line.split(' ');
    return { ref, old: oldOid, new: newOid, forced: false, touchesWorkflows: false };
  });
  const options = wantsOptions ? readPkts() : [];
  let rejected = new Map();
  if (hookUrl && pushId) {
    const decision = await post('decide', { phase, updates: await analyze(updates), pushOptions: options });
    say(decision.messages);
    rejected = new Map((decision.rejected ?? []).map((r) => [r.ref, r.reason]));
  }
  const atomic = caps.includes('atomic') && rejected.size > 0;
  for (const u of updates) {
    if (rejected.has(u.ref)) writePkt(`ng ${u.ref} ${rejected.get(u.ref)}`);
    else if (atomic) writePkt(`ng ${u.ref} atomic push failure`);
    else {
      // Accepted: let receive-pack itself update the ref (with its usual compare-and-swap).
      writePkt(`ok ${u.ref}`);
      writePkt('option fall-through');
    }
  }
  writeSync(1, '0000');
}

async function main() {
  if (phase === 'proc-receive') return procReceive();
  const input = readFileSync(0, 'utf8');
  if (!hookUrl || !pushId) return;
  const updates = parseLines(input);
  if (phase === 'pre-receive') {
    const decision = await post('decide', { phase, updates: await analyze(updates), pushOptions: pushOptions() });
    say(decision.messages);
    if (!decision.ok) process.exitCode = 1;
  } else if (phase === 'post-receive') {
    const answer = await post('post-receive', { updates, pushOptions: pushOptions() });
    say(answer.messages);
  }
}

main().catch((error) => {
  process.stderr.write(`forge hook ${phase} failed: ${error?.message ?? error}\n`);
  process.exitCode = 1;
});
