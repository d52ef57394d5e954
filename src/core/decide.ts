/**
 * decide + evolve for one transfer command record, on the hot path.
 *
 * A record is validated (it may come straight off the network), checked against the remembered
 * transaction ids, decided against the state, encoded as a TransferRecorded event into the
 * event buffer, and applied. Validation failures and idempotency conflicts are answered without
 * an event ("stopped before the ledger"); every other outcome, success or business rejection,
 * is an event with its own sequence. Pure: no I/O, no clock.
 *
 * Speed: the batch is read through an Int32Array (records are 208 = 52 × 4 bytes, and the
 * engine hands over 4-byte-aligned batches), so id scans and hashes touch words, not bytes.
 */
import { assert } from '../stdx/assert.js';
import { fmix, hash128Words, IS_LITTLE_ENDIAN } from '../stdx/hash.js';
import { allCurrencies, currencyByNumeric, externalAccountId } from './currency.js';
import { Wire } from './errors.js';
import { EventBuffer } from './event-buffer.js';
import { ACCOUNT_OPENED_FIXED_BYTES, encodeAccountOpened, EventType, NO_INDEX, TRANSFER_FIXED_BYTES } from './events.js';
import { IdTable, type IdTableReader } from './id-table.js';
import { isIdByte } from './ids.js';
import { ACCOUNT_WORDS, CURRENCY_NUMERIC_MAX, FLAG_EXTERNAL, LedgerState } from './ledger-state.js';
import {
  Kind,
  RECORD_BYTES,
  RECORD_OFFSET_AMOUNT,
  RECORD_OFFSET_CURRENCY,
  RECORD_OFFSET_FROM,
  RECORD_OFFSET_KIND,
  RECORD_OFFSET_RESERVED,
  RECORD_OFFSET_TO,
} from './transfer-record.js';
import { setU64 } from '../stdx/u64.js';

assert(IS_LITTLE_ENDIAN, 'walletd needs a little-endian host (typed arrays are read as the log format)');
assert(RECORD_BYTES % 4 === 0 && RECORD_OFFSET_FROM % 16 === 0 && RECORD_OFFSET_AMOUNT % 4 === 0, 'record layout must be word aligned');
// The hot path reads the record's tail by word index, as literals: 48 and 49 are the amount's
// low and high halves; 50 holds the currency (low 16 bits), the kind (bits 16..23) and the
// first reserved byte (bits 24..31); 51 holds the other four reserved bytes.
assert(
  RECORD_OFFSET_AMOUNT === 48 * 4 &&
    RECORD_OFFSET_CURRENCY === 50 * 4 &&
    RECORD_OFFSET_KIND === 50 * 4 + 2 &&
    RECORD_OFFSET_RESERVED === 50 * 4 + 3 &&
    RECORD_BYTES === 52 * 4,
  'decide reads the record tail at word indices 48..51',
);

const ID_WORDS = 16;
const TXN_KEY_SEED = 0x5eed0001;
const CONTENT_SEED = 0x5eed0002;
const SYSTEM_OWNER = '@system';
/** 1 for each byte allowed in an id ([A-Za-z0-9_.:-]), 0 otherwise. */
const ID_BYTE = new Uint8Array(256).map((_, byte) => (isIdByte(byte) ? 1 : 0));
const AT_SIGN = 0x40;
/** 1 for each ISO numeric code walletd accepts: an array index, not a Map lookup, per record. */
const KNOWN_CURRENCY = new Uint8Array(CURRENCY_NUMERIC_MAX + 1);
for (const currency of allCurrencies()) KNOWN_CURRENCY[currency.numeric] = 1;

/** Outcome of one record, reused across calls so the hot path allocates nothing. */
export class Outcome {
  code = 0;
  /** Log position of the recorded outcome; 0 when nothing was logged. */
  sequence = 0;
}

/**
 * Records prepared per round by executeTransferBatch: their hashes are computed and the table
 * slots they will probe are read before any of them is decided, so the cache misses of a whole
 * round are in flight together instead of one after another; a round's lines (about 7 per
 * record, 14 KiB) still sit in the L1 cache when the decisions read them. Rounds of 16, 32, 64
 * and 128 measured: 32 was fastest by a few percent (decide-micro, 1M accounts).
 */
