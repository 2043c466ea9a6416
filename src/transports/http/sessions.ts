import type { IncomingMessage } from "node:http";
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
import type { KeyStandingNow } from "../../service/service.js";

// The session table of the HTTP transport (README, "Sessions"): no principal can take the service
// from another. Each key holds at most `maxSessionsPerKey` sessions (one more evicts its least
// recently used), the table at most `maxSessions`; a session idle for the timeout is closed even
// while it holds a GET stream; a key revoked, expired or narrowed by any process loses its sessions
// and streams: the keys owning sessions are re-read when the store reports a change of theirs
// (recheckKeys), and on a short interval whether or not it does (README, "Running several instances").

export { DEFAULT_KEY_WATCH_INTERVAL_MS, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_KEY, DEFAULT_SESSION_IDLE_TIMEOUT_MS } from "./defaults.js";

/** Why a session ended, as the log says it. */
export type SessionCloseReason =
  | "closed" // DELETE, or the transport closed
  | "idle"
  | "evicted" // its key opened one more session than its limit
  | "revoked"
  | "expired"
  | "scopes_changed"
  | "key_gone"
  | "shutdown";

/** What the table needs of a session; the transport adds its own fields. */
export interface TableEntry {
  readonly id: string;
  /** The key that opened it; only that key may use it. null: --no-auth, one principal for every request. */
  readonly keyId: string | null;
  /** The key's scopes when the session opened; a session outlives no change of them. */
  readonly scopes: readonly string[] | null;
  /** When the key expires (ms since the epoch); null: never. */
  expiresAtMs: number | null;
  /** The start or end of its last request: the clock of the idle timeout and of LRU eviction. */
  lastUsed: number;
  /** Requests in progress other than GET streams: a long tool call is not idleness, a held stream is. */
  busy: number;
}

export interface SessionTableOptions<S extends TableEntry> {
  maxSessions: number;
  maxSessionsPerKey: number;
  idleTimeoutMs: number;
  /**
   * How often every key owning a session is re-read: another process may revoke, expire or narrow
   * one, and a store's change notifications (if any) may not arrive. The staleness bound of sessions.
   */
  keyWatchIntervalMs: number;
  /** The standing of these keys now, in one read (KeyService.keyStandings). */
  keyStandings(keyIds: readonly string[]): Promise<Map<string, KeyStandingNow>>;
  /** Ends the session's streams, transport and server; called once, after it has left the table. */
  onClose(session: S, why: SessionCloseReason): Promise<void> | void;
  /** The standings could not be read; the next interval tries again. */
  onWatchError?(error: unknown): void;
  now?: () => number;
}

function sameScopes(a: readonly string[] | null, b: readonly string[] | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((scope) => set.has(scope));
}

export class SessionTable<S extends TableEntry> {
  private readonly sessions = new Map<string, S>();
  private readonly byKey = new Map<string | null, Set<S>>();
  /** Order of last use, for LRU: the clock may give two uses the same millisecond. */
  private readonly useOrder = new Map<S, number>();
  private uses = 0;
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;
  private watcher: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private started = false;
  /** Keys to re-read once the read in flight ends ("all": every key owning a session); null: none. */
  private pending: Set<string> | "all" | null = null;
  private draining: Promise<void> | undefined;

  constructor(private readonly options: SessionTableOptions<S>) {
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  get(id: string): S | undefined {
    return this.sessions.get(id);
  }

  /** Open sessions of one key (null: --no-auth). */
  countOf(keyId: string | null): number {
    return this.byKey.get(keyId)?.size ?? 0;
  }

  /**
   * Makes room for one more session of `keyId`, at once (no await, so that parallel initializes
   * cannot all pass): at its per-key limit, or when the table is full, that key's least recently
   * used session is closed. false: the table is full of other keys' sessions (the caller answers 503).
   */
  admit(keyId: string | null): boolean {
    const own = this.byKey.get(keyId);
    while (own !== undefined && own.size > 0 && (own.size >= this.options.maxSessionsPerKey || this.sessions.size >= this.options.maxSessions)) {
      let oldest: S | undefined;
      for (const session of own) if (oldest === undefined || this.useOrder.get(session)! < this.useOrder.get(oldest)!) oldest = session;
      void this.close(oldest!, "evicted");
    }
    return this.sessions.size < this.options.maxSessions;
  }

  /** Registers a session admitted by admit(). */
  add(session: S): void {
    this.sessions.set(session.id, session);
    this.useOrder.set(session, ++this.uses);
    let own = this.byKey.get(session.keyId);
    if (own === undefined) this.byKey.set(session.keyId, (own = new Set()));
    own.add(session);
    if (this.started && session.expiresAtMs !== null) this.closeExpired();
  }

  /**
   * Whether a request authenticated with these scopes may use the session: a key whose scopes
   * changed since it opened loses it (closed here, at once, with its streams).
   */
  admits(session: S, scopes: readonly string[] | null): boolean {
    if (sameScopes(session.scopes, scopes)) return true;
    void this.close(session, "scopes_changed");
    return false;
  }

  /** One request of the session starts; the returned function ends it. GET streams do not keep it busy. */
  use(session: S, stream: boolean): () => void {
    this.touch(session);
    if (!stream) session.busy += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.touch(session);
      if (!stream) session.busy -= 1;
    };
  }

  private touch(session: S): void {
    session.lastUsed = this.now();
    if (this.useOrder.has(session)) this.useOrder.set(session, ++this.uses);
  }

