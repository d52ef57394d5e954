// The log scrub (src/engine/scrub.ts): after a start from a snapshot, every frame the snapshot
// covers is checked in the background, ending at the snapshot's chain hash. Here: a clean log
// over several segments passes and every covered byte and frame is counted; each kind of damage
// recovery would not see (a flipped byte in an older segment, a missing segment, an end that is
// not the snapshot's chain hash or not a frame boundary) fails naming file and offset; the read
// rate is held (an injected clock), and a starved scrub makes up at most a second; 'off', no
// snapshot, and a close mid-scrub (no verdict, nothing reported); an interrupted scrub resumes
// at its checkpoint, anchored by the chain hash it recorded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataPaths } from '../src/engine/recovery.js';
import { readScrubCheckpoint, ScrubFailure, scrubLog, writeScrubCheckpoint, type ScrubEnd } from '../src/engine/scrub.js';
import { listSnapshots, loadSnapshot } from '../src/engine/snapshot.js';
import { CorruptLogError } from '../src/log/scan.js';
import { listSegments } from '../src/log/segments.js';
import { deposit, inTempDir, logFrames, scrubEnded, sleep, submit, withLedger } from './support/ledger.js';

const SEGMENT_BYTES = 512 * 1024;
const BATCHES = 30;
const BATCH_RECORDS = 2000;

/** A ledger in `dir` with several segments and a snapshot mid-log (the newest one is removed). */
async function buildLog(dir: string): Promise<ScrubEnd> {
  await withLedger(
    dir,
    async (ledger) => {
      await ledger.openAccount({ accountId: 'a', currencyCode: 'USD', owner: 'a' });
      for (let batch = 0; batch < BATCHES; batch++) {
        await submit(ledger, Array.from({ length: BATCH_RECORDS }, (_, index) => deposit(`d-${batch}-${index}`, 'a', 1n)));
        if (batch === BATCHES - 5) await ledger.snapshot();
      }
    },
    { segmentBytesMax: SEGMENT_BYTES, logScrubBytesPerSecond: 'off' },
  );
  const snapshots = listSnapshots(dataPaths(dir).snapshotDir);
  rmSync(snapshots[0]!.path); // keep the mid-log one: frames after it are replayed, not scrubbed
  const meta = loadSnapshot(snapshots[1]!.path).meta;
  return { segmentFirstSequence: meta.logSegmentFirstSequence, offset: meta.logOffset, sequence: meta.sequence, chainHash: meta.chainHash };
}

/** Runs `run` on a log built by buildLog in a fresh temporary directory (removed afterwards). */
function withBuiltLog(run: (path: string, end: ScrubEnd) => Promise<void>): Promise<void> {
  return inTempDir(async ({ path }) => run(path, await buildLog(path)));
}

/** The frames at or before the snapshot's position, and their bytes. */
function covered(dir: string, end: ScrubEnd): { frames: number; bytes: number } {
  const frames = logFrames(dir).filter((frame) => frame.firstSequence + frame.eventCount - 1 <= end.sequence);
  return { frames: frames.length, bytes: frames.reduce((sum, frame) => sum + frame.bytes, 0) };
}

const unpaced = { bytesPerSecond: Number.MAX_SAFE_INTEGER, nowMs: () => 0, sleepMs: () => assert.fail('an unpaced scrub must not sleep') };

test('a clean log over several segments passes; every covered frame and byte is counted, nothing after the position', async () => {
  await withBuiltLog(async (path, end) => {
    const segments = listSegments(dataPaths(path).logDir);
    assert.ok(segments.filter((segment) => segment.firstSequence < end.segmentFirstSequence).length >= 2, 'the snapshot sits beyond two whole segments');
    assert.ok(end.offset < statSync(segments.find((segment) => segment.firstSequence === end.segmentFirstSequence)!.path).size, 'frames follow the snapshot in its segment');
    const expected = covered(path, end);
    const progress = scrubLog(dataPaths(path).logDir, end, unpaced, () => undefined);
    assert.deepEqual(progress, { bytesChecked: expected.bytes, bytesTotal: expected.bytes, framesChecked: expected.frames, resumedFromSequence: 1 });

    const heard: string[] = [];
    const observer = { onLogScrubStart: (upTo: number, from: number) => heard.push(`start ${from}..${upTo}`), onLogScrubEnd: (status: { state: string }) => heard.push(status.state) };
    await withLedger(
      path,
      async (ledger) => {
        const status = await scrubEnded(ledger);
        assert.deepEqual(status, { state: 'passed', ...progress });
      },
      { observer },
    );
    assert.deepEqual(heard, [`start 1..${end.sequence}`, 'passed']);
  });
});

