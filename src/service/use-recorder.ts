import type { KeyStore, KeyUse } from "../store/types.js";
import type { KeyUseRecorder } from "./service.js";

export interface CoalescingUseRecorderOptions {
  /** How long a use may wait before it is written; uses of one key in between collapse into the latest. */
  intervalMs?: number;
  /** A failed write: its uses stay pending and are tried again at the next flush. */
  onError?: (error: unknown) => void;
}

/**
 * Records last use without a synchronous database write per request: the latest use of each key
 * waits in memory and is written, for all keys in one transaction, at most `intervalMs` later.
 * `close()` writes whatever is pending; the HTTP server calls it on shutdown.
 */
export class CoalescingUseRecorder implements KeyUseRecorder {
  private readonly pending = new Map<string, KeyUse>();
  private readonly intervalMs: number;
  private readonly onError: (error: unknown) => void;
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly store: KeyStore,
    options: CoalescingUseRecorderOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.onError = options.onError ?? (() => undefined);
  }

  async record(keyId: string, use: KeyUse): Promise<void> {
    if (this.closed) {
      await this.store.recordKeyUse(keyId, use);
      return;
    }
    this.keepLatest(keyId, use);
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.flush().catch(this.onError);
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  /** Uses not yet written. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Writes every pending use now; resolves once they are in the store. */
  flush(): Promise<void> {
    const batch = [...this.pending];
    this.pending.clear();
    const write = this.writing.then(async () => {
      try {
        await this.store.recordKeyUses(batch);
      } catch (error) {
        for (const [keyId, use] of batch) this.keepLatest(keyId, use);
        throw error;
      }
    });
    this.writing = write.catch(() => undefined);
    return write;
  }

  /** Stops the timer and writes what is pending; later uses are written at once. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }

  private keepLatest(keyId: string, use: KeyUse): void {
    const known = this.pending.get(keyId);
    if (known === undefined || known.at <= use.at) this.pending.set(keyId, use);
  }
}
