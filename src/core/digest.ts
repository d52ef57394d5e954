/**
 * The state digest: SHA-256 over the whole state in a canonical order: accounts in opening
 * order (ids, owners, currencies, balances, statement heads) and an order-independent fold of
 * every remembered transaction outcome. None of it depends on hash-table capacities or on
 * whether the state came from a snapshot plus a tail or a full replay, so the same log gives
 * the same digest on any (little-endian) machine.
 *
 * It is computed from the state's raw parts, so a copy of them (a snapshot being written off
 * the engine's thread) digests exactly like the live state.
 */
import { createHash } from 'node:crypto';
import { LedgerState } from './ledger-state.js';
import { foldTxnWords } from './txn-table.js';

/** Everything in the state but the transaction entries, with the counts and sizes. */
export type AccountParts = Readonly<{
  headSequence: number;
  accountCount: number;
  txnCount: number;
  accountIdLengths: Uint8Array;
  accountIdArena: Int32Array;
  ownerIdLengths: Uint8Array;
  ownerIdArena: Int32Array;
  accountRecords: Int32Array;
  /** The live table's capacity in slots, so a restored table has the same size. */
  txnSlots: number;
}>;

export type StateParts = AccountParts &
  Readonly<{
    /** Transaction table words: the live slots, or only the occupied ones (a copy). */
    txnWords: Uint32Array;
  }>;

/** The bytes under a typed array view (no copy). */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** The state's parts as views of its live arrays (no copy, except the transaction table's entries while it grows). */
function partsOf(state: LedgerState): StateParts {
  const accounts = state.accounts.exportParts();
  const owners = state.owners.exportParts();
  return {
    headSequence: state.headSequence,
    accountCount: state.accountCount,
    txnCount: state.txns.count,
    accountIdLengths: accounts.lengths,
    accountIdArena: accounts.arena,
    ownerIdLengths: owners.lengths,
    ownerIdArena: owners.arena,
    accountRecords: state.accountRecords(),
    txnWords: state.txns.digestWords(),
    txnSlots: state.txns.capacitySlots,
  };
}

/**
 * The account side of the state copied into fresh buffers, safe to hand to another thread:
 * what a snapshot pauses the engine for (tens of MB at most). The transaction entries go
 * separately: the new ones only (TxnTable.takeJournal or beginEntriesCopy).
 */
export function copyAccountParts(state: LedgerState): AccountParts {
  const accounts = state.accounts.exportParts();
  const owners = state.owners.exportParts();
  return {
    headSequence: state.headSequence,
    accountCount: state.accountCount,
    txnCount: state.txns.count,
    txnSlots: state.txns.capacitySlots,
    accountIdLengths: accounts.lengths.slice(),
    accountIdArena: accounts.arena.slice(),
    ownerIdLengths: owners.lengths.slice(),
    ownerIdArena: owners.arena.slice(),
    accountRecords: state.accountRecords().slice(),
  };
}

/**
 * The whole state's parts copied into fresh buffers; the transaction table compactly (occupied
 * slots only), which digests the same.
 */
export function copyParts(state: LedgerState): StateParts {
  return { ...copyAccountParts(state), txnWords: state.txns.compactEntries() };
}

/** `txnFold`: foldTxnWords of every remembered entry (a snapshot sums its chunks' folds). */
export function digestOfParts(parts: AccountParts, txnFold: Uint32Array): string {
  const hash = createHash('sha256');
  const header = Buffer.alloc(32);
  header.write('walletd-state-v1', 0, 'latin1');
  header.writeBigUInt64LE(BigInt(parts.headSequence), 16);
  header.writeUInt32LE(parts.accountCount, 24);
  header.writeUInt32LE(parts.txnCount, 28);
  hash.update(header);
  hash.update(parts.accountIdLengths).update(parts.ownerIdLengths);
  hash.update(bytesOf(parts.accountIdArena)).update(bytesOf(parts.ownerIdArena));
  hash.update(bytesOf(parts.accountRecords));
  hash.update(bytesOf(txnFold));
  return hash.digest('hex');
}

export function stateDigest(state: LedgerState): string {
  const parts = partsOf(state);
  return digestOfParts(parts, foldTxnWords(parts.txnWords));
}
