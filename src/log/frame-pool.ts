/**
 * Reusable memory for log frames. A frame is encoded into a buffer, written, and then never read
 * from memory again; allocating each one fresh put hundreds of MB a second of buffers outside
 * V8's heap, and V8 starts a full garbage collection for about every 64 MB of those. Frames are
 * taken from power-of-two size classes and given back once written.
 */
const CLASS_BYTES_MIN = 64 * 1024;
/** Buffers kept per size class; more given back are dropped (collected as before). */
const KEPT_PER_CLASS = 4;

export class FramePool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly owned = new WeakSet<ArrayBuffer>();

  /** A buffer of exactly `bytes` bytes (uninitialized), pooled when at least CLASS_BYTES_MIN. */
  take(bytes: number): Buffer {
    if (bytes < CLASS_BYTES_MIN) return Buffer.allocUnsafe(bytes);
    const capacity = classOf(bytes);
    const reused = this.free.get(capacity)?.pop();
    const memory = reused ?? new ArrayBuffer(capacity);
    if (reused === undefined) this.owned.add(memory);
    return Buffer.from(memory, 0, bytes);
  }

  /** Gives back a buffer from take() that nothing reads or writes any more; others are ignored. */
  give(frame: Buffer): void {
    const memory = frame.buffer;
    if (!(memory instanceof ArrayBuffer) || !this.owned.has(memory)) return;
    let list = this.free.get(memory.byteLength);
    if (list === undefined) {
      list = [];
      this.free.set(memory.byteLength, list);
    }
    if (list.length < KEPT_PER_CLASS && !list.includes(memory)) list.push(memory);
  }

  /** Bytes held for reuse (tests). */
  get keptBytes(): number {
    let total = 0;
    for (const list of this.free.values()) for (const memory of list) total += memory.byteLength;
    return total;
  }
}

function classOf(bytes: number): number {
  let capacity = CLASS_BYTES_MIN;
  while (capacity < bytes) capacity *= 2;
  return capacity;
}
