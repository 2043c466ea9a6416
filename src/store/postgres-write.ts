// PostgresKeyStore.write: one transaction that reads, runs a decider and applies its plan, serialised
// per user across every connection and instance on the database, so that a decision (the cap, "not
// rotated yet", one successor per rotation) still holds when its plan commits.
import { createHash } from "node:crypto";
import type postgres from "postgres";
import { newKeyEventId } from "../keys/ids.js";
import { countActiveKeysSql, KEY_ROW_SELECT } from "./key-sql.js";
import type { PgSql } from "./postgres-open.js";
import { runTransaction, type PgTx } from "./postgres-transaction.js";
import { KEY_EVENT_INSERT, keyEventParams, toApiKeyRow, type ApiKeyPgRow } from "./postgres-types.js";
import type { ApiKeyRow, CurrentRows, Decider, KeyUpdate, MutableKeyField, WriteOutcome, WritePlan, WriteReads } from "./types.js";

type Params = postgres.ParameterOrJSON<never>[];

/** The class of keywarden's per-user advisory locks: the two-key space, apart from the migrations' one-key lock. */
export const USER_LOCK_CLASS = 0x6b775553; // "kwUS" in ASCII

/**
 * The advisory lock of one user: the first 32 bits of SHA-256 of its id, the same in every
 * instance of every version. Two users that share a lock only wait for each other.
 */
export function userLockKey(userId: string): number {
  return createHash("sha256").update(userId).digest().readInt32BE(0);
}

/** The columns a KeyUpdate may set, in a fixed order so that each set of columns is one statement. */
const MUTABLE_KEY_FIELDS: readonly MutableKeyField[] = ["name", "description", "scopes", "expires_at", "revoked_at", "revoked_reason", "replaced_by"];

/** The columns of a new key, in KEY_INSERT's order; last use lives in key_usage. */
const KEY_INSERT_COLUMNS = [
  "id",
  "organization_id",
  "user_id",
  "project_id",
  "name",
  "description",
  "key_prefix",
  "key_hash",
  "hash_algorithm",
  "scopes",
  "created_at",
  "created_by_user_id",
  "created_by_key_id",
  "expires_at",
  "revoked_at",
  "revoked_reason",
  "rotated_from",
  "replaced_by",
] as const satisfies readonly (keyof ApiKeyRow)[];

const KEY_INSERT = `INSERT INTO api_keys (${KEY_INSERT_COLUMNS.join(", ")}) VALUES (${KEY_INSERT_COLUMNS.map((_, i) => `$${i + 1}`).join(", ")})`;

/** One transaction (src/store/postgres-transaction.ts: run again after a deadlock, and once after a connection lost before commit). */
export function runWrite<T, R>(sql: PgSql, reads: WriteReads, decide: Decider<T, R>): Promise<WriteOutcome<T, R>> {
  return runTransaction(sql, (tx) => writeIn(tx, reads, decide));
}

/**
 * In READ COMMITTED each statement sees what was committed when it started. The owners of the keys
 * to read are found first (a key's owner never changes), their locks taken in ascending order (so
 * that two writes never wait for each other in a circle), and only then are the rows read: a
 * statement after the lock sees every write committed by the lock's previous holder. Every write
 * of a user's keys holds that user's lock until it commits, so no other write lands between what
 * the decider saw and its plan.
 */
