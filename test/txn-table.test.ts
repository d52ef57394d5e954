// TxnTable, the transaction-id table, and its incremental growth.
//
// A table grows at 70% load by allocating twice the slots and then copying
// MIGRATE_SLOTS_PER_INSERT old slots per insert; while that runs, keys live in either array.
// Checked here against a Map model, through several growths from the smallest table: every
// lookup (hits before, during and after a copy, misses), the slot accessors, the per-insert
// copy bound, compactEntries → fromEntries mid-copy, and the state digest, which must not
// depend on capacity or copy progress. The last test runs a real ledger across a growth and
// snapshots it mid-copy: snapshot + tail, full replay and the live state must agree.
//
// The seed is random unless WALLETD_PROPERTY_SEED is set; fast-check prints it on failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { captureAccountIdParts, digestOfParts, stateDigest } from '../src/core/digest.js';
import { Wire } from '../src/core/errors.js';
import { LedgerState } from '../src/core/ledger-state.js';
import { foldTxnWords, MIGRATE_SLOTS_PER_INSERT, scanEntryPieces, SEQUENCE_MAX, TXN_TABLE_ENTRIES_MAX, TxnTable } from '../src/core/txn-table.js';
import { recover } from '../src/engine/recovery.js';
import { Prng } from '../src/stdx/prng.js';
import { deposit, submit, tempDir, withLedger } from './support/ledger.js';

const SLOTS_INITIAL = 4096;
const BYTES_PER_SLOT = 24;
const NUM_RUNS = Number(process.env['WALLETD_PROPERTY_RUNS'] ?? 12);
const seedText = process.env['WALLETD_PROPERTY_SEED'];
const SEED = seedText === undefined ? {} : { seed: Number(seedText) };

type Key = readonly [number, number, number];
type Entry = { key: Key; content0: number; content1: number; sequence: number; code: number; phase: 'before' | 'during' | 'after' };

const keyText = (key: Key): string => `${key[0]},${key[1]},${key[2]}`;

/** Key shapes: uniform; homes bunched into long runs (low bits from a tiny set); homes at the end of every table (probe runs that wrap). */
type Shape = 'uniform' | 'bunched' | 'wrapping';

function newKey(prng: Prng, shape: Shape, model: Map<string, Entry>): Key {
  for (;;) {
    let k0 = prng.nextU32();
    if (shape === 'bunched') k0 = ((k0 & ~0xff) | prng.below(4)) >>> 0;
    else if (shape === 'wrapping') k0 = (0xffffffff - prng.below(8)) >>> 0;
    const key: Key = [k0, prng.nextU32(), prng.below(4) === 0 ? 0 : prng.nextU32()];
    if (!model.has(keyText(key))) return key;
  }
}

function pickShape(prng: Prng, bunchedPercent: number): Shape {
  const roll = prng.below(100);
  if (roll < 1) return 'wrapping';
  return roll < 1 + bunchedPercent ? 'bunched' : 'uniform';
}

function checkHit(table: TxnTable, entry: Entry, where: string): void {
  const slot = table.find(entry.key[0], entry.key[1], entry.key[2]);
  assert.ok(slot >= 0, `${where}: ${keyText(entry.key)} (inserted ${entry.phase} a copy) not found`);
  assert.equal(table.sequenceAt(slot), entry.sequence, `${where}: sequence`);
  assert.equal(table.codeAt(slot), entry.code, `${where}: code`);
  assert.ok(table.contentMatches(slot, entry.content0, entry.content1), `${where}: content`);
  assert.ok(!table.contentMatches(slot, (entry.content0 ^ 1) >>> 0, entry.content1), `${where}: other content (low word)`);
  assert.ok(!table.contentMatches(slot, entry.content0, (entry.content1 ^ 0x80) >>> 0), `${where}: other content (high byte)`);
  // Only the low 8 bits of content1 are kept.
  assert.ok(table.contentMatches(slot, entry.content0, (entry.content1 ^ 0x100) >>> 0), `${where}: content1 above 8 bits ignored`);
}

function checkAll(table: TxnTable, model: Map<string, Entry>, where: string): void {
  assert.equal(table.count, model.size, `${where}: count`);
  for (const entry of model.values()) checkHit(table, entry, where);
}

