/**
 * How long the engine's thread stalls when the transaction-id table grows: inserts N random ids
 * (find + insertAfterMiss, as the decider does) into a TxnTable that starts small, timing every
 * insert, and every window of 8,190 inserts (one batch) and 131,072 (the most one drain decides).
 * Prints the longest of each, the slowest single inserts, and the total.
 * Run: node dist/bench/txn-growth.js [ids (12000000)] [module path (default: this tree's TxnTable)]
 * (a module path lets the same run time another version, e.g. one compiled from git show HEAD~1:...).
 */
import { Prng } from '../src/stdx/prng.js';

type Table = {
  find(k0: number, k1: number, k2: number): number;
  insertAfterMiss(miss: number, k0: number, k1: number, k2: number, content0: number, content1: number, sequence: number, code: number): void;
  count: number;
  memoryBytes(): number;
  growing?: boolean;
};

const ids = Number(process.argv[2] ?? 12_000_000);
const modulePath = process.argv[3] ?? '../src/core/txn-table.js';
const { TxnTable } = (await import(modulePath)) as { TxnTable: new (expected?: number) => Table };
const WINDOWS = [8190, 131_072];

const prng = new Prng(7);
const keys = new Uint32Array(ids * 3);
for (let i = 0; i < keys.length; i++) keys[i] = prng.nextU32();

const table = new TxnTable();
const slowest: Array<{ ms: number; at: number }> = [];
const windowStart = WINDOWS.map(() => 0);
const windowMax = WINDOWS.map(() => ({ ms: 0, at: 0 }));
/** Every drain-sized window, to list the slow ones. */
const drains: Array<{ ms: number; at: number }> = [];
let over100us = 0;
let over1ms = 0;
const started = performance.now();
for (let i = 0; i < ids; i++) {
  const k0 = keys[i * 3]!;
  const k1 = keys[i * 3 + 1]!;
  const k2 = keys[i * 3 + 2]!;
  const t0 = performance.now();
  for (let w = 0; w < WINDOWS.length; w++) {
    if (i % WINDOWS[w]! !== 0) continue;
    if (i > 0 && t0 - windowStart[w]! > windowMax[w]!.ms) windowMax[w] = { ms: t0 - windowStart[w]!, at: i };
    if (i > 0 && w === WINDOWS.length - 1) drains.push({ ms: t0 - windowStart[w]!, at: i });
    windowStart[w] = t0;
  }
  const miss = table.find(k0, k1, k2);
  if (miss >= 0) throw new Error(`duplicate random key at ${i}`);
  table.insertAfterMiss(miss, k0, k1, k2, k1 ^ k2, k0, i + 1, 0);
  const ms = performance.now() - t0;
  if (ms > 0.1) over100us++;
  if (ms > 1) over1ms++;
  if (slowest.length < 5 || ms > slowest[slowest.length - 1]!.ms) {
    slowest.push({ ms, at: i + 1 });
    slowest.sort((a, b) => b.ms - a.ms);
    if (slowest.length > 5) slowest.pop();
  }
}
const totalMs = performance.now() - started;
const fmt = (ms: number): string => (ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(1)} ms`);
const growing = table.growing === true ? ', still copying its last growth' : '';
console.log(`${ids} inserts into ${modulePath}: total ${(totalMs / 1000).toFixed(2)} s (per-insert timing included), ${table.memoryBytes() >> 20} MiB${growing}`);
console.log(`longest single insert ${fmt(slowest[0]!.ms)} at id ${slowest[0]!.at}; inserts over 100 µs: ${over100us}, over 1 ms: ${over1ms}`);
console.log(`slowest: ${slowest.map((entry) => `${fmt(entry.ms)} @${entry.at}`).join(', ')}`);
for (let w = 0; w < WINDOWS.length; w++) {
  const average = totalMs / Math.floor(ids / WINDOWS[w]!);
  console.log(`longest window of ${WINDOWS[w]} inserts: ${fmt(windowMax[w]!.ms)} ending at id ${windowMax[w]!.at} (average ${fmt(average)})`);
}
const drainAverage = drains.reduce((sum, drain) => sum + drain.ms, 0) / drains.length;
const slowDrains = drains.filter((drain) => drain.ms > 1.5 * drainAverage);
console.log(`windows of ${WINDOWS[WINDOWS.length - 1]} over 1.5 × their average: ${slowDrains.map((drain) => `${fmt(drain.ms)} @${drain.at}`).join(', ') || 'none'}`);
