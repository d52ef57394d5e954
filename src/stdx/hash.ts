/**
 * MurmurHash3-style hashes (x86 32- and 128-bit rounds), written from the public algorithm
 * description, specialised for ids stored zero-padded in fixed fields: the input is read in
 * whole words/blocks, so the caller guarantees zero bytes after `length` up to the next
 * multiple of 4 (hash32Words) or 16 (hash128Words). Everything stays in int32 arithmetic,
 * which V8 keeps unboxed. Deterministic on every machine; not cryptographic (the log's tamper
 * evidence is SHA-256 or BLAKE2b, src/log/frame.ts).
 */
const C1 = 0x239b961b | 0;
const C2 = 0xab0e9789 | 0;
const C3 = 0x38b34ae5 | 0;
const C4 = 0xa1e38b93 | 0;
const M32_1 = 0xcc9e2d51 | 0;
const M32_2 = 0x1b873593 | 0;
const ADD1 = 0x561ccd1b | 0;
const ADD2 = 0x0bcaa747 | 0;
const ADD3 = 0x96cd1c35 | 0;
const ADD4 = 0x32ac3b17 | 0;
const ADD32 = 0xe6546b64 | 0;
const F1 = 0x85ebca6b | 0;
const F2 = 0xc2b2ae35 | 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** MurmurHash3's 32-bit finalisation (fmix32), as a signed int32. */
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, F1);
  h ^= h >>> 13;
  h = Math.imul(h, F2);
  return h ^ (h >>> 16);
}

/** MurmurHash3 x86_128's finalisation: mixes the four lanes and the length into out[0..3]. */
function finish128(h1: number, h2: number, h3: number, h4: number, length: number, out: Uint32Array): void {
  h1 ^= length;
  h2 ^= length;
  h3 ^= length;
  h4 ^= length;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  out[0] = h1;
  out[1] = h2;
  out[2] = h3;
  out[3] = h4;
}

/**
 * Hashes of an id of `length` bytes held zero-padded in 32-bit words from `wordOffset` (a record
 * field or a padded scratch): whole words (32-bit) or whole 16-byte blocks (128-bit) are read,
 * so the padding must be zero.
 */
export function hash32Words(words: Int32Array, wordOffset: number, length: number, seed: number): number {
  let h = seed | 0;
  const end = wordOffset + ((length + 3) >>> 2);
  for (let at = wordOffset; at < end; at++) {
    let k = Math.imul(words[at]!, M32_1);
    k = Math.imul(rotl(k, 15), M32_2);
    h ^= k;
    h = (Math.imul(rotl(h, 13), 5) + ADD32) | 0;
  }
  return fmix(h ^ length) >>> 0;
}

export function hash128Words(words: Int32Array, wordOffset: number, length: number, out: Uint32Array, seed: number): void {
  let h1 = seed | 0;
  let h2 = seed | 0;
  let h3 = seed | 0;
  let h4 = seed | 0;
  const end = wordOffset + (((length + 15) & ~15) >>> 2);
  for (let at = wordOffset; at < end; at += 4) {
    h1 ^= Math.imul(rotl(Math.imul(words[at]!, C1), 15), C2);
    h1 = (Math.imul((rotl(h1, 19) + h2) | 0, 5) + ADD1) | 0;
    h2 ^= Math.imul(rotl(Math.imul(words[at + 1]!, C2), 16), C3);
    h2 = (Math.imul((rotl(h2, 17) + h3) | 0, 5) + ADD2) | 0;
    h3 ^= Math.imul(rotl(Math.imul(words[at + 2]!, C3), 17), C4);
    h3 = (Math.imul((rotl(h3, 15) + h4) | 0, 5) + ADD3) | 0;
    h4 ^= Math.imul(rotl(Math.imul(words[at + 3]!, C4), 18), C1);
    h4 = (Math.imul((rotl(h4, 13) + h1) | 0, 5) + ADD4) | 0;
  }
  finish128(h1, h2, h3, h4, length, out);
}

/** Word-based hashing relies on little-endian typed arrays, as on every x86-64 and ARM64 host. */
export const IS_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
