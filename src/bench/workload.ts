/**
 * The benchmark workload: accounts, their funding, and a deterministic sequence of transfers,
 * the same for walletd and for every peer ledger.
 *
 * Transfer number k (k = 0, 1, 2, ...) is fully determined by the seed: its source, target and
 * amount come from position k mod P of a prebuilt pool of P fixed-size records, and its
 * transaction id is `<runTag>t<k as 12 hex digits>`. The pool is encoded once, up front, so the
 * load generator only stamps 12 id bytes per record while running: the client's CPU goes to the
 * server, not to building requests.
 *
 * Funding is large enough that no transfer of the sequence can meet insufficient funds, in any
 * order: so every target must accept every transfer, and the final balance of every account is
 * known without caring in which order concurrent connections applied them.
 */
import { assert } from '../stdx/assert.js';
import { Prng } from '../stdx/prng.js';
import { BATCH_RECORDS_MAX, RECORD_BYTES, RECORD_OFFSET_TRANSACTION_ID, writeTransferRecord } from '../core/transfer-record.js';
import { currencyByCode, type Currency } from '../core/currency.js';
import { ACCOUNTS_MAX } from '../core/ledger-state.js';
import { ZipfSampler } from './zipf.js';

export const DISTRIBUTIONS = ['uniform', 'zipf', 'hot'] as const;
export type Distribution = (typeof DISTRIBUTIONS)[number];

export const WORKLOAD_CURRENCY_CODE = 'USD';
export const WORKLOAD_CURRENCY_NUMERIC = workloadCurrency().numeric;
/** Amounts are uniform in [1, AMOUNT_MINOR_MAX] minor units (up to 100.00 USD). */
export const AMOUNT_MINOR_MAX = 10_000;
/**
 * All funding together stays far below 2^63 − 1, because it all comes out of the one external
 * account, whose balance may not go below −(2^63 − 1).
 */
export const FUNDING_TOTAL_MINOR_MAX = 2_000_000_000_000_000_000n;
/** A customer account holds at most this much (10^10 USD), plenty for any run's debits. */
const FUNDING_ACCOUNT_MINOR_MAX = 1_000_000_000_000n;
/** The prebuilt pool holds at most this many records (208 MiB); longer runs cycle through it. */
const POOL_RECORDS_MAX = 1 << 20;
/** Transfer numbers are written as 12 hex digits. */
export const TRANSFER_NUMBER_MAX = 2 ** 48 - 1;
const TRANSFER_DIGITS = 12;

export type WorkloadSpec = Readonly<{
  accounts: number;
  batchRecords: number;
  distribution: Distribution;
  seed: number;
  /** Exponent s of the zipf distribution (rank r is drawn with weight 1/r^s). */
  zipfExponent: number;
  /** Transfers the run will send at most, if known (sizes the pool); undefined for timed runs. */
  transfersMax: number | undefined;
  /** Prefix of every account and transaction id: unique per run, so reruns never collide. */
  runTag: string;
}>;

/** `count` records of batch `batchNumber`, back to back in `bytes`. */
export type BatchView = Readonly<{ bytes: Buffer; count: number; batchNumber: number; firstTransfer: number }>;

export class Workload {
  readonly spec: WorkloadSpec;
  readonly poolRecords: number;
  readonly poolBatches: number;
  /** Source, target and amount of each pool position (for peers and for the final check). */
  readonly fromIndex: Int32Array;
  readonly toIndex: Int32Array;
  readonly amountMinor: Uint32Array;
  private readonly poolBatchBytes: Buffer[];
  private readonly transferDigitsOffset: number;

  constructor(spec: WorkloadSpec) {
    assertSpec(spec);
    this.spec = spec;
    const wanted = Math.min(spec.transfersMax ?? POOL_RECORDS_MAX, POOL_RECORDS_MAX);
    this.poolBatches = Math.ceil(wanted / spec.batchRecords);
    this.poolRecords = this.poolBatches * spec.batchRecords;
    this.fromIndex = new Int32Array(this.poolRecords);
    this.toIndex = new Int32Array(this.poolRecords);
    this.amountMinor = new Uint32Array(this.poolRecords);
    this.transferDigitsOffset = RECORD_OFFSET_TRANSACTION_ID + spec.runTag.length + 1;
    this.drawPool();
    this.poolBatchBytes = [];
    for (let batch = 0; batch < this.poolBatches; batch++) this.poolBatchBytes.push(this.encodePoolBatch(batch));
  }

  accountId(index: number): string {
    return `${this.spec.runTag}a${index}`;
  }

  transactionId(transfer: number): string {
    return `${this.spec.runTag}t${transfer.toString(16).padStart(TRANSFER_DIGITS, '0')}`;
  }

  depositId(index: number): string {
    return `${this.spec.runTag}d${index}`;
  }

  /** The opening deposit of an account: the hot account gets half of all funding. */
  fundingMinor(index: number): bigint {
    assert(index >= 0 && index < this.spec.accounts);
    const accounts = BigInt(this.spec.accounts);
    if (this.spec.distribution === 'hot') {
      if (index === 0) return FUNDING_TOTAL_MINOR_MAX / 2n;
      return min(FUNDING_ACCOUNT_MINOR_MAX, FUNDING_TOTAL_MINOR_MAX / 2n / accounts);
    }
    return min(FUNDING_ACCOUNT_MINOR_MAX, FUNDING_TOTAL_MINOR_MAX / accounts);
  }

  fundingTotalMinor(): bigint {
    const accounts = this.spec.accounts;
    if (accounts === 1) return this.fundingMinor(0);
    // Every account but the hot one gets the same amount.
    return this.fundingMinor(0) + this.fundingMinor(1) * BigInt(accounts - 1);
  }

