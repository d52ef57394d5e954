/**
 * Runs a peer ledger (PostgreSQL, Redis) as a bench target: the workload's batches become the
 * peer's transfers, record for record (same ids, accounts, amounts), and its accounts are
 * opened with the same funding as walletd's.
 */
import { assert } from '../stdx/assert.js';
import type { PeerLedger, PeerTransfer } from './peers/peer-ledger.js';
import { NOT_SENT, type BenchTarget } from './target.js';
import { WORKLOAD_CURRENCY_NUMERIC, type BatchView, type Workload } from './workload.js';

/** Accounts opened (or balances read) per call during setup and the check. */
const ACCOUNTS_PER_CALL = 100_000;

export class PeerTarget implements BenchTarget {
  readonly durability: string;

  constructor(
    readonly name: string,
    private readonly ledger: PeerLedger,
    readonly lanes: number,
    private readonly dispose: () => Promise<void> = async () => undefined,
    private readonly reportsPerRecord = false,
  ) {
    assert(lanes >= 1);
    this.durability = ledger.durability;
  }

  async setup(workload: Workload, onProgress: (accountsDone: number) => void): Promise<void> {
    this.workload = workload;
    for (let start = 0; start < workload.spec.accounts; start += ACCOUNTS_PER_CALL) {
      const end = Math.min(workload.spec.accounts, start + ACCOUNTS_PER_CALL);
      const ids: string[] = [];
      const funding: bigint[] = [];
      for (let index = start; index < end; index++) {
        ids.push(workload.accountId(index));
        funding.push(workload.fundingMinor(index));
      }
      await this.ledger.openAccounts(ids, WORKLOAD_CURRENCY_NUMERIC, funding);
      onProgress(end);
    }
  }

  async submit(batch: BatchView, lane: number, recordsDone: (records: number) => void): Promise<Uint8Array> {
    const transfers = peerTransfers(batch, this.workloadOf(batch));
    if (!this.reportsPerRecord) return this.ledger.transfers(transfers, lane);
    // One transfer per round trip: report each as it lands, so progress is smooth.
    const codes = new Uint8Array(transfers.length);
    await Promise.all(
      transfers.map(async (transfer, index) => {
        codes[index] = (await this.ledger.transfers([transfer], lane))[0] ?? 255;
        recordsDone(1);
      }),
    );
    return codes;
  }

  stopEarly(): void {
    // Only the one-transfer-per-round-trip mode starts records in transfer order.
    if (this.reportsPerRecord) this.ledger.cancelQueued?.(NOT_SENT);
  }

  async readBalances(workload: Workload): Promise<BigInt64Array> {
    const balances = new BigInt64Array(workload.spec.accounts);
    for (let start = 0; start < workload.spec.accounts; start += ACCOUNTS_PER_CALL) {
      const end = Math.min(workload.spec.accounts, start + ACCOUNTS_PER_CALL);
      const ids: string[] = [];
      for (let index = start; index < end; index++) ids.push(workload.accountId(index));
      const found = await this.ledger.balances(ids);
      ids.forEach((id, offset) => {
        const balance = found.get(id);
        if (balance === undefined) throw new Error(`${this.name}: account ${id} is missing`);
        balances[start + offset] = balance;
      });
    }
    return balances;
  }

  serverPids(): Promise<number[]> {
    return this.ledger.serverPids();
  }

  async close(): Promise<void> {
    try {
      await this.ledger.close();
    } finally {
      await this.dispose();
    }
  }

  /** The workload whose batches this target receives, known from setup(). */
  private workload: Workload | undefined;

  private workloadOf(batch: BatchView): Workload {
    assert(this.workload !== undefined, 'setup() before submitting');
    assert(batch.count <= this.workload.spec.batchRecords);
    return this.workload;
  }
}

/** The batch's records as peer transfers, read from the workload's pool columns. */
function peerTransfers(batch: BatchView, workload: Workload): PeerTransfer[] {
  const transfers: PeerTransfer[] = [];
  for (let index = 0; index < batch.count; index++) {
    const transfer = batch.firstTransfer + index;
    const position = workload.poolPosition(transfer);
    transfers.push({
      transactionId: workload.transactionId(transfer),
      fromAccount: workload.accountId(workload.fromIndex[position] ?? 0),
      toAccount: workload.accountId(workload.toIndex[position] ?? 0),
      amountMinor: BigInt(workload.amountMinor[position] ?? 0),
      currencyNumeric: WORKLOAD_CURRENCY_NUMERIC,
    });
  }
  return transfers;
}
