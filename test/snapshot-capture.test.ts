// Snapshots written while the engine goes on (src/core/records-capture.ts, snapshot-worker.ts):
// with the records handed to the worker two accounts at a time, transfers are decided between
// the pieces, and the snapshot still holds the state of its own sequence: its digest equals a
// replay of the log from the first record to that sequence, and recovery from it plus the tail
// equals the live state. Also: the chunk spool writes a journal's blocks as they fill; a
// snapshot that cannot be written fails cleanly; a worker told to abort removes its file; one
// that dies leaves nothing behind, and automatic snapshots that fail are retried with backoff.
import { test } from 'node:test';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { bytesOf, captureAccountIdParts, stateDigest } from '../src/core/digest.js';
import { LedgerState } from '../src/core/ledger-state.js';
import { TxnTable } from '../src/core/txn-table.js';
import { Wire } from '../src/core/errors.js';
import { openLedger, SnapshotAbandoned } from '../src/engine/ledger.js';
import type { Ledger } from '../src/engine/types.js';
import { dataPaths, recover } from '../src/engine/recovery.js';
import { listSnapshots, loadSnapshot } from '../src/engine/snapshot.js';
import { SnapshotFileWriter, snapshotFileName } from '../src/engine/snapshot-write.js';
import { ChunkSpool, SPOOL_BLOCKS_OUT_MAX } from '../src/engine/chunk-spool.js';
import type { FromSnapshotWorker, SnapshotJob, ToSnapshotWorker } from '../src/engine/snapshot-worker.js';
import { Prng } from '../src/stdx/prng.js';
import { deposit, inTempDir, newestSnapshot, submit, transfer, withTempLedger } from './support/ledger.js';

const ACCOUNTS = 300;
const SPOOL_WORKER = new URL('../src/engine/chunk-spool-worker.js', import.meta.url);

test('transfers decided while a snapshot hands out its records leave the snapshot at its own sequence', async () => {
  let keptPeak = 0;
  let entriesFrom = '';
  await withTempLedger(
    async (ledger, dir) => {
      for (let i = 0; i < ACCOUNTS; i++) await ledger.openAccount({ accountId: `a${i}`, currencyCode: 'USD', owner: `a${i}` });
      await submit(ledger, Array.from({ length: ACCOUNTS }, (_, i) => deposit(`d${i}`, `a${i}`, 1_000n)));
      const prng = new Prng(11);
      let settled = false;
      const snapshot = ledger.snapshot().finally(() => (settled = true));
      let batch = 0;
      for (; !settled || batch < 5; batch++) {
        // Openings too: past the capture's count, they must not reach the snapshot.
        if (batch % 3 === 0) await ledger.openAccount({ accountId: `late${batch}`, currencyCode: 'USD', owner: `late${batch}` });
        const commands = Array.from({ length: 40 }, (_, i) => {
          const from = prng.below(ACCOUNTS);
          return transfer(`t${batch}-${i}`, `a${from}`, `a${(from + 1 + prng.below(ACCOUNTS - 1)) % ACCOUNTS}`, BigInt(1 + prng.below(50)));
        });
        const results = await submit(ledger, commands);
        assert.ok(results.codes.every((code) => code === Wire.ok || code === Wire.insufficient_funds));
      }
      await snapshot;
      assert.ok(keptPeak > 0, `records changed before their piece went (${batch} batches during the snapshot)`);
      assert.equal(entriesFrom, 'journal');
      const meta = loadSnapshot(newestSnapshot(dir.path).path).meta;
      const replayed = recover(dir.path, { fromGenesis: true, toSequence: meta.sequence });
      assert.equal(replayed.state.headSequence, meta.sequence);
      assert.equal(stateDigest(replayed.state), meta.digest, 'the snapshot is the state at its sequence');
      assert.ok(ledger.stats().headSequence > meta.sequence, 'transfers were decided after the capture');
      const recovered = recover(dir.path);
      assert.equal(recovered.snapshot?.sequence, meta.sequence);
      assert.equal(stateDigest(recovered.state), ledger.digest(), 'snapshot plus tail is the live state');
    },
    // An interval short enough for a journal (the new entries come from its slots), long enough that no snapshot starts by itself.
    { snapshotPieceAccounts: 2, snapshotEveryRecords: 1_000_000, observer: { onSnapshot: (info) => ((keptPeak = Math.max(keptPeak, info.recordsKeptPeak)), (entriesFrom = info.entriesFrom)) } },
  );
});

