/**
 * Interns ids (1–64 bytes) into dense indices 0, 1, 2, … in order of insertion.
 *
 * Built for a lookup to touch as few cache lines as possible: each slot holds the id's hash,
 * its index, where its bytes are and its length (16 bytes), so a probe reads one slot and then
 * compares the id word by word against an arena where every id is zero-padded to whole 32-bit
 * words. Lookups take ids as 32-bit words (a record field, or a padded scratch), never strings.
 * Per id: 16 bytes / load (slots grown at 75% load: 21–43 bytes) + the padded id + 5 bytes.
 * Deterministic: the same insertions in the same order give the same layout on any machine.
 *
 * Shared with one reader thread (IdTableReader, the engine's prepare worker): slots and arena
 * live in SharedArrayBuffers. This table is the only writer. A slot's entry word is stored last
 * (Atomics.store) after its other words and the id's arena words, and readers load it with
 * Atomics.load, so a reader that sees an entry sees the id it names. Ids are never removed nor
 * moved within a buffer; growth copies into new buffers and then tells the reader
 * (onBuffersReplaced), which goes on with the old ones until then: it may miss the newest ids,
 * never find a wrong one.
 */
import { assert } from '../stdx/assert.js';
import { grownCapacity } from '../stdx/capacity.js';
import { hash32Words } from '../stdx/hash.js';
import { sharedInt32, sharedUint8 } from '../stdx/shared-memory.js';
import { ID_BYTES_MAX } from './ids.js';

const SLOT_INTS = 4;
const SLOTS_INITIAL = 1 << 10;
const ARENA_WORDS_INITIAL = 1 << 12;
const ID_WORDS_MAX = ID_BYTES_MAX / 4;
const HASH_SEED = 0x9747b28c;
/**
 * Grow at 75% load: four 16-byte slots share a cache line, so a probe run of a few slots
 * usually costs one miss, and at 10M accounts this halves the slots' memory against 50%.
 */
const LOAD_NUMERATOR = 3;
const LOAD_DENOMINATOR = 4;
export const ID_TABLE_ENTRIES_MAX = 1 << 30;

/** What a reader on another thread needs: the slots (`slotsTotal` of them) and the arena. */
export type IdTableBuffers = Readonly<{ slots: Int32Array; slotsTotal: number; arena: Int32Array }>;

/** Index of the id held as zero-padded words at `wordOffset` in the given table buffers, or -1. */
function findIn(slots: Int32Array, slotsTotal: number, arena: Int32Array, words: Int32Array, wordOffset: number, length: number, hash: number): number {
  const mask = slotsTotal - 1;
  const idWords = (length + 3) >>> 2;
  for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
    const at = slot * SLOT_INTS;
    const entry = Atomics.load(slots, at + 1);
    if (entry === 0) return -1;
    if (slots[at] === (hash | 0) && slots[at + 3] === length && wordsEqual(arena, slots[at + 2]!, words, wordOffset, idWords)) return entry - 1;
  }
}

/** A reader's arena may predate ids the slots already name: words past its end never match. */
function wordsEqual(arena: Int32Array, arenaOffset: number, words: Int32Array, wordOffset: number, idWords: number): boolean {
  for (let i = 0; i < idWords; i++) {
    if (arena[arenaOffset + i] !== words[wordOffset + i]) return false;
  }
  return true;
}

/** Read-only lookups on another thread's IdTable (see the header for what it may miss). */
export class IdTableReader {
  private buffers: IdTableBuffers;

  constructor(buffers: IdTableBuffers) {
    this.buffers = buffers;
  }

  replaceBuffers(buffers: IdTableBuffers): void {
    this.buffers = buffers;
  }

  /** Index of the id, or -1 when absent or too new to be seen yet. */
  find(words: Int32Array, wordOffset: number, length: number, hash: number): number {
    const { slots, slotsTotal, arena } = this.buffers;
    return findIn(slots, slotsTotal, arena, words, wordOffset, length, hash);
  }

  /** Reads the first slot a lookup of `hash` probes (a prefetch; see IdTable.touchSlot). */
  touchSlot(hash: number): number {
    return this.buffers.slots[(hash & (this.buffers.slotsTotal - 1)) * SLOT_INTS + 1]!;
  }

