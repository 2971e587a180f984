import type { ApiResponse, Router } from './http-kit.js';
import {
  Access,
  GitlabError,
  authenticate,
  badRequest,
  bool,
  canReadGroup,
  canReadProject,
  findGitlabUser,
  forbidden,
  groupAccess,
  groupById,
  groupByPath,
  groupByRef,
  groupChain,
  int,
  invalidParam,
  mergedParams,
  notFound,
  projectAccess,
  projectFullPath,
  projectGroup,
  requireParams,
  str,
  unauthorized,
  visibleProject,
  type Params,
} from './gitlab-access.js';
import * as E from './gitlab-entities.js';
import { isValidBranchName } from './gitlab-git.js';
import { paginate, paginateKeyset } from './gitlab-pagination.js';
import {
  registerBranchesAndTags,
  registerCommits,
  registerFiles,
  registerProtectedBranches,
  registerVariables,
} from './gitlab-repo-api.js';
import {
  json,
  renderProject,
  renderProjects,
  sortDirection,
  touch,
  userOf,
  type Add,
  type Call,
  type CallHandler,
  type RouteOptions,
} from './gitlab-routes.js';
import { RepoFactoryError, createGitlabGroup, createGitlabProject } from './repo-factory.js';
import type { ForgeContext } from './server.js';
import type { ForgeState, ForgeUser, GitlabGroup, GitlabProject } from './state.js';

/**
 * The GitLab REST API v4 endpoints refbridge uses, answering in GitLab's own shapes, status codes
 * and error bodies (`doc/api/*.md`, `lib/api/*.rb` of gitlabhq). Routes are registered below
 * `/api/v4`; `:id` takes a numeric id or a URL-encoded full path.
 */

export function registerGitlabApi(router: Router, ctx: ForgeContext): void {
  const add: Add = (method: string, pattern: string, options: RouteOptions, handler: CallHandler): void => {
    router.add(method, pattern, async (req, state) => {
      try {
        const caller = authenticate(req, state, {
          required: options.auth === 'required' || (method !== 'GET' && method !== 'HEAD'),
          ...(options.scopes ? { extraScopes: options.scopes } : {}),
        });
        const login = caller.user?.login;
        const call: Call = {
          req,
          state,
          caller,
          login,
          params: mergedParams(req),
          view: { state, web: ctx.urls.gitlab.web || req.baseUrl, login },
        };
        return await handler(call);
      } catch (error) {
        if (error instanceof GitlabError) return error.toResponse();
        throw error;
      }
    });
  };

  registerUsers(add);
  registerNamespaces(add);
  registerGroups(add, ctx);
  registerProjects(add, ctx);
  registerProtectedBranches(add);
  registerBranchesAndTags(add);
  registerVariables(add);
  registerFiles(add, ctx);
  registerCommits(add, ctx);
}

const PROJECT_ORDER = [
  'id',
  'name',
  'path',
  'created_at',
  'updated_at',
  'last_activity_at',
  'similarity',
  'star_count',
];

/** GitLab's project list order: `created_at desc` unless asked otherwise; ties broken by id. */
function sortProjects(list: GitlabProject[], params: Params): GitlabProject[] {
  const orderBy = str(params, 'order_by') ?? 'created_at';
  if (!PROJECT_ORDER.includes(orderBy)) throw invalidParam('order_by', 'does not have a valid value');
  const dir = sortDirection(params, 'desc') === 'asc' ? 1 : -1;
  const key = (p: GitlabProject): string | number => {
    switch (orderBy) {
      case 'id':
        return p.id;
      case 'name':
        return p.name.toLowerCase();
      case 'path':
        return p.path.toLowerCase();
      case 'updated_at':
      case 'last_activity_at':
        return p.lastActivityAt;
      default:
        return p.createdAt;
    }
  };
  return [...list].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    if (ka < kb) return -dir;
    if (ka > kb) return dir;
    return (a.id - b.id) * dir;
  });
}

