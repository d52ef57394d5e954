/**
 * Memory benchmark (`npm run bench:memory`): fills one ledger with N accounts and M remembered
 * transaction ids (one deposit per account, then transfers until M ids) and prints the process
 * RSS (peak and final) and the bytes the state's structures take per account and per id.
 * Durable settings (fsync on) unless --no-fsync. Options: --accounts N, --ids M,
 * --snapshot-every N|off (default: the engine's interval, as `walletd serve` runs, so the peak
 * includes what snapshots hold while they are written: the records kept for the capture, the
 * journal and the worker;
 * `off` measures the state alone). Records are generated batch by batch, so the generator itself
 * holds little memory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { currencyByCode } from '../src/core/currency.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES, writeTransferRecord } from '../src/core/transfer-record.js';
import { KEPT_RECORD_BYTES } from '../src/core/records-capture.js';
import { openLedger, SNAPSHOT_EVERY_RECORDS_DEFAULT } from '../src/engine/ledger.js';
import type { Ledger } from '../src/engine/types.js';
import { Prng } from '../src/stdx/prng.js';
import { integerOption, withUsage } from './usage.js';

const USAGE = `Usage: npm run bench:memory -- [options]

  --accounts N             accounts opened, one deposit each (default 10000000)
  --ids M                  remembered transaction ids to reach (default 20000000)
  --no-fsync               skip fsync (durability off)
  --snapshot-every N|off   snapshot interval in records (default: the engine's, as serve runs)`;

const { accounts, ids, snapshotEvery, fsync } = withUsage(USAGE, () => {
  const { values } = parseArgs({
    options: {
      accounts: { type: 'string', default: '10000000' },
      ids: { type: 'string', default: '20000000' },
      'no-fsync': { type: 'boolean', default: false },
      'snapshot-every': { type: 'string', default: '' },
    },
  });
  /** 'off': never; unset: the engine's default, as `walletd serve` runs. */
  const snapshotEveryText = values['snapshot-every'];
  return {
    accounts: integerOption(values, 'accounts', 2), // a transfer needs two distinct accounts
    ids: integerOption(values, 'ids', 0),
    snapshotEvery: snapshotEveryText === 'off' ? ('off' as const) : snapshotEveryText === '' ? SNAPSHOT_EVERY_RECORDS_DEFAULT : integerOption(values, 'snapshot-every', 1),
    fsync: !values['no-fsync'],
  };
});
let snapshots = 0;
/** The most account records a snapshot kept at once (changed before their piece was written). */
let recordsKeptPeak = 0;
const USD = currencyByCode('USD')!.numeric;
const INFLIGHT = 8;
let peakRssBytes = 0;
const sampler = setInterval(() => (peakRssBytes = Math.max(peakRssBytes, process.memoryUsage().rss)), 100);

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}

async function openAccounts(ledger: Ledger): Promise<void> {
  const chunk = 50_000;
  for (let start = 0; start < accounts; start += chunk) {
    const opens: Promise<unknown>[] = [];
    for (let index = start; index < Math.min(accounts, start + chunk); index++) {
      const id = `acct-${index}`;
      opens.push(ledger.openAccount({ accountId: id, currencyCode: 'USD', owner: id }));
    }
    await Promise.all(opens);
  }
}

/**
 * Submits `total` records made by `fill`, INFLIGHT batches at a time, building each just in time
 * into its lane's one buffer (reused once the ledger has answered: a fresh 1 MB buffer per batch
 * would leave the generator's own garbage in the RSS measured, which a server does not have).
 */
async function stream(ledger: Ledger, total: number, fill: (bytes: Buffer, slot: number, ordinal: number) => void): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    const buffer = Buffer.alloc(BATCH_RECORDS_MAX * RECORD_BYTES);
    while (next < total) {
      const first = next;
      const count = Math.min(BATCH_RECORDS_MAX, total - first);
      next += count;
      const bytes = buffer.subarray(0, count * RECORD_BYTES); // writeTransferRecord clears each record it writes
      for (let slot = 0; slot < count; slot++) fill(bytes, slot, first + slot);
      await ledger.submitTransfers({ bytes, count });
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'walletd-memory-'));
  const started = performance.now();
  const interval = snapshotEvery === 'off' ? 'never' : `every ${snapshotEvery.toLocaleString('en-US')} records`;
  console.log(`memory bench: ${accounts.toLocaleString('en-US')} accounts, ${ids.toLocaleString('en-US')} remembered ids, fsync ${fsync ? 'on' : 'off'}, snapshots ${interval}`);
  const ledger = await openLedger({
    dataDir,
    fsync,
    expectedTransactions: ids,
    logScrubBytesPerSecond: 'off',
    snapshotEveryRecords: snapshotEvery === 'off' ? Number.MAX_SAFE_INTEGER : snapshotEvery,
    observer: {
      onSnapshot: (info) => {
        snapshots++;
        recordsKeptPeak = Math.max(recordsKeptPeak, info.recordsKeptPeak);
      },
    },
  });
  try {
    const baseline = process.memoryUsage().rss;
    await openAccounts(ledger);
    console.log(`accounts opened (${((performance.now() - started) / 1000).toFixed(0)} s), rss ${mb(process.memoryUsage().rss)}`);
    await stream(ledger, accounts, (bytes, slot, ordinal) =>
      writeTransferRecord(bytes, slot, { kind: 'deposit', transactionId: `d-${ordinal}`, fromAccount: '', toAccount: `acct-${ordinal}`, amountMinor: 1_000_000n, currencyNumeric: USD }),
    );
    const prng = new Prng(7);
    await stream(ledger, Math.max(0, ids - accounts), (bytes, slot, ordinal) => {
      const from = prng.below(accounts);
      const to = (from + 1 + prng.below(accounts - 1)) % accounts;
      writeTransferRecord(bytes, slot, { kind: 'transfer', transactionId: `t-${ordinal}`, fromAccount: `acct-${from}`, toAccount: `acct-${to}`, amountMinor: 1n, currencyNumeric: USD });
    });
    global.gc?.();
    const stats = ledger.stats();
    const usage = process.memoryUsage();
    console.log(`filled in ${((performance.now() - started) / 1000).toFixed(0)} s: ${stats.accounts.toLocaleString('en-US')} accounts, ${stats.transactions.toLocaleString('en-US')} ids, ${snapshots} snapshots written meanwhile (at most ${recordsKeptPeak.toLocaleString('en-US')} account records kept at once by one, ${mb(recordsKeptPeak * KEPT_RECORD_BYTES)})`);
    console.log(`rss now ${mb(usage.rss)}, peak ${mb(Math.max(peakRssBytes, usage.rss))} (process at start ${mb(baseline)}); JS heap ${mb(usage.heapUsed)}, array buffers ${mb(usage.arrayBuffers)}`);
    const detail = ledger.memoryDetail();
    console.log(`accounts: ${mb(detail.accountBytes)} = ${(detail.accountBytes / stats.accounts).toFixed(1)} bytes per account (id table + record + owners)`);
    console.log(`transaction ids: ${mb(detail.transactionBytes)} = ${(detail.transactionBytes / stats.transactions).toFixed(1)} bytes per remembered id`);
  } finally {
    clearInterval(sampler);
    await ledger.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
