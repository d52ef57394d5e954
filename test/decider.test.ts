// Decider tests for every transfer rule and result code, written as given / when / then.
//
// given: events and commands applied to a fresh LedgerState through the pure core (the same
// executeTransfer the engine runs, no I/O); when: one 208-byte command record, sometimes with
// bytes changed by hand to make it malformed; then: the outcome's wire code and sequence, the
// events it emitted (decoded from the event buffer), and the balances after. Every scene is
// also replayed from its emitted events into a second, fresh state, which must reach the same
// digest and give the same answer to a retry: that is what a restart does.
//
// Account opening lives in the engine (not in decide), so its rules are checked on a real
// ledger in a temp directory. money.ts parsing and formatting close the file.
import { test, describe } from 'node:test';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { currencyByCode } from '../src/core/currency.js';
import {
  DecideScratch,
  executeTransfer,
  executeTransferBatch,
  idFieldLength,
  Outcome,
  PREPARED_FROM_INDEX,
  PREPARED_TO_INDEX,
  PREPARED_WORDS,
  prepareRecords,
  recordView,
} from '../src/core/decide.js';
import { IdTable, IdTableReader } from '../src/core/id-table.js';
import { stateDigest } from '../src/core/digest.js';
import { Wire, type ErrorCode } from '../src/core/errors.js';
import { EventBuffer } from '../src/core/event-buffer.js';
import { decodeEvent, encodeAccountOpened, NO_INDEX, type LedgerEvent, type TransferRecordedEvent } from '../src/core/events.js';
import { LedgerState } from '../src/core/ledger-state.js';
import { AMOUNT_MAX, formatAmount, parseAmount } from '../src/core/money.js';
import { applyFrameBody, ReplayScratch } from '../src/core/replay.js';
import { encodeTransferBatch, Kind, RECORD_OFFSET_AMOUNT, RECORD_OFFSET_CURRENCY, RECORD_OFFSET_FROM, RECORD_OFFSET_KIND, RECORD_OFFSET_TO, type TransferCommand } from '../src/core/transfer-record.js';
import { deposit, inTempDir, numericOf, submit, transfer, withdrawal, withLedger } from './support/ledger.js';

const MAX = AMOUNT_MAX; // 2^63 - 1
const USD = numericOf('USD');

type Step = TransferCommand | Readonly<{ open: string; currency: string; owner?: string }>;

function opened(open: string, currency = 'USD', owner = `owner-${open}`): Step {
  return { open, currency, owner };
}

type Then = Readonly<{
  code: number;
  sequence: number;
  /** Events the `when` record emitted, in order. */
  events: LedgerEvent[];
  scene: Scene;
  digestBefore: string;
  /** The `when` record's bytes, for a retry. */
  record: Buffer;
}>;

/**
 * A LedgerState driven through the pure core. Every event ever emitted is kept as a frame body
 * so the scene can be replayed into a fresh state.
 */
class Scene {
  readonly state = new LedgerState();
  private readonly buffer = new EventBuffer(1 << 12, 64);
  private readonly scratch = new DecideScratch();
  private readonly outcome = new Outcome();
  private readonly frames: Array<{ body: Buffer; count: number; firstSequence: number }> = [];

  apply(step: Step): { code: number; sequence: number; events: LedgerEvent[] } {
    const firstSequence = this.state.headSequence + 1;
    this.buffer.reset();
    let code = 0;
    let sequence = 0;
    if ('open' in step) {
      const currency = currencyByCode(step.currency);
      assert.ok(currency !== undefined);
      const at = this.buffer.begin(300);
      this.buffer.commit(encodeAccountOpened(this.buffer.bytes, at, step.open, currency.numeric, step.owner ?? step.open));
      this.state.applyAccountOpened(firstSequence, step.open, currency.numeric, step.owner ?? step.open);
      sequence = firstSequence;
    } else {
      ({ code, sequence } = this.execute(encodeTransferBatch([step])));
    }
    return { code, sequence, events: this.keepFrame(firstSequence) };
  }

  /** Runs one raw record (possibly malformed) through executeTransfer. */
  execute(record: Buffer): { code: number; sequence: number } {
    this.buffer.reset();
    executeTransfer(this.state, recordView(alignedCopy(record)), 0, this.buffer, this.scratch, this.outcome);
    return { code: this.outcome.code, sequence: this.outcome.sequence };
  }

  when(record: Buffer | TransferCommand): Then {
    const bytes = Buffer.isBuffer(record) ? record : encodeTransferBatch([record]);
    const digestBefore = stateDigest(this.state);
    const firstSequence = this.state.headSequence + 1;
    const { code, sequence } = this.execute(bytes);
    const events = this.keepFrame(firstSequence);
    return { code, sequence, events, scene: this, digestBefore, record: bytes };
  }

  /** A fresh state rebuilt from every event emitted so far, as recovery would. */
  replayed(): Scene {
    const copy = new Scene();
    const scratch = new ReplayScratch();
    for (const frame of this.frames) applyFrameBody(copy.state, frame.body, frame.count, frame.firstSequence, scratch);
    copy.frames.push(...this.frames);
    return copy;
  }

  balance(accountId: string): bigint | undefined {
    const index = this.state.accounts.findString(accountId);
    return index < 0 ? undefined : this.state.balanceOf(index);
  }

  private keepFrame(firstSequence: number): LedgerEvent[] {
    const count = this.buffer.count;
    // The events are applied already: their sequences are the ones just consumed.
    assert.equal(this.state.headSequence, firstSequence + count - 1, 'one sequence per emitted event');
    if (count === 0) return [];
    const body = Buffer.alloc(this.buffer.length + 4 * count);
    this.buffer.bytes.copy(body, 0, 0, this.buffer.length);
    for (let index = 0; index < count; index++) body.writeUInt32LE(this.buffer.offsets[index]!, this.buffer.length + 4 * index);
    this.frames.push({ body, count, firstSequence });
    const events: LedgerEvent[] = [];
    for (let index = 0; index < count; index++) events.push(decodeEvent(body, this.buffer.offsets[index]!).event);
    return events;
  }
}

