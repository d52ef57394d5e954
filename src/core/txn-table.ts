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
 * at 70% load, a remembered id costs 24 / load ≈ 34–69 bytes (three times the slots are
 * allocated from 60% load until a growth is copied, below). Collisions: two distinct ids
 * share a fingerprint with probability ≈ n²/2^97 (6·10⁻¹² at a billion ids); lookups that
 * return details (GET /v1/transfers) re-check the full id read from the log. A retry with a
 * different body is told apart by the 40-bit content fingerprint (a false match: 2⁻⁴⁰).
 *
 * Growth is incremental: no insert pays for the whole table. From 60% load the array of twice
 * the slots is allocated and each insert writes one word of it, 512 bytes further each time, so
 * the kernel maps its pages (≈ 1 µs each) a few at a time rather than on the first random
 * inserts after the switch. At 70% load it becomes the array inserts go to; the old one stays,
 * read-only, and every insert copies the next MIGRATE_SLOTS_PER_INSERT old slots (in slot
 * order) into it, until all are copied and the old array is dropped: a growth from S slots ends
 * S/8 inserts later, 18% of the 0.7·S inserts before the next is due. While copying, a key is in
 * the new array or in an old slot not yet copied; a lookup that misses the new array also
 * probes the old one, unless the key's whole old probe run lies in the copied part.
 *
 * Measured (bench/txn-growth.ts, 12M random ids into a table that starts small, this 2-core
 * machine, other jobs running): rehashing everything at once, as before, stalled one insert for
 * 0.67–1.66 s at the growth at 11.7M ids (0.34 s at 5.9M), and the window of 131,072 inserts
 * holding it (the most one engine turn decides) took 0.75–1.25 s against ~70 ms on average.
 * Incrementally, the longest single insert was 2–10 ms (none at a growth: scheduler and JIT
 * noise) and the slowest 131,072-insert window 142–170 ms (preparing and copying the 805 MB
 * array); the 12M inserts took 6.0–6.7 s in all, against 5.9–7.4 s.
 *
 * Slot arrays live in shared memory so that a snapshot's worker can scan them (scanEntryPieces,
 * under a hold) while the engine goes on inserting: an occupied slot never changes, and inserts
 * only fill empty ones.
 */
import { assert } from '../stdx/assert.js';
import { sharedUint32 } from '../stdx/shared-memory.js';

const WORDS_PER_SLOT = 6;
/** Words of one entry wherever entries leave the table (snapshot copies, journal, chunk files). */
export const TXN_ENTRY_WORDS = WORDS_PER_SLOT;
const SLOTS_INITIAL = 1 << 12;
const LOAD_MAX_PERCENT = 70;
/** From this load the next array is allocated and its pages touched (PREPARE_WORDS_PER_INSERT per insert). */
const LOAD_PREPARE_PERCENT = 60;
/** 512 bytes: 12·S words in the 0.1·S inserts from 60% to 70% load; at most one new page per insert. */
const PREPARE_WORDS_PER_INSERT = 128;
/**
 * Old slots copied per insert while growing: ≥ 2 so that copying ends before the new table
 * (twice the slots) reaches 70% load; small, because the engine decides up to 131,072 records in
 * one event-loop turn: that turn copies at most 8 × 131,072 slots (24 MB), where a few hundred
 * per insert would copy a table of up to tens of millions of slots in one turn, as at once.
 */
export const MIGRATE_SLOTS_PER_INSERT = 8;
export const SEQUENCE_MAX = 2 ** 48 - 1;
/**
 * The most slots one array can have: a typed array holds at most 2^32 − 1 elements on Node 20,
 * and 6 words per slot puts the largest power of two at 2^29 slots (a 12 GiB array).
 */
export const TXN_TABLE_SLOTS_MAX = 2 ** 29;
/**
 * The most remembered ids (322,122,547): at this count a table of TXN_TABLE_SLOTS_MAX slots
 * would start preparing its next array, which cannot exist. Above it inserts are refused
 * rather than crashing on an impossible allocation; expectedTransactions is bounded by it.
 */
export const TXN_TABLE_ENTRIES_MAX = Math.floor((TXN_TABLE_SLOTS_MAX * LOAD_PREPARE_PERCENT) / 100);
const NO_WORDS = new Uint32Array(0);

