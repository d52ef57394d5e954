// LogWriter.durableThrough: a wait for one position settles at the group commit that covers it,
// not at the end of everything appended (later frames still pending), and rejects if the log
// fails first. The frames here are opaque bytes (the writer does not read them), except in the
// sealing test, where the writer's thread finishes real frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { encodeUnsealedFrame, FRAME_VERSION_OF, GENESIS_CHAIN_HASH, sealFrame } from '../src/log/frame.js';
import { FramePool } from '../src/log/frame-pool.js';
import { segmentFileName } from '../src/log/segments.js';
import { LogWriter } from '../src/log/writer.js';
import { inTempDir, sleep } from './support/ledger.js';

/**
 * Runs `attempt` until it answers true, at most five times: its commits came apart as the test
 * needs (a machine too loaded to start the first commit in time merges them); fails with `why`.
 */
async function inAttemptsUntil(why: string, attempt: () => Promise<boolean>): Promise<void> {
  for (let tries = 0; tries < 5; tries++) if (await attempt()) return;
  assert.fail(why);
}

test('durableThrough settles at the group commit that covers the position, before later groups', { timeout: 60_000 }, async () => {
  // The writer's thread commits whatever has arrived when a commit starts. A 32 MiB first frame
  // keeps its commit busy while the second arrives, so the two go in groups of their own; on a
  // machine so loaded that the thread had not started the first commit yet, both land in one
  // group, and the attempt is repeated (at most five times).
  await inAttemptsUntil('the two frames went to disk together in every attempt', () =>
    inTempDir(async ({ path }) => {
      const failures: unknown[] = [];
      const groups: number[] = [];
      const writer = await LogWriter.open({ logDir: path, fsync: true, onFatal: (error) => failures.push(error), onGroupCommitted: (frames) => groups.push(frames) }, undefined, 1);
      const first = writer.append(Buffer.alloc(32 << 20, 1), 1, 10);
      await sleep(20);
      const second = writer.append(Buffer.alloc(4096, 2), 11, 10);
      let durableWhenSettled = -1;
      assert.equal(writer.durableThrough(1), writer.durableThrough(10), 'waits on one frame share its promise: nothing is kept per wait');
      const waited = writer.durableThrough(5).then(() => (durableWhenSettled = writer.durableSequence));
      await Promise.all([first, waited, second]);
      assert.equal(writer.durableSequence, 20);
      await writer.durableThrough(20); // already durable: at once
      await writer.close();
      await assert.rejects(writer.append(Buffer.alloc(64, 3), 21, 1), /after the log writer was closed/);
      assert.deepEqual(failures, []);
      if (groups.length === 1) return false;
      assert.deepEqual(groups, [1, 1]);
      assert.equal(durableWhenSettled, 10, 'settled by the commit of the first group, before the second');
      return true;
    }),
  );
});

test('durableThrough rejects when the log fails before the position is durable', { timeout: 20_000 }, async () => {
  await inTempDir(async ({ path }) => {
    const failures: unknown[] = [];
    const writer = await LogWriter.open({ logDir: path, fsync: true, segmentBytesMax: 1024, onFatal: (error) => failures.push(error) }, undefined, 1);
    await writer.append(Buffer.alloc(800, 1), 1, 1);
    // The next frame rolls over to a new segment, whose file is already there (created exclusively: the roll fails).
    writeFileSync(join(path, segmentFileName(2)), 'in the way');
    const appended = writer.append(Buffer.alloc(800, 2), 2, 1);
    const waited = writer.durableThrough(2);
    await assert.rejects(appended);
    await assert.rejects(waited);
    assert.equal(failures.length, 1);
    await assert.rejects(writer.durableThrough(2), 'a wait after the failure rejects at once');
    await assert.rejects(writer.flushed(), 'and so does flushed()');
  });
});

