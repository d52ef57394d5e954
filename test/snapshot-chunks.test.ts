// Snapshots that write only the transaction entries logged since the previous one, as chunk
// files (src/engine/txn-chunks.ts). Checked here: the chunk list of every snapshot runs from
// sequence 0 to the snapshot's own; each snapshot writes a chunk of only its new entries;
// merging keeps the list short (a binary counter); pruning keeps exactly the chunks the kept
// snapshots list; recovery from chunks gives the live digest; a damaged chunk makes its
// snapshots unusable (recovery falls back, same digest); a version 1 snapshot (every entry in
// the file) still loads, and the next snapshot after it starts the chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { bytesOf, stateDigest } from '../src/core/digest.js';
import { Wire } from '../src/core/errors.js';
import { foldTxnWords, TxnTable } from '../src/core/txn-table.js';
import { ChecksummedWriter } from '../src/engine/checked-file.js';
import { dataPaths, recover } from '../src/engine/recovery.js';
import { listSnapshots, loadSnapshot, type SnapshotMeta } from '../src/engine/snapshot.js';
import { SNAPSHOT_VERSION, snapshotFileName } from '../src/engine/snapshot-write.js';
import { addChunk, ChunkFileWriter, entryPiecesOf, readChunk, type ChunkRef } from '../src/engine/txn-chunks.js';
import type { Ledger } from '../src/engine/types.js';
import { Prng } from '../src/stdx/prng.js';
import { deposit, inTempDir, newestSnapshot, submit, transfer, withLedger, withTempLedger } from './support/ledger.js';

const ENTRY_BYTES = 24;
/** A version 2 chunk's header (32), trailer (32) and CRC-32 (4). */
const CHUNK_FIXED_BYTES = 68;

function chunkFiles(dir: string): string[] {
  return readdirSync(dataPaths(dir).snapshotDir)
    .filter((name) => name.endsWith('.wtxn'))
    .sort();
}

function newestMeta(dir: string): SnapshotMeta {
  return loadSnapshot(newestSnapshot(dir).path).meta;
}

/** A ledger in `dataDir` with account `a` and `count` deposits into it, closed (so snapshotted); returns its digest. */
async function depositedAndClosed(dataDir: string, prefix: string, count: number): Promise<string> {
  return withLedger(dataDir, async (ledger) => {
    await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
    await deposits(ledger, prefix, count);
    return ledger.digest();
  });
}

/** `count` deposits into `a` with fresh ids (one batch). */
async function deposits(ledger: Ledger, prefix: string, count: number): Promise<void> {
  const results = await submit(ledger, Array.from({ length: count }, (_, index) => deposit(`${prefix}-${index}`, 'a', 1n)));
  assert.ok(results.codes.every((code) => code === Wire.ok));
}

