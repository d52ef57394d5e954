/**
 * MurmurHash3 (x86 variants, 32- and 128-bit), written from the public algorithm description.
 * Used for in-memory hash tables and id fingerprints: fast in JavaScript (32-bit multiplies
 * with Math.imul), deterministic on every machine. Not a cryptographic hash: the log's
 * tamper evidence uses SHA-256.
 */
const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function word(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

/** 32-bit MurmurHash3 of bytes[offset, offset+length). */
export function hash32(bytes: Uint8Array, offset: number, length: number, seed = 0): number {
  let h = seed >>> 0;
  const blocksEnd = offset + (length & ~3);
  for (let at = offset; at < blocksEnd; at += 4) {
    let k = Math.imul(word(bytes, at), 0xcc9e2d51);
    k = Math.imul(rotl(k, 15), 0x1b873593);
    h ^= k;
    h = (Math.imul(rotl(h, 13), 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = length & 3;
  if (tail >= 3) k ^= bytes[blocksEnd + 2]! << 16;
  if (tail >= 2) k ^= bytes[blocksEnd + 1]! << 8;
  if (tail >= 1) {
    k ^= bytes[blocksEnd]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = Math.imul(rotl(k, 15), 0x1b873593);
    h ^= k;
  }
  return fmix(h ^ length);
}

/**
 * 128-bit MurmurHash3 (x86_128) of bytes[offset, offset+length), written into out[0..3] as
 * unsigned 32-bit words. `out` is caller-owned so the hot path allocates nothing.
 */
export function hash128(bytes: Uint8Array, offset: number, length: number, out: Uint32Array, seed = 0): void {
  let h1 = seed | 0;
  let h2 = seed | 0;
  let h3 = seed | 0;
  let h4 = seed | 0;
  const blocksEnd = offset + (length & ~15);
  for (let at = offset; at < blocksEnd; at += 16) {
    let k1 = word(bytes, at);
    let k2 = word(bytes, at + 4);
    let k3 = word(bytes, at + 8);
    let k4 = word(bytes, at + 12);
    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul(rotl(h1, 19) + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul(rotl(h2, 17) + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul(rotl(h3, 15) + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul(rotl(h4, 13) + h1, 5) + 0x32ac3b17) | 0;
  }
  const tailLength = length & 15;
  const tail = blocksEnd;
  let k1 = 0;
  let k2 = 0;
  let k3 = 0;
  let k4 = 0;
  for (let i = tailLength - 1; i >= 0; i--) {
    const byte = bytes[tail + i]!;
    if (i >= 12) k4 ^= byte << ((i - 12) * 8);
    else if (i >= 8) k3 ^= byte << ((i - 8) * 8);
    else if (i >= 4) k2 ^= byte << ((i - 4) * 8);
    else k1 ^= byte << (i * 8);
  }
  if (tailLength > 12) h4 ^= Math.imul(rotl(Math.imul(k4, C4), 18), C1);
  if (tailLength > 8) h3 ^= Math.imul(rotl(Math.imul(k3, C3), 17), C4);
  if (tailLength > 4) h2 ^= Math.imul(rotl(Math.imul(k2, C2), 16), C3);
  if (tailLength > 0) h1 ^= Math.imul(rotl(Math.imul(k1, C1), 15), C2);
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
  out[0] = h1 >>> 0;
  out[1] = h2 >>> 0;
  out[2] = h3 >>> 0;
  out[3] = h4 >>> 0;
}
