import type { IncomingMessage, ServerResponse } from 'node:http';
import { FaultRuleError } from './faults.js';
import { handleHookCall, repoFullName } from './git-http.js';
import { parseBody, readBody, sendJson, type ApiResponse } from './http-kit.js';
import { listRefs } from './repo-writer.js';
import type { ForgeContext } from './server.js';
import type { Platform, RequestLogEntry } from './state.js';

/**
 * The forge's own API for tests, under `/_forge/` on both ports: request and push logs, decrypted
 * secrets, fault rules, a state summary, and the receive hooks' callback. Loopback only, no auth.
 * Its own requests are not logged, so request counts stay the platform calls a test made.
 */

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function filterLog<T extends { seq: number; platform: Platform }>(
  entries: readonly T[],
  q: URLSearchParams,
  kindOf?: (e: T) => string,
): T[] {
  const platform = q.get('platform');
  const kind = q.get('kind');
  const since = Number(q.get('since') ?? 0);
  return entries.filter(
    (e) =>
      (!platform || e.platform === platform) &&
      (!kind || !kindOf || kindOf(e) === kind) &&
      (!Number.isFinite(since) || e.seq > since),
  );
}

function summary(entries: readonly RequestLogEntry[]): object {
  const routes = new Map<
    string,
    { platform: Platform; kind: string; route: string; count: number; statuses: Record<string, number> }
  >();
  for (const e of entries) {
    const key = `${e.platform} ${e.kind} ${e.route}`;
    let r = routes.get(key);
    if (!r) {
      r = { platform: e.platform, kind: e.kind, route: e.route, count: 0, statuses: {} };
      routes.set(key, r);
    }
    r.count++;
    r.statuses[String(e.status)] = (r.statuses[String(e.status)] ?? 0) + 1;
  }
  const list = [...routes.values()].sort((a, b) => b.count - a.count || a.route.localeCompare(b.route));
  const byKind: Record<string, number> = {};
  for (const e of entries) byKind[`${e.platform}.${e.kind}`] = (byKind[`${e.platform}.${e.kind}`] ?? 0) + 1;
  return { total: entries.length, byKind, routes: list };
}

async function stateSummary(ctx: ForgeContext, withRefs: boolean): Promise<object> {
  const { state } = ctx;
  const refsOf = async (gitDir: string): Promise<Record<string, string> | undefined> =>
    withRefs ? Object.fromEntries(await listRefs(gitDir)) : undefined;
  const github = [];
  for (const r of state.githubRepos.values()) {
    github.push({
      fullName: repoFullName('github', r),
      id: r.id,
      visibility: r.visibility,
      defaultBranch: r.defaultBranch,
      archived: r.archived,
      pushedAt: r.pushedAt,
      protections: Object.fromEntries(
        [...r.protections].map(([b, p]) => [
          b,
          { allowForcePushes: p.allowForcePushes, allowDeletions: p.allowDeletions },
        ]),
      ),
      secrets: [...r.secrets.keys()],
      variables: [...r.variables.keys()],
      gitDir: r.gitDir,
      ...(withRefs ? { refs: await refsOf(r.gitDir) } : {}),
    });
  }
  const gitlab = [];
  for (const p of state.gitlabProjects.values()) {
    gitlab.push({
      fullPath: repoFullName('gitlab', p),
      id: p.id,
      visibility: p.visibility,
      defaultBranch: p.defaultBranch,
      archived: p.archived,
      lastActivityAt: p.lastActivityAt,
      protectedBranches: p.protectedBranches.map((b) => ({
        name: b.name,
        allowForcePush: b.allowForcePush,
        pushAccessLevel: b.pushAccessLevel,
      })),
      variables: p.variables.map((v) => v.key),
      gitDir: p.gitDir,
      ...(withRefs ? { refs: await refsOf(p.gitDir) } : {}),
    });
  }
  return {
    dataDir: state.dataDir,
    urls: ctx.urls,
    github: {
      users: [...state.githubUsers.values()].map((u) => u.login),
      orgs: [...state.githubOrgs.values()].map((o) => ({ login: o.login, members: o.members })),
      repos: github,
    },
    gitlab: {
      users: [...state.gitlabUsers.values()].map((u) => u.login),
      groups: [...state.gitlabGroups.values()].map((g) => ({
        fullPath: g.fullPath,
        id: g.id,
        parentId: g.parentId,
        visibility: g.visibility,
      })),
      projects: gitlab,
    },
    // Token values are secrets even here: show who holds what, never the value.
    tokens: [...state.tokens.values()].map((t) => ({
      platform: t.platform,
      user: t.user,
      name: t.name,
      scopes: t.scopes,
      expired: t.expired ?? false,
    })),
    counts: { requests: state.requestLog.length, pushes: state.pushLog.length },
  };
}