test('each snapshot writes a chunk of only the entries logged since the previous one; the list stays contiguous, short and pruned', async () => {
  await withTempLedger(
    async (ledger, dir) => {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      // What a crash while writing leaves behind: removed by the next snapshot's pruning.
      const { snapshotDir } = dataPaths(dir.path);
      writeFileSync(join(snapshotDir, 'snapshot-00000000000000000001.wsnap.tmp'), 'half');
      writeFileSync(join(snapshotDir, 'txns-00000000000000000000-00000000000000000001.wtxn.tmp'), 'half');
      let entriesBefore = 0;
      for (let round = 0; round < 12; round++) {
        const count = 50 + round * 7;
        await deposits(ledger, `r${round}`, count);
        await ledger.snapshot();
        const meta = newestMeta(dir.path);
        const chunks = meta.txnChunks!;
        assert.equal(meta.version, SNAPSHOT_VERSION);
        assert.equal(meta.txnCount, entriesBefore + count);
        assert.deepEqual(
          meta.sections.map((section) => section.name),
          ['account_id_lengths', 'account_id_arena', 'owner_id_lengths', 'owner_id_arena', 'account_records'],
          'no transaction entry in the snapshot file itself',
        );
        // Contiguous from 0 to the snapshot's sequence, counts summing to every entry.
        assert.equal(chunks[0]!.afterSequence, 0);
        for (let i = 1; i < chunks.length; i++) assert.equal(chunks[i]!.afterSequence, chunks[i - 1]!.toSequence);
        assert.equal(chunks.at(-1)!.toSequence, meta.sequence);
        assert.equal(
          chunks.reduce((sum, chunk) => sum + chunk.count, 0),
          meta.txnCount,
        );
        // A binary counter: each chunk holds more entries than the next newer one.
        for (let i = 1; i < chunks.length; i++) assert.ok(chunks[i - 1]!.count > chunks[i]!.count, `chunk ${i} is smaller than the one before`);
        assert.ok(chunks.length <= Math.log2(meta.txnCount / 50) + 2, `${chunks.length} chunks for ${meta.txnCount} entries`);
        // The newest chunk, unless merged, holds exactly this round's entries.
        const newest = chunks.at(-1)!;
        if (newest.afterSequence === meta.sequence - count) assert.equal(newest.count, count);
        for (const chunk of chunks) assert.equal(statSync(join(dataPaths(dir.path).snapshotDir, chunk.name)).size, CHUNK_FIXED_BYTES + chunk.count * ENTRY_BYTES);
        // Exactly the chunks the two kept snapshots list are on disk.
        const kept = listSnapshots(dataPaths(dir.path).snapshotDir).map((snapshot) => loadSnapshot(snapshot.path).meta);
        assert.ok(kept.length <= 2);
        const listed = new Set(kept.flatMap((snapshotMeta) => (snapshotMeta.txnChunks ?? []).map((chunk) => chunk.name)));
        assert.deepEqual(chunkFiles(dir.path), [...listed].sort());
        assert.deepEqual(readdirSync(snapshotDir).filter((name) => name.endsWith('.tmp')), [], 'no temporary file left');
        entriesBefore = meta.txnCount;
      }
      // A second snapshot with nothing new logged keeps the chunks as they are.
      const before = newestMeta(dir.path).txnChunks;
      await ledger.snapshot();
      assert.deepEqual(newestMeta(dir.path).txnChunks, before);
      // Snapshot plus chunks, and the whole log, give the live state.
      assert.equal(stateDigest(loadSnapshot(newestSnapshot(dir.path).path).state), ledger.digest());
      assert.equal(stateDigest(recover(dir.path, { fromGenesis: true }).state), ledger.digest());
    },
    { snapshotEveryRecords: Number.MAX_SAFE_INTEGER },
  );
});

test('a damaged chunk makes the snapshots listing it unusable: recovery falls back and reaches the same state', async () => {
  await inTempDir(async (dir) => {
    let digest = '';
    await withLedger(
      dir.path,
      async (ledger) => {
        await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
        await ledger.openAccount({ accountId: 'b', currencyCode: 'USD', owner: 'b' });
        await deposits(ledger, 'first', 400);
        await ledger.snapshot();
        await deposits(ledger, 'second', 100);
        assert.equal((await submit(ledger, [transfer('t1', 'a', 'b', 7n)])).codes[0], Wire.ok);
        await ledger.snapshot();
        digest = ledger.digest();
      },
      { snapshotEveryRecords: Number.MAX_SAFE_INTEGER },
    );
    const { snapshotDir } = dataPaths(dir.path);
    const [newest, older] = listSnapshots(snapshotDir).map((snapshot) => loadSnapshot(snapshot.path).meta);
    // 400 then 101 entries: not merged, so the newest snapshot's own chunk is listed by it alone.
    assert.deepEqual(
      newest!.txnChunks!.map((chunk) => chunk.count),
      [400, 101],
    );
    assert.deepEqual(
      older!.txnChunks!.map((chunk) => chunk.count),
      [400],
    );
    const ownChunk = join(snapshotDir, newest!.txnChunks![1]!.name);
    flipByte(ownChunk, 32 + 5 * ENTRY_BYTES + 3);
    const warnings: string[] = [];
    const fromOlder = recover(dir.path, { warn: (message) => warnings.push(message) });
    assert.equal(fromOlder.snapshot?.sequence, older!.sequence, 'the older snapshot is used');
    assert.match(warnings.join('\n'), /checksum mismatch/);
    assert.equal(stateDigest(fromOlder.state), digest);
    // The chunk both list: neither is usable, the whole log is replayed.
    flipByte(join(snapshotDir, older!.txnChunks![0]!.name), 32 + 7);
    const fromGenesis = recover(dir.path, { warn: () => undefined });
    assert.equal(fromGenesis.snapshot, undefined);
    assert.equal(stateDigest(fromGenesis.state), digest);
    // The engine starts from the log too, and its next snapshot writes all entries again.
    await withLedger(dir.path, async (ledger) => {
      assert.equal(ledger.digest(), digest);
      await deposits(ledger, 'third', 3);
      await ledger.snapshot();
      const meta = newestMeta(dir.path);
      assert.deepEqual(
        meta.txnChunks!.map((chunk) => [chunk.afterSequence, chunk.count]),
        [[0, 504]],
      );
    });
  });
});

