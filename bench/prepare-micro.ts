/**
 * Micro-benchmark of the prepare worker's work (prepareRecords: validation, fingerprints, id
 * hashes, account lookups) on batches of 8,190 transfers between accounts drawn uniformly: the
 * median and the fastest round in ns a record. Rounds cycle through --batches distinct batches,
 * so with many accounts each record waits on its accounts' cache misses as in the engine (the
 * default 64 batches name about a million accounts); with few accounts, or --batches 1, the
 * table stays in cache and the figure is compute alone.
 *
 * Run: node dist/bench/prepare-micro.js [--accounts N] [--rounds N] [--batches N]
 */
import { parseArgs } from 'node:util';
import { DecideScratch, PREPARED_WORDS, prepareRecords, recordView } from '../src/core/decide.js';
import { IdTable, IdTableReader } from '../src/core/id-table.js';
import { BATCH_RECORDS_MAX } from '../src/core/transfer-record.js';
import { Prng } from '../src/stdx/prng.js';
import { benchAccountId, uniformTransfers } from './records.js';
import { integerOption, withUsage } from './usage.js';

const USAGE = `Usage: node dist/bench/prepare-micro.js [options]

  --accounts N   accounts in the id table, 2..50000000 (default 10000: the table stays in cache)
  --rounds N     timed rounds, one batch of ${BATCH_RECORDS_MAX} each (default 300)
  --batches N    distinct batches the rounds cycle through, 1..256 (default 64)`;

const { accounts, rounds, batches } = withUsage(USAGE, () => {
  const { values } = parseArgs({
    options: { accounts: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '300' }, batches: { type: 'string', default: '64' } },
  });
  return {
    accounts: integerOption(values, 'accounts', 2, 50_000_000),
    rounds: integerOption(values, 'rounds', 1, 1_000_000),
    batches: integerOption(values, 'batches', 1, 256),
  };
});

const table = new IdTable();
for (let index = 0; index < accounts; index++) table.insertString(benchAccountId(index));
const reader = new IdTableReader(table.sharedBuffers());
const count = BATCH_RECORDS_MAX;
const prng = new Prng(42);
const records = Array.from({ length: batches }, (_, batch) =>
  recordView(uniformTransfers(prng, count, accounts, (index) => `uniform-${1_000_000 + batch * count + index}`)),
);
const prepared = new Int32Array(count * PREPARED_WORDS);
const scratch = new DecideScratch();
const nsPerRecord: number[] = [];
for (let round = 0; round < rounds; round++) {
  const started = process.hrtime.bigint();
  prepareRecords(records[round % batches]!, count, prepared, scratch, reader);
  nsPerRecord.push(Number(process.hrtime.bigint() - started) / count);
}
nsPerRecord.sort((a, b) => a - b);
console.log(`prepareRecords, ${accounts.toLocaleString('en-US')} accounts, ${batches} distinct batches, ${rounds} rounds of ${count.toLocaleString('en-US')}: median ${nsPerRecord[nsPerRecord.length >> 1]!.toFixed(0)} ns a record, fastest ${nsPerRecord[0]!.toFixed(0)}`);
