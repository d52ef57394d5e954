/**
 * The account records as they stood at one sequence, handed out a piece at a time while the
 * engine goes on changing them: what a snapshot writes, without a copy of every record at once
 * (32 bytes an account: 320 MB at 10M accounts, held for the whole write, and a pause on the
 * engine thread to make it).
 *
 * Copy-on-write by account: before a record not yet handed out changes for the first time since
 * the capture, its old 32 bytes are kept. "For the first time" needs no bitmap: every change
 * stamps the record with its event's sequence (word 4..5), so a record whose stamp is still at
 * or below the capture's sequence has not changed since. A piece is copied from the live
 * records, and the kept records of its accounts are put back over the copy. Accounts opened
 * after the capture lie past its count and are not part of it.
 *
 * What is kept is bounded by what changes before it is handed out: the records of the accounts
 * touched in the pieces not yet copied. Under uniform load at 1M transfers/s, with pieces handed
 * out as fast as a worker writes them (about a second for 10M accounts), that is on the order of
 * a million records (36 MB). The worst case is every record changing before its piece goes:
 * 36 bytes an account, 1.13 times a full copy (a piece's list doubles up to exactly its size
 * when pieces hold a power of two of accounts, as by default), plus the pieces in flight.
 */
import { assert } from '../stdx/assert.js';
import { ACCOUNT_WORDS, type LedgerState } from './ledger-state.js';

/** Accounts per piece: 1 MiB of records, about 0.1 ms of copying on the engine thread. */
export const CAPTURE_PIECE_ACCOUNTS = 1 << 15;
/** What one kept record costs: its 32 bytes and its account index. */
export const KEPT_RECORD_BYTES = ACCOUNT_WORDS * 4 + 4;
/** Records a piece's list of kept records has room for when it starts; it doubles from there. */
const KEPT_INITIAL = 16;

/** The records kept for one piece: account indices and their records as of the capture. */
type KeptRecords = { indices: Int32Array; records: Int32Array; count: number };

export class RecordsCapture {
  /** Accounts [0, handedOut) have been copied out. */
  private handedOut = 0;
  private readonly kept: Array<KeptRecords | undefined>;
  /** Records kept and not yet put back into a piece. */
  keptCount = 0;
  /** The most records kept at once (36 bytes each): the capture's memory beyond its buffers. */
  keptPeak = 0;

  constructor(
    /** The sequence the records are captured at: the state's head when the capture began. */
    readonly sequence: number,
    readonly accountCount: number,
    readonly pieceAccounts = CAPTURE_PIECE_ACCOUNTS,
  ) {
    assert(Number.isSafeInteger(pieceAccounts) && pieceAccounts > 0, 'a capture piece holds at least one account');
    this.kept = new Array<KeptRecords | undefined>(Math.ceil(accountCount / pieceAccounts));
  }

  get done(): boolean {
    return this.handedOut >= this.accountCount;
  }

  /** Words of the largest piece: what a buffer passed to copyNextPiece must hold. */
  get pieceWords(): number {
    return this.pieceAccounts * ACCOUNT_WORDS;
  }

  /**
   * Call before account `index`'s record changes: keeps the record as it was at the capture,
   * unless it is already handed out, opened after the capture, or changed (and kept) before.
   */
  beforeChange(state: LedgerState, index: number): void {
    if (index < this.handedOut || index >= this.accountCount) return;
    if (state.lastEntrySequenceOf(index) > this.sequence) return;
    const piece = Math.floor(index / this.pieceAccounts);
    let kept = this.kept[piece];
    if (kept === undefined) {
      kept = { indices: new Int32Array(KEPT_INITIAL), records: new Int32Array(KEPT_INITIAL * ACCOUNT_WORDS), count: 0 };
      this.kept[piece] = kept;
    } else if (kept.count === kept.indices.length) {
      kept.indices = grown(kept.indices, kept.indices.length * 2);
      kept.records = grown(kept.records, kept.records.length * 2);
    }
    const at = index * ACCOUNT_WORDS;
    kept.indices[kept.count] = index;
    kept.records.set(state.ints.subarray(at, at + ACCOUNT_WORDS), kept.count * ACCOUNT_WORDS);
    kept.count++;
    this.keptCount++;
    if (this.keptCount > this.keptPeak) this.keptPeak = this.keptCount;
  }

  /**
   * Copies the next piece's records, as they stood at the capture, to the start of `target`;
   * returns the number of words written (0 once done).
   */
  copyNextPiece(state: LedgerState, target: Int32Array): number {
    if (this.done) return 0;
    const first = this.handedOut;
    const end = Math.min(first + this.pieceAccounts, this.accountCount);
    const words = (end - first) * ACCOUNT_WORDS;
    assert(target.length >= words, 'a capture piece does not fit its buffer');
    target.set(state.ints.subarray(first * ACCOUNT_WORDS, end * ACCOUNT_WORDS));
    const piece = Math.floor(first / this.pieceAccounts);
    const kept = this.kept[piece];
    if (kept !== undefined) {
      for (let i = 0; i < kept.count; i++) {
        const at = (kept.indices[i]! - first) * ACCOUNT_WORDS;
        target.set(kept.records.subarray(i * ACCOUNT_WORDS, (i + 1) * ACCOUNT_WORDS), at);
      }
      this.keptCount -= kept.count;
      this.kept[piece] = undefined;
    }
    this.handedOut = end;
    return words;
  }
}

function grown(array: Int32Array, length: number): Int32Array {
  const bigger = new Int32Array(length);
  bigger.set(array);
  return bigger;
}
