/**
 * u64 little-endian fields holding JavaScript numbers: sequences, indices and times stay below
 * 2^53, so two 32-bit halves carry them exactly without a BigInt. The caller guarantees a safe
 * non-negative integer (the log and protocol writers check where input is untrusted).
 */
const TWO_POW_32 = 0x1_0000_0000;

/**
 * `>>> 0` is the low half (ToUint32 wraps modulo 2^32, exactly for a safe integer), and the
 * high half is then an exact division: no floating-point modulo, which V8 compiles to a call.
 * setU64 runs about three times per transfer, in the event and in the protocol answer.
 */
export function setU64(view: DataView, at: number, value: number): void {
  const low = value >>> 0;
  view.setUint32(at, low, true);
  view.setUint32(at + 4, (value - low) / TWO_POW_32, true);
}

/** Exact below 2^53; larger values lose precision (no writer here produces them). */
export function getU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_POW_32;
}