export class TxnTable {
  count = 0;
  private slotsTotal: number;
  private words: Uint32Array;
  /** While growing: the previous array (read-only), else NO_WORDS. */
  private oldWords: Uint32Array = NO_WORDS;
  /** While growing: the previous array's slot count, else 0 (the "growing?" test). */
  private oldSlots = 0;
  /** Old slots [0, oldCopied) are copied into `words`. */
  private oldCopied = 0;
  /** Old slot oldClear − 1 is empty and copied (or oldClear is 0): a probe run starting below it lies in the copied part. */
  private oldClear = 0;
  /** Old slots copied by all growths so far (a test hook for the per-insert bound). */
  private copiedTotal = 0;
  /** From 60% load: the next array, touched up to word nextTouched; else NO_WORDS. */
  private next: Uint32Array = NO_WORDS;
  private nextTouched = 0;
  /** Inserts leaving `count` above this do growth work (preparing or copying): −1 while copying. */
  private workAbove = 0;
  /** A snapshot's scan in progress (holdEntries): no entry may move until it ends. */
  private entriesHold: EntriesHold | undefined;
  /** New entries since a sequence, for the next snapshot (startJournal), else undefined. */
  private journal: TxnJournal | undefined;

  /**
   * `expectedEntries` sizes the table up front, so that it never grows below that many entries
   * (growth is incremental, but both arrays are alive while it runs and lookups probe both).
   */
  constructor(expectedEntries = 0) {
    assert(Number.isSafeInteger(expectedEntries) && expectedEntries >= 0 && expectedEntries <= TXN_TABLE_ENTRIES_MAX, `expected transactions must be 0 to ${TXN_TABLE_ENTRIES_MAX}`);
    const slots = TxnTable.slotsFor(expectedEntries);
    this.slotsTotal = slots;
    this.words = sharedUint32(slots * WORDS_PER_SLOT);
    this.workAbove = prepareAbove(slots);
  }

  /** The slots a table needs to hold `entries` without growing. */
  static slotsFor(entries: number): number {
    let slots = SLOTS_INITIAL;
    while (entries * 100 > slots * LOAD_MAX_PERCENT) slots *= 2;
    return slots;
  }

  /**
   * Slot holding this key (≥ 0), or, when absent, −(the empty slot where it would go) − 1, so an
   * insert right after a miss can skip probing again (insertAfterMiss). While growing, a key not
   * yet copied is reported as capacitySlots + its old slot; a slot number is valid until the next
   * insert.
   */
  find(k0: number, k1: number, k2: number): number {
    const words = this.words;
    const mask = this.slotsTotal - 1;
    for (let slot = k0 & mask; ; slot = (slot + 1) & mask) {
      const base = slot * WORDS_PER_SLOT;
      if (words[base + 4] === 0 && words[base + 5] === 0) return this.oldSlots === 0 ? -slot - 1 : this.findOld(k0, k1, k2, slot);
      if (words[base] === k0 && words[base + 1] === k1 && words[base + 2] === k2) return slot;
    }
  }

  /**
   * Prefetch: reads the first slot a lookup of this key probes (see executeTransferBatch), so
   * many keys' cache misses are in flight together. The value only feeds a checksum.
   */
  touch(k0: number): number {
    return this.words[(k0 & (this.slotsTotal - 1)) * WORDS_PER_SLOT + 4]!;
  }

  sequenceAt(slot: number): number {
    let words = this.words;
    if (slot >= this.slotsTotal) {
      words = this.oldWords;
      slot -= this.slotsTotal;
    }
    const base = slot * WORDS_PER_SLOT;
    return (words[base + 5]! & 0xffff) * 2 ** 32 + words[base + 4]!;
  }

  codeAt(slot: number): number {
    let words = this.words;
    if (slot >= this.slotsTotal) {
      words = this.oldWords;
      slot -= this.slotsTotal;
    }
    return (words[slot * WORDS_PER_SLOT + 5]! >>> 16) & 0xff;
  }

  contentMatches(slot: number, content0: number, content1: number): boolean {
    let words = this.words;
    if (slot >= this.slotsTotal) {
      words = this.oldWords;
      slot -= this.slotsTotal;
    }
    const base = slot * WORDS_PER_SLOT;
    return words[base + 3] === content0 && words[base + 5]! >>> 24 === (content1 & 0xff);
  }

