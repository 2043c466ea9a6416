import { createTokenHasher, PEPPERED_ALGORITHM } from "../keys/hash.js";
import { assertValidBrand } from "../keys/token.js";
import type { KeyChangeListener, KeyStore, KeyUse } from "../store/types.js";
import { listKeyEvents, recordDeniedCall } from "./audit.js";
import { authenticateKey, keyStandings, recordAuthenticationFailure, UserNames, type KeyStandingNow } from "./authenticate.js";
import type { ServiceContext } from "./context.js";
import { createApiKey } from "./create.js";
import { createProject, listProjects, listUsers, localPrincipal, whoami } from "./directory.js";
import { ImmediateFailureRecorder } from "./failure-recorder.js";
import { checkPolicy, DEFAULT_SERVICE_CONFIG, type ServiceConfig } from "./policy.js";
import type { Principal } from "./principal.js";
import { getApiKey, listApiKeys } from "./read.js";
import type { ApiKeyRecord, ProjectRecord, UserRecord } from "./records.js";
import { revokeApiKey } from "./revoke.js";
import { rotateApiKey } from "./rotate.js";
import type {
  ApiKeyPage,
  AuthFailureRecorder,
  AuthenticationRefusal,
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
  VerifyOptions,
  VerifyResult,
  WhoAmI,
} from "./types.js";
import { updateApiKey } from "./update.js";
import { capUserAgent } from "./validation.js";
import { verifyToken } from "./verification.js";
import { canCacheVerification, VerificationCache } from "./verification-cache.js";

export type { KeyStandingNow } from "./authenticate.js";

/**
 * The rules of keywarden (README, Policy and Access), independent of MCP and HTTP: it takes a
 * store, a clock and a config, and answers with records or a ServiceError. A thin facade: each
 * operation lives in its own module, every write is a pure decider the store runs in one write
 * transaction, and access.ts alone decides what a principal may do.
 */
export class KeyService {
  readonly store: KeyStore;
  readonly config: ServiceConfig;
  private readonly ctx: ServiceContext;
  private readonly useRecorder: KeyUseRecorder;
  private readonly failureRecorder: AuthFailureRecorder;
  private readonly userNames = new UserNames();
  /** Null when turned off, or when the store cannot tell when keys changed (exactness first). */
  private readonly verificationCache: VerificationCache | null;
  /** Bound once: verification is the hot path, and authentication calls it too. */
  private readonly recordUse = (keyId: string, use: KeyUse): Promise<void> | void => this.recordKeyUse(keyId, use);
  private readonly verify = (token: string, options: VerifyOptions): Promise<VerifyResult> => this.verifyApiKey(token, options);

  constructor(options: KeyServiceOptions) {
    this.store = options.store;
    this.config = options.config ?? DEFAULT_SERVICE_CONFIG;
    checkPolicy(this.config.policy);
    assertValidBrand(this.config.keyBrand);
    this.ctx = { store: this.store, config: this.config, clock: options.clock ?? (() => new Date()), hasher: createTokenHasher(options.pepper) };
    const store = this.store;
    this.useRecorder = options.useRecorder ?? { record: (keyId, use) => store.recordKeyUse(keyId, use) };
    this.failureRecorder = options.failureRecorder ?? new ImmediateFailureRecorder(store);
    const cache = options.verificationCache;
    this.verificationCache =
      cache === false || cache?.maxEntries === 0 || !canCacheVerification(store) ? null : new VerificationCache(store, cache ?? {});
  }

  /**
   * The hash algorithms stored keys use that cannot be computed here: hmac-sha256 without a pepper,
   * or one newer than this build. Such keys could never verify; a server should not start on them.
   */
  async unusableHashAlgorithms(): Promise<string[]> {
    return (await this.store.listHashAlgorithms()).filter((algorithm) => !this.ctx.hasher.canHash(algorithm)).sort();
  }

  /**
   * Why the stored keys cannot all be verified here, for an operator: the pepper is not the one
   * recorded (pepperDiffers), or they use algorithms this hasher cannot compute
   * (unusableHashAlgorithms); null when they can all be. `store` names the database, `pepper`
   * where the pepper is set. The CLI refuses to start on a problem, the library's verifyApiKey to
   * verify (src/service/verify.ts): one message for both.
   */
  async unverifiableKeysProblem(store: string, pepper: string, options: { recordPepper: boolean }): Promise<string | null> {
    if (await this.pepperDiffers(options)) {
      return `${pepper} is not the pepper ${store} hashes its keys with: set the one its keys were created with (keys made with another would never verify)`;
    }
    const unusable = await this.unusableHashAlgorithms();
    if (unusable.length === 0) return null;
    return unusable
      .map((algorithm) =>
        algorithm === PEPPERED_ALGORITHM
          ? `${store} holds keys hashed with ${algorithm}, which needs ${pepper}: set it to the pepper those keys were created with`
          : `${store} holds keys hashed with ${JSON.stringify(algorithm)}, which this keywarden cannot compute: upgrade keywarden`,
      )
      .join("; ");
  }

