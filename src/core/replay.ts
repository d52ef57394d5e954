/**
 * evolve for logged events: applies a frame's events to the state exactly as the live path did.
 * Replay checks as it goes that each success reproduces the balances the log recorded, so a
 * divergence between code versions or machines is caught at the first event that differs.
 */
import { assert } from '../stdx/assert.js';
import { balanceMinus, balancePlus, belowBalanceMin, fingerprintContent, fingerprintTransactionIdBytes, lastLowWord } from './decide.js';
import { decodeEvent, EventType, NO_INDEX, TRANSFER_FIXED_BYTES } from './events.js';
import { ACCOUNT_WORDS, LedgerState } from './ledger-state.js';
import { Wire } from './errors.js';
import {
  Kind,
  RECORD_BYTES,
  RECORD_OFFSET_AMOUNT,
  RECORD_OFFSET_CURRENCY,
  RECORD_OFFSET_FROM,
  RECORD_OFFSET_TO,
} from './transfer-record.js';

export class ReplayScratch {
  /** The command record rebuilt from an event, for its content fingerprint (only the words it reads are written). */
  readonly recordWords = new Int32Array(RECORD_BYTES / 4);
  readonly record = new Uint8Array(this.recordWords.buffer);
  readonly key = new Uint32Array(4);
  readonly content = new Uint32Array(4);
  /** A round's transfers, in order: their transaction-id keys (KEY_WORDS each), computed while their misses are in flight. */
  readonly roundKeys = new Uint32Array(REPLAY_ROUND_EVENTS * KEY_WORDS);
  /** A round's transfers, in order: their two account indices (-1: none to read). */
  readonly roundAccounts = new Int32Array(2 * REPLAY_ROUND_EVENTS);
  /** Feeds nothing: keeps the prefetch reads from being optimized away. */
  prefetchChecksum = 0;
}

/**
 * Events a replay round looks ahead over. Each transfer misses the cache on its two account
 * records, their ids and its transaction slot: a first pass over the round reads them all, so
 * the misses overlap, as the live path's prefetch does (decide.ts); a second applies in order.
 */
const REPLAY_ROUND_EVENTS = 32;
const KEY_WORDS = 3;

/**
 * Applies the `count` events of a frame body (events followed by their offset table), in rounds
 * of REPLAY_ROUND_EVENTS. TransferRecorded, nearly every event, is read straight from the bytes
 * (applyTransferRecorded); AccountOpened is decoded.
 */
export function applyFrameBody(state: LedgerState, body: Buffer, count: number, firstSequence: number, scratch: ReplayScratch, applyCount = count): void {
  const tableStart = body.length - 4 * count;
  for (let first = 0; first < applyCount; first += REPLAY_ROUND_EVENTS) {
    const end = Math.min(applyCount, first + REPLAY_ROUND_EVENTS);
    prefetchRound(state, body, tableStart, first, end, scratch);
    let transfer = 0; // the round's transfers are taken in the order prefetchRound found them
    for (let index = first; index < end; index++) {
      const offset = body.readUInt32LE(tableStart + 4 * index);
      const sequence = firstSequence + index;
      if (body[offset] === EventType.transferRecorded) {
        applyTransferRecorded(state, body, offset, tableStart, sequence, scratch, transfer++ * KEY_WORDS);
        continue;
      }
      const { event } = decodeEvent(body, offset);
      assert(event.type === EventType.accountOpened, 'TransferRecorded read as AccountOpened');
      state.applyAccountOpened(sequence, event.accountId, event.currencyNumeric, event.owner);
    }
  }
}

/**
 * First pass of a round, reads only (the state is unchanged, so the second pass applies exactly
 * as without it): checks each event's offset and computes each transfer's transaction-id key
 * into scratch.roundKeys; then, in loops of loads alone so that many misses are in flight at
 * once, reads each key's first slot and each account's record and id.
 */
function prefetchRound(state: LedgerState, body: Buffer, tableStart: number, first: number, end: number, scratch: ReplayScratch): void {
  const keys = scratch.roundKeys;
  const accounts = scratch.roundAccounts;
  const key = scratch.key;
  const accountCount = state.accountCount;
  let transfers = 0;
  for (let index = first; index < end; index++) {
    const offset = body.readUInt32LE(tableStart + 4 * index);
    assert(offset < tableStart, 'event offset outside the frame body');
    if (body[offset] !== EventType.transferRecorded) continue;
    const txnLength = body[offset + 3]!;
    assert(offset + TRANSFER_FIXED_BYTES + txnLength <= tableStart, 'event runs past the frame body');
    fingerprintTransactionIdBytes(body, offset + TRANSFER_FIXED_BYTES, txnLength, key);
    const at = transfers * KEY_WORDS;
    keys[at] = key[0]!;
    keys[at + 1] = key[1]!;
    keys[at + 2] = key[2]!;
    const fromIndex = body.readUInt32LE(offset + 8);
    const toIndex = body.readUInt32LE(offset + 12);
    // Indices past the accounts so far (NO_INDEX, or opened later in the round) are not read.
    accounts[2 * transfers] = fromIndex < accountCount ? fromIndex : -1;
    accounts[2 * transfers + 1] = toIndex < accountCount ? toIndex : -1;
    transfers++;
  }
  const txns = state.txns;
  const ints = state.ints;
  const ids = state.accounts;
  let checksum = 0;
  for (let i = 0; i < transfers; i++) checksum ^= txns.touch(keys[i * KEY_WORDS]!);
  for (let i = 0; i < 2 * transfers; i++) {
    const index = accounts[i]!;
    if (index >= 0) checksum ^= ints[index * ACCOUNT_WORDS]! ^ ints[index * ACCOUNT_WORDS + ACCOUNT_WORDS - 1]! ^ ids.touchIdPlace(index);
  }
  for (let i = 0; i < 2 * transfers; i++) {
    const index = accounts[i]!;
    if (index >= 0) checksum ^= ids.touchIdWords(index);
  }
  scratch.prefetchChecksum ^= checksum;
}