function alignedCopy(record: Buffer): Buffer {
  const copy = Buffer.alloc(record.length);
  record.copy(copy);
  return copy;
}

function given(...steps: Step[]): Scene {
  const scene = new Scene();
  for (const step of steps) scene.apply(step);
  return scene;
}

function codeName(wire: number): string {
  return Object.entries(Wire).find(([, value]) => value === wire)?.[0] ?? `wire ${wire}`;
}

/** then: a logged outcome (success or business rejection) with its event and sequence. */
function thenLogged(then: Then, code: ErrorCode, sequence: number): TransferRecordedEvent {
  assert.equal(codeName(then.code), code);
  assert.equal(then.sequence, sequence, 'sequence of the logged outcome');
  const recorded = then.events.filter((event): event is TransferRecordedEvent => event.type === 2);
  assert.equal(recorded.length, 1, 'exactly one TransferRecorded event');
  const event = recorded[0]!;
  assert.equal(codeName(event.code), code, 'the event carries the outcome code');
  assert.equal(then.scene.state.headSequence, sequence, 'the transfer event is the newest');
  thenReplayAgrees(then);
  return event;
}

/** then: stopped before the ledger — sequence 0, no event, state unchanged. */
function thenStopped(then: Then, code: ErrorCode): void {
  assert.equal(codeName(then.code), code);
  assert.equal(then.sequence, 0, 'nothing logged: sequence 0');
  assert.deepEqual(then.events, [], 'no event emitted');
  assert.equal(stateDigest(then.scene.state), then.digestBefore, 'state unchanged');
}

/** The events alone rebuild the same state, and a retry of the `when` record agrees. */
function thenReplayAgrees(then: Then): void {
  const replayed = then.scene.replayed();
  assert.equal(stateDigest(replayed.state), stateDigest(then.scene.state), 'replaying the emitted events gives the same digest');
  const retry = replayed.when(then.record);
  assert.deepEqual([codeName(retry.code), retry.sequence], [codeName(then.code), then.sequence], 'a retry after the replay gets the first outcome');
  assert.deepEqual(retry.events, [], 'a retry after the replay logs nothing');
}

/** Bytes of a command record, for hand-made malformed variants. */
function bytesOf(command: TransferCommand, edit?: (bytes: Buffer) => void): Buffer {
  const bytes = encodeTransferBatch([command]);
  edit?.(bytes);
  return bytes;
}

const funded = (): Step[] => [opened('alice'), opened('bob'), opened('eve', 'EUR'), deposit('d-alice', 'alice', 10_000n)];
// Sequences in `funded`: alice 1, bob 2, eve 3, @external:USD 4 (opened by the first deposit), d-alice 5.

describe('transfer: success', () => {
  test('given a funded account, when it transfers, then both balances move and one event records the balances after', () => {
    const then = given(...funded()).when(transfer('t1', 'alice', 'bob', 2_500n));
    const event = thenLogged(then, 'ok', 6);
    assert.equal(event.kind, Kind.transfer);
    assert.equal(event.transactionId, 't1');
    assert.equal(event.amount, 2_500n);
    assert.equal(event.currencyNumeric, USD);
    assert.deepEqual([event.fromIndex, event.toIndex], [0, 1], 'accounts by index (opening order)');
    assert.deepEqual([event.fromBalanceAfter, event.toBalanceAfter], [7_500n, 2_500n]);
    assert.deepEqual([event.fromPreviousSequence, event.toPreviousSequence], [5, 0], 'statement back-pointers: alice last moved at 5, bob never');
    assert.equal(then.scene.balance('alice'), 7_500n);
    assert.equal(then.scene.balance('bob'), 2_500n);
    assert.equal(then.scene.balance('@external:USD'), -10_000n);
  });

  test('given no external account yet, when the first deposit arrives, then @external:USD is opened first and goes negative', () => {
    const then = given(opened('alice')).when(deposit('d1', 'alice', 700n));
    assert.equal(then.events.length, 2);
    const [openedEvent] = then.events;
    assert.deepEqual(openedEvent, { type: 1, accountId: '@external:USD', currencyNumeric: USD, owner: '@system' });
    const event = thenLogged(then, 'ok', 3);
    assert.equal(event.kind, Kind.deposit);
    assert.deepEqual([event.fromIndex, event.toIndex], [1, 0]);
    assert.deepEqual([event.fromBalanceAfter, event.toBalanceAfter], [-700n, 700n]);
    assert.equal(then.scene.balance('@external:USD'), -700n);
  });

  test('given a funded account, when it withdraws, then money leaves through the external account', () => {
    const then = given(...funded()).when(withdrawal('w1', 'alice', 4_000n));
    const event = thenLogged(then, 'ok', 6);
    assert.equal(event.kind, Kind.withdrawal);
    assert.deepEqual([event.fromBalanceAfter, event.toBalanceAfter], [6_000n, -6_000n]);
    assert.equal(then.scene.balance('alice'), 6_000n);
    assert.equal(then.scene.balance('@external:USD'), -6_000n);
  });

  test('given a funded account, when it transfers its whole balance, then it reaches exactly zero', () => {
    const then = given(...funded()).when(transfer('t1', 'alice', 'bob', 10_000n));
    thenLogged(then, 'ok', 6);
    assert.equal(then.scene.balance('alice'), 0n);
  });

  test('given a 64-character transaction id, when used, then it is accepted (the field is full, no NUL)', () => {
    const id = 'x'.repeat(64);
    const then = given(...funded()).when(transfer(id, 'alice', 'bob', 1n));
    assert.equal(thenLogged(then, 'ok', 6).transactionId, id);
  });
});

