// Log frame versions (src/log/frame.ts, docs/LOG-FORMAT.md): version 2 frames chain with the
// first 32 bytes of BLAKE2b-512, version 1 frames with SHA-256. Both hashes are computed here
// independently, from the byte table, not through the code under test.
// - A ledger writes the version of the chain hash it was given, or with 'auto' of the one
//   fasterChainHash timed faster on this CPU, and says which in its stats.
// - A log whose frames were all written as version 1 (rewritten by hand here, as walletd wrote
//   them before 467707d) opens, replays to the same state and is appended to in version 2; the
//   mixed log replays, verifies and scrubs across the boundary.
// - A frame whose header checks but whose version this walletd does not read (a newer
//   writer's) is refused by file and offset, at the tail too, and after a damaged frame that
//   would otherwise be a torn tail: never cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { openLedger } from '../src/engine/ledger.js';
import { dataPaths } from '../src/engine/recovery.js';
import { fasterByTiming, fasterChainHash, FRAME_HEADER_BYTES, type ChainHashName } from '../src/log/frame.js';
import { CorruptLogError } from '../src/log/scan.js';
import { deposit, logFrames, runWalletd, scrubEnded, submit, tempDir, transfer, withLedger } from './support/ledger.js';

const ACCOUNTS = ['v0', 'v1', 'v2'];

/** Frames of awaited batches: openings, deposits, then `batches` batches of transfers. */
async function writeWork(dir: string, prefix: string, batches: number, chainHash: 'auto' | ChainHashName = 'blake2b'): Promise<string> {
  return withLedger(
    dir,
    async (ledger) => {
      for (const accountId of ACCOUNTS) {
        if (!ledger.hasAccount(accountId)) await ledger.openAccount({ accountId, currencyCode: 'USD', owner: 'o' });
      }
      await submit(ledger, ACCOUNTS.map((accountId) => deposit(`${prefix}-fund-${accountId}`, accountId, 1_000n)));
      for (let batch = 0; batch < batches; batch++) {
        await submit(ledger, [transfer(`${prefix}-${batch}-a`, 'v0', 'v1', 7n), transfer(`${prefix}-${batch}-b`, 'v1', 'v2', 3n)]);
      }
      assert.equal(ledger.stats().chainHash, chainHash === 'auto' ? fasterChainHash() : chainHash);
      return ledger.digest();
    },
    { fsync: false, logScrubBytesPerSecond: 'off', chainHash },
  );
}

type FrameFacts = { version: number; path: string; offset: number };

/**
 * Checks every frame's chain hash against an independent computation by its version's
 * algorithm; with `rewriteAs1`, rewrites each frame as version 1 (version field, SHA-256 chain
 * hash, header CRC), as walletd wrote frames before version 2.
 */
function walkChain(dataDir: string, rewriteAs1 = false): FrameFacts[] {
  const facts: FrameFacts[] = [];
  let previous = Buffer.alloc(32); // as written
  let previousRewritten = Buffer.alloc(32);
  const files = new Map<string, Buffer>();
  for (const frame of logFrames(dataDir)) {
    const file = files.get(frame.path) ?? readFileSync(frame.path);
    files.set(frame.path, file);
    const header = file.subarray(frame.offset, frame.offset + FRAME_HEADER_BYTES);
    const body = file.subarray(frame.offset + FRAME_HEADER_BYTES, frame.offset + frame.bytes);
    const version = header.readUInt16LE(4);
    const expected =
      version === 1
        ? createHash('sha256').update(previous).update(header.subarray(0, 32)).update(body).digest()
        : createHash('blake2b512').update(previous).update(header.subarray(0, 32)).update(body).digest().subarray(0, 32);
    assert.ok(version === 1 || version === 2, `version ${version} at ${frame.path}:${frame.offset}`);
    assert.deepEqual(header.subarray(32, 64), expected, `chain hash of the version ${version} frame at ${frame.path}:${frame.offset}`);
    facts.push({ version, path: frame.path, offset: frame.offset });
    previous = Buffer.from(header.subarray(32, 64));
    if (rewriteAs1) {
      header.writeUInt16LE(1, 4);
      createHash('sha256').update(previousRewritten).update(header.subarray(0, 32)).update(body).digest().copy(header, 32);
      header.writeUInt32LE(crc32(header.subarray(0, 76)), 76);
      previousRewritten = Buffer.from(header.subarray(32, 64));
    }
  }
  if (rewriteAs1) for (const [path, file] of files) writeFileSync(path, file);
  return facts;
}

/** Snapshots and the scrub checkpoint carry chain hashes of the frames as first written. */
function forgetDerivedFiles(dataDir: string): void {
  const paths = dataPaths(dataDir);
  rmSync(paths.snapshotDir, { recursive: true, force: true });
  rmSync(paths.scrubCheckpointPath, { force: true });
}

test('the chain hash chosen is the one with the faster best round, whichever CPU runs the tests', () => {
  /** A clock that reports the given times, round after round, per hash. */
  const clock = (times: Record<ChainHashName, number[]>) => {
    const calls: Record<ChainHashName, number> = { sha256: 0, blake2b: 0 };
    return (name: ChainHashName): number => times[name][calls[name]++ % times[name].length]!;
  };
  assert.equal(fasterByTiming(clock({ sha256: [50], blake2b: [90] })), 'sha256', 'SHA instructions');
  assert.equal(fasterByTiming(clock({ sha256: [210], blake2b: [130] })), 'blake2b', 'no SHA instructions');
  // One slow round (the machine busy) does not decide: the best of each counts.
  assert.equal(fasterByTiming(clock({ sha256: [400, 60, 70, 380], blake2b: [90, 95, 92, 91] })), 'sha256');
  assert.equal(fasterByTiming(clock({ sha256: [100, 100, 100, 100], blake2b: [100, 100, 100, 100] })), 'sha256', 'a tie keeps version 1');
  let calls = 0;
  fasterByTiming(() => ++calls, 4);
  assert.equal(calls, 8, 'four rounds of each');
});

