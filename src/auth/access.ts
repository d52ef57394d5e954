/**
 * Owner-scoped authorization rules of API.md, in one place for HTTP and the binary protocol.
 * The admin may do everything; an owner key acts only for accounts whose `owner` is its owner.
 * External accounts belong to no owner, so only the admin sees them.
 */
import type { Principal } from './principal.js';
import { isExternalId } from '../core/ids.js';
import { Kind, RECORD_OFFSET_FROM, RECORD_OFFSET_KIND } from '../core/transfer-record.js';
import type { AccountView, Ledger, OwnedAccounts, TransferView } from '../engine/types.js';

export function mayReadAccount(principal: Principal, account: AccountView): boolean {
  if (principal.kind === 'admin') return true;
  return !isExternalId(account.accountId) && account.owner === principal.owner;
}

/** An owner key may send only from its own accounts; an unknown account is not its own. */
export function mayDebit(principal: Principal, ledger: Ledger, accountId: string): boolean {
  return debitCheck(principal, ledger)(accountId);
}

/**
 * mayDebit for many account ids of one request: the owner is resolved once, then each id is one
 * lookup compared by indices, with no string per id. Use it before any await (it sees the
 * accounts of the moment it was made).
 */
export function debitCheck(principal: Principal, ledger: Ledger): (accountId: string) => boolean {
  if (principal.kind === 'admin') return () => true;
  const owned = ledger.accountsOwnedBy(principal.owner);
  return (accountId) => owned.includesId(accountId);
}

/**
 * mayDebit for a binary record at `base` of `bytes`, checked against the owner's accounts
 * resolved once per frame: an owner key sends transfers only, and only from an account it owns.
 */
export function mayDebitRecord(owned: OwnedAccounts, bytes: Uint8Array, base: number): boolean {
  return bytes[base + RECORD_OFFSET_KIND] === Kind.transfer && owned.includesIdField(bytes, base + RECORD_OFFSET_FROM);
}

/** An owner key may read a transfer when one of its accounts is on either side. */
export function mayReadTransfer(principal: Principal, ledger: Ledger, transfer: TransferView): boolean {
  if (principal.kind === 'admin') return true;
  return ledger.ownerOf(transfer.fromAccount) === principal.owner || ledger.ownerOf(transfer.toAccount) === principal.owner;
}

export function mayOpenAccountFor(principal: Principal, owner: string): boolean {
  return principal.kind === 'admin' || principal.owner === owner;
}
