/**
 * Snapshots: the whole state at one log position, so recovery reads the newest snapshot and
 * replays only the log after it. Byte table in docs/LOG-FORMAT.md.
 *
 * | off  | bytes | field                                                         |
 * |------|-------|---------------------------------------------------------------|
 * | 0    | 8     | magic "WSNAP001"                                              |
 * | 8    | 4     | meta length n (u32)                                           |
 * | 12   | n     | meta, JSON: sequence, chain hash, digest, log position, sizes |
 * | 12+n | …     | sections in meta order (raw little-endian typed arrays)       |
 * | end-4| 4     | CRC-32 of every byte before it                                |
 *
 * Written atomically: temporary file, fsync, rename, fsync of the directory. The rename
 * happens only once the log is durable up to the snapshot's sequence.
 */
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, readdirSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { assert } from '../stdx/assert.js';
import { bytesOf, digestOfParts, stateDigest, type StateParts } from '../core/digest.js';
import { IdTable } from '../core/id-table.js';
import { ACCOUNT_WORDS, LedgerState } from '../core/ledger-state.js';
import { TxnTable } from '../core/txn-table.js';
import { fsyncDirectory } from '../log/segments.js';

const MAGIC = Buffer.from('WSNAP001', 'latin1');
const SNAPSHOT_PATTERN = /^snapshot-(\d{20})\.wsnap$/;
const META_BYTES_MAX = 1 << 20;
/** Snapshot bytes written between two fdatasyncs of the snapshot file. */
const SNAPSHOT_SYNC_EVERY_BYTES = 16 * 1024 * 1024;
/** Snapshots kept on disk: the newest, plus one older in case the newest is damaged. */
export const SNAPSHOTS_KEPT = 2;

export type SnapshotMeta = Readonly<{
  version: 1;
  sequence: number;
  chainHash: string;
  digest: string;
  createdAtMs: number;
  logSegmentFirstSequence: number;
  logOffset: number;
  accountCount: number;
  txnCount: number;
  txnSlots: number;
  sections: ReadonlyArray<Readonly<{ name: string; bytes: number }>>;
}>;

export type LoadedSnapshot = Readonly<{ meta: SnapshotMeta; state: LedgerState; path: string }>;

type Section = Readonly<{ name: string; data: ArrayBufferView }>;

function sectionsOf(parts: StateParts): Section[] {
  return [
    { name: 'account_id_lengths', data: parts.accountIdLengths },
    { name: 'account_id_arena', data: parts.accountIdArena },
    { name: 'owner_id_lengths', data: parts.ownerIdLengths },
    { name: 'owner_id_arena', data: parts.ownerIdArena },
    { name: 'account_records', data: parts.accountRecords },
    { name: 'txn_entries', data: parts.txnWords },
  ];
}

export function snapshotFileName(sequence: number): string {
  return `snapshot-${String(sequence).padStart(20, '0')}.wsnap`;
}

export function listSnapshots(dir: string): Array<{ sequence: number; path: string }> {
  return readdirSync(dir)
    .map((name) => ({ match: SNAPSHOT_PATTERN.exec(name), name }))
    .filter((entry) => entry.match !== null)
    .map((entry) => ({ sequence: Number(entry.match![1]), path: join(dir, entry.name) }))
    .sort((a, b) => b.sequence - a.sequence);
}

export type SnapshotPosition = Readonly<{ chainHash: string; logSegmentFirstSequence: number; logOffset: number; nowMs: number }>;

/**
 * Digests the state parts and writes them to a temporary snapshot file, fsynced. Runs on any
 * thread (the engine hands a copy of the parts to a worker). Returns the temp path and size.
 */
export function writeSnapshotFile(dir: string, parts: StateParts, position: SnapshotPosition): { tempPath: string; bytes: number } {
  const sections = sectionsOf(parts);
  const meta: SnapshotMeta = {
    version: 1,
    sequence: parts.headSequence,
    chainHash: position.chainHash,
    digest: digestOfParts(parts),
    createdAtMs: position.nowMs,
    logSegmentFirstSequence: position.logSegmentFirstSequence,
    logOffset: position.logOffset,
    accountCount: parts.accountCount,
    txnCount: parts.txnCount,
    txnSlots: parts.txnSlots,
    sections: sections.map((section) => ({ name: section.name, bytes: section.data.byteLength })),
  };
  const tempPath = join(dir, `${snapshotFileName(meta.sequence)}.tmp`);
  const fd = openSync(tempPath, 'w', 0o600);
  let bytes = 0;
  let crc = 0;
  let unsyncedBytes = 0;
  const write = (data: Uint8Array): void => {
    for (let at = 0; at < data.length; ) {
      const written = writeSync(fd, data, at, Math.min(SNAPSHOT_SYNC_EVERY_BYTES, data.length - at));
      at += written;
      unsyncedBytes += written;
      // Flush as we go: on ext4 (data=ordered) the log's fdatasync would otherwise wait for
      // every dirty byte of the snapshot, stalling group commits for seconds.
      if (unsyncedBytes >= SNAPSHOT_SYNC_EVERY_BYTES) {
        fdatasyncSync(fd);
        unsyncedBytes = 0;
      }
    }
    crc = crcUpdate(data, crc);
    bytes += data.length;
  };
  try {
    const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(metaBytes.length, 0);
    write(MAGIC);
    write(length);
    write(metaBytes);
    for (const section of sections) write(bytesOf(section.data));
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(crc, 0);
    writeSync(fd, trailer);
    bytes += 4;
    fsyncSync(fd);
  } catch (error) {
    // A failed write (ENOSPC, EIO) must not leave hundreds of MB behind under a name no later
    // snapshot reuses (the next one has another sequence).
    // Cleanup failing too must not hide the write error, which says what went wrong.
    try {
      closeSync(fd);
    } catch {
      // The descriptor is gone either way.
    }
    try {
      unlinkSync(tempPath);
    } catch {
      // Left behind: recovery ignores temporary files.
    }
    throw error;
  }
  closeSync(fd);
  return { tempPath, bytes };
}

