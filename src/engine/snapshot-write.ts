/**
 * Writing a snapshot file: what the snapshot worker runs (snapshot-worker.ts), kept apart from
 * reading, listing and committing (snapshot.ts) so that the worker, started for every snapshot,
 * loads no more than it needs (the meta schema's validator is not). Layout in snapshot.ts and
 * docs/LOG-FORMAT.md.
 */
import { join } from 'node:path';
import { bytesOf, digestOfParts, type AccountParts } from '../core/digest.js';
import { gatherJournalEntries } from '../core/txn-table.js';
import { writeChecksummedFile } from './checked-file.js';
import type { SnapshotMeta } from './snapshot.js';
import { addChunk, checkChunkList, sumFolds, type ChunkRef } from './txn-chunks.js';

export const SNAPSHOT_MAGIC = Buffer.from('WSNAP001', 'latin1');
/** The version this code writes; it reads this one and every older one listed. */
export const SNAPSHOT_VERSION = 2;
export const SNAPSHOT_VERSIONS_READ = [1, SNAPSHOT_VERSION] as const;

type Section = Readonly<{ name: string; data: ArrayBufferView }>;

/** The sections a snapshot file holds: the accounts (the transaction entries go to chunks). */
function sectionsOf(parts: AccountParts): Section[] {
  return [
    { name: 'account_id_lengths', data: parts.accountIdLengths },
    { name: 'account_id_arena', data: parts.accountIdArena },
    { name: 'owner_id_lengths', data: parts.ownerIdLengths },
    { name: 'owner_id_arena', data: parts.ownerIdArena },
    { name: 'account_records', data: parts.accountRecords },
  ];
}

export function snapshotFileName(sequence: number): string {
  return `snapshot-${String(sequence).padStart(20, '0')}.wsnap`;
}

export type SnapshotPosition = Readonly<{ chainHash: string; logSegmentFirstSequence: number; logOffset: number; nowMs: number }>;

/**
 * A snapshot's new transaction entries: copied already (a scan of the table), or named by a
 * journal: slots of the table's shared slot array, read on the worker.
 */
export type NewEntries = Readonly<{ entries: Uint32Array } | { words: Uint32Array; slots: Uint32Array; afterSequence: number; toSequence: number }>;

function entriesOf(source: NewEntries): Uint32Array {
  return 'entries' in source ? source.entries : gatherJournalEntries(source.words, source.slots, source.afterSequence, source.toSequence);
}

export type WrittenSnapshot = Readonly<{ tempPath: string; bytes: number; chunks: ChunkRef[] }>;

/**
 * Writes the chunk of `newEntries`, those logged since `chunksBefore` end, merging chunks as
 * txn-chunks.ts says, then digests the state (the chunks' folds summed) and writes the account
 * side to a temporary snapshot file, fsynced. Runs on any thread (the engine hands copies to a
 * worker). Returns the temp path, its size and the snapshot's chunk list.
 */
export function writeSnapshotFile(dir: string, parts: AccountParts, newEntries: NewEntries, position: SnapshotPosition, chunksBefore: readonly ChunkRef[]): WrittenSnapshot {
  const chunks = addChunk(dir, chunksBefore, parts.headSequence, [entriesOf(newEntries)]);
  const sections = sectionsOf(parts);
  const meta: SnapshotMeta = {
    version: SNAPSHOT_VERSION,
    sequence: parts.headSequence,
    chainHash: position.chainHash,
    digest: digestOfParts(parts, sumFolds(chunks.map((chunk) => chunk.fold))),
    createdAtMs: position.nowMs,
    logSegmentFirstSequence: position.logSegmentFirstSequence,
    logOffset: position.logOffset,
    accountCount: parts.accountCount,
    txnCount: parts.txnCount,
    txnSlots: parts.txnSlots,
    sections: sections.map((section) => ({ name: section.name, bytes: section.data.byteLength })),
    txnChunks: chunks,
  };
  checkChunkList(chunks, meta.sequence, meta.txnCount);
  const tempPath = join(dir, `${snapshotFileName(meta.sequence)}.tmp`);
  const bytes = writeChecksummedFile(tempPath, (writer) => {
    const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(metaBytes.length, 0);
    writer.write(SNAPSHOT_MAGIC);
    writer.write(length);
    writer.write(metaBytes);
    for (const section of sections) writer.write(bytesOf(section.data));
  });
  return { tempPath, bytes, chunks };
}