  /** Remembers a new outcome; the key must be absent. */
  insert(k0: number, k1: number, k2: number, content0: number, content1: number, sequence: number, code: number): void {
    this.checkInsert(sequence, code);
    if ((this.count + 1) * 100 > this.slotsTotal * LOAD_MAX_PERCENT) this.startGrowth();
    this.count++;
    const base = this.place(k0, k1, k2, content0, (content1 & 0xff) >>> 0, sequence, code);
    if (this.journal !== undefined) this.journalAppend(this.words, base);
    if (this.count > this.workAbove) this.growthWork();
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
    this.checkInsert(sequence, code);
    const base = (-missResult - 1) * WORDS_PER_SLOT;
    assert(this.words[base + 4] === 0 && this.words[base + 5] === 0, 'slot taken since the miss');
    this.count++;
    // The new key first: copying old slots may fill the slot the miss named.
    this.writeSlot(base, k0, k1, k2, content0, (content1 & 0xff) >>> 0, sequence, code);
    if (this.journal !== undefined) this.journalAppend(this.words, base);
    if (this.count > this.workAbove) this.growthWork();
  }

  /** Bytes allocated, the next array's included from 60% load (its pages are mapped gradually). */
  memoryBytes(): number {
    return this.words.byteLength + this.oldWords.byteLength + this.next.byteLength;
  }

  /** Whether a growth is still being copied (both arrays alive, lookups may probe both). */
  get growing(): boolean {
    return this.oldSlots !== 0;
  }

  /** Old slots copied by every growth so far (tests check the per-insert bound with it). */
  get copiedSlots(): number {
    return this.copiedTotal;
  }

  /**
   * Words whose occupied slots are exactly the table's entries, for foldTxnWords (the state
   * digest): the live slot array (no copy), or while a growth is being copied, compactEntries().
   */
  digestWords(): Uint32Array {
    return this.oldSlots === 0 ? this.words : this.compactEntries();
  }

  /**
   * Holds the entries where they are while another thread scans them for a snapshot
   * (scanEntryPieces over the hold's sources): a growth's copying waits until release(). Every
   * entry is in the sources, and every later insert has a larger sequence, so filtering their
   * slots by sequence gives exactly what compactEntries() gives now, restricted to a range. The
   * sources are shared arrays that later inserts write only into empty slots, which the filter
   * skips however far a write has got. A growth that starts under the hold moves nothing into
   * them: the array it replaces only stops taking inserts, and the copying that would fill the
   * new one waits. The one move a hold cannot survive: a growth that starts while an earlier
   * growth's copying into a held array is still pending (the hold was taken mid-growth) must
   * finish that copying first; it breaks the hold (`broken`), as that scan may see an entry twice.
   */
  holdEntries(): EntriesHold {
    assert(this.entriesHold === undefined, 'one entries hold at a time');
    const sources: EntrySource[] = [{ words: this.words, start: 0 }];
    if (this.oldSlots !== 0) sources.push({ words: this.oldWords, start: this.oldCopied * WORDS_PER_SLOT });
    const hold = new EntriesHold(sources, () => {
      if (this.entriesHold === hold) this.entriesHold = undefined;
    });
    this.entriesHold = hold;
    return hold;
  }

  /**
   * From now on, copies every new entry, in insertion (= sequence) order, until takeJournal: the
   * entries logged after `afterSequence`, the head now. The copy is made as the entry is written,
   * while its slot is in cache; a snapshot then reads the entries from the journal (or from the
   * chunk its full blocks were spooled to, see TxnJournal.takeFullBlocks) instead of from random
   * slots of a table of up to GBs. A growth leaves it whole (it holds values, not slots). It is
   * dropped past `entriesMax` entries: takeJournal then answers undefined, and the next snapshot scans.
   */
  startJournal(afterSequence: number, entriesMax: number, spareBlocks: Uint32Array[] = [], blockEntries = JOURNAL_BLOCK_ENTRIES): void {
    this.journal = new TxnJournal(afterSequence, entriesMax, spareBlocks, blockEntries);
  }

  /** The running journal, if any (the engine ships its full blocks as they fill). */
  get runningJournal(): TxnJournal | undefined {
    return this.journal;
  }

  /** The journal started last (and not dropped), which stops; undefined when there is none. */
  takeJournal(): TxnJournal | undefined {
    const journal = this.journal;
    this.journal = undefined;
    return journal;
  }