/** Filters shared by every project list (`/projects`, `/groups/:id/projects`, `/users/:id/projects`). */
function filterProjects(c: Call, list: GitlabProject[]): GitlabProject[] {
  const p = c.params;
  const archived = bool(p, 'archived');
  const visibility = str(p, 'visibility');
  const search = str(p, 'search')?.toLowerCase();
  const searchNamespaces = bool(p, 'search_namespaces') ?? false;
  const minAccess = int(p, 'min_access_level');
  const owned = bool(p, 'owned') ?? false;
  const membership = bool(p, 'membership') ?? false;
  const after = str(p, 'last_activity_after');
  const before = str(p, 'last_activity_before');
  const idAfter = int(p, 'id_after');
  const idBefore = int(p, 'id_before');
  if ((owned || membership || minAccess !== undefined) && !c.login) throw unauthorized();
  return list.filter((proj) => {
    if (!canReadProject(c.state, c.login, proj)) return false;
    if (archived !== undefined && proj.archived !== archived) return false;
    if (visibility && proj.visibility !== visibility) return false;
    if (search) {
      const hay = searchNamespaces ? `${projectFullPath(proj)} ${proj.name}` : `${proj.name} ${proj.path}`;
      if (!hay.toLowerCase().includes(search)) return false;
    }
    const level = projectAccess(c.state, c.login, proj);
    if (membership && level < Access.guest) return false;
    if (minAccess !== undefined && level < minAccess) return false;
    if (owned && !isOwnedBy(c, proj)) return false;
    if (after && Date.parse(proj.lastActivityAt) <= Date.parse(after)) return false;
    if (before && Date.parse(proj.lastActivityAt) >= Date.parse(before)) return false;
    if (idAfter !== undefined && proj.id <= idAfter) return false;
    if (idBefore !== undefined && proj.id >= idBefore) return false;
    return true;
  });
}

/** `owned`: the personal namespace, or a group the user owns (as `User#owned_projects`). */
function isOwnedBy(c: Call, p: GitlabProject): boolean {
  if (!c.login) return false;
  if (p.namespaceKind === 'user') return p.namespace.toLowerCase() === c.login.toLowerCase();
  const g = projectGroup(c.state, p);
  return g !== undefined && groupAccess(c.state, c.login, g) >= Access.owner;
}

async function listProjectsResponse(c: Call, list: GitlabProject[]): Promise<ApiResponse> {
  const filtered = filterProjects(c, list);
  const simple = bool(c.params, 'simple') ?? false;
  if (str(c.params, 'pagination') === 'keyset') {
    const orderBy = str(c.params, 'order_by') ?? 'id';
    if (orderBy !== 'id') {
      throw badRequest('Keyset pagination is not yet available for this type of request');
    }
    return paginateKeyset(c.req, filtered, sortDirection(c.params, 'desc'), (slice) =>
      renderProjects(c, slice, simple),
    );
  }
  return paginate(c.req, sortProjects(filtered, c.params), (slice) => renderProjects(c, slice, simple));
}

/** After the first branch lands in an empty repo it becomes HEAD and the default, as on GitLab. */
// ---------------------------------------------------------------------------------------------
// Users, tokens, namespaces

