/**
 * Remembers every logged transaction outcome forever, keyed by a 96-bit fingerprint of the
 * transaction id, in 24 bytes per slot:
 *
 * | word | contents                                                        |
 * |------|-----------------------------------------------------------------|
 * | 0..2 | 96-bit id fingerprint (MurmurHash3 x86_128 words 0..2)          |
 * | 3    | content fingerprint, low 32 bits                                |
 * | 4    | sequence, low 32 bits                                           |
 * | 5    | sequence bits 32..47 · result wire code (8 bits) · content 8 bits |
 *
 * A slot is empty when its sequence is 0 (logged outcomes start at 1). With the table grown
 * at 70% load, a remembered id costs 24 / load ≈ 34–69 bytes. Collisions: two distinct ids
 * share a fingerprint with probability ≈ n²/2^97 (6·10⁻¹² at a billion ids); lookups that
 * return details (GET /v1/transfers) re-check the full id read from the log. A retry with a
 * different body is told apart by the 40-bit content fingerprint (a false match: 2⁻⁴⁰).
 */
import { assert } from '../stdx/assert.js';

const WORDS_PER_SLOT = 6;
const SLOTS_INITIAL = 1 << 12;
const LOAD_MAX_PERCENT = 70;
export const SEQUENCE_MAX = 2 ** 48 - 1;
export const TXN_TABLE_ENTRIES_MAX = 2 ** 31;

export type TxnLookup = { sequence: number; code: number; contentMatches: boolean };

export class TxnTable {
  count = 0;
  private slotsTotal: number;
  private words: Uint32Array;

  /**
   * `expectedEntries` sizes the table up front: growing rehashes every entry at once, a pause
   * proportional to the table (measured: 1.8 s at 5.9M ids, 3.0 s at 11.7M), so size it for the expected load.
   */
  constructor(expectedEntries = 0) {
    let slots = SLOTS_INITIAL;
    while (expectedEntries * 100 > slots * LOAD_MAX_PERCENT) slots *= 2;
    this.slotsTotal = slots;
    this.words = new Uint32Array(slots * WORDS_PER_SLOT);
  }

  /**
   * Slot index holding this key (≥ 0), or, when absent, −(the empty slot where it would go) − 1,
   * so an insert right after a miss can skip probing again (insertAfterMiss).
   */
  find(k0: number, k1: number, k2: number): number {
    const words = this.words;
    const mask = this.slotsTotal - 1;
    for (let slot = k0 & mask; ; slot = (slot + 1) & mask) {
      const base = slot * WORDS_PER_SLOT;
      if (words[base + 4] === 0 && words[base + 5] === 0) return -slot - 1;
      if (words[base] === k0 && words[base + 1] === k1 && words[base + 2] === k2) return slot;
    }
  }

  sequenceAt(slot: number): number {
    const base = slot * WORDS_PER_SLOT;
    return (this.words[base + 5]! & 0xffff) * 2 ** 32 + this.words[base + 4]!;
  }

  codeAt(slot: number): number {
    return (this.words[slot * WORDS_PER_SLOT + 5]! >>> 16) & 0xff;
  }

  contentMatches(slot: number, content0: number, content1: number): boolean {
    const base = slot * WORDS_PER_SLOT;
    return this.words[base + 3] === content0 && this.words[base + 5]! >>> 24 === (content1 & 0xff);
  }

  /** Remembers a new outcome; the key must be absent. */
  insert(k0: number, k1: number, k2: number, content0: number, content1: number, sequence: number, code: number): void {
    assert(sequence >= 1 && sequence <= SEQUENCE_MAX, 'sequence out of range');
    assert(code >= 0 && code <= 0xff, 'code out of range');
    assert(this.count < TXN_TABLE_ENTRIES_MAX, 'transaction table full');
    if ((this.count + 1) * 100 > this.slotsTotal * LOAD_MAX_PERCENT) this.grow();
    this.count++;
    this.place(k0, k1, k2, content0, (content1 & 0xff) >>> 0, sequence, code);
  }

  /**
   * Inserts a key that `find` just reported absent as `missResult`, with no insert in between:
   * the slot is reused unless the table must grow first.
   */
  insertAfterMiss(missResult: number, k0: number, k1: number, k2: number, content0: number, content1: number, sequence: number, code: number): void {
    assert(missResult < 0, 'insertAfterMiss needs a miss');
    if ((this.count + 1) * 100 > this.slotsTotal * LOAD_MAX_PERCENT) {
      this.insert(k0, k1, k2, content0, content1, sequence, code);
      return;
    }
    assert(sequence >= 1 && sequence <= SEQUENCE_MAX, 'sequence out of range');
    const base = (-missResult - 1) * WORDS_PER_SLOT;
    assert(this.words[base + 4] === 0 && this.words[base + 5] === 0, 'slot taken since the miss');
    this.count++;
    this.writeSlot(base, k0, k1, k2, content0, (content1 & 0xff) >>> 0, sequence, code);
  }