test('addChunk merges like a binary counter up to a size; merged chunks hold the union; readChunk refuses a chunk that differs from its listing', async () => {
  await inTempDir(async (dir) => {
    const prng = new Prng(7);
    let chunks: ChunkRef[] = [];
    let sequence = 0;
    const all: number[][] = [];
    const shapes: number[][] = [];
    for (const count of [8, 8, 8, 8, 3, 1, 1, 20]) {
      const entries = new Uint32Array(count * 6);
      for (let i = 0; i < count; i++) {
        sequence++;
        entries.set([prng.nextU32(), prng.nextU32(), prng.nextU32(), prng.nextU32(), sequence, 0], i * 6);
        all.push([...entries.subarray(i * 6, i * 6 + 6)]);
      }
      chunks = addChunk(dir.path, chunks, sequence, entryPiecesOf([entries]));
      shapes.push(chunks.map((chunk) => chunk.count));
    }
    assert.deepEqual(shapes, [[8], [16], [16, 8], [32], [32, 3], [32, 3, 1], [32, 3, 2], [32, 25]]);
    const read = chunks.flatMap((chunk) => {
      const entries = readChunk(dir.path, chunk);
      return Array.from({ length: chunk.count }, (_, i) => [...entries.subarray(i * 6, i * 6 + 6)]);
    });
    assert.deepEqual(read, all, 'every entry once, in sequence order');
    const table = TxnTable.fromEntries(
      chunks.map((chunk) => readChunk(dir.path, chunk)),
      1 << 12,
    );
    assert.equal(table.count, sequence);
    // Chunks merge only up to a size: past it they are written once and left alone.
    await inTempDir(async (capped) => {
      let list: ChunkRef[] = [];
      const counts: number[][] = [];
      let at = 0;
      for (const count of [8, 8, 8, 8, 4, 4]) {
        const entries = new Uint32Array(count * 6);
        for (let i = 0; i < count; i++) entries.set([prng.nextU32(), prng.nextU32(), prng.nextU32(), 0, ++at, 0], i * 6);
        list = addChunk(capped.path, list, at, entryPiecesOf([entries.subarray(0, 12), entries.subarray(12)]), 16);
        counts.push(list.map((chunk) => chunk.count));
      }
      assert.deepEqual(counts, [[8], [16], [16, 8], [16, 16], [16, 16, 4], [16, 16, 8]]);
    });
    const first = chunks[0]!;
    assert.throws(() => readChunk(dir.path, { ...first, count: first.count - 1 }), /size does not match/);
    assert.throws(() => readChunk(dir.path, { ...first, afterSequence: 1 }), /header does not match/);
    assert.throws(() => readChunk(dir.path, { ...first, toSequence: first.toSequence + 1 }), /trailer does not match/);
    assert.throws(() => readChunk(dir.path, { ...first, fold: [0, 0, 0, 0] }), /fold does not match/);
    assert.throws(() => readChunk(dir.path, { ...first, name: 'txns-00000000000000000000-00000000000000000001.wtxn' }), /ENOENT/);
  });
});

