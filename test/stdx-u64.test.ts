// u64 fields carried as two 32-bit halves (src/stdx/u64.ts): every safe non-negative integer
// round-trips, and the bytes are the little-endian u64 a BigInt writer would put there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { getU64, setU64 } from '../src/stdx/u64.js';

test('setU64 writes the little-endian u64 of any safe non-negative integer; getU64 reads it back', () => {
  const view = new DataView(new ArrayBuffer(24));
  const edges = [0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 52, Number.MAX_SAFE_INTEGER];
  fc.assert(
    fc.property(fc.oneof(fc.constantFrom(...edges), fc.maxSafeNat(), fc.nat()), fc.integer({ min: 0, max: 16 }), (value, at) => {
      setU64(view, at, value);
      assert.equal(view.getBigUint64(at, true), BigInt(value));
      assert.equal(getU64(view, at), value);
    }),
    { numRuns: 2000 },
  );
});
