/**
 * Micro-benchmark of the CRC-32 calls on the engine thread, at the sizes walletd checksums per
 * batch of 8,190 transfers: a protocol request body (208 bytes a record) and a log frame body
 * (about 75 bytes an event with its offset), and a log frame header (76 bytes). zlib.crc32 and
 * src/stdx/crc32.ts (native from 1 KiB) are timed alternately round by round, so a noisy host
 * slows both alike; medians and their ratio are printed.
 *
 * Run: node dist/bench/crc-bench.js [--rounds N]
 */
import { parseArgs } from 'node:util';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { assert } from '../src/stdx/assert.js';
import { crc32, crc32Native } from '../src/stdx/crc32.js';
import { median } from './records.js';
import { integerOption, withUsage } from './usage.js';

const USAGE = `Usage: node dist/bench/crc-bench.js [options]

  --rounds N   timed rounds per size, each timing both implementations (default 60)`;

const rounds = withUsage(USAGE, () => {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '60' } } });
  return integerOption(values, 'rounds', 1, 100_000);
});

const RECORDS = 8190;
const sizes = [
  { name: 'protocol body, 8,190 records', bytes: RECORDS * 208, perTransfer: RECORDS },
  { name: 'log body, 8,190 events', bytes: RECORDS * 75, perTransfer: RECORDS },
  { name: 'log frame header', bytes: 76, perTransfer: 0 },
];
const data = Buffer.alloc(RECORDS * 208);
for (let index = 0; index < data.length; index++) data[index] = (index * 2654435761) >>> 24;

/** Nanoseconds a call, over enough calls to last about a millisecond. */
function timeCalls(checksum: (bytes: Uint8Array) => number, bytes: Uint8Array): number {
  const calls = Math.max(1, Math.round(2_000_000 / (bytes.length + 200)));
  let sink = 0;
  const started = process.hrtime.bigint();
  for (let call = 0; call < calls; call++) sink ^= checksum(bytes);
  const elapsed = Number(process.hrtime.bigint() - started);
  if (sink === 0.5) console.log(sink); // keeps the calls from being optimized away
  return elapsed / calls;
}

console.log(`crc bench: ${rounds} rounds; native CRC-32 ${crc32Native ? 'loaded' : 'NOT loaded (zlib only)'}`);
for (const size of sizes) {
  const bytes = data.subarray(0, size.bytes);
  assert(crc32(bytes) === zlibCrc32(bytes), 'the two CRC-32 implementations disagree');
  const zlibNs: number[] = [];
  const ownNs: number[] = [];
  for (let round = -3; round < rounds; round++) {
    const first = round % 2 === 0;
    const a = timeCalls(first ? zlibCrc32 : (b) => crc32(b), bytes);
    const b = timeCalls(first ? (b) => crc32(b) : zlibCrc32, bytes);
    if (round < 0) continue;
    zlibNs.push(first ? a : b);
    ownNs.push(first ? b : a);
  }
  const zlibMedian = median(zlibNs);
  const ownMedian = median(ownNs);
  const per = (ns: number): string => (size.perTransfer === 0 ? '' : ` (${(ns / size.perTransfer).toFixed(1)} ns a transfer)`);
  console.log(`${size.name.padEnd(30)} zlib ${zlibMedian.toFixed(0).padStart(8)} ns${per(zlibMedian)}  walletd ${ownMedian.toFixed(0).padStart(8)} ns${per(ownMedian)}  ratio ${(ownMedian / zlibMedian).toFixed(2)}`);
}