async function writeIn<T, R>(tx: PgTx, reads: WriteReads, decide: Decider<T, R>): Promise<WriteOutcome<T, R>> {
  const locked = new Set<number>();
  const users = reads.keyIds.length > 0 ? await ownersOf(tx, reads.keyIds) : [];
  if (reads.activeKeysOf) users.push(reads.activeKeysOf.userId);
  await lockUsers(tx, users, locked);

  const keys = new Map<string, ApiKeyRow>();
  if (reads.keyIds.length > 0) {
    const rows = await tx.unsafe<ApiKeyPgRow[]>(`${KEY_ROW_SELECT} WHERE api_keys.id = ANY($1)`, [reads.keyIds as string[]], { prepare: true });
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const id of reads.keyIds) {
      const row = byId.get(id);
      if (row) keys.set(id, toApiKeyRow(row));
    }
  }
  let activeKeys: number | null = null;
  if (reads.activeKeysOf) {
    const [row] = await tx.unsafe<{ n: string }[]>(countActiveKeysSql("$1", "$2"), [reads.activeKeysOf.userId, reads.activeKeysOf.now], { prepare: true });
    activeKeys = Number(row!.n);
  }
  const rows: CurrentRows = { keys, activeKeys };
  const decision = decide(rows);
  if (!decision.ok) return decision;

  // A plan may write keys of a user the reads did not name (a plain insert): it takes their locks
  // too before it writes, so that it cannot land inside another write's decision on them.
  await lockUsers(tx, await ownersOfPlan(tx, decision.plan, keys), locked);
  await applyPlan(tx, decision.plan);
  return { ok: true, result: decision.result };
}

async function ownersOf(tx: PgTx, keyIds: readonly string[]): Promise<string[]> {
  const rows = await tx.unsafe<{ user_id: string }[]>("SELECT DISTINCT user_id FROM api_keys WHERE id = ANY($1)", [keyIds as string[]], { prepare: true });
  return rows.map((row) => row.user_id);
}

async function ownersOfPlan(tx: PgTx, plan: WritePlan, known: ReadonlyMap<string, ApiKeyRow>): Promise<string[]> {
  const owners = plan.insertKeys.map((key) => key.user_id);
  const inserted = new Set(plan.insertKeys.map((key) => key.id));
  const unknown: string[] = [];
  for (const { id } of plan.updateKeys) {
    const key = known.get(id);
    if (key) owners.push(key.user_id);
    else if (!inserted.has(id)) unknown.push(id);
  }
  if (unknown.length > 0) owners.push(...(await ownersOf(tx, unknown)));
  return owners;
}

async function lockUsers(tx: PgTx, userIds: readonly string[], locked: Set<number>): Promise<void> {
  const keys = [...new Set(userIds.map(userLockKey))].filter((key) => !locked.has(key)).sort((a, b) => a - b);
  for (const key of keys) {
    await tx`SELECT pg_advisory_xact_lock(${USER_LOCK_CLASS}::int4, ${key}::int4)`;
    locked.add(key);
  }
}

/**
 * Writes a plan as it is: inserts, then updates (a successor exists before a key names it), then
 * events. The statements are sent together (postgres.js pipelines them on the transaction's
 * connection) and run in that order; the first failure rolls the whole transaction back.
 */
async function applyPlan(tx: PgTx, plan: WritePlan): Promise<void> {
  const updates = plan.updateKeys.map(updateStatement);
  const statements: Promise<unknown>[] = [];
  for (const key of plan.insertKeys) {
    statements.push(tx.unsafe(KEY_INSERT, KEY_INSERT_COLUMNS.map((column) => key[column]) as Params, { prepare: true }));
  }
  for (const { text, params } of updates) statements.push(tx.unsafe(text, params, { prepare: true }));
  if (plan.events.length > 0) {
    const events = plan.events.map((event) => ({ id: newKeyEventId(), ...event }));
    statements.push(tx.unsafe(KEY_EVENT_INSERT, keyEventParams(events) as Params, { prepare: true }));
  }
  await Promise.all(statements);
}

/** `UPDATE api_keys` of exactly the columns the update names, nulls included. */
function updateStatement(update: KeyUpdate): { text: string; params: Params } {
  const columns = MUTABLE_KEY_FIELDS.filter((field) => field in update.set);
  if (columns.length === 0) throw new Error(`key update of ${update.id} names no column`);
  const assignments = columns.map((column, i) => `${column} = $${i + 2}`).join(", ");
  return {
    text: `UPDATE api_keys SET ${assignments} WHERE id = $1`,
    params: [update.id, ...columns.map((column) => update.set[column] ?? null)] as Params,
  };
}
