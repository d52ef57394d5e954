// Damaged data directories: what start, `walletd verify` and `walletd serve` do with them.
//
// A ledger writes ~40 frames (one awaited batch each, so the frame of every transaction id is
// known); copies of its directory are then damaged on purpose, with offsets drawn from a
// seeded PRNG (src/stdx/prng.ts) and reported in every assertion message:
// - torn tail: the segment cut mid-header, mid-body, at a frame boundary, or followed by zero
//   fill or garbage. Start must succeed, truncate to the last whole frame, hold exactly the
//   state of a replay up to that frame (digest compared), have lost only the ids of the cut
//   (newest) frames, accept new work, and `walletd verify` must pass afterwards.
// - corruption: one byte flipped in a frame that has frames after it, in the part of the log
//   replayed at start. `walletd verify` exits non-zero naming the segment file and the frame's
//   byte offset; `openLedger` rejects with a CorruptLogError naming both; `walletd serve`
//   exits non-zero with both in its log. Damage before the newest snapshot's position is not
//   read at start (recovery stays short), but the log scrub that runs after start reports it
//   (file and offset), and `verify` finds it.
// - snapshots: a damaged newest snapshot is skipped for the older one, or for a replay from
//   the first frame, with the same digest; undamaged snapshots with empty sections load; a log
//   cut shorter than the newest snapshot's position is corruption, not a torn tail (the
//   snapshot proves those frames were durable).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, cpSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stateDigest } from '../src/core/digest.js';
import { openLedger } from '../src/engine/ledger.js';
import { dataPaths, recover } from '../src/engine/recovery.js';
import { listSnapshots, loadSnapshot } from '../src/engine/snapshot.js';
import { FRAME_HEADER_BYTES } from '../src/log/frame.js';
import { CorruptLogError } from '../src/log/scan.js';
import { listSegments } from '../src/log/segments.js';
import { Prng } from '../src/stdx/prng.js';
import type { LogScrubStatus } from '../src/engine/types.js';
import { sleep, WalletServer } from './support/http-server.js';
import { deposit, logFrames, runWalletd, scrubEnded, submit, tempDir, transfer, WALLETD_BIN, withLedger, type FrameLocation } from './support/ledger.js';

const SEED = Number(process.env['WALLETD_DAMAGE_SEED'] ?? 20_261_125);
const FRAMES_WRITTEN = 40;
const ACCOUNTS = ['a0', 'a1', 'a2', 'a3'];

type Built = {
  root: { path: string; remove: () => void };
  /** The pristine data directory, never modified after `build`. */
  dir: string;
  /** Transaction ids of each transfer frame, keyed by the frame's first sequence. */
  idsByFrame: Map<number, string[]>;
  digest: string;
  /** Log position of the older of the two snapshots (the one taken mid-run). */
  midSnapshot: { sequence: number; logOffset: number };
};

/**
 * Writes FRAMES_WRITTEN frames: account openings, deposits, then batches of transfers (some
 * rejected) with a snapshot half-way. close() writes the second snapshot at the head.
 */
async function build(): Promise<Built> {
  const root = tempDir('walletd-damage-');
  const dir = join(root.path, 'pristine');
  const idsByFrame = new Map<number, string[]>();
  const prng = new Prng(SEED);
  let digest = '';
  await withLedger(dir, async (ledger) => {
    for (const accountId of ACCOUNTS) await ledger.openAccount({ accountId, currencyCode: 'USD', owner: 'o' });
    const funding = await submit(ledger, ACCOUNTS.map((accountId) => deposit(`fund-${accountId}`, accountId, 10_000n)));
    idsByFrame.set(funding.sequences[0]! - 1, ACCOUNTS.map((accountId) => `fund-${accountId}`)); // the external account opens first
    for (let frame = 0; frame < FRAMES_WRITTEN - ACCOUNTS.length - 1; frame++) {
      const commands = Array.from({ length: 1 + prng.below(4) }, (_, index) => {
        const from = ACCOUNTS[prng.below(ACCOUNTS.length)]!;
        const to = ACCOUNTS[prng.below(ACCOUNTS.length)]!;
        return transfer(`f${frame}-${index}`, from, to, BigInt(1 + prng.below(3_000)));
      });
      const results = await submit(ledger, commands);
      idsByFrame.set(results.sequences[0]!, commands.map((command) => command.transactionId));
      if (frame === 15) await ledger.snapshot();
    }
    digest = ledger.digest();
  });
  const snapshots = listSnapshots(dataPaths(dir).snapshotDir);
  assert.equal(snapshots.length, 2, 'a mid-run snapshot and the one written by close()');
  const mid = loadSnapshot(snapshots[1]!.path).meta;
  assert.equal(logFrames(dir).length, FRAMES_WRITTEN);
  return { root, dir, idsByFrame, digest, midSnapshot: { sequence: mid.sequence, logOffset: mid.logOffset } };
}

