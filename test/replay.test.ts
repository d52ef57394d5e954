// Replay (core/replay.ts) reads TransferRecorded straight from the logged bytes, in rounds whose
// first pass computes keys and reads ahead. Checked here at the core, on frames built by the
// live decider:
// - a frame of many events across several rounds, with accounts opened in the middle of a round
//   and used by the transfers right after, and every kind of outcome, replays to the live digest
//   and remembers every id with its outcome;
// - a logged balance that does not follow from the balances before stops replay at that event,
//   for the source and for the destination; so does a source balance of −2^63, which the two
//   32-bit halves can hold but a ledger balance may not reach.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecideScratch, executeTransfer, Outcome, recordView } from '../src/core/decide.js';
import { stateDigest } from '../src/core/digest.js';
import { Wire } from '../src/core/errors.js';
import { EventBuffer } from '../src/core/event-buffer.js';
import { encodeAccountOpened } from '../src/core/events.js';
import { LedgerState } from '../src/core/ledger-state.js';
import { AMOUNT_MAX } from '../src/core/money.js';
import { applyFrameBody, ReplayScratch } from '../src/core/replay.js';
import { encodeTransferBatch, type TransferCommand } from '../src/core/transfer-record.js';
import { deposit, numericOf, transfer, withdrawal } from './support/ledger.js';

const USD = numericOf('USD');

type Step = TransferCommand | Readonly<{ open: string }>;

/** A frame's body: the events, then their offsets. */
type Frame = Readonly<{ body: Buffer; count: number; firstSequence: number; codes: number[]; offsets: number[] }>;

/** Runs the steps through the live core into one frame, as one engine drain would log them. */
function liveFrame(steps: readonly Step[]): { state: LedgerState; frame: Frame } {
  const state = new LedgerState();
  const events = new EventBuffer(1 << 16, 1 << 10);
  const scratch = new DecideScratch();
  const outcome = new Outcome();
  const codes: number[] = [];
  for (const step of steps) {
    if ('open' in step) {
      const at = events.begin(200);
      events.commit(encodeAccountOpened(events.bytes, at, step.open, USD, step.open));
      state.applyAccountOpened(state.headSequence + 1, step.open, USD, step.open);
      continue;
    }
    const encoded = encodeTransferBatch([step]);
    const record = Buffer.alloc(encoded.length); // not from the pool: its words are aligned
    encoded.copy(record);
    executeTransfer(state, recordView(record), 0, events, scratch, outcome);
    codes.push(outcome.code);
  }
  const count = events.count;
  const body = Buffer.alloc(events.length + 4 * count);
  events.bytes.copy(body, 0, 0, events.length);
  const offsets: number[] = [];
  for (let index = 0; index < count; index++) {
    offsets.push(events.offsets[index]!);
    body.writeUInt32LE(events.offsets[index]!, events.length + 4 * index);
  }
  return { state, frame: { body, count, firstSequence: 1, codes, offsets } };
}

function replayed(frame: Frame): LedgerState {
  const state = new LedgerState();
  applyFrameBody(state, frame.body, frame.count, frame.firstSequence, new ReplayScratch());
  return state;
}

test('a frame of many rounds, with accounts opened mid-round and every outcome, replays to the live digest', () => {
  const steps: Step[] = [];
  for (let n = 0; n < 60; n++) {
    // An account opened and used at once: within one replay round its index is past the
    // accounts the round's first pass saw.
    steps.push({ open: `acct-${n}` }, deposit(`d-${n}`, `acct-${n}`, 1_000n + BigInt(n)));
    if (n > 0) steps.push(transfer(`t-${n}`, `acct-${n}`, `acct-${n - 1}`, 7n));
    if (n % 5 === 0) steps.push(transfer(`poor-${n}`, `acct-${n}`, `acct-0`, 1_000_000n)); // insufficient_funds
    if (n % 7 === 0) steps.push(transfer(`ghost-${n}`, `acct-${n}`, `ghost-${n}`, 1n)); // account_not_found, inline id
    if (n % 9 === 0) steps.push(deposit(`dghost-${n}`, `nobody-${n}`, 1n)); // account_not_found, inline id
    if (n % 4 === 0) steps.push(withdrawal(`w-${n}`, `acct-${n}`, 3n));
    if (n % 6 === 0) steps.push(transfer(`self-${n}`, `acct-${n}`, `acct-${n}`, 1n)); // same_account
  }
  // An id logged inline right after a longer one in the same field: the bytes past its end in
  // its last word are the client's zero padding, not the longer id's.
  steps.push(
    { open: 'acct-1234567' },
    transfer('long-1', 'acct-1', 'acct-1234567', 1n),
    transfer('long-2', 'acct-1', 'ghost-12345', 1n),
    transfer('long-3', 'acct-1234567', 'acct-1', 1n),
    transfer('long-4', 'ghost-12345', 'acct-1', 1n),
  );
  const { state: live, frame } = liveFrame(steps);
  assert.ok(frame.count > 5 * 32, `the frame spans several replay rounds (${frame.count} events)`);
  const outcomes = new Set(frame.codes);
  for (const code of [Wire.ok, Wire.insufficient_funds, Wire.account_not_found, Wire.same_account]) assert.ok(outcomes.has(code), `the frame holds outcome ${code}`);

  const state = replayed(frame);
  assert.equal(state.headSequence, live.headSequence);
  assert.equal(stateDigest(state), stateDigest(live), 'replay gives the live digest (balances, ids, remembered outcomes)');
  assert.equal(state.txns.count, frame.codes.length, 'every logged id is remembered once');
});