  /**
   * Occupied slots only, back to back (6 words each): what snapshots store. In slot order; while
   * a growth is being copied, the new array's slots and then the old slots not yet copied.
   */
  compactEntries(): Uint32Array {
    const entries = new Uint32Array(this.count * WORDS_PER_SLOT);
    let at = compactInto(entries, 0, this.words, 0);
    if (this.oldSlots !== 0) at = compactInto(entries, at, this.oldWords, this.oldCopied * WORDS_PER_SLOT);
    assert(at === entries.length, 'txn table count does not match its occupied slots');
    return entries;
  }

  /** The slot count entries are inserted into (while growing: the new array's). */
  get capacitySlots(): number {
    return this.slotsTotal;
  }

  /**
   * Rebuilds a table of `slotsTotal` slots (not growing) from compactEntries() output, given
   * whole or in parts (a snapshot's chunks: each the entries of one sequence range).
   */
  static fromEntries(entries: Uint32Array | readonly Uint32Array[], slotsTotal: number): TxnTable {
    const parts = entries instanceof Uint32Array ? [entries] : entries;
    assert((slotsTotal & (slotsTotal - 1)) === 0 && slotsTotal >= SLOTS_INITIAL, 'txn table size not a power of two');
    let count = 0;
    for (const part of parts) {
      assert(part.length % WORDS_PER_SLOT === 0, 'txn entries not a whole number of slots');
      count += part.length / WORDS_PER_SLOT;
    }
    assert(count * 100 <= slotsTotal * LOAD_MAX_PERCENT, 'txn table too small for its entries');
    const table = new TxnTable();
    table.slotsTotal = slotsTotal;
    table.words = sharedUint32(slotsTotal * WORDS_PER_SLOT);
    table.count = count;
    table.workAbove = prepareAbove(slotsTotal);
    for (const part of parts) table.placeAll(part);
    return table;
  }

  /**
   * Places compactEntries() output, a round of PLACE_ROUND_ENTRIES at a time: each entry's first
   * slot is a cache miss (a start places millions), so a first loop reads all of a round's, and
   * their misses overlap, before the second places them in order.
   */
  private placeAll(entries: Uint32Array): void {
    const words = this.words;
    const mask = this.slotsTotal - 1;
    let checksum = 0;
    for (let first = 0; first < entries.length; first += PLACE_ROUND_ENTRIES * WORDS_PER_SLOT) {
      const end = Math.min(entries.length, first + PLACE_ROUND_ENTRIES * WORDS_PER_SLOT);
      for (let base = first; base < end; base += WORDS_PER_SLOT) checksum ^= words[(entries[base]! & mask) * WORDS_PER_SLOT + 4]!;
      for (let base = first; base < end; base += WORDS_PER_SLOT) {
        assert(entries[base + 4] !== 0 || entries[base + 5] !== 0, 'txn entry with sequence 0');
        this.placeWords(entries, base);
      }
    }
    touchChecksum ^= checksum;
  }

  private checkInsert(sequence: number, code: number): void {
    assert(sequence >= 1 && sequence <= SEQUENCE_MAX, 'sequence out of range');
    assert(code >= 0 && code <= 0xff, 'code out of range');
    assert(this.count < TXN_TABLE_ENTRIES_MAX, 'transaction table full');
  }

  /** The miss path while growing: `emptySlot` is where the key would go in the new array. */
  private findOld(k0: number, k1: number, k2: number, emptySlot: number): number {
    const old = this.oldWords;
    const mask = this.oldSlots - 1;
    let slot = k0 & mask;
    // Its old probe run ends at an empty copied slot: any key of it is in the new array by now.
    if (slot < this.oldClear) return -emptySlot - 1;
    for (; ; slot = (slot + 1) & mask) {
      const base = slot * WORDS_PER_SLOT;
      if (old[base + 4] === 0 && old[base + 5] === 0) return -emptySlot - 1;
      if (old[base] === k0 && old[base + 1] === k1 && old[base + 2] === k2) {
        assert(slot >= this.oldCopied, 'a copied txn entry missing from the new table');
        return this.slotsTotal + slot;
      }
    }
  }

  /** Writes a new entry into its slot; returns the slot's first word. */
  private place(k0: number, k1: number, k2: number, content0: number, contentHigh: number, sequence: number, code: number): number {
    const words = this.words;
    const mask = this.slotsTotal - 1;
    let slot = k0 & mask;
    while (words[slot * WORDS_PER_SLOT + 4] !== 0 || words[slot * WORDS_PER_SLOT + 5] !== 0) slot = (slot + 1) & mask;
    this.writeSlot(slot * WORDS_PER_SLOT, k0, k1, k2, content0, contentHigh, sequence, code);
    return slot * WORDS_PER_SLOT;
  }