const ROUND_RECORDS = 32;
/**
 * Per prepared record: code, 3 lengths, txn key (3 words), content (2), from hash, to hash,
 * from index, to index (13 words, padded to 16). The indices are -1 unless a preparer already
 * found the account (prepareRecords with a reader); decide looks up the others itself.
 */
export const PREPARED_WORDS = 16;
const P_CODE = 0;
const P_TXN_LENGTH = 1;
const P_FROM_LENGTH = 2;
const P_TO_LENGTH = 3;
const P_KEY = 4;
const P_CONTENT = 7;
const P_FROM_HASH = 9;
const P_TO_HASH = 10;
const P_FROM_INDEX = 11;
const P_TO_INDEX = 12;
/** Where a prepared record keeps the account indices a preparer found (for tests). */
export const PREPARED_FROM_INDEX = P_FROM_INDEX;
export const PREPARED_TO_INDEX = P_TO_INDEX;
const UNRESOLVED = -1;

/** Scratch space for one engine; the hot path allocates nothing. */
export class DecideScratch {
  readonly key = new Uint32Array(4);
  readonly content = new Uint32Array(4);
  readonly prepared = new Int32Array(ROUND_RECORDS * PREPARED_WORDS);
  readonly after = new BalancesAfter();
  /** Folds the prefetch reads so they are not optimized away; never read for a decision. */
  prefetchChecksum = 0;
}

/** A batch of records as bytes and as words over the same memory (4-byte aligned). */
export type RecordView = Readonly<{ bytes: Buffer; words: Int32Array }>;

export function recordView(bytes: Buffer): RecordView {
  assert(bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0, 'record batch must be 4-byte aligned');
  return { bytes, words: new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2) };
}

/**
 * Index (0..3) of the first zero byte of a little-endian word, or 4 when none, without a branch
 * per byte: (word - 0x01010101) & ~word & 0x80808080 sets the top bit of every zero byte and
 * maybe of bytes above one (a borrow), never below, so its lowest set bit names the first.
 */
function firstZeroByte(word: number): number {
  const zeros = (word - 0x01010101) & ~word & 0x80808080;
  return zeros === 0 ? 4 : (31 - Math.clz32(zeros & -zeros)) >>> 3;
}

/**
 * Length of the NUL-padded id field at word `wordOffset` (16 words): 1..64 when every byte
 * after the id is zero, 0 when the field is all zero, -1 when a non-zero byte follows a NUL.
 * Does not check the alphabet (see idBytesValid). Exported for its property test.
 */
export function idFieldLength(words: Int32Array, wordOffset: number): number {
  let index = 0;
  let word = 0;
  let zeroAt = 4;
  for (; index < ID_WORDS; index++) {
    word = words[wordOffset + index]!;
    zeroAt = firstZeroByte(word);
    if (zeroAt < 4) break;
  }
  if (index === ID_WORDS) return 64;
  // Bytes after the terminator in its word, and every later word, must be zero.
  let after = zeroAt < 3 ? word >>> (8 * (zeroAt + 1)) : 0;
  for (let rest = index + 1; rest < ID_WORDS; rest++) after |= words[wordOffset + rest]!;
  return after === 0 ? index * 4 + zeroAt : -1;
}

function idBytesValid(bytes: Uint8Array, offset: number, length: number): boolean {
  for (let i = 0; i < length; i++) {
    if (ID_BYTE[bytes[offset + i]!] === 0) return false;
  }
  return true;
}

/**
 * Shape check of a record: wire code of the first problem, or ok; the id lengths go to the
 * prepared slot `p`. Account id alphabets are checked later, only when the id is not a known
 * account (known ids were checked at opening).
 */
function validateRecord(record: RecordView, base: number, prepared: Int32Array, p: number): number {
  const { bytes, words } = record;
  const wordBase = base >>> 2;
  const kind = bytes[base + RECORD_OFFSET_KIND]!;
  const reserved = (words[wordBase + 50]! >>> 24) | words[wordBase + 51]!;
  if (kind < Kind.transfer || kind > Kind.withdrawal || reserved !== 0) return Wire.invalid_request;
  const txnLength = idFieldLength(words, wordBase);
  if (txnLength < 1 || !idBytesValid(bytes, base, txnLength)) return Wire.invalid_request;
  const fromLength = idFieldLength(words, wordBase + RECORD_OFFSET_FROM / 4);
  const toLength = idFieldLength(words, wordBase + RECORD_OFFSET_TO / 4);
  if (kind === Kind.deposit ? fromLength !== 0 : fromLength < 1) return Wire.invalid_request;
  if (kind === Kind.withdrawal ? toLength !== 0 : toLength < 1) return Wire.invalid_request;
  const currency = words[wordBase + 50]! & 0xffff;
  if (currency > CURRENCY_NUMERIC_MAX || KNOWN_CURRENCY[currency] === 0) return Wire.unsupported_currency;
  const amountLow = words[wordBase + 48]!;
  const amountHigh = words[wordBase + 49]!;
  if (amountHigh < 0 || (amountHigh === 0 && amountLow === 0)) return Wire.invalid_amount;
  prepared[p + P_TXN_LENGTH] = txnLength;
  prepared[p + P_FROM_LENGTH] = fromLength;
  prepared[p + P_TO_LENGTH] = toLength;
  return Wire.ok;
}

