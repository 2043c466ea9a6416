import { createTokenHasher, hashesEqual, type TokenHasher } from "../keys/hash.js";
import { newApiKeyId, newKeyEventId, newProjectId } from "../keys/ids.js";
import { assertValidBrand, generateToken, parseToken } from "../keys/token.js";
import type {
  ApiKeyRow,
  GraceCut,
  KeyChanges,
  KeyEventRow,
  KeyStatus,
  KeyStatusFilter,
  KeyStore,
  KeyUse,
  ProjectRow,
  Transport,
} from "../store/types.js";
import { isLaterExpiry, keyStatusAt, MAX_INSTANT_MS, toInstant } from "../store/instants.js";
import { ADMIN_SCOPE, assertHoldsScopes, assertMayActOn, assertMayUpdate, grantableScopes, mayLengthenLife, maySee } from "./access.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { ServiceError, echoValue, validationError, type FieldError } from "./errors.js";
import { checkPolicy, DEFAULT_SERVICE_CONFIG, type ServiceConfig } from "./policy.js";
import type { Principal } from "./principal.js";
import {
  statusOf,
  toApiKeyRecord,
  toKeyEventRecord,
  toProjectRecord,
  toUserRecord,
  type ApiKeyRecord,
  type KeyEventRecord,
  type ProjectRecord,
  type UserRecord,
} from "./records.js";
import { ImmediateFailureRecorder } from "./failure-recorder.js";
import type {
  ApiKeyPage,
  AuthFailureRecorder,
  AuthenticationRefusal,
  Clock,
  ConfirmKeyStop,
  CreateApiKeyInput,
  CreateProjectInput,
  CreatedApiKey,
  GetApiKeyInput,
  KeyAuthentication,
  KeyEventPage,
  KeyServiceOptions,
  KeyUseRecorder,
  ListApiKeysInput,
  ListKeyEventsInput,
  LocalPrincipalOptions,
  RequestOrigin,
  RevokeApiKeyInput,
  RotateApiKeyInput,
  RotatedApiKey,
  UpdateApiKeyInput,
  VerifyCode,
  VerifyOptions,
  VerifyResult,
  WhoAmI,
} from "./types.js";
import {
  capUserAgent,
  checkDescription,
  checkExpiresAt,
  checkInteger,
  checkName,
  checkScopes,
  DAY_MS,
  GRACE_PERIOD_DEFAULT_SECONDS,
  instantAfter,
  KEY_STATUS_FILTERS,
  GRACE_PERIOD_MAX_SECONDS,
  PAGE_LIMIT_DEFAULT,
  PAGE_LIMIT_MAX,
  SCOPES_MAX_COUNT,
  SLUG_PATTERN,
} from "./validation.js";

/** A key's standing at one instant: what a session opened with it may still rely on. */
export interface KeyStandingNow {
  status: KeyStatus;
  scopes: readonly string[];
  expiresAt: string | null;
}

const UNKNOWN_KEY: Omit<VerifyResult, "valid" | "code"> = {
  key_id: null,
  key_prefix: null,
  user_id: null,
  organization_id: null,
  project_id: null,
  scopes: null,
  expires_at: null,
};

/** Compared against when no row matches, so a miss costs about what a hit costs. */
const DUMMY_HASH = new Uint8Array(32);
const NO_SCOPES: readonly string[] = Object.freeze([]);

const notFound = (field: string, value: string, what = "no API key with this id"): ServiceError =>
  new ServiceError("not_found", what, [{ key: field, message: "not_found", value: echoValue(value) }]);

/**
 * A cancelled call writes nothing (README, Confirmation). Called with no await between it and the
 * store's write, so a cancellation that arrives while the call waits cannot slip in between.
 */
function throwIfCancelled(confirmStop: ConfirmKeyStop | undefined, id: string): void {
  if (confirmStop?.signal?.aborted) {
    throw new ServiceError("confirmation_declined", "the call was cancelled; nothing was changed", [
      { key: "id", message: "cancelled", value: echoValue(id) },
    ]);
  }
}

/**
 * The rules of keywarden (DESIGN sections 4 and 5), independent of MCP and HTTP: it takes a store,
 * a clock and a config, and answers with records or a ServiceError.
 */
