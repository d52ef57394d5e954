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
import { foldTxnWords, type TxnEntriesCopy } from './txn-table.js';

export type StateParts = Readonly<{
  headSequence: number;
  accountCount: number;
  txnCount: number;
  accountIdLengths: Uint8Array;
  accountIdArena: Int32Array;
  ownerIdLengths: Uint8Array;
  ownerIdArena: Int32Array;
  accountRecords: Int32Array;
  /** Transaction table words: the live slots, or only the occupied ones (a copy; for a snapshot, only those logged since its chunks end). */
  txnWords: Uint32Array;
  /** The live table's capacity in slots, so a restored table has the same size. */
  txnSlots: number;
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
 * The state's parts copied into fresh buffers, safe to hand to another thread; the transaction
 * table is copied compactly (occupied slots only), which digests the same.
 */
export function copyParts(state: LedgerState): StateParts {
  const copy = beginCopyParts(state);
  copy.txnEntries.finish();
  return copy.parts();
}

export type PartsCopy = Readonly<{
  /** The transaction entries, still to be copied: `step` it to the end, then call `parts`. */
  txnEntries: TxnEntriesCopy;
  parts: () => StateParts;
}>;

/**
 * copyParts in two stages: everything but the transaction entries is copied now (accounts,
 * owners: tens of MB at most), the entries a slice at a time while the engine goes on deciding
 * (TxnTable.beginEntriesCopy), so a snapshot does not stop it. Only the entries logged after
 * `afterSequence` are copied (`entriesUpToAfter` is how many were logged up to it): a snapshot
 * has the older ones in chunk files already (src/engine/txn-chunks.ts).
 */
export function beginCopyParts(state: LedgerState, afterSequence = 0, entriesUpToAfter = 0): PartsCopy {
  const accounts = state.accounts.exportParts();
  const owners = state.owners.exportParts();
  const fixed = {
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
  const txnEntries = state.txns.beginEntriesCopy(afterSequence, state.headSequence, state.txns.count - entriesUpToAfter);
  return { txnEntries, parts: () => ({ ...fixed, txnWords: txnEntries.result() }) };
}

/**
 * `txnFold`: foldTxnWords of every remembered entry, when known without `parts.txnWords` (a
 * snapshot whose entries are mostly in chunk files sums the chunks' folds).
 */
export function digestOfParts(parts: StateParts, txnFold: Uint32Array = foldTxnWords(parts.txnWords)): string {
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
  return digestOfParts(partsOf(state));
}