function registerUsers(add: Add): void {
  add('GET', '/user', { auth: 'required', scopes: ['read_user'] }, (c) => json(E.currentUser(userOf(c), c.view.web)));

  add('GET', '/users', { scopes: ['read_user'] }, (c) => {
    const username = str(c.params, 'username');
    const search = str(c.params, 'search')?.toLowerCase();
    let users = [...c.state.gitlabUsers.values()].sort((a, b) => b.id - a.id);
    if (username !== undefined) users = users.filter((u) => u.login.toLowerCase() === username.toLowerCase());
    if (search) {
      users = users.filter(
        (u) =>
          u.login.toLowerCase().includes(search) ||
          u.name.toLowerCase().includes(search) ||
          u.email.toLowerCase() === search,
      );
    }
    return paginate(c.req, users, (slice) => slice.map((u) => E.userBasic(u, c.view.web)));
  });

  add('GET', '/users/:id', { scopes: ['read_user'] }, (c) => {
    const raw = c.req.params['id'] ?? '';
    if (!/^\d+$/.test(raw)) throw invalidParam('id');
    const u = findGitlabUser(c.state, Number(raw));
    if (!u) throw notFound('User');
    return json(E.userPublic(u, c.view.web));
  });

  add('GET', '/users/:id/projects', {}, (c) => {
    const raw = c.req.params['id'] ?? '';
    const u = /^\d+$/.test(raw) ? findGitlabUser(c.state, Number(raw)) : findGitlabUser(c.state, raw);
    if (!u) throw notFound('User');
    const own = [...c.state.gitlabProjects.values()].filter(
      (p) => p.namespaceKind === 'user' && p.namespace.toLowerCase() === u.login.toLowerCase(),
    );
    return listProjectsResponse(c, own);
  });

  add('GET', '/personal_access_tokens/self', { auth: 'required', scopes: ['any'] }, (c) => {
    const t = c.caller.token;
    if (!t) throw unauthorized();
    return json(E.personalAccessToken(t, userOf(c), false));
  });
}

function registerNamespaces(add: Add): void {
  const visibleNamespaces = (
    c: Call,
  ): ({ kind: 'user'; user: ForgeUser } | { kind: 'group'; group: GitlabGroup })[] => {
    const me = userOf(c);
    const groups = [...c.state.gitlabGroups.values()]
      .filter((g) => groupAccess(c.state, me.login, g) >= Access.developer)
      .sort((a, b) => a.id - b.id);
    return [{ kind: 'user', user: me }, ...groups.map((group) => ({ kind: 'group' as const, group }))];
  };

  add('GET', '/namespaces', { auth: 'required' }, (c) => {
    const search = str(c.params, 'search')?.toLowerCase();
    const ownedOnly = bool(c.params, 'owned_only') ?? false;
    const topLevelOnly = bool(c.params, 'top_level_only') ?? false;
    const list = visibleNamespaces(c).filter((n) => {
      if (n.kind === 'user')
        return !search || n.user.login.toLowerCase().includes(search) || n.user.name.toLowerCase().includes(search);
      if (topLevelOnly && n.group.parentId !== null) return false;
      if (ownedOnly && groupAccess(c.state, c.login, n.group) < Access.owner) return false;
      return !search || n.group.fullPath.toLowerCase().includes(search) || n.group.name.toLowerCase().includes(search);
    });
    return paginate(c.req, list, (slice) =>
      slice.map((n) => (n.kind === 'user' ? E.userNamespace(n.user, c.view) : E.groupNamespace(n.group, c.view))),
    );
  });

  add('GET', '/namespaces/:id', { auth: 'required' }, (c) => {
    const me = userOf(c);
    const ref = c.req.params['id'] ?? '';
    const numeric = /^\d+$/.test(ref);
    const group = numeric ? groupById(c.state, Number(ref)) : groupByPath(c.state, ref);
    // GitLab's `read_namespace_via_membership`: your own namespace and groups you belong to.
    if (group) {
      if (groupAccess(c.state, me.login, group) < Access.guest) throw notFound('Namespace');
      return json(E.groupNamespace(group, c.view));
    }
    const user = numeric ? findGitlabUser(c.state, Number(ref)) : findGitlabUser(c.state, ref);
    if (user && user.id === me.id) return json(E.userNamespace(user, c.view));
    throw notFound('Namespace');
  });
}

// ---------------------------------------------------------------------------------------------
// Groups

const PATH_RE = /^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*$/;
const PATH_MESSAGE =
  "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'";
