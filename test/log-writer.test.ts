// LogWriter.durableThrough: a wait for one position settles at the group commit that covers it,
// not at the end of everything appended (later frames still pending), and rejects if the log
// fails first. The frames here are opaque bytes: the writer does not read them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { segmentFileName } from '../src/log/segments.js';
import { LogWriter } from '../src/log/writer.js';
import { inTempDir, turn } from './support/ledger.js';

test('durableThrough settles at the group commit that covers the position, before later groups', { timeout: 20_000 }, async () => {
  await inTempDir(async ({ path }) => {
    const failures: unknown[] = [];
    const writer = await LogWriter.open({ logDir: path, fsync: true, onFatal: (error) => failures.push(error) }, undefined, 1);
    const first = writer.append(Buffer.alloc(4096, 1), 1, 10);
    await turn(); // the first frame's group is under way: the second goes in a group of its own
    const second = writer.append(Buffer.alloc(4096, 2), 11, 10);
    assert.equal(writer.durableSequence, 0);
    let durableWhenSettled = -1;
    assert.equal(writer.durableThrough(1), writer.durableThrough(10), 'waits on one frame share its promise: nothing is kept per wait');
    const waited = writer.durableThrough(5).then(() => (durableWhenSettled = writer.durableSequence));
    await Promise.all([first, waited]);
    assert.equal(durableWhenSettled, 10, 'settled by the commit of the first group, before the second');
    await second;
    assert.equal(writer.durableSequence, 20);
    await writer.durableThrough(20); // already durable: at once
    await writer.close();
    assert.deepEqual(failures, []);
  });
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

test('durableThrough returns the promise of the frame that holds each position, before and after earlier groups commit', { timeout: 20_000 }, async () => {
  await inTempDir(async ({ path }) => {
    const writer = await LogWriter.open({ logDir: path, fsync: true, onFatal: (error) => assert.fail(String(error)) }, undefined, 1);
    // Frames of 1 to 7 events in three bursts a turn apart: each burst goes to disk as a group of its own.
    const frames: Array<{ first: number; last: number; durable: Promise<void> }> = [];
    let next = 1;
    for (let burst = 0; burst < 3; burst++) {
      for (let frame = 0; frame < 15; frame++) {
        const events = ((burst * 15 + frame) % 7) + 1;
        frames.push({ first: next, last: next + events - 1, durable: writer.append(Buffer.alloc(64, frame), next, events) });
        next += events;
      }
      await turn();
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
    assert.ok(writer.durableSequence < next - 1, 'later groups still pending');
    checkPending('after the first group');
    await frames[20]!.durable;
    checkPending('after the second burst');
    await Promise.all(frames.map((frame) => frame.durable));
    assert.equal(await flushedAt, next - 1, 'flushed() waits for the last frame appended before it');
    await writer.flushed(); // nothing pending: at once
    assert.throws(() => writer.durableThrough(next), /no frame appended holds/, 'a position past every appended frame is a bug of the caller');
    await writer.close();
  });
});