export class KeyService {
  readonly store: KeyStore;
  readonly config: ServiceConfig;
  private readonly clock: Clock;
  private readonly hasher: TokenHasher;
  private readonly useRecorder: KeyUseRecorder;
  private readonly failureRecorder: AuthFailureRecorder;
  /** User names by id, for authenticated principals: users are never renamed or deleted. */
  private readonly userNames = new Map<string, string>();

  constructor(options: KeyServiceOptions) {
    this.store = options.store;
    this.config = options.config ?? DEFAULT_SERVICE_CONFIG;
    checkPolicy(this.config.policy);
    assertValidBrand(this.config.keyBrand);
    this.clock = options.clock ?? (() => new Date());
    this.hasher = createTokenHasher(options.pepper);
    const store = this.store;
    this.useRecorder = options.useRecorder ?? { record: (keyId, use) => store.recordKeyUse(keyId, use) };
    this.failureRecorder = options.failureRecorder ?? new ImmediateFailureRecorder(store);
  }

  /**
   * The hash algorithms stored keys use that cannot be computed here: hmac-sha256 without a pepper,
   * or one newer than this build. Such keys could never verify; a server should not start on them.
   */
  async unusableHashAlgorithms(): Promise<string[]> {
    return (await this.store.listHashAlgorithms()).filter((algorithm) => !this.hasher.canHash(algorithm)).sort();
  }

  /** The principal of a caller without a key (stdio, the CLI): the named user, created on first use. */
  async localPrincipal({ userName: rawName, transport, isAdmin }: LocalPrincipalOptions): Promise<Principal> {
    // The same names rule as every other free-text field: a user name is shown to admins and their agents.
    const errors: FieldError[] = [];
    const userName = checkName("user_name", rawName, errors);
    if (errors.length > 0) throw validationError(errors);
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
    this.assertMayMint(principal);
    const now = this.clock();
    const errors: FieldError[] = [];
    const name = checkName("name", input.name, errors);
    const expiresAt = this.newKeyExpiry(input, now, errors);
    const requested = input.scopes === undefined ? undefined : this.checkKeyScopes("scopes", input.scopes, errors);
    if (errors.length > 0) throw validationError(errors);

    const project = input.project_reference === undefined ? null : await this.projectOf(principal, input.project_reference);
    const scopes =
      requested === undefined
        ? this.scopesForNewKey(principal, project ? project.default_scopes : policy.defaultScopes)
        : this.explicitScopes(principal, requested);

    const createdAt = now.toISOString();
    const { token, key } = this.newKeyRow(principal, {
      owner: principal.userId,
      organizationId: principal.organizationId,
      projectId: project?.id ?? null,
      name,
      description: null,
      scopes,
      expiresAt: expiresAt ?? null,
      createdAt,
      rotatedFrom: null,
    });
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
    return this.createdKeyOf(key, token);
  }

