/**
 * Transaction chunks: a snapshot's remembered transaction ids, stored as immutable files of the
 * entries logged in one sequence range, so that each snapshot writes only the entries logged
 * since the previous one instead of the whole table. Entries are facts that never change once
 * logged (an id's outcome is final), which is what makes a delta enough.
 *
 * A snapshot lists the chunks that together hold every entry up to its sequence, contiguous
 * from sequence 1. Small chunks are merged like a binary counter: after a new chunk is added,
 * while the one before it holds no more entries than it and the two together at most
 * CHUNK_MERGE_ENTRIES_MAX, the two become one. A snapshot taken every 5M records writes a chunk
 * above that size, never rewritten; chunks from snapshots close together (restarts, the CLI)
 * merge up to it. So an entry is written a few times at most over the life of the ledger, and
 * a table of n entries has about n / 2M chunks plus log2 of the small ones.
 *
 * Measured (1M accounts, end to end at about 800k transfers/s): merging without a size bound
 * made the second snapshot rewrite 9M entries, 2.97 s of the worker's time against 0.35–0.73 s
 * for writing one 3.5–5M-entry chunk.
 *
 * A chunk is written front to back as its entries come (ChunkFileWriter): the engine's chunk
 * spool appends each block of the running journal as it fills, so by the time a snapshot is
 * taken most of its chunk is on disk, and sealing it writes the tail and the trailer. Only the
 * start of the range is known when a chunk is begun, so version 2 keeps the range's end and the
 * count in the trailer, where version 1 had them in the header (still read).
 *
 * Byte table, version 2 (docs/LOG-FORMAT.md, which also has version 1), little-endian:
 *
 * | off      | bytes | field                                                   |
 * |----------|-------|---------------------------------------------------------|
 * | 0        | 8     | magic "WTXNCHK2"                                        |
 * | 8        | 8     | after sequence (u64): entries are logged after it        |
 * | 16       | 16    | reserved, zero                                          |
 * | 32       | 24·n  | entries: six u32 words each, the transaction table's slot layout |
 * | 32+24n   | 8     | to sequence (u64): ... and up to it                      |
 * | 40+24n   | 4     | entry count n (u32)                                     |
 * | 44+24n   | 4     | reserved, zero                                          |
 * | 48+24n   | 16    | fold of the entries (four u32 lanes, see foldTxnWords)   |
 * | 64+24n   | 4     | CRC-32 of every byte before it                          |
 */
import { readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { bytesOf } from '../core/digest.js';
import { foldTxnWords, TXN_ENTRY_WORDS } from '../core/txn-table.js';
import { fsyncDirectory } from '../log/segments.js';
import { assert } from '../stdx/assert.js';
import { ChecksummedWriter, readChecksummedFile } from './checked-file.js';

/** Version 1: the range's end and the count in the header (read, no longer written). */
const MAGIC_V1 = Buffer.from('WTXNCHK1', 'latin1');
/** Version 2: the range's end and the count in the trailer, so a chunk can be written as its entries come. */
const MAGIC = Buffer.from('WTXNCHK2', 'latin1');
const HEADER_BYTES = 32;
/** Version 2's trailer before the CRC-32: to sequence, count, reserved, fold. */
const TRAILER_BYTES = 32;
/** A chunk file's name (chunkFileName); snapshot metas are checked against it too. */
export const CHUNK_NAME_PATTERN = /^txns-\d{20}-\d{20}\.wtxn$/;
/** Chunk files and the temporaries a crash may leave of them (a chunk being spooled is not one: see OPEN_CHUNK_PATTERN). */
const CHUNK_PATTERN = /^txns-\d{20}-\d{20}\.wtxn(\.tmp)?$/;
/** Chunks begun before their range's end was known (the spool's): leftovers only after a restart. */
const OPEN_CHUNK_PATTERN = /^txns-\d{20}-open\.wtxn\.tmp$/;
/** Chunks are merged only up to this many entries (96 MiB): larger ones are written once. */
const CHUNK_MERGE_ENTRIES_MAX = 1 << 22;

/** A chunk as a snapshot's meta lists it. */
export type ChunkRef = Readonly<{
  name: string;
  afterSequence: number;
  toSequence: number;
  count: number;
  /** foldTxnWords of its entries: the state digest sums the chunks' folds without reading them. */
  fold: readonly number[];
}>;

function chunkFileName(afterSequence: number, toSequence: number): string {
  return `txns-${String(afterSequence).padStart(20, '0')}-${String(toSequence).padStart(20, '0')}.wtxn`;
}

/** The lane-wise sum (mod 2^32) of folds: the fold of the entries of all of them. */
export function sumFolds(folds: ReadonlyArray<ArrayLike<number>>): Uint32Array {
  const sum = new Uint32Array(4);
  for (const fold of folds) for (let lane = 0; lane < 4; lane++) sum[lane] = sum[lane]! + fold[lane]!;
  return sum;
}

/**
 * New entries for a chunk: how many, and a way through them a piece at a time, so that a large
 * chunk is written without all its entries in memory at once (a snapshot's worker gathers them
 * from the table's slots). A piece may be overwritten once the next is asked for.
 */
export type EntryPieces = Readonly<{ count: number; pieces: () => Iterable<Uint32Array> }>;

/** What addChunk adds: new entries as pieces, or a chunk of them already written (the spool's, sealed). */
export type ChunkInput = EntryPieces | Readonly<{ sealed: ChunkRef }>;

/** Entries already in memory, as EntryPieces. */
export function entryPiecesOf(parts: readonly Uint32Array[]): EntryPieces {
  assert(parts.every((part) => part.length % TXN_ENTRY_WORDS === 0), 'chunk entries not a whole number of entries');
  return { count: entriesIn(parts), pieces: () => parts };
}

/**
 * A chunk file written front to back: begun with only the start of its range, its entries added
 * a piece at a time (folded as they go, unless their fold is known), then finished with the end
 * of the range, fsynced and renamed to its name. Until then it is a temporary file; `abandon`
 * removes it. The caller fsyncs the directory (after several, once).
 */
export class ChunkFileWriter {
  private readonly writer: ChecksummedWriter;
  private readonly fold = new Uint32Array(4);
  count = 0;

  /** `toSequence` when already known names the temporary file after the whole range. */
  constructor(
    private readonly dir: string,
    readonly afterSequence: number,
    toSequence?: number,
  ) {
    const tempName = toSequence === undefined ? openChunkFileName(afterSequence) : `${chunkFileName(afterSequence, toSequence)}.tmp`;
    this.writer = new ChecksummedWriter(join(dir, tempName));
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(header, 0);
      header.writeBigUInt64LE(BigInt(afterSequence), 8);
      this.writer.write(header);
    } catch (error) {
      this.writer.abandon();
      throw error;
    }
  }

  /** Appends whole entries; `fold` is their foldTxnWords when the caller has it (a chunk being merged). */
  add(entries: Uint32Array, fold: ArrayLike<number> = foldTxnWords(entries)): void {
    assert(entries.length % TXN_ENTRY_WORDS === 0, 'chunk entries not a whole number of entries');
    this.writer.write(bytesOf(entries));
    for (let lane = 0; lane < 4; lane++) this.fold[lane] = this.fold[lane]! + fold[lane]!; // mod 2^32, as sumFolds
    this.count += entries.length / TXN_ENTRY_WORDS;
  }

  /** Ends the range at `toSequence`: trailer, CRC-32, fsync, rename into place. */
  finish(toSequence: number): ChunkRef {
    assert(this.afterSequence < toSequence, 'chunk range malformed');
    const trailer = Buffer.alloc(TRAILER_BYTES);
    trailer.writeBigUInt64LE(BigInt(toSequence), 0);
    trailer.writeUInt32LE(this.count, 8);
    trailer.set(bytesOf(this.fold), 16);
    this.writer.write(trailer);
    this.writer.finish();
    const name = chunkFileName(this.afterSequence, toSequence);
    renameSync(this.writer.path, join(this.dir, name));
    return { name, afterSequence: this.afterSequence, toSequence, count: this.count, fold: [...this.fold] };
  }

  /** After a failure, or when the chunk is no longer wanted: closes and removes the temporary file. */
  abandon(): void {
    this.writer.abandon();
  }
}

