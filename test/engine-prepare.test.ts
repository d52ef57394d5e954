// The prepare worker (src/engine/preparer.ts): large batches are validated, fingerprinted and
// have their accounts looked up on a worker thread while the engine decides earlier ones. These
// tests check that this changes no outcome, also when accounts are opened and the account id
// table grows (new shared buffers) while batches are being prepared, that commands are still
// taken in submission order, and that batches caught by a stopped worker are decided anyway.
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import { DecideScratch, PREPARED_TO_INDEX, PREPARED_WORDS, prepareRecordRange, prepareRecords, recordView, type RecordView } from '../src/core/decide.js';
import { Wire } from '../src/core/errors.js';
import { IdTable, IdTableReader } from '../src/core/id-table.js';
import { BATCH_RECORDS_MAX, encodeTransferBatch, type TransferCommand } from '../src/core/transfer-record.js';
import { openLedger } from '../src/engine/ledger.js';
import { allSharesDone, CLAIM_WORDS, PREPARE_SHARE_RECORDS, prepareShares, sharesLeft, sharesOf } from '../src/engine/prepare-shares.js';
import { BatchPreparer, PREPARE_IN_FLIGHT_MAX } from '../src/engine/preparer.js';
import type { TransferResults } from '../src/engine/types.js';
import { deposit, submit, tempDir, transfer, withTempLedger } from './support/ledger.js';

const ROUNDS = 6;
const OPENED_PER_ROUND = 700;

/** Round r opens 700 accounts (not awaited) and submits a batch that uses them, older ones, and ones opened only next round. */
async function runWorkload(
  prepareInWorkerMinRecords: number,
  prepareWorkerUrl?: URL,
  prepareSharing = false,
): Promise<{ codes: number[]; sequences: number[]; digest: string; inWorker: number; sharedByEngine: number }> {
  const dir = tempDir('walletd-prepare-');
  const ledger = await openLedger({ dataDir: dir.path, fsync: false, prepareInWorkerMinRecords, prepareSharing, ...(prepareWorkerUrl === undefined ? {} : { prepareWorkerUrl }) });
  try {
    const pending: Array<Promise<unknown>> = [];
    const batches: Array<Promise<TransferResults>> = [];
    const id = (round: number, index: number): string => `acct-${round}-${index}`;
    for (let round = 0; round < ROUNDS; round++) {
      for (let index = 0; index < OPENED_PER_ROUND; index++) pending.push(ledger.openAccount({ accountId: id(round, index), currencyCode: 'USD', owner: 'o' }));
      const commands: TransferCommand[] = [];
      for (let index = 0; index < OPENED_PER_ROUND; index++) commands.push(deposit(`d-${round}-${index}`, id(round, index), 100n));
      for (let index = 0; index < 600; index++) {
        const older = id(Math.max(0, round - 1), (index * 7) % OPENED_PER_ROUND);
        const later = id(round + 1, index); // not open yet: account_not_found
        const to = index % 5 === 0 ? later : id(round, (index * 13) % OPENED_PER_ROUND);
        commands.push(transfer(`t-${round}-${index}`, index % 2 === 0 ? older : id(round, index), to, BigInt(1 + (index % 150))));
      }
      commands.push(transfer(`t-${round}-0`, id(round, 0), id(round, 1), 1n)); // a retry with other content: conflict
      batches.push(ledger.submitTransfers({ bytes: encodeTransferBatch(commands), count: commands.length }));
    }
    await Promise.all(pending);
    const results = await Promise.all(batches);
    return {
      codes: results.flatMap((result) => [...result.codes]),
      sequences: results.flatMap((result) => [...result.sequences]),
      digest: ledger.digest(),
      inWorker: ledger.stats().batchesPreparedInWorker,
      sharedByEngine: ledger.stats().recordsSharedByEngine,
    };
  } finally {
    await ledger.close();
    dir.remove();
  }
}

