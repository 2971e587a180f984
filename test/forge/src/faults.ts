import type { ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { Platform } from './state.js';

/**
 * Fault injection for reliability tests: server errors, rate limiting, dropped connections and
 * slow responses, on API and git routes, either for every matching request, at a seeded rate, or
 * on the Nth matching request. Rules are matched in order; each rule counts its own matches, so
 * adding a rule never changes when another one fires.
 */

export type FaultType = 'status' | 'rate-limit' | 'drop' | 'slow';

export interface FaultRule {
  /** Echoed in `GET /_forge/faults` and in the request log's `fault` field; defaults to `rule-<n>`. */
  id?: string;
  platform?: Platform | 'both';
  kind?: 'api' | 'git' | 'both';
  /**
   * Matched against the route key: for the API the route pattern (`GET /repos/:owner/:repo`), for
   * git `GET info/refs?service=git-upload-pack`, `POST git-upload-pack`, `POST git-receive-pack`.
   * A substring, or a regular expression prefixed with `re:` (e.g. `re:^GET /repos/`).
   */
  route?: string;
  /** Same syntax, matched against the request path (e.g. one repo's `/acme/widgets.git/`). */
  path?: string;
  fault: FaultType;
  /** For `status`: 500, 502 or 503 (default 500). */
  status?: number;
  /** For `rate-limit`: seconds in `Retry-After` (default 60). */
  retryAfter?: number;
  /** For `slow`: delay before the request proceeds (default 1000 ms). */
  delayMs?: number;
  /** Probability 0..1 per matching request, drawn from a PRNG seeded with `seed`. */
  rate?: number;
  seed?: number;
  /** Fire on the Nth matching request (1-based) and, with `times`, the ones right after it. */
  nth?: number;
  /** Fire at most this many times (default: once with `nth`, unlimited otherwise). */
  times?: number;
  /**
   * Serve the request first (the write happens), then fail the answer: the client sees the
   * status, 429 or dropped connection of a request whose answer was lost on the way back, as
   * behind a proxy that timed out. API routes only (`kind: "api"`); not with `slow`.
   */
  afterApply?: boolean;
}

export type Fault = (
  | { kind: 'status'; status: number; ruleId: string; on: 'api' | 'git' }
  | { kind: 'rate-limit'; status: 429; retryAfter: number; ruleId: string; on: 'api' | 'git' }
  | { kind: 'drop'; ruleId: string; on: 'api' | 'git' }
  | { kind: 'slow'; delayMs: number; ruleId: string; on: 'api' | 'git' }
) & {
  /** The request is served first and only its answer fails (see `FaultRule.afterApply`). */
  afterApply: boolean;
};

export interface FaultRuleState {
  rule: FaultRule & { id: string };
  matched: number;
  fired: number;
}

export class FaultRuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FaultRuleError';
  }
}

