/**
 * Child process of test/engine-crash.test.ts: the engine under concurrent load, killed at random.
 *
 *   node engine-child.js DATA_DIR RUN SEED [CHECK_FILE [SEGMENT_BYTES_MAX]]
 *
 * SEGMENT_BYTES_MAX (default: the engine's, 256 MiB) makes the log roll to a new segment every
 * few group commits, so kills land during and right after rollovers.
 *
 * Opens the ledger with fsync on, then (1) checks through the Ledger API every outcome listed
 * in CHECK_FILE (acknowledged by earlier runs): `transfer(id)` must return the same code and
 * sequence; (2) opens and funds the accounts (idempotent: the same ids every run); (3) runs
 * WORKERS loops that each submit a batch, await it, and print every record's outcome the moment
 * the promise resolves, forever, until the parent's SIGKILL. Batches mix transfers (some
 * rejected), deposits, withdrawals, retries of outcomes acknowledged in this or an earlier run,
 * and a record repeated within its batch.
 *
 * Lines on stdout (one write per batch, whole lines):
 *   started HEAD DIGEST               after recovery
 *   verified N                        the CHECK_FILE outcomes all matched
 *   ready                             accounts open and funded; load starts
 *   ack ID CODE SEQ KIND FROM TO AMOUNT   an acknowledged outcome (FROM/TO '-' when empty)
 *   bad MESSAGE                       a check failed in the child
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { codeOfWire, isLoggedOutcome } from '../../src/core/errors.js';
import { encodeTransferBatch, type TransferCommand, type TransferKind } from '../../src/core/transfer-record.js';
import { openLedger } from '../../src/engine/ledger.js';
import { Prng } from '../../src/stdx/prng.js';
import { numericOf } from './ledger.js';

export const CHILD_USD_ACCOUNTS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7'];
export const CHILD_EUR_ACCOUNTS = ['e0', 'e1'];
export const CHILD_FUNDING_MINOR = 1_000_000n;
const WORKERS = 16;
const BATCH_RECORDS_MAX = 16;
const SNAPSHOT_EVERY_RECORDS = 400;

/** One acknowledged outcome with the content that was sent (parsed from or written as a line). */
export type Ack = Readonly<{ id: string; code: number; sequence: number; command: TransferCommand }>;

export function ackLine(ack: Ack): string {
  const { command } = ack;
  const currency = command.currencyNumeric === numericOf('EUR') ? 'EUR' : 'USD';
  return `ack ${ack.id} ${ack.code} ${ack.sequence} ${command.kind} ${command.fromAccount || '-'} ${command.toAccount || '-'} ${command.amountMinor} ${currency}`;
}

export function parseAck(line: string): Ack {
  const [tag, id, code, sequence, kind, from, to, amount, currency] = line.split(' ');
  if (tag !== 'ack' || currency === undefined) throw new Error(`not an ack line: ${line}`);
  const command: TransferCommand = {
    kind: kind as TransferKind,
    transactionId: id!,
    fromAccount: from === '-' ? '' : from!,
    toAccount: to === '-' ? '' : to!,
    amountMinor: BigInt(amount!),
    currencyNumeric: numericOf(currency),
  };
  return { id: id!, code: Number(code), sequence: Number(sequence), command };
}

function out(text: string): void {
  process.stdout.write(text);
}