test('a frame applied up to an event (a replay to a sequence) equals a frame that ends there', () => {
  const steps: Step[] = [];
  for (let n = 0; n < 30; n++) steps.push({ open: `a${n}` }, deposit(`d${n}`, `a${n}`, 100n), transfer(`t${n}`, `a${n}`, `a${Math.max(0, n - 1)}`, 1n));
  const { frame } = liveFrame(steps);
  for (const upTo of [1, 31, 32, 33, 64, 65, frame.count - 1]) {
    // The same events, cut after `upTo`: the bytes before event upTo, then their offsets.
    const eventsEnd = frame.offsets[upTo]!;
    const cut = Buffer.alloc(eventsEnd + 4 * upTo);
    frame.body.copy(cut, 0, 0, eventsEnd);
    for (let index = 0; index < upTo; index++) cut.writeUInt32LE(frame.offsets[index]!, eventsEnd + 4 * index);
    const partial = new LedgerState();
    applyFrameBody(partial, frame.body, frame.count, frame.firstSequence, new ReplayScratch(), upTo);
    const whole = new LedgerState();
    applyFrameBody(whole, cut, upTo, frame.firstSequence, new ReplayScratch());
    assert.equal(partial.headSequence, upTo);
    assert.equal(stateDigest(partial), stateDigest(whole), `applied up to event ${upTo}`);
  }
});

/** Offset in the frame body of the n-th event that is a TransferRecorded with outcome ok. */
function okTransferOffset(frame: Frame, nth: number): number {
  const ok = frame.offsets.filter((offset) => frame.body[offset] === 2 && frame.body[offset + 2] === Wire.ok);
  const offset = ok[nth];
  assert.ok(offset !== undefined, `the frame has ${nth + 1} successful transfers`);
  return offset;
}

/** The sequence of the event at `offset` (frames here start at sequence 1). */
function sequenceAt(frame: Frame, offset: number): number {
  return frame.offsets.indexOf(offset) + frame.firstSequence;
}

test('a logged balance that does not follow from the one before stops replay at that event', () => {
  const steps: Step[] = [{ open: 'alice' }, { open: 'bob' }, deposit('d1', 'alice', 500n), transfer('t1', 'alice', 'bob', 200n), transfer('t2', 'bob', 'alice', 50n)];
  for (const [field, side] of [
    [24, 'source'],
    [32, 'destination'],
  ] as const) {
    const { frame } = liveFrame(steps);
    const offset = okTransferOffset(frame, 1); // t1
    frame.body.writeInt32LE(frame.body.readInt32LE(offset + field) + 1, offset + field);
    assert.throws(() => replayed(frame), new RegExp(`replay diverged at sequence ${sequenceAt(frame, offset)} \\(${side} balance\\)`));
  }
  // The same frame untouched replays.
  const { state: live, frame } = liveFrame(steps);
  assert.equal(stateDigest(replayed(frame)), stateDigest(live));
});

test('a source balance of −2^63 is refused, though its halves would hold it', () => {
  // The external account reaches −(2^63 − 1), the least a balance may be; a log claiming one
  // more unit issued (−2^63, low word 0, high word −2^31) is inconsistent with any live run.
  const steps: Step[] = [{ open: 'alice' }, { open: 'bob' }, deposit('d1', 'alice', AMOUNT_MAX - 1n), deposit('d2', 'bob', 1n)];
  const { state: live, frame } = liveFrame(steps);
  assert.deepEqual(frame.codes, [Wire.ok, Wire.ok]);
  assert.equal(stateDigest(replayed(frame)), stateDigest(live), 'down to −(2^63 − 1) replays');

  const offset = okTransferOffset(frame, 1); // d2: from the external account to bob
  frame.body.writeUInt32LE(2, offset + 16); // amount 2 ...
  frame.body.writeInt32LE(0, offset + 24); // ... takes the external account to −2^63
  frame.body.writeInt32LE(-0x8000_0000, offset + 28);
  frame.body.writeInt32LE(2, offset + 32); // and bob to 2
  assert.throws(() => replayed(frame), new RegExp(`replay diverged at sequence ${sequenceAt(frame, offset)} \\(source balance\\)`));
});