test("the chunk spool writes a journal's blocks as they fill; the sealed chunk is listed as it is, and the snapshot loads with its digest", async () => {
  await inTempDir(async (dir) => {
    const count = 140_000;
    const state = new LedgerState(undefined, undefined, new TxnTable());
    state.applyAccountOpened(1, 'a', 840, 'a');
    const spare: Uint32Array[] = [];
    const spool = new ChunkSpool(dir.path, SPOOL_WORKER, spare, (message) => assert.fail(message));
    try {
      // From sequence 0, where a first chunk starts (the account opened at 1 adds no entry).
      state.txns.startJournal(0, 1 << 24, spare, 10_000);
      spool.begin(0);
      const prng = new Prng(5);
      for (let i = 0; i < count; i++) {
        state.txns.insert(prng.nextU32(), prng.nextU32(), prng.nextU32(), i, 0, i + 2, 0);
        if (i % 25_000 === 0) assert.ok(spool.ship(state.txns.runningJournal!.takeFullBlocks()));
      }
      state.headSequence = count + 1;
      const journal = state.txns.takeJournal()!;
      const sealed = await spool.seal(journal.rest(), count + 1, journal.count);
      assert.deepEqual({ ...sealed, fold: undefined }, { name: 'txns-00000000000000000000-00000000000000140001.wtxn', afterSequence: 0, toSequence: count + 1, count, fold: undefined });
      assert.ok(spare.length > 0, 'blocks came back for reuse');
      const position = { chainHash: '0'.repeat(64), logSegmentFirstSequence: 1, logOffset: 0, nowMs: 0 };
      const file = new SnapshotFileWriter(dir.path, captureAccountIdParts(state), position);
      file.addRecords(bytesOf(state.accountRecords()));
      const written = file.finish({ sealed, afterSequence: 0, toSequence: count + 1 }, []);
      assert.deepEqual(written.chunks, [sealed], 'listed as it is: nothing to merge with');
      const loaded = loadSnapshot(written.tempPath);
      assert.equal(loaded.state.txns.count, count);
      assert.equal(stateDigest(loaded.state), stateDigest(state));
      assert.deepEqual(
        readdirSync(dir.path).filter((name) => name.endsWith('.tmp')),
        [written.tempPath.split('/').pop()],
        'no open chunk left behind',
      );
    } finally {
      await spool.close();
    }
  });
});

test('the chunk spool refuses blocks past its bound of blocks out; a failed seal rejects; close() stops a worker that does not end', async () => {
  await inTempDir(async (dir) => {
    // A worker that keeps every block (a disk that stalls), fails a chunk when told to seal it, and ignores close.
    const stalled = join(dir.path, 'stalled-spool-worker.mjs');
    writeFileSync(
      stalled,
      `import { parentPort } from 'node:worker_threads';
      parentPort.on('message', (message) => {
        if (message.kind === 'seal') parentPort.postMessage({ kind: 'failed', file: message.file, message: 'stalled' });
      });`,
    );
    const warnings: string[] = [];
    const spool = new ChunkSpool(dir.path, pathToFileURL(stalled), [], (message) => warnings.push(message), 100);
    try {
      const blocks = (count: number): Uint32Array[] => Array.from({ length: count }, () => new Uint32Array(6));
      spool.begin(0);
      assert.equal(spool.ship(blocks(SPOOL_BLOCKS_OUT_MAX)), true, 'up to the bound');
      assert.equal(spool.ship(blocks(1)), false, 'one past it');
      assert.equal(spool.spooling, true, 'refusing is not failing: the caller drops its journal and the chunk');
      await assert.rejects(spool.seal([], 1, 0), /chunk spool: stalled/);
      spool.begin(1);
      assert.equal(spool.ship(blocks(1)), false, 'the blocks still out count against the next chunk');
      assert.deepEqual(warnings, []);
    } finally {
      await spool.close(); // returns: the worker is stopped after 100 ms
    }
  });
});

