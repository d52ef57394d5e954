// A snapshot's capture of the account records (src/core/records-capture.ts): whatever transfers
// and openings come between the pieces, the pieces put together are the records as they stood
// at the capture, and streamed through the digest with the ids captured then they give the
// state digest of that moment. Property-based; the seed is random unless WALLETD_PROPERTY_SEED
// is set (fast-check prints it on failure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bytesOf, captureAccountIdParts, StateDigester, stateDigest } from '../src/core/digest.js';
import { ACCOUNT_WORDS, LedgerState } from '../src/core/ledger-state.js';
import { RecordsCapture } from '../src/core/records-capture.js';
import { foldTxnWords } from '../src/core/txn-table.js';
import { Prng } from '../src/stdx/prng.js';

const NUM_RUNS = Number(process.env['WALLETD_PROPERTY_RUNS'] ?? 40);
const seedText = process.env['WALLETD_PROPERTY_SEED'];
const SEED = seedText === undefined ? {} : { seed: Number(seedText) };

/** A ledger state with `count` accounts (ids of varied length, some with a separate owner). */
function stateWith(count: number, prng: Prng): LedgerState {
  const state = new LedgerState();
  // An external account too: its record carries a flag word that a capture must keep as well.
  if (count > 0) state.applyAccountOpened(1, '@external:USD', 840, '@external:USD');
  for (let i = state.accountCount; i < count; i++) {
    const id = `acct-${i}-${'x'.repeat(prng.below(30))}`;
    state.applyAccountOpened(state.headSequence + 1, id, 840, prng.below(3) === 0 ? `owner-${i % 5}` : id);
  }
  return state;
}

function transfer(state: LedgerState, prng: Prng): void {
  const from = prng.below(state.accountCount);
  const to = (from + 1 + prng.below(state.accountCount - 1)) % state.accountCount;
  state.applyTransferSucceeded(state.headSequence + 1, from, to, -BigInt(prng.below(1_000_000)), BigInt(prng.nextU32()) * 1000n);
}

test('the pieces of a capture are the records at the capture, whatever changes between them', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 0, max: 600 }), (seed, accounts, pieceAccounts, steps) => {
      const prng = new Prng(seed);
      const state = stateWith(accounts, prng);
      for (let i = 0; accounts >= 2 && i < accounts; i++) transfer(state, prng);
      const expected = state.accountRecords().slice();
      const digestAtCapture = stateDigest(state);
      const ids = captureAccountIdParts(state);
      const capture = new RecordsCapture(state.headSequence, state.accountCount, pieceAccounts);
      state.recordsCapture = capture;
      const pieces: Int32Array[] = [];
      const buffer = new Int32Array(capture.pieceWords);
      const copyPiece = (): void => {
        const words = capture.copyNextPiece(state, buffer);
        pieces.push(buffer.slice(0, words));
        buffer.fill(-1); // a reused buffer holds the last piece's bytes: nothing may rely on it being clean
      };
      for (let step = 0; step < steps; step++) {
        const roll = prng.below(10);
        // Openings past the capture's count, and enough of them to move the records and the id arena to new buffers.
        if (roll === 0) for (let i = prng.below(200); i > 0; i--) state.applyAccountOpened(state.headSequence + 1, `late-${step}-${i}`, 840, `late-${step}-${i}`);
        else if (roll <= 2) copyPiece();
        else if (state.accountCount >= 2) transfer(state, prng);
      }
      while (!capture.done) copyPiece();
      assert.equal(capture.copyNextPiece(state, buffer), 0, 'nothing past the end');
      assert.equal(capture.keptCount, 0, 'every kept record went back into its piece');
      const joined = new Int32Array(expected.length);
      pieces.reduce((at, piece) => (joined.set(piece, at), at + piece.length), 0);
      assert.deepEqual(joined, expected);
      // The ids are read only now, after the openings above may have grown their arrays: the
      // shared views taken at the capture must still be exactly the capture's.
      const digester = new StateDigester(ids);
      for (const piece of pieces) digester.addRecords(bytesOf(piece));
      assert.equal(digester.finish(foldTxnWords(state.txns.digestWords())), digestAtCapture, 'the digest as at the capture');
    }),
    { numRuns: NUM_RUNS, ...SEED },
  );
});

test('a record is kept once, at its first change, and only while its piece is still to come', () => {
  const prng = new Prng(3);
  const state = stateWith(8, prng);
  const capture = new RecordsCapture(state.headSequence, state.accountCount, 4);
  state.recordsCapture = capture;
  state.applyTransferSucceeded(state.headSequence + 1, 0, 5, -1n, 1n);
  state.applyTransferSucceeded(state.headSequence + 1, 0, 5, -2n, 2n);
  assert.equal(capture.keptCount, 2, 'accounts 0 and 5, once each');
  capture.copyNextPiece(state, new Int32Array(capture.pieceWords));
  assert.equal(capture.keptCount, 1, 'account 0 went back into the first piece');
  state.applyTransferSucceeded(state.headSequence + 1, 1, 6, -1n, 1n);
  assert.equal(capture.keptCount, 2, 'account 1 is handed out already: only account 6 is kept');
  const second = new Int32Array(capture.pieceWords);
  assert.equal(capture.copyNextPiece(state, second), 4 * ACCOUNT_WORDS);
  assert.equal(capture.keptCount, 0);
  assert.equal(second[(5 - 4) * ACCOUNT_WORDS], 0, "account 5's balance as at the capture");
  assert.equal(second[(6 - 4) * ACCOUNT_WORDS], 0, "account 6's balance as at the capture");
  assert.ok(capture.done);
  assert.throws(() => new RecordsCapture(0, 10, 0), /at least one account/);
});
