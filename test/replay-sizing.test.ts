// The offline commands (replay, verify, balance) size the transaction table up front from the
// log (recovery.ts, transactionIdsAtMost), so a replay from the first record never grows it.
// Checked on the bound's worst case: transfers with 1-byte ids, the smallest event that carries
// an id, spread over many small segments:
// - the bound is at least the ids logged, and at most the events logged plus the last segment's
//   frame headers read as events, and never more than --to-sequence;
// - a replay sized with it keeps the table it started with and reaches the live digest;
// - a data directory without a log segment bounds nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { stateDigest } from '../src/core/digest.js';
import { TxnTable } from '../src/core/txn-table.js';
import { dataPaths, recover, transactionIdsAtMost } from '../src/engine/recovery.js';
import { listSegments } from '../src/log/segments.js';
import { deposit, logFrames, submit, tempDir, transfer, withLedger } from './support/ledger.js';

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
    const lastSegmentFrames = logFrames(dir).filter((frame) => frame.path === segments.at(-1)?.path).length;
    assert.ok(bound >= ids && bound <= events + lastSegmentFrames * 2, `bound ${bound} for ${ids} ids in ${events} events`);
    const beforeLast = (segments.at(-1)?.firstSequence ?? 1) - 1;
    assert.ok(bound - beforeLast >= events - beforeLast, 'the last segment alone, all 1-byte ids, is bounded from its size');
    assert.equal(transactionIdsAtMost(dir, 10), 10, '--to-sequence caps it');

    const sized = recover(dir, { fromGenesis: true, expectedTransactions: bound });
    assert.equal(sized.replayedEvents, events);
    assert.equal(stateDigest(sized.state), liveDigest);
    assert.equal(sized.state.txns.capacitySlots, new TxnTable(bound).capacitySlots, 'the replay kept the table it was given');
    assert.equal(sized.state.txns.growing, false);

    const empty = join(root.path, 'empty');
    mkdirSync(dataPaths(empty).logDir, { recursive: true });
    assert.equal(transactionIdsAtMost(empty), 0);
  } finally {
    root.remove();
  }
});
