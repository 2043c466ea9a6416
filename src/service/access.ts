// What a principal may do (README, Policy and Access): which scopes it holds, which keys and events
// it sees, and the rules of non-escalation. Every operation asks here; no other module interprets a
// principal's scopes or admin flag. Rules a write decider applies come as refusals (values, since
// deciders are pure); the assert* forms throw the same refusal for callers outside a decider.
import { isLaterExpiry } from "../store/instants.js";
import type { ApiKeyRow, KeyChanges, KeyEventRow } from "../store/types.js";
import { echoValue, ServiceError } from "./errors.js";
import type { Policy } from "./policy.js";
import type { Principal } from "./principal.js";

export const ADMIN_SCOPE = "admin";

/** Whether a key with these scopes acts as an admin: the admin scope, and nothing else, makes one. */
export function isAdminScopes(scopes: readonly string[]): boolean {
  return scopes.includes(ADMIN_SCOPE);
}

/**
 * Whether the principal holds `scope`: the one meaning of a principal's scopes. An admin holds
 * every scope. A caller acting with a key holds exactly that key's scopes. A caller without a key
 * (`scopes` null: stdio, the CLI) holds every scope but `admin`, which only `--admin` gives it:
 * `admin` is granted only by an admin.
 */
export function holdsScope(principal: Principal, scope: string): boolean {
  if (principal.isAdmin) return true;
  if (principal.scopes === null) return scope !== ADMIN_SCOPE;
  return principal.scopes.includes(scope);
}

/** The scopes of `scopes` the principal does not hold, in their order. */
export function missingScopes(principal: Principal, scopes: readonly string[]): string[] {
  return scopes.filter((scope) => !holdsScope(principal, scope));
}

/** A new key's scopes from defaults (a project's or the user-level ones): those of them the principal holds. */
export function grantableScopes(principal: Principal, defaults: readonly string[]): string[] {
  return defaults.filter((scope) => holdsScope(principal, scope));
}

/**
 * The one scope-subset check: the principal must hold every scope in `scopes`, or the call is
 * forbidden, naming what is missing. `doing` completes "you may <doing>", e.g. "grant a scope";
 * `field.value` defaults to the missing scopes.
 */
export function holdsScopesRefusal(principal: Principal, scopes: readonly string[], doing: string, field: { key: string; value?: unknown }): ServiceError | null {
  const missing = missingScopes(principal, scopes);
  if (missing.length === 0) return null;
  const adminNote = missing.includes(ADMIN_SCOPE) ? "; admin is granted only by an admin" : "";
  return new ServiceError(
    "forbidden",
    `you do not hold ${missing.join(", ")}: you may ${doing} only when you hold every scope involved${adminNote}. ` +
      "Act with a key that holds them, or ask an admin",
    [{ key: field.key, message: `missing scopes: ${missing.join(", ")}`, value: echoValue("value" in field ? field.value : missing.join(",")) }],
  );
}

export function assertHoldsScopes(principal: Principal, scopes: readonly string[], doing: string, field: { key: string; value?: unknown }): void {
  const refusal = holdsScopesRefusal(principal, scopes, doing, field);
  if (refusal) throw refusal;
}

/**
 * A key may act on another key of its user (update, rotate, revoke) only when it holds every
 * scope of that key: a weaker key neither outlives, reshapes nor stops a stronger one.
 */
export function actOnRefusal(principal: Principal, key: Pick<ApiKeyRow, "id" | "scopes">, action: "update" | "rotate" | "revoke"): ServiceError | null {
  return holdsScopesRefusal(principal, key.scopes, `${action} a key`, { key: "id", value: key.id });
}

export function assertMayActOn(principal: Principal, key: Pick<ApiKeyRow, "id" | "scopes">, action: "update" | "rotate" | "revoke"): void {
  const refusal = actOnRefusal(principal, key, action);
  if (refusal) throw refusal;
}

/** Whether the principal may move a key's end later (an update, or a rotation's successor): admins only. */
export function mayLengthenLife(principal: Principal): boolean {
  return principal.isAdmin;
}

/**
 * An update, judged on the key as it is in the write transaction: scopes only narrow unless the
 * principal is an admin; the principal acts on the key; only an admin may lengthen a key's life
 * (move expires_at later, or to none).
 */
export function updateRefusal(principal: Principal, key: ApiKeyRow, changes: KeyChanges): ServiceError | null {
  if (changes.scopes !== undefined && !principal.isAdmin) {
    const held = new Set(key.scopes);
    const extra = changes.scopes.filter((scope) => !held.has(scope));
    if (extra.length > 0) {
      return new ServiceError("forbidden", "scopes can only be narrowed: every scope must already be on the key", [
        { key: "scopes", message: `not on the key: ${extra.join(", ")}`, value: echoValue(extra.join(",")) },
      ]);
    }
  }
  const actOn = actOnRefusal(principal, key, "update");
  if (actOn) return actOn;
  if (changes.expires_at !== undefined && !mayLengthenLife(principal) && isLaterExpiry(changes.expires_at, key.expires_at)) {
    return new ServiceError(
      "forbidden",
      `only an admin may lengthen a key's life: ${changes.expires_at} is later than the key's expiry ${key.expires_at}. ` +
        "Pick an instant no later than that, or create a new key",
      [{ key: "expires_at", message: "lengthens_key_life", value: echoValue(changes.expires_at) }],
    );
  }
  return null;
}

/** Keys the principal may see: its own, or any of the organization's for an admin. */
export function maySee(principal: Principal, key: Pick<ApiKeyRow, "organization_id" | "user_id">): boolean {
  return key.organization_id === principal.organizationId && (principal.isAdmin || key.user_id === principal.userId);
}

/** Whose keys (and their events) a listing shows: null for every user's (an admin), else the principal's own. */
export function visibleOwner(principal: Principal): string | null {
  return principal.isAdmin ? null : principal.userId;
}

/** Where another actor called from (an admin, a failed authentication) is for admins only. */
export function maySeeClientAddress(principal: Principal, event: Pick<KeyEventRow, "actor_user_id">): boolean {
  return principal.isAdmin || event.actor_user_id === principal.userId;
}

/** Minting (create, rotate) with an API key, unless the operator forbids it; an admin always may. */
export function assertMayMint(principal: Principal, policy: Policy): void {
  if (principal.keyId !== null && !policy.allowMintingWithKeys && !principal.isAdmin) {
    throw new ServiceError("forbidden", "this server does not allow minting keys with an API key");
  }
}

/** Projects and users are the operator's: admin only. `doing` completes "<doing> needs the admin scope". */
export function assertAdmin(principal: Principal, doing: string): void {
  if (!principal.isAdmin) throw new ServiceError("forbidden", `${doing} needs the admin scope`);
}