test('a ledger writes the version of its chain hash: given, or the faster on this CPU', async () => {
  const digests: string[] = [];
  for (const [chainHash, version] of [['sha256', 1], ['blake2b', 2], ['auto', fasterChainHash() === 'sha256' ? 1 : 2]] as const) {
    const dir = tempDir('walletd-frame-versions-');
    try {
      digests.push(await writeWork(dir.path, 'w', 3, chainHash));
      const frames = walkChain(dir.path);
      assert.ok(frames.length >= 5 && frames.every((frame) => frame.version === version), `${chainHash}: versions ${frames.map((frame) => frame.version).join(',')}`);
      const verified = runWalletd(['verify', '--data-dir', dir.path]);
      assert.equal(verified.status, 0, `${chainHash}: ${verified.stdout}${verified.stderr}`);
    } finally {
      dir.remove();
    }
  }
  assert.equal(new Set(digests).size, 1, 'the state does not depend on the chain hash');
  const refused = tempDir('walletd-frame-versions-');
  try {
    await assert.rejects(openLedger({ dataDir: refused.path, chainHash: 'md5' as 'auto' }), /chainHash must be auto, sha256 or blake2b/);
  } finally {
    refused.remove();
  }
});

test('a log of version 1 frames is replayed and appended to in version 2; the mixed log replays and verifies', async () => {
  const dir = tempDir('walletd-frame-versions-');
  try {
    const digestBefore = await writeWork(dir.path, 'old', 6);
    const written = walkChain(dir.path, true);
    assert.ok(written.length >= 10 && written.every((frame) => frame.version === 2), 'written with chainHash blake2b: version 2');
    forgetDerivedFiles(dir.path);
    assert.ok(walkChain(dir.path).every((frame) => frame.version === 1), 'rewritten as version 1');

    const digestAfter = await writeWork(dir.path, 'new', 6); // replays the version 1 log, then appends
    assert.notEqual(digestAfter, digestBefore);
    const mixed = walkChain(dir.path);
    const firstNew = mixed.findIndex((frame) => frame.version === 2);
    assert.ok(firstNew === written.length && mixed.slice(firstNew).every((frame) => frame.version === 2), 'version 2 frames follow the version 1 frames');

    const verified = runWalletd(['verify', '--data-dir', dir.path]);
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    // From the newest snapshot, with the scrub reading the whole mixed log behind it.
    const scrubbed = await openLedger({ dataDir: dir.path, fsync: false });
    try {
      assert.equal(scrubbed.digest(), digestAfter);
      assert.equal((await scrubEnded(scrubbed)).state, 'passed');
    } finally {
      await scrubbed.close();
    }
    // From the first frame, across the boundary.
    forgetDerivedFiles(dir.path);
    const replayed = await openLedger({ dataDir: dir.path, fsync: false, logScrubBytesPerSecond: 'off' });
    try {
      assert.equal(replayed.digest(), digestAfter);
      const last = logFrames(dir.path).at(-1)!;
      assert.equal(replayed.stats().headSequence, last.firstSequence + last.eventCount - 1);
    } finally {
      await replayed.close();
    }
  } finally {
    dir.remove();
  }
});

test('a whole frame of a version this walletd does not read is refused by file and offset, never cut as a torn tail', async () => {
  for (const where of ['last', 'middle', 'last, after a damaged frame'] as const) {
    const dir = tempDir('walletd-frame-versions-');
    try {
      await writeWork(dir.path, 'w', 4);
      forgetDerivedFiles(dir.path);
      const frames = logFrames(dir.path);
      const target = where === 'middle' ? frames[frames.length >> 1]! : frames[frames.length - 1]!;
      const file = readFileSync(target.path);
      file.writeUInt16LE(3, target.offset + 4);
      file.writeUInt32LE(crc32(file.subarray(target.offset, target.offset + 76)), target.offset + 76);
      // A body byte flipped in the frame before: damage that is torn unless a header follows.
      const damaged = where === 'last, after a damaged frame' ? frames[frames.length - 2]! : undefined;
      if (damaged !== undefined) file[damaged.offset + FRAME_HEADER_BYTES + 3]! ^= 0xff;
      writeFileSync(target.path, file);
      const size = statSync(target.path).size;
      const refused = damaged ?? target;
      const reason = damaged === undefined ? /frame format version 3/ : /body checksum mismatch/;

      await assert.rejects(
        openLedger({ dataDir: dir.path, fsync: false, logScrubBytesPerSecond: 'off' }),
        (error: unknown) => error instanceof CorruptLogError && error.message.includes(refused.path) && error.message.includes(String(refused.offset)) && reason.test(error.message),
        where,
      );
      assert.equal(statSync(target.path).size, size, `${where}: nothing was cut`);
      const verified = runWalletd(['verify', '--data-dir', dir.path]);
      assert.notEqual(verified.status, 0, where);
      assert.match(verified.stdout + verified.stderr, reason, where);
    } finally {
      dir.remove();
    }
  }
});