/**
 * Everything about a record that does not depend on the state: its shape check, the
 * fingerprints of its transaction id and content, and the hashes of its account ids.
 */
function prepareRecord(record: RecordView, base: number, scratch: DecideScratch, p: number, prepared: Int32Array): void {
  const code = validateRecord(record, base, prepared, p);
  prepared[p + P_CODE] = code;
  if (code !== Wire.ok) return;
  const words = record.words;
  const wordBase = base >>> 2;
  const fromLength = prepared[p + P_FROM_LENGTH]!;
  const toLength = prepared[p + P_TO_LENGTH]!;
  const key = scratch.key;
  hash128Words(words, wordBase, prepared[p + P_TXN_LENGTH]!, key, TXN_KEY_SEED);
  prepared[p + P_KEY] = key[0]!;
  prepared[p + P_KEY + 1] = key[1]!;
  prepared[p + P_KEY + 2] = key[2]!;
  const content = scratch.content;
  fingerprintContent(words, wordBase, fromLength, toLength, content);
  prepared[p + P_CONTENT] = content[0]!;
  prepared[p + P_CONTENT + 1] = content[1]!;
  prepared[p + P_FROM_HASH] = fromLength === 0 ? 0 : IdTable.hashOf(words, wordBase + RECORD_OFFSET_FROM / 4, fromLength);
  prepared[p + P_TO_HASH] = toLength === 0 ? 0 : IdTable.hashOf(words, wordBase + RECORD_OFFSET_TO / 4, toLength);
  prepared[p + P_FROM_INDEX] = UNRESOLVED;
  prepared[p + P_TO_INDEX] = UNRESOLVED;
}

/**
 * Prepares records [0, count) into `prepared` (PREPARED_WORDS each, in record order) off the
 * engine's thread: everything prepareRecord does, plus the account indices `accounts` can find.
 * The result is a pure function of the records and of ids already interned (an id, once given
 * an index, keeps it), so deciding with it gives the same outcomes as deciding without it.
 * Ids starting with '@' are left to decide, which refuses them as customer ids.
 */
export function prepareRecords(record: RecordView, count: number, prepared: Int32Array, scratch: DecideScratch, accounts: IdTableReader): void {
  prepareRecordRange(record, 0, count, prepared, scratch, accounts);
}

/**
 * prepareRecords for records [first, end) only, written to their own places in `prepared`:
 * two threads may prepare disjoint ranges of one batch (src/engine/prepare-shares.ts).
 */
