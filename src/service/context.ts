// What every operation module shares: the service's dependencies, and the few helpers that read
// them the same way everywhere (a visible key, a project, an event, running a decider).
import type { TokenHasher } from "../keys/hash.js";
import { newKeyEventId } from "../keys/ids.js";
import type { ApiKeyRow, Decider, KeyEventRow, KeyStore, PlannedEvent, ProjectRow, WriteReads } from "../store/types.js";
import { maySee } from "./access.js";
import { echoValue, ServiceError, type FieldError } from "./errors.js";
import type { ServiceConfig } from "./policy.js";
import type { Principal } from "./principal.js";
import type { Clock, ConfirmKeyStop } from "./types.js";
import { checkScopes, SCOPES_MAX_COUNT } from "./validation.js";

export interface ServiceContext {
  readonly store: KeyStore;
  readonly config: ServiceConfig;
  readonly clock: Clock;
  readonly hasher: TokenHasher;
}

export const notFound = (field: string, value: string, what = "no API key with this id"): ServiceError =>
  new ServiceError("not_found", what, [{ key: field, message: "not_found", value: echoValue(value) }]);

/** An audit event by this principal, as a write plan carries it (the store gives it its id). */
export function eventBy(principal: Principal, keyId: string | null, eventType: string, occurredAt: string, detail: Record<string, unknown>): PlannedEvent {
  return {
    organization_id: principal.organizationId,
    key_id: keyId,
    event_type: eventType,
    actor_user_id: principal.userId,
    actor_key_id: principal.keyId,
    transport: principal.transport,
    client_address: principal.clientAddress,
    occurred_at: occurredAt,
    detail,
  };
}

/** An event written outside a write plan (a denied call, a new project): with its id. */
export function eventRowBy(principal: Principal, keyId: string | null, eventType: string, occurredAt: string, detail: Record<string, unknown>): KeyEventRow {
  return { id: newKeyEventId(), ...eventBy(principal, keyId, eventType, occurredAt, detail) };
}

/** Runs a decider in one store write transaction: its result once committed, or its refusal thrown. */
export async function decide<T>(ctx: ServiceContext, reads: WriteReads, decider: Decider<T, ServiceError>): Promise<T> {
  const outcome = await ctx.store.write(reads, decider);
  if (!outcome.ok) throw outcome.refusal;
  return outcome.result;
}

/** A key the principal may see: their own, or any of the organization's for an admin. Otherwise not_found. */
export async function visibleKey(ctx: ServiceContext, principal: Principal, field: string, id: string): Promise<ApiKeyRow> {
  const key = await ctx.store.getKeyById(id);
  if (!key || !maySee(principal, key)) throw notFound(field, id);
  return key;
}

export async function visibleKeyByPrefix(ctx: ServiceContext, principal: Principal, keyPrefix: string): Promise<ApiKeyRow> {
  const key = await ctx.store.getKeyByPrefix(keyPrefix);
  if (!key || !maySee(principal, key)) throw notFound("key_prefix", keyPrefix, "no API key with this key_prefix");
  return key;
}

export async function projectOf(ctx: ServiceContext, principal: Principal, reference: string): Promise<ProjectRow> {
  const project = await ctx.store.findProject(principal.organizationId, reference);
  if (!project) throw notFound("project_reference", reference, "no project with this id or slug");
  return project;
}

/** Scope names for a key: valid names, de-duplicated, 1-50 of them. */
export function checkKeyScopes(field: string, scopes: string[], errors: FieldError[]): string[] {
  const checked = checkScopes(field, scopes, errors);
  if (checked.length === 0) errors.push({ key: field, message: "must name at least one scope", value: [] });
  else if (checked.length > SCOPES_MAX_COUNT) errors.push({ key: field, message: `must name at most ${SCOPES_MAX_COUNT} scopes`, value: echoValue(checked) });
  return checked;
}

/**
 * A cancelled call writes nothing (README, Confirmation). Called with no await between it and the
 * store's write, so a cancellation that arrives while the call waits cannot slip in between.
 */
export function throwIfCancelled(confirmStop: ConfirmKeyStop | undefined, id: string): void {
  if (confirmStop?.signal?.aborted) {
    throw new ServiceError("confirmation_declined", "the call was cancelled; nothing was changed", [
      { key: "id", message: "cancelled", value: echoValue(id) },
    ]);
  }
}
