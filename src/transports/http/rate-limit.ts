import { isIPv6 } from "node:net";

/**
 * What failures are counted against: an IPv4 address as it is, an IPv6 address by its /64. One
 * host is usually handed a whole /64, so counting single IPv6 addresses would let it make 2^64
 * fresh starts. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, a dual-stack socket) counts as
 * its IPv4 address. Anything that is not an IP address (say "unknown") is its own key.
 */
export function limitedBlockOf(address: string): string {
  if (!address.includes(":")) return address; // IPv4, the usual case: every request asks
  const bare = address.replace(/%.*$/, ""); // a zone id (fe80::1%eth0) names an interface, not a host
  if (!isIPv6(bare)) return address;
  let text = bare.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : Array<string>(8 - headGroups.length - tailGroups.length).fill("0");
  const hextets = [...headGroups, ...zeros, ...tailGroups].map((group) => parseInt(group, 16));
  if (hextets.slice(0, 5).every((hextet) => hextet === 0) && hextets[5] === 0xffff) {
    const [high, low] = [hextets[6]!, hextets[7]!];
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  return `${hextets
    .slice(0, 4)
    .map((hextet) => hextet.toString(16))
    .join(":")}::/64`;
}

/**
 * Counts failed authentications per client address (per /64 for IPv6, see limitedBlockOf) in a fixed window that starts at the first
 * failure. Once an address reaches `limit` failures, its further failures are answered 429 until
 * its window ends, and only counted, not logged or recorded one by one (credentials.ts). It never
 * refuses a valid key: other requests' failures must not lock out a good client on the same address.
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
    const window = this.current(limitedBlockOf(address));
    if (!window || window.failures < this.limit) return 0;
    return Math.max(1, Math.ceil((window.startedAt + this.windowMs - this.now()) / 1000));
  }

  /** Counts one failure; returns how many the address has in its current window. */
  recordFailure(address: string): number {
    const block = limitedBlockOf(address);
    let window = this.current(block);
    if (!window) {
      if (this.windows.size >= this.maxTracked) this.prune();
      window = { startedAt: this.now(), failures: 0 };
      this.windows.set(block, window);
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