/** A fresh copy of the pristine directory, optionally without snapshots. */
function copyOf(built: Built, name: string, options: { snapshots: 'all' | 'none' | 'older' }): string {
  const copy = join(built.root.path, name);
  cpSync(built.dir, copy, { recursive: true });
  const { snapshotDir } = dataPaths(copy);
  const snapshots = listSnapshots(snapshotDir);
  if (options.snapshots === 'none') for (const snapshot of snapshots) rmSync(snapshot.path);
  if (options.snapshots === 'older') rmSync(snapshots[0]!.path);
  return copy;
}

function lastSequence(frame: FrameLocation): number {
  return frame.firstSequence + frame.eventCount - 1;
}

/** Digest of the pristine log replayed up to `sequence` (0 = empty state). */
function digestAt(built: Built, sequence: number): string {
  return stateDigest(recover(built.dir, { fromGenesis: true, toSequence: sequence }).state);
}

function segmentSize(dir: string): number {
  const segments = listSegments(dataPaths(dir).logDir);
  assert.equal(segments.length, 1, 'the test log is one segment');
  return statSync(segments[0]!.path).size;
}

let built: Built;
before(async () => {
  built = await build();
});
after(() => built.root.remove());

describe('torn tail', () => {
  type Cut = { name: string; apply: (path: string, frames: FrameLocation[]) => number };
  /** Each cut damages the segment and returns the byte length the valid frames end at. */
  function cuts(prng: Prng): Cut[] {
    const frameAt = (frames: FrameLocation[]): FrameLocation => frames[prng.below(frames.length)]!;
    const list: Cut[] = [];
    for (let round = 0; round < 4; round++) {
      list.push({
        name: `mid-header #${round}`,
        apply: (path, frames) => {
          const frame = frameAt(frames);
          truncateSync(path, frame.offset + 1 + prng.below(FRAME_HEADER_BYTES - 1));
          return frame.offset;
        },
      });
      list.push({
        name: `mid-body #${round}`,
        apply: (path, frames) => {
          const frame = frameAt(frames);
          truncateSync(path, frame.offset + FRAME_HEADER_BYTES + prng.below(frame.bytes - FRAME_HEADER_BYTES));
          return frame.offset;
        },
      });
    }
    list.push({
      name: 'inside the newest frame',
      apply: (path, frames) => {
        const frame = frames[frames.length - 1]!;
        truncateSync(path, frame.offset + frame.bytes - 1);
        return frame.offset;
      },
    });
    list.push({
      name: 'at a frame boundary (nothing torn)',
      apply: (path, frames) => {
        const frame = frameAt(frames);
        truncateSync(path, frame.offset);
        return frame.offset;
      },
    });
    list.push({
      name: 'mid-body, then zero fill (a preallocated or half-persisted tail)',
      apply: (path, frames) => {
        const frame = frameAt(frames);
        truncateSync(path, frame.offset + FRAME_HEADER_BYTES + prng.below(frame.bytes - FRAME_HEADER_BYTES));
        appendFileSync(path, Buffer.alloc(4096));
        return frame.offset;
      },
    });
    list.push({
      name: 'whole log, then garbage without a frame header',
      apply: (path, frames) => {
        const end = frames[frames.length - 1]!.offset + frames[frames.length - 1]!.bytes;
        const garbage = Buffer.alloc(300);
        for (let index = 0; index < garbage.length; index++) garbage[index] = prng.below(256);
        appendFileSync(path, garbage);
        return end;
      },
    });
    return list;
  }

  const prng = new Prng(SEED + 1);
  for (const [index, cut] of cuts(prng).entries()) {
    test(`cut ${cut.name}: start truncates to the last whole frame, keeps everything before, verify passes (seed ${SEED})`, async () => {
      const dir = copyOf(built, `torn-${index}`, { snapshots: 'none' });
      const frames = logFrames(dir);
      const validEnd = cut.apply(frames[0]!.path, frames);
      const kept = frames.filter((frame) => frame.offset + frame.bytes <= validEnd);
      const lost = frames.filter((frame) => frame.offset >= validEnd);
      assert.equal(kept.length + lost.length, frames.length);
      const head = kept.length === 0 ? 0 : lastSequence(kept[kept.length - 1]!);
      const where = `cut ${cut.name} at frame offset ${validEnd} (seed ${SEED})`;

      await withLedger(dir, async (ledger) => {
        assert.equal(ledger.stats().headSequence, head, `${where}: head after start`);
        assert.equal(ledger.digest(), digestAt(built, head), `${where}: the state of the log up to the last whole frame`);
        assert.equal(segmentSize(dir), validEnd, `${where}: the torn bytes are cut off`);
        for (const frame of frames) {
          for (const id of built.idsByFrame.get(frame.firstSequence) ?? []) {
            const view = await ledger.transfer(id);
            if (frame.offset < validEnd) assert.ok(view !== undefined, `${where}: ${id} (kept frame at ${frame.offset}) is missing`);
            else assert.equal(view, undefined, `${where}: ${id} (cut frame at ${frame.offset}) survived`);
          }
        }
        // New work appends cleanly after the cut.
        await ledger.openAccount({ accountId: 'late', currencyCode: 'USD', owner: 'o' });
        const results = await submit(ledger, [deposit('after-cut', 'late', 7n)]);
        assert.equal(results.codes[0], 0, where);
      });
      const verified = runWalletd(['verify', '--data-dir', dir]);
      assert.equal(verified.status, 0, `${where}: verify: ${verified.stdout}${verified.stderr}`);
      assert.match(verified.stdout, /^ok: /);
      // A full replay agrees with the restarted ledger (its final snapshot).
      await withLedger(dir, async (ledger) => {
        assert.equal(stateDigest(recover(dir, { fromGenesis: true }).state), ledger.digest(), where);
        assert.equal(ledger.account('late')?.balance, 7n, where);
      });
    });
  }
});

