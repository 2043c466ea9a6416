// Key changes across instances: the api_keys triggers of migrations-postgres/001_initial.sql send
// each changed key's id on KEY_CHANGES_CHANNEL at commit; this listens on a connection of its own.
import postgres from "postgres";
import { connectionOptions, type PostgresStoreOptions } from "./postgres-open.js";
import type { KeyChangeListener } from "./types.js";

export const KEY_CHANGES_CHANNEL = "keywarden_key_changes";
/**
 * Payloads on KEY_CHANGES_CHANNEL that are not key ids: a store's heartbeat (PostgresKeyStore),
 * `heartbeat:<its instance id>`. Key ids start with `key_`, so the two never meet.
 */
export const HEARTBEAT_PREFIX = "heartbeat:";
/** application_name of the listening connection (pg_stat_activity shows it). */
export const KEY_CHANGES_APPLICATION_NAME = "keywarden key changes";

const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 5000;

/**
 * Listens for key changes. Resolves once LISTEN is in place (a failure to connect rejects), with a
 * function that stops listening. `onChange` gets the ids of changed keys (those of one turn of the
 * event loop together), and "all" each time the connection was lost and is listening again:
 * notifications sent meanwhile are lost, so every cached key must be read again.
 *
 * postgres.js's sql.listen re-listens after a reconnect as well; this keeps the retry explicit
 * (LISTEN again, 100 ms doubling to 5 s apart, until the server answers; tested with the server
 * unreachable in test/store/postgres-watch.test.ts) rather than resting on how its pool re-enters
 * its onclose, and names the connection (KEY_CHANGES_APPLICATION_NAME) for pg_stat_activity.
 *
 * `onListening` hears when LISTEN is in place (true) and when the connection is lost or stopped
 * (false): in between, changes are missed (a cache must not answer; KeyStore.keyChangeVersion).
 */
export async function listenForKeyChanges(
  options: PostgresStoreOptions,
  onChange: KeyChangeListener,
  onListening: (listening: boolean) => void = () => undefined,
  onHeartbeat: (payloads: string[]) => void = () => undefined,
): Promise<() => Promise<void>> {
  let stopped = false;
  let relistening = false;
  const changed = new Set<string>();
  const heartbeats: string[] = [];
  let deliveryQueued = false;

  // Delivered on a turn of its own: a throwing onChange cannot break the connection's reading.
  // Heartbeats after the changes that arrived with them: PostgreSQL delivers notifications in
  // commit order, so a heartbeat heard means every change committed before it is known.
  const deliver = (): void => {
    deliveryQueued = false;
    const ids = [...changed];
    changed.clear();
    const beats = heartbeats.splice(0);
    if (stopped) return;
    try {
      if (ids.length > 0) onChange(ids);
    } finally {
      if (beats.length > 0) onHeartbeat(beats);
    }
  };

  const sql = postgres(options.url, {
    ...connectionOptions(options, KEY_CHANGES_APPLICATION_NAME),
    max: 1,
    // 0: never closed for idleness or age (PGIDLE_TIMEOUT, PGMAX_LIFETIME in the environment would).
    idle_timeout: 0,
    max_lifetime: 0,
    fetch_types: false,
    onnotify(channel: string, payload: string) {
      if (channel !== KEY_CHANGES_CHANNEL) return;
      if (payload.startsWith(HEARTBEAT_PREFIX)) heartbeats.push(payload);
      else changed.add(payload);
      if (!deliveryQueued) {
        deliveryQueued = true;
        setImmediate(deliver);
      }
    },
    onclose() {
      onListening(false);
      if (!stopped) void relisten();
    },
  } as postgres.Options<never>);

  const listen = () => sql.unsafe(`LISTEN ${KEY_CHANGES_CHANNEL}`);

  async function relisten(): Promise<void> {
    if (relistening) return;
    relistening = true;
    for (let delay = FIRST_RETRY_MS; !stopped; delay = Math.min(delay * 2, LAST_RETRY_MS)) {
      try {
        await listen();
        relistening = false;
        if (!stopped) {
          onListening(true);
          setImmediate(() => !stopped && onChange("all"));
        }
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
    relistening = false;
  }

  try {
    await listen();
  } catch (error) {
    stopped = true;
    await sql.end({ timeout: 0 }).catch(() => undefined);
    throw error;
  }
  onListening(true);
  return async () => {
    if (stopped) return;
    stopped = true;
    onListening(false);
    await sql.end({ timeout: 5 });
  };
}
