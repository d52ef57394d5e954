/**
 * CRC-32 (the IEEE 802.3 polynomial, as zlib computes it): the checksum of log frames, protocol
 * frames and snapshot files. Large inputs go to @node-rs/crc32, which folds with carry-less
 * multiplication (PCLMULQDQ); small ones stay with zlib.crc32, whose call costs less (in a
 * one-off timing, not committed, the two crossed near 256 bytes). Both compute the same
 * function, so nothing on disk or on the wire depends on which one ran. Where the native
 * package has no build for the platform, zlib does everything.
 *
 * Why it matters: the protocol checksum covers 208 bytes a transfer and the log's body CRC about
 * 71, both on the engine thread. bench/crc-bench.ts times both at those sizes: with zlib 142 and
 * 51 ns a transfer, natively 27 and 8 (medians of one run; ×0.15–0.19 in every run).
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

type Crc32 = (data: Uint8Array, initial?: number) => number;

/** From this many bytes the native call's fixed cost is repaid with room to spare (crossover ~256). */
const NATIVE_FROM_BYTES = 1024;

function loadNative(): Crc32 | undefined {
  try {
    const native = createRequire(import.meta.url)('@node-rs/crc32') as { crc32: (input: Uint8Array, initialState?: number) => number };
    return typeof native.crc32 === 'function' ? native.crc32 : undefined;
  } catch {
    return undefined; // no build for this platform: zlib alone, the same checksums, slower
  }
}

const native = loadNative();

/** Whether the native implementation loaded (reported in `walletd serve`'s ready line). */
export const crc32Native = native !== undefined;

/** CRC-32 of `data`, continuing from `initial` (a previous result); empty data: see checked-file.ts. */
export function crc32(data: Uint8Array, initial = 0): number {
  if (native !== undefined && data.length >= NATIVE_FROM_BYTES) return native(data, initial);
  return zlibCrc32(data, initial);
}