/** Renames a written temporary snapshot into place (atomically) and prunes old ones. */
export function commitSnapshotFile(dir: string, tempPath: string, sequence: number): string {
  const finalPath = join(dir, snapshotFileName(sequence));
  renameSync(tempPath, finalPath);
  fsyncDirectory(dir);
  pruneSnapshots(dir);
  return finalPath;
}

/**
 * zlib.crc32 of a zero-length *buffer* restarts the checksum at 0 (Node 20), while an empty view
 * into a larger buffer keeps `crc`. A section can be empty (no accounts yet, no owner ids), so
 * empty data must not touch the running CRC at all.
 */
function crcUpdate(data: Uint8Array, crc: number): number {
  return data.length === 0 ? crc : crc32(data, crc);
}

function pruneSnapshots(dir: string): void {
  for (const old of listSnapshots(dir).slice(SNAPSHOTS_KEPT)) unlinkSync(old.path);
}

/** Reads and fully checks a snapshot (CRC, then the state digest recomputed). Throws if bad. */
export function loadSnapshot(path: string): LoadedSnapshot {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    let at = 0;
    let crc = 0;
    const read = (target: Uint8Array): void => {
      assert(at + target.length <= size - 4, `snapshot ${path} is truncated`);
      for (let got = 0; got < target.length; ) {
        const n = readSync(fd, target, got, target.length - got, at + got);
        if (n === 0) throw new Error(`snapshot ${path} is truncated`);
        got += n;
      }
      crc = crcUpdate(target, crc);
      at += target.length;
    };
    const head = Buffer.alloc(12);
    read(head);
    if (!head.subarray(0, 8).equals(MAGIC)) throw new Error(`snapshot ${path}: bad magic`);
    const metaLength = head.readUInt32LE(8);
    if (metaLength > META_BYTES_MAX) throw new Error(`snapshot ${path}: meta too large`);
    const metaBytes = Buffer.alloc(metaLength);
    read(metaBytes);
    const meta = JSON.parse(metaBytes.toString('utf8')) as SnapshotMeta;
    const data = readSections(meta, read);
    const trailer = Buffer.alloc(4);
    readSync(fd, trailer, 0, 4, at);
    if (at + 4 !== size || trailer.readUInt32LE(0) !== crc) throw new Error(`snapshot ${path}: checksum mismatch`);
    const state = stateFromSections(meta, data);
    const digest = stateDigest(state);
    if (digest !== meta.digest) throw new Error(`snapshot ${path}: state digest mismatch`);
    return { meta, state, path };
  } finally {
    closeSync(fd);
  }
}

const ELEMENT_TYPES: Record<string, (length: number) => ArrayBufferView> = {
  account_id_lengths: (n) => new Uint8Array(n),
  account_id_arena: (n) => new Int32Array(n / 4),
  owner_id_lengths: (n) => new Uint8Array(n),
  owner_id_arena: (n) => new Int32Array(n / 4),
  account_records: (n) => new Int32Array(n / 4),
  txn_entries: (n) => new Uint32Array(n / 4),
};

function readSections(meta: SnapshotMeta, read: (target: Uint8Array) => void): Map<string, ArrayBufferView> {
  const data = new Map<string, ArrayBufferView>();
  for (const section of meta.sections) {
    const make = ELEMENT_TYPES[section.name];
    if (make === undefined) throw new Error(`snapshot: unknown section ${section.name}`);
    const view = make(section.bytes);
    read(bytesOf(view));
    data.set(section.name, view);
  }
  return data;
}

function stateFromSections(meta: SnapshotMeta, data: Map<string, ArrayBufferView>): LedgerState {
  const get = <T extends ArrayBufferView>(name: string): T => {
    const view = data.get(name);
    if (view === undefined) throw new Error(`snapshot: missing section ${name}`);
    return view as T;
  };
  const accounts = IdTable.fromParts(get<Uint8Array>('account_id_lengths'), get<Int32Array>('account_id_arena'));
  const owners = IdTable.fromParts(get<Uint8Array>('owner_id_lengths'), get<Int32Array>('owner_id_arena'));
  const txns = TxnTable.fromEntries(get<Uint32Array>('txn_entries'), meta.txnSlots);
  assert(txns.count === meta.txnCount, 'snapshot transaction count mismatch');
  const state = new LedgerState(accounts, owners, txns);
  const n = accounts.count;
  assert(n === meta.accountCount, 'snapshot account count mismatch');
  state.ensureAccountCapacity(n);
  const records = get<Int32Array>('account_records');
  assert(records.length === n * ACCOUNT_WORDS, 'snapshot account records size mismatch');
  state.ints.set(records);
  for (let index = 0; index < n; index++) {
    if (state.isExternal(index)) state.noteExternal(state.currencyOf(index), index);
  }
  state.headSequence = meta.sequence;
  return state;
}