  /** A new key's expiry: expires_at, or expires_in_days, or the default; every one within policy and MAX_INSTANT. */
  private newKeyExpiry(input: CreateApiKeyInput, now: Date, errors: FieldError[]): string | null | undefined {
    const { defaultExpiryDays, maxExpiryDays } = this.config.policy;
    if (input.expires_at !== undefined && input.expires_in_days !== undefined) {
      errors.push({ key: "expires_in_days", message: "give expires_at or expires_in_days, not both", value: echoValue(input.expires_in_days) });
      return undefined;
    }
    if (input.expires_at !== undefined) return checkExpiresAt("expires_at", input.expires_at, now, maxExpiryDays, errors);
    if (input.expires_in_days !== undefined) {
      const days = input.expires_in_days;
      if (!Number.isSafeInteger(days) || days < 1) {
        errors.push({ key: "expires_in_days", message: "must be a positive integer", value: echoValue(days) });
        return undefined;
      }
      if (maxExpiryDays !== null && days > maxExpiryDays) {
        errors.push({ key: "expires_in_days", message: `must be at most ${maxExpiryDays} days`, value: days });
        return undefined;
      }
      return instantAfter("expires_in_days", now, days * DAY_MS, days, errors);
    }
    if (defaultExpiryDays === null) return null;
    // The operator's default, not the caller's input: the caller can still give an earlier expires_at.
    return instantAfter("expires_at", now, defaultExpiryDays * DAY_MS, null, errors);
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

  /** The organization's users with their active-key counts: an operator's view, admin only. */
  async listUsers(principal: Principal): Promise<UserRecord[]> {
    if (!principal.isAdmin) throw new ServiceError("forbidden", "listing users needs the admin scope");
    return (await this.store.listUsers(principal.organizationId, this.clock().toISOString())).map(toUserRecord);
  }

  async listProjects(principal: Principal): Promise<ProjectRecord[]> {
    return (await this.store.listProjects(principal.organizationId)).map(toProjectRecord);
  }

  async listApiKeys(principal: Principal, input: ListApiKeysInput = {}): Promise<ApiKeyPage> {
    const errors: FieldError[] = [];
    const limit = checkInteger("limit", input.limit, 1, PAGE_LIMIT_MAX, PAGE_LIMIT_DEFAULT, errors);
    const status = input.status ?? "active";
    // The tool's schema allows only these; a library or CLI caller is checked here.
    if (!KEY_STATUS_FILTERS.includes(status)) {
      errors.push({ key: "status", message: `must be one of ${KEY_STATUS_FILTERS.join(", ")}`, value: echoValue(String(status)) });
    }
    if (errors.length > 0) throw validationError(errors);
    const after = input.cursor === undefined ? null : decodeCursor("keys", input.cursor);
    const project = input.project_reference === undefined ? null : await this.projectOf(principal, input.project_reference);

    const now = this.clock();
    const rows = await this.store.listKeys({
      organizationId: principal.organizationId,
      userId: principal.isAdmin ? null : principal.userId,
      projectId: project?.id ?? null,
      status,
      now: now.toISOString(),
      after,
      limit: limit + 1,
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      keys: page.map((row) => toApiKeyRecord(row, now)),
      next_cursor: rows.length > limit && last ? encodeCursor("keys", { at: last.created_at, id: last.id }) : null,
    };
  }

  async getApiKey(principal: Principal, input: GetApiKeyInput): Promise<ApiKeyRecord> {
    if ((input.id === undefined) === (input.key_prefix === undefined)) {
      const message = "give exactly one of id and key_prefix";
      throw validationError(
        input.id === undefined
          ? [{ key: "id", message }]
          : [{ key: "key_prefix", message, value: echoValue(input.key_prefix) }],
      );
    }
    const key =
      input.id !== undefined
        ? await this.visibleKey(principal, "id", input.id)
        : await this.visibleKeyByPrefix(principal, input.key_prefix!);
    return toApiKeyRecord(key, this.clock());
  }

  async updateApiKey(principal: Principal, input: UpdateApiKeyInput): Promise<ApiKeyRecord> {
    const now = this.clock();
    const errors: FieldError[] = [];
    const changes: KeyChanges = {};
    if (input.name !== undefined) changes.name = checkName("name", input.name, errors);
    if (input.description !== undefined) changes.description = checkDescription("description", input.description, errors);
    if (input.scopes !== undefined) changes.scopes = this.checkKeyScopes("scopes", input.scopes, errors);
    if (input.expires_at !== undefined) {
      changes.expires_at = checkExpiresAt("expires_at", input.expires_at, now, this.config.policy.maxExpiryDays, errors);
    }
    if (Object.keys(changes).length === 0 && errors.length === 0) {
      errors.push({ key: "arguments", message: "name at least one of name, description, scopes and expires_at to change" });
    }
    if (errors.length > 0) throw validationError(errors);

    const target = await this.visibleKey(principal, "id", input.id);
    const at = now.toISOString();
    const result = await this.store.updateKey({
      id: input.id,
      changes,
      event: this.event(principal, input.id, "key.updated", at, {}),
      now: at,
      narrowScopesOnly: !principal.isAdmin,
      authorize: (current) => assertMayUpdate(principal, current, changes),
      // A successor's new expiry also bounds its predecessor's grace (README, rotate_api_key).
      endGraceOf:
        typeof changes.expires_at === "string" ? this.graceCut(principal, target, changes.expires_at, at, { updated_key_id: target.id }) : undefined,
    });
    if (result.ok) return toApiKeyRecord(result.key, now);
    switch (result.reason) {
      case "not_found":
        throw notFound("id", input.id);
      case "scope_widening":
        throw new ServiceError("forbidden", "scopes can only be narrowed: every scope must already be on the key", [
          { key: "scopes", message: `not on the key: ${result.extra.join(", ")}`, value: echoValue(result.extra.join(",")) },
        ]);
      case "inactive":
        throw new ServiceError("conflict", "the key is revoked or expired: its expiry can no longer move; create a new key", [
          { key: "expires_at", message: "key_not_active" },
        ]);
      case "replaced":
        throw new ServiceError(
          "conflict",
          `the key was rotated (replaced by ${result.key.replaced_by}): its grace period cannot move; revoke it to end it early`,
          [{ key: "expires_at", message: "key_rotated" }],
        );
    }
  }

  async rotateApiKey(principal: Principal, input: RotateApiKeyInput, confirmStop?: ConfirmKeyStop): Promise<RotatedApiKey> {
    const errors: FieldError[] = [];
    const grace = checkInteger(
      "grace_period_seconds",
      input.grace_period_seconds,
      0,
      GRACE_PERIOD_MAX_SECONDS,
      GRACE_PERIOD_DEFAULT_SECONDS,
      errors,
    );
    instantAfter("grace_period_seconds", this.clock(), grace * 1000, grace, errors);
    if (errors.length > 0) throw validationError(errors);
    this.assertMayMint(principal);

    const old = await this.visibleKey(principal, "id", input.id);
    // As create: nobody obtains a key more powerful than themselves (the store re-checks the scopes: `expected`).
    assertMayActOn(principal, old, "rotate");
    // Without grace a working key stops now. A key the store will refuse (revoked, expired,
    // replaced) gets its conflict without the question. The answer may take a while: the acting
    // key is checked again as it is then, the time of the rotation is read after it, and the
    // store refuses the key if it changed meanwhile.
    if (grace === 0 && confirmStop !== undefined && old.replaced_by === null) {
      const asked = this.clock();
      if (statusOf(old, asked) === "active") {
        await confirmStop.ask(toApiKeyRecord(old, asked));
        const acting = await this.actingAfterAnswer(principal, confirmStop);
        if (!maySee(acting, old)) throw notFound("id", input.id);
        this.assertMayMint(acting);
        assertMayActOn(acting, old, "rotate");
      }
    }

    const now = this.clock();
    const at = now.toISOString();
    const { token, key } = this.newKeyRow(principal, {
      owner: old.user_id,
      organizationId: old.organization_id,
      projectId: old.project_id,
      name: old.name,
      description: old.description,
      scopes: old.scopes,
      expiresAt: this.successorExpiry(principal, old, now),
      createdAt: at,
      rotatedFrom: old.id,
    });
    const detail = { previous_key_id: old.id, new_key_id: key.id, grace_period_seconds: grace, new_key_expires_at: key.expires_at };
    const graceUntil = instantAfter("grace_period_seconds", now, grace * 1000, grace, errors);
    if (graceUntil === undefined) throw validationError(errors);
    throwIfCancelled(confirmStop, input.id);
    const result = await this.store.rotateKey({
      oldKeyId: old.id,
      newKey: key,
      graceUntil,
      now: at,
      expected: old,
      events: [
        this.event(principal, old.id, "key.rotated", at, detail),
        this.event(principal, key.id, "key.rotated", at, detail),
      ],
      // One overlap per rotation chain (README, rotate_api_key): the predecessor's grace ends now.
      endGraceOf: this.graceCut(principal, old, at, at, { rotated_key_id: old.id, new_key_id: key.id }),
    });
    if (!result.ok) {
      if (result.reason === "not_found") throw notFound("id", input.id);
      const why = {
        revoked: "the key is revoked: a revoked key cannot be rotated; create a new key instead",
        expired: "the key has expired: an expired key cannot be rotated; create a new key instead",
        already_rotated: `the key was already rotated (replaced by ${result.key.replaced_by}); rotate that key instead`,
        changed: "the key changed while it was being rotated; read it again and retry",
      }[result.reason];
      throw new ServiceError("conflict", why, [{ key: "id", message: result.reason, value: echoValue(input.id) }]);
    }
    return {
      ...this.createdKeyOf(key, token),
      previous_key_id: old.id,
      previous_key_expires_at: (result.oldKey.revoked_at ?? result.oldKey.expires_at)!,
    };
  }

  async revokeApiKey(principal: Principal, input: RevokeApiKeyInput, confirmStop?: ConfirmKeyStop): Promise<ApiKeyRecord> {
    const errors: FieldError[] = [];
    const reason = input.reason === undefined ? null : checkName("reason", input.reason, errors);
    if (errors.length > 0) throw validationError(errors);
    const current = await this.visibleKey(principal, "id", input.id);
    assertMayActOn(principal, current, "revoke");
    // Only a working key stops: revoking a revoked or expired key takes nothing away, so nobody is
    // asked. The answer may take a while: the acting key is checked again as it is then.
    const asked = this.clock();
    let acting = principal;
    if (confirmStop !== undefined && statusOf(current, asked) === "active") {
      await confirmStop.ask(toApiKeyRecord(current, asked));
      acting = await this.actingAfterAnswer(principal, confirmStop);
      if (!maySee(acting, current)) throw notFound("id", input.id);
    }
    const now = this.clock();
    const at = now.toISOString();
    throwIfCancelled(confirmStop, input.id);
    const result = await this.store.revokeKey({
      id: input.id,
      reason,
      now: at,
      event: this.event(principal, input.id, "key.revoked", at, { reason }),
      // Judged on the key as it is in the write transaction, by the acting key as it is after any answer.
      authorize: (key) => assertMayActOn(acting, key, "revoke"),
      // A predecessor's grace never outlasts its successor (README, rotate_api_key).
      endGraceOf: this.graceCut(principal, current, at, at, { revoked_key_id: current.id }),
    });
    if (!result.ok) throw notFound("id", input.id);
    return toApiKeyRecord(result.key, now);
  }

  /**
   * DESIGN section 3, in order: parse and checksum (no I/O), look up by key_prefix, compare hashes
   * in constant time, revoked, expired, required scopes, then record the use. Every outcome has
   * the same shape; only a caller error (bad required_scopes) throws. Never echoes the token.
   */
  async verifyApiKey(token: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    let required: readonly string[] = NO_SCOPES;
    if (options.requiredScopes !== undefined) {
      const errors: FieldError[] = [];
      required = this.checkRequiredScopes(options.requiredScopes, errors);
      // No value is echoed: a caller that mixed up its arguments may have put a token here.
      if (errors.length > 0) throw validationError(errors.map(({ key, message }) => ({ key, message })));
    }

    const parsed = parseToken(token, this.config.keyBrand);
    if (!parsed) return { valid: false, code: "malformed", ...UNKNOWN_KEY };

    const found = await this.store.findKeyForVerification(parsed.keyPrefix);
    // A row whose hash cannot be computed here (its pepper is not set, or its algorithm is newer
    // than this build) cannot be matched: it fails like an unknown key, after the same work.
    const row = found !== null && this.hasher.canHash(found.hash_algorithm) ? found : null;
    const hash = this.hasher.hash(token, row?.hash_algorithm);
    const matches = hashesEqual(hash, row?.key_hash ?? DUMMY_HASH);
    if (!row || !matches) return { valid: false, code: "not_found", ...UNKNOWN_KEY };

    const now = toInstant(this.clock());
    const status = keyStatusAt(row, now);
    const code: VerifyCode =
      status !== "active" ? status : required.every((scope) => row.scopes.includes(scope)) ? "valid" : "insufficient_scope";
    if (code === "valid") {
      const queued = this.recordKeyUse(row.id, { at: now, ip: options.ip ?? null, userAgent: options.userAgent ?? null });
      if (queued !== undefined) await queued;
    }
    return {
      valid: code === "valid",
      code,
      key_id: row.id,
      key_prefix: row.key_prefix,
      user_id: row.user_id,
      organization_id: row.organization_id,
      project_id: row.project_id,
      scopes: [...row.scopes],
      expires_at: row.expires_at,
    };
  }

  /**
   * Authenticates a caller by an API key (the HTTP bearer token): verifies it, which records its
   * use, and builds the principal it acts as. `null` is a request that carried no key.
   */
  async authenticateKey(token: string | null, origin: RequestOrigin): Promise<KeyAuthentication> {
    if (token === null) return { ok: false, reason: "missing", keyId: null, keyPrefix: null, organizationId: null };
    const result = await this.verifyApiKey(token, { ip: origin.clientAddress, userAgent: origin.userAgent });
    if (!result.valid || result.key_id === null || result.user_id === null || result.organization_id === null) {
      return {
        ok: false,
        // No scopes were required, so insufficient_scope cannot happen; anything else is not found.
        reason: result.code === "malformed" || result.code === "revoked" || result.code === "expired" ? result.code : "not_found",
        keyId: result.key_id,
        keyPrefix: result.key_prefix ?? parseToken(token, this.config.keyBrand)?.keyPrefix ?? null,
        organizationId: result.organization_id,
      };
    }
    const userName = await this.userNameOf(result.user_id);
    const scopes = result.scopes ?? [];
    return {
      ok: true,
      expiresAt: result.expires_at,
      principal: {
        userId: result.user_id,
        userName,
        organizationId: result.organization_id,
        transport: origin.transport,
        keyId: result.key_id,
        scopes,
        isAdmin: scopes.includes("admin"),
        clientAddress: origin.clientAddress,
      },
    };
  }

  /**
   * Where each of these keys stands now, in one store read: its status (as statusOf judges it)
   * and its current scopes. The HTTP transport closes the sessions of a key that is no longer
   * active or whose scopes changed (README, "Sessions"). A key without a row is left out.
   */
  async keyStandings(keyIds: readonly string[]): Promise<Map<string, KeyStandingNow>> {
    const now = this.clock();
    const rows = await this.store.getKeyStandings(keyIds);
    return new Map(rows.map((row) => [row.id, { status: statusOf(row, now), scopes: row.scopes, expiresAt: row.expires_at }]));
  }

  /**
   * A user's name, remembered: every HTTP request authenticates, and a user row never changes once
   * written, so a cached name is never stale. Bounded; an id without a row names itself.
   */
  private async userNameOf(userId: string): Promise<string> {
    const known = this.userNames.get(userId);
    if (known !== undefined) return known;
    const name = (await this.store.getUserById(userId))?.name;
    if (name === undefined) return userId;
    if (this.userNames.size >= 10_000) this.userNames.clear();
    this.userNames.set(userId, name);
    return name;
  }

  /**
   * Records `auth.failed` for the audit log through the failure recorder (written at once by
   * default; in batches, bounded, by `keywarden serve`): why, from where, the key when known; never
   * the token. Returns nothing once the recorder has queued it.
   */
  recordAuthenticationFailure(refusal: AuthenticationRefusal, origin: RequestOrigin, detail: Record<string, unknown> = {}): Promise<void> | void {
    const userAgent = capUserAgent(origin.userAgent);
    return this.failureRecorder.record({
      refusal,
      origin: userAgent === origin.userAgent ? origin : { ...origin, userAgent },
      detail,
      at: this.clock().toISOString(),
    });
  }

  /** Counts a failed authentication without recording it on its own (its address is over the limit). */
  countAuthenticationFailure(origin: RequestOrigin): Promise<void> | void {
    return this.failureRecorder.count(origin.transport, this.clock().toISOString());
  }

  /** Writes `call.denied` to the audit log: an authenticated caller asked for something its scopes do not allow. */
  async recordDeniedCall(principal: Principal, detail: Record<string, unknown>): Promise<void> {
    const now = this.clock().toISOString();
    await this.store.appendEvent(this.event(principal, principal.keyId, "call.denied", now, detail));
  }

  /** Throws when the store does not answer. */
  async checkHealth(): Promise<void> {
    await this.store.ping();
  }

  /**
   * The one path by which last use is recorded (see KeyUseRecorder). The user agent is capped here,
   * once, so neither a recorder's pending uses nor the stored rows hold a huge header.
   */
  recordKeyUse(keyId: string, use: KeyUse): Promise<void> | void {
    const userAgent = capUserAgent(use.userAgent);
    return this.useRecorder.record(keyId, userAgent === use.userAgent ? use : { ...use, userAgent });
  }

  async whoami(principal: Principal): Promise<WhoAmI> {
    return {
      user_id: principal.userId,
      user_name: principal.userName,
      organization_id: principal.organizationId,
      transport: principal.transport,
      is_admin: principal.isAdmin,
      key_id: principal.keyId,
      scopes: principal.scopes === null ? null : [...principal.scopes],
    };
  }

  async listKeyEvents(principal: Principal, input: ListKeyEventsInput = {}): Promise<KeyEventPage> {
    const errors: FieldError[] = [];
    const limit = checkInteger("limit", input.limit, 1, PAGE_LIMIT_MAX, PAGE_LIMIT_DEFAULT, errors);
    if (errors.length > 0) throw validationError(errors);
    const after = input.cursor === undefined ? null : decodeCursor("events", input.cursor);
    // A user asking about another user's key learns nothing, not even that it exists. An admin may
    // ask about any key id, even one with no row (a failed authentication may name such a key).
    if (input.key_id !== undefined && !principal.isAdmin) await this.visibleKey(principal, "key_id", input.key_id);

    const rows = await this.store.listKeyEvents({
      organizationId: principal.organizationId,
      keyId: input.key_id ?? null,
      ownerUserId: principal.isAdmin ? null : principal.userId,
      after,
      limit: limit + 1,
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      // Where another actor called from (an admin, a failed authentication) is for admins only.
      events: page.map(({ event }) =>
        toKeyEventRecord(principal.isAdmin || event.actor_user_id === principal.userId ? event : { ...event, client_address: null }),
      ),
      next_cursor: rows.length > limit && last ? encodeCursor("events", { at: last.event.occurred_at, seq: last.seq }) : null,
    };
  }

  /**
   * The acting principal as it is after a confirmation's answer, which may have taken a while:
   * its key must still be active, and its scopes are read again (it may have been narrowed).
   */
  private async actingAfterAnswer(principal: Principal, confirmStop: ConfirmKeyStop): Promise<Principal> {
    let acting = principal;
    if (principal.keyId !== null) {
      const key = await this.store.getKeyById(principal.keyId);
      if (!key || statusOf(key, this.clock()) !== "active") {
        throw new ServiceError("forbidden", "the acting key was revoked or expired while the confirmation was open; nothing was changed", [
          { key: "key", message: "acting_key_not_active" },
        ]);
      }
      acting = { ...principal, scopes: [...key.scopes], isAdmin: key.scopes.includes(ADMIN_SCOPE) };
    }
    if (confirmStop.mayAct?.(acting) === false) {
      throw new ServiceError("forbidden", "the acting key lost the scope for this call while the confirmation was open; nothing was changed", [
        { key: "scopes", message: "scope_removed", value: (acting.scopes ?? []).join(",") },
      ]);
    }
    return acting;
  }

  /**
   * The grace of `key`'s predecessor (the key it was rotated from), cut to end by `until`: one
   * overlap per rotation chain, and a key in its grace never outlives its successor, so that a
   * user holds at most cap + 1 working keys per chain (README, Policy). None for a key never rotated from.
   */
  private graceCut(principal: Principal, key: ApiKeyRow, until: string, at: string, detail: Record<string, unknown>): GraceCut | undefined {
    if (key.rotated_from === null) return undefined;
    return { keyId: key.rotated_from, until, event: this.event(principal, key.rotated_from, "key.grace_ended", at, detail) };
  }

  /** A key the principal may see: their own, or any of the organization's for an admin. Otherwise not_found. */
  private async visibleKey(principal: Principal, field: string, id: string): Promise<ApiKeyRow> {
    const key = await this.store.getKeyById(id);
    if (!key || !maySee(principal, key)) throw notFound(field, id);
    return key;
  }

  private async visibleKeyByPrefix(principal: Principal, keyPrefix: string): Promise<ApiKeyRow> {
    const key = await this.store.getKeyByPrefix(keyPrefix);
    if (!key || !maySee(principal, key)) throw notFound("key_prefix", keyPrefix, "no API key with this key_prefix");
    return key;
  }

  private async projectOf(principal: Principal, reference: string): Promise<ProjectRow> {
    const project = await this.store.findProject(principal.organizationId, reference);
    if (!project) throw notFound("project_reference", reference, "no project with this id or slug");
    return project;
  }

  private assertMayMint(principal: Principal): void {
    if (principal.keyId !== null && !this.config.policy.allowMintingWithKeys && !principal.isAdmin) {
      throw new ServiceError("forbidden", "this server does not allow minting keys with an API key");
    }
  }

  /** Scope names for a key: valid names, de-duplicated, 1-50 of them. */
  private checkKeyScopes(field: string, scopes: string[], errors: FieldError[]): string[] {
    const checked = checkScopes(field, scopes, errors);
    if (checked.length === 0) errors.push({ key: field, message: "must name at least one scope", value: [] });
    else if (checked.length > SCOPES_MAX_COUNT) errors.push({ key: field, message: `must name at most ${SCOPES_MAX_COUNT} scopes`, value: echoValue(checked) });
    return checked;
  }

  private checkRequiredScopes(scopes: string[], errors: FieldError[]): string[] {
    const checked = checkScopes("required_scopes", scopes, errors);
    if (checked.length > SCOPES_MAX_COUNT) errors.push({ key: "required_scopes", message: `must name at most ${SCOPES_MAX_COUNT} scopes` });
    return checked;
  }

  /**
   * A successor keeps its predecessor's lifetime (expires_at - created_at), counted from now and
   * capped at the maximum: a 7-day key rotates into a 7-day key, a default key into a default one.
   * A key without expiry keeps none while policy allows that, else gets the default expiry.
   */
  private successorExpiry(principal: Principal, old: ApiKeyRow, now: Date): string | null {
    const { defaultExpiryDays, maxExpiryDays } = this.config.policy;
    // Never past MAX_INSTANT: a lifetime that would carry the successor beyond it ends there.
    const latest = Math.min(MAX_INSTANT_MS, maxExpiryDays === null ? Infinity : now.getTime() + maxExpiryDays * DAY_MS);
    if (old.expires_at === null) {
      if (maxExpiryDays === null) return null;
      return toInstant(Math.min(latest, now.getTime() + (defaultExpiryDays ?? maxExpiryDays) * DAY_MS));
    }
    const lifetime = Math.max(1000, Date.parse(old.expires_at) - Date.parse(old.created_at));
    const renewed = toInstant(Math.min(now.getTime() + lifetime, latest));
    // Only an admin may lengthen a key's life: anyone else's successor ends when the old key would have.
    return mayLengthenLife(principal) || !isLaterExpiry(renewed, old.expires_at) ? renewed : old.expires_at;
  }

  private newKeyRow(
    principal: Principal,
    fields: {
      owner: string;
      organizationId: string;
      projectId: string | null;
      name: string;
      description: string | null;
      scopes: string[];
      expiresAt: string | null;
      createdAt: string;
      rotatedFrom: string | null;
    },
  ): { token: string; key: ApiKeyRow } {
    const { token, keyPrefix } = generateToken(this.config.keyBrand);
    return {
      token,
      key: {
        id: newApiKeyId(),
        organization_id: fields.organizationId,
        user_id: fields.owner,
        project_id: fields.projectId,
        name: fields.name,
        description: fields.description,
        key_prefix: keyPrefix,
        key_hash: this.hasher.hash(token),
        hash_algorithm: this.hasher.algorithm,
        scopes: [...fields.scopes],
        created_at: fields.createdAt,
        created_by_user_id: principal.userId,
        created_by_key_id: principal.keyId,
        expires_at: fields.expiresAt,
        last_used_at: null,
        last_used_ip: null,
        last_used_user_agent: null,
        revoked_at: null,
        revoked_reason: null,
        rotated_from: fields.rotatedFrom,
        replaced_by: null,
      },
    };
  }

  private createdKeyOf(key: ApiKeyRow, token: string): CreatedApiKey {
    return {
      id: key.id,
      project_id: key.project_id,
      user_id: key.user_id,
      name: key.name,
      key: token,
      key_prefix: key.key_prefix,
      expires_at: key.expires_at,
      created_at: key.created_at,
      scopes: [...key.scopes],
    };
  }

  /**
   * A new key gets the base scopes the principal holds (access.ts): nobody mints a key more
   * powerful than themselves, and admin from a project's defaults goes only to an admin.
   */
  private scopesForNewKey(principal: Principal, base: string[]): string[] {
    const scopes = grantableScopes(principal, base);
    if (scopes.length === 0) {
      throw new ServiceError("forbidden", `you hold none of the scopes a new key here would get (${base.join(", ")}); ask an admin`, [
        { key: "scopes", message: "exceeds_acting_key", value: base.join(",") },
      ]);
    }
    return scopes;
  }

  /** Scopes named explicitly for a new key: only scopes the principal holds (access.ts). */
  private explicitScopes(principal: Principal, requested: string[]): string[] {
    assertHoldsScopes(principal, requested, "grant a scope", { key: "scopes" });
    return requested;
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
