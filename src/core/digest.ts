/**
 * The state digest: SHA-256 over the whole state in a canonical order: accounts in opening
 * order (ids, owners, currencies, balances, statement heads) and an order-independent fold of
 * every remembered transaction outcome. None of it depends on hash-table capacities or on
 * whether the state came from a snapshot plus a tail or a full replay, so the same log gives
 * the same digest on any (little-endian) machine.
 *
 * It is computed from the state's raw parts, streaming, so the parts a snapshot's worker gets
 * (shared ids, the records a piece at a time) digest exactly like the live state.
 */
import { createHash } from 'node:crypto';
import { assert } from '../stdx/assert.js';
import { ACCOUNT_WORDS, LedgerState } from './ledger-state.js';
import { foldTxnWords } from './txn-table.js';

/** The account side but its records, with the counts and sizes: what a snapshot shares with its worker. */
export type AccountIdParts = Readonly<{
  headSequence: number;
  accountCount: number;
  txnCount: number;
  accountIdLengths: Uint8Array;
  accountIdArena: Int32Array;
  ownerIdLengths: Uint8Array;
  ownerIdArena: Int32Array;
  /** The live table's capacity in slots, so a restored table has the same size. */
  txnSlots: number;
}>;

/** Everything in the state but the transaction entries. */
export type AccountParts = AccountIdParts & Readonly<{ accountRecords: Int32Array }>;

/** The bytes under a typed array view (no copy). */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** The account side as views of the state's live arrays (no copy). */
function accountPartsOf(state: LedgerState): AccountParts {
  const accounts = state.accounts.exportParts();
  const owners = state.owners.exportParts();
  return {
    headSequence: state.headSequence,
    accountCount: state.accountCount,
    txnCount: state.txns.count,
    txnSlots: state.txns.capacitySlots,
    accountIdLengths: accounts.lengths,
    accountIdArena: accounts.arena,
    ownerIdLengths: owners.lengths,
    ownerIdArena: owners.arena,
    accountRecords: state.accountRecords(),
  };
}

/**
 * The ids and owners as of now, safe to hand to another thread while the engine goes on, with
 * no copy: the id lengths and arenas live in SharedArrayBuffers and are only appended to, an
 * id's bytes never change once written, and growth copies into a new buffer and leaves the old
 * one as it was, so views of their first entries stay exactly this moment's. The records change
 * in place: a snapshot takes them through a RecordsCapture. The transaction entries go
 * separately: the new ones only (TxnTable.takeJournal or holdEntries).
 */
export function captureAccountIdParts(state: LedgerState): AccountIdParts {
  const { accountRecords: _live, ...parts } = accountPartsOf(state);
  for (const view of [parts.accountIdLengths, parts.accountIdArena, parts.ownerIdLengths, parts.ownerIdArena]) {
    assert(view.buffer instanceof SharedArrayBuffer, 'id lengths and arenas live in shared memory');
  }
  return parts;
}

/**
 * The state digest computed as it streams: the header and ids first, then the account records
 * in index order, given whole or piece by piece (a snapshot's worker gets them a piece at a
 * time), then the transaction fold.
 */
export class StateDigester {
  private readonly hash = createHash('sha256');
  private recordBytes = 0;

  constructor(private readonly parts: AccountIdParts) {
    const header = Buffer.alloc(32);
    header.write('walletd-state-v1', 0, 'latin1');
    header.writeBigUInt64LE(BigInt(parts.headSequence), 16);
    header.writeUInt32LE(parts.accountCount, 24);
    header.writeUInt32LE(parts.txnCount, 28);
    this.hash.update(header);
    this.hash.update(parts.accountIdLengths).update(parts.ownerIdLengths);
    this.hash.update(bytesOf(parts.accountIdArena)).update(bytesOf(parts.ownerIdArena));
  }

  addRecords(bytes: Uint8Array): void {
    this.recordBytes += bytes.length;
    assert(this.recordBytes <= this.parts.accountCount * ACCOUNT_WORDS * 4, 'more account records than accounts');
    this.hash.update(bytes);
  }

  /** `txnFold`: foldTxnWords of every remembered entry (a snapshot sums its chunks' folds). */
  finish(txnFold: Uint32Array): string {
    assert(this.recordBytes === this.parts.accountCount * ACCOUNT_WORDS * 4, 'account records missing from the digest');
    this.hash.update(bytesOf(txnFold));
    return this.hash.digest('hex');
  }
}

/** `txnFold`: foldTxnWords of every remembered entry (a snapshot sums its chunks' folds). */
export function digestOfParts(parts: AccountParts, txnFold: Uint32Array): string {
  const digester = new StateDigester(parts);
  digester.addRecords(bytesOf(parts.accountRecords));
  return digester.finish(txnFold);
}

/** The live state's digest: its account side and the fold of its transaction table's slots (a compact copy while it grows). */
export function stateDigest(state: LedgerState): string {
  return digestOfParts(accountPartsOf(state), foldTxnWords(state.txns.digestWords()));
}