  /** Takes the session out of the table and ends it; a second call does nothing. */
  async close(session: S, why: SessionCloseReason): Promise<void> {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    this.useOrder.delete(session);
    const own = this.byKey.get(session.keyId);
    own?.delete(session);
    if (own?.size === 0) this.byKey.delete(session.keyId);
    await this.options.onClose(session, why);
  }

  async closeAll(why: SessionCloseReason): Promise<void> {
    await Promise.all([...this.sessions.values()].map((session) => this.close(session, why)));
  }

  /** Closes sessions idle for the timeout, whether or not they hold a GET stream. */
  sweepIdle(): void {
    const now = this.now();
    for (const session of this.sessions.values()) {
      if (session.busy === 0 && now - session.lastUsed >= this.options.idleTimeoutMs) void this.close(session, "idle");
    }
  }

  /**
   * Re-checks the sessions of these keys against the store ("all": of every key that owns a
   * session): the periodic key watch and the store's key-change notifications both come here, so
   * the rule is this one. At most one read is in flight: keys named meanwhile are gathered and read
   * together by the next one, which starts when it ends (the read in flight may predate the change
   * it is told of), so a storm of notifications costs one read at a time, not one per key.
   * Resolves once a read begun after this call has ended.
   */
  recheckKeys(changed: readonly string[] | "all"): Promise<void> {
    if (changed === "all" || this.pending === "all") this.pending = "all";
    else {
      this.pending ??= new Set();
      for (const id of changed) this.pending.add(id);
    }
    this.draining ??= this.drain();
    return this.draining;
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending !== null) {
        const keys = this.pending;
        this.pending = null;
        await this.readStandings(keys);
      }
    } finally {
      // In the same turn as the loop's last check: a recheckKeys after it starts a new drain.
      this.draining = undefined;
    }
  }

  /**
   * Closes the sessions of keys known here to have expired, then reads the standing of each key
   * asked about that owns a session, in one read, and closes the sessions of a key revoked,
   * expired, gone, or whose scopes differ from those the session opened with.
   */
  private async readStandings(keys: ReadonlySet<string> | "all"): Promise<void> {
    this.closeExpired();
    // Judged against the standings: only sessions opened before the read (a later one was opened
    // with a fresher authentication than the read can show).
    const owned = keys === "all" ? [...this.sessions.values()] : [...keys].flatMap((id) => [...(this.byKey.get(id) ?? [])]);
    const judged = owned.filter((session) => session.keyId !== null);
    if (judged.length === 0) return;
    let standings: Map<string, KeyStandingNow>;
    try {
      standings = await this.options.keyStandings([...new Set(judged.map((session) => session.keyId!))]);
    } catch (error) {
      this.options.onWatchError?.(error);
      return;
    }
    for (const session of judged) {
      const standing = standings.get(session.keyId!);
      const why: SessionCloseReason | null =
        standing === undefined
          ? "key_gone"
          : standing.status === "revoked"
            ? "revoked"
            : standing.status === "expired"
              ? "expired"
              : sameScopes(session.scopes, standing.scopes)
                ? null
                : "scopes_changed";
      if (why !== null) void this.close(session, why);
      else session.expiresAtMs = standing!.expiresAt === null ? null : Date.parse(standing!.expiresAt);
    }
    // An expiry moved earlier elsewhere ends the session at that instant, not at a later watch.
    this.closeExpired();
  }

  /**
   * Closes the sessions whose key has expired by what is known here, and (once started) sets a
   * timer for the next expiry: a key works until the instant it expires (README, Authentication).
   */
  private closeExpired(): void {
    const now = this.now();
    let next = Infinity;
    for (const session of this.sessions.values()) {
      if (session.expiresAtMs === null) continue;
      if (session.expiresAtMs <= now) void this.close(session, "expired");
      else next = Math.min(next, session.expiresAtMs);
    }
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (!this.started || next === Infinity) return;
    // setTimeout takes at most 2^31-1 ms (about 24.8 days); a later expiry re-arms on the way.
    this.expiryTimer = setTimeout(() => this.closeExpired(), Math.min(next - now, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }

  /** Starts the idle sweep, the periodic key watch and the expiry timer. */
  start(): void {
    const { idleTimeoutMs, keyWatchIntervalMs } = this.options;
    this.started = true;
    this.sweeper = setInterval(() => this.sweepIdle(), Math.max(50, Math.min(60_000, Math.floor(idleTimeoutMs / 4))));
    this.watcher = setInterval(() => void this.recheckKeys("all"), keyWatchIntervalMs);
    this.sweeper.unref();
    this.watcher.unref();
    this.closeExpired();
  }

  stop(): void {
    this.started = false;
    clearInterval(this.sweeper);
    clearInterval(this.watcher);
    clearTimeout(this.expiryTimer);
  }
}

/** The protocol version a server answering this initialize uses (as the SDK's Server negotiates it). */
export function negotiatedProtocolVersion(requested: unknown): string {
  return typeof requested === "string" && SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
}

/**
 * Makes a session's request carry the protocol version its initialize negotiated. The version of a
 * session is fixed by initialize; the MCP-Protocol-Version header SHOULD repeat it, and the SDK's
 * transport decides per request, by that header, whether a stream gets its priming event (ids for
 * Last-Event-ID). An absent header or another supported version is replaced; an unsupported one
 * is left for the transport to refuse with 400. The transport reads rawHeaders.
 */
export function applySessionProtocolVersion(req: IncomingMessage, version: string): void {
  const current = req.headers["mcp-protocol-version"];
  if (current === version || (current !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(String(current)))) return;
  req.headers["mcp-protocol-version"] = version;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "mcp-protocol-version") {
      raw[i + 1] = version;
      return;
    }
  }
  raw.push("mcp-protocol-version", version);
}
