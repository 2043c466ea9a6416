// The service's contract: what each operation takes and answers, independent of MCP and HTTP.
// The tools' zod schemas describe the same shapes on the wire; KeyService (service.ts) implements them.
import type { KeyStatusFilter, KeyStore, KeyUse, Transport } from "../store/types.js";
import type { ServiceConfig } from "./policy.js";
import type { VerificationCacheOptions } from "./verification-cache.js";
import type { Principal } from "./principal.js";
import type { ApiKeyRecord, KeyEventRecord } from "./records.js";

export type Clock = () => Date;

/**
 * Where successful verifications record last use. The default writes each use to the store at
 * once; a coalescing writer (flushed every second) can take its place without touching verify.
 */
export interface KeyUseRecorder {
  /** May return nothing once the use is safely queued: verification then awaits nothing for it. */
  record(keyId: string, use: KeyUse): Promise<void> | void;
}

/** One failed authentication, as the service hands it to an AuthFailureRecorder (user agent already capped). */
export interface AuthFailure {
  refusal: AuthenticationRefusal;
  origin: RequestOrigin;
  detail: Record<string, unknown>;
  /** When it happened (ISO 8601). */
  at: string;
}

/**
 * Where failed authentications go (`auth.failed`). The default writes each one to the store at
 * once; a buffered recorder (failure-recorder.ts) writes them in batches, bounded in memory, so
 * that failures cannot be turned into disk load.
 */
export interface AuthFailureRecorder {
  /** May return nothing once the failure is queued (or counted, when the queue is full). */
  record(failure: AuthFailure): Promise<void> | void;
  /** A failure that is only counted, not recorded on its own (its address is over the limit). */
  count(transport: Transport, at: string): Promise<void> | void;
}

export interface KeyServiceOptions {
  store: KeyStore;
  config?: ServiceConfig;
  clock?: Clock;
  /** HMAC key for token hashes (KEYWARDEN_PEPPER); plain SHA-256 without it. */
  pepper?: string;
  /** Defaults to writing each use straight to the store. */
  useRecorder?: KeyUseRecorder;
  /** Defaults to writing each failed authentication straight to the store. */
  failureRecorder?: AuthFailureRecorder;
  /**
   * The verification cache (README, "Verification cache"): its bounds (default 100,000 keys and
   * 48 MiB; `maxEntries: 0` or false turns it off). Only on a store that tells when keys changed
   * (KeyStore.keyChangeVersion); on any other, verification always reads the store.
   */
  verificationCache?: VerificationCacheOptions | false;
}

export interface CreateApiKeyInput {
  name: string;
  project_reference?: string;
  expires_at?: string;
  /**
   * Explicit scopes, for `keywarden admin create-key` and library callers; the create_api_key tool
   * never passes them. An admin may name any scope, anyone else only scopes they hold.
   */
  scopes?: string[];
  /**
   * Expiry in whole days from now, instead of expires_at (`keywarden admin create-key
   * --expires-in-days`); the tool never passes it. Within the longest expiry, like expires_at.
   */
  expires_in_days?: number;
  /**
   * The name of the user the key is for, when an admin creates it for someone else (`keywarden
   * admin create-key --user`); created on first use. The acting principal stays the creator in
   * the audit log. The tool never passes it.
   */
  owner?: string;
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

export interface LocalPrincipalOptions {
  userName: string;
  transport: Transport;
  isAdmin: boolean;
}

export interface ListApiKeysInput {
  project_reference?: string;
  status?: KeyStatusFilter;
  limit?: number;
  cursor?: string;
}

export interface ApiKeyPage {
  keys: ApiKeyRecord[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export interface GetApiKeyInput {
  id?: string;
  key_prefix?: string;
}

export interface UpdateApiKeyInput {
  id: string;
  name?: string;
  description?: string | null;
  scopes?: string[];
  expires_at?: string;
}

export interface RotateApiKeyInput {
  id: string;
  grace_period_seconds?: number;
}

/** The successor exactly as create_api_key returns a key, plus what became of its predecessor. */
export interface RotatedApiKey extends CreatedApiKey {
  previous_key_id: string;
  /** When the previous key stops being accepted: the end of the grace period, or now when revoked at once. */
  previous_key_expires_at: string;
}

/**
 * What became of a confirmation's question: only "accepted" lets the call go on. "cannot_ask":
 * nobody could be asked where the call came from, and nothing says the client approves on its own
 * (a server that never saw the client's initialize: `keywarden serve --stateless`).
 */
export type ConfirmationAnswer = "accepted" | "declined" | "no_answer" | "cannot_ask";

/**
 * How a change that stops a working key (a revocation, a rotation without grace) is confirmed
 * (README, Confirmation). `ask` is called after every check, with the key as it is now; any answer
 * but "accepted" stops the change with confirmation_declined (service/confirm.ts), and nothing has
 * been written then. An answer can take a while: after it the acting principal is read again (its
 * key may have been revoked, expired or narrowed meanwhile) and checked again, `mayAct` included.
 */
export interface ConfirmKeyStop {
  /** Asks whoever stands behind the call whether to stop `key`; never throws. */
  ask(key: ApiKeyRecord): Promise<ConfirmationAnswer>;
  /** The call's cancellation: it ends the question, and once it has fired nothing is written. */
  signal?: AbortSignal;
  /** The caller's own permission for the call (a tool's scope), checked again after the answer. */
  mayAct?(principal: Principal): boolean;
}

export interface RevokeApiKeyInput {
  id: string;
  reason?: string;
}

export type VerifyCode = "valid" | "malformed" | "not_found" | "revoked" | "expired" | "insufficient_scope";

export interface VerifyOptions {
  /** Every one of these must be among the key's scopes (exact names; `admin` implies nothing here). */
  requiredScopes?: string[];
  /** The client address of the request the key came with, recorded as last use. */
  ip?: string | null;
  /** The user agent of the request the key came with, recorded as last use. */
  userAgent?: string | null;
}

/** The answer to a verification: the same shape whatever the outcome. Never the token. */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  key_prefix: string | null;
  user_id: string | null;
  organization_id: string | null;
  project_id: string | null;
  scopes: string[] | null;
  expires_at: string | null;
}

/** Why a presented key was refused. Callers answer every kind alike; the audit log keeps it. */
export type AuthenticationFailure = "missing" | "malformed" | "not_found" | "revoked" | "expired";

/** Where a request came from: recorded as the key's last use, or in the audit log. */
export interface RequestOrigin {
  transport: Transport;
  clientAddress: string | null;
  userAgent: string | null;
}

export type KeyAuthentication =
  | { ok: true; principal: Principal; expiresAt: string | null }
  | {
      ok: false;
      reason: AuthenticationFailure;
      /** The key, when the token named a real one (revoked, expired). */
      keyId: string | null;
      /** The token's public prefix, when it parsed; never more of the token. */
      keyPrefix: string | null;
      organizationId: string | null;
    };

export type AuthenticationRefusal = Extract<KeyAuthentication, { ok: false }>;

export interface WhoAmI {
  user_id: string;
  user_name: string;
  organization_id: string;
  transport: Transport;
  is_admin: boolean;
  key_id: string | null;
  scopes: string[] | null;
}

export interface ListKeyEventsInput {
  key_id?: string;
  limit?: number;
  cursor?: string;
}

export interface KeyEventPage {
  events: KeyEventRecord[];
  next_cursor: string | null;
}
