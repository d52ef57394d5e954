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
import { hash128Padded, hash128Words, hash32Words, IS_LITTLE_ENDIAN } from '../stdx/hash.js';
import { currencyByNumeric, externalAccountId } from './currency.js';
import { Wire } from './errors.js';
import { EventBuffer } from './event-buffer.js';
import { ACCOUNT_OPENED_FIXED_BYTES, encodeAccountOpened, EventType, NO_INDEX, TRANSFER_FIXED_BYTES } from './events.js';
import { IdTable } from './id-table.js';
import { isIdByte } from './ids.js';
import { LedgerState } from './ledger-state.js';
import { BALANCE_MAX, BALANCE_MIN } from './money.js';
import {
  Kind,
  RECORD_BYTES,
  RECORD_OFFSET_AMOUNT,
  RECORD_OFFSET_CURRENCY,
  RECORD_OFFSET_FROM,
  RECORD_OFFSET_KIND,
  RECORD_OFFSET_TO,
  RECORD_OFFSET_TRANSACTION_ID,
} from './transfer-record.js';

assert(IS_LITTLE_ENDIAN, 'walletd needs a little-endian host (typed arrays are read as the log format)');
assert(RECORD_BYTES % 4 === 0 && RECORD_OFFSET_FROM % 16 === 0 && RECORD_OFFSET_AMOUNT % 4 === 0, 'record layout must be word aligned');

/**
 * The bytes of a record that define "the same request": from, to, amount, currency, kind (and
 * the reserved bytes, always zero, so the region is a whole number of 16-byte blocks).
 */
export const CONTENT_OFFSET = RECORD_OFFSET_FROM;
export const CONTENT_BYTES = RECORD_BYTES - RECORD_OFFSET_FROM;
const ID_WORDS = 16;
const TXN_KEY_SEED = 0x5eed0001;
const CONTENT_SEED = 0x5eed0002;
const SYSTEM_OWNER = '@system';
/** 1 for each byte allowed in an id ([A-Za-z0-9_.:-]), 0 otherwise. */
const ID_BYTE = new Uint8Array(256).map((_, byte) => (isIdByte(byte) ? 1 : 0));
const AT_SIGN = 0x40;

/** Outcome of one record, reused across calls so the hot path allocates nothing. */
export class Outcome {
  code = 0;
  /** Log position of the recorded outcome; 0 when nothing was logged. */
  sequence = 0;
}

/** Scratch space for one engine; the hot path allocates nothing. */
export class DecideScratch {
  readonly key = new Uint32Array(4);
  readonly content = new Uint32Array(4);
  transactionIdLength = 0;
  fromLength = 0;
  toLength = 0;
  readonly after = new BalancesAfter();
}

/** A batch of records as bytes and as words over the same memory (4-byte aligned). */
export type RecordView = Readonly<{ bytes: Buffer; words: Int32Array; view: DataView }>;

export function recordView(bytes: Buffer): RecordView {
  assert(bytes.byteOffset % 4 === 0 && bytes.length % 4 === 0, 'record batch must be 4-byte aligned');
  return {
    bytes,
    words: new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2),
    view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length),
  };
}

/** Index (0..3) of the first zero byte of a little-endian word, or 4 when none. */
function firstZeroByte(word: number): number {
  if ((word & 0xff) === 0) return 0;
  if ((word & 0xff00) === 0) return 1;
  if ((word & 0xff0000) === 0) return 2;
  if ((word & 0xff000000) === 0) return 3;
  return 4;
}

/**
 * Length of the NUL-padded id field at word `wordOffset` (16 words): 1..64 when every byte
 * after the id is zero, 0 when the field is all zero, -1 when a non-zero byte follows a NUL.
 * Does not check the alphabet (see idBytesValid).
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
  if (zeroAt < 3 && word >>> (8 * (zeroAt + 1)) !== 0) return -1;
  for (let rest = index + 1; rest < ID_WORDS; rest++) {
    if (words[wordOffset + rest] !== 0) return -1;
  }
  return index * 4 + zeroAt;
}

export function idBytesValid(bytes: Uint8Array, offset: number, length: number): boolean {
  for (let i = 0; i < length; i++) {
    if (ID_BYTE[bytes[offset + i]!] === 0) return false;
  }
  return true;
}

/** Length of a NUL-padded id field from bytes (for callers without a word view), or -1. */
export function scanId(bytes: Uint8Array, offset: number): number {
  let length = 0;
  while (length < 64 && bytes[offset + length] !== 0) length++;
  let rest = 0;
  for (let i = length + 1; i < 64; i++) rest |= bytes[offset + i]!;
  if (rest !== 0 || !idBytesValid(bytes, offset, length)) return -1;
  return length;
}

