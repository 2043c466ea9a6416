// The key-change feed of one PostgresKeyStore: its one listening connection
// (src/store/postgres-watch.ts), shared by every watcher (the HTTP sessions) and by
// keyChangeVersion (the verification cache), and the heartbeat that tells the cache the connection
// still hears. Started by the first watch() or version(), ended by close().
import { randomUUID } from "node:crypto";
import type { PgSql, PostgresStoreOptions } from "./postgres-open.js";
import { HEARTBEAT_PREFIX, KEY_CHANGES_CHANNEL, listenForKeyChanges } from "./postgres-watch.js";
import type { KeyChangeListener } from "./types.js";

/**
 * KeyStore.keyChangeMaxAgeMs on PostgreSQL (PostgresStoreOptions.keyCacheMaxAgeMs): no cached row
 * is answered longer than this after it was read, for changes committed without a notification.
 */
export const PG_KEY_CACHE_MAX_AGE_MS = 30_000;
/**
 * While it listens, the store sends `heartbeat:<instance id>` on the channel this often, and the
 * cache answers only while its own last heartbeat came back within HEARTBEAT_STALE_MS: a listening
 * connection that died without a close (a silent network partition) is noticed within that, and
 * notifications come in commit order, so a heartbeat heard means every change before it is known.
 * Worst-case staleness with the listener lost unnoticed: HEARTBEAT_STALE_MS.
 */
export const HEARTBEAT_INTERVAL_MS = 250;
export const HEARTBEAT_STALE_MS = 1000;
/** After LISTEN failed to start on a cache's behalf, the next try waits this long (no storm of connections). */
const KEY_FEED_RETRY_MS = 5000;

export class PostgresKeyFeed {
  private closed = false;
  private started: Promise<void> | null = null;
  private stop: (() => Promise<void>) | null = null;
  private listening = false;
  private failedAt = Number.NEGATIVE_INFINITY;
  private readonly watchers = new Set<{ onChange: KeyChangeListener }>();
  /** version()'s answer: moves with every notification, every loss or return of the listener, every own write. */
  private current = 0;
  /** Tells this feed's heartbeats from other instances' on the shared channel. */
  private readonly heartbeatPayload = `${HEARTBEAT_PREFIX}${randomUUID()}`;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** When this feed last heard its own heartbeat (performance.now()). */
  private heartbeatHeardAt = Number.NEGATIVE_INFINITY;
  /** Whether a cache has asked for version(): only then are heartbeats sent (the sessions' watchers need none). */
  private versionAsked = false;

  constructor(
    private readonly sql: PgSql,
    private readonly options: PostgresStoreOptions,
  ) {}

  /** A write through this store: its change is known at once, before the writer hears back. */
  ownWrite(): void {
    this.current++;
  }

  /** Adds a watcher once the connection listens; the function it resolves with removes it. */
  async watch(onChange: KeyChangeListener): Promise<() => Promise<void>> {
    await this.start();
    const watcher = { onChange };
    this.watchers.add(watcher);
    return async () => {
      this.watchers.delete(watcher);
    };
  }

  /**
   * KeyStore.keyChangeVersion: null until the listening connection is up and its first heartbeat
   * back (the first call starts it, unless keyChangeNotifications is false), whenever it is lost,
   * until it listens again, and whenever its own heartbeat has not come back for
   * HEARTBEAT_STALE_MS. The version moves on every notification, on the loss and on the return
   * (notifications sent meanwhile are lost), and on this store's own writes. Staleness while it is
   * up: the notification's delivery (it is sent at commit: milliseconds); while it is dead
   * unnoticed: HEARTBEAT_STALE_MS. Keys inserted by another instance send no notification (only
   * updates and deletes do, migrations-postgres/001_initial.sql): a cached "not found" may outlive
   * such an insert by the cache's negative-entry lifetime, which only matters for a token known
   * before its key was written (a copy between databases).
   */
  version(): number | null {
    if (!this.versionAsked) {
      this.versionAsked = true;
      if (this.listening) this.beatWhileListening(true);
    }
    if (this.listening) return performance.now() - this.heartbeatHeardAt <= HEARTBEAT_STALE_MS ? this.current : null;
    if (this.started === null && !this.closed && this.options.keyChangeNotifications !== false && performance.now() - this.failedAt >= KEY_FEED_RETRY_MS) {
      void this.start().catch(() => undefined);
    }
    return null;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.beatWhileListening(false);
    this.watchers.clear();
    await this.started?.catch(() => undefined);
    await this.stop?.();
  }

  private start(): Promise<void> {
    if (this.started !== null) return this.started;
    const started = listenForKeyChanges(
      this.options,
      (changed) => {
        this.current++;
        for (const watcher of this.watchers) {
          try {
            watcher.onChange(changed);
          } catch (error) {
            // One watcher's throw neither stops the others nor disappears (as before the fan-out).
            process.nextTick(() => {
              throw error;
            });
          }
        }
      },
      (listening) => {
        this.current++;
        this.listening = listening;
        this.beatWhileListening(listening);
      },
      (payloads) => {
        if (payloads.includes(this.heartbeatPayload)) this.heartbeatHeardAt = performance.now();
      },
    ).then(
      async (stop) => {
        this.stop = stop;
        if (this.closed) await stop();
      },
      (error: unknown) => {
        this.started = null;
        this.failedAt = performance.now();
        throw error;
      },
    );
    this.started = started;
    return started;
  }

  /** Sends heartbeats while the feed listens and a cache asks for version() (the first at once), none otherwise. */
  private beatWhileListening(listening: boolean): void {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.heartbeatHeardAt = Number.NEGATIVE_INFINITY;
    if (!listening || this.closed || !this.versionAsked) return;
    const beat = () => {
      // On the pool, a statement of its own: a failure is a missed beat, and the cache stops answering.
      this.sql`SELECT pg_notify(${KEY_CHANGES_CHANNEL}, ${this.heartbeatPayload})`.catch(() => undefined);
    };
    beat();
    this.heartbeatTimer = setInterval(beat, HEARTBEAT_INTERVAL_MS).unref();
  }
}