function openChunkFileName(afterSequence: number): string {
  return `txns-${String(afterSequence).padStart(20, '0')}-open.wtxn.tmp`;
}

/**
 * Entries logged in (afterSequence, toSequence] written as one chunk file (fsynced, renamed into
 * place): `merged`, whole older chunks with their folds, then the new entries; `count` is all of
 * them (addChunk has it from deciding the merge).
 */
function writeChunk(dir: string, afterSequence: number, toSequence: number, count: number, merged: ReadonlyArray<{ entries: Uint32Array; fold: readonly number[] }>, fresh: EntryPieces): ChunkRef {
  const file = new ChunkFileWriter(dir, afterSequence, toSequence);
  try {
    for (const chunk of merged) file.add(chunk.entries, chunk.fold);
    const freshBefore = file.count;
    for (const piece of fresh.pieces()) file.add(piece);
    assert(file.count - freshBefore === fresh.count, 'a chunk got a different number of entries than it was told');
    assert(file.count === count, 'a merged chunk holds a different count than decided');
    return file.finish(toSequence);
  } catch (error) {
    file.abandon();
    throw error;
  }
}

/** The chunk's version (1 or 2) if its header is one and agrees with `ref` as far as that version's header says; else undefined. */
function headerVersion(header: Buffer, ref: ChunkRef): 1 | 2 | undefined {
  if (Number(header.readBigUInt64LE(8)) !== ref.afterSequence) return undefined;
  const magic = header.subarray(0, 8);
  if (magic.equals(MAGIC)) return header.subarray(16).every((byte) => byte === 0) ? 2 : undefined;
  const v1RangeMatches = Number(header.readBigUInt64LE(16)) === ref.toSequence && header.readUInt32LE(24) === ref.count;
  return magic.equals(MAGIC_V1) && v1RangeMatches ? 1 : undefined;
}

/** A chunk's entries, checked against its CRC-32 and against what `ref` says it holds (version 1 or 2). */
export function readChunk(dir: string, ref: ChunkRef): Uint32Array {
  const path = join(dir, ref.name);
  return readChecksummedFile(path, (reader) => {
    const header = Buffer.alloc(HEADER_BYTES);
    reader.read(header);
    const version = headerVersion(header, ref);
    if (version === undefined) throw new Error(`${path}: header does not match the snapshot's chunk list`);
    // The count comes from a meta not yet CRC-checked: it must fit the file before it sizes anything.
    const after = version === 2 ? TRAILER_BYTES : 16;
    if (ref.count * TXN_ENTRY_WORDS * 4 + after !== reader.remaining) throw new Error(`${path}: size does not match the snapshot's chunk list`);
    const entries = new Uint32Array(ref.count * TXN_ENTRY_WORDS);
    reader.read(bytesOf(entries));
    if (version === 2) {
      const trailer = Buffer.alloc(16);
      reader.read(trailer);
      if (Number(trailer.readBigUInt64LE(0)) !== ref.toSequence || trailer.readUInt32LE(8) !== ref.count || trailer.readUInt32LE(12) !== 0) throw new Error(`${path}: trailer does not match the snapshot's chunk list`);
    }
    const fold = new Uint32Array(4);
    reader.read(bytesOf(fold));
    if (fold.some((lane, index) => lane !== ref.fold[index])) throw new Error(`${path}: fold does not match the snapshot's chunk list`);
    return entries;
  });
}