export function prepareRecordRange(record: RecordView, first: number, end: number, prepared: Int32Array, scratch: DecideScratch, accounts: IdTableReader): void {
  assert(first >= 0 && first <= end && prepared.length >= end * PREPARED_WORDS, 'prepared buffer too small');
  for (let start = first; start < end; start += ROUND_RECORDS) {
    const roundEnd = Math.min(end, start + ROUND_RECORDS);
    let checksum = 0;
    // The round's slot reads in a loop of their own: interleaved with prepareRecord's hashing,
    // the core's window held only a few of them at once (prepare-micro, 1M accounts: 598–622
    // → 487–505 ns a record in alternating runs).
    for (let index = start; index < roundEnd; index++) prepareRecord(record, index * RECORD_BYTES, scratch, index * PREPARED_WORDS, prepared);
    for (let index = start; index < roundEnd; index++) {
      const p = index * PREPARED_WORDS;
      if (prepared[p + P_CODE] !== Wire.ok) continue;
      checksum ^= accounts.touchSlot(prepared[p + P_FROM_HASH]!) ^ accounts.touchSlot(prepared[p + P_TO_HASH]!);
    }
    for (let index = start; index < roundEnd; index++) {
      const p = index * PREPARED_WORDS;
      if (prepared[p + P_CODE] !== Wire.ok) continue;
      checksum ^= accounts.touchEntry(prepared[p + P_FROM_HASH]!) ^ accounts.touchEntry(prepared[p + P_TO_HASH]!);
    }
    scratch.prefetchChecksum ^= checksum;
    for (let index = start; index < roundEnd; index++) {
      const p = index * PREPARED_WORDS;
      if (prepared[p + P_CODE] !== Wire.ok) continue;
      const base = index * RECORD_BYTES;
      prepared[p + P_FROM_INDEX] = resolveAccount(record, base + RECORD_OFFSET_FROM, prepared[p + P_FROM_LENGTH]!, prepared[p + P_FROM_HASH]!, accounts);
      prepared[p + P_TO_INDEX] = resolveAccount(record, base + RECORD_OFFSET_TO, prepared[p + P_TO_LENGTH]!, prepared[p + P_TO_HASH]!, accounts);
    }
  }
}

function resolveAccount(record: RecordView, offset: number, length: number, hash: number, accounts: IdTableReader): number {
  if (length === 0 || record.bytes[offset] === AT_SIGN) return UNRESOLVED;
  return accounts.find(record.words, offset >>> 2, length, hash);
}

/**
 * Reads, for every prepared record of a round, what its decision will read first, in one pass
 * so the misses overlap: its transaction id's slot, and per account the record when the
 * preparer found it, else the first slot its lookup probes; then, for those not found, the id
 * bytes and account records the slots name.
 */
function prefetchRound(state: LedgerState, scratch: DecideScratch, prepared: Int32Array, first: number, records: number): void {
  const accounts = state.accounts;
  const txns = state.txns;
  const ints = state.ints;
  const end = first + records * PREPARED_WORDS;
  let checksum = 0;
  for (let p = first; p < end; p += PREPARED_WORDS) {
    if (prepared[p + P_CODE] !== Wire.ok) continue;
    checksum ^= txns.touch(prepared[p + P_KEY]! >>> 0) ^ touchAccount(accounts, ints, prepared, p + P_FROM_INDEX, p + P_FROM_HASH);
    checksum ^= touchAccount(accounts, ints, prepared, p + P_TO_INDEX, p + P_TO_HASH);
  }
  for (let p = first; p < end; p += PREPARED_WORDS) {
    if (prepared[p + P_CODE] !== Wire.ok) continue;
    if (prepared[p + P_FROM_INDEX]! < 0) checksum ^= accounts.touchEntry(prepared[p + P_FROM_HASH]!, ints, ACCOUNT_WORDS);
    if (prepared[p + P_TO_INDEX]! < 0) checksum ^= accounts.touchEntry(prepared[p + P_TO_HASH]!, ints, ACCOUNT_WORDS);
  }
  scratch.prefetchChecksum ^= checksum;
}

/**
 * A found account's record (its first and last word: the array need not start on a cache line,
 * so a 32-byte record may span two), else the first slot its lookup probes. Reading the last
 * word too took decide-micro's decisions with prepared records from 2.49–2.96M to 3.20–3.58M a
 * second at 1M accounts (four alternating runs each); the whole engine did not move past the noise.
 */
function touchAccount(accounts: IdTable, ints: Int32Array, prepared: Int32Array, indexAt: number, hashAt: number): number {
  const index = prepared[indexAt]!;
  if (index < 0) return accounts.touchSlot(prepared[hashAt]!);
  const at = index * ACCOUNT_WORDS;
  return ints[at]! ^ ints[at + ACCOUNT_WORDS - 1]!;
}

/**
 * Decides and applies `count` records from the start of `record`, in order, writing each
 * outcome's wire code and sequence. The same decisions as executeTransfer one by one; the
 * records are only prepared and prefetched in rounds first. `prepared`, when given, holds
 * every record already prepared by prepareRecords (on another thread); otherwise each round
 * is prepared here.
 */
