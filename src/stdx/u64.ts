/**
 * u64 little-endian fields holding JavaScript numbers: sequences, indices and times stay below
 * 2^53, so two 32-bit halves carry them exactly without a BigInt. The caller guarantees a safe
 * non-negative integer (the log and protocol writers check where input is untrusted).
 */
const TWO_POW_32 = 0x1_0000_0000;

export function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % TWO_POW_32, true);
  view.setUint32(at + 4, Math.floor(value / TWO_POW_32), true);
}

/** Exact below 2^53; larger values lose precision (no writer here produces them). */
export function getU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_POW_32;
}
