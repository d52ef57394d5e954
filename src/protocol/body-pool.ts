/**
 * Request bodies of the server, with a byte budget shared by all connections.
 *
 * A full transfer frame is 1.7 MB and stays alive until the engine has made it durable, so
 * large bodies come from a free list of slabs instead of a fresh allocation per frame, and
 * the bytes held by all connections together are capped: above the cap connections stop
 * reading (TCP pushes back on the clients) until bodies are released.
 */
import { assert } from '../stdx/assert.js';

/** Bodies up to this size come from Node's small-buffer pool; slabs would waste memory. */
const SMALL_BODY_BYTES_MAX = 64 * 1024;

export class BodyPool {
  readonly slabBytes: number;
  readonly bytesMax: number;
  private readonly slabsFreeMax: number;
  private readonly slabsFree: ArrayBuffer[] = [];
  private bytesInUseCount = 0;
  private readonly waiters = new Set<() => void>();

  constructor(options: Readonly<{ slabBytes: number; bytesMax: number; slabsFreeMax: number }>) {
    // A frame limit at or below SMALL_BODY_BYTES_MAX simply never uses slabs.
    assert(options.slabBytes > 0);
    assert(options.bytesMax >= options.slabBytes);
    this.slabBytes = options.slabBytes;
    this.bytesMax = options.bytesMax;
    this.slabsFreeMax = options.slabsFreeMax;
  }

  get bytesInUse(): number {
    return this.bytesInUseCount;
  }

  /** False while the budget is spent; readers wait with onRoom. One frame may overshoot it. */
  hasRoom(): boolean {
    return this.bytesInUseCount < this.bytesMax;
  }

  /** Calls `waiter` once, the next time a release leaves room. */
  onRoom(waiter: () => void): void {
    this.waiters.add(waiter);
  }

  allocate(bytes: number): Buffer {
    assert(bytes > 0 && bytes <= this.slabBytes, 'body size out of range');
    this.bytesInUseCount += bytes;
    if (bytes <= SMALL_BODY_BYTES_MAX) return Buffer.allocUnsafe(bytes);
    const slab = this.slabsFree.pop() ?? new ArrayBuffer(this.slabBytes);
    return Buffer.from(slab, 0, bytes);
  }

  /** Returns a body from allocate(); the caller must hold no reference to it afterwards. */
  release(body: Buffer): void {
    assert(this.bytesInUseCount >= body.length, 'released more than allocated');
    this.bytesInUseCount -= body.length;
    if (body.length > SMALL_BODY_BYTES_MAX) {
      assert(body.buffer.byteLength === this.slabBytes && body.byteOffset === 0, 'large body is not a slab');
      if (this.slabsFree.length < this.slabsFreeMax) this.slabsFree.push(body.buffer as ArrayBuffer);
    }
    if (this.waiters.size > 0 && this.hasRoom()) this.wakeWaiters();
  }

  private wakeWaiters(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const waiter of waiters) waiter();
  }
}