test('batches prepared on the worker decide exactly as on the engine thread, while accounts open and the id table grows', async () => {
  const inWorker = await runWorkload(1);
  const onEngine = await runWorkload(BATCH_RECORDS_MAX + 1);
  assert.equal(inWorker.inWorker, ROUNDS, 'every batch went through the worker');
  assert.equal(onEngine.inWorker, 0);
  assert.deepEqual(inWorker.codes, onEngine.codes);
  assert.deepEqual(inWorker.sequences, onEngine.sequences);
  assert.equal(inWorker.digest, onEngine.digest);
  // Opened before the batch (in submission order): found; opened after it: not found.
  const counts = new Map<number, number>();
  for (const code of inWorker.codes) counts.set(code, (counts.get(code) ?? 0) + 1);
  assert.equal(counts.get(Wire.account_not_found), ROUNDS * 120);
  assert.equal(counts.get(Wire.idempotency_conflict), ROUNDS);
  assert.ok((counts.get(Wire.ok) ?? 0) > ROUNDS * (OPENED_PER_ROUND + 100), `successes: ${counts.get(Wire.ok)}`);
  assert.ok((counts.get(Wire.insufficient_funds) ?? 0) > 0);
});

const realWorker = new URL('../src/engine/prepare-worker.js', import.meta.url).href;
/** Prepare worker scripts that fail, by name. */
const FAILING_WORKERS = {
    // Throws on its first batch: an 'error' event, every batch in flight handed back.
    throws: `import { parentPort } from 'node:worker_threads';
      parentPort.on('message', (message) => { if (message.kind === 'batch') throw new Error('test failure'); });`,
    // Prepares two batches for real, then exits while the rest are queued or in flight.
    // (Its handler is wrapped so the exit comes before the third batch is prepared.)
    exits: `import { parentPort } from 'node:worker_threads';
      let batches = 0;
      const on = parentPort.on;
      parentPort.on = (event, handler) => on.call(parentPort, event, (message) => {
        if (message.kind === 'batch' && ++batches === 3) process.exit(3);
        handler(message);
      });
      await import(${JSON.stringify(realWorker)});`,
};

/** The real worker, but each batch waits 20 ms after the one before it: pieces then land in frames of their own. */
const SLOW_WORKER = `import { parentPort } from 'node:worker_threads';
  const on = parentPort.on;
  let previous = Promise.resolve();
  parentPort.on = (event, handler) => on.call(parentPort, event, (message) => {
    if (message.kind !== 'batch') return handler(message);
    previous = previous.then(() => new Promise((wake) => setTimeout(wake, 20))).then(() => handler(message));
  });
  await import(${JSON.stringify(realWorker)});`;

/** Writes the worker script `name` (a failing one, or 'slow') into `dir`; its URL. */
function testWorker(dir: string, name: keyof typeof FAILING_WORKERS | 'slow'): URL {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(path, name === 'slow' ? SLOW_WORKER : FAILING_WORKERS[name]);
  return pathToFileURL(path);
}

test('batches caught by a prepare worker that fails are decided on the engine thread, with the same outcomes', async () => {
  const onEngine = await runWorkload(BATCH_RECORDS_MAX + 1);
  for (const name of ['throws', 'exits'] as const) {
    const dir = tempDir('walletd-prepare-worker-');
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning.message);
    process.on('warning', onWarning);
    try {
      const result = await runWorkload(1, testWorker(dir.path, name));
      assert.deepEqual(result.codes, onEngine.codes, name);
      assert.deepEqual(result.sequences, onEngine.sequences, name);
      assert.equal(result.digest, onEngine.digest, name);
      assert.equal(result.inWorker, name === 'throws' ? 0 : 2, `${name}: batches prepared before the failure`);
      assert.equal(warnings.filter((warning) => /prepare worker (failed|exited)/.test(warning)).length, 1, `${name}: ${warnings.join('; ')}`);
    } finally {
      process.off('warning', onWarning);
      dir.remove();
    }
  }
});

const PIECE_ACCOUNTS = 40;

/**
 * One batch of 1,000 records submitted to an idle engine, whose outcomes depend on each other
 * across any split: transfers spend what deposits and earlier transfers brought, record 900
 * retries record 5 (same content) and record 901 reuses record 6's id with other content.
 * `depositsFirst` one-record batches are submitted in the same turn just before it.
 */