describe('transfer: business rejections are logged with their own sequence', () => {
  test('insufficient_funds: one minor unit more than the balance; nothing moves', () => {
    const then = given(...funded()).when(transfer('t1', 'alice', 'bob', 10_001n));
    const event = thenLogged(then, 'insufficient_funds', 6);
    assert.deepEqual([event.fromBalanceAfter, event.toBalanceAfter], [0n, 0n], 'a rejection records no balances');
    assert.equal(then.scene.balance('alice'), 10_000n);
    assert.equal(then.scene.balance('bob'), 0n);
  });

  test('insufficient_funds: a withdrawal beyond the balance', () => {
    thenLogged(given(...funded()).when(withdrawal('w1', 'alice', 10_001n)), 'insufficient_funds', 6);
  });

  test('currency_mismatch: the destination holds another currency', () => {
    const then = given(...funded()).when(transfer('t1', 'alice', 'eve', 1n));
    thenLogged(then, 'currency_mismatch', 6);
    assert.equal(then.scene.balance('alice'), 10_000n);
  });

  test('currency_mismatch: the source holds another currency', () => {
    const then = given(...funded(), deposit('d-eve', 'eve', 50n, 'EUR')).when(transfer('t1', 'eve', 'bob', 1n, 'USD'));
    thenLogged(then, 'currency_mismatch', 8); // @external:EUR 6, d-eve 7
    assert.equal(then.scene.balance('eve'), 50n);
  });

  test('currency_mismatch: both accounts hold USD but the transfer says EUR', () => {
    thenLogged(given(...funded()).when(transfer('t1', 'alice', 'bob', 1n, 'EUR')), 'currency_mismatch', 6);
  });

  test('currency_mismatch: a deposit in USD into a EUR account', () => {
    thenLogged(given(...funded()).when(deposit('d2', 'eve', 1n, 'USD')), 'currency_mismatch', 6);
  });

  test('same_account: a transfer to itself, even with funds', () => {
    const then = given(...funded()).when(transfer('t1', 'alice', 'alice', 1n));
    thenLogged(then, 'same_account', 6);
    assert.equal(then.scene.balance('alice'), 10_000n);
  });

  test('same_account: also between two ids that do not exist (checked before account_not_found)', () => {
    thenLogged(given(...funded()).when(transfer('t1', 'ghost', 'ghost', 1n)), 'same_account', 6);
  });

  test('account_not_found: unknown destination, logged with the id inline', () => {
    const then = given(...funded()).when(transfer('t1', 'alice', 'nobody', 1n));
    const event = thenLogged(then, 'account_not_found', 6);
    assert.equal(event.fromIndex, 0);
    assert.equal(event.toIndex, NO_INDEX);
    assert.equal(event.toInline, 'nobody');
    assert.equal(event.fromInline, '');
    assert.equal(then.scene.balance('alice'), 10_000n);
    assert.equal(then.scene.balance('nobody'), undefined, 'a rejection opens no account');
  });

  test('account_not_found: unknown source, logged with the id inline', () => {
    const event = thenLogged(given(...funded()).when(transfer('t1', 'ghost', 'bob', 1n)), 'account_not_found', 6);
    assert.equal(event.fromIndex, NO_INDEX);
    assert.equal(event.fromInline, 'ghost');
    assert.equal(event.toIndex, 1);
  });

  test('account_not_found: both unknown, both inline', () => {
    const event = thenLogged(given(...funded()).when(transfer('t1', 'ghost', 'nobody', 1n)), 'account_not_found', 6);
    assert.deepEqual([event.fromInline, event.toInline], ['ghost', 'nobody']);
  });

  test('account_not_found: a deposit to, and a withdrawal from, an unknown account', () => {
    const then = given(...funded()).when(deposit('d2', 'nobody', 1n));
    assert.equal(thenLogged(then, 'account_not_found', 6).toInline, 'nobody');
    const again = then.scene.when(withdrawal('w2', 'ghost', 1n));
    assert.equal(thenLogged(again, 'account_not_found', 7).fromInline, 'ghost');
    assert.equal(then.scene.balance('@external:USD'), -10_000n);
  });

  test('balance_overflow: the external account may not go below -(2^63-1)', () => {
    const scene = given(opened('alice'), opened('bob'), deposit('d1', 'alice', MAX));
    assert.equal(scene.balance('@external:USD'), -MAX, 'exactly at the limit is allowed');
    const then = scene.when(deposit('d2', 'bob', 1n));
    thenLogged(then, 'balance_overflow', 5);
    assert.equal(scene.balance('bob'), 0n);
    assert.equal(scene.balance('@external:USD'), -MAX);
  });

  test('balance_overflow: the destination may not exceed 2^63-1', () => {
    // Unreachable through commands while every currency sums to zero (no customer can hold
    // more than the external account's -(2^63-1) put in), so the given state is set through
    // evolve directly: bob at the maximum, alice with 5.
    const scene = given(opened('alice'), opened('bob'), opened('@external:USD', 'USD', '@system'));
    scene.state.applyTransferSucceeded(4, 2, 1, -MAX, MAX);
    scene.state.applyTransferSucceeded(5, 2, 0, -MAX + 5n, 5n);
    const then = scene.when(transfer('t1', 'alice', 'bob', 1n));
    assert.equal(codeName(then.code), 'balance_overflow');
    assert.equal(then.sequence, 6);
    assert.equal(scene.balance('bob'), MAX);
    assert.equal(scene.balance('alice'), 5n);
  });

  test('insufficient_funds is decided before balance_overflow', () => {
    const scene = given(opened('alice'), opened('bob'), opened('@external:USD', 'USD', '@system'));
    scene.state.applyTransferSucceeded(4, 2, 1, -MAX, MAX);
    const then = scene.when(transfer('t1', 'alice', 'bob', 1n));
    assert.equal(codeName(then.code), 'insufficient_funds');
  });
});

