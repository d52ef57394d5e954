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
  private readonly recordWordsStore = new Int32Array(RECORD_BYTES / 4);
  readonly recordWords = this.recordWordsStore;
  readonly record = Buffer.from(this.recordWordsStore.buffer);
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
  rebuildCommandRecord(state, event, scratch.record);
  fingerprintTransactionId(event.transactionId, scratch.key);
  const fromLength = event.kind === Kind.deposit ? 0 : event.fromIndex === NO_INDEX ? event.fromInline.length : state.accounts.lengthOf(event.fromIndex);
  const toLength = event.kind === Kind.withdrawal ? 0 : event.toIndex === NO_INDEX ? event.toInline.length : state.accounts.lengthOf(event.toIndex);
  fingerprintContent(scratch.recordWords, 0, fromLength, toLength, scratch.content);
  const key = scratch.key;
  const miss = state.txns.find(key[0]!, key[1]!, key[2]!);
  assert(miss < 0, `transaction id logged twice at sequence ${sequence}`);
  state.txns.insertAfterMiss(miss, key[0]!, key[1]!, key[2]!, scratch.content[0]!, scratch.content[1]!, sequence, event.code);
}

/** Rebuilds the canonical command record's content bytes, for the content fingerprint. */
function rebuildCommandRecord(state: LedgerState, event: TransferRecordedEvent, record: Buffer): void {
  record.fill(0);
  if (event.kind !== Kind.deposit) writeAccountId(state, event.fromIndex, event.fromInline, record, RECORD_OFFSET_FROM);
  if (event.kind !== Kind.withdrawal) writeAccountId(state, event.toIndex, event.toInline, record, RECORD_OFFSET_TO);
  record.writeBigUInt64LE(event.amount, RECORD_OFFSET_AMOUNT);
  record.writeUInt16LE(event.currencyNumeric, RECORD_OFFSET_CURRENCY);
  record[RECORD_OFFSET_KIND] = event.kind;
}

function writeAccountId(state: LedgerState, index: number, inline: string, record: Buffer, offset: number): void {
  if (index === NO_INDEX) record.write(inline, offset, 'latin1');
  else state.accounts.copyId(index, record, offset);
}