async function runOneLargeBatch(
  preparePieceRecords: number,
  prepareWorkerUrl?: URL,
  depositsFirst = 0,
): Promise<{ codes: number[]; sequences: number[]; digest: string; inWorker: number }> {
  const dir = tempDir('walletd-prepare-pieces-');
  const ledger = await openLedger({
    dataDir: dir.path,
    fsync: false,
    preparePieceRecords,
    prepareInWorkerMinRecords: 1,
    prepareSharing: false, // these tests count what the worker prepared
    ...(prepareWorkerUrl === undefined ? {} : { prepareWorkerUrl }),
  });
  try {
    const account = (index: number): string => `p${index % PIECE_ACCOUNTS}`;
    await Promise.all(Array.from({ length: PIECE_ACCOUNTS }, (_, index) => ledger.openAccount({ accountId: account(index), currencyCode: 'USD', owner: 'o' })));
    const commands: TransferCommand[] = Array.from({ length: 1000 }, (_, index) =>
      index % 97 === 0 ? deposit(`d-${index}`, account(index), 400n) : transfer(`t-${index}`, account(index), account(index * 7 + 1), BigInt(1 + (index % 300))),
    );
    commands[900] = commands[5]!;
    commands[901] = transfer('t-6', account(0), account(1), 999n);
    const first = Array.from({ length: depositsFirst }, (_, index) => submit(ledger, [deposit(`first-${index}`, account(index), 3n)]));
    const results = await ledger.submitTransfers({ bytes: encodeTransferBatch(commands), count: commands.length });
    await Promise.all(first);
    return { codes: [...results.codes], sequences: [...results.sequences], digest: ledger.digest(), inWorker: ledger.stats().batchesPreparedInWorker };
  } finally {
    await ledger.close();
    dir.remove();
  }
}

test('a large batch sent to an idle engine goes to the worker in pieces and is decided as the whole batch is', async () => {
  const whole = await runOneLargeBatch(BATCH_RECORDS_MAX);
  const pieces = await runOneLargeBatch(100);
  assert.equal(whole.inWorker, 1, 'under twice the piece size: one batch');
  assert.equal(pieces.inWorker, 10, 'ten pieces of 100');
  assert.deepEqual(pieces.codes, whole.codes);
  assert.deepEqual(pieces.sequences, whole.sequences);
  assert.equal(pieces.digest, whole.digest);
  // The batch does depend on itself across pieces.
  assert.equal(whole.codes[900], whole.codes[5]);
  assert.equal(whole.sequences[900], whole.sequences[5], 'the retry answers with the first outcome');
  assert.equal(whole.codes[901], Wire.idempotency_conflict);
  const okAfterFirstPiece = whole.codes.slice(100).filter((code) => code === Wire.ok).length;
  assert.ok(okAfterFirstPiece > 100 && whole.codes.includes(Wire.insufficient_funds), `successes after the first piece: ${okAfterFirstPiece}`);

  const dir = tempDir('walletd-prepare-pieces-worker-');
  const onWarning = (): void => undefined;
  process.on('warning', onWarning);
  try {
    // Pieces prepared slowly are decided and made durable one by one: the batch is answered after the last.
    const slow = await runOneLargeBatch(100, testWorker(dir.path, 'slow'));
    assert.equal(slow.inWorker, 10);
    assert.deepEqual(slow.codes, whole.codes);
    assert.deepEqual(slow.sequences, whole.sequences);
    // A worker that dies after two pieces: the other eight are prepared on the engine thread.
    const failing = await runOneLargeBatch(100, testWorker(dir.path, 'exits'));
    assert.equal(failing.inWorker, 2);
    assert.deepEqual(failing.codes, whole.codes);
    assert.deepEqual(failing.sequences, whole.sequences);
    assert.equal(failing.digest, whole.digest);
  } finally {
    process.off('warning', onWarning);
    dir.remove();
  }
});

test('pieces that find the worker full are prepared on the engine thread, and decided as the whole batch is', async () => {
  // 61 one-record batches fill the worker to 3 short of its cap; they are less than a piece, so
  // the large batch is still split, and its last 7 pieces go to the engine thread.
  const depositsFirst = PREPARE_IN_FLIGHT_MAX - 3;
  const whole = await runOneLargeBatch(BATCH_RECORDS_MAX, undefined, depositsFirst);
  const pieces = await runOneLargeBatch(100, undefined, depositsFirst);
  assert.equal(whole.inWorker, depositsFirst + 1);
  assert.equal(pieces.inWorker, PREPARE_IN_FLIGHT_MAX, 'the first 3 pieces reach the worker, the other 7 do not');
  assert.deepEqual(pieces.codes, whole.codes);
  assert.deepEqual(pieces.sequences, whole.sequences);
  assert.equal(pieces.digest, whole.digest);
  assert.equal(whole.sequences[0], PIECE_ACCOUNTS + 1 + depositsFirst + 1, 'the large batch is decided after the small ones');
});

