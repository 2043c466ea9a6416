import { newKeyEventId } from "../keys/ids.js";
import type { KeyEventRow, KeyStore, Transport } from "../store/types.js";
import { FlushSchedule } from "./flush-schedule.js";
import type { AuthFailure, AuthFailureRecorder } from "./types.js";

/** The `auth.failed` row of one failure: why, from where, the key when known; never the token. */
export function authFailedEvent(failure: AuthFailure, defaultOrganizationId: string): KeyEventRow {
  const { refusal, origin, detail, at } = failure;
  return {
    id: newKeyEventId(),
    // An unknown token names no organization: its attempt is filed under the default one.
    organization_id: refusal.organizationId ?? defaultOrganizationId,
    key_id: refusal.keyId,
    event_type: "auth.failed",
    actor_user_id: null,
    actor_key_id: null,
    transport: origin.transport,
    client_address: origin.clientAddress,
    occurred_at: at,
    detail: { reason: refusal.reason, key_prefix: refusal.keyPrefix, user_agent: origin.userAgent, ...detail },
  };
}

/** Writes each failure at once, one transaction apiece: for library callers and tests, not for a server. */
export class ImmediateFailureRecorder implements AuthFailureRecorder {
  constructor(private readonly store: KeyStore) {}

  async record(failure: AuthFailure): Promise<void> {
    const organization = await this.store.ensureDefaultOrganization(failure.at);
    await this.store.appendEvent(authFailedEvent(failure, organization.id));
  }

  count(): void {
    // Nothing is buffered, so there is nothing to summarize: a counted failure is simply not written.
  }
}

export interface BufferedFailureRecorderOptions {
  /** How long a failure may wait before it is written. */
  intervalMs?: number;
  /** Failures held at most; more are counted, and the count is written instead. */
  maxPending?: number;
  /** A failed write: its failures are counted as not recorded, and the count is tried again. */
  onError?: (error: unknown) => void;
}

export const DEFAULT_MAX_PENDING_FAILURES = 1000;

/**
 * Failed authentications in batches, as CoalescingUseRecorder writes last use: every `intervalMs`
 * at most one transaction (one synced write) with at most `maxPending` `auth.failed` rows, however
 * many requests failed. Beyond that, failures are counted, not held: the batch then ends with one
 * `auth.failed` row `{"reason": "not_recorded", "count": n, "buffer_full": a, "over_limit": b}`, so
 * the audit log says how many went unrecorded. Memory and disk writes stay bounded under any flood.
 */
export class BufferedFailureRecorder implements AuthFailureRecorder {
  private pending: AuthFailure[] = [];
  private bufferFull = 0;
  private overLimit = 0;
  /** Transport and time of the latest failure counted but not recorded, for the summary row. */
  private lastCounted: { transport: Transport; at: string } | null = null;
  private readonly maxPending: number;
  private readonly schedule: FlushSchedule;

  constructor(
    private readonly store: KeyStore,
    options: BufferedFailureRecorderOptions = {},
  ) {
    this.maxPending = Math.max(1, Math.floor(options.maxPending ?? DEFAULT_MAX_PENDING_FAILURES));
    this.schedule = new FlushSchedule(options.intervalMs ?? 1000, () => this.flush(), options.onError ?? (() => undefined));
  }

  record(failure: AuthFailure): Promise<void> | void {
    if (this.pending.length < this.maxPending) this.pending.push(failure);
    else this.countUnrecorded("buffer_full", failure.origin.transport, failure.at);
    return this.queued();
  }

  count(transport: Transport, at: string): Promise<void> | void {
    this.countUnrecorded("over_limit", transport, at);
    return this.queued();
  }

  /** Failures held, not yet written. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Failures counted but not held since the last write. */
  get unrecordedCount(): number {
    return this.bufferFull + this.overLimit;
  }

  /** Writes what is pending now, in one transaction; resolves once it is in the store. */
  flush(): Promise<void> {
    const batch = this.pending;
    const counts = { buffer_full: this.bufferFull, over_limit: this.overLimit };
    const last = this.lastCounted;
    this.pending = [];
    this.bufferFull = 0;
    this.overLimit = 0;
    this.lastCounted = null;
    return this.schedule.serialize(async () => {
      const unrecorded = counts.buffer_full + counts.over_limit;
      if (batch.length === 0 && unrecorded === 0) return;
      try {
        const organization = await this.store.ensureDefaultOrganization(batch[0]?.at ?? last!.at);
        const rows = batch.map((failure) => authFailedEvent(failure, organization.id));
        if (unrecorded > 0) rows.push(this.summaryRow(organization.id, unrecorded, counts, last!));
        await this.store.appendEvents(rows);
      } catch (error) {
        // Lost, but not silently: the next batch's summary row counts them. Nothing is re-queued,
        // so a store that keeps failing cannot make memory grow.
        this.bufferFull += counts.buffer_full + batch.length;
        this.overLimit += counts.over_limit;
        this.lastCounted ??= last ?? { transport: batch[0]!.origin.transport, at: batch[0]!.at };
        this.schedule.schedule();
        throw error;
      }
    });
  }

  /** Stops the timer and writes what is pending; later failures are written at once. */
  close(): Promise<void> {
    return this.schedule.close();
  }

  private countUnrecorded(kind: "buffer_full" | "over_limit", transport: Transport, at: string): void {
    if (kind === "buffer_full") this.bufferFull += 1;
    else this.overLimit += 1;
    this.lastCounted = { transport, at };
  }

  private queued(): Promise<void> | void {
    if (this.schedule.closed) return this.flush();
    this.schedule.schedule();
  }

  private summaryRow(organizationId: string, count: number, counts: { buffer_full: number; over_limit: number }, last: { transport: Transport; at: string }): KeyEventRow {
    return {
      id: newKeyEventId(),
      organization_id: organizationId,
      key_id: null,
      event_type: "auth.failed",
      actor_user_id: null,
      actor_key_id: null,
      transport: last.transport,
      client_address: null,
      occurred_at: last.at,
      detail: { reason: "not_recorded", count, ...counts },
    };
  }

}
