/**
 * The timing the batching recorders share (CoalescingUseRecorder, BufferedFailureRecorder): a flush
 * runs at most `intervalMs` after something is queued, flushes write one after another so batches
 * reach the store in order, and `close()` stops the timer and writes what is left.
 */
export class FlushSchedule {
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly flush: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** After close(): the recorders then write at once instead of queueing. */
  get closed(): boolean {
    return this.stopped;
  }

  /** A flush `intervalMs` from now, unless one is already due (or the schedule is closed). */
  schedule(): void {
    if (this.timer !== null || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush().catch(this.onError);
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Runs `write` after every earlier write has settled; resolves or rejects with it. */
  serialize(write: () => Promise<void>): Promise<void> {
    const done = this.writing.then(write);
    this.writing = done.catch(() => undefined);
    return done;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}
