import type { KeyStore, KeyUse } from "../store/types.js";
import { FlushSchedule } from "./flush-schedule.js";
import type { KeyUseRecorder } from "./types.js";

export interface CoalescingUseRecorderOptions {
  /** How long a use may wait before it is written; uses of one key in between collapse into the latest. */
  intervalMs?: number;
  /**
   * Uses written per store transaction. A flush writes its batch in chunks of this size and lets the
   * event loop run between them, so a flush of many distinct keys never blocks it for long.
   */
  chunkSize?: number;
  /** A failed write: its uses stay pending and are tried again at the next flush. */
  onError?: (error: unknown) => void;
}

export const DEFAULT_USE_CHUNK_SIZE = 2000;

const byKeyId = (a: readonly [string, KeyUse], b: readonly [string, KeyUse]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/**
 * Records last use without a synchronous database write per request: the latest use of each key
 * waits in memory and is written at most `intervalMs` later, `chunkSize` keys per transaction with
 * the event loop free in between. `close()` writes whatever is pending; the servers call it on
 * shutdown.
 */
export class CoalescingUseRecorder implements KeyUseRecorder {
  private readonly pending = new Map<string, KeyUse>();
  private readonly chunkSize: number;
  private readonly schedule: FlushSchedule;

  constructor(
    private readonly store: KeyStore,
    options: CoalescingUseRecorderOptions = {},
  ) {
    this.chunkSize = Math.max(1, Math.floor(options.chunkSize ?? DEFAULT_USE_CHUNK_SIZE));
    this.schedule = new FlushSchedule(options.intervalMs ?? 1000, () => this.flush(), options.onError ?? (() => undefined));
  }

  /** Queues the use and returns nothing (verification awaits nothing); after close, writes it at once. */
  record(keyId: string, use: KeyUse): Promise<void> | void {
    if (this.schedule.closed) return this.store.recordKeyUse(keyId, use);
    this.keepLatest(keyId, use);
    this.schedule.schedule();
  }

  /** Uses not yet written. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /**
   * Writes every pending use now, in chunks, yielding to the event loop between them; resolves once
   * they are all in the store. Uses recorded meanwhile wait for the next flush. When a chunk fails,
   * it and every chunk after it go back to pending (an older use never displaces a newer one there)
   * and the flush rejects: the next flush tries them again.
   */
  flush(): Promise<void> {
    // In key order, each chunk updates one contiguous range of the store's key_usage rows: the
    // chunks together touch each page about once, as one big transaction would. In arrival order
    // every chunk would rewrite pages all over the table (measured: 3x the total time).
    const batch = [...this.pending].sort(byKeyId);
    this.pending.clear();
    return this.schedule.serialize(async () => {
      for (let from = 0; from < batch.length; from += this.chunkSize) {
        if (from > 0) await new Promise<void>((resolve) => setImmediate(resolve));
        try {
          await this.store.recordKeyUses(batch.slice(from, from + this.chunkSize));
        } catch (error) {
          for (let i = from; i < batch.length; i++) this.keepLatest(batch[i]![0], batch[i]![1]);
          this.schedule.schedule(); // tried again an interval later, even if no use comes in
          throw error;
        }
      }
    });
  }

  /**
   * Hands every pending use to the store in one call and returns without waiting, for a process
   * 'exit' listener, which cannot wait: a store that writes synchronously (SqliteKeyStore) has them
   * on disk when this returns. A failure is dropped: the process is ending.
   */
  flushNow(): void {
    const batch = [...this.pending].sort(byKeyId);
    this.pending.clear();
    if (batch.length > 0) void this.store.recordKeyUses(batch).catch(() => undefined);
  }

  /** Stops the timer and writes what is pending; later uses are written at once. */
  close(): Promise<void> {
    return this.schedule.close();
  }

  private keepLatest(keyId: string, use: KeyUse): void {
    const known = this.pending.get(keyId);
    if (known === undefined || known.at <= use.at) this.pending.set(keyId, use);
  }
}