test('damage recovery does not read fails the scrub, naming file and offset', async () => {
  await withBuiltLog(async (path, end) => {
    const { logDir } = dataPaths(path);
    const scrub = (at: ScrubEnd = end): unknown => {
      try {
        scrubLog(logDir, at, unpaced, () => undefined);
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const failure = (at?: ScrubEnd): CorruptLogError => failed(at).corrupt;
    const failed = (at?: ScrubEnd): ScrubFailure => {
      const error = scrub(at);
      assert.ok(error instanceof ScrubFailure && error.corrupt instanceof CorruptLogError, String(error));
      return error;
    };

    // An end that is not the snapshot's: another chain hash, a sequence short, a position mid-frame.
    assert.match(failure({ ...end, chainHash: '00'.repeat(32) }).reason, /does not end at the snapshot's sequence/);
    assert.match(failure({ ...end, sequence: end.sequence - 1 }).reason, /does not end at the snapshot's sequence/);
    const midFrame = failure({ ...end, offset: end.offset - 1 });
    assert.match(midFrame.reason, /truncated frame body/);
    assert.equal(scrub(), undefined, 'the true end still passes');

    // A flipped byte in the second frame of the oldest segment.
    const second = logFrames(path)[1]!;
    const original = readFileSync(second.path);
    const damaged = Buffer.from(original);
    const at = second.offset + second.bytes - 1;
    damaged[at] = damaged[at]! ^ 0x20;
    writeFileSync(second.path, damaged);
    const flippedScrub = failed();
    assert.deepEqual(flippedScrub.progress, { bytesChecked: logFrames(path)[0]!.bytes, bytesTotal: covered(path, end).bytes, framesChecked: 1, resumedFromSequence: 1 }, 'the counts stop at the frame before the damage');
    const flipped = flippedScrub.corrupt;
    assert.equal(flipped.path, second.path);
    assert.equal(flipped.offset, second.offset);
    assert.match(flipped.message, new RegExp(`${second.path} at byte offset ${second.offset} `));
    writeFileSync(second.path, original);

    // A whole older segment gone: the next one is not where the log continues.
    const segments = listSegments(logDir);
    rmSync(segments[1]!.path);
    const missing = failure();
    assert.equal(missing.path, segments[2]!.path);
    assert.match(missing.reason, /named for sequence \d+ but the log continues at sequence \d+/);
  });
});

test('the read rate is held: with a 256 KiB/s limit the scrub sleeps until its bytes fit the time', async () => {
  await withBuiltLog(async (path, end) => {
    const bytesPerSecond = 256 * 1024;
    let clockMs = 0;
    let sleeps = 0;
    const reports: number[] = [];
    const progress = scrubLog(
      dataPaths(path).logDir,
      end,
      { bytesPerSecond, nowMs: () => clockMs, sleepMs: (ms) => ((clockMs += ms), sleeps++) },
      (report) => reports.push(report.bytesChecked),
    );
    const paceStep = 1 << 20;
    assert.ok(progress.bytesChecked > 2 * paceStep, `the log is long enough to pace: ${progress.bytesChecked} bytes`);
    // Paced every MiB: the clock stands where the paced bytes take at the rate (the bytes after the last pace are free).
    const pacedMs = ((progress.bytesChecked - paceStep) / bytesPerSecond) * 1000;
    assert.ok(clockMs >= pacedMs && clockMs <= (progress.bytesChecked / bytesPerSecond) * 1000, `clock ${clockMs} ms for ${progress.bytesChecked} bytes`);
    assert.ok(sleeps >= 2, `slept ${sleeps} times`);
    assert.ok(reports.length >= 2 && reports.at(-1) === progress.bytesChecked, `progress ${reports.join(', ')}`);
    assert.deepEqual([...reports].sort((a, b) => a - b), reports, 'progress only grows');
  });
});

test('a scrub starved of CPU makes up at most a second of reading, then keeps the rate again', async () => {
  await withBuiltLog(async (path, end) => {
    const bytesPerSecond = 256 * 1024;
    const starvedMs = 10_000;
    let clockMs = 0;
    let reads = 0;
    let bytesAtStarvation = 0;
    const progress = scrubLog(
      dataPaths(path).logDir,
      end,
      {
        bytesPerSecond,
        // The clock jumps 10 s at the first pace check: the worker got no CPU for that long.
        nowMs: () => (reads++ === 1 ? (clockMs += starvedMs) : clockMs),
        sleepMs: (ms) => (clockMs += ms),
      },
      (report) => (bytesAtStarvation ||= report.bytesChecked),
    );
    const msOf = (bytes: number): number => (bytes / bytesPerSecond) * 1000;
    const readingMs = msOf(progress.bytesChecked);
    // The starved 10 s paid for the bytes read before it plus one second; the rest is forgotten,
    // so every later byte is paced again. Without the bound the clock would end near 13.5 s.
    const forgottenMs = starvedMs - msOf(bytesAtStarvation) - 1000;
    assert.ok(forgottenMs > 3000 && readingMs > forgottenMs, `the log is long enough: ${readingMs} ms of reading, ${forgottenMs} ms forgotten`);
    const paceMs = msOf(1 << 20); // the bytes after the last pace check are not waited for
    assert.ok(clockMs >= readingMs + forgottenMs - paceMs && clockMs <= readingMs + forgottenMs, `clock ${clockMs} ms: not ${readingMs} + ${forgottenMs} ms`);
  });
});

test("'off' runs no scrub; a start without a snapshot needs none; close stops a scrub mid-way", { timeout: 60_000 }, async () => {
  await inTempDir(async ({ path }) => {
    await withLedger(path, async (ledger) => {
      assert.equal(ledger.logScrub().state, 'not_needed', 'an empty data directory has no snapshot');
    });
    await buildLog(path);
    await withLedger(path, async (ledger) => assert.equal(ledger.logScrub().state, 'off'), { logScrubBytesPerSecond: 'off' });
    let closeStarted = 0;
    const ended: string[] = [];
    const warnings: string[] = [];
    const onWarning = (warning: Error): number => warnings.push(warning.message);
    process.on('warning', onWarning);
    let stopped: unknown;
    try {
      await withLedger(
        path,
        async (ledger) => {
          const deadline = Date.now() + 10_000;
          while (ledger.logScrub().bytesTotal === 0 && Date.now() < deadline) await sleep(10);
          const running = ledger.logScrub();
          assert.equal(running.state, 'running', 'at one byte a second the scrub is still on its first MiB');
          assert.ok(running.bytesTotal > 0, 'the total is known from the start, not after the first second of reading');
          stopped = ledger;
          closeStarted = performance.now(); // withLedger closes the ledger right after this returns
        },
        { logScrubBytesPerSecond: 1, observer: { onLogScrubEnd: (status) => ended.push(status.state) } },
      );
      assert.ok(performance.now() - closeStarted < 2_000, 'close did not wait for the scrub (it sleeps for about a million seconds)');
      await sleep(50); // a late exit event would land here
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal((stopped as { logScrub(): { state: string } }).logScrub().state, 'stopped', 'a scrub ended by close has no verdict');
    assert.deepEqual(ended, [], 'no end is reported for a stopped scrub');
    assert.deepEqual(warnings.filter((message) => message.includes('scrub')), []);
  });
});

test('a read rate that is not a positive integer is refused before the data directory is touched', async () => {
  await inTempDir(async ({ path }) => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      await assert.rejects(withLedger(path, async () => undefined, { logScrubBytesPerSecond: bad }), /logScrubBytesPerSecond must be an integer/, String(bad));
    }
  });
});

test('an interrupted scrub resumes at its checkpoint, anchored by its chain hash; a whole pass removes it', { timeout: 60_000 }, async () => {
  await withBuiltLog(async (path, end) => {
    const { logDir, scrubCheckpointPath } = dataPaths(path);
    const segments = listSegments(logDir);
    const all = covered(path, end);
    // Interrupted at its first pause for the read rate (after 1 MiB: two whole 512 KiB segments).
    const interrupted = { bytesPerSecond: 1, nowMs: () => 0, sleepMs: () => { throw new Error('interrupted'); } };
    assert.throws(() => scrubLog(logDir, end, interrupted, () => undefined, scrubCheckpointPath), /interrupted/);
    const checkpoint = readScrubCheckpoint(scrubCheckpointPath);
    assert.ok(checkpoint !== undefined, 'a checkpoint after each whole segment');
    const resumeAt = segments.findIndex((segment) => segment.firstSequence === checkpoint.segmentFirstSequence);
    assert.ok(resumeAt >= 1 && segments[resumeAt]!.firstSequence < end.segmentFirstSequence, `resumes at a covered segment after the first (${checkpoint.segmentFirstSequence})`);
    const before = logFrames(path).filter((frame) => frame.firstSequence < checkpoint.segmentFirstSequence);

    // A checkpoint whose chain hash the next segment does not continue fails the scrub: the hash anchors what is skipped.
    writeScrubCheckpoint(scrubCheckpointPath, { ...checkpoint, chainHash: 'ab'.repeat(32) });
    assert.throws(() => scrubLog(logDir, end, unpaced, () => undefined, scrubCheckpointPath), (error: unknown) => error instanceof ScrubFailure && /hash chain broken/.test(error.message) && error.corrupt.offset === 0);
    writeScrubCheckpoint(scrubCheckpointPath, checkpoint);

    const resumed = scrubLog(logDir, end, unpaced, () => undefined, scrubCheckpointPath);
    const skipped = before.reduce((sum, frame) => sum + frame.bytes, 0);
    assert.deepEqual(resumed, { bytesChecked: all.bytes - skipped, bytesTotal: all.bytes - skipped, framesChecked: all.frames - before.length, resumedFromSequence: checkpoint.segmentFirstSequence });
    assert.ok(!existsSync(scrubCheckpointPath), 'a whole pass removes the checkpoint');
    assert.equal(scrubLog(logDir, end, unpaced, () => undefined, scrubCheckpointPath).resumedFromSequence, 1, 'so the next scrub checks everything');

    // A damaged checkpoint is ignored: the scrub starts from the first frame.
    writeScrubCheckpoint(scrubCheckpointPath, checkpoint);
    const bytes = readFileSync(scrubCheckpointPath);
    bytes[10] = bytes[10]! ^ 1;
    writeFileSync(scrubCheckpointPath, bytes);
    assert.equal(readScrubCheckpoint(scrubCheckpointPath), undefined);
    assert.deepEqual(scrubLog(logDir, end, unpaced, () => undefined, scrubCheckpointPath), { bytesChecked: all.bytes, bytesTotal: all.bytes, framesChecked: all.frames, resumedFromSequence: 1 });

    // A checkpoint made on other files (the log copied or restored: other inodes) is not trusted.
    writeScrubCheckpoint(scrubCheckpointPath, checkpoint);
    const copied = readFileSync(segments[0]!.path);
    rmSync(segments[0]!.path);
    writeFileSync(segments[0]!.path, copied);
    assert.equal(scrubLog(logDir, end, unpaced, () => undefined, scrubCheckpointPath).resumedFromSequence, 1, 'read again from the first frame');

    // The checkpoint only saves work: one that cannot be written does not fail the scrub.
    const unwritable = join(path, 'no-such-dir', 'scrub-checkpoint');
    assert.throws(() => scrubLog(logDir, end, interrupted, () => undefined, unwritable), /interrupted/);
    assert.deepEqual(scrubLog(logDir, end, unpaced, () => undefined, unwritable).bytesChecked, all.bytes);

    // Through the engine: a start finds the checkpoint an interrupted scrub left and resumes there.
    assert.throws(() => scrubLog(logDir, end, interrupted, () => undefined, scrubCheckpointPath), /interrupted/);
    assert.equal(readScrubCheckpoint(scrubCheckpointPath)?.segmentFirstSequence, checkpoint.segmentFirstSequence);
    const starts: Array<[number, number]> = [];
    await withLedger(
      path,
      async (ledger) => {
        const status = await scrubEnded(ledger);
        assert.deepEqual(status, { state: 'passed', ...resumed });
      },
      { observer: { onLogScrubStart: (upTo: number, from: number) => starts.push([from, upTo]) } },
    );
    assert.deepEqual(starts, [[checkpoint.segmentFirstSequence, end.sequence]], 'the start says where the scrub resumes');
    assert.ok(!existsSync(scrubCheckpointPath));
  });
});
