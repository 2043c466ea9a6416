import { isAdminScopes } from "./access.js";
import type { ServiceContext } from "./context.js";
import { echoValue, ServiceError } from "./errors.js";
import type { Principal } from "./principal.js";
import { statusOf, type ApiKeyRecord } from "./records.js";
import type { ConfirmKeyStop } from "./types.js";

/**
 * Asks before a working key stops (README, Confirmation): anything but a yes is
 * confirmation_declined, and nothing has been changed when it throws.
 */
export async function confirmKeyStop(confirmStop: ConfirmKeyStop, key: ApiKeyRecord): Promise<void> {
  const answer = await confirmStop.ask(key);
  if (answer === "accepted") return;
  const why = answer === "declined" ? "the user declined" : "the client gave no answer to the confirmation request";
  throw new ServiceError("confirmation_declined", `${why}; nothing was changed`, [
    { key: "id", message: answer === "declined" ? "declined" : "not_confirmed", value: echoValue(key.id) },
  ]);
}

/**
 * The acting principal as it is after a confirmation's answer (README, Confirmation), which may
 * have taken a while: its key must still be active, and its scopes are read again (it may have
 * been narrowed). The write's decider then judges the key with this principal.
 */
export async function actingAfterAnswer(ctx: ServiceContext, principal: Principal, confirmStop: ConfirmKeyStop): Promise<Principal> {
  let acting = principal;
  if (principal.keyId !== null) {
    const key = await ctx.store.getKeyById(principal.keyId);
    if (!key || statusOf(key, ctx.clock()) !== "active") {
      throw new ServiceError("forbidden", "the acting key was revoked or expired while the confirmation was open; nothing was changed", [
        { key: "key", message: "acting_key_not_active" },
      ]);
    }
    acting = { ...principal, scopes: [...key.scopes], isAdmin: isAdminScopes(key.scopes) };
  }
  if (confirmStop.mayAct?.(acting) === false) {
    throw new ServiceError("forbidden", "the acting key lost the scope for this call while the confirmation was open; nothing was changed", [
      { key: "scopes", message: "scope_removed", value: (acting.scopes ?? []).join(",") },
    ]);
  }
  return acting;
}