test('a snapshot whose file cannot be written fails, leaves no capture behind, and the next one succeeds', async () => {
  await withTempLedger(
    async (ledger, dir) => {
      for (let i = 0; i < 50; i++) await ledger.openAccount({ accountId: `a${i}`, currencyCode: 'USD', owner: `a${i}` });
      await submit(ledger, Array.from({ length: 50 }, (_, i) => deposit(`d${i}`, `a${i}`, 100n)));
      const { snapshotDir } = dataPaths(dir.path);
      // A directory where the worker's temporary file goes: opening it for writing fails.
      const blocked = join(snapshotDir, `${snapshotFileName(ledger.stats().headSequence)}.tmp`);
      mkdirSync(blocked);
      await assert.rejects(ledger.snapshot(), /snapshot worker: .*EISDIR/);
      assert.equal((ledger as unknown as { state: LedgerState }).state.recordsCapture, undefined, 'the capture is gone');
      rmdirSync(blocked);
      await submit(ledger, [transfer('t1', 'a1', 'a2', 5n)]);
      await ledger.snapshot();
      const meta = loadSnapshot(listSnapshots(snapshotDir)[0]!.path).meta;
      assert.equal(meta.sequence, ledger.stats().headSequence);
      assert.equal(stateDigest(recover(dir.path, { fromGenesis: true }).state), meta.digest);
    },
    { snapshotPieceAccounts: 2, snapshotEveryRecords: Number.MAX_SAFE_INTEGER },
  );
});

test('a snapshot worker told to abort removes its temporary file and exits', async () => {
  await inTempDir(async (dir) => {
    const state = new LedgerState();
    for (let i = 0; i < 10; i++) state.applyAccountOpened(i + 1, `a${i}`, 840, `a${i}`);
    const job: SnapshotJob = { dir: dir.path, parts: captureAccountIdParts(state), position: { chainHash: '0'.repeat(64), logSegmentFirstSequence: 1, logOffset: 0, nowMs: 0 } };
    const worker = new Worker(new URL('../src/engine/snapshot-worker.js', import.meta.url), { workerData: job });
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    const piece = state.accountRecords().slice(0, 4 * 8);
    const back = new Promise<FromSnapshotWorker>((resolve) => worker.once('message', resolve));
    worker.postMessage({ kind: 'records', buffer: piece.buffer, bytes: piece.byteLength } satisfies ToSnapshotWorker, [piece.buffer]);
    assert.equal((await back).kind, 'buffer', 'the piece was written and handed back');
    const tempPath = join(dir.path, `${snapshotFileName(state.headSequence)}.tmp`);
    assert.ok(existsSync(tempPath), 'the file is being written');
    worker.postMessage({ kind: 'abort' } satisfies ToSnapshotWorker);
    assert.equal(await exited, 0, 'it exits by itself');
    assert.ok(!existsSync(tempPath), 'and its file is gone');
  });
});

