/**
 * Counts failed authentications per client address in a fixed window that starts at the first
 * failure. Once an address reaches `limit` failures, it is refused (429) until its window ends,
 * good key or not: a guesser learns nothing more from that address until then.
 */
export class FailedAuthLimiter {
  private readonly windows = new Map<string, { startedAt: number; failures: number }>();
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly maxTracked: number;

  constructor(options: { limit: number; windowMs: number; now?: () => number; maxTracked?: number }) {
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new RangeError("limit must be a positive integer");
    if (!(options.windowMs > 0)) throw new RangeError("windowMs must be positive");
    this.limit = options.limit;
    this.windowMs = options.windowMs;
    this.now = options.now ?? Date.now;
    this.maxTracked = options.maxTracked ?? 100_000;
  }

  /** Whole seconds until the address may try again; 0 when it may try now. */
  retryAfterSeconds(address: string): number {
    const window = this.current(address);
    if (!window || window.failures < this.limit) return 0;
    return Math.max(1, Math.ceil((window.startedAt + this.windowMs - this.now()) / 1000));
  }

  /** Counts one failure; returns how many the address has in its current window. */
  recordFailure(address: string): number {
    let window = this.current(address);
    if (!window) {
      if (this.windows.size >= this.maxTracked) this.prune();
      window = { startedAt: this.now(), failures: 0 };
      this.windows.set(address, window);
    }
    window.failures += 1;
    return window.failures;
  }

  get limitPerWindow(): number {
    return this.limit;
  }

  private current(address: string) {
    const window = this.windows.get(address);
    if (window && this.now() - window.startedAt >= this.windowMs) {
      this.windows.delete(address);
      return undefined;
    }
    return window;
  }

  /** Drops ended windows; if that is not enough, the oldest ones (a flood of addresses cannot grow memory without bound). */
  private prune(): void {
    const now = this.now();
    for (const [address, window] of this.windows) {
      if (now - window.startedAt >= this.windowMs) this.windows.delete(address);
    }
    for (const address of this.windows.keys()) {
      if (this.windows.size < this.maxTracked) break;
      this.windows.delete(address);
    }
  }
}
