/**
 * Interns byte-string ids (≤ 64 bytes) into dense indices 0, 1, 2, … in order of insertion.
 *
 * Open addressing with linear probing over an Int32Array of (index + 1), id bytes kept in one
 * growing arena, and a 32-bit hash per index so most probes compare one integer, not bytes.
 * Per id: 4 (hash) + 4 (offset) + 1 (length) bytes + the id bytes + 4–8 bytes of slots.
 * Deterministic: the same insertions in the same order give the same layout on any machine.
 */
import { assert } from '../stdx/assert.js';
import { hash32Padded, padId } from '../stdx/hash.js';
import { ID_BYTES_MAX } from './ids.js';

const SLOTS_INITIAL = 1 << 10;
const PADDED_SCRATCH = new Uint8Array(ID_BYTES_MAX);

/** The id in a zero-padded 64-byte scratch buffer (reused: valid until the next call). */
function padString(id: string): Buffer {
  const scratch = Buffer.from(PADDED_SCRATCH.buffer, PADDED_SCRATCH.byteOffset, ID_BYTES_MAX);
  scratch.fill(0);
  const written = scratch.write(id, 0, ID_BYTES_MAX, 'latin1');
  assert(written === id.length, 'id is not single-byte text');
  return scratch;
}
/** Grow when more than half the slots are used: keeps linear probes short. */
const LOAD_NUMERATOR = 1;
const LOAD_DENOMINATOR = 2;
export const ID_TABLE_ENTRIES_MAX = 1 << 30;

export class IdTable {
  count = 0;
  private slots = new Int32Array(SLOTS_INITIAL);
  private hashes = new Uint32Array(SLOTS_INITIAL / 2);
  private offsets = new Uint32Array(SLOTS_INITIAL / 2);
  private lengths = new Uint8Array(SLOTS_INITIAL / 2);
  private arena = new Uint8Array(SLOTS_INITIAL * 16);
  private arenaUsed = 0;

  /** Hash of an id followed by zero bytes up to the next multiple of 4 (a record field). */
  static hashOf(bytes: Uint8Array, offset: number, length: number): number {
    return hash32Padded(bytes, offset, length, 0x9747b28c);
  }

  /** Hash of an id with arbitrary bytes after it (copied to a padded scratch first). */
  static hashOfUnpadded(bytes: Uint8Array, offset: number, length: number): number {
    const padded = padId(bytes, offset, length, PADDED_SCRATCH);
    return IdTable.hashOf(padded, 0, length);
  }

  /** Index of the id at bytes[offset, offset+length), or -1. */
  find(bytes: Uint8Array, offset: number, length: number, hash: number): number {
    const mask = this.slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot]!;
      if (entry === 0) return -1;
      const index = entry - 1;
      if (this.hashes[index] === hash && this.equals(index, bytes, offset, length)) return index;
    }
  }

  findString(id: string): number {
    if (id.length < 1 || id.length > ID_BYTES_MAX) return -1;
    const bytes = padString(id);
    return this.find(bytes, 0, id.length, IdTable.hashOf(bytes, 0, id.length));
  }

  /** Inserts an id known to be absent; returns its new index. */
  insert(bytes: Uint8Array, offset: number, length: number, hash: number): number {
    assert(length >= 1 && length <= ID_BYTES_MAX, 'id length out of range');
    assert(this.count < ID_TABLE_ENTRIES_MAX, 'id table full');
    if ((this.count + 1) * LOAD_DENOMINATOR > this.slots.length * LOAD_NUMERATOR) this.growSlots();
    const index = this.count++;
    this.ensureEntryCapacity(index + 1);
    this.ensureArenaCapacity(this.arenaUsed + length);
    this.arena.set(bytes.subarray(offset, offset + length), this.arenaUsed);
    this.offsets[index] = this.arenaUsed;
    this.lengths[index] = length;
    this.hashes[index] = hash;
    this.arenaUsed += length;
    this.placeInSlots(index, hash);
    return index;
  }

  insertString(id: string): number {
    assert(id.length >= 1 && id.length <= ID_BYTES_MAX, 'id length out of range');
    const bytes = padString(id);
    return this.insert(bytes, 0, id.length, IdTable.hashOf(bytes, 0, id.length));
  }

  idOf(index: number): string {
    assert(index >= 0 && index < this.count, 'id index out of range');
    const start = this.offsets[index]!;
    return Buffer.from(this.arena.buffer, this.arena.byteOffset + start, this.lengths[index]!).toString('latin1');
  }

  /** Copies the id bytes of `index` into `target` at `at`; returns the length. */
  copyId(index: number, target: Uint8Array, at: number): number {
    const start = this.offsets[index]!;
    const length = this.lengths[index]!;
    target.set(this.arena.subarray(start, start + length), at);
    return length;
  }

  idBytes(index: number): Uint8Array {
    const start = this.offsets[index]!;
    return this.arena.subarray(start, start + this.lengths[index]!);
  }

  equals(index: number, bytes: Uint8Array, offset: number, length: number): boolean {
    if (this.lengths[index] !== length) return false;
    const arena = this.arena;
    const start = this.offsets[index]!;
    for (let i = 0; i < length; i++) {
      if (arena[start + i] !== bytes[offset + i]) return false;
    }
    return true;
  }

  /** Serialisable form for snapshots: ids in index order, as one arena plus lengths. */
  exportParts(): { lengths: Uint8Array; arena: Uint8Array } {
    return { lengths: this.lengths.subarray(0, this.count), arena: this.arena.subarray(0, this.arenaUsed) };
  }

  static fromParts(lengths: Uint8Array, arena: Uint8Array): IdTable {
    const table = new IdTable();
    let at = 0;
    for (let index = 0; index < lengths.length; index++) {
      const length = lengths[index]!;
      table.insert(arena, at, length, IdTable.hashOfUnpadded(arena, at, length));
      at += length;
    }
    assert(at === arena.length, 'id arena length does not match the id lengths');
    return table;
  }

  memoryBytes(): number {
    return this.slots.byteLength + this.hashes.byteLength + this.offsets.byteLength + this.lengths.byteLength + this.arena.byteLength;
  }

  private placeInSlots(index: number, hash: number): void {
    const mask = this.slots.length - 1;
    let slot = hash & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = index + 1;
  }

  private growSlots(): void {
    this.slots = new Int32Array(this.slots.length * 2);
    for (let index = 0; index < this.count; index++) this.placeInSlots(index, this.hashes[index]!);
  }

  private ensureEntryCapacity(entries: number): void {
    if (entries <= this.hashes.length) return;
    const capacity = Math.max(entries, this.hashes.length * 2);
    this.hashes = grow(this.hashes, new Uint32Array(capacity));
    this.offsets = grow(this.offsets, new Uint32Array(capacity));
    this.lengths = grow(this.lengths, new Uint8Array(capacity));
  }

  private ensureArenaCapacity(bytes: number): void {
    if (bytes <= this.arena.length) return;
    this.arena = grow(this.arena, new Uint8Array(Math.max(bytes, this.arena.length * 2)));
  }
}

export function grow<T extends { set(source: ArrayLike<number> | ArrayLike<bigint>): void }>(from: T, to: T): T {
  to.set(from as never);
  return to;
}