test('a snapshot that fails in its pause leaves no capture behind, and the next one is exact', async () => {
  let clockFails = false;
  const nowMs = (): number => {
    if (clockFails) throw new Error('clock failed');
    return Date.now();
  };
  await withTempLedger(
    async (ledger, dir) => {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      await submit(ledger, [deposit('d1', 'a', 5n)]);
      // No journal runs with this interval, so the snapshot scans; the clock is read in the pause
      // after the capture has begun (the hold comes only once the records are out).
      clockFails = true;
      await assert.rejects(ledger.snapshot(), /clock failed/);
      clockFails = false;
      assert.equal((ledger as unknown as { state: LedgerState }).state.recordsCapture, undefined, 'the capture is gone');
      await submit(ledger, [deposit('d2', 'a', 5n)]);
      await ledger.snapshot(); // a capture left installed would not stop this one; its state must be exact
      const meta = loadSnapshot(newestSnapshot(dir.path).path).meta;
      assert.equal(stateDigest(recover(dir.path, { fromGenesis: true }).state), meta.digest);
    },
    { nowMs, snapshotEveryRecords: Number.MAX_SAFE_INTEGER },
  );
});

test('a snapshot whose scan hold breaks is abandoned and its file removed; the next one is exact', async () => {
  await withTempLedger(
    async (ledger, dir) => {
      const { snapshotDir } = dataPaths(dir.path);
      const breaking = breakHolds(ledger);
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      await submit(ledger, Array.from({ length: 3000 }, (_, index) => deposit(`d${index}`, 'a', 1n)));
      const head = ledger.stats().headSequence;
      breaking.next = 1;
      await assert.rejects(ledger.snapshot(), SnapshotAbandoned);
      assert.equal(listSnapshots(snapshotDir).length, 0, 'nothing committed');
      assert.ok(!existsSync(join(snapshotDir, `${snapshotFileName(head)}.tmp`)), 'its file is gone');
      assert.deepEqual(readdirSync(snapshotDir).filter((name) => name.startsWith('txns-')), [], 'and so is the chunk it wrote');

      // As a real break goes: the copying lands in an array the worker reads, its scan finds
      // entries twice (here: every array twice) and fails its count check.
      breaking.next = 1;
      breaking.seeTwice = true;
      await assert.rejects(ledger.snapshot(), SnapshotAbandoned);
      breaking.seeTwice = false;
      assert.equal(listSnapshots(snapshotDir).length, 0, 'still nothing committed');
      await submit(ledger, [deposit('after', 'a', 1n)]);
      await ledger.snapshot();
      assert.equal(loadSnapshot(newestSnapshot(dir.path).path).meta.digest, stateDigest(recover(dir.path, { fromGenesis: true }).state), 'the next snapshot is exact');
    },
    { snapshotEveryRecords: Number.MAX_SAFE_INTEGER },
  );
});

test('close() takes its final snapshot after a running one is abandoned', async () => {
  await inTempDir(async (dir) => {
    const ledger = await openLedger({ dataDir: dir.path, snapshotEveryRecords: Number.MAX_SAFE_INTEGER });
    breakHolds(ledger).next = 1;
    await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
    await submit(ledger, [deposit('d1', 'a', 5n)]);
    const running = ledger.snapshot().catch((error: unknown) => error);
    await ledger.close();
    assert.ok((await running) instanceof SnapshotAbandoned);
    assert.equal(newestSnapshot(dir.path).sequence, 3, 'the final snapshot, at the head');
  });
});

/**
 * Makes the ledger's next `next` scan holds break as soon as they are taken, as a growth that
 * must copy into a held array does (the table-level rule is tested in txn-table.test.ts); with
 * `seeTwice`, the worker also reads every held array twice, as it may after such a copy.
 */
function breakHolds(ledger: Ledger): { next: number; seeTwice: boolean } {
  const control = { next: 0, seeTwice: false };
  const txns = (ledger as unknown as { state: LedgerState }).state.txns;
  const holdEntries = txns.holdEntries.bind(txns);
  txns.holdEntries = () => {
    const hold = holdEntries();
    if (control.seeTwice) Object.assign(hold, { sources: [...hold.sources, ...hold.sources] });
    if (control.next > 0) {
      control.next--;
      queueMicrotask(() => hold.break());
    }
    return hold;
  };
  return control;
}