/** A table holding `entries`, built without growing (so another layout, the same contents). */
function presized(entries: Iterable<Entry>, expected: number): TxnTable {
  const table = new TxnTable(expected);
  for (const e of entries) table.insert(e.key[0], e.key[1], e.key[2], e.content0, e.content1, e.sequence, e.code);
  assert.equal(table.growing, false);
  return table;
}

/** The 70%-load limit of a table of `slots` slots: inserting entry number limit + 1 grows it. */
const limitOf = (slots: number): number => Math.floor((slots * 70) / 100);

type Params = { seed: number; inserts: number; bunchedPercent: number; presize: number; viaInsert: number; bigSequences: boolean };

const paramsArb: fc.Arbitrary<Params> = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  // 2,868 ids grow the first table; 22,938 reach the fourth growth (32,768 → 65,536 slots).
  inserts: fc.integer({ min: 3_000, max: 24_000 }),
  bunchedPercent: fc.constantFrom(0, 10, 60),
  presize: fc.constantFrom(0, 0, 5_000),
  /** Percent of inserts through insert() instead of find + insertAfterMiss. */
  viaInsert: fc.constantFrom(0, 20),
  bigSequences: fc.boolean(),
});

/**
 * Random inserts against a Map model; after every insert: the new key and a sample of older
 * ones (from before, during and after a copy) are found with their sequence, code and content;
 * absent keys miss; the copy never scans more than MIGRATE_SLOTS_PER_INSERT slots per insert
 * and ends before the next growth; and at each copy's start, middle and end, every key is found
 * and the digest fold equals a presized table's.
 */
function runInserts(params: Params): void {
  const prng = new Prng(params.seed);
  const table = new TxnTable(params.presize);
  const model = new Map<string, Entry>();
  const entries: Entry[] = [];
  let growths = 0;
  let copyStart = 0;
  let copiedBefore = 0;
  let oldSlotsTotal = 0;
  for (let i = 0; i < params.inserts; i++) {
    const where = `insert ${i + 1} (seed ${params.seed})`;
    const key = newKey(prng, pickShape(prng, params.bunchedPercent), model);
    const sequence = params.bigSequences && prng.below(2) === 0 ? SEQUENCE_MAX - prng.below(1 << 30) - i : i + 1;
    const entry: Entry = { key, content0: prng.nextU32(), content1: prng.nextU32(), sequence, code: prng.below(256), phase: table.growing ? 'during' : growths === 0 ? 'before' : 'after' };
    const capacityBefore = table.capacitySlots;
    const wasGrowing = table.growing;
    const copiedAtStart = table.copiedSlots;
    if (prng.below(100) < params.viaInsert) {
      table.insert(key[0], key[1], key[2], entry.content0, entry.content1, entry.sequence, entry.code);
    } else {
      const miss = table.find(key[0], key[1], key[2]);
      assert.ok(miss < 0, `${where}: a new key found`);
      assert.ok(-miss - 1 < table.capacitySlots, `${where}: miss names a slot of the live array`);
      table.insertAfterMiss(miss, key[0], key[1], key[2], entry.content0, entry.content1, entry.sequence, entry.code);
    }
    model.set(keyText(key), entry);
    entries.push(entry);
    const copied = table.copiedSlots - copiedAtStart;
    assert.ok(copied <= MIGRATE_SLOTS_PER_INSERT, `${where}: copied ${copied} old slots in one insert`);
    if (table.capacitySlots !== capacityBefore) {
      // Grew on this insert, at the 70% limit, and only when the previous copy was done.
      assert.equal(table.capacitySlots, capacityBefore * 2, `${where}: doubles`);
      assert.equal(table.count, limitOf(capacityBefore) + 1, `${where}: grows at 70% load`);
      assert.ok(!wasGrowing, `${where}: grew while still copying`);
      growths++;
      copyStart = i;
      copiedBefore = copiedAtStart;
      oldSlotsTotal += capacityBefore;
    }
    if (table.growing !== wasGrowing || (table.capacitySlots !== capacityBefore && !table.growing)) {
      checkAll(table, model, `${where}: ${table.growing ? 'copy started' : 'copy done'}`);
    }
    if (table.growing) {
      // Both arrays alive; the copy ends long before the new array's own limit.
      assert.equal(table.memoryBytes(), (table.capacitySlots + table.capacitySlots / 2) * BYTES_PER_SLOT, `${where}: both arrays while copying`);
      const scanned = table.copiedSlots - copiedBefore;
      assert.equal(scanned, (i - copyStart + 1) * MIGRATE_SLOTS_PER_INSERT, `${where}: copy progress`);
      if ((i - copyStart) % 97 === 48) checkAll(table, model, `${where}: mid-copy`);
    } else {
      // The old array dropped; from 60% load the next one (twice the slots) is allocated.
      const next = table.count > Math.floor(table.capacitySlots * 0.6) ? 2 * table.capacitySlots : 0;
      assert.equal(table.memoryBytes(), (table.capacitySlots + next) * BYTES_PER_SLOT, `${where}: memory`);
      assert.ok(table.count <= limitOf(table.capacitySlots), `${where}: over the limit`);
    }
    checkHit(table, entry, where);
    for (let probe = 0; probe < 3; probe++) checkHit(table, entries[prng.below(entries.length)]!, `${where}: earlier key`);
    // A key sharing the new key's home and two of its words is absent.
    const near: Key = [key[0], key[1], (key[2] + 1) >>> 0];
    if (!model.has(keyText(near))) assert.ok(table.find(near[0], near[1], near[2]) < 0, `${where}: near miss`);
    const fresh = newKey(prng, pickShape(prng, params.bunchedPercent), model);
    assert.ok(table.find(fresh[0], fresh[1], fresh[2]) < 0, `${where}: absent key found`);
  }
  assert.equal(table.copiedSlots, oldSlotsTotal - (table.growing ? table.capacitySlots / 2 - (table.copiedSlots - copiedBefore) : 0), 'every old slot scanned once');
  checkAll(table, model, 'end');
  const reference = presized(entries, entries.length);
  assert.deepEqual(foldTxnWords(table.digestWords()), foldTxnWords(reference.digestWords()), 'fold independent of capacity and copy progress');
  if (params.presize === 0) assert.ok(growths >= 1, 'grew at least once');
}