test('a version 1 chunk (the range and count in its header) still reads, checked the same way; a sealed chunk joins older ones when small', async () => {
  await inTempDir(async (dir) => {
    const prng = new Prng(11);
    const entries = new Uint32Array(5 * 6);
    for (let i = 0; i < 5; i++) entries.set([prng.nextU32(), prng.nextU32(), prng.nextU32(), prng.nextU32(), i + 1, 0], i * 6);
    const fold = foldTxnWords(entries);
    const name = 'txns-00000000000000000000-00000000000000000005.wtxn';
    // Version 1 as docs/LOG-FORMAT.md gives it, byte by byte.
    const writer = new ChecksummedWriter(join(dir.path, name));
    const header = Buffer.alloc(32);
    header.write('WTXNCHK1', 0, 'latin1');
    header.writeBigUInt64LE(0n, 8);
    header.writeBigUInt64LE(5n, 16);
    header.writeUInt32LE(5, 24);
    writer.write(header);
    writer.write(bytesOf(entries));
    writer.write(bytesOf(fold));
    writer.finish();
    const v1: ChunkRef = { name, afterSequence: 0, toSequence: 5, count: 5, fold: [...fold] };
    assert.deepEqual(readChunk(dir.path, v1), entries);
    assert.throws(() => readChunk(dir.path, { ...v1, count: 4 }), /header does not match/);
    assert.throws(() => readChunk(dir.path, { ...v1, fold: [1, 2, 3, 4] }), /fold does not match/);
    // A sealed chunk (as the spool writes them) no larger than the chunk before it joins it: the
    // two are rewritten as one (version 2), every entry once, in order.
    const more = new Uint32Array(5 * 6);
    for (let i = 0; i < 5; i++) more.set([prng.nextU32(), prng.nextU32(), prng.nextU32(), 0, 6 + i, 0], i * 6);
    const spooled = new ChunkFileWriter(dir.path, 5);
    spooled.add(more);
    const sealed = spooled.finish(10);
    assert.equal(sealed.name, 'txns-00000000000000000005-00000000000000000010.wtxn');
    const list = addChunk(dir.path, [v1], 10, { sealed });
    assert.deepEqual(
      list.map((chunk) => [chunk.afterSequence, chunk.toSequence, chunk.count]),
      [[0, 10, 10]],
    );
    assert.deepEqual([...readChunk(dir.path, list[0]!)], [...entries, ...more]);
    assert.deepEqual(addChunk(dir.path, [v1], 10, { sealed }, 8), [v1, sealed], 'past the merge bound it is listed as it is');
    assert.throws(() => addChunk(dir.path, [], 10, { sealed }), /does not continue/);
  });
});

/** The name of the chunk a spool begins after `sequence`, until it is sealed. */
function openChunkName(sequence: number): string {
  return `txns-${String(sequence).padStart(20, '0')}-open.wtxn.tmp`;
}

/** A chunk spool worker that exits (code 3) at its first seal in `dir`, and runs as the real one after. */
function spoolWorkerDyingAtFirstSeal(dir: string): URL {
  const real = new URL('../src/engine/chunk-spool-worker.js', import.meta.url).href;
  const marker = join(dir, 'spool-died');
  // Its listener comes first, and both are in place before any message (static imports run in order).
  writeFileSync(
    join(dir, 'die-at-first-seal.mjs'),
    `import { parentPort } from 'node:worker_threads';
    import { existsSync, writeFileSync } from 'node:fs';
    parentPort.on('message', (message) => {
      if (message.kind === 'seal' && !existsSync(${JSON.stringify(marker)})) {
        writeFileSync(${JSON.stringify(marker)}, '');
        process.exit(3);
      }
    });`,
  );
  const path = join(dir, 'dying-spool-worker.mjs');
  writeFileSync(path, `import './die-at-first-seal.mjs';\nimport ${JSON.stringify(real)};\n`);
  return pathToFileURL(path);
}