  /** Copies a new entry into the journal; drops the journal past its bound. */
  private journalAppend(words: Uint32Array, base: number): void {
    if (!this.journal!.append(words, base)) this.journal = undefined;
  }

  /** Places the 6 words at `source[at]` (an occupied slot) into the live array. */
  private placeWords(source: Uint32Array, at: number): void {
    const words = this.words;
    const mask = this.slotsTotal - 1;
    let slot = source[at]! & mask;
    while (words[slot * WORDS_PER_SLOT + 4] !== 0 || words[slot * WORDS_PER_SLOT + 5] !== 0) slot = (slot + 1) & mask;
    const base = slot * WORDS_PER_SLOT;
    for (let i = 0; i < WORDS_PER_SLOT; i++) words[base + i] = source[at + i]!;
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

  private growthWork(): void {
    // A snapshot's scan needs entries to stay put; the growth's copying resumes after it. From S
    // old slots, copying takes S/8 inserts and the next growth's preparation starts at 60% of 2S,
    // 0.5·S inserts after this growth began: 0.375·S inserts of margin. If a snapshot's hold kept
    // the copying back past the next growth's start, startGrowth finishes it (breaking the hold
    // when the hold reads the array it copies into).
    if (this.oldSlots !== 0) {
      if (this.entriesHold === undefined) this.copySome();
    } else this.prepareSome();
  }

  /** Between 60% and 70% load: allocates the next array, then touches its next 512 bytes. */
  private prepareSome(): void {
    if (this.next.length === 0) this.next = sharedUint32(this.slotsTotal * 2 * WORDS_PER_SLOT);
    // Writing (not reading) makes the kernel map a page now rather than on a later insert.
    if (this.nextTouched < this.next.length) this.next[this.nextTouched] = 0;
    this.nextTouched += PREPARE_WORDS_PER_INSERT;
  }

  /** Starts a growth: a new array of twice the slots takes inserts; the old one is copied over by copySome. */
  private startGrowth(): void {
    // Copying ends after oldSlots / MIGRATE_SLOTS_PER_INSERT inserts, fewer than the 70% of oldSlots
    // inserts that fill the new array to its own limit, unless a snapshot's scan held it back
    // that long: then the rest is copied now. Into an array the scan reads, that voids the scan;
    // into one it does not (the hold came before the earlier growth), the scan is untouched.
    if (this.oldSlots !== 0 && this.entriesHold?.reads(this.words) === true) this.entriesHold.break();
    while (this.oldSlots !== 0) this.copySome();
    this.oldWords = this.words;
    this.oldSlots = this.slotsTotal;
    this.oldCopied = 0;
    this.oldClear = 0;
    this.slotsTotal *= 2;
    // Prepared from 60% load, unless the table started (presized or restored) above it.
    this.words = this.next.length === this.slotsTotal * WORDS_PER_SLOT ? this.next : sharedUint32(this.slotsTotal * WORDS_PER_SLOT);
    this.next = NO_WORDS;
    this.nextTouched = 0;
    this.workAbove = -1;
  }

  /** Copies the next MIGRATE_SLOTS_PER_INSERT old slots; drops the old array after the last. */
  private copySome(): void {
    const old = this.oldWords;
    const from = this.oldCopied;
    const to = Math.min(from + MIGRATE_SLOTS_PER_INSERT, this.oldSlots);
    let clear = this.oldClear;
    for (let slot = from; slot < to; slot++) {
      const base = slot * WORDS_PER_SLOT;
      if (old[base + 4] === 0 && old[base + 5] === 0) clear = slot + 1;
      else this.placeWords(old, base);
    }
    this.copiedTotal += to - from;
    if (to === this.oldSlots) {
      this.oldWords = NO_WORDS;
      this.oldSlots = 0;
      this.oldCopied = 0;
      this.oldClear = 0;
      this.workAbove = prepareAbove(this.slotsTotal);
    } else {
      this.oldCopied = to;
      this.oldClear = clear;
    }
  }
}

/**
 * Entries per journal block (1.5 MiB). A running engine hands each full block to the chunk
 * spool's worker, which gives it back once written, so a journal's memory is a few blocks
 * reused over and over, not 24 bytes for every entry of the interval.
 */
export const JOURNAL_BLOCK_ENTRIES = 1 << 16;
const NO_BLOCKS: readonly Uint32Array[] = Object.freeze([]);

/**
 * Copies of the entries inserted into a TxnTable after `afterSequence`, in insertion order, in
 * blocks of whole entries (compactEntries() layout). Blocks come from `spareBlocks` (a pool the
 * owner refills with blocks it is done with) before new ones are allocated.
 */
export class TxnJournal {
  private full: Uint32Array[] = [];
  private block: Uint32Array;
  private used = 0;
  count = 0;