test('durableThrough returns the promise of the frame that holds each position, before and after earlier groups commit', { timeout: 60_000 }, async () => {
  // A 32 MiB first frame keeps the first commit busy while three bursts of small frames arrive,
  // 20 ms apart, so they go to disk in later groups; should they all land in the first group (a
  // machine too loaded to start the commit in time), the attempt is repeated (at most five times).
  await inAttemptsUntil('every frame went to disk in the first group in every attempt', () =>
    inTempDir(async ({ path }) => {
      const writer = await LogWriter.open({ logDir: path, fsync: true, onFatal: (error) => assert.fail(String(error)) }, undefined, 1);
      const frames: Array<{ first: number; last: number; durable: Promise<void> }> = [{ first: 1, last: 1, durable: writer.append(Buffer.alloc(32 << 20, 9), 1, 1) }];
      let next = 2;
      // Frames of 1 to 7 events.
      for (let burst = 0; burst < 3; burst++) {
        await sleep(20);
        for (let frame = 0; frame < 15; frame++) {
          const events = ((burst * 15 + frame) % 7) + 1;
          frames.push({ first: next, last: next + events - 1, durable: writer.append(Buffer.alloc(64, frame), next, events) });
          next += events;
        }
      }
      const checkPending = (label: string): void => {
        for (const frame of frames) {
          if (frame.last <= writer.durableSequence) continue;
          for (let position = Math.max(frame.first, writer.durableSequence + 1); position <= frame.last; position++) {
            assert.equal(writer.durableThrough(position), frame.durable, `${label}: position ${position} waits on its own frame`);
          }
        }
      };
      checkPending('all pending');
      const flushedAt = writer.flushed().then(() => writer.durableSequence);
      await frames[0]!.durable;
      const laterPending = writer.durableSequence < next - 1;
      checkPending('after the first group');
      await frames[20]!.durable;
      checkPending('after the second burst');
      await Promise.all(frames.map((frame) => frame.durable));
      assert.equal(await flushedAt, next - 1, 'flushed() waits for the last frame appended before it');
      await writer.flushed(); // nothing pending: at once
      assert.throws(() => writer.durableThrough(next), /no frame appended holds/, 'a position past every appended frame is a bug of the caller');
      await writer.close();
      return laterPending;
    }),
  );
});

/**
 * A writer thread that runs the real one but ends itself (exit code 3) in the `dieAtCommit`th
 * commit, before it reports it: its fdatasync is replaced (a frame can reach the thread outside
 * any message event, taken during a commit, so the sync is where to catch it).
 */
function writerThreadDyingAt(dir: string, dieAtCommit: number): URL {
  const real = new URL('../src/log/writer-worker.js', import.meta.url).href;
  // Patched before the real module is evaluated (static imports run in order); named imports of a builtin follow syncBuiltinESMExports.
  writeFileSync(
    join(dir, 'die-at-commit.mjs'),
    `import fs from 'node:fs';
    import { syncBuiltinESMExports } from 'node:module';
    const realSync = fs.fdatasyncSync;
    let commits = 0;
    fs.fdatasyncSync = (fd) => {
      if (++commits === ${dieAtCommit}) process.exit(3);
      return realSync(fd);
    };
    syncBuiltinESMExports();`,
  );
  const path = join(dir, 'dying-writer.mjs');
  writeFileSync(path, `import './die-at-commit.mjs';\nimport ${JSON.stringify(real)};\n`);
  return pathToFileURL(path);
}

test('a writer thread that dies fails the log: its frames in flight and every later append reject, onFatal once; one that cannot start fails open', { timeout: 20_000 }, async () => {
  await inTempDir(async ({ path }) => {
    const logDir = join(path, 'log');
    const scripts = path;
    mkdirSync(logDir);
    const failures: unknown[] = [];
    const writer = await LogWriter.open({ logDir, fsync: true, onFatal: (error) => failures.push(error), workerUrl: writerThreadDyingAt(scripts, 2) }, undefined, 1);
    await writer.append(Buffer.alloc(100, 1), 1, 1);
    assert.equal(writer.durableSequence, 1);
    await assert.rejects(writer.append(Buffer.alloc(100, 2), 2, 1), /log writer thread exited with code 3/);
    assert.equal(failures.length, 1);
    await assert.rejects(writer.append(Buffer.alloc(100, 3), 3, 1), /exited with code 3/, 'an append after the failure rejects at once');
    assert.equal(failures.length, 1, 'the engine is told once');
    await writer.close(); // returns: the thread is gone already
    // The second frame was written, then the thread died in its sync: on disk, never acknowledged (as after a crash).
    assert.equal(statSync(join(logDir, segmentFileName(1))).size, 200);

    const broken = join(scripts, 'broken-writer.mjs');
    writeFileSync(broken, 'process.exit(4);\n');
    await assert.rejects(LogWriter.open({ logDir: path, fsync: true, onFatal: () => assert.fail('not opened'), workerUrl: pathToFileURL(broken) }, undefined, 1), /exited with code 4 before it was ready/);
  });
});