test('the chunk spool: full blocks are written between drains; a chunk it cannot begin, or a worker that dies, costs one scan; an open chunk left by a stopped run is removed at start', async () => {
  type Info = { newEntries: number; entriesFrom: string };
  await inTempDir(async (dir) => {
    const seen: Info[] = [];
    const observer = { onSnapshot: (info: Info) => seen.push({ newEntries: info.newEntries, entriesFrom: info.entriesFrom }) };
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning.message);
    process.on('warning', onWarning);
    const { snapshotDir } = dataPaths(dir.path);
    try {
      await withLedger(
        dir.path,
        async (ledger) => {
          const began = ledger.stats().headSequence; // a new ledger's journal begins at once
          await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
          // More than a journal block (65,536 entries): the full block is written while the interval runs.
          for (let batch = 0; batch < 10; batch++) await deposits(ledger, `big${batch}`, 8000);
          const spooled = join(snapshotDir, openChunkName(began));
          for (let wait = 0; statSync(spooled).size < 32 + 65_536 * ENTRY_BYTES; wait++) {
            assert.ok(wait < 500, 'the first full block reached the open chunk before any snapshot');
            await new Promise((wake) => setTimeout(wake, 10));
          }
          await ledger.snapshot();
          // The next chunk cannot be begun (a directory where its file goes): said, and the snapshot after it scans.
          await deposits(ledger, 'small', 10);
          const blocked = join(snapshotDir, openChunkName(ledger.stats().headSequence));
          mkdirSync(blocked);
          await ledger.snapshot();
          await deposits(ledger, 'scanned', 12);
          await ledger.snapshot();
          await deposits(ledger, 'again', 14);
          await ledger.snapshot();
          rmdirSync(blocked);
        },
        { snapshotEveryRecords: 1_000_000, observer },
      );
      assert.deepEqual(seen, [
        { newEntries: 80_000, entriesFrom: 'journal' },
        { newEntries: 10, entriesFrom: 'journal' },
        { newEntries: 12, entriesFrom: 'scan' },
        { newEntries: 14, entriesFrom: 'journal' },
      ]);
      assert.match(warnings.join('\n'), /chunk spool: EISDIR.*the next snapshot scans the transaction table instead/);
      // A worker that dies while sealing: that snapshot scans; a new worker spools a later one.
      seen.length = 0;
      warnings.length = 0;
      const digest = await withLedger(
        dir.path,
        async (ledger) => {
          await deposits(ledger, 'died', 9);
          await ledger.snapshot();
          // The chunk the dead worker had open is removed, not left on disk until the next start.
          assert.deepEqual(
            readdirSync(snapshotDir).filter((name) => name.endsWith('-open.wtxn.tmp')),
            [],
          );
          await deposits(ledger, 'after', 4);
          await ledger.snapshot();
          await deposits(ledger, 'spooled', 6);
          await ledger.snapshot();
          return ledger.digest();
        },
        { snapshotEveryRecords: 1_000_000, observer, chunkSpoolWorkerUrl: spoolWorkerDyingAtFirstSeal(dir.path) },
      );
      // The chunk begun at that capture went to the same worker, so the next snapshot scans too.
      assert.deepEqual(seen.slice(0, 3), [
        { newEntries: 9, entriesFrom: 'scan' },
        { newEntries: 4, entriesFrom: 'scan' },
        { newEntries: 6, entriesFrom: 'journal' },
      ]);
      assert.match(warnings.join('\n'), /chunk spool worker exited with code 3; this snapshot scans the transaction table instead/);
      assert.equal(stateDigest(recover(dir.path).state), digest);
      assert.equal(stateDigest(recover(dir.path, { fromGenesis: true }).state), digest);
      // An open chunk left behind by a run that stopped (a crash) is removed when the next one starts.
      const leftover = join(snapshotDir, openChunkName(3));
      writeFileSync(leftover, 'half a chunk');
      await withLedger(dir.path, async () => assert.equal(existsSync(leftover), false));
    } finally {
      process.off('warning', onWarning);
    }
  });
});

test('a version 1 snapshot (every entry in the file) still loads, and the next snapshot writes them all as the first chunk', async () => {
  await inTempDir(async (dir) => {
    const digest = await depositedAndClosed(dir.path, 'old', 300);
    // Rewrite the newest snapshot as version 1 would have: the entries as a section, no chunks.
    const { snapshotDir } = dataPaths(dir.path);
    const newest = listSnapshots(snapshotDir)[0]!;
    const loaded = loadSnapshot(newest.path);
    writeVersion1Snapshot(join(snapshotDir, snapshotFileName(loaded.meta.sequence)), loaded.meta, loaded.state.txns.compactEntries(), newest.path);
    for (const name of chunkFiles(dir.path)) unlinkSync(join(snapshotDir, name));
    const recovered = recover(dir.path);
    assert.equal(recovered.snapshot?.version, 1);
    assert.equal(recovered.replayedEvents, 0, 'nothing replayed: the snapshot held it all');
    assert.equal(stateDigest(recovered.state), digest);
    await withLedger(dir.path, async (ledger) => {
      await deposits(ledger, 'new', 5);
      await ledger.snapshot();
      assert.deepEqual(
        newestMeta(dir.path).txnChunks!.map((chunk) => [chunk.afterSequence, chunk.count]),
        [[0, 305]],
      );
    });
  });
});