/**
 * mulberry32: tiny, fast and deterministic, so a seeded rate gives the same faults every run (and
 * the reliability suites replay a failing run from the seed they printed).
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function matcher(pattern: string | undefined, label: string): (value: string) => boolean {
  if (pattern === undefined || pattern === '') return () => true;
  if (pattern.startsWith('re:')) {
    let re: RegExp;
    try {
      re = new RegExp(pattern.slice(3));
    } catch (error) {
      throw new FaultRuleError(`${label}: invalid regular expression ${pattern}: ${String(error)}`);
    }
    return (value) => re.test(value);
  }
  return (value) => value.includes(pattern);
}

interface CompiledRule extends FaultRuleState {
  matchRoute: (v: string) => boolean;
  matchPath: (v: string) => boolean;
  random: () => number;
}

/** Checks a rule and fills defaults; throws FaultRuleError naming the bad field. */
export function validateFaultRule(input: unknown, index: number): FaultRule & { id: string } {
  const label = `faults[${index}]`;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new FaultRuleError(`${label}: expected an object like {"fault":"status","status":503}`);
  }
  const r = input as Record<string, unknown>;
  const known = new Set([
    'id',
    'platform',
    'kind',
    'route',
    'path',
    'fault',
    'status',
    'retryAfter',
    'delayMs',
    'rate',
    'seed',
    'nth',
    'times',
    'afterApply',
  ]);
  for (const key of Object.keys(r)) {
    if (!known.has(key)) throw new FaultRuleError(`${label}: unknown field "${key}" (known: ${[...known].join(', ')})`);
  }
  const fault = r['fault'];
  if (fault !== 'status' && fault !== 'rate-limit' && fault !== 'drop' && fault !== 'slow') {
    throw new FaultRuleError(`${label}.fault: must be one of status, rate-limit, drop, slow`);
  }
  const optionalNumber = (key: string, ok: (n: number) => boolean, what: string): number | undefined => {
    const v = r[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new FaultRuleError(`${label}.${key}: ${what}`);
    return v;
  };
  const optionalString = (key: string): string | undefined => {
    const v = r[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new FaultRuleError(`${label}.${key}: must be a string`);
    return v;
  };
  const platform = r['platform'];
  if (platform !== undefined && platform !== 'github' && platform !== 'gitlab' && platform !== 'both') {
    throw new FaultRuleError(`${label}.platform: must be github, gitlab or both`);
  }
  const kind = r['kind'];
  if (kind !== undefined && kind !== 'api' && kind !== 'git' && kind !== 'both') {
    throw new FaultRuleError(`${label}.kind: must be api, git or both`);
  }
  const status = optionalNumber('status', (n) => [500, 502, 503].includes(n), 'must be 500, 502 or 503');
  const retryAfter = optionalNumber('retryAfter', (n) => Number.isInteger(n) && n >= 0, 'must be whole seconds >= 0');
  const delayMs = optionalNumber('delayMs', (n) => n >= 0 && n <= 600_000, 'must be 0..600000 ms');
  const rate = optionalNumber('rate', (n) => n >= 0 && n <= 1, 'must be between 0 and 1');
  const seed = optionalNumber('seed', (n) => Number.isInteger(n), 'must be an integer');
  const nth = optionalNumber('nth', (n) => Number.isInteger(n) && n >= 1, 'must be an integer >= 1');
  const times = optionalNumber('times', (n) => Number.isInteger(n) && n >= 1, 'must be an integer >= 1');
  if (rate !== undefined && nth !== undefined) throw new FaultRuleError(`${label}: use either rate or nth, not both`);
  const afterApply = r['afterApply'];
  if (afterApply !== undefined && typeof afterApply !== 'boolean') {
    throw new FaultRuleError(`${label}.afterApply: must be true or false`);
  }
  if (afterApply === true && kind !== 'api') {
    throw new FaultRuleError(
      `${label}.afterApply: only API requests can be applied and then failed; add "kind": "api"`,
    );
  }
  if (afterApply === true && fault === 'slow') {
    throw new FaultRuleError(`${label}.afterApply: use status, rate-limit or drop; a slow answer is not a failure`);
  }
  const route = optionalString('route');
  const path = optionalString('path');
  // Compile once here so a bad regex is reported when the rule is set, not on the first request.
  matcher(route, `${label}.route`);
  matcher(path, `${label}.path`);
  const rule: FaultRule & { id: string } = { id: optionalString('id') ?? `rule-${index + 1}`, fault };
  if (platform !== undefined) rule.platform = platform;
  if (kind !== undefined) rule.kind = kind;
  if (route !== undefined) rule.route = route;
  if (path !== undefined) rule.path = path;
  if (status !== undefined) rule.status = status;
  if (retryAfter !== undefined) rule.retryAfter = retryAfter;
  if (delayMs !== undefined) rule.delayMs = delayMs;
  if (rate !== undefined) rule.rate = rate;
  if (seed !== undefined) rule.seed = seed;
  if (nth !== undefined) rule.nth = nth;
  if (times !== undefined) rule.times = times;
  if (afterApply === true) rule.afterApply = true;
  return rule;
}

export class FaultInjector {
  private rules: CompiledRule[] = [];

  /** Replaces all rules (counters start from zero). */
  set(rules: readonly unknown[]): void {
    this.rules = rules.map((input, i) => {
      const rule = validateFaultRule(input, i);
      return {
        rule,
        matched: 0,
        fired: 0,
        matchRoute: matcher(rule.route, 'route'),
        matchPath: matcher(rule.path, 'path'),
        random: seededRandom(rule.seed ?? 1),
      };
    });
  }

  /** Adds rules after the existing ones. */
  add(rules: readonly unknown[]): void {
    const existing = this.rules.map((r) => r.rule);
    const counters = this.rules.map((r) => ({ matched: r.matched, fired: r.fired }));
    this.set([...existing, ...rules]);
    counters.forEach((c, i) => Object.assign(this.rules[i]!, c));
  }

  clear(): void {
    this.rules = [];
  }

  list(): FaultRuleState[] {
    return this.rules.map(({ rule, matched, fired }) => ({ rule, matched, fired }));
  }

  /** The fault for this request, if a rule fires; counts the request against every matching rule. */
  decide(platform: Platform, kind: 'api' | 'git', routeKey: string, path = ''): Fault | undefined {
    let chosen: Fault | undefined;
    for (const r of this.rules) {
      const { rule } = r;
      if (rule.platform !== undefined && rule.platform !== 'both' && rule.platform !== platform) continue;
      if (rule.kind !== undefined && rule.kind !== 'both' && rule.kind !== kind) continue;
      if (!r.matchRoute(routeKey) || !r.matchPath(path)) continue;
      r.matched++;
      const limit = rule.times ?? (rule.nth !== undefined ? 1 : Infinity);
      let fires: boolean;
      if (rule.nth !== undefined) fires = r.matched >= rule.nth && r.matched < rule.nth + limit;
      else if (rule.rate !== undefined) fires = r.random() < rule.rate && r.fired < limit;
      else fires = r.fired < limit;
      if (!fires || chosen) continue;
      r.fired++;
      chosen = toFault(rule, kind);
    }
    return chosen;
  }

  /**
   * Applies a fault to the response. `handled: false` (slow) means the request should now be
   * served normally; `status` 0 means the connection was dropped without an answer.
   */
  async apply(fault: Fault, platform: Platform, res: ServerResponse): Promise<{ handled: boolean; status: number }> {
    switch (fault.kind) {
      case 'slow':
        await delay(fault.delayMs);
        return { handled: false, status: 0 };
      case 'drop':
        res.socket?.destroy();
        res.destroy();
        return { handled: true, status: 0 };
      case 'status':
        send(res, fault.status, serverErrorBody(platform, fault.on, fault.status), {}, fault.on);
        return { handled: true, status: fault.status };
      case 'rate-limit': {
        const headers = rateLimitHeaders(platform, fault.retryAfter);
        send(res, 429, rateLimitBody(platform, fault.on), headers, fault.on);
        return { handled: true, status: 429 };
      }
    }
  }
}

function toFault(rule: FaultRule & { id: string }, on: 'api' | 'git'): Fault {
  const afterApply = rule.afterApply === true;
  switch (rule.fault) {
    case 'status':
      return { kind: 'status', status: rule.status ?? 500, ruleId: rule.id, on, afterApply };
    case 'rate-limit':
      return { kind: 'rate-limit', status: 429, retryAfter: rule.retryAfter ?? 60, ruleId: rule.id, on, afterApply };
    case 'drop':
      return { kind: 'drop', ruleId: rule.id, on, afterApply };
    case 'slow':
      return { kind: 'slow', delayMs: rule.delayMs ?? 1000, ruleId: rule.id, on, afterApply };
  }
}

function send(
  res: ServerResponse,
  status: number,
  body: string | object,
  headers: Record<string, string>,
  on: 'api' | 'git',
): void {
  const json = typeof body !== 'string';
  const text = json ? JSON.stringify(body) : body;
  res.writeHead(status, {
    ...headers,
    'content-type': json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    ...(on === 'git' ? { 'cache-control': 'no-cache' } : {}),
  });
  res.end(text);
}

function serverErrorBody(platform: Platform, on: 'api' | 'git', status: number): string | object {
  if (on === 'git') return status === 500 ? 'Internal Server Error\n' : 'Service Unavailable\n';
  if (platform === 'github') return { message: 'Server Error' };
  return {
    message: `${status} ${status === 500 ? 'Internal Server Error' : status === 502 ? 'Bad Gateway' : 'Service Unavailable'}`,
  };
}

function rateLimitHeaders(platform: Platform, retryAfter: number): Record<string, string> {
  const reset = String(Math.floor(Date.now() / 1000) + retryAfter);
  if (platform === 'github') {
    // The primary limit being exhausted: Octokit's throttling plugin reads remaining=0 + reset.
    return {
      'retry-after': String(retryAfter),
      'x-ratelimit-limit': '5000',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-used': '5000',
      'x-ratelimit-reset': reset,
      'x-ratelimit-resource': 'core',
    };
  }
  return {
    'retry-after': String(retryAfter),
    'ratelimit-limit': '2000',
    'ratelimit-observed': '2001',
    'ratelimit-remaining': '0',
    'ratelimit-reset': reset,
    'ratelimit-resettime': new Date(Number(reset) * 1000).toUTCString(),
  };
}

function rateLimitBody(platform: Platform, on: 'api' | 'git'): string | object {
  // GitLab's Rack::Attack throttle answers plain text on every route.
  if (platform === 'gitlab' || on === 'git') return 'Retry later\n';
  return {
    message: 'API rate limit exceeded. Check out the documentation for more information.',
    documentation_url:
      'https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits',
  };
}
