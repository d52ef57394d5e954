/**
 * The ledger's state, in compact structures: accounts interned to dense indices with balances
 * in a BigInt64Array, owners interned likewise, and every logged transaction outcome in a
 * fingerprint table. `evolve` functions here are the only code that mutates state, used both
 * live (after `decide`) and when replaying the log, so replay reproduces the live state exactly.
 *
 * Per account: 8 (balance) + 2 (currency) + 4 (owner) + 8 (last entry sequence) bytes plus the
 * id table's share (see IdTable).
 */
import { assert } from '../stdx/assert.js';
import { IdTable } from './id-table.js';
import { BALANCE_MAX, BALANCE_MIN } from './money.js';
import { TxnTable } from './txn-table.js';

const ACCOUNTS_INITIAL = 1 << 10;
/** ISO 4217 numeric codes are three digits. */
export const CURRENCY_NUMERIC_MAX = 999;

export class LedgerState {
  readonly accounts: IdTable;
  readonly owners: IdTable;
  readonly txns: TxnTable;
  balances = new BigInt64Array(ACCOUNTS_INITIAL);
  currencies = new Uint16Array(ACCOUNTS_INITIAL);
  ownerOf = new Uint32Array(ACCOUNTS_INITIAL);
  /** Sequence of the account's newest statement entry: the head of its back-pointer chain. */
  lastEntrySequence = new Float64Array(ACCOUNTS_INITIAL);
  /** Account index + 1 of each currency's external account, by ISO numeric code; 0 = none yet. */
  readonly externalOf = new Int32Array(CURRENCY_NUMERIC_MAX + 1);
  /** Sequence of the last applied event. */
  headSequence = 0;

  constructor(accounts = new IdTable(), owners = new IdTable(), txns = new TxnTable()) {
    this.accounts = accounts;
    this.owners = owners;
    this.txns = txns;
  }

  get accountCount(): number {
    return this.accounts.count;
  }

  /** Evolve: AccountOpened. The new account's index is the number of accounts opened before. */
  applyAccountOpened(sequence: number, accountId: string, currencyNumeric: number, owner: string): number {
    assert(sequence === this.headSequence + 1, 'events must be applied in sequence order');
    assert(currencyNumeric > 0 && currencyNumeric <= CURRENCY_NUMERIC_MAX, 'currency out of range');
    assert(this.accounts.findString(accountId) === -1, 'account opened twice');
    const index = this.accounts.insertString(accountId);
    this.ensureAccountCapacity(index + 1);
    let ownerIndex = this.owners.findString(owner);
    if (ownerIndex === -1) ownerIndex = this.owners.insertString(owner);
    this.currencies[index] = currencyNumeric;
    this.ownerOf[index] = ownerIndex;
    this.balances[index] = 0n;
    this.lastEntrySequence[index] = 0;
    if (accountId.startsWith('@external:')) this.externalOf[currencyNumeric] = index + 1;
    this.headSequence = sequence;
    return index;
  }

  /**
   * Evolve: TransferRecorded with a success code. Sets both balances to their values after the
   * transfer (decided, or read from the log) and links the entry into both accounts' statement
   * chains.
   */
  applyTransferSucceeded(sequence: number, fromIndex: number, toIndex: number, fromAfter: bigint, toAfter: bigint): void {
    assert(sequence === this.headSequence + 1, 'events must be applied in sequence order');
    assert(fromIndex !== toIndex, 'transfer within one account');
    assert(fromAfter >= BALANCE_MIN && toAfter <= BALANCE_MAX, 'balance out of range');
    this.balances[fromIndex] = fromAfter;
    this.balances[toIndex] = toAfter;
    this.lastEntrySequence[fromIndex] = sequence;
    this.lastEntrySequence[toIndex] = sequence;
    this.headSequence = sequence;
  }

  /** Evolve: TransferRecorded with a rejection code: only the sequence advances. */
  applyTransferRejected(sequence: number): void {
    assert(sequence === this.headSequence + 1, 'events must be applied in sequence order');
    this.headSequence = sequence;
  }

  ownerIdOf(accountIndex: number): string {
    return this.owners.idOf(this.ownerOf[accountIndex]!);
  }

  isExternal(accountIndex: number): boolean {
    return this.externalOf[this.currencies[accountIndex]!] === accountIndex + 1;
  }

  memoryBytes(): number {
    return (
      this.accounts.memoryBytes() +
      this.owners.memoryBytes() +
      this.txns.memoryBytes() +
      this.balances.byteLength +
      this.currencies.byteLength +
      this.ownerOf.byteLength +
      this.lastEntrySequence.byteLength
    );
  }

  ensureAccountCapacity(accounts: number): void {
    if (accounts <= this.balances.length) return;
    const capacity = Math.max(accounts, this.balances.length * 2);
    const balances = new BigInt64Array(capacity);
    balances.set(this.balances);
    this.balances = balances;
    const currencies = new Uint16Array(capacity);
    currencies.set(this.currencies);
    this.currencies = currencies;
    const ownerOf = new Uint32Array(capacity);
    ownerOf.set(this.ownerOf);
    this.ownerOf = ownerOf;
    const lastEntrySequence = new Float64Array(capacity);
    lastEntrySequence.set(this.lastEntrySequence);
    this.lastEntrySequence = lastEntrySequence;
  }
}
