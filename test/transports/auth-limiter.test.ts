import { describe, expect, it } from "vitest";
import { FailedAuthLimiter } from "../../src/transports/auth-limiter.js";

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

  it("rejects nonsense settings", () => {
    expect(() => new FailedAuthLimiter({ limit: 0, windowMs: 1 })).toThrow(RangeError);
    expect(() => new FailedAuthLimiter({ limit: 1, windowMs: 0 })).toThrow(RangeError);
  });
});
