import type { EventPosition, KeysetPosition } from "../store/types.js";
import { validationError } from "./errors.js";

/** Which listing a cursor belongs to: a cursor of one listing is refused by the other. */
export type CursorKind = "keys" | "events";


const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ROW_ID = /^[a-z]{3}_[0-9A-Za-z]{1,64}$/;
const BASE64URL = /^[A-Za-z0-9_-]{1,512}$/;

/** An opaque cursor: base64url of a small JSON object naming the last row of the page. */
export function encodeCursor(kind: "keys", position: KeysetPosition): string;
export function encodeCursor(kind: "events", position: EventPosition): string;
export function encodeCursor(kind: CursorKind, position: KeysetPosition | EventPosition): string {
  const payload = "id" in position ? { k: kind, a: position.at, i: position.id } : { k: kind, a: position.at, s: position.seq };
  return Buffer.from(JSON.stringify(payload), "utf8").toString("base64url");
}

/**
 * The position a cursor names. Anything that is not a cursor this listing handed out —
 * garbage, a tampered payload, another listing's cursor — is a validation_error naming `cursor`.
 */
export function decodeCursor(kind: "keys", cursor: string): KeysetPosition;
export function decodeCursor(kind: "events", cursor: string): EventPosition;
export function decodeCursor(kind: CursorKind, cursor: string): KeysetPosition | EventPosition {
  const refuse = () =>
    validationError([
      {
        key: "cursor",
        message: "is not a cursor returned by this listing; start again without a cursor",
        value: cursor.length > 64 ? `${cursor.slice(0, 64)}… (${cursor.length} characters)` : cursor,
      },
    ]);
  if (!BASE64URL.test(cursor)) throw refuse();
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw refuse();
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) throw refuse();
  const { k, a, ...rest } = payload as Record<string, unknown>;
  if (k !== kind || typeof a !== "string" || !ISO_UTC.test(a) || Number.isNaN(Date.parse(a))) throw refuse();
  if (kind === "keys") {
    const { i, ...extra } = rest;
    if (Object.keys(extra).length > 0 || typeof i !== "string" || !ROW_ID.test(i)) throw refuse();
    return { at: a, id: i };
  }
  const { s, ...extra } = rest;
  if (Object.keys(extra).length > 0 || typeof s !== "number" || !Number.isSafeInteger(s) || s < 1) throw refuse();
  return { at: a, seq: s };
}
