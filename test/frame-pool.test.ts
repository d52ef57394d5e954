// The log frame pool: a frame's memory is reused once given back, by size class; small frames
// and foreign buffers are never pooled; a class keeps a bounded number of buffers and the pool a
// bounded number of bytes; and a ledger
// whose frames come from the pool writes a log that replays to the same state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stateDigest } from '../src/core/digest.js';
import { Wire } from '../src/core/errors.js';
import { recover } from '../src/engine/recovery.js';
import { FRAME_POOL_KEPT_BYTES_MAX, FramePool } from '../src/log/frame-pool.js';
import { deposit, submit, turn, withTempLedger } from './support/ledger.js';

test('frames reuse pooled memory by size class; small and foreign buffers are not pooled; each class and the whole pool are bounded', () => {
  const pool = new FramePool();
  const first = pool.take(100_000);
  assert.equal(first.length, 100_000);
  assert.equal(first.buffer.byteLength, 131_072, 'rounded up to a power of two');
  pool.give(first);
  const again = pool.take(70_000);
  assert.equal(again.buffer, first.buffer, 'the same memory, for any size of its class');
  assert.equal(again.length, 70_000);
  assert.notEqual(pool.take(70_000).buffer, first.buffer, 'taken memory is not handed out twice');
  pool.give(again);
  pool.give(again);
  assert.equal(pool.keptBytes, 131_072, 'giving back twice keeps it once');
  const small = pool.take(1_000);
  pool.give(small);
  pool.give(Buffer.alloc(131_072));
  assert.equal(pool.keptBytes, 131_072, 'neither a small frame nor a foreign buffer is kept');
  const many = Array.from({ length: 10 }, () => pool.take(131_072));
  for (const frame of many) pool.give(frame);
  assert.equal(pool.keptBytes, 4 * 131_072, 'at most four per class');
  // All classes together keep at most FRAME_POOL_KEPT_BYTES_MAX: huge frames are dropped past it.
  const huge = Array.from({ length: 4 }, () => pool.take(FRAME_POOL_KEPT_BYTES_MAX / 2 + 1));
  for (const frame of huge) pool.give(frame);
  assert.equal(pool.keptBytes, 4 * 131_072, 'a class of FRAME_POOL_KEPT_BYTES_MAX does not fit beside the small ones');
  for (const frame of many.slice(0, 4)) pool.take(frame.length);
  assert.equal(pool.keptBytes, 0, 'taking counts down');
  for (const frame of huge) pool.give(frame);
  assert.equal(pool.keptBytes, FRAME_POOL_KEPT_BYTES_MAX, 'one huge frame fills the bound');
});

test('a ledger writing its frames from the pool, many in flight, replays to the same digest', async () => {
  await withTempLedger(
    async (ledger, dir) => {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      // Every frame given back is wiped at once, so memory given back before its frame is
      // written (even while its write is in flight) writes zeros, and the replay below fails.
      const pool = (ledger as unknown as { framePool: FramePool }).framePool;
      const give = pool.give.bind(pool);
      pool.give = (frame) => give(frame.fill(0));
      // One batch an event-loop turn, not awaited: each is decided into its own frame while
      // earlier frames wait for a write and an fsync, so frames of one size class are taken
      // while others are pending.
      const pending: Array<ReturnType<typeof submit>> = [];
      for (let round = 0; round < 60; round++) {
        const count = 2500 + ((round * 37) % 200); // frames of about 200 KiB: all in one size class
        pending.push(submit(ledger, Array.from({ length: count }, (_, index) => deposit(`r${round}-${index}`, 'a', 1n))));
        await turn();
      }
      for (const results of await Promise.all(pending)) assert.ok(results.codes.every((code) => code === Wire.ok));
      assert.ok(ledger.stats().headSequence > 60 * 2500);
      // The frames came from the pool and went back to it once written.
      assert.ok(pool.keptBytes > 0, 'written frames were given back');
      assert.equal(stateDigest(recover(dir.path, { fromGenesis: true }).state), ledger.digest());
    },
    { fsync: true },
  );
});