  poolPosition(transfer: number): number {
    return transfer % this.poolRecords;
  }

  /**
   * The records of batch `batchNumber` (transfers batchNumber·B ..), with their ids stamped.
   * The bytes are shared with every other batch of the same pool slot: the caller must not ask
   * for a batch while another batch of the same slot is still being sent.
   */
  batch(batchNumber: number, count: number): BatchView {
    assert(Number.isInteger(batchNumber) && batchNumber >= 0);
    assert(count >= 1 && count <= this.spec.batchRecords);
    const firstTransfer = batchNumber * this.spec.batchRecords;
    assert(firstTransfer + count - 1 <= TRANSFER_NUMBER_MAX, 'transfer numbers exhausted');
    const slot = this.poolBatchBytes[this.poolSlot(batchNumber)];
    assert(slot !== undefined);
    for (let index = 0; index < count; index++) {
      writeHexDigits(slot, index * RECORD_BYTES + this.transferDigitsOffset, firstTransfer + index);
    }
    return { bytes: slot.subarray(0, count * RECORD_BYTES), count, batchNumber, firstTransfer };
  }

  poolSlot(batchNumber: number): number {
    return batchNumber % this.poolBatches;
  }

  /** The balance every account must hold once transfers 0 .. transfersDone−1 have applied once. */
  expectedBalances(transfersDone: number): BigInt64Array {
    const balances = new BigInt64Array(this.spec.accounts);
    for (let index = 0; index < this.spec.accounts; index++) balances[index] = this.fundingMinor(index);
    const laps = Math.floor(transfersDone / this.poolRecords);
    const rest = transfersDone % this.poolRecords;
    for (let position = 0; position < this.poolRecords; position++) {
      const times = laps + (position < rest ? 1 : 0);
      if (times === 0) break; // positions past `rest` in the first lap were never sent
      const moved = BigInt(this.amountMinor[position] ?? 0) * BigInt(times);
      const from = this.fromIndex[position] ?? 0;
      const to = this.toIndex[position] ?? 0;
      balances[from] = (balances[from] ?? 0n) - moved;
      balances[to] = (balances[to] ?? 0n) + moved;
    }
    return balances;
  }

  private drawPool(): void {
    const prng = new Prng(this.spec.seed);
    const accounts = this.spec.accounts;
    const zipf = this.spec.distribution === 'zipf' ? new ZipfSampler(accounts, this.spec.zipfExponent) : undefined;
    for (let position = 0; position < this.poolRecords; position++) {
      let from: number;
      let to: number;
      if (this.spec.distribution === 'hot') {
        from = 0;
        to = 1 + prng.below(accounts - 1);
      } else if (zipf !== undefined) {
        from = zipf.sample(prng) - 1;
        do to = zipf.sample(prng) - 1;
        while (to === from);
      } else {
        from = prng.below(accounts);
        to = prng.below(accounts - 1);
        if (to >= from) to++; // uniform over the other accounts
      }
      this.fromIndex[position] = from;
      this.toIndex[position] = to;
      this.amountMinor[position] = prng.between(1, AMOUNT_MINOR_MAX);
    }
  }

  private encodePoolBatch(batch: number): Buffer {
    const bytes = Buffer.alloc(this.spec.batchRecords * RECORD_BYTES);
    for (let index = 0; index < this.spec.batchRecords; index++) {
      const position = batch * this.spec.batchRecords + index;
      writeTransferRecord(bytes, index, {
        kind: 'transfer',
        // Digits are stamped per send; the placeholder only fixes the id's length.
        transactionId: this.transactionId(0),
        fromAccount: this.accountId(this.fromIndex[position] ?? 0),
        toAccount: this.accountId(this.toIndex[position] ?? 0),
        amountMinor: BigInt(this.amountMinor[position] ?? 0),
        currencyNumeric: WORKLOAD_CURRENCY_NUMERIC,
      });
    }
    return bytes;
  }
}

function assertSpec(spec: WorkloadSpec): void {
  assert(Number.isInteger(spec.accounts) && spec.accounts >= 2, 'a transfer needs at least two accounts');
  assert(spec.accounts <= ACCOUNTS_MAX, 'too many accounts');
  assert(Number.isInteger(spec.batchRecords) && spec.batchRecords >= 1);
  assert(spec.batchRecords <= BATCH_RECORDS_MAX, 'batch larger than a frame');
  assert(Number.isSafeInteger(spec.seed));
  assert(/^[A-Za-z0-9]{1,16}$/.test(spec.runTag), 'run tag must be 1-16 alphanumerics');
  assert(spec.transfersMax === undefined || spec.transfersMax >= 1);
  assert(spec.zipfExponent > 0);
}

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

/** Writes `value` (< 2^48) as 12 lower-case hex digits; two 24-bit halves keep it in int32 math. */
function writeHexDigits(bytes: Buffer, offset: number, value: number): void {
  let high = Math.floor(value / 0x100_0000);
  let low = value - high * 0x100_0000;
  for (let digit = 5; digit >= 0; digit--) {
    bytes[offset + 6 + digit] = HEX_DIGITS[low & 0xf] ?? 0;
    bytes[offset + digit] = HEX_DIGITS[high & 0xf] ?? 0;
    low >>>= 4;
    high >>>= 4;
  }
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function workloadCurrency(): Currency {
  const currency = currencyByCode(WORKLOAD_CURRENCY_CODE);
  assert(currency !== undefined, 'the workload currency is in the currency table');
  return currency;
}
