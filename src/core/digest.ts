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
import { assert } from '../stdx/assert.js';
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
 * The account side of the state as of now, safe to hand to another thread while the engine
 * goes on: what a snapshot pauses the engine for. The records (balances change) and id lengths
 * are copied. The id arenas are not: they live in SharedArrayBuffers and only grow, an id's
 * words never change once written, and growth copies into a new buffer and leaves the old one
 * as it was, so a view of the first `arenaWords` stays exactly this moment's arena. That saves
 * the copy of every id's bytes (about 26 bytes an account with 12-character ids and owners).
 * The transaction entries go separately: the new ones only (TxnTable.takeJournal or
 * beginEntriesCopy).
 */
export function copyAccountParts(state: LedgerState, reuse: CaptureReuse = {}): AccountParts {
  const parts = accountPartsOf(state);
  const { spare, headroom = false } = reuse;
  return {
    ...parts,
    accountIdLengths: copyInto(parts.accountIdLengths, spare?.accountIdLengths, headroom, (buffer, length) => new Uint8Array(buffer, 0, length)),
    accountIdArena: frozenPrefix(parts.accountIdArena),
    ownerIdLengths: copyInto(parts.ownerIdLengths, spare?.ownerIdLengths, headroom, (buffer, length) => new Uint8Array(buffer, 0, length)),
    ownerIdArena: frozenPrefix(parts.ownerIdArena),
    accountRecords: copyInto(parts.accountRecords, spare?.accountRecords, headroom, (buffer, length) => new Int32Array(buffer, 0, length)),
  };
}

/**
 * `spare`: a previous capture's buffers, copied into when large enough. `headroom`: a fresh copy
 * takes the live arrays' capacity, so the next capture fits in it while accounts are opened
 * (an exact-size copy is too small after one opening); only worth it when the copy is kept.
 */
export type CaptureReuse = Readonly<{ spare?: CaptureBuffers | undefined; headroom?: boolean }>;

/** Bytes of the live arrays a capture with headroom allocates (their capacity). */
export function captureCapacityBytes(state: LedgerState): number {
  const parts = accountPartsOf(state);
  return parts.accountIdLengths.buffer.byteLength + parts.ownerIdLengths.buffer.byteLength + parts.accountRecords.buffer.byteLength;
}

/**
 * Buffers a previous capture was copied into, handed back once its snapshot is written: memory
 * already mapped. A fresh copy of tens of MB pays a page fault per 4 KiB page on the engine
 * thread, inside the capture pause.
 */
export type CaptureBuffers = Readonly<{ accountIdLengths: ArrayBuffer; ownerIdLengths: ArrayBuffer; accountRecords: ArrayBuffer }>;

/** The buffers a capture's copies live in, to hand back as CaptureBuffers. */
export function captureBuffersOf(parts: AccountParts): CaptureBuffers {
  return { accountIdLengths: parts.accountIdLengths.buffer as ArrayBuffer, ownerIdLengths: parts.ownerIdLengths.buffer as ArrayBuffer, accountRecords: parts.accountRecords.buffer as ArrayBuffer };
}

/** A copy of `source` at the start of `spare` when it is large enough, else in a new buffer (as large as the live array's, with `headroom`). */
function copyInto<T extends Uint8Array | Int32Array>(source: T, spare: ArrayBuffer | undefined, headroom: boolean, view: (buffer: ArrayBuffer, length: number) => T): T {
  const fits = spare !== undefined && spare.byteLength >= source.byteLength;
  const buffer = fits ? spare : new ArrayBuffer(headroom ? source.buffer.byteLength : source.byteLength);
  const copy = view(buffer, source.length);
  copy.set(source);
  return copy;
}

/** An append-only arena's view as it is (IdTable keeps its arena in shared memory). */
function frozenPrefix(arena: Int32Array): Int32Array {
  assert(arena.buffer instanceof SharedArrayBuffer, 'an id arena lives in shared memory');
  return arena;
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

/** The live state's digest: its account side and the fold of its transaction table's slots (a compact copy while it grows). */
export function stateDigest(state: LedgerState): string {
  return digestOfParts(accountPartsOf(state), foldTxnWords(state.txns.digestWords()));
}
