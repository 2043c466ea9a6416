import { redactTokenSecrets } from "../keys/token.js";
import { CommitOutcomeUnknownError, ConnectionLostError } from "../store/errors.js";

export type ErrorCode =
  | "validation_error"
  | "not_found"
  | "forbidden"
  | "max_keys_reached"
  | "conflict"
  | "confirmation_declined"
  | "internal_error";

/** One offending field: `key` names it (an unknown field too), `value` shows what was sent when that is safe. */
export interface FieldError {
  key: string;
  message: string;
  value?: unknown;
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; errors: FieldError[] };
}

const MAX_ECHOED_LENGTH = 64;

/** Echoes a rejected value back in a bounded form, so an error never carries a huge or binary payload. */
export function echoValue(value: unknown): unknown {
  if (typeof value === "string") {
    return value.length > MAX_ECHOED_LENGTH ? `${value.slice(0, MAX_ECHOED_LENGTH)}… (${value.length} characters)` : value;
  }
  if (value === null || typeof value === "number" || typeof value === "boolean") return value;
  if (Array.isArray(value)) return `array of ${value.length}`;
  return typeof value;
}

/**
 * The one place error bodies are made (tool errors, the HTTP endpoints' JSON errors): a caller may
 * paste a token into any field, and no part of a body (message, field names, echoed values) ever
 * carries a token's secret part back out.
 */
export function errorBody<Code extends string = ErrorCode>(
  code: Code,
  message: string,
  errors: readonly FieldError[] = [],
): { error: { code: Code; message: string; errors: FieldError[] } } {
  return { error: { code, message: redactTokenSecrets(message), errors: errors.map(withoutSecrets) } };
}

function withoutSecrets({ key, message, ...rest }: FieldError): FieldError {
  const field: FieldError = { key: redactTokenSecrets(key), message: redactTokenSecrets(message) };
  if ("value" in rest) field.value = redactValue(rest.value);
  return field;
}

function redactValue(value: unknown): unknown {
  if (typeof value === "string") return redactTokenSecrets(value);
  if (Array.isArray(value)) return value.map(redactValue);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [redactTokenSecrets(k), redactValue(v)]));
  return value;
}

/** An expected refusal: its code, message and fields go to the caller as they are. */
export class ServiceError extends Error {
  override name = "ServiceError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
  }

  toBody(): ErrorBody {
    return errorBody(this.code, this.message, this.errors);
  }
}

export const validationError = (errors: FieldError[]): ServiceError =>
  new ServiceError(
    "validation_error",
    errors.length === 1 ? `invalid ${errors[0]!.key}: ${errors[0]!.message}` : `${errors.length} fields are invalid`,
    errors,
  );

/**
 * Any other failure becomes this: no stack, no SQL, no secret reaches the caller. A write whose
 * connection was lost at COMMIT may have been made (src/store/errors.ts): the caller is told to
 * read before it tries again, not that nothing happened.
 */
export const internalErrorBody = (fault?: unknown): ErrorBody => ({
  error: {
    code: "internal_error",
    message:
      fault instanceof CommitOutcomeUnknownError
        ? "internal error; the connection to the database was lost at commit, so the operation may or may not have been completed: read the key before trying again"
        : fault instanceof ConnectionLostError
          ? "internal error; the connection to the database was lost, so the operation was not completed"
          : "internal error; the operation was not completed",
    errors: [],
  },
});
