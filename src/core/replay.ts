/**
 * evolve for logged events: applies a frame's events to the state exactly as the live path did.
 * Replay checks as it goes that each success reproduces the balances the log recorded, so a
 * divergence between code versions or machines is caught at the first event that differs.
 */
import { assert } from '../stdx/assert.js';
import { fingerprintContent, fingerprintTransactionId } from './decide.js';
import { decodeEvent, NO_INDEX, type TransferRecordedEvent } from './events.js';
import { LedgerState } from './ledger-state.js';
import { Wire } from './errors.js';
import {
  Kind,
  RECORD_BYTES,
  RECORD_OFFSET_AMOUNT,
  RECORD_OFFSET_CURRENCY,
  RECORD_OFFSET_FROM,
  RECORD_OFFSET_KIND,
  RECORD_OFFSET_TO,
} from './transfer-record.js';

export class ReplayScratch {
  readonly recordWords = new Int32Array(RECORD_BYTES / 4);
  readonly record = Buffer.from(this.recordWords.buffer);
  readonly key = new Uint32Array(4);
  readonly content = new Uint32Array(4);
}

/** Applies the `count` events of a frame body (events followed by their offset table). */
export function applyFrameBody(state: LedgerState, body: Buffer, count: number, firstSequence: number, scratch: ReplayScratch, applyCount = count): void {
  const tableStart = body.length - 4 * count;
  for (let index = 0; index < applyCount; index++) {
    const offset = body.readUInt32LE(tableStart + 4 * index);
    assert(offset < tableStart, 'event offset outside the frame body');
    const { event } = decodeEvent(body, offset);
    const sequence = firstSequence + index;
    if (event.type === 1) state.applyAccountOpened(sequence, event.accountId, event.currencyNumeric, event.owner);
    else applyTransferEvent(state, event, sequence, scratch);
  }
}

function applyTransferEvent(state: LedgerState, event: TransferRecordedEvent, sequence: number, scratch: ReplayScratch): void {
  if (event.code === Wire.ok) {
    assert(event.fromIndex !== NO_INDEX && event.toIndex !== NO_INDEX, 'successful transfer without both accounts');
    // The log records the balances after; they must follow from the balances before.
    assert(state.balanceOf(event.fromIndex) - event.amount === event.fromBalanceAfter, `replay diverged at sequence ${sequence} (source balance)`);
    assert(state.balanceOf(event.toIndex) + event.amount === event.toBalanceAfter, `replay diverged at sequence ${sequence} (destination balance)`);
    state.applyTransferSucceeded(sequence, event.fromIndex, event.toIndex, event.fromBalanceAfter, event.toBalanceAfter);
  } else {
    state.applyTransferRejected(sequence);
  }
  fingerprintTransactionId(event.transactionId, scratch.key);
  fingerprintEventContent(state, event, scratch);
  const key = scratch.key;
  const miss = state.txns.find(key[0]!, key[1]!, key[2]!);
  assert(miss < 0, `transaction id logged twice at sequence ${sequence}`);
  state.txns.insertAfterMiss(miss, key[0]!, key[1]!, key[2]!, scratch.content[0]!, scratch.content[1]!, sequence, event.code);
}

/**
 * The content fingerprint the live path computed (into scratch.content): the command record's
 * content bytes are rebuilt from the event, and the id lengths are those just written.
 */
function fingerprintEventContent(state: LedgerState, event: TransferRecordedEvent, scratch: ReplayScratch): void {
  const record = scratch.record;
  record.fill(0);
  const fromLength = event.kind === Kind.deposit ? 0 : writeAccountId(state, event.fromIndex, event.fromInline, record, RECORD_OFFSET_FROM);
  const toLength = event.kind === Kind.withdrawal ? 0 : writeAccountId(state, event.toIndex, event.toInline, record, RECORD_OFFSET_TO);
  record.writeBigUInt64LE(event.amount, RECORD_OFFSET_AMOUNT);
  record.writeUInt16LE(event.currencyNumeric, RECORD_OFFSET_CURRENCY);
  record[RECORD_OFFSET_KIND] = event.kind;
  fingerprintContent(scratch.recordWords, 0, fromLength, toLength, scratch.content);
}

/** Writes the account's id (by index, or the inline one) into the record; returns its length. */
function writeAccountId(state: LedgerState, index: number, inline: string, record: Buffer, offset: number): number {
  return index === NO_INDEX ? record.write(inline, offset, 'latin1') : state.accounts.copyId(index, record, offset);
}