async function main(): Promise<void> {
  const [dataDir, runText, seedText, checkFile, segmentBytesText] = process.argv.slice(2);
  if (dataDir === undefined || runText === undefined || seedText === undefined) throw new Error('usage: engine-child DATA_DIR RUN SEED [CHECK_FILE [SEGMENT_BYTES_MAX]]');
  const run = Number(runText);
  const prng = new Prng(Number(seedText) * 1000 + run);
  const ledger = await openLedger({
    dataDir,
    fsync: true,
    snapshotEveryRecords: SNAPSHOT_EVERY_RECORDS,
    // Snapshots hand their worker a few accounts' records per turn, so kills land while a
    // snapshot spans many drains.
    snapshotPieceAccounts: 16,
    // The parent times kills under load from the first committed snapshot of the run.
    observer: { onSnapshot: (info) => out(`snapshot ${info.sequence}\n`) },
    ...(segmentBytesText === undefined ? {} : { segmentBytesMax: Number(segmentBytesText) }),
    onFatal: (error) => {
      out(`bad fatal ${String(error)}\n`);
      process.exit(70);
    },
  });
  out(`started ${ledger.stats().headSequence} ${ledger.digest()}\n`);

  const earlier = checkFile === undefined ? [] : readFileSync(checkFile, 'utf8').split('\n').filter((line) => line.startsWith('ack ')).map(parseAck);
  for (const ack of earlier) {
    const view = await ledger.transfer(ack.id);
    if (view === undefined || view.code !== codeOfWire(ack.code) || view.sequence !== ack.sequence) {
      out(`bad after restart transfer(${ack.id}) = ${view === undefined ? 'undefined' : `${view.code} @${view.sequence}`}, acknowledged ${codeOfWire(ack.code)} @${ack.sequence}\n`);
    }
  }
  out(`verified ${earlier.length}\n`);

  for (const accountId of [...CHILD_USD_ACCOUNTS, ...CHILD_EUR_ACCOUNTS]) {
    const currencyCode = accountId.startsWith('e') ? 'EUR' : 'USD';
    const outcome = await ledger.openAccount({ accountId, currencyCode, owner: 'crash-test' });
    if (outcome.status === 'rejected') out(`bad open ${accountId}: ${outcome.code}\n`);
  }
  const funding: TransferCommand[] = [...CHILD_USD_ACCOUNTS, ...CHILD_EUR_ACCOUNTS].map((accountId) => ({
    kind: 'deposit',
    transactionId: `fund-${accountId}`,
    fromAccount: '',
    toAccount: accountId,
    amountMinor: CHILD_FUNDING_MINOR,
    currencyNumeric: numericOf(accountId.startsWith('e') ? 'EUR' : 'USD'),
  }));
  await submitAndPrint(ledger, funding, new Map());
  out('ready\n');

  // Outcomes acknowledged so far (this run and the checked earlier ones), for retries.
  const acked = new Map<string, Ack>(earlier.map((ack) => [ack.id, ack]));
  const ackedIds: string[] = [...acked.keys()];
  let counter = 0;
  const nextCommand = (): TransferCommand => {
    const roll = prng.below(100);
    if (roll < 6 && ackedIds.length > 0) return acked.get(ackedIds[prng.below(ackedIds.length)]!)!.command;
    const id = `r${run}-${counter++}`;
    if (roll < 14) return { kind: 'deposit', transactionId: id, fromAccount: '', toAccount: pick(prng, CHILD_USD_ACCOUNTS), amountMinor: BigInt(1 + prng.below(20_000)), currencyNumeric: numericOf('USD') };
    if (roll < 22) return { kind: 'withdrawal', transactionId: id, fromAccount: pick(prng, CHILD_USD_ACCOUNTS), toAccount: '', amountMinor: BigInt(1 + prng.below(40_000)), currencyNumeric: numericOf('USD') };
    if (roll < 28) {
      // EUR between the EUR accounts, now and then across currencies (currency_mismatch).
      const from = pick(prng, CHILD_EUR_ACCOUNTS);
      const to = prng.below(4) === 0 ? pick(prng, CHILD_USD_ACCOUNTS) : from === 'e0' ? 'e1' : 'e0';
      return { kind: 'transfer', transactionId: id, fromAccount: from, toAccount: to, amountMinor: BigInt(1 + prng.below(30_000)), currencyNumeric: numericOf('EUR') };
    }
    // USD transfers; large amounts drain accounts so insufficient_funds happens too.
    const from = pick(prng, CHILD_USD_ACCOUNTS);
    const to = pick(prng, CHILD_USD_ACCOUNTS);
    const amount = prng.below(10) === 0 ? 200_000 + prng.below(600_000) : 1 + prng.below(50_000);
    return { kind: 'transfer', transactionId: id, fromAccount: from, toAccount: to, amountMinor: BigInt(amount), currencyNumeric: numericOf('USD') };
  };
  const worker = async (): Promise<void> => {
    for (;;) {
      const commands = Array.from({ length: 1 + prng.below(BATCH_RECORDS_MAX) }, nextCommand);
      if (prng.below(20) === 0) commands.push(commands[0]!); // the same record twice in one batch
      for (const ack of await submitAndPrint(ledger, commands, acked)) {
        if (!acked.has(ack.id)) {
          acked.set(ack.id, ack);
          ackedIds.push(ack.id);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
}

/** Submits a batch; prints every outcome at once when it resolves; flags retries that differ. */
async function submitAndPrint(ledger: Awaited<ReturnType<typeof openLedger>>, commands: TransferCommand[], acked: ReadonlyMap<string, Ack>): Promise<Ack[]> {
  const results = await ledger.submitTransfers({ bytes: encodeTransferBatch(commands), count: commands.length });
  const acks = commands.map((command, index): Ack => ({ id: command.transactionId, code: results.codes[index]!, sequence: results.sequences[index]!, command }));
  let text = '';
  for (const ack of acks) {
    text += `${ackLine(ack)}\n`;
    const first = acked.get(ack.id);
    if (first !== undefined && (first.code !== ack.code || first.sequence !== ack.sequence)) {
      text += `bad retry of ${ack.id} answered ${ack.code} @${ack.sequence}, first ${first.code} @${first.sequence}\n`;
    }
    if (ack.sequence === 0 || !isLoggedOutcome(ack.code)) text += `bad ${ack.id} was not logged: code ${ack.code}\n`;
  }
  out(text);
  return acks;
}

function pick<T>(prng: Prng, items: readonly T[]): T {
  return items[prng.below(items.length)]!;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`engine-child: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
