// Segment rollover states that a random kill (test/engine-crash.test.ts) rarely hits, built on
// disk directly from a log of many small segments (a ledger with 2 KiB segments, one awaited
// batch per frame, so every frame's transaction ids are known):
//
// - the newest segment exists but is empty (killed after the writer created it, before the
//   first write): a clean start at the previous segment's end; the next frame goes to byte 0 of
//   that file (no second file, no EEXIST); a snapshot taken while it is empty works;
// - the newest segment's first frame is torn (header or body cut short, zero fill, garbage):
//   a torn tail, cut to an empty file that is then reused as above;
// - an older segment ends with a torn frame (cut header or body, zero fill, garbage) while a
//   newer segment exists, whole or empty: the writer syncs a segment before it creates the next,
//   and a start cuts any torn tail before it appends, so no crash leaves this. It is corruption:
//   the start refuses naming that file and the torn frame's offset, `walletd verify` names both,
//   nothing on disk changes;
// - a segment file not named by the sequence of its first frame (history reads find segments by
//   name), or a frameless one that is not the newest or not named for the next sequence: no
//   crash leaves these either; they are corruption, refused the same way.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, readdirSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { stateDigest } from '../src/core/digest.js';
import { openLedger } from '../src/engine/ledger.js';
import { dataPaths, recover } from '../src/engine/recovery.js';
import { listSnapshots, loadSnapshot } from '../src/engine/snapshot.js';
import { FRAME_HEADER_BYTES } from '../src/log/frame.js';
import { CorruptLogError } from '../src/log/scan.js';
import { listSegments, segmentFileName } from '../src/log/segments.js';
import { Prng } from '../src/stdx/prng.js';
import { deposit, logFrames, newestSnapshot, runWalletd, submit, tempDir, transfer, type FrameLocation, withLedger } from './support/ledger.js';

const SEED = Number(process.env['WALLETD_SEGMENTS_SEED'] ?? 7_340_033);
const SEGMENT_BYTES = 2048;
const FRAMES_WRITTEN = 48;
const ACCOUNTS = ['a0', 'a1', 'a2', 'a3'];
const options = { segmentBytesMax: SEGMENT_BYTES };

type Built = {
  root: { path: string; remove: () => void };
  /** The pristine data directory, never modified after `build`. */
  dir: string;
  idsByFrame: Map<number, string[]>;
  /** Log position of the snapshot taken early in the run (in an older segment). */
  earlySnapshot: { sequence: number; logSegmentFirstSequence: number };
};

async function build(): Promise<Built> {
  const root = tempDir('walletd-segments-');
  const dir = join(root.path, 'pristine');
  const idsByFrame = new Map<number, string[]>();
  const prng = new Prng(SEED);
  await withLedger(
    dir,
    async (ledger) => {
      for (const accountId of ACCOUNTS) await ledger.openAccount({ accountId, currencyCode: 'USD', owner: 'o' });
      const funding = await submit(ledger, ACCOUNTS.map((accountId) => deposit(`fund-${accountId}`, accountId, 100_000n)));
      idsByFrame.set(funding.sequences[0]! - 1, ACCOUNTS.map((accountId) => `fund-${accountId}`));
      for (let frame = 0; frame < FRAMES_WRITTEN - ACCOUNTS.length - 1; frame++) {
        const commands = Array.from({ length: 1 + prng.below(6) }, (_, index) => transfer(`f${frame}-${index}`, ACCOUNTS[prng.below(4)]!, ACCOUNTS[prng.below(4)]!, BigInt(1 + prng.below(3_000))));
        const results = await submit(ledger, commands);
        idsByFrame.set(results.sequences[0]!, commands.map((command) => command.transactionId));
        if (frame === 8) await ledger.snapshot();
      }
    },
    options,
  );
  const snapshots = listSnapshots(dataPaths(dir).snapshotDir);
  assert.equal(snapshots.length, 2, 'an early snapshot and the one written by close()');
  const early = loadSnapshot(snapshots[1]!.path).meta;
  const segments = listSegments(dataPaths(dir).logDir);
  assert.ok(segments.length >= 6, `the test log needs many segments, has ${segments.length}`);
  assert.ok(early.logSegmentFirstSequence < segments[segments.length - 2]!.firstSequence, 'the early snapshot is in an older segment');
  assert.equal(logFrames(dir).length, FRAMES_WRITTEN);
  return { root, dir, idsByFrame, earlySnapshot: { sequence: early.sequence, logSegmentFirstSequence: early.logSegmentFirstSequence } };
}