test('lookups agree with a Map model before, during and after each growth', () => {
  fc.assert(fc.property(paramsArb, runInserts), { numRuns: NUM_RUNS, ...SEED });
});

/** Inserts `count` random entries; returns them. */
function fill(table: TxnTable, prng: Prng, count: number, model: Map<string, Entry>, firstSequence: number): Entry[] {
  const added: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const key = newKey(prng, pickShape(prng, 10), model);
    const entry: Entry = { key, content0: prng.nextU32(), content1: prng.nextU32(), sequence: firstSequence + i, code: prng.below(256), phase: table.growing ? 'during' : 'after' };
    const miss = table.find(key[0], key[1], key[2]);
    table.insertAfterMiss(miss, key[0], key[1], key[2], entry.content0, entry.content1, entry.sequence, entry.code);
    model.set(keyText(key), entry);
    added.push(entry);
  }
  return added;
}

test('compactEntries → fromEntries mid-copy: same lookups, same fold, same growth after', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 3 }), fc.double({ min: 0, max: 1, noNaN: true }), (seed, growthIndex, progress) => {
      // Stop inside the copy of growth number growthIndex + 1, `progress` of the way through.
      const oldSlots = SLOTS_INITIAL << growthIndex;
      const copyInserts = oldSlots / MIGRATE_SLOTS_PER_INSERT;
      const stopAt = limitOf(oldSlots) + 1 + Math.min(copyInserts - 2, Math.floor(progress * (copyInserts - 1)));
      const prng = new Prng(seed);
      const model = new Map<string, Entry>();
      const live = new TxnTable();
      const entries = fill(live, prng, stopAt, model, 1);
      assert.ok(live.growing, `growing after ${stopAt} inserts`);
      assert.equal(live.capacitySlots, oldSlots * 2);

      const compact = live.compactEntries();
      assert.equal(compact.length, live.count * 6);
      assert.deepEqual(foldTxnWords(compact), foldTxnWords(live.digestWords()), 'compact copy folds like the live table');
      const restored = TxnTable.fromEntries(compact, live.capacitySlots);
      assert.ok(!restored.growing, 'a restored table is not growing');
      assert.equal(restored.capacitySlots, live.capacitySlots);
      checkAll(restored, model, 'restored');
      assert.deepEqual(foldTxnWords(restored.digestWords()), foldTxnWords(compact), 'restored fold');
      assert.deepEqual(foldTxnWords(restored.compactEntries()), foldTxnWords(compact), 'second round trip');
      assert.deepEqual(live.compactEntries(), compact, 'compactEntries is deterministic');
      // Deterministic from the same inserts: a second live table gives the same snapshot bytes.
      const again = new TxnTable();
      for (const e of entries) again.insertAfterMiss(again.find(e.key[0], e.key[1], e.key[2]), e.key[0], e.key[1], e.key[2], e.content0, e.content1, e.sequence, e.code);
      assert.deepEqual(again.compactEntries(), compact, 'same inserts, same entries in the same order');

      // The same later inserts into both: equal contents, and both grow at the same insert.
      const later = Array.from({ length: limitOf(live.capacitySlots) - live.count + 5 }, () => {
        const key = newKey(prng, 'uniform', model);
        const entry: Entry = { key, content0: prng.nextU32(), content1: prng.nextU32(), sequence: 0, code: prng.below(256), phase: 'after' };
        model.set(keyText(key), entry);
        return entry;
      });
      later.forEach((entry, i) => {
        entry.sequence = stopAt + 1 + i;
        for (const table of [live, restored]) {
          table.insertAfterMiss(table.find(entry.key[0], entry.key[1], entry.key[2]), entry.key[0], entry.key[1], entry.key[2], entry.content0, entry.content1, entry.sequence, entry.code);
        }
        assert.equal(restored.capacitySlots, live.capacitySlots, `capacity after later insert ${i}`);
      });
      checkAll(live, model, 'live after');
      checkAll(restored, model, 'restored after');
      assert.deepEqual(foldTxnWords(live.digestWords()), foldTxnWords(restored.digestWords()), 'fold after later inserts');
    }),
    { numRuns: NUM_RUNS, ...SEED },
  );
});