  /** After touchSlot: reads the arena word a lookup ending at that slot compares first. */
  touchEntry(hash: number): number {
    const { slots, slotsTotal, arena } = this.buffers;
    const at = (hash & (slotsTotal - 1)) * SLOT_INTS;
    return slots[at + 1] === 0 ? 0 : arena[slots[at + 2]!] ?? 0;
  }
}

export class IdTable {
  count = 0;
  private slotsTotal = SLOTS_INITIAL;
  private slots = sharedInt32(SLOTS_INITIAL * SLOT_INTS);
  private arena = sharedInt32(ARENA_WORDS_INITIAL);
  private arenaWords = 0;
  private wordOffsets = new Uint32Array(SLOTS_INITIAL / 2);
  /** Shared too, and only appended to: a snapshot's worker reads a prefix of it while ids are added. */
  private lengths = sharedUint8(SLOTS_INITIAL / 2);
  /** A zeroed 64-byte scratch for ids given as strings or unpadded bytes. */
  private readonly scratchWords = new Int32Array(ID_WORDS_MAX);
  private readonly scratchBytes = new Uint8Array(this.scratchWords.buffer);
  /** Called after the slots or the arena moved to new buffers (a reader must be given them). */
  onBuffersReplaced: (() => void) | undefined = undefined;

  /** Hash of an id held as zero-padded words at `wordOffset`. */
  static hashOf(words: Int32Array, wordOffset: number, length: number): number {
    return hash32Words(words, wordOffset, length, HASH_SEED);
  }

  /** Index of the id held as zero-padded words at `wordOffset`, or -1. */
  find(words: Int32Array, wordOffset: number, length: number, hash: number): number {
    return findIn(this.slots, this.slotsTotal, this.arena, words, wordOffset, length, hash);
  }

  /** The current buffers, for an IdTableReader on another thread. */
  sharedBuffers(): IdTableBuffers {
    return { slots: this.slots, slotsTotal: this.slotsTotal, arena: this.arena };
  }

  /**
   * Prefetch, first step: reads the first slot a lookup of `hash` probes, so that many records'
   * cache misses can be in flight at once (see executeTransferBatch). The value only feeds a
   * checksum that keeps the read from being optimized away.
   */
  touchSlot(hash: number): number {
    return this.slots[(hash & (this.slotsTotal - 1)) * SLOT_INTS + 1]!;
  }

  /**
   * Prefetch, second step (after touchSlot): reads the arena word and `records` word that a
   * lookup ending at that first slot would compare and use.
   */
  touchEntry(hash: number, records: Int32Array, recordWords: number): number {
    const at = (hash & (this.slotsTotal - 1)) * SLOT_INTS;
    const entry = this.slots[at + 1]!;
    if (entry === 0) return 0;
    return this.arena[this.slots[at + 2]!]! ^ records[(entry - 1) * recordWords]!;
  }

  findString(id: string): number {
    if (id.length < 1 || id.length > ID_BYTES_MAX) return -1;
    this.padIntoScratch(id);
    return this.find(this.scratchWords, 0, id.length, IdTable.hashOf(this.scratchWords, 0, id.length));
  }

  /** Inserts an id (as zero-padded words) known to be absent; returns its new index. */
  insert(words: Int32Array, wordOffset: number, length: number, hash: number): number {
    assert(length >= 1 && length <= ID_BYTES_MAX, 'id length out of range');
    assert(this.count < ID_TABLE_ENTRIES_MAX, 'id table full');
    if ((this.count + 1) * LOAD_DENOMINATOR > this.slotsTotal * LOAD_NUMERATOR) this.growSlots();
    const index = this.count++;
    this.ensureEntryCapacity(index + 1);
    const idWords = (length + 3) >>> 2;
    this.ensureArenaCapacity(this.arenaWords + idWords);
    this.arena.set(words.subarray(wordOffset, wordOffset + idWords), this.arenaWords);
    this.wordOffsets[index] = this.arenaWords;
    this.lengths[index] = length;
    this.placeInSlots(hash, index, this.arenaWords, length);
    this.arenaWords += idWords;
    return index;
  }

  insertString(id: string): number {
    assert(id.length >= 1 && id.length <= ID_BYTES_MAX, 'id length out of range');
    this.padIntoScratch(id);
    return this.insert(this.scratchWords, 0, id.length, IdTable.hashOf(this.scratchWords, 0, id.length));
  }

  idOf(index: number): string {
    assert(index >= 0 && index < this.count, 'id index out of range');
    return Buffer.from(this.arena.buffer, this.wordOffsets[index]! * 4, this.lengths[index]!).toString('latin1');
  }

