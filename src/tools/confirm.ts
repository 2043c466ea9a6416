import type { ApiKeyRecord } from "../service/records.js";
import type { ConfirmationAnswer, ConfirmKeyStop } from "../service/types.js";
import type { ToolContext } from "./tool.js";

/**
 * The confirmation the service runs before it stops a working key: the question put to the person
 * behind the client (see ToolContext.confirm), the call's cancellation, and the tool's own scope to
 * check again after the answer. What an answer means is the service's to decide (service/confirm.ts).
 */
export function keyStopConfirmation(context: ToolContext, question: (key: ApiKeyRecord) => string): ConfirmKeyStop {
  return {
    ask: async (key): Promise<ConfirmationAnswer> => {
      if (context.confirm === undefined) return "accepted";
      try {
        return await context.confirm(question(key));
      } catch {
        return "no_answer";
      }
    },
    signal: context.signal,
    mayAct: context.mayCall,
  };
}
