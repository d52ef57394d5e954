/**
 * The ledger's state, in compact structures: accounts interned to dense indices, and per
 * account one 32-byte record holding everything a transfer touches, so deciding a transfer
 * reads one cache line per account after the id lookup:
 *
 * | word | contents                                                          |
 * |------|-------------------------------------------------------------------|
 * | 0..1 | balance, i64 minor units (words 0 = low, 1 = high, little-endian) |
 * | 2    | currency, ISO numeric                                             |
 * | 3    | owner index (into the owner id table), or -1 when owner = account id |
 * | 4..5 | sequence of the account's newest statement entry, as f64          |
 * | 6    | flags: bit 0 = external account                                   |
 * | 7    | reserved, zero                                                    |
 *
 * Most accounts are their own owner (the API's default), so that owner is not interned again:
 * owner index -1 means "the account id", saving an id-table entry per account.
 *
 * The `evolve` methods here are the only code that mutates state; they run live (after
 * decide) and on replay, so replay reproduces the live state exactly.
 */
import { assert } from '../stdx/assert.js';
import { grownCapacity } from '../stdx/capacity.js';
import { IdTable } from './id-table.js';
import type { RecordsCapture } from './records-capture.js';
import { BALANCE_MAX, BALANCE_MIN } from './money.js';
import { TXN_TABLE_ENTRIES_MAX, TxnTable } from './txn-table.js';

export const ACCOUNT_WORDS = 8;
/**
 * The most customer accounts one ledger opens (a hundred million). The arrays behind them grow
 * by half and a typed array holds at most 2^32 − 1 elements on Node 20: at this count the id
 * arena (64-byte ids: 16 words each) needs 1.6·10⁹ words and its next growth 2.4·10⁹, the
 * account records 8·10⁸ words, so every array still fits. External accounts (one per
 * currency) come on top.
 */
export const ACCOUNTS_MAX = 100_000_000;
const ACCOUNTS_INITIAL = 1 << 10;
/** ISO 4217 numeric codes are three digits. */
export const CURRENCY_NUMERIC_MAX = 999;
export const FLAG_EXTERNAL = 1;
export const OWNER_IS_ACCOUNT = -1;

export class LedgerState {
  readonly accounts: IdTable;
  readonly owners: IdTable;
  readonly txns: TxnTable;
  /** Per-account records (layout above) as int32 / uint32 / i64 / f64 views of one buffer. */
  ints = new Int32Array(ACCOUNTS_INITIAL * ACCOUNT_WORDS);
  uints = new Uint32Array(this.ints.buffer);
  bigs = new BigInt64Array(this.ints.buffer);
  floats = new Float64Array(this.ints.buffer);
  /** Account index + 1 of each currency's external account, by ISO numeric code; 0 = none yet. */
  readonly externalOf = new Int32Array(CURRENCY_NUMERIC_MAX + 1);
  /** External accounts opened so far (accountsMax counts customer accounts only). */
  private externalCount = 0;
  /** Sequence of the last applied event. */
  headSequence = 0;
  /** A snapshot's capture of the records, while one is handed out (beforeRecordChange keeps it whole). */
  recordsCapture: RecordsCapture | undefined = undefined;
  /**
   * Limits for new decisions (not for replay: a log written under a larger limit still
   * replays). At the limit, a new transaction id or customer account is refused as
   * `ledger_full`, never logged; remembered ids still answer with their first outcome.
   */
  transactionsMax = TXN_TABLE_ENTRIES_MAX;
  accountsMax = ACCOUNTS_MAX;

  constructor(accounts = new IdTable(), owners = new IdTable(), txns = new TxnTable()) {
    this.accounts = accounts;
    this.owners = owners;
    this.txns = txns;
  }

  get accountCount(): number {
    return this.accounts.count;
  }

  /** Accounts opened by customers: every account but the currencies' external ones. */
  get customerAccountCount(): number {
    return this.accounts.count - this.externalCount;
  }

  /** Records account `index` as the external account of its currency (opening, snapshot load). */
  noteExternal(currencyNumeric: number, index: number): void {
    assert(this.externalOf[currencyNumeric] === 0, 'a currency has one external account');
    this.externalOf[currencyNumeric] = index + 1;
    this.externalCount++;
  }

  balanceOf(index: number): bigint {
    return this.bigs[index * (ACCOUNT_WORDS / 2)]!;
  }

  currencyOf(index: number): number {
    return this.ints[index * ACCOUNT_WORDS + 2]!;
  }

  ownerIndexOf(index: number): number {
    return this.ints[index * ACCOUNT_WORDS + 3]!;
  }

  ownerIdOf(index: number): string {
    const owner = this.ownerIndexOf(index);
    return owner === OWNER_IS_ACCOUNT ? this.accounts.idOf(index) : this.owners.idOf(owner);
  }

  /**
   * Whether account `index` belongs to an owner given by its two indices: `ownerIndex` =
   * owners.findString(owner), `ownerAccount` = accounts.findString(owner), each -1 when absent.
   * Compares indices only, so checking many accounts builds no string. External accounts belong
   * to no owner.
   */
  isOwnedBy(index: number, ownerIndex: number, ownerAccount: number): boolean {
    if (this.isExternal(index)) return false;
    const owner = this.ownerIndexOf(index);
    return owner === OWNER_IS_ACCOUNT ? index === ownerAccount : owner === ownerIndex;
  }

