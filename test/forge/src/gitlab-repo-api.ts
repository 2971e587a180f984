import { createHash } from 'node:crypto';
import type { ApiResponse } from './http-kit.js';
import {
  Access,
  GitlabError,
  badRequest,
  bool,
  canPushToBranch,
  environmentScopeFilter,
  forbidden,
  int,
  invalidParam,
  matchingProtections,
  notFound,
  projectAccess,
  requireParams,
  str,
  type Params,
} from './gitlab-access.js';
import * as E from './gitlab-entities.js';
import {
  applyCommit,
  branchesMergedInto,
  commitInfos,
  commitStats,
  findCommit,
  isValidBranchName,
  lastCommitForPath,
  listBranches,
  listTags,
  logPage,
  parseActions,
  withRepoLock,
  type CommitAction,
} from './gitlab-git.js';
import { offsetHeaders, pageParams, paginate } from './gitlab-pagination.js';
import {
  adoptFirstBranch,
  identityOf,
  json,
  managedProject,
  readableCodeProject,
  sortDirection,
  touch,
  userOf,
  writableProject,
  type Add,
  type Call,
  type RouteOptions,
} from './gitlab-routes.js';
import { ZERO_SHA, git, readFileAt, resolveRef } from './repo-writer.js';
import type { ForgeContext } from './server.js';
import type { GitlabProject, GitlabVariable } from './state.js';

/**
 * The GitLab repository-side endpoints: protected branches, branches, tags, CI/CD variables,
 * repository files and the commits API (`doc/api/protected_branches.md`, `branches.md`,
 * `tags.md`, `project_level_variables.md`, `repository_files.md`, `commits.md`).
 */

// ---------------------------------------------------------------------------------------------
// Protected branches

const PROTECT_LEVELS = [0, 30, 40, 60];

function levelParam(params: Params, name: string, fallback: number): number {
  const v = int(params, name);
  if (v === undefined) return fallback;
  if (!PROTECT_LEVELS.includes(v)) throw invalidParam(name, 'does not have a valid value');
  return v;
}

/** `allowed_to_push: [{access_level: 30}]` style edits; user/group grants are not modelled. */
function allowedLevel(params: Params, name: string): number | undefined {
  // gitbeaker sends protect options in the query string, where the array arrives flattened.
  const flat = params[`${name}[][access_level]`];
  if (flat !== undefined && PROTECT_LEVELS.includes(Number(flat))) return Number(flat);
  const list = params[name];
  if (!Array.isArray(list)) return undefined;
  for (const item of list as unknown[]) {
    if (item && typeof item === 'object') {
      const r = item as Record<string, unknown>;
      if (r['_destroy'] === true || r['_destroy'] === 'true') continue;
      const lvl = Number(r['access_level']);
      if (PROTECT_LEVELS.includes(lvl)) return lvl;
    }
  }
  return undefined;
}