describe('idempotency: a transaction id is unique forever', () => {
  test('same id, same content after a success: the original code and sequence, nothing applied twice', () => {
    const scene = given(...funded(), transfer('t1', 'alice', 'bob', 2_500n), deposit('d2', 'alice', 1n));
    const then = scene.when(transfer('t1', 'alice', 'bob', 2_500n));
    assert.equal(codeName(then.code), 'ok');
    assert.equal(then.sequence, 6, 'the first outcome’s sequence');
    assert.deepEqual(then.events, []);
    assert.equal(stateDigest(scene.state), then.digestBefore, 'nothing applied again');
    assert.equal(scene.balance('bob'), 2_500n);
  });

  test('same id, same content after a logged rejection: the rejection again, even once it would now succeed', () => {
    const scene = given(...funded(), transfer('t1', 'alice', 'bob', 50_000n), deposit('d2', 'alice', 100_000n));
    const then = scene.when(transfer('t1', 'alice', 'bob', 50_000n));
    assert.equal(codeName(then.code), 'insufficient_funds');
    assert.equal(then.sequence, 6);
    assert.equal(stateDigest(scene.state), then.digestBefore);
    assert.equal(scene.balance('bob'), 0n);
  });

  test('same id, same content after account_not_found (inline ids): the rejection again after the account exists', () => {
    const scene = given(...funded(), transfer('t1', 'alice', 'carol', 5n), opened('carol'));
    const then = scene.when(transfer('t1', 'alice', 'carol', 5n));
    assert.equal(codeName(then.code), 'account_not_found');
    assert.equal(then.sequence, 6);
  });

  for (const [name, other] of [
    ['a different amount', transfer('t1', 'alice', 'bob', 2_501n)],
    ['a different destination', transfer('t1', 'alice', 'carol', 2_500n)],
    ['a different source', transfer('t1', 'bob', 'alice', 2_500n)],
    ['a different currency', transfer('t1', 'alice', 'bob', 2_500n, 'EUR')],
    ['a different kind', withdrawal('t1', 'alice', 2_500n)],
  ] as const) {
    test(`same id, ${name}: idempotency_conflict, sequence 0, nothing changed`, () => {
      const scene = given(...funded(), opened('carol'), transfer('t1', 'alice', 'bob', 2_500n));
      thenStopped(scene.when(other), 'idempotency_conflict');
      assert.equal(scene.balance('alice'), 7_500n);
    });
  }

  test('same id, different content after a logged rejection: idempotency_conflict', () => {
    const scene = given(...funded(), transfer('t1', 'alice', 'bob', 50_000n));
    thenStopped(scene.when(transfer('t1', 'alice', 'bob', 5n)), 'idempotency_conflict');
  });

  test('the id space is shared: a deposit id reused for a transfer is a conflict', () => {
    thenStopped(given(...funded()).when(transfer('d-alice', 'alice', 'bob', 10_000n)), 'idempotency_conflict');
  });

  test('after a replay of the log the remembered outcomes answer the same way (retry and conflict)', () => {
    const scene = given(
      ...funded(),
      transfer('t-ok', 'alice', 'bob', 10n),
      transfer('t-poor', 'bob', 'alice', 1_000n),
      transfer('t-ghost', 'alice', 'ghost', 1n),
      deposit('d-ghost', 'ghost', 1n),
      withdrawal('w-ok', 'alice', 5n),
    );
    const replayed = scene.replayed();
    assert.equal(stateDigest(replayed.state), stateDigest(scene.state));
    const expected: Array<[TransferCommand, ErrorCode, number]> = [
      [deposit('d-alice', 'alice', 10_000n), 'ok', 5],
      [transfer('t-ok', 'alice', 'bob', 10n), 'ok', 6],
      [transfer('t-poor', 'bob', 'alice', 1_000n), 'insufficient_funds', 7],
      [transfer('t-ghost', 'alice', 'ghost', 1n), 'account_not_found', 8],
      [deposit('d-ghost', 'ghost', 1n), 'account_not_found', 9],
      [withdrawal('w-ok', 'alice', 5n), 'ok', 10],
      [transfer('t-ok', 'alice', 'bob', 11n), 'idempotency_conflict', 0],
      [deposit('d-ghost', 'ghost', 2n), 'idempotency_conflict', 0],
    ];
    for (const [command, code, sequence] of expected) {
      const answer = replayed.when(command);
      assert.deepEqual([codeName(answer.code), answer.sequence], [code, sequence], command.transactionId);
      assert.deepEqual(answer.events, []);
    }
  });
});

/** Malformed records: each is stopped before the ledger, and its id stays free. */
const malformed: Array<[string, ErrorCode, Buffer]> = [
  ['amount 0', 'invalid_amount', bytesOf(transfer('m', 'alice', 'bob', 0n))],
  ['amount 2^63', 'invalid_amount', bytesOf(transfer('m', 'alice', 'bob', 1n << 63n))],
  ['amount 2^64-1', 'invalid_amount', bytesOf(transfer('m', 'alice', 'bob', (1n << 64n) - 1n))],
  ['a deposit of 0', 'invalid_amount', bytesOf(deposit('m', 'alice', 0n))],
  ['currency numeric 0', 'unsupported_currency', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => b.writeUInt16LE(0, RECORD_OFFSET_CURRENCY))],
  ['currency numeric 1 (no such code)', 'unsupported_currency', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => b.writeUInt16LE(1, RECORD_OFFSET_CURRENCY))],
  ['XXX (999, "no currency")', 'unsupported_currency', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => b.writeUInt16LE(999, RECORD_OFFSET_CURRENCY))],
  ['XTS (963, testing code)', 'unsupported_currency', bytesOf(deposit('m', 'alice', 1n), (b) => b.writeUInt16LE(963, RECORD_OFFSET_CURRENCY))],
  ['currency numeric 65535', 'unsupported_currency', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => b.writeUInt16LE(0xffff, RECORD_OFFSET_CURRENCY))],
  ['kind 0', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[RECORD_OFFSET_KIND] = 0))],
  ['kind 4', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[RECORD_OFFSET_KIND] = 4))],
  ['kind 255', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[RECORD_OFFSET_KIND] = 255))],
  ['first reserved byte set', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[203] = 1))],
  ['last reserved byte set', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[207] = 0x80))],
  ['empty transaction id', 'invalid_request', bytesOf(transfer('', 'alice', 'bob', 1n))],
  ['transaction id with a space', 'invalid_request', bytesOf(transfer('m m', 'alice', 'bob', 1n))],
  ['transaction id with a byte above 127', 'invalid_request', bytesOf(transfer('m\u00e9', 'alice', 'bob', 1n))],
  ['transaction id with "@"', 'invalid_request', bytesOf(transfer('@m', 'alice', 'bob', 1n))],
  ['a non-zero byte after the transaction id’s NUL', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[40] = 0x41))],
  ['a non-zero byte right after the NUL in the same word', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[2] = 0x41))],
  ['a non-zero byte after the source id’s NUL', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[RECORD_OFFSET_FROM + 63] = 0x41))],
  ['a non-zero byte after the destination id’s NUL', 'invalid_request', bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[RECORD_OFFSET_TO + 10] = 0x41))],
  ['a transfer without a source', 'invalid_request', bytesOf(transfer('m', '', 'bob', 1n))],
  ['a transfer without a destination', 'invalid_request', bytesOf(transfer('m', 'alice', '', 1n))],
  ['a deposit with a source id', 'invalid_request', bytesOf(deposit('m', 'bob', 1n), (b) => b.write('alice', RECORD_OFFSET_FROM, 'latin1'))],
  ['a withdrawal with a destination id', 'invalid_request', bytesOf(withdrawal('m', 'alice', 1n), (b) => b.write('bob', RECORD_OFFSET_TO, 'latin1'))],
  ['a transfer from @external:USD', 'invalid_request', bytesOf(transfer('m', '@external:USD', 'bob', 1n))],
  ['a transfer to @external:USD', 'invalid_request', bytesOf(transfer('m', 'alice', '@external:USD', 1n))],
  ['a withdrawal from @external:USD', 'invalid_request', bytesOf(withdrawal('m', '@external:USD', 1n))],
  ['a deposit to @external:USD', 'invalid_request', bytesOf(deposit('m', '@external:USD', 1n))],
  ['a deposit to @external:EUR (no EUR money yet)', 'invalid_request', bytesOf(deposit('m', '@external:EUR', 1n, 'EUR'))],
  ['a withdrawal from @external:EUR (external not opened yet)', 'invalid_request', bytesOf(withdrawal('m', '@external:EUR', 1n, 'EUR'))],
  ['an unknown destination id with a space', 'invalid_request', bytesOf(transfer('m', 'alice', 'no body', 1n))],
  ['an unknown source id with a slash', 'invalid_request', bytesOf(transfer('m', 'a/b', 'bob', 1n))],
  ['a deposit to an id with a byte above 127', 'invalid_request', bytesOf(deposit('m', 'b\u00f6b', 1n))],
];

