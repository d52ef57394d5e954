/**
 * Worker thread that prepares transfer batches for the engine (see preparer.ts): validates the
 * records, fingerprints their transaction ids and contents, hashes the account ids and finds
 * the accounts it can in a read-only view of the engine's account id table. Pure work on shared
 * memory; the engine decides. Messages arrive and are answered in order; a batch's shares the
 * engine claimed meanwhile are left to it (prepare-shares.ts).
 */
import { parentPort } from 'node:worker_threads';
import { DecideScratch, recordView } from '../core/decide.js';
import { IdTableReader } from '../core/id-table.js';
import { RECORD_BYTES } from '../core/transfer-record.js';
import { prepareShares } from './prepare-shares.js';
import type { ToPrepareWorker } from './preparer.js';

const port = parentPort;
if (port === null) throw new Error('prepare-worker.js runs as a worker thread');
const scratch = new DecideScratch();
let accounts: IdTableReader | undefined;

port.on('message', (message: ToPrepareWorker) => {
  if (message.kind === 'accounts') {
    if (accounts === undefined) accounts = new IdTableReader(message.buffers);
    else accounts.replaceBuffers(message.buffers);
    return;
  }
  if (accounts === undefined) throw new Error('prepare worker: a batch arrived before the account table');
  const batch = {
    records: recordView(Buffer.from(message.records, 0, message.count * RECORD_BYTES)),
    count: message.count,
    prepared: new Int32Array(message.prepared),
    claims: new Int32Array(message.claims),
  };
  prepareShares(batch, scratch, accounts);
  port.postMessage(message.count);
});