  memoryBytes(): number {
    return this.words.byteLength;
  }



  /** The raw slot words (snapshots): restoring them restores the exact table. */
  rawWords(): Uint32Array {
    return this.words;
  }

  /** Occupied slots only, back to back (6 words each), in slot order: what snapshots store. */
  compactEntries(): Uint32Array {
    const entries = new Uint32Array(this.count * WORDS_PER_SLOT);
    const words = this.words;
    let at = 0;
    for (let base = 0; base < words.length; base += WORDS_PER_SLOT) {
      if (words[base + 4] === 0 && words[base + 5] === 0) continue;
      // A word loop, not entries.set(words.subarray(...)): a subarray per entry was most of the time.
      for (let i = 0; i < WORDS_PER_SLOT; i++) entries[at + i] = words[base + i]!;
      at += WORDS_PER_SLOT;
    }
    assert(at === entries.length, 'txn table count does not match its occupied slots');
    return entries;
  }

  get capacitySlots(): number {
    return this.slotsTotal;
  }

  /** Rebuilds a table of `slotsTotal` slots from compactEntries() output. */
  static fromEntries(entries: Uint32Array, slotsTotal: number): TxnTable {
    assert(entries.length % WORDS_PER_SLOT === 0, 'txn entries not a whole number of slots');
    assert((slotsTotal & (slotsTotal - 1)) === 0 && slotsTotal >= SLOTS_INITIAL, 'txn table size not a power of two');
    const count = entries.length / WORDS_PER_SLOT;
    assert(count * 100 <= slotsTotal * LOAD_MAX_PERCENT, 'txn table too small for its entries');
    const table = new TxnTable();
    table.slotsTotal = slotsTotal;
    table.words = new Uint32Array(slotsTotal * WORDS_PER_SLOT);
    table.count = count;
    for (let base = 0; base < entries.length; base += WORDS_PER_SLOT) {
      const high = entries[base + 5]!;
      const sequence = (high & 0xffff) * 2 ** 32 + entries[base + 4]!;
      table.place(entries[base]!, entries[base + 1]!, entries[base + 2]!, entries[base + 3]!, high >>> 24, sequence, (high >>> 16) & 0xff);
    }
    return table;
  }



  private place(k0: number, k1: number, k2: number, content0: number, contentHigh: number, sequence: number, code: number): void {
    const words = this.words;
    const mask = this.slotsTotal - 1;
    let slot = k0 & mask;
    while (words[slot * WORDS_PER_SLOT + 4] !== 0 || words[slot * WORDS_PER_SLOT + 5] !== 0) slot = (slot + 1) & mask;
    this.writeSlot(slot * WORDS_PER_SLOT, k0, k1, k2, content0, contentHigh, sequence, code);
  }

  private writeSlot(base: number, k0: number, k1: number, k2: number, content0: number, contentHigh: number, sequence: number, code: number): void {
    const words = this.words;
    words[base] = k0;
    words[base + 1] = k1;
    words[base + 2] = k2;
    words[base + 3] = content0;
    words[base + 4] = sequence % 2 ** 32;
    words[base + 5] = (Math.floor(sequence / 2 ** 32) | (code << 16) | (contentHigh << 24)) >>> 0;
  }

  private grow(): void {
    const old = this.words;
    const oldSlots = this.slotsTotal;
    this.slotsTotal = oldSlots * 2;
    this.words = new Uint32Array(this.slotsTotal * WORDS_PER_SLOT);
    for (let slot = 0; slot < oldSlots; slot++) {
      const base = slot * WORDS_PER_SLOT;
      const high = old[base + 5]!;
      if (old[base + 4] === 0 && high === 0) continue;
      const sequence = (high & 0xffff) * 2 ** 32 + old[base + 4]!;
      this.place(old[base]!, old[base + 1]!, old[base + 2]!, old[base + 3]!, high >>> 24, sequence, (high >>> 16) & 0xff);
    }
  }
}

/**
 * An order-independent fold of every occupied slot (key, content, sequence, code) into four
 * 32-bit lanes: equal for equal contents whatever the table's capacity, layout or history, and
 * the same for the live slots or a compact copy of them (used by the state digest).
 */
export function foldTxnWords(words: Uint32Array): Uint32Array {
  const lanes = new Uint32Array(4);
  for (let base = 0; base < words.length; base += WORDS_PER_SLOT) {
    if (words[base + 4] === 0 && words[base + 5] === 0) continue;
    for (let lane = 0; lane < 4; lane++) {
      let h = Math.imul(lane + 1, 0x9e3779b9);
      for (let i = 0; i < WORDS_PER_SLOT; i++) h = Math.imul(h ^ words[base + i]!, 0x85ebca6b) ^ (h >>> 13);
      lanes[lane] = (lanes[lane]! + (h ^ (h >>> 16))) >>> 0;
    }
  }
  return lanes;
}