test('idFieldLength: the id up to its first NUL when every byte after it is zero, else -1', () => {
  // A reference that reads bytes one by one, against the word-at-a-time code.
  const reference = (field: Uint8Array): number => {
    const nul = field.indexOf(0);
    if (nul === -1) return 64;
    return field.subarray(nul).every((byte) => byte === 0) ? nul : -1;
  };
  const byte = fc.oneof(fc.constant(0), fc.constant(1), fc.constant(0x80), fc.constant(0xff), fc.integer({ min: 1, max: 255 }));
  const padded = fc
    .tuple(fc.uint8Array({ minLength: 0, maxLength: 64, min: 1 }), fc.option(fc.tuple(fc.nat(63), fc.integer({ min: 1, max: 255 }))))
    .map(([id, stray]) => {
      const field = new Uint8Array(64);
      field.set(id);
      if (stray !== null) field[Math.max(id.length, stray[0])] = stray[1]; // a stray byte at or after the NUL
      return field;
    });
  fc.assert(
    fc.property(fc.oneof(padded, fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.array(byte, { minLength: 64, maxLength: 64 }).map((bytes) => Uint8Array.from(bytes))), (field) => {
      const words = new Int32Array(20);
      new Uint8Array(words.buffer).set(field, 8); // at word 2: the offset is honoured
      assert.equal(idFieldLength(words, 2), reference(field), Buffer.from(field).toString('hex'));
    }),
    { numRuns: 3000 },
  );
});

describe('stopped before the ledger: sequence 0, nothing logged, the id stays free', () => {
  for (const [name, code, bytes] of malformed) {
    test(`${name} → ${code}`, () => {
      const scene = given(...funded());
      thenStopped(scene.when(bytes), code);
      assert.equal(scene.balance('@external:EUR'), undefined, 'no external account opened by a malformed record');
      // The id was not remembered: a well-formed transfer with it is decided normally.
      const reuse = scene.when(transfer('m', 'alice', 'bob', 1n));
      thenLogged(reuse, 'ok', 6);
    });
  }

  test('a malformed record with a known id is still rejected as malformed, and the remembered outcome stays', () => {
    const scene = given(...funded(), transfer('m', 'alice', 'bob', 1n));
    thenStopped(scene.when(bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => (b[RECORD_OFFSET_KIND] = 9))), 'invalid_request');
    thenStopped(scene.when(bytesOf(transfer('m', 'alice', 'bob', 0n))), 'invalid_amount');
    const retry = scene.when(transfer('m', 'alice', 'bob', 1n));
    assert.deepEqual([retry.code, retry.sequence], [Wire.ok, 6]);
  });

  test('an amount of exactly 2^63-1 passes validation (and is then decided against the balance)', () => {
    const then = given(...funded()).when(bytesOf(transfer('m', 'alice', 'bob', 1n), (b) => b.writeBigUInt64LE(MAX, RECORD_OFFSET_AMOUNT)));
    thenLogged(then, 'insufficient_funds', 6);
  });

  test('malformed records never open the external account of their currency', () => {
    const scene = given(opened('alice'));
    for (const [, , bytes] of malformed) scene.when(bytes);
    assert.equal(scene.state.headSequence, 1, 'only alice’s opening is in the log');
    assert.equal(scene.balance('@external:USD'), undefined);
  });
});

