import type * as z from "zod";
import { echoValue, internalErrorBody, ServiceError, validationError, type ErrorBody, type FieldError } from "../service/errors.js";
import { deniedCallMessage, mayCallTool } from "./access.js";
import { ruleErrorOf } from "./rules.js";
import type { ToolContext, ToolDefinition } from "./tool.js";

export interface ToolCallResult {
  [key: string]: unknown;
  content: { type: "text"; text: string }[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

export interface ToolCallOutcome {
  result: ToolCallResult;
  /** The error code when the call failed, for the log; never the arguments. */
  errorCode: string | null;
  /** An unexpected failure, for the operator's log only: the caller sees internal_error. */
  fault?: unknown;
  /** Set when the principal lacks the tool's scope: the call was refused before its arguments were read. */
  denied?: { neededScope: string; auditFault?: unknown };
}

/** Maps zod's issues to one entry per offending field, naming unknown fields too. */
export function fieldErrorsOf(error: z.ZodError, args: Record<string, unknown>): FieldError[] {
  const errors: FieldError[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) errors.push({ key: [...issue.path, key].join("."), message: "unknown field" });
      continue;
    }
    const key = issue.path.length > 0 ? issue.path.map(String).join(".") : "arguments";
    const value = issue.path.length > 0 ? valueAt(args, issue.path) : args;
    const ruled = ruleErrorOf(issue);
    if (ruled !== undefined) {
      errors.push({ ...ruled, key });
    } else if (issue.code === "invalid_type" && value === undefined) {
      errors.push({ key, message: "required" });
    } else if (issue.code === "invalid_type") {
      errors.push({ key, message: `expected ${issue.expected}`, value: typeof value === "string" ? "string" : echoValue(value) });
    } else {
      errors.push({ key, message: issue.message });
    }
  }
  return errors;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const step of path) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, step)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[step];
  }
  return value;
}

export const errorResult = (body: ErrorBody): ToolCallResult => ({
  // Text only: clients check structuredContent against the output schema, error or not.
  content: [{ type: "text", text: JSON.stringify(body) }],
  isError: true,
});

/**
 * The one pipeline of a tool call: may the principal call it (its declared scope; a refusal is
 * written to the audit log), parse the arguments against the input schema (keywarden's own
 * validation_error body, not the SDK's), run the handler, check the result against the output
 * schema before it leaves, and map every failure to an error result.
 */
export async function callTool(tool: ToolDefinition, rawArgs: unknown, request: Omit<ToolContext, "mayCall">): Promise<ToolCallOutcome> {
  const { principal, service } = request;
  if (!mayCallTool(principal, tool)) {
    const auditFault = await service.recordDeniedCall(principal, { tool: tool.name, needed_scope: tool.scope }).then(
      () => undefined,
      (error: unknown) => error ?? new Error("recordDeniedCall failed"),
    );
    const error = new ServiceError("forbidden", deniedCallMessage(principal, tool), [
      { key: "scopes", message: `needs ${tool.scope}`, value: (principal.scopes ?? []).join(",") },
    ]);
    return { result: errorResult(error.toBody()), errorCode: error.code, denied: { neededScope: tool.scope, auditFault } };
  }
  const args = (rawArgs ?? {}) as Record<string, unknown>;
  const parsed = tool.inputSchema.safeParse(args);
  let input: Record<string, unknown>;
  let ruleErrors: FieldError[] = [];
  if (parsed.success) {
    input = parsed.data;
  } else if (parsed.error.issues.every((issue) => ruleErrorOf(issue) !== undefined)) {
    // Well-formed, but a service rule refuses a value: the service applies that rule again, with
    // those that need its clock, policy or store, and refuses before it writes; its answer is
    // completed below with the fields it did not reach. The arguments are the parse's output:
    // these schemas neither transform nor add defaults.
    input = args;
    ruleErrors = fieldErrorsOf(parsed.error, args);
  } else {
    // Not well-formed: the handler cannot run. Every field is named at once, unknown and mistyped
    // ones with those the service's rules refuse (tools/rules.ts).
    const error = validationError(fieldErrorsOf(parsed.error, args));
    return { result: errorResult(error.toBody()), errorCode: error.code };
  }
  // The scope is checked again after a confirmation's answer, which may take a while (confirm.ts).
  const context: ToolContext = { ...request, mayCall: (current) => mayCallTool(current, tool) };
  try {
    const output = tool.outputSchema.parse(await tool.handler(input, context)) as Record<string, unknown>;
    return {
      result: { content: [{ type: "text", text: JSON.stringify(output) }], structuredContent: output },
      errorCode: null,
      // A rule the tool names but the service no longer applies: the call did happen, so say so to the operator.
      ...(ruleErrors.length > 0 ? { fault: new Error(`${tool.name}: the service accepted what a rule of tools/rules.ts refused`) } : {}),
    };
  } catch (error) {
    if (error instanceof ServiceError && error.code === "validation_error" && ruleErrors.length > 0) {
      const named = new Set(error.errors.map((field) => field.key));
      const all = validationError([...error.errors, ...ruleErrors.filter((field) => !named.has(field.key))]);
      return { result: errorResult(all.toBody()), errorCode: all.code };
    }
    if (error instanceof ServiceError) return { result: errorResult(error.toBody()), errorCode: error.code };
    return { result: errorResult(internalErrorBody(error)), errorCode: "internal_error", fault: error };
  }
}