/**
 * A snapshot worker that dies (an uncaught exception, not a reported failure) after creating its
 * temporary file, on its first `dies` attempts; after that it is the real worker. Each attempt
 * adds a line to attempts.log in the snapshot directory.
 */
function dyingSnapshotWorker(dir: string, dies: number): URL {
  const real = new URL('../src/engine/snapshot-worker.js', import.meta.url).href;
  const path = join(dir, 'dying-snapshot-worker.mjs');
  writeFileSync(
    path,
    `import { workerData } from 'node:worker_threads';
    import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
    import { join } from 'node:path';
    const log = join(workerData.dir, 'attempts.log');
    appendFileSync(log, 'attempt\\n');
    if (readFileSync(log, 'utf8').split('\\n').length - 1 <= ${dies}) {
      writeFileSync(join(workerData.dir, 'snapshot-' + String(workerData.position.logOffset).padStart(20, '0') + '.wsnap.tmp'), 'half a snapshot');
      throw new Error('test worker dies');
    }
    await import(${JSON.stringify(real)});`,
  );
  return pathToFileURL(path);
}

test('automatic snapshots whose worker dies leave no files behind and are retried with backoff, on the injected clock', async () => {
  await inTempDir(async (dir) => {
    let now = 1_000_000;
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning.message);
    process.on('warning', onWarning);
    const ledger = await openLedger({ dataDir: dir.path, fsync: false, nowMs: () => now, snapshotEveryRecords: 5, snapshotWorkerUrl: dyingSnapshotWorker(dir.path, 3) });
    const { snapshotDir } = dataPaths(dir.path);
    const attempts = (): number => (existsSync(join(snapshotDir, 'attempts.log')) ? readFileSync(join(snapshotDir, 'attempts.log'), 'utf8').split('\n').length - 1 : 0);
    // The chunk being spooled for the next snapshot is a temporary file too, and in use.
    const leftovers = (): string[] => readdirSync(snapshotDir).filter((name) => name.endsWith('.tmp') && !name.endsWith('-open.wtxn.tmp'));
    /** Submits deposits until the snapshot started by the drains settles (failure or success). */
    const driveUntil = async (done: () => boolean): Promise<void> => {
      for (let round = 0; !done(); round++) {
        assert.ok(round < 2000, 'the snapshot settled');
        await submit(ledger, [deposit(`d-${now}-${round}`, 'a', 1n)]);
        await new Promise((wake) => setTimeout(wake, 2));
      }
    };
    try {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      const failuresBecome = (count: number) => () => ledger.stats().snapshotFailures === count;
      await driveUntil(failuresBecome(1));
      assert.equal(attempts(), 1);
      assert.deepEqual(leftovers(), [], "the dead worker's file is removed");
      // Many drains past the interval within the first second: no new attempt.
      for (let round = 0; round < 20; round++) await submit(ledger, [deposit(`wait-${round}`, 'a', 1n)]);
      await new Promise((wake) => setTimeout(wake, 50));
      assert.equal(attempts(), 1, 'no retry before 1 s');
      now += 1_000;
      await driveUntil(failuresBecome(2));
      assert.equal(attempts(), 2);
      now += 1_999;
      for (let round = 0; round < 20; round++) await submit(ledger, [deposit(`wait2-${round}`, 'a', 1n)]);
      await new Promise((wake) => setTimeout(wake, 50));
      assert.equal(attempts(), 2, 'the second wait is 2 s');
      now += 1;
      await driveUntil(failuresBecome(3));
      assert.deepEqual(leftovers(), []);
      now += 4_000;
      await driveUntil(failuresBecome(0)); // the fourth attempt runs the real worker
      assert.equal(attempts(), 4);
      assert.equal(ledger.stats().lastSnapshotSequence > 0, true, 'a snapshot was written');
      assert.deepEqual(leftovers(), []);
      const said = warnings.filter((warning) => warning.startsWith('snapshot failed'));
      assert.deepEqual(
        said.map((warning) => /\((\d) in a row\).*test worker dies.*next attempt in (\d+) s$/.exec(warning)?.slice(1)),
        [['1', '1'], ['2', '2'], ['3', '4']],
        said.join('\n'),
      );
    } finally {
      process.off('warning', onWarning);
      await ledger.close();
    }
  });
});

