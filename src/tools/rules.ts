import type * as z from "zod";
import { decodeCursor, type CursorKind } from "../service/cursor.js";
import { ServiceError, type FieldError } from "../service/errors.js";
import {
  checkDescription,
  checkExpiresAt,
  checkInteger,
  checkName,
  checkRequiredScopes,
  checkScopes,
  GRACE_PERIOD_DEFAULT_SECONDS,
  GRACE_PERIOD_MAX_SECONDS,
  PAGE_LIMIT_DEFAULT,
  PAGE_LIMIT_MAX,
} from "../service/validation.js";

/** One of the service's argument rules (service/validation.ts), applied to a field's value. */
export type ServiceRule<Value> = (value: Value, errors: FieldError[]) => void;

/**
 * Runs a service rule inside a tool's input schema, so that a call with an unknown or mistyped
 * field hears at once about every other field the rule refuses (zod reports all issues together;
 * call.ts turns each into the service's own message and value). The rule stays in the service,
 * which applies it again to the arguments that pass; rules that need the clock, the policy or the
 * store (an expiry in the future, a project that exists) are the service's alone. Changes no
 * JSON Schema: the schema says the rule in its description.
 */
export function withRule<Schema extends z.ZodType>(schema: Schema, rule: ServiceRule<z.output<Schema>>): Schema {
  return schema.check((context) => {
    const errors: FieldError[] = [];
    rule(context.value, errors);
    for (const error of errors) {
      context.issues.push({ code: "custom", message: error.message, input: context.value, params: { fieldError: error } });
    }
  });
}

/** Whether a zod issue is a service rule's (withRule), not the schema's own (type, required, unknown field). */
export function ruleErrorOf(issue: z.core.$ZodIssue): FieldError | undefined {
  return issue.code === "custom" ? (issue.params?.fieldError as FieldError | undefined) : undefined;
}

// The field name is the issue's path (call.ts), so the rules below are given none.
export const nameRule: ServiceRule<string> = (value, errors) => void checkName("", value, errors);
export const descriptionRule: ServiceRule<string | null> = (value, errors) => void checkDescription("", value, errors);
export const scopesRule: ServiceRule<string[]> = (value, errors) => void checkScopes("", value, errors);
export const requiredScopesRule: ServiceRule<string[]> = (value, errors) => void checkRequiredScopes("", value, errors);
export const pageLimitRule: ServiceRule<number> = (value, errors) => void checkInteger("", value, 1, PAGE_LIMIT_MAX, PAGE_LIMIT_DEFAULT, errors);
export const graceRule: ServiceRule<number> = (value, errors) =>
  void checkInteger("", value, 0, GRACE_PERIOD_MAX_SECONDS, GRACE_PERIOD_DEFAULT_SECONDS, errors);

/** The form of an expiry and the latest instant stored; whether it is in the future and within policy is the service's. */
export const expiryFormRule: ServiceRule<string> = (value, errors) => void checkExpiresAt("", value, EARLIEST, null, errors);
const EARLIEST = new Date(-8.64e15);

export const cursorRule = (kind: CursorKind): ServiceRule<string> => (value, errors) => {
  try {
    if (kind === "keys") decodeCursor("keys", value);
    else decodeCursor("events", value);
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    errors.push(...error.errors);
  }
};