/** A fresh copy of the pristine directory; 'early' keeps only the snapshot in an older segment. */
function copyOf(built: Built, name: string, snapshots: 'all' | 'none' | 'early'): string {
  const copy = join(built.root.path, name);
  cpSync(built.dir, copy, { recursive: true });
  const all = listSnapshots(dataPaths(copy).snapshotDir);
  if (snapshots === 'none') for (const snapshot of all) rmSync(snapshot.path);
  if (snapshots === 'early') rmSync(all[0]!.path);
  return copy;
}

function segmentsOf(dir: string): { path: string; firstSequence: number; bytes: number }[] {
  return listSegments(dataPaths(dir).logDir).map((segment) => ({ ...segment, bytes: statSync(segment.path).size }));
}

function lastSequence(frame: FrameLocation): number {
  return frame.firstSequence + frame.eventCount - 1;
}

function digestAt(built: Built, sequence: number): string {
  return stateDigest(recover(built.dir, { fromGenesis: true, toSequence: sequence }).state);
}

/**
 * Opens the damaged directory and checks it holds exactly the frames up to `head`, then appends
 * one frame and checks it went to byte 0 of the segment named head + 1 (which must already
 * exist), then `walletd verify`, then a restart that finds old and new transfers.
 */
async function assertStartsCleanAt(built: Built, dir: string, head: number, where: string): Promise<void> {
  const frames = logFrames(built.dir);
  const newest = join(dataPaths(dir).logDir, segmentFileName(head + 1));
  const before = segmentsOf(dir).map((segment) => basename(segment.path));
  assert.ok(before.includes(basename(newest)), `${where}: test setup: ${basename(newest)} should exist`);
  await withLedger(
    dir,
    async (ledger) => {
      assert.equal(ledger.stats().headSequence, head, `${where}: head after start`);
      assert.equal(ledger.digest(), digestAt(built, head), `${where}: the state of the log up to its last whole frame`);
      assert.equal(statSync(newest).size, 0, `${where}: ${basename(newest)} is empty after the start`);
      for (const frame of frames) {
        for (const id of built.idsByFrame.get(frame.firstSequence) ?? []) {
          const view = await ledger.transfer(id);
          if (lastSequence(frame) <= head) assert.ok(view !== undefined && view.sequence >= frame.firstSequence, `${where}: ${id} (kept frame ${frame.firstSequence}) is missing`);
          else assert.equal(view, undefined, `${where}: ${id} (cut frame ${frame.firstSequence}) survived`);
        }
      }
      const results = await submit(ledger, [transfer('after-rollover-crash', 'a0', 'a1', 5n)]);
      assert.deepEqual([results.codes[0], results.sequences[0]], [0, head + 1], where);
    },
    options,
  );
  const after = segmentsOf(dir);
  assert.deepEqual(after.map((segment) => basename(segment.path)), before, `${where}: the new frame must go to the existing newest segment, no new file`);
  const written = logFrames(dir).filter((frame) => frame.path === newest);
  assert.deepEqual(written.map((frame) => [frame.offset, frame.firstSequence]), [[0, head + 1]], `${where}: the new frame is at byte 0 of ${basename(newest)}`);

  const verified = runWalletd(['verify', '--data-dir', dir]);
  assert.equal(verified.status, 0, `${where}: verify: ${verified.stdout}${verified.stderr}`);
  assert.match(verified.stdout, /^ok: /);
  await withLedger(
    dir,
    async (ledger) => {
      assert.equal(ledger.digest(), stateDigest(recover(dir, { fromGenesis: true }).state), `${where}: restart and a full replay agree`);
      assert.equal((await ledger.transfer('after-rollover-crash'))?.sequence, head + 1, where);
      assert.equal((await ledger.transfer('fund-a0'))?.code, 'ok', `${where}: a transfer in the first segment`);
    },
    options,
  );
}

/** Start and `walletd verify` both refuse, naming `path` and `offset`; no segment changes. */
async function assertRefused(dir: string, path: string, offset: number, where: string): Promise<void> {
  const sizes = segmentsOf(dir);
  await assert.rejects(openLedger({ dataDir: dir, fsync: false, ...options }), (error: unknown) => {
    assert.ok(error instanceof CorruptLogError, `${where}: ${String(error)}`);
    assert.deepEqual([error.path, error.offset], [path, offset], `${where}: ${error.message}`);
    assert.ok(error.message.includes(path) && error.message.includes(`byte offset ${offset}`), `${where}: ${error.message}`);
    return true;
  });
  assert.equal(readdirSync(dir).includes('LOCK'), false, `${where}: lock left behind`);
  assert.deepEqual(segmentsOf(dir), sizes, `${where}: a refused start must not change any segment`);

  const verified = runWalletd(['verify', '--data-dir', dir]);
  assert.equal(verified.status, 3, `${where}: verify: ${verified.stdout}${verified.stderr}`);
  assert.ok(verified.stdout.includes(`${path} at byte offset ${offset} `), `${where}: verify does not name the file and offset: ${verified.stdout}`);
  assert.deepEqual(segmentsOf(dir), sizes, `${where}: verify must not change any segment`);
}