describe('corruption', () => {
  /** Flips one byte inside a frame that has frames after it; returns the frame. */
  function flipInFrame(frames: FrameLocation[], prng: Prng, pick: (candidates: FrameLocation[]) => FrameLocation[], region: 'header' | 'body' | 'any'): { frame: FrameLocation; at: number } {
    const candidates = pick(frames.slice(0, -1));
    assert.ok(candidates.length > 0, 'no frame to damage');
    const frame = candidates[prng.below(candidates.length)]!;
    const span = region === 'header' ? [0, FRAME_HEADER_BYTES] : region === 'body' ? [FRAME_HEADER_BYTES, frame.bytes] : [0, frame.bytes];
    const at = frame.offset + span[0]! + prng.below(span[1]! - span[0]!);
    const bytes = readFileSync(frame.path);
    bytes[at] = bytes[at]! ^ (1 << prng.below(8));
    writeFileSync(frame.path, bytes);
    return { frame, at };
  }

  function assertVerifyNames(dir: string, frame: FrameLocation, where: string): void {
    const verified = runWalletd(['verify', '--data-dir', dir]);
    assert.notEqual(verified.status, 0, `${where}: verify passed: ${verified.stdout}`);
    assert.ok(verified.stdout.includes(`${frame.path} at byte offset ${frame.offset} `), `${where}: verify output does not name the file and offset: ${verified.stdout}${verified.stderr}`);
  }

  async function assertStartRefused(dir: string, frame: FrameLocation, where: string): Promise<void> {
    await assert.rejects(openLedger({ dataDir: dir, fsync: false }), (error: unknown) => {
      assert.ok(error instanceof CorruptLogError, `${where}: ${String(error)}`);
      assert.equal(error.path, frame.path, where);
      assert.equal(error.offset, frame.offset, where);
      assert.ok(error.message.includes(frame.path) && error.message.includes(`byte offset ${frame.offset}`), `${where}: ${error.message}`);
      return true;
    });
    // Refusing to start changed nothing on disk, and released the directory lock.
    assert.equal(readdirSync(dir).includes('LOCK'), false, `${where}: lock left behind`);
  }

  const prng = new Prng(SEED + 2);
  for (const region of ['header', 'body', 'header', 'body', 'any', 'any'] as const) {
    test(`one flipped byte (${region}) mid-log, no snapshots: verify names file and offset, start refuses (seed ${SEED})`, async () => {
      const dir = copyOf(built, `flip-${region}-${prng.below(1 << 30)}`, { snapshots: 'none' });
      const frames = logFrames(dir);
      const sizeBefore = segmentSize(dir);
      const { frame, at } = flipInFrame(frames, prng, (candidates) => candidates, region);
      const where = `byte ${at} in the frame at ${frame.offset} (seed ${SEED})`;
      assertVerifyNames(dir, frame, where);
      await assertStartRefused(dir, frame, where);
      assert.equal(statSync(frame.path).size, sizeBefore, `${where}: a refused start must not truncate`);
    });
  }

  test(`a flipped byte after the newest snapshot's position: start refuses; before it: start works, verify still finds it (seed ${SEED})`, async () => {
    const after = copyOf(built, 'flip-after-snapshot', { snapshots: 'older' });
    const position = built.midSnapshot.logOffset;
    const damaged = flipInFrame(logFrames(after), prng, (candidates) => candidates.filter((frame) => frame.offset >= position), 'any');
    const where = `byte ${damaged.at} in the frame at ${damaged.frame.offset}, snapshot position ${position}`;
    await assertStartRefused(after, damaged.frame, where);
    assertVerifyNames(after, damaged.frame, where);

    const before = copyOf(built, 'flip-before-snapshot', { snapshots: 'older' });
    const early = flipInFrame(logFrames(before), prng, (candidates) => candidates.filter((frame) => frame.offset + frame.bytes <= position), 'any');
    const whereEarly = `byte ${early.at} in the frame at ${early.frame.offset}, snapshot position ${position}`;
    const ended: LogScrubStatus[] = [];
    await withLedger(
      before,
      async (ledger) => {
        assert.equal(ledger.digest(), built.digest, `${whereEarly}: start from the snapshot reads only the log after it`);
        // ...and the log scrub, after start, finds what start did not read.
        const scrub = await scrubEnded(ledger);
        assert.equal(scrub.state, 'failed', whereEarly);
        assert.equal(scrub.failure?.path, early.frame.path, whereEarly);
        assert.equal(scrub.failure?.offset, early.frame.offset, whereEarly);
        assert.ok(scrub.failure?.message.includes(`${early.frame.path} at byte offset ${early.frame.offset} `), `${whereEarly}: ${scrub.failure?.message}`);
      },
      { observer: { onLogScrubEnd: (status) => ended.push(status) } },
    );
    assert.deepEqual(ended.map((status) => status.state), ['failed'], `${whereEarly}: the observer hears the end once`);
    assertVerifyNames(before, early.frame, whereEarly);
  });

  test('walletd serve starts on damage before the snapshot, and its log scrub reports it: error line, metric, still ready', async () => {
    const dir = copyOf(built, 'flip-serve-scrub', { snapshots: 'older' });
    const position = built.midSnapshot.logOffset;
    const { frame } = flipInFrame(logFrames(dir), prng, (candidates) => candidates.filter((candidate) => candidate.offset + candidate.bytes <= position), 'body');
    const server = await WalletServer.start({ dataDir: dir });
    try {
      const deadline = Date.now() + 20_000;
      let line: Record<string, unknown> | undefined;
      while ((line = server.logs().find((entry) => String(entry['msg']).startsWith('log scrub failed'))) === undefined && Date.now() < deadline) await sleep(20);
      assert.ok(line !== undefined, `no scrub failure logged: ${server.logLines.join('\n')}`);
      assert.equal(line['level'], 50, 'logged at error level');
      assert.equal(line['path'], frame.path);
      assert.equal(line['offset'], frame.offset);
      assert.ok(server.logs().some((entry) => entry['msg'] === 'log scrub started' && entry['fromSequence'] === 1), 'the start of the scrub is logged, from the first frame');
      const metrics = await server.call('GET', '/metrics');
      assert.match(metrics.text, /^walletd_log_scrub_failed 1$/m);
      assert.equal((await server.call('GET', '/readyz')).status, 200, 'the service goes on: the state came from a checked snapshot');
    } finally {
      await server.stop();
    }
  });

  test('walletd serve refuses to start on a corrupt log and names file and offset', async () => {
    const dir = copyOf(built, 'flip-serve', { snapshots: 'none' });
    const { frame } = flipInFrame(logFrames(dir), prng, (candidates) => candidates.slice(5), 'body');
    const child = spawn(process.execPath, [WALLETD_BIN, 'serve', '--port', '0', '--protocol-port', '0', '--data-dir', dir], {
      env: { ...process.env, WALLET_ADMIN_TOKEN: 'admin-damage-test-token-0123456789' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    clearTimeout(timer);
    assert.ok(code !== 0 && code !== null, `serve exited with ${String(code)}: ${output}`);
    assert.ok(output.includes(frame.path), `serve output does not name the file: ${output}`);
    assert.ok(output.includes(`byte offset ${frame.offset}`), `serve output does not name the offset ${frame.offset}: ${output}`);
  });
});

describe('snapshots', () => {
  function damage(path: string, how: 'flip' | 'truncate'): void {
    const bytes = readFileSync(path);
    if (how === 'truncate') writeFileSync(path, bytes.subarray(0, bytes.length >>> 1));
    else {
      bytes[bytes.length >>> 1] = bytes[bytes.length >>> 1]! ^ 0x10;
      writeFileSync(path, bytes);
    }
  }

  async function openCollectingWarnings(dir: string): Promise<{ digest: string; snapshotSequence: number; warnings: string[] }> {
    const warnings: string[] = [];
    const listener = (warning: Error): void => void warnings.push(warning.message);
    process.on('warning', listener);
    try {
      return await withLedger(dir, async (ledger) => {
        await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
        return { digest: ledger.digest(), snapshotSequence: ledger.stats().lastSnapshotSequence, warnings };
      });
    } finally {
      process.off('warning', listener);
    }
  }

  for (const how of ['flip', 'truncate'] as const) {
    test(`a damaged (${how}) newest snapshot is skipped for the older one, with the same digest`, async () => {
      const dir = copyOf(built, `snap-${how}`, { snapshots: 'all' });
      const [newest, older] = listSnapshots(dataPaths(dir).snapshotDir);
      damage(newest!.path, how);
      const opened = await openCollectingWarnings(dir);
      assert.equal(opened.digest, built.digest);
      assert.equal(opened.snapshotSequence, older!.sequence, 'started from the older snapshot');
      assert.ok(opened.warnings.some((message) => message.includes(newest!.path)), `no warning names the skipped snapshot: ${opened.warnings.join('; ')}`);
    });
  }

  test('both snapshots damaged: a replay from the first frame, with the same digest; verify reports the damage', async () => {
    const dir = copyOf(built, 'snap-both', { snapshots: 'all' });
    const snapshots = listSnapshots(dataPaths(dir).snapshotDir);
    for (const snapshot of snapshots) damage(snapshot.path, 'flip');
    const verified = runWalletd(['verify', '--data-dir', dir]);
    assert.notEqual(verified.status, 0, verified.stdout);
    for (const snapshot of snapshots) assert.ok(verified.stdout.includes(`bad snapshot ${snapshot.path}`), verified.stdout);
    const opened = await openCollectingWarnings(dir);
    assert.equal(opened.digest, built.digest);
    assert.equal(opened.snapshotSequence, 0, 'no snapshot used');
    // close() wrote a good snapshot over the damaged newest one; verify still reports the older.
    const again = runWalletd(['verify', '--data-dir', dir]);
    assert.ok(!again.stdout.includes(`bad snapshot ${snapshots[0]!.path}`), again.stdout);
    assert.ok(again.stdout.includes(`bad snapshot ${snapshots[1]!.path}`), again.stdout);
  });

  test('snapshots with empty sections (no accounts yet; every owner equal to its account id) load, and verify passes', async () => {
    const dir = tempDir('walletd-empty-sections-');
    try {
      await withLedger(dir.path, async (ledger) => {
        await ledger.snapshot(); // sequence 0: no accounts, no ids, no transactions
        await ledger.openAccount({ accountId: 'alice', currencyCode: 'USD', owner: 'alice' });
      }); // close(): a snapshot at sequence 1 whose owner table is empty
      const snapshots = listSnapshots(dataPaths(dir.path).snapshotDir);
      assert.deepEqual(snapshots.map((snapshot) => snapshot.sequence), [1, 0]);
      for (const snapshot of snapshots) assert.equal(loadSnapshot(snapshot.path).meta.sequence, snapshot.sequence);
      const verified = runWalletd(['verify', '--data-dir', dir.path]);
      assert.equal(verified.status, 0, verified.stdout);
      assert.match(verified.stdout, /2 snapshot\(s\) match/);
    } finally {
      dir.remove();
    }
  });

  test('a log shorter than the newest snapshot position is corruption, not a torn tail', async () => {
    const dir = copyOf(built, 'short-log', { snapshots: 'all' });
    const frames = logFrames(dir);
    const cutAt = frames[frames.length - 3]!.offset + 10;
    truncateSync(frames[0]!.path, cutAt);
    await assert.rejects(openLedger({ dataDir: dir, fsync: false }), (error: unknown) => {
      assert.ok(error instanceof CorruptLogError, String(error));
      assert.equal(error.path, frames[0]!.path);
      assert.ok(error.message.includes(frames[0]!.path), error.message);
      return true;
    });
    assert.equal(segmentSize(dir), cutAt, 'nothing written to the log');
  });
});
