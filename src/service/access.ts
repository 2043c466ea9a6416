// What a principal may do to keys (README, Policy): which scopes it holds, which keys it sees, and
// the rules of non-escalation. The service asks here; no other module interprets a principal's
// scopes or admin flag for these decisions.
import { isLaterExpiry } from "../store/instants.js";
import type { ApiKeyRow, KeyChanges } from "../store/types.js";
import { echoValue, ServiceError } from "./errors.js";
import type { Principal } from "./principal.js";

export const ADMIN_SCOPE = "admin";

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
export function assertHoldsScopes(principal: Principal, scopes: readonly string[], doing: string, field: { key: string; value?: unknown }): void {
  const missing = missingScopes(principal, scopes);
  if (missing.length === 0) return;
  const adminNote = missing.includes(ADMIN_SCOPE) ? "; admin is granted only by an admin" : "";
  throw new ServiceError(
    "forbidden",
    `you do not hold ${missing.join(", ")}: you may ${doing} only when you hold every scope involved${adminNote}. ` +
      "Act with a key that holds them, or ask an admin",
    [{ key: field.key, message: `missing scopes: ${missing.join(", ")}`, value: echoValue("value" in field ? field.value : missing.join(",")) }],
  );
}

/**
 * A key may act on another key of its user (update, rotate, revoke) only when it holds every
 * scope of that key: a weaker key neither outlives, reshapes nor stops a stronger one.
 */
export function assertMayActOn(principal: Principal, key: Pick<ApiKeyRow, "id" | "scopes">, action: "update" | "rotate" | "revoke"): void {
  assertHoldsScopes(principal, key.scopes, `${action} a key`, { key: "id", value: key.id });
}

/**
 * An update: the principal acts on the key, and only an admin may lengthen a key's life (move
 * expires_at later, or to none). Judged on the key as it is in the write transaction.
 */
/** Whether the principal may move a key's end later (update, or a rotation's successor): admins only. */
export function mayLengthenLife(principal: Principal): boolean {
  return principal.isAdmin;
}

export function assertMayUpdate(principal: Principal, key: ApiKeyRow, changes: KeyChanges): void {
  assertMayActOn(principal, key, "update");
  if (changes.expires_at !== undefined && !mayLengthenLife(principal) && isLaterExpiry(changes.expires_at, key.expires_at)) {
    throw new ServiceError(
      "forbidden",
      `only an admin may lengthen a key's life: ${changes.expires_at} is later than the key's expiry ${key.expires_at}. ` +
        "Pick an instant no later than that, or create a new key",
      [{ key: "expires_at", message: "lengthens_key_life", value: echoValue(changes.expires_at) }],
    );
  }
}

/** Keys the principal may see: its own, or any of the organization's for an admin. */
export function maySee(principal: Principal, key: Pick<ApiKeyRow, "organization_id" | "user_id">): boolean {
  return key.organization_id === principal.organizationId && (principal.isAdmin || key.user_id === principal.userId);
}