test('the state digest does not depend on capacity or copy progress', () => {
  const prng = new Prng(99);
  const model = new Map<string, Entry>();
  const growing = new TxnTable();
  const entries = fill(growing, prng, limitOf(SLOTS_INITIAL * 2) + 100, model, 1);
  assert.ok(growing.growing);
  const states = [growing, presized(entries, 100_000), TxnTable.fromEntries(growing.compactEntries(), growing.capacitySlots)].map((txns) => {
    const state = new LedgerState(undefined, undefined, txns);
    state.headSequence = entries.length;
    return state;
  });
  const digest = stateDigest(states[0]!);
  for (const state of states) {
    assert.equal(stateDigest(state), digest);
    assert.equal(digestOfParts({ ...captureAccountIdParts(state), accountRecords: state.accountRecords() }, foldTxnWords(state.txns.compactEntries())), digest, 'the parts with a compact fold digest the same');
  }
});

test('one growth at a time; the per-insert copy bound holds at every size up to 2^20 slots', () => {
  // Cheap keys (no model): count what each insert copies and when each copy ends.
  const table = new TxnTable();
  const prng = new Prng(5);
  let maxCopied = 0;
  let growths = 0;
  let copyEndedAt = -1;
  for (let i = 0; table.capacitySlots < 1 << 20 || table.growing; i++) {
    const before = table.copiedSlots;
    const capacity = table.capacitySlots;
    const k0 = prng.nextU32();
    const k1 = prng.nextU32();
    table.insertAfterMiss(table.find(k0, k1, i), k0, k1, i, 0, 0, i + 1, 0);
    maxCopied = Math.max(maxCopied, table.copiedSlots - before);
    if (table.capacitySlots !== capacity) {
      growths++;
      assert.ok(copyEndedAt < i, 'previous copy finished first');
    }
    if (!table.growing && table.copiedSlots !== before) {
      copyEndedAt = i;
      // Ends well before the new array's own limit: within 1/0.7 / MIGRATE_SLOTS_PER_INSERT of it.
      const inserted = table.count - limitOf(table.capacitySlots / 2);
      assert.equal(inserted, table.capacitySlots / 2 / MIGRATE_SLOTS_PER_INSERT, 'copy length in inserts');
      assert.ok(inserted * 2 < limitOf(table.capacitySlots) - limitOf(table.capacitySlots / 2), 'copy done before half the next interval');
    }
  }
  assert.equal(growths, 8);
  assert.equal(maxCopied, MIGRATE_SLOTS_PER_INSERT);
  assert.equal(table.copiedSlots, (1 << 20) - SLOTS_INITIAL, 'every old slot of every growth copied exactly once');
});