/**
 * Evolve for TransferRecorded, from the event's bytes (layout in events.ts): what decoding it
 * and applying the fields would do, without the strings and bigints that cost replay about
 * 2.5 µs a transfer. A success must reproduce the balances the log recorded from the balances
 * before; both are compared as exact i64 halves, as decide computes them.
 */
function applyTransferRecorded(state: LedgerState, body: Buffer, offset: number, limit: number, sequence: number, scratch: ReplayScratch, keyAt: number): void {
  const kind = body[offset + 1]!;
  const code = body[offset + 2]!;
  const txnLength = body[offset + 3]!;
  const fromInlineLength = body[offset + 6]!;
  const toInlineLength = body[offset + 7]!;
  const idStart = offset + TRANSFER_FIXED_BYTES;
  assert(idStart + txnLength + fromInlineLength + toInlineLength <= limit, 'event runs past the frame body');
  const fromIndex = body.readUInt32LE(offset + 8);
  const toIndex = body.readUInt32LE(offset + 12);
  const amountLow = body.readUInt32LE(offset + 16);
  const amountHigh = body.readInt32LE(offset + 20);
  if (code === Wire.ok) {
    assert(fromIndex !== NO_INDEX && toIndex !== NO_INDEX, 'successful transfer without both accounts');
    const fromLow = body.readInt32LE(offset + 24);
    const fromHigh = body.readInt32LE(offset + 28);
    const toLow = body.readInt32LE(offset + 32);
    const toHigh = body.readInt32LE(offset + 36);
    assert(subtractsTo(state, fromIndex, amountLow, amountHigh, fromLow, fromHigh), `replay diverged at sequence ${sequence} (source balance)`);
    assert(addsTo(state, toIndex, amountLow, amountHigh, toLow, toHigh), `replay diverged at sequence ${sequence} (destination balance)`);
    state.applyTransferSucceededWords(sequence, fromIndex, toIndex, fromLow, fromHigh, toLow, toHigh);
  } else {
    state.applyTransferRejected(sequence);
  }
  const fromInlineStart = idStart + txnLength;
  const words = scratch.recordWords;
  const fromLength = kind === Kind.deposit ? 0 : writeAccountId(state, fromIndex, body, fromInlineStart, fromInlineLength, scratch, RECORD_OFFSET_FROM);
  const toLength = kind === Kind.withdrawal ? 0 : writeAccountId(state, toIndex, body, fromInlineStart + fromInlineLength, toInlineLength, scratch, RECORD_OFFSET_TO);
  // The record's tail as the client sent it: amount, currency, kind, zero reserved bytes.
  words[RECORD_OFFSET_AMOUNT / 4] = amountLow;
  words[RECORD_OFFSET_AMOUNT / 4 + 1] = amountHigh;
  words[RECORD_OFFSET_CURRENCY / 4] = body.readUInt16LE(offset + 4) | (kind << 16);
  words[RECORD_OFFSET_CURRENCY / 4 + 1] = 0;
  fingerprintContent(words, 0, fromLength, toLength, scratch.content);
  const keys = scratch.roundKeys;
  const miss = state.txns.find(keys[keyAt]!, keys[keyAt + 1]!, keys[keyAt + 2]!);
  assert(miss < 0, `transaction id logged twice at sequence ${sequence}`);
  state.txns.insertAfterMiss(miss, keys[keyAt]!, keys[keyAt + 1]!, keys[keyAt + 2]!, scratch.content[0]!, scratch.content[1]!, sequence, code);
}

/** Whether the account's balance minus the amount is exactly (low, high), a balance decide could have logged. */
function subtractsTo(state: LedgerState, index: number, amountLow: number, amountHigh: number, low: number, high: number): boolean {
  const resultHigh = balanceMinus(state, index, amountLow, amountHigh);
  const resultLow = lastLowWord();
  return resultHigh === high && resultLow === low && !belowBalanceMin(resultHigh, resultLow);
}

/** Whether the account's balance plus the amount is exactly (low, high); a sum past 2^63 − 1 has no int32 high word to match. */
function addsTo(state: LedgerState, index: number, amountLow: number, amountHigh: number, low: number, high: number): boolean {
  return balancePlus(state, index, amountLow, amountHigh) === high && lastLowWord() === low;
}

/**
 * Writes the account's id into the record's field at `fieldOffset` as the client sent it (the
 * words the content fingerprint reads: the id, zero-padded to a word): from the id table by
 * index, or the bytes logged inline; returns its length.
 */
function writeAccountId(state: LedgerState, index: number, body: Buffer, inlineStart: number, inlineLength: number, scratch: ReplayScratch, fieldOffset: number): number {
  if (index !== NO_INDEX) return state.accounts.copyIdWords(index, scratch.recordWords, fieldOffset / 4);
  assert(inlineLength >= 1, 'an account logged neither by index nor inline');
  scratch.recordWords[(fieldOffset + inlineLength - 1) >>> 2] = 0;
  const record = scratch.record;
  for (let i = 0; i < inlineLength; i++) record[fieldOffset + i] = body[inlineStart + i]!;
  return inlineLength;
}
