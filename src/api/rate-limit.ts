/**
 * Per-key token buckets. Each credential gets `burst` tokens that refill at `perSecond`; a
 * request (a batch included) takes one. Buckets exist only for authenticated credentials, so
 * their number is bounded by the number of keys, and idle full buckets are dropped.
 */
import { assert } from '../stdx/assert.js';

type Bucket = { tokens: number; updatedMs: number };

/** Buckets idle long enough to be full again carry no information and are swept. */
const SWEEP_EVERY_TAKES = 65_536;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private takesSinceSweep = 0;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    assert(perSecond > 0);
    assert(burst >= 1);
    this.perMs = perSecond / 1000;
  }

  /** Takes one token for `key`: 0 when allowed, otherwise the whole seconds to wait (≥ 1). */
  take(key: string): number {
    const now = this.nowMs();
    if (++this.takesSinceSweep >= SWEEP_EVERY_TAKES) this.sweep(now);
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, updatedMs: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.updatedMs) * this.perMs);
    bucket.updatedMs = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    const waitMs = (1 - bucket.tokens) / this.perMs;
    return Math.max(1, Math.ceil(waitMs / 1000));
  }

  private sweep(now: number): void {
    this.takesSinceSweep = 0;
    const fullAfterMs = this.burst / this.perMs;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.updatedMs >= fullAfterMs) this.buckets.delete(key);
    }
  }

  get bucketCount(): number {
    return this.buckets.size;
  }
}