export function executeTransferBatch(
  state: LedgerState,
  record: RecordView,
  count: number,
  events: EventBuffer,
  scratch: DecideScratch,
  outcome: Outcome,
  codes: Uint8Array,
  sequences: Float64Array,
  prepared?: Int32Array,
): void {
  assert(prepared === undefined || prepared.length >= count * PREPARED_WORDS, 'prepared buffer too small');
  for (let start = 0; start < count; start += ROUND_RECORDS) {
    const end = Math.min(count, start + ROUND_RECORDS);
    let round: Int32Array = scratch.prepared;
    let first = 0;
    if (prepared === undefined) {
      for (let index = start; index < end; index++) prepareRecord(record, index * RECORD_BYTES, scratch, (index - start) * PREPARED_WORDS, round);
    } else {
      round = prepared;
      first = start * PREPARED_WORDS;
    }
    prefetchRound(state, scratch, round, first, end - start);
    for (let index = start; index < end; index++) {
      executePrepared(state, record, index * RECORD_BYTES, events, scratch, round, first + (index - start) * PREPARED_WORDS, outcome);
      codes[index] = outcome.code;
      sequences[index] = outcome.sequence;
    }
  }
}

/**
 * Fingerprint of a transaction id given as a string (lookups, replay): the id is laid out
 * zero-padded in a word scratch exactly as in a record field, so the fingerprint equals the one
 * the hot path computed from the record.
 */
export function fingerprintTransactionId(transactionId: string, out: Uint32Array): void {
  assert(transactionId.length >= 1 && transactionId.length <= ID_WORDS * 4, 'transaction id length out of range');
  ID_SCRATCH_WORDS.fill(0);
  const written = ID_SCRATCH_BYTES.write(transactionId, 0, 'latin1');
  assert(written === transactionId.length, 'transaction id is not single-byte text');
  hash128Words(ID_SCRATCH_WORDS, 0, transactionId.length, out, TXN_KEY_SEED);
}

/**
 * fingerprintTransactionId of an id given as bytes (replay reads it from the logged event): the
 * same key, without a string. hash128Words reads whole 16-byte blocks, so the scratch is zeroed
 * up to the end of the id's last block.
 */
export function fingerprintTransactionIdBytes(bytes: Uint8Array, start: number, length: number, out: Uint32Array): void {
  assert(length >= 1 && length <= ID_WORDS * 4, 'transaction id length out of range');
  const words = ID_SCRATCH_WORDS;
  const blockWords = ((length + 15) & ~15) >>> 2;
  for (let word = 0; word < blockWords; word++) words[word] = 0;
  const target = ID_SCRATCH_BYTES;
  for (let i = 0; i < length; i++) target[i] = bytes[start + i]!;
  hash128Words(words, 0, length, out, TXN_KEY_SEED);
}

const ID_SCRATCH_WORDS = new Int32Array(ID_WORDS);
const ID_SCRATCH_BYTES = Buffer.from(ID_SCRATCH_WORDS.buffer);

/**
 * Fingerprint of what makes two requests "the same": the from and to ids (only their words, the
 * padding is zero), amount, currency and kind. Two independent 32-bit lanes; the transaction
 * table keeps 40 bits of them.
 */
export function fingerprintContent(words: Int32Array, recordWordBase: number, fromLength: number, toLength: number, out: Uint32Array): void {
  lane1 = CONTENT_SEED | 0;
  lane2 = (CONTENT_SEED ^ 0x6a09e667) | 0;
  mixWords(words, recordWordBase + RECORD_OFFSET_FROM / 4, (fromLength + 3) >>> 2);
  mixWords(words, recordWordBase + RECORD_OFFSET_TO / 4, (toLength + 3) >>> 2);
  mixWords(words, recordWordBase + RECORD_OFFSET_AMOUNT / 4, 4);
  // Lane 1 ends with MurmurHash3's fmix32, lane 2 with other constants (lowbias32's).
  let h2 = lane2 ^ (toLength | (fromLength << 8));
  h2 = Math.imul(h2 ^ (h2 >>> 16), 0x7feb352d);
  h2 = Math.imul(h2 ^ (h2 >>> 15), 0x846ca68b | 0);
  out[0] = fmix(lane1 ^ (fromLength | (toLength << 8)));
  out[1] = h2 ^ (h2 >>> 16);
}

let lane1 = 0;
let lane2 = 0;

function mixWords(words: Int32Array, start: number, count: number): void {
  let h1 = lane1;
  let h2 = lane2;
  for (let at = start; at < start + count; at++) {
    const word = words[at]!;
    h1 = Math.imul(h1 ^ Math.imul(word, 0xcc9e2d51 | 0), 0x1b873593) ^ (h1 >>> 15);
    h2 = Math.imul(h2 ^ Math.imul(word, 0x85ebca6b | 0), 0xc2b2ae35 | 0) ^ (h2 >>> 13);
  }
  lane1 = h1;
  lane2 = h2;
}