let built: Built;
before(async () => {
  built = await build();
});
after(() => built.root.remove());

describe('the newest segment is empty (killed right after creating it)', () => {
  for (const snapshots of ['none', 'all'] as const) {
    test(`snapshots: ${snapshots}: start at the previous segment's end, the next frame goes to byte 0 of the empty file`, async () => {
      const dir = copyOf(built, `empty-newest-${snapshots}`, snapshots);
      const frames = logFrames(dir);
      const head = lastSequence(frames[frames.length - 1]!);
      writeFileSync(join(dataPaths(dir).logDir, segmentFileName(head + 1)), Buffer.alloc(0), { flag: 'wx' });
      const recovered = recover(dir);
      assert.equal(recovered.tornTail, undefined, 'an empty segment is not a torn tail');
      assert.deepEqual(recovered.tail, { firstSequence: head + 1, bytes: 0 });
      await assertStartsCleanAt(built, dir, head, `empty newest segment, snapshots ${snapshots}`);
    });
  }

  test('a snapshot taken while the newest segment is empty points at its byte 0, and a start from it works', async () => {
    const dir = copyOf(built, 'empty-newest-snapshot', 'none');
    const frames = logFrames(dir);
    const head = lastSequence(frames[frames.length - 1]!);
    writeFileSync(join(dataPaths(dir).logDir, segmentFileName(head + 1)), Buffer.alloc(0), { flag: 'wx' });
    await withLedger(dir, (ledger) => ledger.snapshot(), options);
    const newest = loadSnapshot(newestSnapshot(dir).path).meta;
    assert.deepEqual([newest.sequence, newest.logSegmentFirstSequence, newest.logOffset], [head, head + 1, 0]);
    await assertStartsCleanAt(built, dir, head, 'snapshot at an empty newest segment');
  });
});

describe('the newest segment has a torn first frame', () => {
  type Cut = { name: string; apply: (path: string, frame: FrameLocation, prng: Prng) => void };
  const cuts: Cut[] = [
    { name: 'nothing but part of the header', apply: (path, _frame, prng) => truncateSync(path, 1 + prng.below(FRAME_HEADER_BYTES - 1)) },
    { name: 'header whole, body cut short', apply: (path, frame, prng) => truncateSync(path, FRAME_HEADER_BYTES + prng.below(frame.bytes - FRAME_HEADER_BYTES)) },
    { name: 'all but its last byte', apply: (path, frame) => truncateSync(path, frame.bytes - 1) },
    {
      name: 'body cut short, then zero fill',
      apply: (path, frame, prng) => {
        truncateSync(path, FRAME_HEADER_BYTES + prng.below(frame.bytes - FRAME_HEADER_BYTES));
        appendFileSync(path, Buffer.alloc(4096));
      },
    },
    { name: 'zeros only (size persisted, data not)', apply: (path) => writeFileSync(path, Buffer.alloc(SEGMENT_BYTES)) },
    {
      name: 'garbage without a frame header',
      apply: (path, _frame, prng) => {
        const garbage = Buffer.alloc(700);
        for (let index = 0; index < garbage.length; index++) garbage[index] = prng.below(256);
        writeFileSync(path, garbage);
      },
    },
  ];
  const prng = new Prng(SEED + 1);
  for (const [index, cut] of cuts.entries()) {
    const snapshots = index % 2 === 0 ? 'none' : 'early';
    test(`${cut.name} (snapshots: ${snapshots}): a torn tail; the file is cut to empty and reused (seed ${SEED})`, async () => {
      const dir = copyOf(built, `torn-first-${index}`, snapshots);
      const segments = segmentsOf(dir);
      const newest = segments[segments.length - 1]!;
      const first = logFrames(dir).find((frame) => frame.path === newest.path)!;
      assert.equal(first.offset, 0);
      cut.apply(newest.path, first, prng);
      const where = `newest segment ${basename(newest.path)}: ${cut.name} (seed ${SEED})`;
      const recovered = recover(dir);
      assert.deepEqual([recovered.tornTail?.path, recovered.tornTail?.offset], [newest.path, 0], `${where}: torn tail`);
      await assertStartsCleanAt(built, dir, newest.firstSequence - 1, where);
    });
  }
});

