/**
 * Reusable memory for log frames. A frame is encoded into a buffer, written, and then never read
 * from memory again; allocating each one fresh put hundreds of MB a second of buffers outside
 * V8's heap, and V8 starts a full garbage collection for about every 64 MB of those. Frames are
 * taken from power-of-two size classes and given back once durable. The memory is shared, so
 * the log writer's thread reads a frame where it was encoded (writer.ts).
 */
const CLASS_BYTES_MIN = 64 * 1024;
/** Buffers kept per size class; more given back are dropped (collected as before). */
const KEPT_PER_CLASS = 4;
/**
 * Bytes kept in all classes together. The largest frame is about 33 MB (its class 64 MiB), so
 * four per class alone would allow about 500 MiB held at rest; this bound keeps the classes
 * in use (a full batch's frame is about 1 MB) and drops what a rare huge frame leaves.
 */
export const FRAME_POOL_KEPT_BYTES_MAX = 64 * 1024 * 1024;

export class FramePool {
  private readonly free = new Map<number, SharedArrayBuffer[]>();
  private readonly owned = new WeakSet<SharedArrayBuffer>();
  private kept = 0;

  /** Bytes held for reuse. */
  get keptBytes(): number {
    return this.kept;
  }

  /** A buffer of exactly `bytes` bytes (uninitialized), pooled when at least CLASS_BYTES_MIN. */
  take(bytes: number): Buffer {
    if (bytes < CLASS_BYTES_MIN) return Buffer.allocUnsafe(bytes);
    const capacity = classOf(bytes);
    const reused = this.free.get(capacity)?.pop();
    const memory = reused ?? new SharedArrayBuffer(capacity);
    if (reused === undefined) this.owned.add(memory);
    else this.kept -= capacity;
    return Buffer.from(memory, 0, bytes);
  }

  /** Gives back a buffer from take() that nothing reads or writes any more; others are ignored. */
  give(frame: Buffer): void {
    const memory = frame.buffer;
    if (!(memory instanceof SharedArrayBuffer) || !this.owned.has(memory)) return;
    let list = this.free.get(memory.byteLength);
    if (list === undefined) {
      list = [];
      this.free.set(memory.byteLength, list);
    }
    if (list.length >= KEPT_PER_CLASS || this.kept + memory.byteLength > FRAME_POOL_KEPT_BYTES_MAX || list.includes(memory)) return;
    list.push(memory);
    this.kept += memory.byteLength;
  }
}

function classOf(bytes: number): number {
  let capacity = CLASS_BYTES_MIN;
  while (capacity < bytes) capacity *= 2;
  return capacity;
}
