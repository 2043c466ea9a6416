import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FrequencySketch } from "../../src/service/frequency-sketch.js";
import { cacheKeyOf } from "../../src/service/verification-cache.js";

// TinyLFU's frequency sketch (src/service/frequency-sketch.ts), on cache keys as the service makes them.
const keyOf = (n: number) => cacheKeyOf(createHash("sha256").update(`key ${n}`).digest());

describe("FrequencySketch", () => {
  it("estimates each key's recent requests, up to 15, from counters a handful of keys share with no other", () => {
    const sketch = new FrequencySketch(1024);
    for (let n = 0; n < 20; n++) for (let i = 0; i < n; i++) sketch.increment(keyOf(n));
    // Count-min never underestimates; with 20 keys in 4 rows of 1024 counters, none collides in every row.
    for (let n = 0; n < 20; n++) expect(sketch.frequency(keyOf(n))).toBe(Math.min(n, 15));
    expect(sketch.frequency(keyOf(1000))).toBe(0);
    expect(sketch.bytes).toBe(4 * 1024);
  });

  it("halves every counter after ten additions per counter of a row, so old popularity fades", () => {
    const sketch = new FrequencySketch(64);
    for (let i = 0; i < 12; i++) sketch.increment(keyOf(0));
    expect(sketch.frequency(keyOf(0))).toBe(12);
    // 64 counters per row: the 640th addition halves them all. Keys 1.. are counted once each.
    for (let n = 1; n <= 640 - 12 - 1; n++) sketch.increment(keyOf(n));
    expect(sketch.frequency(keyOf(0))).toBeGreaterThanOrEqual(12);
    sketch.increment(keyOf(640));
    expect(sketch.frequency(keyOf(0))).toBeLessThanOrEqual(7);
    expect(sketch.frequency(keyOf(0))).toBeGreaterThanOrEqual(6);
  });
});
