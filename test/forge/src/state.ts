/**
 * The forge's in-memory model of both platforms. Git data lives in bare repos on disk (one per
 * repo, under the data dir); everything else (users, tokens, repos' settings, secrets, variables,
 * protections) lives here for the life of the process.
 */

export type Platform = 'github' | 'gitlab';

export interface ForgeUser {
  id: number;
  login: string;
  name: string;
  email: string;
}

export interface ForgeToken {
  value: string;
  platform: Platform;
  user: string; // login
  /** GitHub classic scopes (`repo`, `public_repo`, `workflow`, `read:org`, `admin:org`, ...) or GitLab scopes (`api`, `read_api`, `read_repository`, `write_repository`). */
  scopes: string[];
  expired?: boolean;
  /** GitLab personal access token id, for /personal_access_tokens/self. */
  id: number;
  name: string;
  expiresAt?: string | null;
}

export interface GithubOrg {
  id: number;
  login: string;
  members: string[];
}

export interface GithubSecret {
  name: string;
  encryptedValue: string;
  keyId: string;
  /** What the forge decrypted with its private key, so tests can check the sealed value. */
  decrypted: string;
  createdAt: string;
  updatedAt: string;
}

export interface GithubVariable {
  name: string;
  value: string;
  createdAt: string;
  updatedAt: string;
}

export interface GithubBranchProtection {
  allowForcePushes: boolean;
  allowDeletions: boolean;
  enforceAdmins: boolean;
  /** Raw body as PUT, echoed back in GET where GitHub does. */
  raw: Record<string, unknown>;
}

export interface GithubRepo {
  id: number;
  owner: string; // user or org login
  ownerType: 'User' | 'Organization';
  name: string;
  private: boolean;
  visibility: 'public' | 'private' | 'internal';
  description: string | null;
  defaultBranch: string;
  fork: boolean;
  archived: boolean;
  createdAt: string;
  updatedAt: string;
  pushedAt: string | null;
  /** Absolute path of the bare repo. */
  gitDir: string;
  secrets: Map<string, GithubSecret>;
  variables: Map<string, GithubVariable>;
  protections: Map<string, GithubBranchProtection>;
  /** libsodium key pair for Actions secrets (base64). */
  secretKey: { keyId: string; publicKey: string; privateKey: string };
}

export interface GitlabGroup {
  id: number;
  name: string;
  path: string;
  fullPath: string;
  parentId: number | null;
  visibility: 'private' | 'internal' | 'public';
  createdAt: string;
  /** Logins with their access level (10 guest .. 50 owner). */
  members: Map<string, number>;
}

export interface GitlabVariable {
  key: string;
  value: string;
  variableType: 'env_var' | 'file';
  protected: boolean;
  masked: boolean;
  hidden: boolean;
  raw: boolean;
  environmentScope: string;
  description: string | null;
}

export interface GitlabProtectedBranch {
  id: number;
  name: string; // may contain wildcards, e.g. release/*
  pushAccessLevel: number;
  mergeAccessLevel: number;
  unprotectAccessLevel: number;
  allowForcePush: boolean;
  codeOwnerApprovalRequired: boolean;
}

export interface GitlabProject {
  id: number;
  name: string;
  path: string;
  /** Namespace full path (a group's full path or a user's login). */
  namespace: string;
  namespaceKind: 'group' | 'user';
  namespaceId: number;
  visibility: 'private' | 'internal' | 'public';
  description: string | null;
  defaultBranch: string | null;
  archived: boolean;
  forkedFromId: number | null;
  createdAt: string;
  lastActivityAt: string;
  creator: string;
  gitDir: string;
  variables: GitlabVariable[];
  protectedBranches: GitlabProtectedBranch[];
  /** Members of the project itself (inherited group membership is resolved separately). */
  members: Map<string, number>;
  /** Groups this project is shared with (GitLab "invite group"); listed by `/groups/:id/projects` unless `with_shared=false`. */
  sharedWithGroups?: { groupId: number; accessLevel: number }[];
}

export interface RequestLogEntry {
  seq: number;
  platform: Platform;
  kind: 'api' | 'git' | 'admin';
  method: string;
  /** The matched route pattern, e.g. `GET /repos/:owner/:repo` (or the git service). */
  route: string;
  path: string;
  status: number;
  /** Login of the authenticated user, if any. */
  user?: string;
  at: string;
  fault?: string;
}

export interface PushLogEntry {
  seq: number;
  platform: Platform;
  repo: string; // owner/name or full path
  user?: string;
  updates: { ref: string; old: string; new: string }[];
  pushOptions: string[];
  bytesReceived: number;
  accepted: boolean;
  message?: string;
  /** Refs the client asked to update that did not move, with the reason (policy, hidden ref, lost race). */
  rejected?: { ref: string; old: string; new: string; reason: string }[];
  at: string;
}

export class ForgeState {
  private nextIdValue = 1000;
  readonly githubUsers = new Map<string, ForgeUser>();
  readonly gitlabUsers = new Map<string, ForgeUser>();
  readonly tokens = new Map<string, ForgeToken>();
  readonly githubOrgs = new Map<string, GithubOrg>();
  /** Keyed by lower-cased `owner/name` (GitHub names are case-insensitive). */
  readonly githubRepos = new Map<string, GithubRepo>();
  /** Keyed by lower-cased full path. */
  readonly gitlabGroups = new Map<string, GitlabGroup>();
  /** Keyed by lower-cased full path. */
  readonly gitlabProjects = new Map<string, GitlabProject>();
  readonly requestLog: RequestLogEntry[] = [];
  readonly pushLog: PushLogEntry[] = [];
  private seqValue = 0;

  constructor(readonly dataDir: string) {}

  nextId(): number {
    return ++this.nextIdValue;
  }

  nextSeq(): number {
    return ++this.seqValue;
  }

  githubRepo(owner: string, name: string): GithubRepo | undefined {
    return this.githubRepos.get(`${owner}/${name}`.toLowerCase());
  }

  gitlabProject(fullPath: string): GitlabProject | undefined {
    return this.gitlabProjects.get(fullPath.toLowerCase());
  }

  gitlabProjectById(id: number): GitlabProject | undefined {
    for (const p of this.gitlabProjects.values()) if (p.id === id) return p;
    return undefined;
  }

  gitlabGroupById(id: number): GitlabGroup | undefined {
    for (const g of this.gitlabGroups.values()) if (g.id === id) return g;
    return undefined;
  }

  token(value: string | undefined, platform: Platform): ForgeToken | undefined {
    if (!value) return undefined;
    const t = this.tokens.get(value);
    return t && t.platform === platform ? t : undefined;
  }
}

export const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
