import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FailedAuthLimiter, limitedBlockOf } from "../../../src/transports/http/rate-limit.js";

describe("FailedAuthLimiter", () => {
  it("refuses an address at the limit until its window ends, counting each address apart", () => {
    let now = 1_000_000;
    const limiter = new FailedAuthLimiter({ limit: 3, windowMs: 10_000, now: () => now });
    expect([1, 2].map(() => limiter.recordFailure("10.0.0.1"))).toEqual([1, 2]);
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(0);
    expect(limiter.recordFailure("10.0.0.1")).toBe(3);
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(10);
    expect(limiter.retryAfterSeconds("10.0.0.2")).toBe(0);
    now += 9_001;
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(1);
    now += 999;
    expect(limiter.retryAfterSeconds("10.0.0.1")).toBe(0);
    expect(limiter.recordFailure("10.0.0.1")).toBe(1); // a new window
  });

  it("keeps memory bounded under a flood of addresses", () => {
    let now = 0;
    const limiter = new FailedAuthLimiter({ limit: 1, windowMs: 1000, now: () => now, maxTracked: 100 });
    for (let i = 0; i < 1000; i++) limiter.recordFailure(`198.51.100.${i}`);
    // The newest are still tracked (and refused); the oldest were dropped to make room.
    expect(limiter.retryAfterSeconds("198.51.100.999")).toBe(1);
    expect(limiter.retryAfterSeconds("198.51.100.0")).toBe(0);
    now += 1000;
    expect(limiter.retryAfterSeconds("198.51.100.999")).toBe(0);
  });

  it("counts an IPv6 address by its /64 and an IPv4-mapped one as its IPv4 address", () => {
    expect(limitedBlockOf("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).toBe("2001:db8:1:2::/64");
    expect(limitedBlockOf("2001:DB8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(limitedBlockOf("2001:0db8:0001:0002::ffff:1")).toBe("2001:db8:1:2::/64");
    expect(limitedBlockOf("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(limitedBlockOf("::1")).toBe("0:0:0:0::/64");
    expect(limitedBlockOf("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(limitedBlockOf("64:ff9b::192.0.2.33")).toBe("64:ff9b:0:0::/64");
    expect(limitedBlockOf("::ffff:192.0.2.1")).toBe("192.0.2.1");
    expect(limitedBlockOf("::FFFF:c000:0201")).toBe("192.0.2.1");
    expect(limitedBlockOf("192.0.2.1")).toBe("192.0.2.1");
    expect(limitedBlockOf("unknown")).toBe("unknown");

    let now = 0;
    const limiter = new FailedAuthLimiter({ limit: 2, windowMs: 1000, now: () => now });
    limiter.recordFailure("2001:db8:1:2::1");
    expect(limiter.recordFailure("2001:db8:1:2::ffff")).toBe(2); // another address, the same /64
    expect(limiter.retryAfterSeconds("2001:db8:1:2:9:9:9:9")).toBe(1);
    expect(limiter.retryAfterSeconds("2001:db8:1:3::1")).toBe(0); // the next /64
    limiter.recordFailure("::ffff:198.51.100.7");
    expect(limiter.recordFailure("198.51.100.7")).toBe(2);
    expect(limiter.retryAfterSeconds("198.51.100.8")).toBe(0);
  });

  it("gives an address in full and in the shortest form the same /64, its first four hextets", () => {
    // Zeros are frequent, so the shortest form often has a "::" in any place.
    const hextets = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(hextets, (groups) => {
        fc.pre(!(groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff)); // IPv4-mapped: tested above
        const full = groups.map((group) => group.toString(16).padStart(4, "0")).join(":");
        const shortest = new URL(`http://[${full}]/`).hostname.slice(1, -1); // WHATWG URL compresses
        const expected = `${groups.slice(0, 4).map((group) => group.toString(16)).join(":")}::/64`;
        expect(limitedBlockOf(full)).toBe(expected);
        expect(limitedBlockOf(shortest)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it("rejects nonsense settings", () => {
    expect(() => new FailedAuthLimiter({ limit: 0, windowMs: 1 })).toThrow(RangeError);
    expect(() => new FailedAuthLimiter({ limit: 1, windowMs: 0 })).toThrow(RangeError);
  });
});