/** Decides and applies the record at byte `base`; fills `outcome`; appends events. */
export function executeTransfer(
  state: LedgerState,
  record: RecordView,
  base: number,
  events: EventBuffer,
  scratch: DecideScratch,
  outcome: Outcome,
): void {
  prepareRecord(record, base, scratch, 0, scratch.prepared);
  executePrepared(state, record, base, events, scratch, scratch.prepared, 0, outcome);
}

/** The stateful part of a record's decision, from its prepared slot `p`. */
function executePrepared(
  state: LedgerState,
  record: RecordView,
  base: number,
  events: EventBuffer,
  scratch: DecideScratch,
  prepared: Int32Array,
  p: number,
  outcome: Outcome,
): void {
  outcome.sequence = 0;
  outcome.code = prepared[p + P_CODE]!;
  if (outcome.code !== Wire.ok) return;
  const known = state.txns.find(prepared[p + P_KEY]! >>> 0, prepared[p + P_KEY + 1]! >>> 0, prepared[p + P_KEY + 2]! >>> 0);
  if (known >= 0) {
    if (state.txns.contentMatches(known, prepared[p + P_CONTENT]! >>> 0, prepared[p + P_CONTENT + 1]! >>> 0)) {
      outcome.code = state.txns.codeAt(known);
      outcome.sequence = state.txns.sequenceAt(known);
    } else {
      outcome.code = Wire.idempotency_conflict;
    }
    return;
  }
  decideAndRecord(state, record, base, events, scratch, prepared, p, known, outcome);
}

/** `txnMiss`: TxnTable.find's miss result for the record's id (where the id will go). */
function decideAndRecord(
  state: LedgerState,
  record: RecordView,
  base: number,
  events: EventBuffer,
  scratch: DecideScratch,
  prepared: Int32Array,
  p: number,
  txnMiss: number,
  outcome: Outcome,
): void {
  const { bytes, words } = record;
  const wordBase = base >>> 2;
  const kind = bytes[base + RECORD_OFFSET_KIND]!;
  const currency = words[wordBase + 50]! & 0xffff;
  const fromLength = prepared[p + P_FROM_LENGTH]!;
  const toLength = prepared[p + P_TO_LENGTH]!;
  // Customer ids first: a malformed one stops the record before anything is logged, including
  // the opening of the currency's external account.
  // An index the preparer found is final (ids keep their index); -1 may just be too new for it.
  const fromFound = prepared[p + P_FROM_INDEX]!;
  const toFound = prepared[p + P_TO_INDEX]!;
  const fromCustomer =
    kind === Kind.deposit ? -1 : fromFound >= 0 ? fromFound : findAccount(state, record, base + RECORD_OFFSET_FROM, fromLength, prepared[p + P_FROM_HASH]!);
  const toCustomer = kind === Kind.withdrawal ? -1 : toFound >= 0 ? toFound : findAccount(state, record, base + RECORD_OFFSET_TO, toLength, prepared[p + P_TO_HASH]!);
  if (fromCustomer === BAD_ID || toCustomer === BAD_ID) {
    outcome.code = Wire.invalid_request;
    return;
  }
  // A new id the ledger may not remember: refused before anything is logged (an external
  // account's opening included), after every check of the request itself.
  if (state.txns.count >= state.transactionsMax) {
    outcome.code = Wire.ledger_full;
    return;
  }
  const external = kind === Kind.transfer ? -1 : ensureExternal(state, currency, events);
  const fromIndex = kind === Kind.deposit ? external : fromCustomer;
  const toIndex = kind === Kind.withdrawal ? external : toCustomer;
  const after = scratch.after;
  const code = decideTransfer(state, words, wordBase, fromIndex, toIndex, currency, after);
  const sequence = state.headSequence + 1;
  encodeTransferRecorded(state, record, base, events, after, prepared[p + P_TXN_LENGTH]!, fromLength, toLength, kind, code, fromIndex, toIndex);
  if (code === Wire.ok) state.applyTransferSucceededWords(sequence, fromIndex, toIndex, after.fromLow, after.fromHigh, after.toLow, after.toHigh);
  else state.applyTransferRejected(sequence);
  state.txns.insertAfterMiss(
    txnMiss,
    prepared[p + P_KEY]! >>> 0,
    prepared[p + P_KEY + 1]! >>> 0,
    prepared[p + P_KEY + 2]! >>> 0,
    prepared[p + P_CONTENT]! >>> 0,
    prepared[p + P_CONTENT + 1]! >>> 0,
    sequence,
    code,
  );
  outcome.code = code;
  outcome.sequence = sequence;
}

