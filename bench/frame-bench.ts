/**
 * Micro-benchmark of log frame encoding, the part of each group commit the engine thread does
 * after deciding: copying the events in, the chain hash and the CRCs. Frame version 1 (SHA-256
 * chain hash) and version 2 (BLAKE2b) are timed on the same frames, alternating round by round,
 * so a noisy host slows both alike; the medians and their ratio are printed.
 *
 * The frames hold real TransferRecorded events: a batch of transfers between existing accounts
 * is decided first, as the engine does, with transaction ids shaped as the engine bench's.
 *
 * Run: node dist/bench/frame-bench.js [--events N] [--rounds N]
 */
import { parseArgs } from 'node:util';
import { DecideScratch, executeTransferBatch, Outcome, recordView } from '../src/core/decide.js';
import { EventBuffer } from '../src/core/event-buffer.js';
import { LedgerState } from '../src/core/ledger-state.js';
import { TxnTable } from '../src/core/txn-table.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES } from '../src/core/transfer-record.js';
import { encodeUnsealedFrame, FRAME_VERSION_BLAKE2B, FRAME_VERSION_SHA256, GENESIS_CHAIN_HASH, sealFrame } from '../src/log/frame.js';
import { Prng } from '../src/stdx/prng.js';
import { benchAccountId, fundingDeposits, median, uniformTransfers, USD } from './records.js';
import { integerOption, withUsage } from './usage.js';

const USAGE = `Usage: node dist/bench/frame-bench.js [options]

  --events N   transfer events a frame, 1..${BATCH_RECORDS_MAX} (default ${BATCH_RECORDS_MAX})
  --rounds N   timed rounds, each encoding one frame per version (default 40)`;

const { eventCount, rounds } = withUsage(USAGE, () => {
  const { values } = parseArgs({
    options: { events: { type: 'string', default: String(BATCH_RECORDS_MAX) }, rounds: { type: 'string', default: '40' } },
  });
  return { eventCount: integerOption(values, 'events', 1, BATCH_RECORDS_MAX), rounds: integerOption(values, 'rounds', 1, 100_000) };
});

const ACCOUNTS = 10_000;

/** An event buffer holding one decided batch of `count` transfers. */
function decidedEvents(count: number): EventBuffer {
  const state = new LedgerState(undefined, undefined, new TxnTable(2 * ACCOUNTS + count));
  for (let index = 0; index < ACCOUNTS; index++) state.applyAccountOpened(state.headSequence + 1, benchAccountId(index), USD, benchAccountId(index));
  const events = new EventBuffer(64 << 20, 1 << 20);
  const scratch = new DecideScratch();
  const outcome = new Outcome();
  const decide = (bytes: Buffer, records: number): void => {
    events.reset();
    executeTransferBatch(state, recordView(bytes), records, events, scratch, outcome, new Uint8Array(records), new Float64Array(records));
  };
  const funding = fundingDeposits(ACCOUNTS, 1_000_000n, (index) => `fund-${index}`);
  for (let start = 0; start < ACCOUNTS; start += BATCH_RECORDS_MAX) {
    const records = Math.min(BATCH_RECORDS_MAX, ACCOUNTS - start);
    decide(funding.subarray(start * RECORD_BYTES, (start + records) * RECORD_BYTES), records);
  }
  const transfers = uniformTransfers(new Prng(7), count, ACCOUNTS, (index) => `uniform-${1_000_000 + index}`);
  decide(transfers, count);
  return events;
}

const events = decidedEvents(eventCount);
const frameBuffer = Buffer.allocUnsafe(events.length + 4 * events.count + 1024);
const allocate = (bytes: number): Buffer => frameBuffer.subarray(0, bytes);
const versions = [FRAME_VERSION_SHA256, FRAME_VERSION_BLAKE2B] as const;
const microseconds = new Map<number, number[]>(versions.map((version) => [version, []]));
let chain: Buffer = GENESIS_CHAIN_HASH;
console.log(
  `frame bench: ${events.count.toLocaleString('en-US')} events of ${(events.length / events.count).toFixed(1)} bytes on average (${(events.length / 1024).toFixed(0)} KiB a frame), ${rounds} rounds`,
);
for (let round = -3; round < rounds; round++) {
  // Alternate which version goes first, so neither always runs right after the other's work.
  const order = round % 2 === 0 ? versions : ([...versions].reverse() as typeof versions[number][]);
  for (const version of order) {
    const started = performance.now();
    const frame = encodeUnsealedFrame(events.bytes, events.length, events.offsets, events.count, 1, 0, version, allocate);
    const sealed = sealFrame(frame, chain);
    const elapsed = performance.now() - started;
    chain = sealed;
    if (round >= 0) microseconds.get(version)!.push(elapsed * 1000);
  }
}
const medians = versions.map((version) => median(microseconds.get(version)!));
for (const [index, version] of versions.entries()) {
  const name = version === FRAME_VERSION_SHA256 ? 'version 1, SHA-256 ' : 'version 2, BLAKE2b ';
  const perFrame = medians[index]!;
  console.log(`${name} median ${perFrame.toFixed(0).padStart(6)} µs a frame = ${((perFrame * 1000) / events.count).toFixed(1).padStart(6)} ns a transfer`);
}
console.log(`version 2 / version 1 time: ${(medians[1]! / medians[0]!).toFixed(2)}`);