/**
 * Shape check of a record: wire code of the first problem, or ok. Account id alphabets are
 * checked later, only when the id is not a known account (known ids were checked at opening).
 */
export function validateRecord(record: RecordView, base: number, scratch: DecideScratch): number {
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
  if (currencyByNumeric(words[wordBase + 50]! & 0xffff) === undefined) return Wire.unsupported_currency;
  const amountLow = words[wordBase + 48]!;
  const amountHigh = words[wordBase + 49]!;
  if (amountHigh < 0 || (amountHigh === 0 && amountLow === 0)) return Wire.invalid_amount;
  scratch.transactionIdLength = txnLength;
  scratch.fromLength = fromLength;
  scratch.toLength = toLength;
  return Wire.ok;
}

/** Fingerprint of a transaction id followed by zero bytes up to a multiple of 16 (bytes). */
export function fingerprintTransactionId(bytes: Uint8Array, offset: number, length: number, out: Uint32Array): void {
  hash128Padded(bytes, offset, length, out, TXN_KEY_SEED);
}

/** Fingerprint of a record's content region (bytes); equal to the word version below. */
export function fingerprintContent(bytes: Uint8Array, recordBase: number, out: Uint32Array): void {
  hash128Padded(bytes, recordBase + CONTENT_OFFSET, CONTENT_BYTES, out, CONTENT_SEED);
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
  outcome.sequence = 0;
  outcome.code = validateRecord(record, base, scratch);
  if (outcome.code !== Wire.ok) return;
  const key = scratch.key;
  const content = scratch.content;
  const wordBase = base >>> 2;
  hash128Words(record.words, wordBase, scratch.transactionIdLength, key, TXN_KEY_SEED);
  hash128Words(record.words, wordBase + CONTENT_OFFSET / 4, CONTENT_BYTES, content, CONTENT_SEED);
  const known = state.txns.find(key[0]!, key[1]!, key[2]!);
  if (known >= 0) {
    if (state.txns.contentMatches(known, content[0]!, content[1]!)) {
      outcome.code = state.txns.codeAt(known);
      outcome.sequence = state.txns.sequenceAt(known);
    } else {
      outcome.code = Wire.idempotency_conflict;
    }
    return;
  }
  decideAndRecord(state, record, base, events, scratch, outcome);
}

function decideAndRecord(state: LedgerState, record: RecordView, base: number, events: EventBuffer, scratch: DecideScratch, outcome: Outcome): void {
  const { bytes, words } = record;
  const wordBase = base >>> 2;
  const kind = bytes[base + RECORD_OFFSET_KIND]!;
  const currency = words[wordBase + 50]! & 0xffff;
  const amount = record.view.getBigUint64(base + RECORD_OFFSET_AMOUNT, true);
  // Customer ids first: a malformed one stops the record before anything is logged, including
  // the opening of the currency's external account.
  const fromCustomer = kind === Kind.deposit ? -1 : findAccount(state, record, base + RECORD_OFFSET_FROM, scratch.fromLength);
  const toCustomer = kind === Kind.withdrawal ? -1 : findAccount(state, record, base + RECORD_OFFSET_TO, scratch.toLength);
  if (fromCustomer === BAD_ID || toCustomer === BAD_ID) {
    outcome.code = Wire.invalid_request;
    return;
  }
  const external = kind === Kind.transfer ? -1 : ensureExternal(state, currency, events);
  const fromIndex = kind === Kind.deposit ? external : fromCustomer;
  const toIndex = kind === Kind.withdrawal ? external : toCustomer;
  const after = scratch.after;
  const code = decideTransfer(state, words, wordBase, fromIndex, toIndex, currency, amount, after);
  const sequence = state.headSequence + 1;
  encodeTransferRecorded(state, record, base, events, scratch, kind, code, currency, fromIndex, toIndex, amount);
  if (code === Wire.ok) state.applyTransferSucceeded(sequence, fromIndex, toIndex, after.from, after.to);
  else state.applyTransferRejected(sequence);
  const content = scratch.content;
  const key = scratch.key;
  state.txns.insert(key[0]!, key[1]!, key[2]!, content[0]!, content[1]!, sequence, code);
  outcome.code = code;
  outcome.sequence = sequence;
}

