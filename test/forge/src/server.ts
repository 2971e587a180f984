import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { handleAdminRequest } from './admin.js';
import { FaultInjector } from './faults.js';
import { handleGitRequest } from './git-http.js';
import { registerGithubApi } from './github-api.js';
import { registerGitlabApi } from './gitlab-api.js';
import { Router, parseBody, presentedToken, readBody, sendJson, type ApiRequest } from './http-kit.js';
import { applySeed, loadSeedFile, type SeedSpec } from './seed.js';
import { ForgeState, now, type Platform } from './state.js';

export interface PlatformUrls {
  /** Web and git base, e.g. http://127.0.0.1:4001 (git: <web>/<owner>/<repo>.git). */
  web: string;
  /** REST base: <web>/api/v3 for GitHub (as GitHub Enterprise), <web>/api/v4 for GitLab. */
  api: string;
}

export interface ForgeContext {
  state: ForgeState;
  urls: Record<Platform, PlatformUrls>;
  faults: FaultInjector;
}

export interface RunningForge extends ForgeContext {
  close(): Promise<void>;
}

export interface StartForgeOptions {
  seed?: SeedSpec | string;
  /** Where bare repos live; a temp dir (removed on close) when omitted. */
  dataDir?: string;
  githubPort?: number;
  gitlabPort?: number;
}

const API_PREFIX: Record<Platform, string> = { github: '/api/v3', gitlab: '/api/v4' };

/** Query string for the request log, without token values (GitLab accepts `?private_token=`). */
function loggableSearch(url: URL): string {
  const sensitive = ['private_token', 'access_token', 'job_token', 'token'];
  if (!sensitive.some((k) => url.searchParams.has(k))) return url.search;
  const q = new URLSearchParams(url.searchParams);
  for (const k of sensitive) if (q.has(k)) q.set(k, '[REDACTED]');
  return `?${q.toString()}`;
}

/** Starts both platforms on loopback and returns their URLs; `close()` stops everything it started. */
export async function startForge(options: StartForgeOptions = {}): Promise<RunningForge> {
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'refbridge-forge-')));
  const state = new ForgeState(dataDir);
  const ctx: ForgeContext = {
    state,
    urls: { github: { web: '', api: '' }, gitlab: { web: '', api: '' } },
    faults: new FaultInjector(),
  };
  const routers: Record<Platform, Router> = { github: new Router(), gitlab: new Router() };
  registerGithubApi(routers.github, ctx);
  registerGitlabApi(routers.gitlab, ctx);

  const servers: Server[] = [];
  for (const platform of ['github', 'gitlab'] as const) {
    const server = createServer((req, res) => {
      handle(platform, req, res).catch((error: unknown) => {
        if (!res.headersSent) sendJson(res, { status: 500, body: { message: `forge error: ${String(error)}` } });
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 1000;
    servers.push(server);
    const port = platform === 'github' ? (options.githubPort ?? 0) : (options.gitlabPort ?? 0);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const web = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    ctx.urls[platform] = { web, api: `${web}${API_PREFIX[platform]}` };
  }

  async function handle(platform: Platform, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', ctx.urls[platform].web);
    if (await handleAdminRequest(platform, req, res, url, ctx)) return;
    if (await handleGitRequest(platform, req, res, url, ctx)) return;

    const prefix = API_PREFIX[platform];
    const method = req.method ?? 'GET';
    const rawPath = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) || '/' : undefined;
    const match = rawPath === undefined ? undefined : routers[platform].match(method, rawPath);
    const routeKey = match ? `${match.route.method} ${match.route.pattern}` : `${method} ${url.pathname}`;
    const fault = ctx.faults.decide(platform, 'api', routeKey, url.pathname);
    const log = (status: number, user?: string, faultName?: string): void => {
      state.requestLog.push({
        seq: state.nextSeq(),
        platform,
        kind: 'api',
        method,
        route: routeKey,
        path: url.pathname + loggableSearch(url),
        status,
        ...(user === undefined ? {} : { user }),
        ...(faultName === undefined ? {} : { fault: faultName }),
        at: now(),
      });
    };
    if (fault && !fault.afterApply) {
      const applied = await ctx.faults.apply(fault, platform, res);
      if (applied.handled) {
        log(applied.status, undefined, fault.kind);
        return;
      }
    }
    if (!match) {
      const body =
        platform === 'github'
          ? { message: 'Not Found', documentation_url: 'https://docs.github.com/rest', status: '404' }
          : { error: '404 Not Found' };
      sendJson(res, { status: 404, body });
      log(404);
      return;
    }
    const rawBody = await readBody(req);
    const presented = presentedToken(req.headers, url.searchParams);
    const apiReq: ApiRequest = {
      platform,
      method,
      path: rawPath ?? '/',
      params: match.params,
      query: url.searchParams,
      headers: req.headers,
      body: parseBody(rawBody, req.headers['content-type']),
      rawBody,
      token: state.token(presented, platform),
      presentedToken: presented,
      baseUrl: ctx.urls[platform].web,
    };
    const response = await match.route.handler(apiReq, state);
    if (fault?.afterApply) {
      // The write above stands; only its answer is lost (a proxy timing out on the way back).
      const applied = await ctx.faults.apply(fault, platform, res);
      log(applied.status, apiReq.token?.user, fault.kind);
      return;
    }
    sendJson(res, response);
    log(response.status, apiReq.token?.user);
  }

  const close = async (): Promise<void> => {
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
  };

  if (options.seed !== undefined) {
    try {
      await applySeed(ctx, typeof options.seed === 'string' ? await loadSeedFile(options.seed) : options.seed);
    } catch (error) {
      await close();
      throw error;
    }
  }
  return { ...ctx, close };
}