describe('limits: a full ledger refuses new ids, never remembered ones', () => {
  test('given transactionsMax remembered ids, when a new id arrives, then ledger_full, nothing logged; a retry of a remembered id still answers', () => {
    const scene = given(...funded(), transfer('t-poor', 'bob', 'alice', 1n));
    // funded() remembers d-alice; t-poor is a remembered rejection: two ids.
    assert.equal(scene.state.txns.count, 2);
    scene.state.transactionsMax = 2;
    thenStopped(scene.when(transfer('t-new', 'alice', 'bob', 1n)), 'ledger_full');
    thenStopped(scene.when(deposit('d-new', 'alice', 1n)), 'ledger_full');
    const retry = scene.when(deposit('d-alice', 'alice', 10_000n));
    assert.deepEqual([codeName(retry.code), retry.sequence, retry.events], ['ok', 5, []], 'the first outcome, as always');
    const rejection = scene.when(transfer('t-poor', 'bob', 'alice', 1n));
    assert.deepEqual([codeName(rejection.code), rejection.sequence], ['insufficient_funds', 6]);
    thenStopped(scene.when(transfer('t-poor', 'bob', 'alice', 2n)), 'idempotency_conflict');
    // Raised again (a restart with a larger --max-transactions), the refused id goes through.
    scene.state.transactionsMax = 3;
    thenLogged(scene.when(transfer('t-new', 'alice', 'bob', 1n)), 'ok', 7);
    thenStopped(scene.when(transfer('t-newer', 'alice', 'bob', 1n)), 'ledger_full');
    assert.equal(scene.balance('bob'), 1n);
  });

  test('malformed records are still told apart from a full ledger', () => {
    const scene = given(...funded());
    scene.state.transactionsMax = 1;
    thenStopped(scene.when(transfer('t1', 'alice', 'bob', 0n)), 'invalid_amount');
    thenStopped(scene.when(transfer('t1', '@external:USD', 'bob', 1n)), 'invalid_request');
    thenStopped(scene.when(transfer('t1', 'alice', 'b b', 1n)), 'invalid_request');
    thenStopped(scene.when(transfer('t1', 'alice', 'bob', 1n)), 'ledger_full');
  });

  test('a full ledger opens no external account: the first deposit in a currency is refused before it', () => {
    const scene = given(opened('eve', 'EUR'));
    scene.state.transactionsMax = 0;
    thenStopped(scene.when(deposit('d1', 'eve', 5n, 'EUR')), 'ledger_full');
    assert.equal(scene.balance('@external:EUR'), undefined);
  });
});

describe('account opening (engine)', () => {
  test('created, exists, account_exists, unsupported_currency, invalid_request; only a creation is logged', async () => {
    await inTempDir(async (dir) => {
      await withLedger(dir.path, async (ledger) => {
        const created = await ledger.openAccount({ accountId: 'alice', currencyCode: 'USD', owner: 'u1' });
        if (created.status !== 'created') assert.fail(`expected created, got ${JSON.stringify(created)}`);
        assert.equal(created.account.accountId, 'alice');
        assert.equal(created.account.currency.code, 'USD');
        assert.equal(created.account.owner, 'u1');
        assert.equal(created.account.balance, 0n);
        assert.equal(ledger.stats().headSequence, 1);

        const again = await ledger.openAccount({ accountId: 'alice', currencyCode: 'USD', owner: 'u1' });
        assert.deepEqual(again, { status: 'exists', account: created.account });

        const cases: Array<[string, Parameters<typeof ledger.openAccount>[0], string]> = [
          ['same id, other currency', { accountId: 'alice', currencyCode: 'EUR', owner: 'u1' }, 'account_exists'],
          ['same id, other owner', { accountId: 'alice', currencyCode: 'USD', owner: 'u2' }, 'account_exists'],
          ['lower-case code', { accountId: 'bob', currencyCode: 'usd', owner: 'u1' }, 'unsupported_currency'],
          ['XXX', { accountId: 'bob', currencyCode: 'XXX', owner: 'u1' }, 'unsupported_currency'],
          ['XTS', { accountId: 'bob', currencyCode: 'XTS', owner: 'u1' }, 'unsupported_currency'],
          ['not a code', { accountId: 'bob', currencyCode: 'DOLLARS', owner: 'u1' }, 'unsupported_currency'],
          ['external id', { accountId: '@external:USD', currencyCode: 'USD', owner: 'u1' }, 'invalid_request'],
          ['id with "@"', { accountId: '@bob', currencyCode: 'USD', owner: 'u1' }, 'invalid_request'],
          ['empty id', { accountId: '', currencyCode: 'USD', owner: 'u1' }, 'invalid_request'],
          ['65-character id', { accountId: 'b'.repeat(65), currencyCode: 'USD', owner: 'u1' }, 'invalid_request'],
          ['id with a space', { accountId: 'b b', currencyCode: 'USD', owner: 'u1' }, 'invalid_request'],
          ['empty owner', { accountId: 'bob', currencyCode: 'USD', owner: '' }, 'invalid_request'],
          ['owner with "/"', { accountId: 'bob', currencyCode: 'USD', owner: 'u/1' }, 'invalid_request'],
        ];
        for (const [name, request, code] of cases) {
          assert.deepEqual(await ledger.openAccount(request), { status: 'rejected', code }, name);
        }
        assert.equal(ledger.stats().headSequence, 1, 'no rejected opening was logged');
        assert.equal(ledger.account('bob'), undefined);
        assert.equal(ledger.account('@external:USD'), undefined);

        const jpy = await ledger.openAccount({ accountId: 'b'.repeat(64), currencyCode: 'JPY', owner: 'u'.repeat(64) });
        assert.equal(jpy.status, 'created', '64-character id and owner are accepted');
        assert.equal(ledger.stats().headSequence, 2);
      });
    });
  });
});