  constructor(
    readonly afterSequence: number,
    private readonly entriesMax: number,
    private readonly spareBlocks: Uint32Array[],
    private readonly blockEntries = JOURNAL_BLOCK_ENTRIES,
  ) {
    assert(Number.isSafeInteger(blockEntries) && blockEntries > 0, 'a journal block holds at least one entry');
    this.block = this.newBlock();
  }

  /** Copies the entry at `words[base]`; false when that would pass entriesMax (nothing kept then). */
  append(words: Uint32Array, base: number): boolean {
    if (this.count >= this.entriesMax) return false;
    if (this.used === this.block.length) {
      this.full.push(this.block);
      this.block = this.newBlock();
      this.used = 0;
    }
    const block = this.block;
    const at = this.used;
    block[at] = words[base]!;
    block[at + 1] = words[base + 1]!;
    block[at + 2] = words[base + 2]!;
    block[at + 3] = words[base + 3]!;
    block[at + 4] = words[base + 4]!;
    block[at + 5] = words[base + 5]!;
    this.used = at + WORDS_PER_SLOT;
    this.count++;
    return true;
  }

  /** The blocks filled since the last call, oldest first; they are the caller's from now on. */
  takeFullBlocks(): readonly Uint32Array[] {
    if (this.full.length === 0) return NO_BLOCKS; // most drains fill none: no array made for them
    const full = this.full;
    this.full = [];
    return full;
  }

  /** The entries not taken by takeFullBlocks, oldest first: full blocks, then the one being filled (a view). */
  rest(): Uint32Array[] {
    return [...this.full, this.block.subarray(0, this.used)];
  }

  private newBlock(): Uint32Array {
    const spare = this.spareBlocks.pop();
    return spare !== undefined && spare.length === this.blockEntries * WORDS_PER_SLOT ? spare : new Uint32Array(this.blockEntries * WORDS_PER_SLOT);
  }
}

/** Entries placed per round when a table is rebuilt from entries (see placeAll). */
const PLACE_ROUND_ENTRIES = 64;

/** Where the words read ahead (placeAll) go: a store the compiler cannot drop, so neither is the loop that reads them. */
let touchChecksum = 0;

/** Part of a table's slot array a scan reads: the words from `start` on. */
export type EntrySource = Readonly<{ words: Uint32Array; start: number }>;

/** A snapshot's hold on a TxnTable's entries (see holdEntries). */
export class EntriesHold {
  private brokenFlag = false;
  private released = false;

  constructor(
    readonly sources: readonly EntrySource[],
    private readonly onRelease: () => void,
  ) {}

  /** A growth had to move entries into a held array: a scan of the sources may have seen some twice. */
  get broken(): boolean {
    return this.brokenFlag;
  }

  /** Whether `words` is one of the arrays the hold keeps in place. */
  reads(words: Uint32Array): boolean {
    return this.sources.some((source) => source.words === words);
  }

  /** Called by a growth that must copy into a held array: the scan is void, entries may move. */
  break(): void {
    this.brokenFlag = true;
    this.release();
  }