test('the entry limit is enforced on both insert paths', () => {
  for (const viaMiss of [false, true]) {
    const table = new TxnTable();
    table.count = TXN_TABLE_ENTRIES_MAX;
    const miss = table.find(1, 2, 3);
    assert.throws(
      () => (viaMiss ? table.insertAfterMiss(miss, 1, 2, 3, 0, 0, 1, 0) : table.insert(1, 2, 3, 0, 0, 1, 0)),
      /transaction table full/,
    );
  }
  assert.throws(() => TxnTable.fromEntries(new Uint32Array(6), SLOTS_INITIAL), /sequence 0/);
});

test('a ledger snapshotted while its id table grows: snapshot + tail, full replay and live state agree', async () => {
  // 2,868 ids grow the 4,096-slot table; its copy runs for the next 4,096 / MIGRATE_SLOTS_PER_INSERT inserts.
  const growAt = limitOf(SLOTS_INITIAL) + 1;
  const midCopy = growAt + Math.floor(SLOTS_INITIAL / MIGRATE_SLOTS_PER_INSERT / 2);
  const dir = tempDir();
  try {
    const ids = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `d-${from + i}`);
    const deposits = (names: string[]): ReturnType<typeof deposit>[] => names.map((id, i) => deposit(id, 'alice', BigInt(1 + (i % 7))));
    let liveMid = '';
    let liveEnd = '';
    const firstResults = new Map<string, number>();
    await withLedger(dir.path, async (ledger) => {
      assert.equal((await ledger.openAccount({ accountId: 'alice', currencyCode: 'USD', owner: 'u1' })).status, 'created');
      for (let from = 0; from < midCopy; from += 1000) {
        const names = ids(from, Math.min(midCopy, from + 1000));
        const results = await submit(ledger, deposits(names));
        names.forEach((id, i) => firstResults.set(id, results.sequences[i]!));
      }
      // Ids from before the growth (some not yet copied), retried mid-copy: first outcome, or a conflict.
      const retried = ids(0, 40);
      const again = await submit(ledger, deposits(retried));
      retried.forEach((id, i) => {
        assert.equal(again.codes[i], Wire.ok, `${id} retried`);
        assert.equal(again.sequences[i], firstResults.get(id), `${id} retried: first sequence`);
      });
      const changed = await submit(ledger, [deposit('d-3', 'alice', 999n)]);
      assert.equal(changed.codes[0], Wire.idempotency_conflict);
      for (const id of [...ids(0, 30), ...ids(growAt - 30, growAt + 30), ...ids(midCopy - 10, midCopy)]) {
        assert.equal((await ledger.transfer(id))?.sequence, firstResults.get(id), `GET ${id}`);
      }
      assert.equal(await ledger.transfer('d-never'), undefined);
      await ledger.snapshot();
      liveMid = ledger.digest();
      const replayed = recover(dir.path, { fromGenesis: true }).state;
      // Recovery sizes the table for the whole log, so the replay never grows it: the live table
      // is mid-copy, the replayed one is not, and their digests still agree.
      assert.ok(!replayed.txns.growing && replayed.txns.capacitySlots > SLOTS_INITIAL, 'the replay was sized for the log');
      assert.equal(stateDigest(replayed), liveMid, 'full replay (live table mid-copy)');
      const restored = recover(dir.path).state;
      assert.ok(!restored.txns.growing);
      assert.equal(stateDigest(restored), liveMid, 'snapshot taken mid-copy');
      for (let from = midCopy; from < growAt + 2 * SLOTS_INITIAL; from += 1000) await submit(ledger, deposits(ids(from, from + 1000)));
      liveEnd = ledger.digest();
    });
    assert.equal(stateDigest(recover(dir.path, { fromGenesis: true }).state), liveEnd, 'full replay (end)');
    assert.equal(stateDigest(recover(dir.path).state), liveEnd, 'final snapshot');
  } finally {
    dir.remove();
  }
});