describe('limits (engine)', () => {
  test('maxAccounts counts customer accounts: the next opening is ledger_full, logs nothing, and external accounts still open', async () => {
    await inTempDir(async (dir) => {
      await withLedger(
        dir.path,
        async (ledger) => {
          for (const id of ['a', 'b']) assert.equal((await ledger.openAccount({ accountId: id, currencyCode: 'USD', owner: id })).status, 'created');
          const head = ledger.stats().headSequence;
          assert.deepEqual(await ledger.openAccount({ accountId: 'c', currencyCode: 'USD', owner: 'c' }), { status: 'rejected', code: 'ledger_full' });
          assert.equal(ledger.stats().headSequence, head, 'a refused opening is not logged');
          assert.equal((await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' })).status, 'exists', 'an existing account still answers');
          // Deposits in two currencies open their external accounts beyond the customer limit.
          assert.equal((await submit(ledger, [deposit('d1', 'a', 5n)])).codes[0], Wire.ok);
          assert.equal((await submit(ledger, [deposit('d2', 'b', 5n, 'EUR')])).codes[0], Wire.currency_mismatch);
          assert.ok(ledger.hasAccount('@external:USD') && ledger.hasAccount('@external:EUR'));
          const stats = ledger.stats();
          assert.deepEqual([stats.accounts, stats.customerAccounts, stats.accountsMax], [4, 2, 2]);
        },
        { maxAccounts: 2 },
      );
      // The count survives a restart (from the snapshot written at close, and from the log).
      await withLedger(dir.path, async (ledger) => assert.equal(ledger.stats().customerAccounts, 2), { maxAccounts: 2 });
    });
  });

  test('maxTransactions: ids beyond it are ledger_full in the same batch; a restart with a lower limit still replays everything', async () => {
    await inTempDir(async (dir) => {
      await withLedger(
        dir.path,
        async (ledger) => {
          await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
          const results = await submit(ledger, [deposit('d1', 'a', 1n), deposit('d2', 'a', 1n), deposit('d3', 'a', 1n), deposit('d1', 'a', 1n)]);
          assert.deepEqual([...results.codes], [Wire.ok, Wire.ok, Wire.ledger_full, Wire.ok]);
          assert.deepEqual([...results.sequences], [3, 4, 0, 3]);
          assert.equal(ledger.account('a')?.balance, 2n);
        },
        { maxTransactions: 2 },
      );
      await withLedger(
        dir.path,
        async (ledger) => {
          assert.equal(ledger.stats().transactions, 2, 'replayed past the lower limit');
          assert.equal((await submit(ledger, [deposit('d3', 'a', 1n)])).codes[0], Wire.ledger_full);
          assert.deepEqual([...(await submit(ledger, [deposit('d2', 'a', 1n)])).sequences], [4]);
        },
        { maxTransactions: 1, snapshotEveryRecords: 1_000_000 },
      );
    });
  });

  test('limits out of range are refused before the data directory is touched', async () => {
    await inTempDir(async (dir) => {
      for (const options of [{ maxTransactions: 0 }, { maxTransactions: 322_122_548 }, { maxAccounts: 0 }, { maxAccounts: 100_000_001 }, { maxAccounts: 1.5 }]) {
        await assert.rejects(withLedger(dir.path, async () => undefined, options), /must be an integer/, JSON.stringify(options));
      }
    });
  });
});

describe('money: amount strings and formatting', () => {
  const usd = currencyByCode('USD')!;
  const jpy = currencyByCode('JPY')!;
  const kwd = currencyByCode('KWD')!;

  test('parseAmount accepts decimals up to the currency exponent, counted as written', () => {
    const valid: Array<[string, typeof usd, bigint]> = [
      ['12.34', usd, 1234n],
      ['0.01', usd, 1n],
      ['1', usd, 100n],
      ['1.5', usd, 150n],
      ['007.10', usd, 710n],
      ['1500', jpy, 1500n],
      ['1.234', kwd, 1234n],
      ['92233720368547758.07', usd, MAX],
      ['9223372036854775807', jpy, MAX],
      ['9223372036854775.807', kwd, MAX],
    ];
    for (const [text, currency, minor] of valid) assert.equal(parseAmount(text, currency), minor, `${text} ${currency.code}`);
  });

  test('parseAmount rejects zero, too many decimals, too large, and anything that is not a plain decimal string', () => {
    const invalid: Array<[unknown, typeof usd]> = [
      ['10.0', jpy],
      ['10.', jpy],
      ['1.000', usd],
      ['0.001', usd],
      ['1.2345', kwd],
      ['0', usd],
      ['0.00', usd],
      ['0', jpy],
      ['92233720368547758.08', usd],
      ['9223372036854775808', jpy],
      ['99999999999999999999999', usd],
      ['-1.00', usd],
      ['+1.00', usd],
      ['1e3', usd],
      ['1,00', usd],
      [' 1.00', usd],
      ['1.00 ', usd],
      ['.50', usd],
      ['1.', usd],
      ['', usd],
      ['0x10', jpy],
      ['1'.repeat(65), jpy],
      [12.34, usd],
      [null, usd],
      [undefined, usd],
      [['1.00'], usd],
      [100n, usd],
    ];
    for (const [text, currency] of invalid) assert.equal(parseAmount(text, currency), undefined, `${String(text)} ${currency.code}`);
  });

  test('formatAmount writes exactly the currency’s decimals; negative (external) balances get a "-"', () => {
    const cases: Array<[bigint, typeof usd, string]> = [
      [0n, usd, '0.00'],
      [1n, usd, '0.01'],
      [99n, usd, '0.99'],
      [100n, usd, '1.00'],
      [123456n, usd, '1234.56'],
      [0n, jpy, '0'],
      [1500n, jpy, '1500'],
      [5n, kwd, '0.005'],
      [MAX, usd, '92233720368547758.07'],
      [MAX, jpy, '9223372036854775807'],
      [-1n, usd, '-0.01'],
      [-9_500n, usd, '-95.00'],
      [-1500n, jpy, '-1500'],
      [-MAX, usd, '-92233720368547758.07'],
      [-MAX, kwd, '-9223372036854775.807'],
    ];
    for (const [minor, currency, text] of cases) assert.equal(formatAmount(minor, currency), text, `${minor} ${currency.code}`);
  });

  test('formatAmount and parseAmount round-trip every positive amount they share', () => {
    for (const currency of [usd, jpy, kwd]) {
      for (const minor of [1n, 9n, 10n, 99n, 100n, 101n, 999n, 1000n, 123_456_789n, MAX - 1n, MAX]) {
        assert.equal(parseAmount(formatAmount(minor, currency), currency), minor, `${minor} ${currency.code}`);
      }
    }
  });

  test('parseAmount (short fast path and general path) agrees with the plain definition on random text', () => {
    // The definition: digits, optionally a point and digits; at most `exponent` decimals;
    // 1 to 2^63-1 minor units. Texts are drawn from the characters that matter, around the
    // fast path's 15-digit edge.
    const reference = (text: string, exponent: number): bigint | undefined => {
      const match = /^([0-9]+)(?:\.([0-9]+))?$/.exec(text);
      if (match === null) return undefined;
      const fraction = match[2] ?? '';
      if (fraction.length > exponent) return undefined;
      const minor = BigInt(match[1]! + fraction.padEnd(exponent, '0'));
      return minor > 0n && minor <= MAX ? minor : undefined;
    };
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('0', '1', '5', '9', '.', '-', ' '), minLength: 1, maxLength: 24 }), fc.constantFrom(usd, jpy, kwd), (text, currency) => {
        assert.equal(parseAmount(text, currency), reference(text, currency.exponent), `${JSON.stringify(text)} ${currency.code}`);
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('executeTransferBatch (prepared and prefetched in rounds)', () => {
  test('decides a mixed batch exactly as executeTransfer one by one: codes, sequences, events, digest', () => {
    // Several rounds of 32 (300 records: 10 rounds, the last one partial), with what can change state mid-round: externals opened by the first
    // deposit of a currency, retries and conflicts of ids seen earlier in the same round,
    // malformed records, unknown accounts, currency mismatches and overdrafts.
    const accounts = ['a', 'b', 'c', 'd', 'e', 'eur-1'];
    const commands: Buffer[] = [];
    let seed = 7;
    const next = (below: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % below;
    };
    for (let index = 0; index < 300; index++) {
      const pick = next(10);
      const id = `t-${next(4) === 0 && index > 0 ? next(index) : index}`;
      const from = accounts[next(accounts.length)]!;
      const to = next(12) === 0 ? 'nobody' : accounts[next(accounts.length)]!;
      const fromExternal = next(40) === 0; // '@' ids are refused as customer ids, also when known
      const amount = BigInt(1 + next(500));
      let command: TransferCommand;
      if (pick < 3) command = deposit(id, to === 'nobody' ? 'a' : to, amount, to === 'eur-1' ? 'EUR' : 'USD');
      else if (pick === 3) command = withdrawal(id, from, amount);
      else command = transfer(id, fromExternal ? '@external:USD' : from, to, amount);
      const bytes = encodeTransferBatch([command]);
      if (next(15) === 0) bytes[RECORD_OFFSET_KIND] = 9; // malformed: stopped before the ledger
      commands.push(bytes);
    }
    const batch = Buffer.concat(commands);
    const count = commands.length;
    const setup = (): LedgerState => {
      const state = new LedgerState();
      for (const id of accounts) state.applyAccountOpened(state.headSequence + 1, id, id === 'eur-1' ? numericOf('EUR') : USD, id);
      // '@external:USD' exists before the batch, so a preparer could find it: it must not.
      const opening = recordView(alignedCopy(encodeTransferBatch([deposit('setup-0', 'a', 1000n, 'USD')])));
      executeTransfer(state, opening, 0, new EventBuffer(1024, 8), new DecideScratch(), new Outcome());
      return state;
    };
    const single = setup();
    const singleEvents = new EventBuffer(1 << 16, 1024);
    const singleCodes: number[] = [];
    const singleSequences: number[] = [];
    const scratch = new DecideScratch();
    const outcome = new Outcome();
    const view = recordView(alignedCopy(batch));
    for (let index = 0; index < count; index++) {
      executeTransfer(single, view, index * 208, singleEvents, scratch, outcome);
      singleCodes.push(outcome.code);
      singleSequences.push(outcome.sequence);
    }
    const batched = setup();
    const batchedEvents = new EventBuffer(1 << 16, 1024);
    const codes = new Uint8Array(count);
    const sequences = new Float64Array(count);
    executeTransferBatch(batched, view, count, batchedEvents, new DecideScratch(), new Outcome(), codes, sequences);
    assert.deepEqual([...codes], singleCodes);
    assert.deepEqual([...sequences], singleSequences);
    assert.equal(batchedEvents.count, singleEvents.count);
    assert.ok(batchedEvents.bytes.subarray(0, batchedEvents.length).equals(singleEvents.bytes.subarray(0, singleEvents.length)), 'same event bytes');
    assert.equal(stateDigest(batched), stateDigest(single));
    // Prepared elsewhere (the prepare worker's part), with a reader that sees every account,
    // and with one that sees only the first three (a stale view): the same outcomes.
    const upToDate = setup();
    const stale = new IdTable();
    for (const id of accounts.slice(0, 3)) stale.insertString(id);
    for (const [state, reader] of [
      [upToDate, new IdTableReader(upToDate.accounts.sharedBuffers())],
      [setup(), new IdTableReader(stale.sharedBuffers())],
    ] as const) {
      const prepared = new Int32Array(count * PREPARED_WORDS);
      prepareRecords(view, count, prepared, new DecideScratch(), reader);
      let found = 0;
      for (let index = 0; index < count; index++) {
        if (prepared[index * PREPARED_WORDS + PREPARED_FROM_INDEX]! >= 0) found++;
        if (prepared[index * PREPARED_WORDS + PREPARED_TO_INDEX]! >= 0) found++;
      }
      assert.ok(found > count / 2, `the preparer found accounts (${found})`);
      const preparedEvents = new EventBuffer(1 << 16, 1024);
      executeTransferBatch(state, view, count, preparedEvents, new DecideScratch(), new Outcome(), codes, sequences, prepared);
      assert.deepEqual([...codes], singleCodes);
      assert.deepEqual([...sequences], singleSequences);
      assert.ok(preparedEvents.bytes.subarray(0, preparedEvents.length).equals(singleEvents.bytes.subarray(0, singleEvents.length)), 'same event bytes when prepared elsewhere');
      assert.equal(stateDigest(state), stateDigest(single));
    }
    // The batch exercised what it is meant to: several outcomes, externals, retries.
    const seen = new Set(singleCodes);
    for (const code of [Wire.ok, Wire.invalid_request, Wire.insufficient_funds, Wire.account_not_found, Wire.currency_mismatch, Wire.idempotency_conflict]) {
      assert.ok(seen.has(code), `the batch produced ${code}`);
    }
  });
});