test('the writer thread holds the process only while frames are in flight: a script that appends and returns exits once they are durable', { timeout: 30_000 }, async () => {
  await inTempDir(async ({ path }) => {
    // No close() and no await: the frames must still reach the disk, and the process must then end on its own.
    const script = `
      const { LogWriter } = await import(${JSON.stringify(new URL('../src/log/writer.js', import.meta.url).href)});
      const writer = await LogWriter.open({ logDir: ${JSON.stringify(path)}, fsync: true, onFatal: (error) => { console.error(error); process.exit(1); } }, undefined, 1);
      writer.append(Buffer.alloc(70_000, 1), 1, 3);
      writer.append(Buffer.alloc(500, 2), 4, 1);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.signal, null, 'the process ended by itself, before the timeout');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(statSync(join(path, segmentFileName(1))).size, 70_500, 'both frames were written before it ended');
  });
});

test('a commit whose frames cannot be settled fails the log instead of throwing out of the message handler', { timeout: 20_000 }, async () => {
  await inTempDir(async ({ path }) => {
    const failures: unknown[] = [];
    let written = 0;
    const onFrameWritten = (): void => {
      if (++written === 2) throw new Error('index refused the frame');
    };
    const writer = await LogWriter.open({ logDir: path, fsync: true, onFatal: (error) => failures.push(error), onFrameWritten }, undefined, 1);
    await writer.append(Buffer.alloc(100, 1), 1, 1);
    await assert.rejects(writer.append(Buffer.alloc(100, 2), 2, 1), /index refused the frame/);
    assert.equal(failures.length, 1);
    await assert.rejects(writer.append(Buffer.alloc(100, 3), 3, 1), /index refused the frame/, 'nothing is taken after the failure');
    await writer.close();
  });
});

test('with sealAfter the writer thread seals each frame, chained from that hash, and reports the last hash', { timeout: 20_000 }, async () => {
  await inTempDir(async ({ path }) => {
    const pool = new FramePool();
    const sizes = [100, 20_000, 3]; // the middle frame is over 64 KiB: pooled shared memory; the others go as copies
    const frameInputs = sizes.map((events, index) => {
      const offsets = Uint32Array.from({ length: events }, (_, event) => event * 8);
      return { events: Buffer.alloc(events * 8, index + 1), offsets, count: events, firstSequence: 1 + sizes.slice(0, index).reduce((sum, n) => sum + n, 0) };
    });
    const version = FRAME_VERSION_OF.sha256;
    const failures: unknown[] = [];
    const writer = await LogWriter.open({ logDir: path, fsync: true, onFatal: (error) => failures.push(error), sealAfter: GENESIS_CHAIN_HASH }, undefined, 1);
    assert.deepEqual(writer.durableChainHash, GENESIS_CHAIN_HASH);
    await Promise.all(
      frameInputs.map((input) =>
        writer.append(encodeUnsealedFrame(input.events, input.events.length, input.offsets, input.count, input.firstSequence, 1_700_000_000_000, version, (bytes) => pool.take(bytes)), input.firstSequence, input.count),
      ),
    );
    let previous: Buffer = GENESIS_CHAIN_HASH;
    const expected = frameInputs.map((input) => {
      const frame = encodeUnsealedFrame(input.events, input.events.length, input.offsets, input.count, input.firstSequence, 1_700_000_000_000, version);
      previous = sealFrame(frame, previous);
      return frame;
    });
    assert.ok(readFileSync(join(path, segmentFileName(1))).equals(Buffer.concat(expected)), 'the segment holds the frames as sealFrame seals them in order');
    assert.deepEqual(writer.durableChainHash, Buffer.from(previous));
    await writer.close();
    assert.deepEqual(failures, []);
  });
});
