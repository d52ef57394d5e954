/**
 * Typed arrays over SharedArrayBuffers: for state another thread reads while its one writer goes
 * on (the prepare worker's id lookups, a snapshot worker's reads of ids and transaction slots).
 * Zeroed, like any new typed array.
 */
export function sharedInt32(length: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(length * 4));
}

export function sharedUint32(length: number): Uint32Array {
  return new Uint32Array(new SharedArrayBuffer(length * 4));
}

export function sharedUint8(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}