export function registerProtectedBranches(add: Add): void {
  const findRule = (p: GitlabProject, name: string) => {
    const rule = p.protectedBranches.find((pb) => pb.name === name);
    if (!rule) throw notFound();
    return rule;
  };

  add('GET', '/projects/:id/protected_branches', {}, (c) => {
    const p = readableCodeProject(c);
    const search = str(c.params, 'search');
    const list = p.protectedBranches.filter((pb) => !search || pb.name.includes(search));
    return paginate(c.req, list, (slice) => slice.map(E.protectedBranch));
  });

  add('GET', '/projects/:id/protected_branches/:name', {}, (c) => {
    const p = readableCodeProject(c);
    return json(E.protectedBranch(findRule(p, c.req.params['name'] ?? '')));
  });

  add('POST', '/projects/:id/protected_branches', {}, (c) => {
    const p = writableProject(c, Access.maintainer);
    requireParams(c.params, 'name');
    const name = str(c.params, 'name') ?? '';
    if (p.protectedBranches.some((pb) => pb.name === name)) {
      throw new GitlabError(409, { message: `Protected branch '${name}' already exists` });
    }
    const rule = {
      id: c.state.nextId(),
      name,
      pushAccessLevel:
        allowedLevel(c.params, 'allowed_to_push') ?? levelParam(c.params, 'push_access_level', Access.maintainer),
      mergeAccessLevel:
        allowedLevel(c.params, 'allowed_to_merge') ?? levelParam(c.params, 'merge_access_level', Access.maintainer),
      unprotectAccessLevel:
        allowedLevel(c.params, 'allowed_to_unprotect') ??
        levelParam(c.params, 'unprotect_access_level', Access.maintainer),
      allowForcePush: bool(c.params, 'allow_force_push') ?? false,
      codeOwnerApprovalRequired: bool(c.params, 'code_owner_approval_required') ?? false,
    };
    p.protectedBranches.push(rule);
    touch(p);
    return json(E.protectedBranch(rule), 201);
  });

  add('PATCH', '/projects/:id/protected_branches/:name', {}, (c) => {
    const p = writableProject(c, Access.maintainer);
    const rule = findRule(p, c.req.params['name'] ?? '');
    const force = bool(c.params, 'allow_force_push');
    const owners = bool(c.params, 'code_owner_approval_required');
    if (force !== undefined) rule.allowForcePush = force;
    if (owners !== undefined) rule.codeOwnerApprovalRequired = owners;
    rule.pushAccessLevel = allowedLevel(c.params, 'allowed_to_push') ?? rule.pushAccessLevel;
    rule.mergeAccessLevel = allowedLevel(c.params, 'allowed_to_merge') ?? rule.mergeAccessLevel;
    rule.unprotectAccessLevel = allowedLevel(c.params, 'allowed_to_unprotect') ?? rule.unprotectAccessLevel;
    touch(p);
    return json(E.protectedBranch(rule));
  });

  add('DELETE', '/projects/:id/protected_branches/:name', {}, (c) => {
    const p = writableProject(c, Access.maintainer);
    const rule = findRule(p, c.req.params['name'] ?? '');
    p.protectedBranches = p.protectedBranches.filter((pb) => pb !== rule);
    touch(p);
    return json(undefined, 204);
  });
}

// ---------------------------------------------------------------------------------------------
// Branches and tags