  /**
   * Prefetch for replay, first step: reads where the id of `index` is and its length. The value
   * only feeds a checksum that keeps the read from being optimized away.
   */
  touchIdPlace(index: number): number {
    return this.lengths[index]! ^ this.wordOffsets[index]!;
  }

  /** Prefetch for replay, second step (after touchIdPlace): reads the id's first and last words. */
  touchIdWords(index: number): number {
    const at = this.wordOffsets[index]!;
    return this.arena[at]! ^ this.arena[at + ((this.lengths[index]! - 1) >>> 2)]!;
  }

  /**
   * Copies the id of `index` as the arena holds it, zero-padded to whole words, into `target`
   * from word `at`; returns its length in bytes. Word copies, not a Buffer copy: replay calls
   * this twice a transfer.
   */
  copyIdWords(index: number, target: Int32Array, at: number): number {
    const length = this.lengths[index]!;
    const arena = this.arena;
    const from = this.wordOffsets[index]!;
    const words = (length + 3) >>> 2;
    for (let word = 0; word < words; word++) target[at + word] = arena[from + word]!;
    return length;
  }

  /** For snapshots: id lengths in index order and the padded arena they index into. */
  exportParts(): { lengths: Uint8Array; arena: Int32Array } {
    return { lengths: this.lengths.subarray(0, this.count), arena: this.arena.subarray(0, this.arenaWords) };
  }

  static fromParts(lengths: Uint8Array, arena: Int32Array): IdTable {
    const table = new IdTable();
    let wordOffset = 0;
    for (let index = 0; index < lengths.length; index++) {
      const length = lengths[index]!;
      table.insert(arena, wordOffset, length, IdTable.hashOf(arena, wordOffset, length));
      wordOffset += (length + 3) >>> 2;
    }
    assert(wordOffset === arena.length, 'id arena size does not match the id lengths');
    return table;
  }

  memoryBytes(): number {
    return this.slots.byteLength + this.arena.byteLength + this.wordOffsets.byteLength + this.lengths.byteLength;
  }

  private padIntoScratch(id: string): void {
    this.scratchWords.fill(0);
    for (let i = 0; i < id.length; i++) {
      const code = id.charCodeAt(i);
      assert(code < 0x100, 'id is not single-byte text');
      this.scratchBytes[i] = code;
    }
  }

  private placeInSlots(hash: number, index: number, arenaOffset: number, length: number): void {
    const slots = this.slots;
    const mask = this.slotsTotal - 1;
    let slot = hash & mask;
    while (slots[slot * SLOT_INTS + 1] !== 0) slot = (slot + 1) & mask;
    const at = slot * SLOT_INTS;
    slots[at] = hash;
    slots[at + 2] = arenaOffset;
    slots[at + 3] = length;
    Atomics.store(slots, at + 1, index + 1); // last: a reader that sees the entry sees the rest
  }

  private growSlots(): void {
    const old = this.slots;
    this.slotsTotal *= 2;
    this.slots = sharedInt32(this.slotsTotal * SLOT_INTS);
    // Re-place in index order (not slot order) so the layout depends only on the insertions.
    const hashOfIndex = new Int32Array(this.count);
    for (let at = 0; at < old.length; at += SLOT_INTS) {
      if (old[at + 1] !== 0) hashOfIndex[old[at + 1]! - 1] = old[at]!;
    }
    for (let index = 0; index < this.count; index++) {
      this.placeInSlots(hashOfIndex[index]!, index, this.wordOffsets[index]!, this.lengths[index]!);
    }
    this.onBuffersReplaced?.();
  }

  private ensureEntryCapacity(entries: number): void {
    if (entries <= this.lengths.length) return;
    const capacity = grownCapacity(this.lengths.length, entries);
    const wordOffsets = new Uint32Array(capacity);
    wordOffsets.set(this.wordOffsets);
    this.wordOffsets = wordOffsets;
    const lengths = sharedUint8(capacity);
    lengths.set(this.lengths);
    this.lengths = lengths;
  }

  private ensureArenaCapacity(words: number): void {
    if (words <= this.arena.length) return;
    const arena = sharedInt32(grownCapacity(this.arena.length, words));
    arena.set(this.arena);
    this.arena = arena;
    this.onBuffersReplaced?.();
  }
}
