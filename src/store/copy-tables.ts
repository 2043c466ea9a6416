// What `keywarden admin copy` (src/store/copy.ts) moves from a SQLite database to a PostgreSQL one:
// every table of keywarden's data, column by column, with how each value travels between SQLite's
// column (src/store/migrations/) and PostgreSQL's (src/store/migrations-postgres/001_initial.sql).
import { isStorableInstant } from "./instants.js";

/**
 * How a column travels. text: as it is. instant: canonical toISOString() text in SQLite, timestamptz
 * in PostgreSQL (PG_TYPES writes it, year 0000 included: src/store/postgres-types.ts). bytes: a BLOB,
 * sent as hex (postgres.js cannot type an array of Buffers as bytea[]). strings: a JSON array of
 * strings in SQLite, text[] in PostgreSQL. json: JSON text, kept as written (json, not jsonb). integer.
 */
export type ColumnKind = "text" | "instant" | "bytes" | "strings" | "json" | "integer";

export interface CopiedTable {
  name: CopiedTableName;
  /** Source and target column names (the same in both schemas), with how each travels. */
  columns: readonly (readonly [name: string, kind: ColumnKind])[];
  /** The source's order, which is the target's insertion order (key_events: its seq). */
  order: string;
}

export type CopiedTableName =
  | "organizations"
  | "users"
  | "projects"
  | "key_hash_algorithms"
  | "pepper_fingerprint"
  | "api_keys"
  | "key_usage"
  | "key_events";

/**
 * In insertion order: each table after those its foreign keys name. key_hash_algorithms goes before
 * api_keys, whose trigger then finds each algorithm already there (the source's set is copied as it
 * is, even an algorithm no key uses any more: src/store/migrations/006_key_hash_algorithms.sql).
 */
export const COPIED_TABLES: readonly CopiedTable[] = [
  { name: "organizations", columns: [["id", "text"], ["name", "text"], ["created_at", "instant"]], order: "rowid" },
  { name: "users", columns: [["id", "text"], ["organization_id", "text"], ["name", "text"], ["created_at", "instant"]], order: "rowid" },
  {
    name: "projects",
    columns: [["id", "text"], ["organization_id", "text"], ["slug", "text"], ["name", "text"], ["default_scopes", "strings"], ["created_at", "instant"]],
    order: "rowid",
  },
  { name: "key_hash_algorithms", columns: [["hash_algorithm", "text"]], order: "hash_algorithm" },
  { name: "pepper_fingerprint", columns: [["id", "integer"], ["fingerprint", "text"], ["recorded_at", "instant"]], order: "id" },
  {
    name: "api_keys",
    columns: [
      ["id", "text"],
      ["organization_id", "text"],
      ["user_id", "text"],
      ["project_id", "text"],
      ["name", "text"],
      ["description", "text"],
      ["key_prefix", "text"],
      ["key_hash", "bytes"],
      ["hash_algorithm", "text"],
      ["scopes", "strings"],
      ["created_at", "instant"],
      ["created_by_user_id", "text"],
      ["created_by_key_id", "text"],
      ["expires_at", "instant"],
      ["revoked_at", "instant"],
      ["revoked_reason", "text"],
      ["rotated_from", "text"],
      ["replaced_by", "text"],
    ],
    order: "rowid",
  },
  {
    name: "key_usage",
    columns: [["key_id", "text"], ["last_used_at", "instant"], ["last_used_ip", "text"], ["last_used_user_agent", "text"]],
    order: "key_id",
  },
  {
    name: "key_events",
    columns: [
      ["id", "text"],
      ["organization_id", "text"],
      ["key_id", "text"],
      ["event_type", "text"],
      ["actor_user_id", "text"],
      ["actor_key_id", "text"],
      ["transport", "text"],
      ["client_address", "text"],
      ["occurred_at", "instant"],
      ["detail", "json"],
    ],
    // The audit log's own order (src/store/migrations/002_event_order.sql): inserted so, PostgreSQL's
    // identity seq keeps it as the tie-break of one instant.
    order: "occurred_at, rowid",
  },
];

const PG_ARRAY_TYPE: Record<ColumnKind, string> = {
  text: "text[]",
  instant: "timestamptz[]",
  bytes: "text[]",
  strings: "text[]",
  json: "text[]",
  integer: "int4[]",
};

function targetValue(column: string, kind: ColumnKind): string {
  const value = `r.${column}`;
  if (kind === "bytes") return `decode(${value}, 'hex')`;
  if (kind === "json") return `${value}::json`;
  // An array keeps its order; json_array_elements_text refuses anything but an array.
  if (kind === "strings") return `ARRAY(SELECT s FROM json_array_elements_text(${value}::json) WITH ORDINALITY AS e(s, n) ORDER BY e.n)`;
  return value;
}

/**
 * One statement for a whole batch: one array parameter per column, rows inserted in the order
 * given. Foreign keys that are not deferrable are checked at the end of the statement, so rows of
 * one batch may name each other (a rotated key and its successor name each other both ways).
 */
export function insertStatement(table: CopiedTable): string {
  const names = table.columns.map(([name]) => name);
  const arrays = table.columns.map(([, kind], i) => `$${i + 1}::${PG_ARRAY_TYPE[kind]}`);
  return `INSERT INTO ${table.name} (${names.join(", ")})
    SELECT ${table.columns.map(([name, kind]) => targetValue(name, kind)).join(", ")}
    FROM unnest(${arrays.join(", ")}) WITH ORDINALITY AS r(${names.join(", ")}, n)
    ORDER BY r.n${table.name === "key_hash_algorithms" ? " ON CONFLICT DO NOTHING" : ""}`;
}

const CANONICAL_INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Thrown for a source value keywarden would not have written: the copy refuses it rather than guess. */
export class UncopyableValueError extends Error {
  override name = "UncopyableValueError";
}

/**
 * A batch of source rows (arrays in `table.columns` order) as the statement's parameters: one array
 * per column. Instants must be canonical (src/store/instants.ts), so that each is the same instant
 * on both sides, not a text PostgreSQL would read another way.
 */
export function batchParameters(table: CopiedTable, rows: readonly unknown[][]): unknown[][] {
  return table.columns.map(([column, kind], index) =>
    rows.map((row) => {
      const value = row[index];
      if (value === null || value === undefined) return null;
      if (kind === "bytes") return (Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array)).toString("hex");
      if (kind === "instant" && (typeof value !== "string" || !CANONICAL_INSTANT.test(value) || !isStorableInstant(Date.parse(value)))) {
        throw new UncopyableValueError(`${table.name}.${column} of row ${String(row[0])} is ${JSON.stringify(value)}, not an instant keywarden writes`);
      }
      return value;
    }),
  );
}
