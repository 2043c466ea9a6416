import { createTokenHasher, type TokenHasher } from "../keys/hash.js";
import { newApiKeyId, newKeyEventId, newProjectId } from "../keys/ids.js";
import { assertValidBrand, generateToken } from "../keys/token.js";
import type { ApiKeyRow, KeyEventRow, KeyStore, ProjectRow, Transport } from "../store/types.js";
import { ServiceError, echoValue, validationError, type FieldError } from "./errors.js";
import { checkPolicy, DEFAULT_SERVICE_CONFIG, type ServiceConfig } from "./policy.js";
import type { Principal } from "./principal.js";
import { addDays, checkExpiresAt, checkName, checkScopes, SLUG_PATTERN } from "./validation.js";

export type Clock = () => Date;

export interface KeyServiceOptions {
  store: KeyStore;
  config?: ServiceConfig;
  clock?: Clock;
  /** HMAC key for token hashes (KEYWARDEN_PEPPER); plain SHA-256 without it. */
  pepper?: string;
}

export interface CreateApiKeyInput {
  name: string;
  project_reference?: string;
  expires_at?: string;
}

/** The result of create_api_key: the only place a token's plaintext ever appears. */
export interface CreatedApiKey {
  id: string;
  project_id: string | null;
  user_id: string;
  name: string;
  key: string;
  key_prefix: string;
  expires_at: string | null;
  created_at: string;
  scopes: string[];
}

export interface CreateProjectInput {
  slug: string;
  name: string;
  default_scopes?: string[];
}

export interface ProjectRecord {
  id: string;
  organization_id: string;
  slug: string;
  name: string;
  default_scopes: string[];
  created_at: string;
}

export interface LocalPrincipalOptions {
  userName: string;
  transport: Transport;
  isAdmin: boolean;
}

const toProjectRecord = (row: ProjectRow): ProjectRecord => ({ ...row });

/**
 * The rules of keywarden (DESIGN sections 4 and 5), independent of MCP and HTTP: it takes a store,
 * a clock and a config, and answers with records or a ServiceError.
 */
export class KeyService {
  readonly store: KeyStore;
  readonly config: ServiceConfig;
  private readonly clock: Clock;
  private readonly hasher: TokenHasher;

  constructor(options: KeyServiceOptions) {
    this.store = options.store;
    this.config = options.config ?? DEFAULT_SERVICE_CONFIG;
    checkPolicy(this.config.policy);
    assertValidBrand(this.config.keyBrand);
    this.clock = options.clock ?? (() => new Date());
    this.hasher = createTokenHasher(options.pepper);
  }

  /** The principal of a caller without a key (stdio, the CLI): the named user, created on first use. */
  async localPrincipal({ userName, transport, isAdmin }: LocalPrincipalOptions): Promise<Principal> {
    const now = this.clock().toISOString();
    const organization = await this.store.ensureDefaultOrganization(now);
    const user = await this.store.ensureUser(organization.id, userName, now);
    return {
      userId: user.id,
      userName: user.name,
      organizationId: organization.id,
      transport,
      keyId: null,
      scopes: null,
      isAdmin,
      clientAddress: null,
    };
  }