  /**
   * Whether the configured pepper differs from the one this database's keys are hashed with (the
   * first pepper recorded). Keys made with another pepper would never verify. `recordPepper`: a
   * server's start records its pepper's fingerprint when none is; a verifier only reads, so that a
   * mistaken pepper given to verifyApiKey cannot lock the right one out.
   */
  async pepperDiffers({ recordPepper = true }: { recordPepper?: boolean } = {}): Promise<boolean> {
    const mine = this.ctx.hasher.pepperFingerprint;
    if (mine === null) return false;
    const recorded = recordPepper ? await this.store.recordPepperFingerprint(mine, this.ctx.clock().toISOString()) : await this.store.pepperFingerprint();
    return recorded !== null && recorded !== mine;
  }

  /** The principal of a caller without a key (stdio, the CLI): the named user, created on first use. */
  localPrincipal(options: LocalPrincipalOptions): Promise<Principal> {
    return localPrincipal(this.ctx, options);
  }

  createApiKey(principal: Principal, input: CreateApiKeyInput): Promise<CreatedApiKey> {
    return createApiKey(this.ctx, principal, input);
  }

  createProject(principal: Principal, input: CreateProjectInput): Promise<ProjectRecord> {
    return createProject(this.ctx, principal, input);
  }

  /** The organization's users with their active-key counts: an operator's view, admin only. */
  listUsers(principal: Principal): Promise<UserRecord[]> {
    return listUsers(this.ctx, principal);
  }

  listProjects(principal: Principal): Promise<ProjectRecord[]> {
    return listProjects(this.ctx, principal);
  }

  listApiKeys(principal: Principal, input: ListApiKeysInput = {}): Promise<ApiKeyPage> {
    return listApiKeys(this.ctx, principal, input);
  }

  getApiKey(principal: Principal, input: GetApiKeyInput): Promise<ApiKeyRecord> {
    return getApiKey(this.ctx, principal, input);
  }

  updateApiKey(principal: Principal, input: UpdateApiKeyInput): Promise<ApiKeyRecord> {
    return updateApiKey(this.ctx, principal, input);
  }

  rotateApiKey(principal: Principal, input: RotateApiKeyInput, confirmStop?: ConfirmKeyStop): Promise<RotatedApiKey> {
    return rotateApiKey(this.ctx, principal, input, confirmStop);
  }

  revokeApiKey(principal: Principal, input: RevokeApiKeyInput, confirmStop?: ConfirmKeyStop): Promise<ApiKeyRecord> {
    return revokeApiKey(this.ctx, principal, input, confirmStop);
  }

  /**
   * README, "The key itself", in order: parse and checksum (no I/O), look up by key_prefix, compare
   * hashes in constant time, revoked, expired, required scopes, then record the use. Every outcome
   * has the same shape; only a caller error (bad requiredScopes) throws. Never echoes the token.
   */
  verifyApiKey(token: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    return verifyToken(this.ctx, this.recordUse, token, options, this.verificationCache);
  }

  /**
   * Authenticates a caller by an API key (the HTTP bearer token): verifies it, which records its
   * use, and builds the principal it acts as. `null` is a request that carried no key.
   */
  authenticateKey(token: string | null, origin: RequestOrigin): Promise<KeyAuthentication> {
    return authenticateKey(this.ctx, this.verify, this.userNames, token, origin);
  }

  /**
   * Where each of these keys stands now, in one store read: its status and its current scopes.
   * The HTTP transport closes the sessions of a key that is no longer active or whose scopes
   * changed (README, "Sessions"). A key without a row is left out.
   */
  keyStandings(keyIds: readonly string[]): Promise<Map<string, KeyStandingNow>> {
    return keyStandings(this.ctx, keyIds);
  }

  /** The service's clock: the one that decides whether a key has expired (its sessions end by it too). */
  now(): Date {
    return this.ctx.clock();
  }

  /**
   * Tells `onChange` which keys changed, whichever process committed the change, when the store can
   * (PostgreSQL's LISTEN/NOTIFY: KeyStore.watchKeyChanges); resolves with a function that stops it,
   * or null for a store that cannot (SQLite): re-read keys on your own schedule then.
   */
  async watchKeyChanges(onChange: KeyChangeListener): Promise<(() => Promise<void>) | null> {
    return this.store.watchKeyChanges ? this.store.watchKeyChanges(onChange) : null;
  }

  /**
   * Records `auth.failed` for the audit log through the failure recorder (written at once by
   * default; in batches, bounded, by `keywarden serve`): why, from where, the key when known; never
   * the token. Returns nothing once the recorder has queued it.
   */
  recordAuthenticationFailure(refusal: AuthenticationRefusal, origin: RequestOrigin, detail: Record<string, unknown> = {}): Promise<void> | void {
    return recordAuthenticationFailure(this.ctx, this.failureRecorder, refusal, origin, detail);
  }

  /** Counts a failed authentication without recording it on its own (its address is over the limit). */
  countAuthenticationFailure(origin: RequestOrigin): Promise<void> | void {
    return this.failureRecorder.count(origin.transport, this.ctx.clock().toISOString());
  }

  /** Writes `call.denied` to the audit log: an authenticated caller asked for something its scopes do not allow. */
  recordDeniedCall(principal: Principal, detail: Record<string, unknown>): Promise<void> {
    return recordDeniedCall(this.ctx, principal, detail);
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
    return whoami(principal);
  }

  listKeyEvents(principal: Principal, input: ListKeyEventsInput = {}): Promise<KeyEventPage> {
    return listKeyEvents(this.ctx, principal, input);
  }
}