test('a large batch submitted while the engine has work queued is not split', async () => {
  await withTempLedger(
    async (ledger) => {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      const deposits = (prefix: string): TransferCommand[] => Array.from({ length: 300 }, (_, index) => deposit(`${prefix}-${index}`, 'a', 1n));
      const first = submit(ledger, deposits('first')); // 300 queued: more than a piece of 100
      const second = submit(ledger, deposits('second'));
      await Promise.all([first, second]);
      assert.equal(ledger.stats().batchesPreparedInWorker, 3 + 1, 'the first in three pieces, the second whole');
      assert.equal(ledger.account('a')?.balance, 600n);
    },
    { preparePieceRecords: 100, prepareInWorkerMinRecords: 2, prepareSharing: false },
  );
});

test('a small command submitted after a batch in preparation is decided after it', async () => {
  const dir = tempDir('walletd-prepare-');
  const ledger = await openLedger({ dataDir: dir.path, fsync: false, prepareInWorkerMinRecords: 2 });
  try {
    await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
    await ledger.openAccount({ accountId: 'b', currencyCode: 'USD', owner: 'b' });
    const big = ledger.submitTransfers({ bytes: encodeTransferBatch([deposit('fund', 'a', 10n), transfer('first', 'a', 'b', 10n)]), count: 2 });
    const small = ledger.submitTransfers({ bytes: encodeTransferBatch([transfer('second', 'a', 'b', 1n)]), count: 1 });
    const [bigResults, smallResults] = await Promise.all([big, small]);
    assert.deepEqual([...bigResults.codes], [Wire.ok, Wire.ok]);
    assert.equal(smallResults.codes[0], Wire.insufficient_funds, 'the small batch saw the big one applied');
    assert.ok(smallResults.sequences[0]! > bigResults.sequences[1]!);
    assert.equal(ledger.stats().batchesPreparedInWorker, 1);
  } finally {
    await ledger.close();
    dir.remove();
  }
});

test('at most PREPARE_IN_FLIGHT_MAX batches are with the worker; the rest are prepared on the engine thread, in order', async () => {
  await withTempLedger(
    async (ledger) => {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      // Submitted in one turn, before the worker can answer any: the first 64 go to it.
      const batches = Array.from({ length: PREPARE_IN_FLIGHT_MAX + 36 }, (_, index) => submit(ledger, [deposit(`d${index}-1`, 'a', 1n), deposit(`d${index}-2`, 'a', 1n)]));
      const results = await Promise.all(batches);
      assert.ok(results.every((result) => result.codes.every((code) => code === Wire.ok)));
      assert.deepEqual(
        results.map((result) => result.sequences[0]),
        results.map((_, index) => 3 + 2 * index),
        'decided in submission order',
      );
      assert.equal(ledger.stats().batchesPreparedInWorker, PREPARE_IN_FLIGHT_MAX);
      assert.equal(ledger.account('a')?.balance, BigInt(2 * (PREPARE_IN_FLIGHT_MAX + 36)));
    },
    { prepareInWorkerMinRecords: 2 },
  );
});

