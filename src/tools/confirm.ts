import { echoValue, ServiceError } from "../service/errors.js";
import type { ApiKeyRecord } from "../service/records.js";
import type { ConfirmKeyStop } from "../service/types.js";
import type { ToolContext } from "./tool.js";

/**
 * Stops a tool call with confirmation_declined unless the person behind the client confirms
 * (see ToolContext.confirm). Nothing has been changed when it throws.
 */
export async function requireConfirmation(context: ToolContext, message: string, id: string): Promise<void> {
  if (context.confirm === undefined) return;
  let accepted: boolean;
  try {
    accepted = await context.confirm(message);
  } catch {
    throw new ServiceError("confirmation_declined", "the client gave no answer to the confirmation request; nothing was changed", [
      { key: "id", message: "not_confirmed", value: echoValue(id) },
    ]);
  }
  if (!accepted) {
    throw new ServiceError("confirmation_declined", "the user declined; nothing was changed", [
      { key: "id", message: "declined", value: echoValue(id) },
    ]);
  }
}

/**
 * The confirmation the service runs before it stops a working key: the question, the call's
 * cancellation, and the tool's own scope to check again after the answer.
 */
export function keyStopConfirmation(context: ToolContext, question: (key: ApiKeyRecord) => string): ConfirmKeyStop {
  return {
    ask: (key) => requireConfirmation(context, question(key), key.id),
    signal: context.signal,
    mayAct: context.mayCall,
  };
}