/** Encodes TransferRecorded (layout in events.ts) from the state before it is applied. */
function encodeTransferRecorded(
  state: LedgerState,
  record: RecordView,
  base: number,
  events: EventBuffer,
  after: BalancesAfter,
  txnLength: number,
  fromLength: number,
  toLength: number,
  kind: number,
  code: number,
  fromIndex: number,
  toIndex: number,
): void {
  const words = record.words;
  const wordBase = base >>> 2;
  const at = events.begin(TRANSFER_FIXED_BYTES + txnLength + 128);
  const out = events.bytes;
  const view = events.view;
  out[at] = EventType.transferRecorded;
  out[at + 1] = kind;
  out[at + 2] = code;
  out[at + 3] = txnLength;
  view.setUint16(at + 4, words[wordBase + 50]! & 0xffff, true);
  view.setInt32(at + 16, words[wordBase + 48]!, true);
  view.setInt32(at + 20, words[wordBase + 49]!, true);
  copyBytes(record.bytes, base, out, at + TRANSFER_FIXED_BYTES, txnLength);
  let length = TRANSFER_FIXED_BYTES + txnLength;
  length += writeAccountRef(out, view, at, 6, 8, length, fromIndex, record.bytes, base + RECORD_OFFSET_FROM, fromLength);
  length += writeAccountRef(out, view, at, 7, 12, length, toIndex, record.bytes, base + RECORD_OFFSET_TO, toLength);
  if (code === Wire.ok) {
    view.setInt32(at + 24, after.fromLow, true);
    view.setInt32(at + 28, after.fromHigh, true);
    view.setInt32(at + 32, after.toLow, true);
    view.setInt32(at + 36, after.toHigh, true);
    setU64(view, at + 40, state.lastEntrySequenceOf(fromIndex));
    setU64(view, at + 48, state.lastEntrySequenceOf(toIndex));
  } else {
    out.fill(0, at + 24, at + 56);
  }
  events.commit(length);
}


/** Writes an account reference (index, or inline id when absent); returns inline bytes added. */
function writeAccountRef(
  out: Buffer,
  view: DataView,
  at: number,
  lengthField: number,
  indexField: number,
  tail: number,
  index: number,
  source: Buffer,
  idOffset: number,
  idLength: number,
): number {
  if (index >= 0) {
    out[at + lengthField] = 0;
    view.setUint32(at + indexField, index, true);
    return 0;
  }
  out[at + lengthField] = idLength;
  view.setUint32(at + indexField, NO_INDEX, true);
  copyBytes(source, idOffset, out, at + tail, idLength);
  return idLength;
}

/** Byte loop for short copies (ids): cheaper than Buffer#copy's per-call overhead. */
function copyBytes(source: Uint8Array, from: number, target: Uint8Array, to: number, length: number): void {
  for (let i = 0; i < length; i++) target[to + i] = source[from + i]!;
}

/** findAccount result for an id that is not a customer id (bad bytes, or an external's '@'). */
const BAD_ID = -2;

/** Account index, -1 when absent, or BAD_ID when the field is not a valid customer id. */
function findAccount(state: LedgerState, record: RecordView, offset: number, length: number, hash: number): number {
  const bytes = record.bytes;
  if (bytes[offset] === AT_SIGN) return BAD_ID;
  const index = state.accounts.find(record.words, offset >>> 2, length, hash);
  if (index < 0 && !idBytesValid(bytes, offset, length)) return BAD_ID;
  return index;
}

const TWO_32 = 0x1_0000_0000;
const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;

/**
 * The business rules, in order. Both indices may be -1 (not found). Balances are i64 held as
 * two 32-bit words; the arithmetic below is exact on those halves (JavaScript numbers hold the
 * intermediate sums exactly), so no BigInt is allocated. On success the balances after the
 * transfer are left in `after`.
 */