test('a version 2 snapshot (the meta before the sections) still loads; one claiming version 3 in that layout is refused', async () => {
  await inTempDir(async (dir) => {
    const digest = await depositedAndClosed(dir.path, 'old', 40);
    const newest = newestSnapshot(dir.path);
    const { sections, meta } = fileParts(readFileSync(newest.path));
    writeMetaFirstSnapshot(newest.path, { ...meta, version: 2 }, [sections]);
    const loaded = loadSnapshot(newest.path);
    assert.equal(loaded.meta.version, 2);
    assert.equal(stateDigest(loaded.state), digest);
    writeMetaFirstSnapshot(newest.path, meta, [sections]);
    assert.throws(() => loadSnapshot(newest.path), /version 3 in the layout of versions 1 and 2/);
  });
});

test('a snapshot of an unknown version, or with a malformed meta, is refused by name and recovery falls back', async () => {
  await inTempDir(async (dir) => {
    const digest = await depositedAndClosed(dir.path, 'd', 20);
    const { snapshotDir } = dataPaths(dir.path);
    const newest = listSnapshots(snapshotDir)[0]!;
    const original = readFileSync(newest.path);
    const edits: Array<[string, (meta: Record<string, unknown>) => void, RegExp]> = [
      ['a newer version', (meta) => (meta.version = 4), /version 4 is not one this walletd reads \(1 or 2 or 3\)/],
      ['a newer version with a new field', (meta) => ((meta.version = 4), (meta.shards = 4)), /version 4 is not one this walletd reads/],
      ['a version as text', (meta) => (meta.version = '3'), /version "3" is not one this walletd reads/],
      ['an older version in the layout of version 3', (meta) => (meta.version = 2), /version 2 in the layout of version 3/],
      ['a chunk name outside the directory', (meta) => ((meta.txnChunks as Array<Record<string, unknown>>)[0]!.name = '../escape.wtxn'), /meta \/txnChunks\/0\/name must match pattern/],
      ['a fractional count', (meta) => (meta.txnCount = 1.5), /meta \/txnCount must be integer/],
      ['an unknown field', (meta) => (meta.pruned = true), /must NOT have additional properties/],
      ['a section larger than the file (nothing that size is allocated)', (meta) => ((meta.sections as Array<Record<string, unknown>>)[0]!.bytes = 2 ** 40), /is truncated/],
      ['a transaction table larger than any', (meta) => (meta.txnSlots = 2 ** 40), /meta \/txnSlots must be <= 536870912/],
    ];
    for (const [what, edit, message] of edits) {
      rewriteSnapshotMeta(newest.path, original, edit);
      assert.throws(() => loadSnapshot(newest.path), message, what);
      const warnings: string[] = [];
      const recovered = recover(dir.path, { warn: (warning) => warnings.push(warning) });
      assert.match(warnings.join('\n'), message, what);
      assert.notEqual(recovered.snapshot?.sequence, fileParts(original).meta.sequence, what);
      assert.equal(stateDigest(recovered.state), digest, what);
    }
  });
});