test("a snapshot's scan taken while the transaction table grows holds the copying back, and the snapshot is exact", async () => {
  let entriesFrom = '';
  await withTempLedger(
    async (ledger, dir) => {
      const txns = (ledger as unknown as { state: LedgerState }).state.txns;
      for (let i = 0; i < 10; i++) await ledger.openAccount({ accountId: `g${i}`, currencyCode: 'USD', owner: `g${i}` });
      // The table starts at 4,096 slots and grows at the insert that passes 70% (the 2,868th
      // entry); its copying then takes 512 inserts, 8 slots each. Stop 12 inserts into it.
      const deposits = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => deposit(`${prefix}-${i}`, `g${i % 10}`, 1n));
      await submit(ledger, deposits('before', 2860));
      assert.equal(txns.growing, false);
      await submit(ledger, deposits('crossing', 20));
      assert.equal(txns.growing, true, 'a growth is being copied');
      const copiedAtHold: number[] = [];
      const holdEntries = txns.holdEntries.bind(txns);
      txns.holdEntries = () => {
        const hold = holdEntries();
        copiedAtHold.push(txns.copiedSlots);
        assert.equal(hold.sources.length, 2, 'the scan reads the new array and the old one not yet copied');
        return hold;
      };
      let settled = false;
      const snapshot = ledger.snapshot().finally(() => (settled = true));
      // Nothing is inserted until the hold is taken (each insert would copy 8 more old slots);
      // then a few inserts while the worker scans, into the new array only (not so many that
      // the next growth would start: that one breaks the hold, as another test shows).
      while (copiedAtHold.length === 0 && !settled) await new Promise((wake) => setTimeout(wake, 1));
      const copiedBefore = txns.copiedSlots;
      for (let batch = 0; batch < 3; batch++) await submit(ledger, deposits(`during-${batch}`, 50));
      const heldBack = !settled;
      if (heldBack) assert.equal(txns.copiedSlots, copiedBefore, '150 inserts under the hold copied nothing');
      await snapshot;
      txns.holdEntries = holdEntries; // the final snapshot at close scans a table done growing
      assert.equal(entriesFrom, 'scan');
      assert.equal(copiedAtHold.length, 1);
      assert.ok(copiedAtHold[0]! < 4096, `taken mid-growth (${copiedAtHold[0]} of 4,096 old slots copied)`);
      const meta = loadSnapshot(newestSnapshot(dir.path).path).meta;
      assert.equal(stateDigest(recover(dir.path, { fromGenesis: true, toSequence: meta.sequence }).state), meta.digest, 'the snapshot is the state at its sequence');
      // Released, the copying resumes and ends; every id is still found, and a restart equals the live state.
      await submit(ledger, deposits('after', 600));
      assert.equal(txns.growing, false, 'the copying finished after the hold');
      const retry = await submit(ledger, [deposit('before-7', 'g7', 1n), deposit('during-0-3', 'g3', 1n)]);
      assert.deepEqual([...retry.codes], [Wire.ok, Wire.ok], 'ids from before and during the snapshot are remembered');
      assert.ok(retry.sequences[0]! <= meta.sequence, 'a retry answers with the first outcome');
      assert.equal(stateDigest(recover(dir.path).state), ledger.digest(), 'snapshot plus tail is the live state');
    },
    { snapshotEveryRecords: Number.MAX_SAFE_INTEGER, observer: { onSnapshot: (info) => (entriesFrom = info.entriesFrom) } },
  );
});