/**
 * The chunk list after adding the entries logged in (the last chunk's end, toSequence]: given as
 * pieces, or already written as a chunk of that range (`sealed`, the chunk spool's). The merge is
 * decided from the counts alone, before anything is written: going back from the newest chunk,
 * each one no larger than what it would join, while the two fit in `mergeEntriesMax`, joins;
 * then one file holds the joined chunks (read once) and the new entries. A sealed chunk that
 * joins nothing is listed as it is. The files of chunks merged away stay until no kept snapshot
 * lists them (pruneChunks).
 */
export function addChunk(dir: string, chunks: readonly ChunkRef[], toSequence: number, entries: ChunkInput, mergeEntriesMax = CHUNK_MERGE_ENTRIES_MAX): ChunkRef[] {
  const afterSequence = chunks.at(-1)?.toSequence ?? 0;
  const newCount = 'sealed' in entries ? entries.sealed.count : entries.count;
  if ('sealed' in entries) assert(entries.sealed.afterSequence === afterSequence && entries.sealed.toSequence === toSequence, 'a sealed chunk does not continue the chunk list');
  if (afterSequence === toSequence) {
    // A second snapshot at the same position (walletd snapshot on an idle ledger): nothing new.
    assert(newCount === 0, 'entries logged at or before the last chunk');
    return [...chunks];
  }
  const list = [...chunks];
  const joined: ChunkRef[] = [];
  let count = newCount;
  for (let older = list.at(-1); older !== undefined && older.count <= count && older.count + count <= mergeEntriesMax; older = list.at(-1)) {
    joined.unshift(list.pop()!);
    count += older.count;
  }
  if ('sealed' in entries && joined.length === 0) return [...list, entries.sealed];
  const merged = joined.map((chunk) => ({ entries: readChunk(dir, chunk), fold: chunk.fold }));
  const fresh = 'sealed' in entries ? entryPiecesOf([readChunk(dir, entries.sealed)]) : entries;
  list.push(writeChunk(dir, joined[0]?.afterSequence ?? afterSequence, toSequence, count, merged, fresh));
  fsyncDirectory(dir);
  return list;
}

function entriesIn(parts: readonly Uint32Array[]): number {
  return parts.reduce((sum, part) => sum + part.length / TXN_ENTRY_WORDS, 0);
}

/** Checks that a snapshot's chunks run contiguously from sequence 0 to its own sequence. */
export function checkChunkList(chunks: readonly ChunkRef[], sequence: number, txnCount: number): void {
  let next = 0;
  let count = 0;
  for (const chunk of chunks) {
    if (chunk.afterSequence !== next || chunk.toSequence <= chunk.afterSequence) throw new Error(`chunk ${chunk.name} does not continue at sequence ${next}`);
    if (chunk.name !== chunkFileName(chunk.afterSequence, chunk.toSequence)) throw new Error(`chunk ${chunk.name} is not named for its range`);
    next = chunk.toSequence;
    count += chunk.count;
  }
  if (chunks.length > 0 && next !== sequence) throw new Error(`the chunks end at sequence ${next}, not at the snapshot's ${sequence}`);
  if (chunks.length > 0 && count !== txnCount) throw new Error(`the chunks hold ${count} entries, not the snapshot's ${txnCount}`);
}

/** Removes chunk files (and leftover temporary ones) that no kept snapshot lists; a chunk being spooled is left alone. */
export function pruneChunks(dir: string, referenced: ReadonlySet<string>): void {
  for (const name of readdirSync(dir)) {
    if (CHUNK_PATTERN.test(name) && !referenced.has(name)) unlinkSync(join(dir, name));
  }
}

/**
 * Removes chunks a previous run began and never sealed (its spool's): at start, before a new
 * spool begins one. They are only disk: one that cannot be removed is left, and said.
 */
export function removeOpenChunks(dir: string, warn: (message: string) => void): void {
  for (const name of readdirSync(dir)) {
    if (!OPEN_CHUNK_PATTERN.test(name)) continue;
    try {
      unlinkSync(join(dir, name));
    } catch (error) {
      warn(`could not remove ${join(dir, name)}, a chunk an earlier run left unfinished: ${(error as Error).message}`);
    }
  }
}