const VISIBILITY = ['private', 'internal', 'public'] as const;
type Visibility = (typeof VISIBILITY)[number];
const VISIBILITY_RANK: Record<Visibility, number> = { private: 0, internal: 10, public: 20 };

function validPath(path: string): boolean {
  return PATH_RE.test(path) && !/\.(git|atom)$/i.test(path) && !path.endsWith('.');
}

function visibilityParam(params: Params): Visibility | undefined {
  const v = str(params, 'visibility');
  if (v === undefined) return undefined;
  if (!(VISIBILITY as readonly string[]).includes(v)) throw invalidParam('visibility', 'does not have a valid value');
  return v as Visibility;
}

/** Whether a namespace route (`group/sub` or `group/project`) is taken, as GitLab's routes table. */
function routeTaken(state: ForgeState, fullPath: string): boolean {
  return state.gitlabGroups.has(fullPath.toLowerCase()) || state.gitlabProjects.has(fullPath.toLowerCase());
}

function registerGroups(add: Add, ctx: ForgeContext): void {
  const readGroup = (c: Call): GitlabGroup => {
    const g = groupByRef(c.state, c.req.params['id'] ?? '');
    if (!g || !canReadGroup(c.state, c.login, g)) throw notFound('Group');
    return g;
  };

  const filterGroups = (c: Call, list: GitlabGroup[], defaultAllAvailable: boolean): GitlabGroup[] => {
    const allAvailable = bool(c.params, 'all_available') ?? (defaultAllAvailable || !c.login);
    const minAccess = int(c.params, 'min_access_level');
    const owned = bool(c.params, 'owned') ?? false;
    const search = str(c.params, 'search')?.toLowerCase();
    const topLevelOnly = bool(c.params, 'top_level_only') ?? false;
    const skip = new Set(
      [c.params['skip_groups'], c.params['skip_groups[]']]
        .flat()
        .filter((x) => x !== undefined)
        .map((x) => Number(x)),
    );
    return list.filter((g) => {
      if (!canReadGroup(c.state, c.login, g)) return false;
      const level = groupAccess(c.state, c.login, g);
      if (!allAvailable && level < Access.guest) return false;
      if (minAccess !== undefined && level < minAccess) return false;
      if (owned && level < Access.owner) return false;
      if (topLevelOnly && g.parentId !== null) return false;
      if (skip.has(g.id)) return false;
      return !search || g.name.toLowerCase().includes(search) || g.path.toLowerCase().includes(search);
    });
  };

  const sortGroups = (c: Call, list: GitlabGroup[]): GitlabGroup[] => {
    const orderBy = str(c.params, 'order_by') ?? 'name';
    if (!['name', 'path', 'id', 'similarity'].includes(orderBy))
      throw invalidParam('order_by', 'does not have a valid value');
    const dir = sortDirection(c.params, 'asc') === 'asc' ? 1 : -1;
    const key = (g: GitlabGroup): string | number =>
      orderBy === 'id' ? g.id : (orderBy === 'path' ? g.path : g.name).toLowerCase();
    return [...list].sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      return ka < kb ? -dir : ka > kb ? dir : (a.id - b.id) * dir;
    });
  };

  const groupDetail = async (c: Call, g: GitlabGroup): Promise<unknown> => {
    const withProjects = bool(c.params, 'with_projects') ?? true;
    const own = [...c.state.gitlabProjects.values()].filter(
      (p) => p.namespaceKind === 'group' && p.namespaceId === g.id && canReadProject(c.state, c.login, p),
    );
    const shared = [...c.state.gitlabProjects.values()].filter(
      (p) => (p.sharedWithGroups ?? []).some((s) => s.groupId === g.id) && canReadProject(c.state, c.login, p),
    );
    return {
      ...E.group(g, c.view),
      shared_with_groups: [],
      ...(withProjects
        ? {
            projects: await renderProjects(c, sortProjects(own, {}).slice(0, 100), false),
            shared_projects: await renderProjects(c, sortProjects(shared, {}).slice(0, 100), false),
          }
        : {}),
      prevent_sharing_groups_outside_hierarchy: false,
    };
  };

  add('GET', '/groups', {}, (c) => {
    const list = sortGroups(c, filterGroups(c, [...c.state.gitlabGroups.values()], false));
    return paginate(c.req, list, (slice) => slice.map((g) => E.group(g, c.view)));
  });

  add('GET', '/groups/:id', {}, async (c) => json(await groupDetail(c, readGroup(c))));

  add('GET', '/groups/:id/subgroups', {}, (c) => {
    const parent = readGroup(c);
    const children = [...c.state.gitlabGroups.values()].filter((g) => g.parentId === parent.id);
    const list = sortGroups(c, filterGroups(c, children, true));
    return paginate(c.req, list, (slice) => slice.map((g) => E.group(g, c.view)));
  });

  add('GET', '/groups/:id/projects', {}, (c) => {
    const g = readGroup(c);
    const includeSubgroups = bool(c.params, 'include_subgroups') ?? false;
    const withShared = bool(c.params, 'with_shared') ?? true;
    const inScope = (p: GitlabProject): boolean => {
      if (p.namespaceKind === 'group') {
        if (p.namespaceId === g.id) return true;
        const ns = projectGroup(c.state, p);
        if (includeSubgroups && ns && groupChain(c.state, ns).some((a) => a.id === g.id)) return true;
      }
      return withShared && (p.sharedWithGroups ?? []).some((s) => s.groupId === g.id);
    };
    return listProjectsResponse(c, [...c.state.gitlabProjects.values()].filter(inScope));
  });

  add('POST', '/groups', { auth: 'required' }, async (c) => {
    const me = userOf(c);
    requireParams(c.params, 'name', 'path');
    const name = str(c.params, 'name') ?? '';
    const path = str(c.params, 'path') ?? '';
    const parentId = int(c.params, 'parent_id');
    const visibility = visibilityParam(c.params) ?? 'private';
    let parent: GitlabGroup | undefined;
    if (parentId !== undefined && parentId !== 0) {
      parent = groupById(c.state, parentId);
      if (!parent || !canReadGroup(c.state, me.login, parent)) throw notFound('Group');
      // Subgroup creation level defaults to Maintainers.
      if (groupAccess(c.state, me.login, parent) < Access.maintainer) throw forbidden();
    }
    const errors: Record<string, string[]> = {};
    if (!name.trim()) errors['name'] = ["can't be blank"];
    if (!validPath(path)) errors['path'] = [PATH_MESSAGE];
    else if (routeTaken(c.state, parent ? `${parent.fullPath}/${path}` : path))
      errors['path'] = ['has already been taken'];
    if (parent && VISIBILITY_RANK[visibility] > VISIBILITY_RANK[parent.visibility]) {
      errors['visibility_level'] = [
        `${visibility} is not allowed since the parent group has a ${parent.visibility} visibility.`,
      ];
    }
    if (Object.keys(errors).length > 0) throw badRequest(errors);
    // The creator owns the new group, as on GitLab.
    const g = factoryCall(() =>
      createGitlabGroup(ctx, { path, name, parentId: parent?.id ?? null, visibility, owner: me.login }),
    );
    return json(await groupDetail(c, g), 201);
  });
}