test('snapshots take their new entries from the journal; after a replayed tail or a dropped journal they scan once', async () => {
  type Info = { newEntries: number; entriesFrom: string };
  await inTempDir(async (dir) => {
    const seen: Info[] = [];
    const observer = { onSnapshot: (info: Info) => seen.push({ newEntries: info.newEntries, entriesFrom: info.entriesFrom }) };
    await withLedger(
      dir.path,
      async (ledger) => {
        await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
        await deposits(ledger, 'one', 40);
        await ledger.snapshot();
        await deposits(ledger, 'two', 30);
        await ledger.snapshot();
        // 150 entries in one batch pass the journal's bound (twice the interval of 60): dropped.
        // They also start a snapshot by the interval, which scans; the one asked for next has
        // nothing new.
        await deposits(ledger, 'three', 150);
        await ledger.snapshot();
        await deposits(ledger, 'four', 20);
        await ledger.snapshot();
      },
      { snapshotEveryRecords: 60, observer },
    );
    assert.deepEqual(seen, [
      { newEntries: 40, entriesFrom: 'journal' },
      { newEntries: 30, entriesFrom: 'journal' },
      { newEntries: 150, entriesFrom: 'scan' },
      { newEntries: 0, entriesFrom: 'journal' },
      { newEntries: 20, entriesFrom: 'journal' },
    ]);
    // A clean restart (nothing logged after the newest snapshot): the journal starts at once.
    await withLedger(
      dir.path,
      async (ledger) => {
        await deposits(ledger, 'five', 7);
        seen.length = 0;
        await ledger.snapshot();
        await deposits(ledger, 'six', 5);
        await ledger.snapshot();
        assert.deepEqual(seen, [
          { newEntries: 7, entriesFrom: 'journal' },
          { newEntries: 5, entriesFrom: 'journal' },
        ]);
      },
      { snapshotEveryRecords: 1_000_000, observer },
    );
    // Records logged after the newest snapshot (a crash before the next one) are replayed at
    // start, so the first snapshot after it scans, and the one after that uses the journal.
    const { snapshotDir } = dataPaths(dir.path);
    const newest = listSnapshots(snapshotDir)[0]!;
    await withLedger(dir.path, async (ledger) => deposits(ledger, 'seven', 9), { snapshotEveryRecords: 1_000_000 });
    unlinkSync(listSnapshots(snapshotDir)[0]!.path); // as if the process died before its final snapshot
    assert.equal(listSnapshots(snapshotDir)[0]!.path, newest.path);
    seen.length = 0;
    await withLedger(
      dir.path,
      async (ledger) => {
        await ledger.snapshot();
        await deposits(ledger, 'eight', 4);
        await ledger.snapshot();
        assert.deepEqual(seen, [
          { newEntries: 9, entriesFrom: 'scan' },
          { newEntries: 4, entriesFrom: 'journal' },
        ]);
        assert.equal(stateDigest(recover(dir.path, { fromGenesis: true }).state), ledger.digest());
      },
      { snapshotEveryRecords: 1_000_000, observer },
    );
    // An interval too long for a journal (its bound, twice the interval, above 16M entries):
    // none is kept, and snapshots scan.
    seen.length = 0;
    await withLedger(
      dir.path,
      async (ledger) => {
        await deposits(ledger, 'nine', 3);
        await ledger.snapshot();
        assert.deepEqual(seen, [{ newEntries: 3, entriesFrom: 'scan' }]);
      },
      { snapshotEveryRecords: 8_388_609, observer },
    );
  });
});

function flipByte(path: string, offset: number): void {
  const bytes = readFileSync(path);
  bytes[offset] = bytes[offset]! ^ 0x40;
  writeFileSync(path, bytes);
}

/** A version 3 file's parts: the sections' bytes and the meta (found from the end). */
function fileParts(bytes: Buffer): { sections: Buffer; meta: Record<string, unknown> } {
  assert.equal(bytes.subarray(0, 8).toString('latin1'), 'WSNAP003');
  const lengthAt = bytes.length - 8;
  const metaLength = bytes.readUInt32LE(lengthAt);
  return { sections: bytes.subarray(8, lengthAt - metaLength), meta: JSON.parse(bytes.subarray(lengthAt - metaLength, lengthAt).toString('utf8')) as Record<string, unknown> };
}

/** The layout of versions 1 and 2: magic "WSNAP001", meta length, meta, the sections, CRC-32. */
function writeMetaFirstSnapshot(path: string, meta: unknown, sections: Uint8Array[]): void {
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(metaBytes.length, 0);
  const writer = new ChecksummedWriter(path);
  for (const part of [Buffer.from('WSNAP001', 'latin1'), length, metaBytes, ...sections]) writer.write(part);
  writer.finish();
}

/** Version 1: every entry in a txn_entries section after the others, no chunks. */
function writeVersion1Snapshot(path: string, meta: SnapshotMeta, entries: Uint32Array, from: string): void {
  const { sections } = fileParts(readFileSync(from));
  const { txnChunks: _dropped, ...rest } = meta;
  const v1: SnapshotMeta = { ...rest, version: 1, sections: [...meta.sections, { name: 'txn_entries', bytes: entries.byteLength }] };
  writeMetaFirstSnapshot(path, v1, [sections, bytesOf(entries)]);
}

/** Rewrites a snapshot's meta (from its original bytes) through `edit`, with a valid CRC-32: only the meta is wrong. */
function rewriteSnapshotMeta(path: string, original: Buffer, edit: (meta: Record<string, unknown>) => void): void {
  const { sections, meta } = fileParts(original);
  edit(meta);
  const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32LE(metaBytes.length, 0);
  const writer = new ChecksummedWriter(path);
  for (const part of [original.subarray(0, 8), sections, metaBytes, length]) writer.write(part);
  writer.finish();
}
