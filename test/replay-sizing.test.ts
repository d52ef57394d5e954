// Recovery sizes the transaction table up front from the log (recovery.ts, transactionIdsAtMost),
// so neither a replay from the first record nor the tail after a snapshot grows it.
// Checked on the bound's worst case: transfers with 1-byte ids, the smallest event that carries
// an id, spread over many small segments:
// - the bound is at least the ids logged, and at most the events logged plus the last segment's
//   frame headers read as events, and never more than --to-sequence;
// - a replay from the first record reaches the live digest;
// - a data directory without a log segment bounds nothing;
// - after a snapshot whose table was sized for its own ids, the tail's ids fit the table the
//   snapshot is loaded into, and a replay of the same log from the first record is sized for
//   all of its ids (more than the first table holds), and both reach the live state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { stateDigest } from '../src/core/digest.js';
import { TxnTable } from '../src/core/txn-table.js';
import { dataPaths, recover, transactionIdsAtMost } from '../src/engine/recovery.js';
import { loadSnapshot } from '../src/engine/snapshot.js';
import { listSegments } from '../src/log/segments.js';
import { deposit, logFrames, newestSnapshot, submit, tempDir, transfer, withLedger } from './support/ledger.js';

/** Every 1-byte transaction id the id grammar allows: [A-Za-z0-9_.:-]. */
const ONE_BYTE_IDS = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-'];

test('a replay from the first record is sized for every id of the log, and never grows its table', async () => {
  const root = tempDir('walletd-replay-sizing-');
  try {
    const dir = join(root.path, 'data');
    const [fundingId, ...transferIds] = ONE_BYTE_IDS as [string, ...string[]];
    const liveDigest = await withLedger(
      dir,
      async (ledger) => {
        for (const accountId of ['x', 'y']) await ledger.openAccount({ accountId, currencyCode: 'USD', owner: 'o' });
        await submit(ledger, [deposit(fundingId, 'x', 1_000_000n)]);
        for (let start = 0; start < transferIds.length; start += 5) {
          const ids = transferIds.slice(start, start + 5);
          await submit(ledger, ids.map((id, index) => transfer(id, index % 2 === 0 ? 'x' : 'y', index % 2 === 0 ? 'y' : 'x', 7n)));
        }
        return ledger.digest();
      },
      { segmentBytesMax: 1024, snapshotEveryRecords: 1_000_000 },
    );
    const segments = listSegments(dataPaths(dir).logDir);
    assert.ok(segments.length >= 4, `the bound must add up segments: ${segments.length}`);

    const ids = ONE_BYTE_IDS.length;
    const events = 3 + ids; // x, y and the external account the first deposit opens
    const bound = transactionIdsAtMost(dir);
    // Each frame header of the last segment (80 bytes) may count as one event more than it is.
    const lastSegment = segments.at(-1)!;
    const lastSegmentFrames = logFrames(dir).filter((frame) => frame.path === lastSegment.path).length;
    assert.ok(bound >= ids && bound <= events + lastSegmentFrames * 2, `bound ${bound} for ${ids} ids in ${events} events`);
    // The accounts were opened first, so every event of the last segment is a transfer with a
    // 1-byte id: the part of the bound read from that segment's size must cover each of them.
    const idsInLastSegment = events - (lastSegment.firstSequence - 1);
    assert.ok(bound - (lastSegment.firstSequence - 1) >= idsInLastSegment, 'the last segment, all 1-byte ids, is bounded from its size');
    assert.equal(transactionIdsAtMost(dir, 10), 10, '--to-sequence caps it');

    const replayed = recover(dir, { fromGenesis: true });
    assert.equal(replayed.replayedEvents, events);
    assert.equal(stateDigest(replayed.state), liveDigest);

    const empty = join(root.path, 'empty');
    mkdirSync(dataPaths(empty).logDir, { recursive: true });
    assert.equal(transactionIdsAtMost(empty), 0);
  } finally {
    root.remove();
  }
});

test('the tail after a snapshot fits the table the snapshot is loaded into', async () => {
  const root = tempDir('walletd-tail-sizing-');
  try {
    const dir = join(root.path, 'data');
    const tailIds = Array.from({ length: 6_000 }, (_, index) => `t${index}`);
    const liveDigest = await withLedger(
      dir,
      async (ledger) => {
        for (const accountId of ['x', 'y']) await ledger.openAccount({ accountId, currencyCode: 'USD', owner: 'o' });
        await submit(ledger, [deposit('fund', 'x', 1_000_000_000n)]);
        await ledger.snapshot();
        for (let start = 0; start < tailIds.length; start += 1_000) {
          await submit(ledger, tailIds.slice(start, start + 1_000).map((id) => transfer(id, 'x', 'y', 3n)));
        }
        return ledger.digest();
      },
      { snapshotEveryRecords: 1_000_000_000 },
    );
    // close() wrote a snapshot at the head; keep only the early one, so recovery replays the tail.
    rmSync(newestSnapshot(dir).path);
    const early = loadSnapshot(newestSnapshot(dir).path).meta;
    assert.equal(early.txnCount, 1);
    assert.ok(TxnTable.slotsFor(tailIds.length + 1) > early.txnSlots, 'without the bound, the tail would grow the table');
    const recovered = recover(dir);
    assert.equal(recovered.snapshot?.sequence, early.sequence);
    assert.equal(recovered.replayedEvents, tailIds.length);
    assert.equal(stateDigest(recovered.state), liveDigest);
    assert.ok(recovered.state.txns.capacitySlots >= TxnTable.slotsFor(tailIds.length + 1), `capacity ${recovered.state.txns.capacitySlots}`);
    assert.equal(recovered.state.txns.growing, false, 'no growth began during the tail');

    // From the first record, the same ids are more than the first table holds: sized, not grown.
    const replayed = recover(dir, { fromGenesis: true });
    assert.equal(stateDigest(replayed.state), liveDigest);
    assert.ok(replayed.state.txns.capacitySlots >= TxnTable.slotsFor(tailIds.length + 1), `capacity ${replayed.state.txns.capacitySlots}`);
    assert.equal(replayed.state.txns.growing, false, 'the replay kept the table it was given');
  } finally {
    root.remove();
  }
});