// ---------------------------------------------------------------------------------------------
// Projects

function slugify(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9_.-]+/g, '-')
      .replace(/-{2,}/g, '-')
      .replace(/^[-.]+|[-.]+$/g, '') || 'project'
  );
}

/** The factory's own checks are stricter in places; answer them as GitLab's validation would. */
function factoryError(error: unknown): never {
  if (error instanceof RepoFactoryError) {
    throw badRequest(error.code === 'invalid-name' ? { path: [PATH_MESSAGE] } : { path: ['has already been taken'] });
  }
  throw error;
}

function factoryCall<T>(fn: () => T): T {
  try {
    const result = fn();
    return (result instanceof Promise ? result.catch(factoryError) : result) as T;
  } catch (error) {
    return factoryError(error);
  }
}

function registerProjects(add: Add, ctx: ForgeContext): void {
  add('GET', '/projects', {}, (c) => listProjectsResponse(c, [...c.state.gitlabProjects.values()]));

  add('GET', '/projects/:id', {}, async (c) => {
    const p = visibleProject(c.state, c.caller, c.req.params['id'] ?? '');
    return json(await renderProject(c, p, { withPermissions: true }));
  });

  add('POST', '/projects', { auth: 'required' }, async (c) => {
    const me = userOf(c);
    const rawName = str(c.params, 'name');
    const rawPath = str(c.params, 'path');
    if (rawName === undefined && rawPath === undefined) {
      throw new GitlabError(400, { error: 'name, path are missing, at least one parameter must be provided' });
    }
    const name = rawName ?? rawPath ?? '';
    const path = rawPath ?? slugify(name);
    const visibility = visibilityParam(c.params) ?? 'private';
    const nsRef = str(c.params, 'namespace_id') ?? str(c.params, 'namespace');

    // The target namespace: personal by default, else a group by id or full path.
    let namespace: { kind: 'user'; user: ForgeUser } | { kind: 'group'; group: GitlabGroup } = {
      kind: 'user',
      user: me,
    };
    if (nsRef !== undefined && nsRef !== '') {
      const numeric = /^\d+$/.test(nsRef);
      const g = numeric ? groupById(c.state, Number(nsRef)) : groupByPath(c.state, nsRef);
      const u = g ? undefined : numeric ? findGitlabUser(c.state, Number(nsRef)) : findGitlabUser(c.state, nsRef);
      if (g) namespace = { kind: 'group', group: g };
      else if (u) namespace = { kind: 'user', user: u };
      else throw notFound('Namespace');
    }
    const allowed =
      namespace.kind === 'user'
        ? namespace.user.id === me.id
        : groupAccess(c.state, me.login, namespace.group) >= Access.maintainer;
    const nsPath = namespace.kind === 'user' ? namespace.user.login : namespace.group.fullPath;
    const errors: Record<string, string[]> = {};
    if (!allowed) errors['namespace'] = ['is not valid'];
    if (!name.trim()) errors['name'] = ["can't be blank"];
    const siblings = [...c.state.gitlabProjects.values()].filter(
      (p) => p.namespace.toLowerCase() === nsPath.toLowerCase(),
    );
    if (name.trim() && siblings.some((p) => p.name.toLowerCase() === name.toLowerCase()))
      errors['name'] = ['has already been taken'];
    if (!validPath(path)) errors['path'] = [PATH_MESSAGE];
    else if (routeTaken(c.state, `${nsPath}/${path}`)) errors['path'] = ['has already been taken'];
    if (namespace.kind === 'group' && VISIBILITY_RANK[visibility] > VISIBILITY_RANK[namespace.group.visibility]) {
      errors['visibility_level'] = [`${visibility} is not allowed in a ${namespace.group.visibility} group.`];
    }
    if (Object.keys(errors).length > 0) throw badRequest(errors);

    const description = str(c.params, 'description');
    const defaultBranch = str(c.params, 'default_branch');
    if (defaultBranch !== undefined && !isValidBranchName(defaultBranch)) {
      throw badRequest({ default_branch: ['is invalid'] });
    }
    const p = await factoryCall(() =>
      createGitlabProject(ctx, {
        namespace: nsPath,
        path,
        name,
        visibility,
        ...(description === undefined ? {} : { description }),
        initializeWithReadme: bool(c.params, 'initialize_with_readme') ?? false,
        ...(defaultBranch === undefined ? {} : { defaultBranch }),
        creator: me.login,
        author: { name: me.name, email: me.email },
      }),
    );
    touch(p);
    return json(await renderProject(c, p, { withPermissions: false }), 201);
  });
}
