import { isAdminScopes } from "./access.js";
import type { ServiceContext } from "./context.js";
import { echoValue, ServiceError } from "./errors.js";
import type { Principal } from "./principal.js";
import { statusOf, type ApiKeyRecord } from "./records.js";
import type { ConfirmationAnswer, ConfirmKeyStop } from "./types.js";

/**
 * Asks before a working key stops (README, Confirmation): anything but a yes is
 * confirmation_declined, and nothing has been changed when it throws.
 */
export async function confirmKeyStop(confirmStop: ConfirmKeyStop, key: ApiKeyRecord): Promise<void> {
  const answer = await confirmStop.ask(key);
  if (answer === "accepted") return;
  const [message, code] = REFUSED[answer];
  throw new ServiceError("confirmation_declined", message, [{ key: "id", message: code, value: echoValue(key.id) }]);
}

/** The message of each refusal, and the code of its errors[] entry. */
const REFUSED: Record<Exclude<ConfirmationAnswer, "accepted">, readonly [message: string, code: string]> = {
  declined: ["the user declined; nothing was changed", "declined"],
  no_answer: ["the client gave no answer to the confirmation request; nothing was changed", "not_confirmed"],
  // Never taken for a yes: the client may well support confirmation, and its user expect to be asked.
  cannot_ask: [
    "the user could not be asked to confirm: this server keeps no session to carry a question and its answer " +
      "(keywarden serve --stateless); nothing was changed. Stop the key through a server with sessions or with keywarden admin " +
      "revoke-key; a rotation with a grace period is not asked",
    "cannot_ask",
  ],
};

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