test('a reader with buffers from before a growth finds older ids, never a wrong index', () => {
  const table = new IdTable();
  const reader = new IdTableReader(table.sharedBuffers());
  const words = new Int32Array(16);
  const bytes = new Uint8Array(words.buffer);
  const lookUp = (id: string): number => {
    words.fill(0);
    bytes.set(Buffer.from(id, 'latin1'));
    return reader.find(words, 0, id.length, IdTable.hashOf(words, 0, id.length));
  };
  const ids = Array.from({ length: 5000 }, (_, index) => `id-${index}-${'x'.repeat(index % 40)}`);
  let replaced = 0;
  table.onBuffersReplaced = () => replaced++;
  let seenUpTo = -1; // ids up to this index were inserted before the reader's buffers were taken
  for (const [index, id] of ids.entries()) {
    assert.equal(table.insertString(id), index);
    // Every 50 inserts the reader is told of the current buffers; in between it may be stale.
    if (index % 50 === 0) {
      reader.replaceBuffers(table.sharedBuffers());
      seenUpTo = index;
    }
    for (let probe = Math.max(0, index - 60); probe <= index; probe++) {
      const found = lookUp(ids[probe]!);
      if (probe <= seenUpTo) assert.equal(found, probe, `${ids[probe]} was in the reader's buffers`);
      else assert.ok(found === probe || found === -1, `${ids[probe]}: ${found}`);
    }
  }
  assert.ok(replaced >= 6, `the slots and arena grew (${replaced} times)`);
  reader.replaceBuffers(table.sharedBuffers());
  for (const [index, id] of ids.entries()) assert.equal(lookUp(id), index);
  assert.equal(lookUp('absent'), -1);
});

test('a batch caught by a stopped prepare worker is handed back unprepared, once', async () => {
  const warnings: string[] = [];
  const preparer = new BatchPreparer(new IdTable(), (message) => warnings.push(message));
  let calls = 0;
  const batch = preparer.prepare({ bytes: encodeTransferBatch([deposit('x', 'a', 1n)]), count: 1 }, () => calls++);
  await preparer.close();
  assert.equal(calls, 1);
  assert.equal(batch.status, 'unprepared');
  assert.equal(preparer.available, false);
  assert.equal(batch.records.bytes.length, 208);
  assert.deepEqual(warnings, []);
});

// Sharing (src/engine/prepare-shares.ts): the engine prepares the shares of a batch the worker
// has not claimed yet, instead of waiting for it.

/** A batch of `count` transfers among 50 accounts, with the accounts interned in a table. */
function shareableBatch(count: number): { table: IdTable; records: RecordView; count: number } {
  const table = new IdTable();
  for (let index = 0; index < 50; index++) table.insertString(`s${index}`);
  const commands = Array.from({ length: count }, (_, index) => (index % 9 === 0 ? deposit(`sd-${index}`, `s${index % 50}`, 5n) : transfer(`st-${index}`, `s${index % 50}`, `s${(index * 3 + 1) % 50}`, 1n)));
  return { table, records: recordView(encodeTransferBatch(commands)), count };
}

/** The words of each prepared record that prepareRecords writes (the rest is padding). */
function wordsInUse(prepared: Int32Array): number[] {
  return [...prepared].filter((_, index) => index % PREPARED_WORDS <= PREPARED_TO_INDEX);
}

test('shares of a batch prepared by two threads in any interleaving give the words of one preparation', () => {
  const count = 5 * PREPARE_SHARE_RECORDS + 17;
  const { table, records } = shareableBatch(count);
  const reader = new IdTableReader(table.sharedBuffers());
  const whole = new Int32Array(count * PREPARED_WORDS);
  prepareRecords(records, count, whole, new DecideScratch(), reader);
  assert.equal(sharesOf(count), 6);
  // "The worker" claimed shares 0 and 2 and is still on them; "the engine" takes the rest.
  const prepared = new Int32Array(count * PREPARED_WORDS).fill(0x7eadbeef);
  const batch = { records, count, prepared, claims: new Int32Array(new SharedArrayBuffer(CLAIM_WORDS * 4)) };
  const claimed = [Atomics.add(batch.claims, 0, 1), Atomics.add(batch.claims, 0, 1)];
  assert.deepEqual(claimed, [0, 1]);
  const engineDid = prepareShares(batch, new DecideScratch(), reader);
  assert.equal(engineDid, count - 2 * PREPARE_SHARE_RECORDS, 'the engine prepared every unclaimed share');
  assert.equal(sharesLeft(batch), false);
  assert.equal(allSharesDone(batch), false, 'two shares are still being prepared elsewhere');
  for (const share of claimed) assert.equal(prepared[share * PREPARE_SHARE_RECORDS * PREPARED_WORDS], 0x7eadbeef, `share ${share} left alone`);
  // The worker finishes its two shares.
  for (const share of claimed) {
    prepareRecordRange(records, share * PREPARE_SHARE_RECORDS, (share + 1) * PREPARE_SHARE_RECORDS, prepared, new DecideScratch(), reader);
    Atomics.add(batch.claims, 1, 1);
  }
  assert.equal(allSharesDone(batch), true);
  assert.deepEqual(wordsInUse(prepared), wordsInUse(whole));
  assert.equal(prepareShares(batch, new DecideScratch(), reader), 0, 'nothing left to claim');
});

