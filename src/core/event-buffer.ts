/**
 * A growable byte buffer that events are encoded into before the log frames them. Pure memory:
 * the core writes facts here, the engine decides when they reach the disk.
 */
import { assert } from '../stdx/assert.js';

export const EVENT_BUFFER_BYTES_MAX = 256 * 1024 * 1024;

export class EventBuffer {
  bytes: Buffer;
  /** DataView over `bytes`, for 64-bit integers without BigInt shifting in JavaScript. */
  view: DataView;
  length = 0;
  /** Offsets of each event from the start of the buffer, for the frame's offset table. */
  offsets: Uint32Array;
  count = 0;

  constructor(initialBytes = 1 << 20, initialEvents = 1 << 14) {
    this.bytes = Buffer.alloc(initialBytes);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length);
    this.offsets = new Uint32Array(initialEvents);
  }

  /** Makes room for an event of up to `bytes` bytes and returns where it starts. */
  begin(bytes: number): number {
    if (this.length + bytes > this.bytes.length) this.growBytes(this.length + bytes);
    if (this.count === this.offsets.length) {
      const offsets = new Uint32Array(this.offsets.length * 2);
      offsets.set(this.offsets);
      this.offsets = offsets;
    }
    this.offsets[this.count] = this.length;
    return this.length;
  }

  /** Completes the event begun last, `bytes` long. */
  commit(bytes: number): void {
    this.length += bytes;
    this.count++;
  }

  reset(): void {
    this.length = 0;
    this.count = 0;
  }

  private growBytes(needed: number): void {
    assert(needed <= EVENT_BUFFER_BYTES_MAX, 'event buffer over its limit');
    const next = Buffer.alloc(Math.min(EVENT_BUFFER_BYTES_MAX, Math.max(needed, this.bytes.length * 2)));
    this.bytes.copy(next, 0, 0, this.length);
    this.bytes = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.length);
  }
}
