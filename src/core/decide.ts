/**
 * decide + evolve for one transfer command record, on the hot path.
 *
 * A record is validated byte by byte (it may come straight off the network), checked against
 * the remembered transaction ids, decided against the state, encoded as a TransferRecorded
 * event into the event buffer, and applied. Validation failures and idempotency conflicts are
 * answered without an event ("stopped before the ledger"); every other outcome, success or
 * business rejection, is an event with its own sequence. Pure: no I/O, no clock.
 */
import { hash128 } from '../stdx/hash.js';
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
  RECORD_OFFSET_RESERVED,
  RECORD_OFFSET_TO,
  RECORD_RESERVED_BYTES,
} from './transfer-record.js';

/** The bytes of a record that define "the same request": from, to, amount, currency, kind. */
export const CONTENT_OFFSET = RECORD_OFFSET_FROM;
export const CONTENT_BYTES = RECORD_OFFSET_RESERVED - RECORD_OFFSET_FROM;
const TXN_KEY_SEED = 0x5eed0001;
const CONTENT_SEED = 0x5eed0002;
const SYSTEM_OWNER = '@system';

/** Outcome of one record, reused across calls so the hot path allocates nothing. */
export class Outcome {
  code = 0;
  /** Log position of the recorded outcome; 0 when nothing was logged. */
  sequence = 0;
}

/** Scratch space for fingerprints; one per engine. */
export class DecideScratch {
  readonly key = new Uint32Array(4);
  readonly content = new Uint32Array(4);
}

/**
 * Length of the NUL-padded id at bytes[offset, offset+64): 1..64 for a valid id, 0 when the
 * field is entirely zero, -1 when malformed (bad byte, or a non-zero byte after the padding).
 */
export function scanId(bytes: Uint8Array, offset: number): number {
  let length = 0;
  while (length < 64 && bytes[offset + length] !== 0) {
    if (!isIdByte(bytes[offset + length]!)) return -1;
    length++;
  }
  for (let i = length + 1; i < 64; i++) {
    if (bytes[offset + i] !== 0) return -1;
  }
  return length;
}

function reservedIsZero(bytes: Uint8Array, base: number): boolean {
  for (let i = 0; i < RECORD_RESERVED_BYTES; i++) {
    if (bytes[base + RECORD_OFFSET_RESERVED + i] !== 0) return false;
  }
  return true;
}

/** Shape check of a record: wire code of the first problem, or ok. */
export function validateRecord(bytes: Buffer, base: number): number {
  const kind = bytes[base + RECORD_OFFSET_KIND]!;
  if (kind < Kind.transfer || kind > Kind.withdrawal || !reservedIsZero(bytes, base)) return Wire.invalid_request;
  if (scanId(bytes, base) < 1) return Wire.invalid_request;
  const fromLength = scanId(bytes, base + RECORD_OFFSET_FROM);
  const toLength = scanId(bytes, base + RECORD_OFFSET_TO);
  if (kind === Kind.deposit ? fromLength !== 0 : fromLength < 1) return Wire.invalid_request;
  if (kind === Kind.withdrawal ? toLength !== 0 : toLength < 1) return Wire.invalid_request;
  if (currencyByNumeric(bytes.readUInt16LE(base + RECORD_OFFSET_CURRENCY)) === undefined) return Wire.unsupported_currency;
  const amountHigh = bytes.readUInt32LE(base + RECORD_OFFSET_AMOUNT + 4);
  const amountLow = bytes.readUInt32LE(base + RECORD_OFFSET_AMOUNT);
  if (amountHigh > 0x7fffffff || (amountHigh === 0 && amountLow === 0)) return Wire.invalid_amount;
  return Wire.ok;
}

export function fingerprintTransactionId(bytes: Uint8Array, offset: number, length: number, out: Uint32Array): void {
  hash128(bytes, offset, length, out, TXN_KEY_SEED);
}

export function fingerprintContent(bytes: Uint8Array, recordBase: number, out: Uint32Array): void {
  hash128(bytes, recordBase + CONTENT_OFFSET, CONTENT_BYTES, out, CONTENT_SEED);
}

/** Decides and applies the record at `base`; fills `outcome`; appends events to `events`. */
export function executeTransfer(
  state: LedgerState,
  bytes: Buffer,
  base: number,
  events: EventBuffer,
  scratch: DecideScratch,
  outcome: Outcome,
): void {
  outcome.sequence = 0;
  outcome.code = validateRecord(bytes, base);
  if (outcome.code !== Wire.ok) return;
  const txnLength = scanId(bytes, base);
  const key = scratch.key;
  const content = scratch.content;
  fingerprintTransactionId(bytes, base, txnLength, key);
  fingerprintContent(bytes, base, content);
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
  decideAndRecord(state, bytes, base, txnLength, events, scratch, outcome);
}