export function registerBranchesAndTags(add: Add): void {
  const renderBranches = async (
    c: Call,
    p: GitlabProject,
    tips: { name: string; sha: string }[],
  ): Promise<unknown[]> => {
    const infos = await commitInfos(
      p.gitDir,
      tips.map((t) => t.sha),
    );
    const merged = await branchesMergedInto(p.gitDir, E.defaultBranchOf(p));
    const level = projectAccess(c.state, c.login, p);
    return tips.flatMap((t) => {
      const info = infos.get(t.sha);
      if (!info) return [];
      const rules = matchingProtections(p, t.name);
      return [
        E.branch(t.name, info, p, c.view, {
          merged: t.name !== E.defaultBranchOf(p) && merged.has(t.name),
          protected: rules.length > 0,
          canPush: canPushToBranch(c.state, c.login, p, t.name) && level >= Access.developer,
          developersCanPush: rules.length > 0 && rules.some((r) => r.pushAccessLevel === Access.developer),
          developersCanMerge: rules.length > 0 && rules.some((r) => r.mergeAccessLevel === Access.developer),
        }),
      ];
    });
  };

  add('GET', '/projects/:id/repository/branches', {}, async (c) => {
    const p = readableCodeProject(c);
    const search = str(c.params, 'search');
    const regex = str(c.params, 'regex');
    let tips = await listBranches(p.gitDir);
    if (search) {
      // GitLab's search: `^foo` prefix, `foo$` suffix, otherwise substring, case-insensitive.
      const s = search.toLowerCase();
      tips = tips.filter((t) => {
        const n = t.name.toLowerCase();
        if (s.startsWith('^')) return n.startsWith(s.slice(1));
        if (s.endsWith('$')) return n.endsWith(s.slice(0, -1));
        return n.includes(s);
      });
    }
    if (regex) {
      let re: RegExp;
      try {
        re = new RegExp(regex);
      } catch {
        throw invalidParam('regex');
      }
      tips = tips.filter((t) => re.test(t.name));
    }
    return paginate(c.req, tips, (slice) => renderBranches(c, p, slice));
  });

  add('GET', '/projects/:id/repository/branches/:branch', {}, async (c) => {
    const p = readableCodeProject(c);
    const name = c.req.params['branch'] ?? '';
    const sha = isValidBranchName(name) ? await resolveRef(p.gitDir, `refs/heads/${name}`) : undefined;
    if (!sha) throw notFound('Branch');
    const [rendered] = await renderBranches(c, p, [{ name, sha }]);
    if (!rendered) throw notFound('Branch');
    return json(rendered);
  });

  add('POST', '/projects/:id/repository/branches', {}, async (c) => {
    const p = writableProject(c, Access.developer);
    requireParams(c.params, 'branch', 'ref');
    const name = str(c.params, 'branch') ?? '';
    const ref = str(c.params, 'ref') ?? '';
    if (!canPushToBranch(c.state, c.login, p, name)) throw forbidden();
    if (!isValidBranchName(name)) throw badRequest('Branch name is invalid');
    const target = ref.startsWith('-') ? undefined : await resolveRef(p.gitDir, `${ref}^{commit}`);
    if (!target) throw badRequest(`Invalid reference name: ${ref}`);
    await withRepoLock(p.gitDir, async () => {
      if (await resolveRef(p.gitDir, `refs/heads/${name}`)) throw badRequest('Branch already exists');
      await git(p.gitDir, ['update-ref', `refs/heads/${name}`, target, ZERO_SHA]);
    });
    touch(p);
    const [rendered] = await renderBranches(c, p, [{ name, sha: target }]);
    return json(rendered, 201);
  });

  add('DELETE', '/projects/:id/repository/branches/:branch', {}, async (c) => {
    const p = writableProject(c, Access.developer);
    const name = c.req.params['branch'] ?? '';
    const sha = isValidBranchName(name) ? await resolveRef(p.gitDir, `refs/heads/${name}`) : undefined;
    if (!sha) throw notFound('Branch');
    if (name === p.defaultBranch) throw badRequest('The default branch of a project cannot be deleted.');
    if (matchingProtections(p, name).length > 0 && projectAccess(c.state, c.login, p) < Access.maintainer) {
      throw badRequest(
        'You are not allowed to delete protected branches from this project. Only a project maintainer or owner can delete a protected branch.',
      );
    }
    await withRepoLock(p.gitDir, () => git(p.gitDir, ['update-ref', '-d', `refs/heads/${name}`, sha]));
    touch(p);
    return json(undefined, 204);
  });

  add('GET', '/projects/:id/repository/tags', {}, async (c) => {
    const p = readableCodeProject(c);
    const search = str(c.params, 'search')?.toLowerCase();
    const orderBy = str(c.params, 'order_by') ?? 'updated';
    if (!['name', 'updated', 'version'].includes(orderBy))
      throw invalidParam('order_by', 'does not have a valid value');
    const dir = sortDirection(c.params, 'desc') === 'asc' ? 1 : -1;
    let tags = await listTags(p.gitDir);
    if (search) tags = tags.filter((t) => t.name.toLowerCase().includes(search.replace(/^\^|\$$/g, '')));
    if (orderBy !== 'updated') {
      const cmp = (a: string, b: string): number =>
        orderBy === 'version' ? a.localeCompare(b, undefined, { numeric: true }) : a < b ? -1 : a > b ? 1 : 0;
      tags = [...tags].sort((a, b) => cmp(a.name, b.name) * dir);
    } else if (dir === 1) {
      tags = [...tags].reverse();
    }
    return paginate(c.req, tags, async (slice) => {
      const infos = await commitInfos(
        p.gitDir,
        slice.map((t) => t.commit).filter((s) => /^[0-9a-f]{40}$/.test(s)),
      );
      return slice.map((t) => E.tag(t, infos.get(t.commit), p, c.view.web));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// CI/CD variables

/**
 * GitLab's masking rule, `app/models/concerns/ci/maskable.rb` (gitlabhq): an expanded variable
 * must match `\A[a-zA-Z0-9_+=/@:.~-]{8,}\z` (Base64 alphabet plus `@ : . ~`); a raw one only
 * `\A\S{8,}\z` (one line, no whitespace, at least 8 characters).
 */
export const MASKABLE = /^[a-zA-Z0-9_+=/@:.~-]{8,}$/;
export const MASKABLE_RAW = /^\S{8,}$/;
const KEY_RE = /^[a-zA-Z0-9_]+$/;

export function registerVariables(add: Add): void {
  const findVariable = (c: Call, p: GitlabProject): GitlabVariable => {
    const key = c.req.params['key'] ?? '';
    const scope = environmentScopeFilter(c.params);
    const matches = p.variables.filter((v) => v.key === key && (scope === undefined || v.environmentScope === scope));
    if (matches.length === 0) throw notFound('Variable');
    if (matches.length > 1) {
      throw new GitlabError(409, {
        message: "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'",
      });
    }
    return matches[0]!;
  };

  const variableType = (params: Params): GitlabVariable['variableType'] | undefined => {
    const t = str(params, 'variable_type');
    if (t === undefined) return undefined;
    if (t !== 'env_var' && t !== 'file') throw invalidParam('variable_type', 'does not have a valid value');
    return t;
  };

  /** Model validations, all reported together as Rails does. */
  const validate = (p: GitlabProject, v: GitlabVariable, self?: GitlabVariable): void => {
    const errors: Record<string, string[]> = {};
    const fail = (field: string, message: string): void => {
      (errors[field] ??= []).push(message);
    };
    if (!v.key) fail('key', "can't be blank");
    else if (v.key.length > 255) fail('key', 'is too long (maximum is 255 characters)');
    else if (!KEY_RE.test(v.key)) fail('key', "can contain only letters, digits and '_'.");
    if (p.variables.some((o) => o !== self && o.key === v.key && o.environmentScope === v.environmentScope)) {
      fail('key', `(${v.key}) has already been taken`);
    }
    if (v.value.length > 10_000) fail('value', 'is too long (maximum is 10000 characters)');
    if (v.masked && !(v.raw ? MASKABLE_RAW : MASKABLE).test(v.value)) fail('value', 'is invalid');
    if (Object.keys(errors).length > 0) throw badRequest(errors);
  };

  add('GET', '/projects/:id/variables', {}, (c) => {
    const p = managedProject(c, Access.maintainer);
    return paginate(c.req, p.variables, (slice) => slice.map(E.variable));
  });

  add('GET', '/projects/:id/variables/:key', {}, (c) => {
    const p = managedProject(c, Access.maintainer);
    return json(E.variable(findVariable(c, p)));
  });

  add('POST', '/projects/:id/variables', {}, (c) => {
    const p = writableProject(c, Access.maintainer);
    requireParams(c.params, 'key', 'value');
    const hidden = bool(c.params, 'masked_and_hidden') ?? false;
    const description = str(c.params, 'description');
    const v: GitlabVariable = {
      key: str(c.params, 'key') ?? '',
      value: str(c.params, 'value') ?? '',
      variableType: variableType(c.params) ?? 'env_var',
      protected: bool(c.params, 'protected') ?? false,
      // "Masked and hidden" implies masked; hiding is only possible on creation.
      masked: hidden || (bool(c.params, 'masked') ?? false),
      hidden,
      raw: bool(c.params, 'raw') ?? false,
      environmentScope: str(c.params, 'environment_scope') ?? '*',
      description: description ?? null,
    };
    validate(p, v);
    p.variables.push(v);
    touch(p);
    return json(E.variable(v), 201);
  });

  add('PUT', '/projects/:id/variables/:key', {}, (c) => {
    const p = writableProject(c, Access.maintainer);
    const current = findVariable(c, p);
    const description = str(c.params, 'description');
    const next: GitlabVariable = {
      ...current,
      value: str(c.params, 'value') ?? current.value,
      variableType: variableType(c.params) ?? current.variableType,
      protected: bool(c.params, 'protected') ?? current.protected,
      masked: current.hidden ? true : (bool(c.params, 'masked') ?? current.masked),
      raw: bool(c.params, 'raw') ?? current.raw,
      environmentScope: str(c.params, 'environment_scope') ?? current.environmentScope,
      description: description === undefined ? current.description : description,
    };
    validate(p, next, current);
    Object.assign(current, next);
    touch(p);
    return json(E.variable(current));
  });

  add('DELETE', '/projects/:id/variables/:key', {}, (c) => {
    const p = writableProject(c, Access.maintainer);
    const v = findVariable(c, p);
    p.variables = p.variables.filter((o) => o !== v);
    touch(p);
    return json(undefined, 204);
  });
}

// ---------------------------------------------------------------------------------------------
// Repository files

export function registerFiles(add: Add, ctx: ForgeContext): void {
  const readScopes: RouteOptions = { scopes: ['read_repository'] };

  const loadFile = async (c: Call, p: GitlabProject, ref: string) => {
    const filePath = c.req.params['file_path'] ?? '';
    const commit = await findCommit(p.gitDir, ref);
    if (!commit) throw notFound('Commit');
    const file = await readFileAt(p.gitDir, commit.id, filePath);
    if (!file) throw notFound('File');
    const lastCommitId = (await lastCommitForPath(p.gitDir, commit.id, filePath)) ?? commit.id;
    const meta = {
      file_name: filePath.split('/').pop() ?? filePath,
      file_path: filePath,
      size: file.content.length,
      encoding: 'base64',
      content_sha256: createHash('sha256').update(file.content).digest('hex'),
      ref,
      blob_id: file.sha,
      commit_id: commit.id,
      last_commit_id: lastCommitId,
      execute_filemode: file.mode === '100755',
    };
    // `set_http_headers`: every field also goes out as an X-Gitlab-* header.
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta)) {
      headers[`x-gitlab-${k.replace(/_/g, '-')}`] = String(v);
    }
    return { file, meta, headers };
  };

  add('GET', '/projects/:id/repository/files/:file_path/raw', readScopes, async (c) => {
    const p = readableCodeProject(c);
    const ref = str(c.params, 'ref') ?? 'HEAD';
    const { file, headers } = await loadFile(c, p, ref);
    const binary = file.content.subarray(0, 8000).includes(0);
    return {
      status: 200,
      body: file.content,
      headers: {
        ...headers,
        'content-type': binary ? 'application/octet-stream' : 'text/plain; charset=utf-8',
        'cache-control': 'no-cache',
      },
    };
  });

  add('GET', '/projects/:id/repository/files/:file_path', readScopes, async (c) => {
    const p = readableCodeProject(c);
    requireParams(c.params, 'ref');
    const { file, meta, headers } = await loadFile(c, p, str(c.params, 'ref') ?? '');
    return json({ ...meta, content: file.content.toString('base64') }, 200, headers);
  });

  /** The files API is the commits API with one action, including its checks and messages. */
  const fileWrite = async (c: Call, action: 'create' | 'update' | 'delete'): Promise<ApiResponse> => {
    const p = writableProject(c, Access.developer);
    const me = userOf(c);
    requireParams(c.params, 'branch', 'commit_message', ...(action === 'delete' ? [] : ['content']));
    const branch = str(c.params, 'branch') ?? '';
    const message = str(c.params, 'commit_message') ?? '';
    if (!branch) throw invalidParam('branch', 'is empty');
    if (!message) throw invalidParam('commit_message', 'is empty');
    const encoding = str(c.params, 'encoding');
    if (encoding !== undefined && encoding !== 'text' && encoding !== 'base64') {
      throw invalidParam('encoding', 'does not have a valid value');
    }
    if (!canPushToBranch(c.state, me.login, p, branch))
      throw badRequest('You are not allowed to push into this branch');
    const filePath = c.req.params['file_path'] ?? '';
    const lastCommitId = str(c.params, 'last_commit_id');
    const base = str(c.params, 'start_branch') ?? branch;
    if (action === 'update' && lastCommitId) {
      // Files::UpdateService compares before anything else, with its own message.
      const tip = await resolveRef(p.gitDir, `refs/heads/${base}`);
      if (tip && (await lastCommitForPath(p.gitDir, tip, filePath)) !== lastCommitId) {
        throw badRequest('You are attempting to update a file that has changed since you started editing it.');
      }
    }
    const commitAction: CommitAction = {
      action,
      filePath,
      content: str(c.params, 'content'),
      encoding,
      executeFilemode: bool(c.params, 'execute_filemode'),
    };
    const result = await applyCommit(p.gitDir, {
      branch,
      startBranch: base,
      force: false,
      message,
      actions: [commitAction],
      author: identityOf(me, c.params),
      committer: { name: me.name, email: me.email },
    });
    if (result.wasEmpty) await adoptFirstBranch(ctx, p, branch);
    touch(p);
    if (action === 'delete') return json(undefined, 204);
    return json({ file_path: filePath, branch }, action === 'create' ? 201 : 200);
  };

  add('POST', '/projects/:id/repository/files/:file_path', {}, (c) => fileWrite(c, 'create'));
  add('PUT', '/projects/:id/repository/files/:file_path', {}, (c) => fileWrite(c, 'update'));
  add('DELETE', '/projects/:id/repository/files/:file_path', {}, (c) => fileWrite(c, 'delete'));
}

// ---------------------------------------------------------------------------------------------
// Commits

export function registerCommits(add: Add, ctx: ForgeContext): void {
  add('POST', '/projects/:id/repository/commits', {}, async (c) => {
    const p = writableProject(c, Access.developer);
    const me = userOf(c);
    requireParams(c.params, 'branch', 'commit_message', 'actions');
    const branch = str(c.params, 'branch') ?? '';
    const message = str(c.params, 'commit_message') ?? '';
    const actions = parseActions(c.params['actions']);
    if (!canPushToBranch(c.state, me.login, p, branch))
      throw badRequest('You are not allowed to push into this branch');
    const force = bool(c.params, 'force') ?? false;
    const result = await applyCommit(p.gitDir, {
      branch,
      startBranch: str(c.params, 'start_branch'),
      startSha: str(c.params, 'start_sha'),
      force,
      message,
      actions,
      author: identityOf(me, c.params),
      committer: { name: me.name, email: me.email },
      forbidForcePush: matchingProtections(p, branch).some((r) => !r.allowForcePush),
    });
    if (result.wasEmpty) await adoptFirstBranch(ctx, p, branch);
    touch(p);
    const info = (await commitInfos(p.gitDir, [result.sha])).get(result.sha);
    if (!info) throw new Error(`commit ${result.sha} vanished right after it was written`);
    return json(E.commitDetail(info, p, c.view.web, await commitStats(p.gitDir, result.sha)), 201);
  });

  add('GET', '/projects/:id/repository/commits', {}, async (c) => {
    const p = readableCodeProject(c);
    const { page, perPage } = pageParams(c.req);
    const ref = str(c.params, 'ref_name') ?? E.defaultBranchOf(p);
    const head = await findCommit(p.gitDir, ref);
    if (!head) return json([], 200, offsetHeaders(c.req, page, perPage, 0));
    const path = str(c.params, 'path');
    const since = str(c.params, 'since');
    const until = str(c.params, 'until');
    const { commits, total } = await logPage(p.gitDir, head.id, {
      skip: (page - 1) * perPage,
      limit: perPage,
      ...(path ? { path } : {}),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
    });
    const withStats = bool(c.params, 'with_stats') ?? false;
    const body = await Promise.all(
      commits.map(async (info) =>
        withStats
          ? { ...E.commit(info, p, c.view.web), stats: await commitStats(p.gitDir, info.id) }
          : E.commit(info, p, c.view.web),
      ),
    );
    return json(body, 200, offsetHeaders(c.req, page, perPage, total));
  });

  add('GET', '/projects/:id/repository/commits/:sha', {}, async (c) => {
    const p = readableCodeProject(c);
    const info = await findCommit(p.gitDir, c.req.params['sha'] ?? '');
    if (!info) throw notFound('Commit');
    const stats = (bool(c.params, 'stats') ?? true) ? await commitStats(p.gitDir, info.id) : undefined;
    return json(E.commitDetail(info, p, c.view.web, stats));
  });
}