function decideTransfer(state: LedgerState, words: Int32Array, wordBase: number, fromIndex: number, toIndex: number, currency: number, after: BalancesAfter): number {
  if (fromIndex >= 0 ? fromIndex === toIndex : sameIdFields(words, wordBase)) return Wire.same_account;
  if (fromIndex < 0 || toIndex < 0) return Wire.account_not_found;
  const ints = state.ints;
  const from = fromIndex * ACCOUNT_WORDS;
  if (ints[from + 2] !== currency || ints[toIndex * ACCOUNT_WORDS + 2] !== currency) return Wire.currency_mismatch;
  const amountLow = words[wordBase + 48]! >>> 0;
  const amountHigh = words[wordBase + 49]!;
  const fromHigh = balanceMinus(state, fromIndex, amountLow, amountHigh);
  const fromLow = lowWord;
  if ((ints[from + 6]! & FLAG_EXTERNAL) === 0) {
    if (fromHigh < 0) return Wire.insufficient_funds;
  } else if (belowBalanceMin(fromHigh, fromLow)) {
    return Wire.balance_overflow; // more money issued than the ledger can count
  }
  const toHigh = balancePlus(state, toIndex, amountLow, amountHigh);
  const toLow = lowWord;
  if (toHigh > INT32_MAX) return Wire.balance_overflow;
  after.fromLow = fromLow;
  after.fromHigh = fromHigh;
  after.toLow = toLow;
  after.toHigh = toHigh;
  return Wire.ok;
}

/**
 * i64 arithmetic on a balance's two 32-bit halves, exact, for decide and for replay's check of
 * what decide logged: the account's balance minus (balanceMinus) or plus (balancePlus) an amount
 * given as an unsigned low and a signed high word. The result's high word is returned exactly,
 * outside the int32 range when the result is outside the i64 range; its low word, as int32
 * bits, is left in lowWord (module state, as the content fingerprint's lanes: no object per
 * call), to be read before the next call.
 */
export function balanceMinus(state: LedgerState, index: number, amountLow: number, amountHigh: number): number {
  const at = index * ACCOUNT_WORDS;
  let low = state.uints[at]! - amountLow;
  let borrow = 0;
  if (low < 0) {
    low += TWO_32;
    borrow = 1;
  }
  lowWord = low | 0;
  return state.ints[at + 1]! - amountHigh - borrow;
}

export function balancePlus(state: LedgerState, index: number, amountLow: number, amountHigh: number): number {
  const at = index * ACCOUNT_WORDS;
  let low = state.uints[at]! + amountLow;
  let carry = 0;
  if (low >= TWO_32) {
    low -= TWO_32;
    carry = 1;
  }
  lowWord = low | 0;
  return state.ints[at + 1]! + amountHigh + carry;
}

/** The low word of the last balanceMinus or balancePlus, as int32 bits. */
export function lastLowWord(): number {
  return lowWord;
}

let lowWord = 0;

/** Whether a result of balanceMinus is below BALANCE_MIN, −(2^63 − 1): −2^63 fits the halves but not a balance. */
export function belowBalanceMin(high: number, low: number): boolean {
  return high < INT32_MIN || (high === INT32_MIN && low === 0);
}

/** Balances after a successful transfer as i64 halves, computed once by decide. */
class BalancesAfter {
  fromLow = 0;
  fromHigh = 0;
  toLow = 0;
  toHigh = 0;
}

function sameIdFields(words: Int32Array, wordBase: number): boolean {
  const from = wordBase + RECORD_OFFSET_FROM / 4;
  const to = wordBase + RECORD_OFFSET_TO / 4;
  for (let i = 0; i < ID_WORDS; i++) {
    if (words[from + i] !== words[to + i]) return false;
  }
  return true;
}

/** Opens the currency's external account on first use (an AccountOpened event). */
function ensureExternal(state: LedgerState, currency: number, events: EventBuffer): number {
  const existing = state.externalOf[currency]!;
  if (existing > 0) return existing - 1;
  const code = currencyByNumeric(currency)?.code;
  assert(code !== undefined, 'validated currency has no code');
  const id = externalAccountId(code);
  const at = events.begin(ACCOUNT_OPENED_FIXED_BYTES + id.length + SYSTEM_OWNER.length);
  events.commit(encodeAccountOpened(events.bytes, at, id, currency, SYSTEM_OWNER));
  return state.applyAccountOpened(state.headSequence + 1, id, currency, SYSTEM_OWNER);
}

