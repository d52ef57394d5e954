/**
 * A small deterministic pseudo-random generator (xoshiro128**, seeded through splitmix32) for
 * workloads and tests that must be reproducible from a seed. Not for secrets: use node:crypto.
 *
 * 32-bit arithmetic only (Math.imul, >>> 0), so it is fast in V8 and gives the same sequence on
 * every machine.
 */
import { assert } from './assert.js';

const TWO_POW_32 = 0x1_0000_0000;

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), 'seed must be a safe integer');
    // splitmix32 spreads a small seed over the 128-bit state; folding the high half keeps
    // seeds above 2^32 distinct.
    let x = (seed ^ Math.floor(seed / TWO_POW_32)) >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    // The all-zero state is the one state xoshiro never leaves.
    assert((this.s0 | this.s1 | this.s2 | this.s3) !== 0, 'prng state is zero');
  }

  /** The next unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform integer in [0, bound), without modulo bias (rejection of the short last lap). */
  below(bound: number): number {
    assert(Number.isInteger(bound), 'bound must be an integer');
    assert(bound >= 1 && bound <= TWO_POW_32, 'bound out of range');
    const limit = TWO_POW_32 - (TWO_POW_32 % bound);
    for (;;) {
      const value = this.nextU32();
      if (value < limit) return value % bound;
    }
  }

  /** A uniform integer in [min, max], both inclusive. */
  between(min: number, max: number): number {
    assert(min <= max, 'empty range');
    return min + this.below(max - min + 1);
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const high = this.nextU32() >>> 5; // 27 bits
    const low = this.nextU32() >>> 6; // 26 bits
    return (high * 67_108_864 + low) / 9_007_199_254_740_992;
  }
}

function rotl(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}