  async createApiKey(principal: Principal, input: CreateApiKeyInput): Promise<CreatedApiKey> {
    const { policy } = this.config;
    if (principal.keyId !== null && !policy.allowMintingWithKeys && !principal.isAdmin) {
      throw new ServiceError("forbidden", "this server does not allow minting keys with an API key");
    }
    const now = this.clock();
    const errors: FieldError[] = [];
    const name = checkName("name", input.name, errors);
    const expiresAt =
      input.expires_at === undefined
        ? policy.defaultExpiryDays === null
          ? null
          : addDays(now, policy.defaultExpiryDays)
        : checkExpiresAt("expires_at", input.expires_at, now, policy.maxExpiryDays, errors);
    if (errors.length > 0) throw validationError(errors);

    let project: ProjectRow | null = null;
    if (input.project_reference !== undefined) {
      project = await this.store.findProject(principal.organizationId, input.project_reference);
      if (!project) {
        throw new ServiceError("not_found", "no project with this id or slug", [
          { key: "project_reference", message: "not_found", value: echoValue(input.project_reference) },
        ]);
      }
    }
    const scopes = this.scopesForNewKey(principal, project ? project.default_scopes : policy.defaultScopes);

    const { token, keyPrefix } = generateToken(this.config.keyBrand);
    const createdAt = now.toISOString();
    const key: ApiKeyRow = {
      id: newApiKeyId(),
      organization_id: principal.organizationId,
      user_id: principal.userId,
      project_id: project?.id ?? null,
      name,
      description: null,
      key_prefix: keyPrefix,
      key_hash: this.hasher.hash(token),
      hash_algorithm: this.hasher.algorithm,
      scopes,
      created_at: createdAt,
      created_by_user_id: principal.userId,
      created_by_key_id: principal.keyId,
      expires_at: expiresAt ?? null,
      last_used_at: null,
      last_used_ip: null,
      last_used_user_agent: null,
      revoked_at: null,
      revoked_reason: null,
      rotated_from: null,
      replaced_by: null,
    };
    const event = this.event(principal, key.id, "key.created", createdAt, {
      name,
      project_id: key.project_id,
      scopes,
      expires_at: key.expires_at,
    });
    const result = await this.store.insertKey({ key, event, maxActiveKeys: policy.maxActiveKeysPerUser, now: createdAt });
    if (!result.ok) {
      throw new ServiceError(
        "max_keys_reached",
        `user already holds ${result.activeKeys} active keys, the most allowed is ${policy.maxActiveKeysPerUser}; revoke one first`,
        [{ key: "limit", message: "max_keys_reached", value: policy.maxActiveKeysPerUser }],
      );
    }
    return {
      id: key.id,
      project_id: key.project_id,
      user_id: key.user_id,
      name: key.name,
      key: token,
      key_prefix: key.key_prefix,
      expires_at: key.expires_at,
      created_at: key.created_at,
      scopes: key.scopes,
    };
  }

  async createProject(principal: Principal, input: CreateProjectInput): Promise<ProjectRecord> {
    if (!principal.isAdmin) throw new ServiceError("forbidden", "creating a project needs the admin scope");
    const errors: FieldError[] = [];
    if (!SLUG_PATTERN.test(input.slug)) {
      errors.push({ key: "slug", message: "must match ^[a-z0-9][a-z0-9-]{0,62}$", value: echoValue(input.slug) });
    }
    const name = checkName("name", input.name, errors);
    const defaultScopes = checkScopes("default_scopes", input.default_scopes ?? this.config.policy.defaultScopes, errors);
    if (defaultScopes.length === 0) errors.push({ key: "default_scopes", message: "must name at least one scope", value: [] });
    if (errors.length > 0) throw validationError(errors);

    const now = this.clock().toISOString();
    const project: ProjectRow = {
      id: newProjectId(),
      organization_id: principal.organizationId,
      slug: input.slug,
      name,
      default_scopes: defaultScopes,
      created_at: now,
    };
    const event = this.event(principal, null, "project.created", now, { project_id: project.id, slug: project.slug });
    const result = await this.store.insertProject(project, event);
    if (!result.ok) {
      throw new ServiceError("conflict", `a project with slug "${input.slug}" already exists`, [
        { key: "slug", message: "already_exists", value: input.slug },
      ]);
    }
    return toProjectRecord(project);
  }

  async listProjects(principal: Principal): Promise<ProjectRecord[]> {
    return (await this.store.listProjects(principal.organizationId)).map(toProjectRecord);
  }

  /**
   * A new key gets the base scopes, narrowed to what the acting key holds: a key can never mint
   * a key more powerful than itself. Admins and the local operator are not narrowed.
   */
  private scopesForNewKey(principal: Principal, base: string[]): string[] {
    if (principal.scopes === null || principal.isAdmin) return [...base];
    const held = new Set(principal.scopes);
    const scopes = base.filter((scope) => held.has(scope));
    if (scopes.length === 0) {
      throw new ServiceError("forbidden", "the acting key holds none of the scopes a new key here would get", [
        { key: "scopes", message: "exceeds_acting_key", value: base.join(",") },
      ]);
    }
    return scopes;
  }

  private event(
    principal: Principal,
    keyId: string | null,
    eventType: string,
    occurredAt: string,
    detail: Record<string, unknown>,
  ): KeyEventRow {
    return {
      id: newKeyEventId(),
      organization_id: principal.organizationId,
      key_id: keyId,
      event_type: eventType,
      actor_user_id: principal.userId,
      actor_key_id: principal.keyId,
      transport: principal.transport,
      client_address: principal.clientAddress,
      occurred_at: occurredAt,
      detail,
    };
  }
}