test('a scan of held entries, a piece at a time, equals compactEntries() at the hold, whatever inserts and growths come between, unless the hold broke', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 6000 }), fc.integer({ min: 1, max: 700 }), fc.integer({ min: 1, max: 3000 }), (seed, before, pieceSlots, insertsPerPiece) => {
      const prng = new Prng(seed);
      const model = new Map<string, Entry>();
      const table = new TxnTable();
      const inserter = new RandomInserter(prng, table, model, 'after-miss');
      const insertOne = (phase: Entry['phase']): void => inserter.insertOne(phase);
      for (let i = 0; i < before; i++) insertOne('before');
      let sequence = inserter.sequence;
      // A delta scan: only what was logged after `after` (0: everything), as a snapshot takes it.
      const after = prng.below(3) === 0 ? 0 : prng.below(sequence + 1);
      const expected = onlyAfter(table.compactEntries(), after);
      const hold = table.holdEntries();
      const pieces: Uint32Array[] = [];
      try {
        // Inserts between pieces: enough, for some runs, to start one growth or two.
        for (const piece of scanEntryPieces(hold.sources, after, sequence, expected.length / 6, pieceSlots)) {
          assert.ok(piece.length <= pieceSlots * 6, 'a piece holds at most its slots');
          pieces.push(piece.slice()); // the next piece overwrites this one
          for (let i = 0; i < prng.below(Math.floor(insertsPerPiece / 10) + 1) + 1; i++) insertOne('during');
        }
        assert.ok(!hold.broken, 'an unbroken scan checks its count');
      } catch (error) {
        if (!hold.broken) throw error; // a broken scan may find entries twice; the snapshot is abandoned
      }
      if (!hold.broken) assert.deepEqual(joined(pieces), expected, 'the scan holds exactly the entries of its range at the hold, in compactEntries order');
      hold.release();
      checkAll(table, model, 'after the scan');
      // Growth copying held back during the scan resumes: enough inserts leave the table settled.
      for (let i = 0; i < table.capacitySlots / MIGRATE_SLOTS_PER_INSERT + 10 && table.growing; i++) insertOne('after');
      assert.equal(table.growing, false, 'a growth held back by the scan completes afterwards');
      checkAll(table, model, 'after the growth resumed');
      sequence = inserter.sequence;
      assert.deepEqual(scanned(table, 0, sequence, table.count), table.compactEntries(), 'a second scan, in one go');
    }),
    { numRuns: NUM_RUNS * 4, ...SEED },
  );
});

test('a hold survives growths that copy into arrays it does not read, and breaks at one that must copy into a held array', () => {
  let sequence = 0;
  const insertUpTo = (table: TxnTable, count: number): void => {
    while (table.count < count) {
      sequence++;
      table.insert(Math.imul(sequence, 0x9e3779b1) >>> 0, sequence, 7, 5, 0, sequence, 0);
    }
  };
  // The table starts at 4,096 slots and grows when an insert would pass 70% load: at entry 2,868,
  // then 5,735 (8,192 slots) and 11,469; a growth's copying takes old slots / 8 inserts.
  const quiet = new TxnTable();
  insertUpTo(quiet, 2800);
  assert.equal(quiet.growing, false);
  const head = sequence;
  const expected = quiet.compactEntries();
  const survivor = quiet.holdEntries();
  insertUpTo(quiet, 6000); // two growths: the second finishes copying the first into an array the hold does not read
  assert.equal(quiet.capacitySlots, 4096 * 4);
  assert.ok(!survivor.broken, 'the held array only stopped taking inserts');
  assert.deepEqual(joined(Array.from(scanEntryPieces(survivor.sources, 0, head, 2800, 100), (piece) => piece.slice())), expected);
  survivor.release();

  const midGrowth = new TxnTable();
  insertUpTo(midGrowth, 2900);
  assert.equal(midGrowth.growing, true, 'the first growth is still copying');
  const held = midGrowth.holdEntries();
  insertUpTo(midGrowth, 5734); // copying waits under the hold; no new growth yet
  assert.ok(midGrowth.growing && !held.broken);
  insertUpTo(midGrowth, 5735); // the next growth must finish copying into the held new array
  assert.ok(held.broken, 'broken');
  assert.equal(midGrowth.growing, true, 'the new growth goes on; the table stays whole');
  insertUpTo(midGrowth, 5735 + 16384 / 8 + 1);
  assert.equal(midGrowth.growing, false, 'and its copying ends');
});