describe('an older segment ends with a torn frame while a newer one exists', () => {
  type Damage = { name: string; newer: 'whole' | 'empty'; apply: (path: string, frame: FrameLocation, prng: Prng) => number };
  const damages: Damage[] = [
    { name: 'its last frame cut mid-header', newer: 'whole', apply: (path, frame, prng) => (truncateSync(path, frame.offset + 1 + prng.below(FRAME_HEADER_BYTES - 1)), frame.offset) },
    { name: 'its last frame cut mid-body', newer: 'whole', apply: (path, frame, prng) => (truncateSync(path, frame.offset + FRAME_HEADER_BYTES + prng.below(frame.bytes - FRAME_HEADER_BYTES)), frame.offset) },
    { name: 'its last frame cut mid-body', newer: 'empty', apply: (path, frame, prng) => (truncateSync(path, frame.offset + FRAME_HEADER_BYTES + prng.below(frame.bytes - FRAME_HEADER_BYTES)), frame.offset) },
    {
      name: 'zero fill after its last whole frame',
      newer: 'whole',
      apply: (path, frame) => {
        appendFileSync(path, Buffer.alloc(512));
        return frame.offset + frame.bytes;
      },
    },
    {
      name: 'garbage after its last whole frame',
      newer: 'empty',
      apply: (path, frame, prng) => {
        const garbage = Buffer.alloc(300);
        for (let index = 0; index < garbage.length; index++) garbage[index] = prng.below(256);
        appendFileSync(path, garbage);
        return frame.offset + frame.bytes;
      },
    },
  ];
  const prng = new Prng(SEED + 2);
  for (const [index, damage] of damages.entries()) {
    const snapshots = index % 2 === 0 ? 'none' : 'early';
    test(`${damage.name}, newer segment ${damage.newer} (snapshots: ${snapshots}): corruption naming the older file and offset; start refuses, verify fails, nothing changes (seed ${SEED})`, async () => {
      const dir = copyOf(built, `torn-older-${index}`, snapshots);
      const segments = segmentsOf(dir);
      const older = segments[segments.length - 2]!;
      const newer = segments[segments.length - 1]!;
      if (damage.newer === 'empty') truncateSync(newer.path, 0);
      const olderFrames = logFrames(dir).filter((frame) => frame.path === older.path);
      const at = damage.apply(older.path, olderFrames[olderFrames.length - 1]!, prng);
      await assertRefused(dir, older.path, at, `${basename(older.path)}: ${damage.name} at ${at}, newer ${damage.newer} (seed ${SEED})`);
    });
  }
});

describe('segment files named wrong', () => {
  test('a stray empty file named inside an older segment: history reads would look there; refused', async () => {
    const dir = copyOf(built, 'stray-empty', 'none');
    const segments = segmentsOf(dir);
    const inside = segments[2]!.firstSequence + 1;
    assert.ok(inside < segments[3]!.firstSequence, 'test setup: segment 2 holds more than one event');
    const stray = join(dataPaths(dir).logDir, segmentFileName(inside));
    writeFileSync(stray, Buffer.alloc(0), { flag: 'wx' });
    await assertRefused(dir, stray, 0, `stray empty ${basename(stray)}`);
  });

  test('the empty newest segment named for a later sequence than the next: refused', async () => {
    const dir = copyOf(built, 'empty-misnamed', 'none');
    const frames = logFrames(dir);
    const head = lastSequence(frames[frames.length - 1]!);
    const stray = join(dataPaths(dir).logDir, segmentFileName(head + 5));
    writeFileSync(stray, Buffer.alloc(0), { flag: 'wx' });
    await assertRefused(dir, stray, 0, `empty newest ${basename(stray)} at head ${head}`);
  });

  test('a whole segment renamed: its first frame does not start at its name; refused', async () => {
    const dir = copyOf(built, 'renamed', 'none');
    const segments = segmentsOf(dir);
    const victim = segments[segments.length - 2]!;
    const renamed = join(dataPaths(dir).logDir, segmentFileName(victim.firstSequence + 1));
    assert.ok(victim.firstSequence + 1 < segments[segments.length - 1]!.firstSequence, 'test setup: the segment holds more than one event');
    renameSync(victim.path, renamed);
    await assertRefused(dir, renamed, 0, `${basename(victim.path)} renamed to ${basename(renamed)}`);
  });
});