/** Worker scripts for sharing: one that never answers, one that claims every share and never finishes them. */
const SHARING_WORKERS = {
  silent: `import { parentPort } from 'node:worker_threads';
    parentPort.on('message', () => undefined);`,
  hoards: `import { parentPort } from 'node:worker_threads';
    parentPort.on('message', (message) => { if (message.kind === 'batch') Atomics.store(new Int32Array(message.claims), 0, 1 << 20); });`,
};

function sharingWorker(dir: string, name: keyof typeof SHARING_WORKERS): URL {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(path, SHARING_WORKERS[name]);
  return pathToFileURL(path);
}

test('a batch the engine prepared alone keeps its buffers until the worker has answered for it', async () => {
  const dir = tempDir('walletd-share-');
  const { table, records, count } = shareableBatch(300);
  const preparer = new BatchPreparer(table, () => undefined, sharingWorker(dir.path, 'silent'));
  try {
    const batch = { bytes: records.bytes, count };
    let answered = 0;
    const first = preparer.prepare(batch, () => answered++);
    assert.equal(preparer.canShare(first), true);
    assert.equal(preparer.share(first), true, 'the engine prepared every share');
    assert.equal(first.status, 'ready');
    assert.equal(answered, 0);
    preparer.release(first); // decided; the worker may still read the buffers
    const second = preparer.prepare(batch, () => answered++);
    assert.notEqual(second.buffers.records, first.buffers.records, 'buffers the worker may still read are not reused');
    assert.notEqual(second.buffers.claims, first.buffers.claims);
    const whole = new Int32Array(count * PREPARED_WORDS);
    prepareRecords(records, count, whole, new DecideScratch(), new IdTableReader(table.sharedBuffers()));
    assert.deepEqual(wordsInUse(first.prepared), wordsInUse(whole));
    assert.equal(preparer.recordsSharedByEngine, count);
  } finally {
    await preparer.close();
    dir.remove();
  }
});

test('a batch whose shares the worker claimed and never finished is not ready until the worker goes, then unprepared', async () => {
  const dir = tempDir('walletd-share-');
  const { table, records, count } = shareableBatch(300);
  const preparer = new BatchPreparer(table, () => undefined, sharingWorker(dir.path, 'hoards'));
  try {
    let answered = 0;
    const batch = preparer.prepare({ bytes: records.bytes, count }, () => answered++);
    for (let waited = 0; Atomics.load(batch.claims, 0) === 0; waited++) {
      assert.ok(waited < 500, 'the worker claimed the shares');
      await new Promise((wake) => setTimeout(wake, 10));
    }
    assert.equal(preparer.canShare(batch), false);
    assert.equal(preparer.share(batch), false, 'claimed shares are not done');
    assert.equal(batch.status, 'preparing');
    await preparer.close();
    assert.equal(batch.status, 'unprepared', 'the engine prepares it itself');
    assert.equal(answered, 1);
  } finally {
    await preparer.close();
    dir.remove();
  }
});

test('batches shared between the engine and a slow worker decide exactly as on the engine thread alone', async () => {
  const onEngine = await runWorkload(BATCH_RECORDS_MAX + 1);
  const dir = tempDir('walletd-share-');
  try {
    for (const workerUrl of [undefined, testWorker(dir.path, 'slow')]) {
      const shared = await runWorkload(1, workerUrl, true);
      const name = workerUrl === undefined ? 'real worker' : 'slow worker';
      assert.deepEqual(shared.codes, onEngine.codes, name);
      assert.deepEqual(shared.sequences, onEngine.sequences, name);
      assert.equal(shared.digest, onEngine.digest, name);
      assert.equal(shared.inWorker, ROUNDS, `${name}: every batch arrived prepared`);
      if (workerUrl !== undefined) assert.ok(shared.sharedByEngine > 0, 'the engine prepared shares of what the slow worker had not reached');
    }
  } finally {
    dir.remove();
  }
});