/** Every entry logged in (after, to], scanned from a hold released at once. */
function scanned(table: TxnTable, after: number, to: number, count: number): Uint32Array {
  const hold = table.holdEntries();
  // Copied as they come: the next piece overwrites the last.
  const pieces = Array.from(scanEntryPieces(hold.sources, after, to, count, 1 << 10), (piece) => piece.slice());
  hold.release();
  return joined(pieces);
}

/** Inserts fresh random keys with the next sequence, recording each in the model. */
class RandomInserter {
  sequence = 0;

  constructor(
    private readonly prng: Prng,
    private readonly table: TxnTable,
    private readonly model: Map<string, Entry>,
    /** 'after-miss': insertAfterMiss on find's miss (the engine's path); 'either': that or insert, at random. */
    private readonly paths: 'after-miss' | 'either',
  ) {}

  insertOne(phase: Entry['phase']): void {
    const { prng, table } = this;
    const key = newKey(prng, pickShape(prng, 10), this.model);
    const entry: Entry = { key, content0: prng.nextU32(), content1: prng.nextU32(), sequence: ++this.sequence, code: prng.below(20), phase };
    if (this.paths === 'either' && prng.below(2) === 0) {
      table.insert(key[0], key[1], key[2], entry.content0, entry.content1, entry.sequence, entry.code);
    } else {
      const miss = table.find(key[0], key[1], key[2]);
      assert.ok(miss < 0);
      table.insertAfterMiss(miss, key[0], key[1], key[2], entry.content0, entry.content1, entry.sequence, entry.code);
    }
    this.model.set(keyText(key), entry);
  }
}

/** The entries (6 words each) whose sequence is above `after`, in their order. */
function onlyAfter(entries: Uint32Array, after: number): Uint32Array {
  const kept: number[] = [];
  for (let base = 0; base < entries.length; base += 6) {
    const sequence = (entries[base + 5]! & 0xffff) * 2 ** 32 + entries[base + 4]!;
    if (sequence > after) kept.push(...entries.subarray(base, base + 6));
  }
  return Uint32Array.from(kept);
}

test('foldTxnWords equals its definition: per occupied slot, four seeded lanes over its six words, summed', () => {
  const reference = (words: Uint32Array): Uint32Array => {
    const lanes = new Uint32Array(4);
    for (let base = 0; base < words.length; base += 6) {
      if (words[base + 4] === 0 && words[base + 5] === 0) continue;
      for (let lane = 0; lane < 4; lane++) {
        let h = Math.imul(lane + 1, 0x9e3779b9);
        for (let i = 0; i < 6; i++) h = Math.imul(h ^ words[base + i]!, 0x85ebca6b) ^ (h >>> 13);
        lanes[lane] = (lanes[lane]! + (h ^ (h >>> 16))) >>> 0;
      }
    }
    return lanes;
  };
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(0xffffffff), fc.nat(3), fc.nat(3)), { maxLength: 50 }), (slots) => {
      const words = Uint32Array.from(slots.flat());
      assert.deepEqual(foldTxnWords(words), reference(words));
    }),
    { numRuns: 500 },
  );
});

