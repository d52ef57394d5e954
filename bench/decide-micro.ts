/**
 * Micro-benchmark of the decider alone (no I/O): how many records per second `executeTransfer`
 * decides and encodes on one core. Run: node dist/bench/decide-micro.js [accounts] [records] [batch|one]
 */
import { DecideScratch, executeTransfer, executeTransferBatch, Outcome, PREPARED_WORDS, prepareRecords, recordView } from '../src/core/decide.js';
import { IdTableReader } from '../src/core/id-table.js';
import { EventBuffer } from '../src/core/event-buffer.js';
import { LedgerState } from '../src/core/ledger-state.js';
import { TxnTable } from '../src/core/txn-table.js';
import { RECORD_BYTES } from '../src/core/transfer-record.js';
import { Prng } from '../src/stdx/prng.js';
import { benchAccountId, fundingDeposits, uniformTransfers, USD } from './records.js';

const accounts = Number(process.argv[2] ?? 100_000);
const records = Number(process.argv[3] ?? 1_000_000);
const state = new LedgerState(undefined, undefined, new TxnTable(accounts + records));
for (let index = 0; index < accounts; index++) state.applyAccountOpened(state.headSequence + 1, benchAccountId(index), USD, benchAccountId(index));
const events = new EventBuffer(64 << 20, 1 << 20);
const scratch = new DecideScratch();
const outcome = new Outcome();
const fundView = recordView(fundingDeposits(accounts, 1_000_000n, (index) => `f${index}`));
for (let index = 0; index < accounts; index++) executeTransfer(state, fundView, index * RECORD_BYTES, events, scratch, outcome);
const bytes = uniformTransfers(new Prng(1), records, accounts, (index) => `t-${index}`);
const view = recordView(bytes);
/**
 * `one`: executeTransfer per record; `batch` (default): executeTransferBatch per 8,190 records, as
 * the engine runs without its prepare worker; `prepared`: prepareRecords (what the prepare worker
 * does) and then executeTransferBatch on its result, the two timed apart: the engine thread's
 * share is the second.
 */
const mode = process.argv[4] ?? 'batch';
const BATCH = 8190;
const codes = new Uint8Array(BATCH);
const sequences = new Float64Array(BATCH);
const started = performance.now();
const cpuStarted = process.cpuUsage();
let ok = 0;
if (mode === 'one') {
  for (let index = 0; index < records; index++) {
    if (events.count > 100_000) events.reset();
    executeTransfer(state, view, index * RECORD_BYTES, events, scratch, outcome);
    if (outcome.code === 0) ok++;
  }
} else if (mode === 'prepared') {
  const prepared = new Int32Array(BATCH * PREPARED_WORDS);
  const reader = new IdTableReader(state.accounts.sharedBuffers());
  let prepareMs = 0;
  for (let start = 0; start < records; start += BATCH) {
    events.reset();
    const count = Math.min(BATCH, records - start);
    const batch = recordView(bytes.subarray(start * RECORD_BYTES, (start + count) * RECORD_BYTES));
    const t = performance.now();
    prepareRecords(batch, count, prepared, scratch, reader);
    prepareMs += performance.now() - t;
    executeTransferBatch(state, batch, count, events, scratch, outcome, codes, sequences, prepared);
    for (let index = 0; index < count; index++) if (codes[index] === 0) ok++;
  }
  const totalMs = performance.now() - started;
  console.log(`prepare ${Math.round(records / (prepareMs / 1000)).toLocaleString('en-US')} records/s, decide with prepared ${Math.round(records / ((totalMs - prepareMs) / 1000)).toLocaleString('en-US')} records/s`);
} else {
  for (let start = 0; start < records; start += BATCH) {
    events.reset();
    const count = Math.min(BATCH, records - start);
    const batch = recordView(bytes.subarray(start * RECORD_BYTES, (start + count) * RECORD_BYTES));
    executeTransferBatch(state, batch, count, events, scratch, outcome, codes, sequences);
    for (let index = 0; index < count; index++) if (codes[index] === 0) ok++;
  }
}
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStarted);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(`decide (${mode}): ${Math.round(records / seconds).toLocaleString('en-US')} records/s wall, ${Math.round(records / cpuSeconds).toLocaleString('en-US')} records per CPU-second (${ok} ok), ${accounts} accounts`);
