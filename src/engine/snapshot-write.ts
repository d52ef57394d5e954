/**
 * Writing a snapshot file: what the snapshot worker runs (snapshot-worker.ts), kept apart from
 * reading, listing and committing (snapshot.ts) so that the worker, started for every snapshot,
 * loads no more than it needs (the meta schema's validator is not). Layout in snapshot.ts and
 * docs/LOG-FORMAT.md.
 *
 * The account records arrive a piece at a time while the file is written (RecordsCapture), so
 * the digest is known only at the end: this layout (version 3) puts the meta after the
 * sections. Versions 1 and 2 put it first; they still load.
 */
import { join } from 'node:path';
import { bytesOf, StateDigester, type AccountIdParts } from '../core/digest.js';
import { ACCOUNT_WORDS } from '../core/ledger-state.js';
import { scanEntryPieces, type EntrySource } from '../core/txn-table.js';
import { assert } from '../stdx/assert.js';
import { ChecksummedWriter } from './checked-file.js';
import type { SnapshotMeta } from './snapshot.js';
import { addChunk, checkChunkList, sumFolds, type ChunkInput, type ChunkRef } from './txn-chunks.js';

/** Versions 1 and 2: magic, meta length, meta, sections, CRC-32. */
export const SNAPSHOT_MAGIC_META_FIRST = Buffer.from('WSNAP001', 'latin1');
/** Version 3: magic, sections, meta, meta length, CRC-32. */
export const SNAPSHOT_MAGIC = Buffer.from('WSNAP003', 'latin1');
/** The version this code writes; it reads this one and every older one listed. */
export const SNAPSHOT_VERSION = 3;
export const SNAPSHOT_VERSIONS_READ = [1, 2, SNAPSHOT_VERSION] as const;

type Section = Readonly<{ name: string; bytes: number }>;

/** The sections a snapshot file holds, in order: the accounts (the transaction entries go to chunks). */
function sectionsOf(parts: AccountIdParts): Section[] {
  return [
    { name: 'account_id_lengths', bytes: parts.accountIdLengths.byteLength },
    { name: 'account_id_arena', bytes: parts.accountIdArena.byteLength },
    { name: 'owner_id_lengths', bytes: parts.ownerIdLengths.byteLength },
    { name: 'owner_id_arena', bytes: parts.ownerIdArena.byteLength },
    { name: 'account_records', bytes: parts.accountCount * ACCOUNT_WORDS * 4 },
  ];
}

export function snapshotFileName(sequence: number): string {
  return `snapshot-${String(sequence).padStart(20, '0')}.wsnap`;
}

export type SnapshotPosition = Readonly<{ chainHash: string; logSegmentFirstSequence: number; logOffset: number; nowMs: number }>;

/**
 * A snapshot's new transaction entries: already written as a chunk by the engine's chunk spool
 * (`sealed`), or found by a scan of the arrays a hold keeps in place (TxnTable.holdEntries) with
 * the count the table had.
 */
export type NewEntries = Readonly<
  | { sealed: ChunkRef; afterSequence: number; toSequence: number }
  | { sources: readonly EntrySource[]; afterSequence: number; toSequence: number; count: number }
>;

/** The new entries as addChunk takes them: the sealed chunk, or a scan a piece at a time into one buffer (never all in memory). */
function chunkInput(source: NewEntries): ChunkInput {
  if ('sealed' in source) return { sealed: source.sealed };
  const { sources, afterSequence, toSequence, count } = source;
  return { count, pieces: () => scanEntryPieces(sources, afterSequence, toSequence, count) };
}

export type WrittenSnapshot = Readonly<{ tempPath: string; bytes: number; chunks: ChunkRef[] }>;

/**
 * A snapshot file being written to its temporary name: the ids at once, then the account records
 * as they come (addRecords), then `finish` lists the new transaction chunk (sealed by the
 * engine's spool, or written from a scan; merging chunks as txn-chunks.ts says), digests the state (the chunks' folds summed) and ends the file with the
 * meta, fsynced. Runs on any thread (the engine hands its parts to a worker).
 */
export class SnapshotFileWriter {
  private readonly writer: ChecksummedWriter;
  private readonly digester: StateDigester;
  private readonly sections: Section[];

  constructor(
    private readonly dir: string,
    private readonly parts: AccountIdParts,
    private readonly position: SnapshotPosition,
  ) {
    this.sections = sectionsOf(parts);
    this.writer = new ChecksummedWriter(join(dir, `${snapshotFileName(parts.headSequence)}.tmp`));
    try {
      this.digester = new StateDigester(parts);
      this.writer.write(SNAPSHOT_MAGIC);
      for (const view of [parts.accountIdLengths, parts.accountIdArena, parts.ownerIdLengths, parts.ownerIdArena]) this.writer.write(bytesOf(view));
    } catch (error) {
      this.writer.abandon();
      throw error;
    }
  }

  /** The next account records, in index order (the digester checks there are no more than the accounts). */
  addRecords(bytes: Uint8Array): void {
    this.digester.addRecords(bytes);
    this.writer.write(bytes);
  }

  /** Lists (or writes) the chunk of the entries logged since `chunksBefore` end, then writes the meta; returns the temp path, its size and the chunk list. */
  finish(newEntries: NewEntries, chunksBefore: readonly ChunkRef[]): WrittenSnapshot {
    const { parts, position } = this;
    const chunks = addChunk(this.dir, chunksBefore, parts.headSequence, chunkInput(newEntries));
    const meta: SnapshotMeta = {
      version: SNAPSHOT_VERSION,
      sequence: parts.headSequence,
      chainHash: position.chainHash,
      digest: this.digester.finish(sumFolds(chunks.map((chunk) => chunk.fold))),
      createdAtMs: position.nowMs,
      logSegmentFirstSequence: position.logSegmentFirstSequence,
      logOffset: position.logOffset,
      accountCount: parts.accountCount,
      txnCount: parts.txnCount,
      txnSlots: parts.txnSlots,
      sections: this.sections,
      txnChunks: chunks,
    };
    checkChunkList(chunks, meta.sequence, meta.txnCount);
    const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(metaBytes.length, 0);
    this.writer.write(metaBytes);
    this.writer.write(length);
    return { tempPath: this.writer.path, bytes: this.writer.finish(), chunks };
  }

  /** After a failure: closes and removes the temporary file. */
  abandon(): void {
    this.writer.abandon();
  }
}