  lastEntrySequenceOf(index: number): number {
    return this.floats[index * (ACCOUNT_WORDS / 2) + 2]!;
  }

  isExternal(index: number): boolean {
    return (this.ints[index * ACCOUNT_WORDS + 6]! & FLAG_EXTERNAL) !== 0;
  }

  /** Evolve: AccountOpened. The new account's index is the number of accounts opened before. */
  applyAccountOpened(sequence: number, accountId: string, currencyNumeric: number, owner: string): number {
    assert(sequence === this.headSequence + 1, 'events must be applied in sequence order');
    assert(currencyNumeric > 0 && currencyNumeric <= CURRENCY_NUMERIC_MAX, 'currency out of range');
    assert(this.accounts.findString(accountId) === -1, 'account opened twice');
    const index = this.accounts.insertString(accountId);
    this.ensureAccountCapacity(index + 1);
    let ownerIndex = OWNER_IS_ACCOUNT;
    if (owner !== accountId) {
      ownerIndex = this.owners.findString(owner);
      if (ownerIndex === -1) ownerIndex = this.owners.insertString(owner);
    }
    const external = accountId.startsWith('@external:');
    const at = index * ACCOUNT_WORDS;
    this.ints.fill(0, at, at + ACCOUNT_WORDS);
    this.ints[at + 2] = currencyNumeric;
    this.ints[at + 3] = ownerIndex;
    this.ints[at + 6] = external ? FLAG_EXTERNAL : 0;
    if (external) this.noteExternal(currencyNumeric, index);
    this.headSequence = sequence;
    return index;
  }

  /** applyTransferSucceededWords with the balances after as bigints (tests and tools that hold them so). */
  applyTransferSucceeded(sequence: number, fromIndex: number, toIndex: number, fromAfter: bigint, toAfter: bigint): void {
    assert(fromAfter >= BALANCE_MIN && toAfter <= BALANCE_MAX, 'balance out of range');
    const low = (value: bigint): number => Number(BigInt.asIntN(32, value));
    const high = (value: bigint): number => Number(value >> 32n);
    this.applyTransferSucceededWords(sequence, fromIndex, toIndex, low(fromAfter), high(fromAfter), low(toAfter), high(toAfter));
  }

  /**
   * Evolve: TransferRecorded with a success code, the balances after as i64 halves (low word
   * unsigned or not, the bits are the same), as decide computes them and replay reads them from
   * the log: no bigints. The one evolve of a success, live and in replay. The caller has checked
   * that they follow from the balances before, which bounds them.
   */
  applyTransferSucceededWords(sequence: number, fromIndex: number, toIndex: number, fromLow: number, fromHigh: number, toLow: number, toHigh: number): void {
    assert(sequence === this.headSequence + 1, 'events must be applied in sequence order');
    assert(fromIndex !== toIndex, 'transfer within one account');
    this.beforeTransferChange(fromIndex, toIndex);
    const ints = this.ints;
    const from = fromIndex * ACCOUNT_WORDS;
    const to = toIndex * ACCOUNT_WORDS;
    ints[from] = fromLow;
    ints[from + 1] = fromHigh;
    ints[to] = toLow;
    ints[to + 1] = toHigh;
    this.floats[(from >>> 1) + 2] = sequence;
    this.floats[(to >>> 1) + 2] = sequence;
    this.headSequence = sequence;
  }

  /** Evolve: TransferRecorded with a rejection code: only the sequence advances. */
  applyTransferRejected(sequence: number): void {
    assert(sequence === this.headSequence + 1, 'events must be applied in sequence order');
    this.headSequence = sequence;
  }

  /**
   * Call before a transfer changes two existing accounts' records (replay here, the live path in
   * decide.ts): a capture in progress keeps their old bytes. The only writes to existing records.
   */
  beforeTransferChange(fromIndex: number, toIndex: number): void {
    const capture = this.recordsCapture;
    if (capture === undefined) return;
    capture.beforeChange(this, fromIndex);
    capture.beforeChange(this, toIndex);
  }

  /** The per-account records of the first `accountCount` accounts (snapshots, digest). */
  accountRecords(): Int32Array {
    return this.ints.subarray(0, this.accountCount * ACCOUNT_WORDS);
  }

  memoryBytes(): number {
    return this.accounts.memoryBytes() + this.owners.memoryBytes() + this.txns.memoryBytes() + this.ints.byteLength;
  }

  ensureAccountCapacity(accounts: number): void {
    if (accounts * ACCOUNT_WORDS <= this.ints.length) return;
    const capacity = grownCapacity(this.ints.length / ACCOUNT_WORDS, accounts);
    const ints = new Int32Array(capacity * ACCOUNT_WORDS);
    ints.set(this.ints);
    this.ints = ints;
    this.uints = new Uint32Array(ints.buffer);
    this.bigs = new BigInt64Array(ints.buffer);
    this.floats = new Float64Array(ints.buffer);
  }
}