function decideAndRecord(
  state: LedgerState,
  bytes: Buffer,
  base: number,
  txnLength: number,
  events: EventBuffer,
  scratch: DecideScratch,
  outcome: Outcome,
): void {
  const kind = bytes[base + RECORD_OFFSET_KIND]!;
  const currency = bytes.readUInt16LE(base + RECORD_OFFSET_CURRENCY);
  const amount = bytes.readBigUInt64LE(base + RECORD_OFFSET_AMOUNT);
  const external = kind === Kind.transfer ? -1 : ensureExternal(state, currency, events);
  const fromLength = scanId(bytes, base + RECORD_OFFSET_FROM);
  const toLength = scanId(bytes, base + RECORD_OFFSET_TO);
  const fromIndex = kind === Kind.deposit ? external : findAccount(state, bytes, base + RECORD_OFFSET_FROM, fromLength);
  const toIndex = kind === Kind.withdrawal ? external : findAccount(state, bytes, base + RECORD_OFFSET_TO, toLength);
  const code = decideTransfer(state, bytes, base, fromIndex, toIndex, currency, amount);
  const sequence = state.headSequence + 1;
  const at = events.begin(TRANSFER_FIXED_BYTES + txnLength + 128);
  const out = events.bytes;
  out[at] = EventType.transferRecorded;
  out[at + 1] = kind;
  out[at + 2] = code;
  out[at + 3] = txnLength;
  out.writeUInt16LE(currency, at + 4);
  out.writeBigUInt64LE(amount, at + 16);
  bytes.copy(out, at + TRANSFER_FIXED_BYTES, base, base + txnLength);
  let length = TRANSFER_FIXED_BYTES + txnLength;
  length += writeAccountRef(out, at, 6, 8, length, fromIndex, bytes, base + RECORD_OFFSET_FROM, fromLength);
  length += writeAccountRef(out, at, 7, 12, length, toIndex, bytes, base + RECORD_OFFSET_TO, toLength);
  if (code === Wire.ok) {
    out.writeBigInt64LE(state.balances[fromIndex]! - amount, at + 24);
    out.writeBigInt64LE(state.balances[toIndex]! + amount, at + 32);
    out.writeBigUInt64LE(BigInt(state.lastEntrySequence[fromIndex]!), at + 40);
    out.writeBigUInt64LE(BigInt(state.lastEntrySequence[toIndex]!), at + 48);
    state.applyTransferSucceeded(sequence, fromIndex, toIndex, amount);
  } else {
    out.fill(0, at + 24, at + 56);
    state.applyTransferRejected(sequence);
  }
  events.commit(length);
  const content = scratch.content;
  const key = scratch.key;
  state.txns.insert(key[0]!, key[1]!, key[2]!, content[0]!, content[1]!, sequence, code);
  outcome.code = code;
  outcome.sequence = sequence;
}

/** Writes an account reference (index, or inline id when absent); returns inline bytes added. */
function writeAccountRef(
  out: Buffer,
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
    out.writeUInt32LE(index, at + indexField);
    return 0;
  }
  out[at + lengthField] = idLength;
  out.writeUInt32LE(NO_INDEX, at + indexField);
  source.copy(out, at + tail, idOffset, idOffset + idLength);
  return idLength;
}

function findAccount(state: LedgerState, bytes: Uint8Array, offset: number, length: number): number {
  return state.accounts.find(bytes, offset, length, IdTable.hashOf(bytes, offset, length));
}

/** The business rules, in order. Both indices may be -1 (not found). */
function decideTransfer(
  state: LedgerState,
  bytes: Uint8Array,
  base: number,
  fromIndex: number,
  toIndex: number,
  currency: number,
  amount: bigint,
): number {
  if (fromIndex >= 0 ? fromIndex === toIndex : sameIdFields(bytes, base)) return Wire.same_account;
  if (fromIndex < 0 || toIndex < 0) return Wire.account_not_found;
  if (state.currencies[fromIndex] !== currency || state.currencies[toIndex] !== currency) return Wire.currency_mismatch;
  const fromBalance = state.balances[fromIndex]!;
  const fromIsExternal = state.isExternal(fromIndex);
  if (!fromIsExternal && fromBalance < amount) return Wire.insufficient_funds;
  if (state.balances[toIndex]! > BALANCE_MAX - amount) return Wire.balance_overflow;
  if (fromIsExternal && fromBalance - amount < BALANCE_MIN) return Wire.balance_overflow;
  return Wire.ok;
}

function sameIdFields(bytes: Uint8Array, base: number): boolean {
  for (let i = 0; i < 64; i++) {
    if (bytes[base + RECORD_OFFSET_FROM + i] !== bytes[base + RECORD_OFFSET_TO + i]) return false;
  }
  return true;
}

/** Opens the currency's external account on first use (an AccountOpened event). */
function ensureExternal(state: LedgerState, currency: number, events: EventBuffer): number {
  const existing = state.externalOf[currency]!;
  if (existing > 0) return existing - 1;
  const code = currencyByNumeric(currency)?.code;
  if (code === undefined) throw new Error('ensureExternal: validated currency has no code');
  const id = externalAccountId(code);
  const at = events.begin(ACCOUNT_OPENED_FIXED_BYTES + id.length + SYSTEM_OWNER.length);
  events.commit(encodeAccountOpened(events.bytes, at, id, currency, SYSTEM_OWNER));
  return state.applyAccountOpened(state.headSequence + 1, id, currency, SYSTEM_OWNER);
}

export { RECORD_BYTES };
