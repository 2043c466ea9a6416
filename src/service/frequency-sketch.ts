// How often each key was asked for lately, approximately, in a fixed few bytes per key: the
// frequency sketch of TinyLFU (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache
// Admission Policy", ACM TOS 2017), as Caffeine uses it. The verification cache admits a key only
// when it is asked for more often than the key it would evict (verification-cache.ts), so that a
// stream of keys each used once cannot wash out the keys used all the time (bench/verify-1m.mjs).

/** A counter stops here: only "more often than the victim" matters, and 4 bits are Caffeine's. */
const COUNTER_MAX = 15;
/** Counters per key: one in each of four rows; the key's estimate is the least of them. */
const DEPTH = 4;
/** Counters are halved after this many additions per counter of a row (Caffeine: 10 per entry). */
const SAMPLE_PER_ENTRY = 10;
/** At most 4 MiB of counters, enough for a million keys held. */
const MAX_ROW_COUNTERS = 1 << 20;

/**
 * A count-min sketch with conservative update and periodic halving (the "reset" that ages old
 * popularity away). Keys are the verification cache's keys: 16 UTF-16 code units of a SHA-256
 * (cacheKeyOf), uniformly random, so their code units serve as the row hashes with no hashing.
 */
export class FrequencySketch {
  private readonly counters: Uint8Array;
  private readonly rowMask: number;
  private readonly rowCounters: number;
  private additions = 0;
  private readonly sampleSize: number;
  /** The current key's counter positions, one per row (reused: no allocation per call). */
  private readonly at = new Int32Array(DEPTH);

  constructor(maxEntries: number) {
    let rowCounters = 64;
    while (rowCounters < maxEntries && rowCounters < MAX_ROW_COUNTERS) rowCounters *= 2;
    this.rowCounters = rowCounters;
    this.rowMask = rowCounters - 1;
    this.counters = new Uint8Array(rowCounters * DEPTH);
    this.sampleSize = SAMPLE_PER_ENTRY * rowCounters;
  }

  /** Bytes of counters held. */
  get bytes(): number {
    return this.counters.length;
  }

  /** The estimated number of recent requests for `key` (at most 15). */
  frequency(key: string): number {
    this.locate(key);
    let least = COUNTER_MAX;
    for (let row = 0; row < DEPTH; row++) least = Math.min(least, this.counters[this.at[row]!]!);
    return least;
  }

  /** Counts one request for `key`: raises only its least counters (conservative update). */
  increment(key: string): void {
    const least = this.frequency(key);
    if (least === COUNTER_MAX) return;
    for (let row = 0; row < DEPTH; row++) {
      const position = this.at[row]!;
      if (this.counters[position] === least) this.counters[position] = least + 1;
    }
    if (++this.additions >= this.sampleSize) this.halve();
  }

  private locate(key: string): void {
    // Rows use disjoint code units of the key: four independent uniform hashes.
    for (let row = 0; row < DEPTH; row++) {
      const hash = (key.charCodeAt(2 * row) << 16) | key.charCodeAt(2 * row + 1);
      this.at[row] = row * this.rowCounters + (hash & this.rowMask);
    }
  }

  private halve(): void {
    for (let i = 0; i < this.counters.length; i++) this.counters[i] = this.counters[i]! >> 1;
    this.additions = Math.floor(this.additions / 2);
  }
}