test('the journal copies exactly the entries inserted since it started, in order, across growths; its bound drops it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 140_000 }), fc.boolean(), (seed, before, during, presized) => {
      const prng = new Prng(seed);
      const model = new Map<string, Entry>();
      // Unpresized runs grow while the journal runs: a copy of the entries survives that.
      const table = new TxnTable(presized ? before + during : 0);
      // Both insert paths journal.
      const inserter = new RandomInserter(prng, table, model, 'either');
      const insertOne = (phase: Entry['phase']): void => inserter.insertOne(phase);
      for (let i = 0; i < before; i++) insertOne('before');
      const startedAt = inserter.sequence;
      table.startJournal(startedAt, 1 << 24, [], 1000);
      // Full blocks are taken along the way, as the engine ships them to the spool after drains.
      const shipped: Uint32Array[] = [];
      for (let i = 0; i < during; i++) {
        insertOne('during');
        if (prng.nextU32() % 5000 === 0) shipped.push(...table.runningJournal!.takeFullBlocks());
      }
      const journal = table.takeJournal();
      assert.equal(table.takeJournal(), undefined, 'taken once');
      assert.ok(journal !== undefined);
      assert.equal(journal.afterSequence, startedAt);
      assert.equal(journal.count, during);
      const words = joined([...shipped, ...journal.rest()]);
      assert.equal(words.length, during * 6);
      // In insertion order, and the same entries a scan of the table finds after startedAt.
      for (let i = 0; i < during; i++) assert.equal(words[i * 6 + 4], startedAt + i + 1, 'sequence order');
      assert.deepEqual(sortedEntries(words), sortedEntries(scanned(table, startedAt, inserter.sequence, during)));
      insertOne('after');
      assert.equal(table.takeJournal(), undefined, 'stopped once taken');
    }),
    { numRuns: NUM_RUNS, ...SEED },
  );
  const table = new TxnTable();
  table.startJournal(0, 3);
  for (let sequence = 1; sequence <= 4; sequence++) table.insert(sequence, 0, 0, 0, 0, sequence, 0);
  assert.equal(table.takeJournal(), undefined, 'the fourth entry passed the bound of three');
  assert.equal(table.count, 4, 'inserts go on');
});

test('a journal crosses a block end without losing or repeating an entry; full blocks are taken once; spare blocks are reused', () => {
  const table = new TxnTable(100);
  const wrongSize = new Uint32Array(7 * 6);
  const reused = new Uint32Array(16 * 6).fill(0xdead);
  const spare = [wrongSize, reused];
  table.startJournal(0, 1 << 24, spare, 16);
  assert.deepEqual(spare, [wrongSize], 'the first block came from the pool');
  for (let sequence = 1; sequence <= 20; sequence++) table.insert(Math.imul(sequence, 0x9e3779b1) >>> 0, sequence, 7, 0, 0, sequence, 0);
  assert.deepEqual(spare, [], 'the next was taken from it too, and being of the wrong size, replaced by a new one');
  const first = table.runningJournal!.takeFullBlocks();
  assert.deepEqual(
    first.map((block) => block.length),
    [96],
  );
  assert.equal(first[0], reused, 'filled in place: the pooled block itself');
  assert.deepEqual(table.runningJournal!.takeFullBlocks(), [], 'a block is taken once');
  for (let sequence = 21; sequence <= 37; sequence++) table.insert(Math.imul(sequence, 0x9e3779b1) >>> 0, sequence, 7, 0, 0, sequence, 0);
  const rest = table.takeJournal()!.rest();
  assert.deepEqual(
    rest.map((block) => block.length),
    [96, 30],
  );
  const entries = joined([...first, ...rest]);
  assert.deepEqual([...entries.filter((_, index) => index % 6 === 4)], Array.from({ length: 37 }, (_, index) => index + 1));
  assert.deepEqual(sortedEntries(entries), sortedEntries(scanned(table, 0, 37, 37)), 'the same words the table holds');
});

/** Blocks of slots as one array. */
function joined(blocks: readonly Uint32Array[]): Uint32Array {
  const all = new Uint32Array(blocks.reduce((sum, block) => sum + block.length, 0));
  blocks.reduce((at, block) => (all.set(block, at), at + block.length), 0);
  return all;
}

/** Entries (6 words each) sorted by sequence, as rows. */
function sortedEntries(words: Uint32Array): number[][] {
  const rows: number[][] = [];
  for (let base = 0; base < words.length; base += 6) rows.push([...words.subarray(base, base + 6)]);
  return rows.sort((a, b) => a[4]! - b[4]!);
}