  /** Entries may move again (the scan ended, or its snapshot failed). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease();
  }
}

/** Slots a scan reads per piece: at most that many entries, 1.5 MiB. */
export const SCAN_PIECE_SLOTS = 1 << 16;

/**
 * The entries of `sources` logged in (afterSequence, toSequence], in compactEntries() order, a
 * piece at a time into one reused buffer (a piece is overwritten when the next is asked for), so
 * a scan never holds them all. Checks that it found `count` of them. `pieceSlots` is a test knob.
 */
export function* scanEntryPieces(
  sources: readonly EntrySource[],
  afterSequence: number,
  toSequence: number,
  count: number,
  pieceSlots = SCAN_PIECE_SLOTS,
): Generator<Uint32Array> {
  const pieceWords = pieceSlots * WORDS_PER_SLOT;
  const buffer = new Uint32Array(pieceWords);
  let found = 0;
  for (const { words, start } of sources) {
    for (let at = start; at < words.length; at += pieceWords) {
      const end = compactInto(buffer, 0, words, at, Math.min(words.length, at + pieceWords), afterSequence, toSequence);
      found += end / WORDS_PER_SLOT;
      assert(found <= count, 'a scan found more entries than the table had');
      if (end > 0) yield buffer.subarray(0, end);
    }
  }
  assert(found === count, 'a scan found a different count than the table had');
}

/** The count above which a table of `slots` slots prepares its next array. */
function prepareAbove(slots: number): number {
  return Math.floor((slots * LOAD_PREPARE_PERCENT) / 100);
}

/**
 * Appends the occupied slots of `words` in words [start, end) whose sequence is in
 * (afterSequence, maxSequence] to `entries` at `at`; returns the new end.
 */
function compactInto(entries: Uint32Array, at: number, words: Uint32Array, start: number, end = words.length, afterSequence = 0, maxSequence = SEQUENCE_MAX): number {
  for (let base = start; base < end; base += WORDS_PER_SLOT) {
    const low = words[base + 4]!;
    const high = words[base + 5]! & 0xffff;
    if (low === 0 && words[base + 5] === 0) continue;
    const sequence = high * 2 ** 32 + low;
    if (sequence > maxSequence || sequence <= afterSequence) continue;
    // A word loop, not entries.set(words.subarray(...)): a subarray per entry was most of the time.
    for (let i = 0; i < WORDS_PER_SLOT; i++) entries[at + i] = words[base + i]!;
    at += WORDS_PER_SLOT;
  }
  return at;
}

/**
 * An order-independent fold of every occupied slot (key, content, sequence, code) into four
 * 32-bit lanes: equal for equal contents whatever the table's capacity, layout or history, and
 * the same for the live slots or a compact copy of them (used by the state digest).
 */
export function foldTxnWords(words: Uint32Array): Uint32Array {
  assert(WORDS_PER_SLOT === 6, 'the fold reads six words per slot');
  // The four lanes of a slot are the same recurrence with different seeds; the slot's words and
  // the sums stay in locals (a snapshot folds tens of millions of slots).
  let sum0 = 0;
  let sum1 = 0;
  let sum2 = 0;
  let sum3 = 0;
  for (let base = 0; base < words.length; base += WORDS_PER_SLOT) {
    const w4 = words[base + 4]!;
    const w5 = words[base + 5]!;
    if (w4 === 0 && w5 === 0) continue;
    const w0 = words[base]!;
    const w1 = words[base + 1]!;
    const w2 = words[base + 2]!;
    const w3 = words[base + 3]!;
    sum0 = (sum0 + foldSlot(FOLD_SEEDS[0]!, w0, w1, w2, w3, w4, w5)) >>> 0;
    sum1 = (sum1 + foldSlot(FOLD_SEEDS[1]!, w0, w1, w2, w3, w4, w5)) >>> 0;
    sum2 = (sum2 + foldSlot(FOLD_SEEDS[2]!, w0, w1, w2, w3, w4, w5)) >>> 0;
    sum3 = (sum3 + foldSlot(FOLD_SEEDS[3]!, w0, w1, w2, w3, w4, w5)) >>> 0;
  }
  return Uint32Array.of(sum0, sum1, sum2, sum3);
}

const FOLD_SEEDS = [1, 2, 3, 4].map((lane) => Math.imul(lane, 0x9e3779b9));

function foldSlot(seed: number, w0: number, w1: number, w2: number, w3: number, w4: number, w5: number): number {
  let h = seed;
  h = Math.imul(h ^ w0, 0x85ebca6b) ^ (h >>> 13);
  h = Math.imul(h ^ w1, 0x85ebca6b) ^ (h >>> 13);
  h = Math.imul(h ^ w2, 0x85ebca6b) ^ (h >>> 13);
  h = Math.imul(h ^ w3, 0x85ebca6b) ^ (h >>> 13);
  h = Math.imul(h ^ w4, 0x85ebca6b) ^ (h >>> 13);
  h = Math.imul(h ^ w5, 0x85ebca6b) ^ (h >>> 13);
  return h ^ (h >>> 16);
}