/** Encodes TransferRecorded (layout in events.ts) from the state before it is applied. */
function encodeTransferRecorded(
  state: LedgerState,
  record: RecordView,
  base: number,
  events: EventBuffer,
  scratch: DecideScratch,
  kind: number,
  code: number,
  currency: number,
  fromIndex: number,
  toIndex: number,
  amount: bigint,
): void {
  const txnLength = scratch.transactionIdLength;
  const at = events.begin(TRANSFER_FIXED_BYTES + txnLength + 128);
  const out = events.bytes;
  const view = events.view;
  out[at] = EventType.transferRecorded;
  out[at + 1] = kind;
  out[at + 2] = code;
  out[at + 3] = txnLength;
  out[at + 4] = currency & 0xff;
  out[at + 5] = currency >>> 8;
  view.setBigUint64(at + 16, amount, true);
  record.bytes.copy(out, at + TRANSFER_FIXED_BYTES, base, base + txnLength);
  let length = TRANSFER_FIXED_BYTES + txnLength;
  length += writeAccountRef(out, view, at, 6, 8, length, fromIndex, record.bytes, base + RECORD_OFFSET_FROM, scratch.fromLength);
  length += writeAccountRef(out, view, at, 7, 12, length, toIndex, record.bytes, base + RECORD_OFFSET_TO, scratch.toLength);
  if (code === Wire.ok) {
    view.setBigInt64(at + 24, scratch.after.from, true);
    view.setBigInt64(at + 32, scratch.after.to, true);
    writeSequence(view, at + 40, state.lastEntrySequence[fromIndex]!);
    writeSequence(view, at + 48, state.lastEntrySequence[toIndex]!);
  } else {
    out.fill(0, at + 24, at + 56);
  }
  events.commit(length);
}

function writeSequence(view: DataView, at: number, sequence: number): void {
  view.setUint32(at, sequence % 0x1_0000_0000, true);
  view.setUint32(at + 4, Math.floor(sequence / 0x1_0000_0000), true);
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
  source.copy(out, at + tail, idOffset, idOffset + idLength);
  return idLength;
}

/** findAccount result for an id that is not a customer id (bad bytes, or an external's '@'). */
const BAD_ID = -2;
const ACCOUNT_HASH_SEED = 0x9747b28c;

/** Account index, -1 when absent, or BAD_ID when the field is not a valid customer id. */
function findAccount(state: LedgerState, record: RecordView, offset: number, length: number): number {
  const bytes = record.bytes;
  if (bytes[offset] === AT_SIGN) return BAD_ID;
  const hash = hash32Words(record.words, offset >>> 2, length, ACCOUNT_HASH_SEED);
  const index = state.accounts.find(bytes, offset, length, hash);
  if (index < 0 && !idBytesValid(bytes, offset, length)) return BAD_ID;
  return index;
}

/**
 * The business rules, in order. Both indices may be -1 (not found). On success the balances
 * after the transfer are left in `after` so they are computed once.
 */
function decideTransfer(
  state: LedgerState,
  words: Int32Array,
  wordBase: number,
  fromIndex: number,
  toIndex: number,
  currency: number,
  amount: bigint,
  after: BalancesAfter,
): number {
  if (fromIndex >= 0 ? fromIndex === toIndex : sameIdFields(words, wordBase)) return Wire.same_account;
  if (fromIndex < 0 || toIndex < 0) return Wire.account_not_found;
  if (state.currencies[fromIndex] !== currency || state.currencies[toIndex] !== currency) return Wire.currency_mismatch;
  const fromAfter = state.balances[fromIndex]! - amount;
  const fromIsExternal = state.externalOf[currency] === fromIndex + 1;
  if (fromAfter < (fromIsExternal ? BALANCE_MIN : 0n)) return fromIsExternal ? Wire.balance_overflow : Wire.insufficient_funds;
  const toAfter = state.balances[toIndex]! + amount;
  if (toAfter > BALANCE_MAX) return Wire.balance_overflow;
  after.from = fromAfter;
  after.to = toAfter;
  return Wire.ok;
}

/** Balances after a successful transfer, computed once by decide and used to encode and apply. */
export class BalancesAfter {
  from = 0n;
  to = 0n;
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

export { RECORD_OFFSET_TRANSACTION_ID };