export async function handleAdminRequest(
  platform: Platform,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  ctx: ForgeContext,
): Promise<boolean> {
  void platform;
  const path = url.pathname;
  if (path !== '/_forge' && !path.startsWith('/_forge/')) return false;
  if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
    sendJson(res, { status: 403, body: { message: 'the forge admin API answers loopback clients only' } });
    return true;
  }
  const method = req.method ?? 'GET';
  const q = url.searchParams;
  const { state } = ctx;
  const body = async (): Promise<unknown> => parseBody(await readBody(req), req.headers['content-type']);
  let r: ApiResponse;
  try {
    r = await route();
  } catch (error) {
    r =
      error instanceof FaultRuleError
        ? { status: 422, body: { message: error.message } }
        : { status: 500, body: { message: `forge admin error: ${String(error)}` } };
  }
  sendJson(res, r);
  return true;

  async function route(): Promise<ApiResponse> {
    const hook = /^\/_forge\/hooks\/([a-z-]+)$/.exec(path);
    if (hook && method === 'POST') return handleHookCall(ctx, hook[1]!, await body());

    if (path === '/_forge/requests' && method === 'GET') {
      return { status: 200, body: filterLog(state.requestLog, q, (e) => e.kind) };
    }
    if (path === '/_forge/requests/summary' && method === 'GET') {
      return { status: 200, body: summary(filterLog(state.requestLog, q, (e) => e.kind)) };
    }
    if (path === '/_forge/requests/reset' && method === 'POST') {
      const removed = state.requestLog.length;
      state.requestLog.length = 0;
      return { status: 200, body: { removed, seq: state.nextSeq() } };
    }
    if (path === '/_forge/pushes' && method === 'GET') {
      const repo = q.get('repo')?.toLowerCase();
      return { status: 200, body: filterLog(state.pushLog, q).filter((p) => !repo || p.repo.toLowerCase() === repo) };
    }
    if (path === '/_forge/pushes/reset' && method === 'POST') {
      const removed = state.pushLog.length;
      state.pushLog.length = 0;
      return { status: 200, body: { removed } };
    }
    const secrets = /^\/_forge\/secrets\/github\/([^/]+)\/([^/]+)$/.exec(path);
    if (secrets && method === 'GET') {
      const repo = state.githubRepo(decodeURIComponent(secrets[1]!), decodeURIComponent(secrets[2]!));
      if (!repo) return { status: 404, body: { message: 'no such repo' } };
      return { status: 200, body: Object.fromEntries([...repo.secrets.values()].map((s) => [s.name, s.decrypted])) };
    }
    if (path === '/_forge/faults') {
      if (method === 'GET') return { status: 200, body: ctx.faults.list() };
      if (method === 'DELETE') {
        ctx.faults.clear();
        return { status: 204 };
      }
      if (method === 'POST') {
        const b = await body();
        const rules = Array.isArray(b)
          ? b
          : (b as { rules?: unknown } | undefined)?.rules !== undefined
            ? (b as { rules: unknown }).rules
            : [b];
        if (!Array.isArray(rules))
          return { status: 422, body: { message: 'send a rule, a list of rules, or {"rules": [...]}' } };
        if (q.get('append') === '1' || q.get('append') === 'true') ctx.faults.add(rules);
        else ctx.faults.set(rules);
        return { status: 200, body: ctx.faults.list() };
      }
    }
    if (path === '/_forge/state' && method === 'GET') {
      return { status: 200, body: await stateSummary(ctx, q.get('refs') === '1' || q.get('refs') === 'true') };
    }
    return {
      status: 404,
      body: {
        message: `no forge admin route ${method} ${path}`,
        routes: [
          'GET /_forge/requests?platform=&kind=&since=',
          'GET /_forge/requests/summary',
          'POST /_forge/requests/reset',
          'GET /_forge/pushes?platform=&repo=&since=',
          'POST /_forge/pushes/reset',
          'GET /_forge/secrets/github/:owner/:repo',
          'GET|POST|DELETE /_forge/faults',
          'GET /_forge/state?refs=1',
        ],
      },
    };
  }
}
