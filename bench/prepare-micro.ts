/**
 * Micro-benchmark of the prepare worker's work (prepareRecords: validation, fingerprints, id
 * hashes, account lookups) on one batch of 8,190 transfers, repeated: the median and the fastest
 * round in ns a record. With few accounts the table stays in cache and the figure is compute
 * alone; with many, each record also waits on its accounts' cache misses.
 *
 * Run: node dist/bench/prepare-micro.js [--accounts N] [--rounds N]
 */
import { parseArgs } from 'node:util';
import { currencyByCode } from '../src/core/currency.js';
import { DecideScratch, PREPARED_WORDS, prepareRecords, recordView } from '../src/core/decide.js';
import { IdTable, IdTableReader } from '../src/core/id-table.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES, writeTransferRecord } from '../src/core/transfer-record.js';
import { integerOption, withUsage } from './usage.js';

const USAGE = `Usage: node dist/bench/prepare-micro.js [options]

  --accounts N   accounts in the id table, 2..50000000 (default 10000: the table stays in cache)
  --rounds N     timed rounds, one batch of ${BATCH_RECORDS_MAX} each (default 300)`;

const { accounts, rounds } = withUsage(USAGE, () => {
  const { values } = parseArgs({ options: { accounts: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '300' } } });
  return { accounts: integerOption(values, 'accounts', 2, 50_000_000), rounds: integerOption(values, 'rounds', 1, 1_000_000) };
});

const USD = currencyByCode('USD')!.numeric;
const table = new IdTable();
for (let index = 0; index < accounts; index++) table.insertString(`acct-${index}`);
const reader = new IdTableReader(table.sharedBuffers());
const count = BATCH_RECORDS_MAX;
const bytes = Buffer.alloc(count * RECORD_BYTES);
for (let index = 0; index < count; index++) {
  const from = (index * 7919) % accounts;
  const to = (from + 13) % accounts;
  writeTransferRecord(bytes, index, { kind: 'transfer', transactionId: `uniform-${1_000_000 + index}`, fromAccount: `acct-${from}`, toAccount: `acct-${to}`, amountMinor: 1n, currencyNumeric: USD });
}
const records = recordView(bytes);
const prepared = new Int32Array(count * PREPARED_WORDS);
const scratch = new DecideScratch();
const nsPerRecord: number[] = [];
for (let round = 0; round < rounds; round++) {
  const started = process.hrtime.bigint();
  prepareRecords(records, count, prepared, scratch, reader);
  nsPerRecord.push(Number(process.hrtime.bigint() - started) / count);
}
nsPerRecord.sort((a, b) => a - b);
console.log(`prepareRecords, ${accounts.toLocaleString('en-US')} accounts, ${rounds} rounds of ${count.toLocaleString('en-US')}: median ${nsPerRecord[nsPerRecord.length >> 1]!.toFixed(0)} ns a record, fastest ${nsPerRecord[0]!.toFixed(0)}`);
