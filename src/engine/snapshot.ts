/**
 * Snapshots: the whole state at one log position, so recovery reads the newest snapshot and
 * replays only the log after it. Byte table in docs/LOG-FORMAT.md.
 *
 * | off      | bytes | field                                                         |
 * |----------|-------|---------------------------------------------------------------|
 * | 0        | 8     | magic "WSNAP003"                                              |
 * | 8        | S     | sections in meta order (raw little-endian typed arrays)       |
 * | 8+S      | n     | meta, JSON: sequence, chain hash, digest, log position, sizes, transaction chunks |
 * | 8+S+n    | 4     | meta length n (u32)                                           |
 * | end-4    | 4     | CRC-32 of every byte before it                                |
 *
 * The meta comes last because the digest in it is known only once every record is written
 * (snapshot-write.ts); a reader finds it from the end, then reads the file in order. Versions 1
 * and 2 (magic "WSNAP001") put the meta length and meta right after the magic.
 *
 * The accounts are in the file; the remembered transaction ids are in the chunk files its meta
 * lists (txn-chunks.ts), of which a snapshot writes only the newest: the entries logged since
 * the previous snapshot. Version 1 files held every entry in a `txn_entries` section; they
 * still load.
 *
 * Written atomically: chunk and temporary file fsynced, rename, fsync of the directory. The
 * rename happens only once the log is durable up to the snapshot's sequence.
 */
import { readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type JSONSchemaType } from 'ajv';
import { assert } from '../stdx/assert.js';
import { bytesOf, stateDigest } from '../core/digest.js';
import { IdTable } from '../core/id-table.js';
import { ACCOUNT_WORDS, LedgerState } from '../core/ledger-state.js';
import { TXN_TABLE_ENTRIES_MAX, TXN_TABLE_SLOTS_MAX, TxnTable } from '../core/txn-table.js';
import { fsyncDirectory } from '../log/segments.js';
import { ChecksummedReader, readChecksummedFile } from './checked-file.js';
import { SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_META_FIRST, SNAPSHOT_VERSION, SNAPSHOT_VERSIONS_READ, snapshotFileName } from './snapshot-write.js';
import { CHUNK_NAME_PATTERN, checkChunkList, pruneChunks, readChunk, type ChunkRef } from './txn-chunks.js';


const SNAPSHOT_PATTERN = /^snapshot-(\d{20})\.wsnap$/;
/** A snapshot left half-written by a crash (recovery never reads it). */
const SNAPSHOT_TEMP_PATTERN = /^snapshot-\d{20}\.wsnap\.tmp$/;
const META_BYTES_MAX = 1 << 20;
/** Snapshots kept on disk: the newest, plus one older in case the newest is damaged. */
export const SNAPSHOTS_KEPT = 2;

export type SnapshotMeta = Readonly<{
  version: (typeof SNAPSHOT_VERSIONS_READ)[number];
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
  /** Version 2: the chunk files holding every remembered entry, oldest first. */
  txnChunks?: readonly ChunkRef[];
}>;

export type LoadedSnapshot = Readonly<{ meta: SnapshotMeta; state: LedgerState; path: string }>;

export function listSnapshots(dir: string): Array<{ sequence: number; path: string }> {
  return readdirSync(dir)
    .map((name) => ({ match: SNAPSHOT_PATTERN.exec(name), name }))
    .filter((entry) => entry.match !== null)
    .map((entry) => ({ sequence: Number(entry.match![1]), path: join(dir, entry.name) }))
    .sort((a, b) => b.sequence - a.sequence);
}

/** Renames a written temporary snapshot into place (atomically) and prunes old snapshots and chunks. */
export function commitSnapshotFile(dir: string, tempPath: string, sequence: number): string {
  const finalPath = join(dir, snapshotFileName(sequence));
  renameSync(tempPath, finalPath);
  fsyncDirectory(dir);
  pruneSnapshots(dir);
  return finalPath;
}

/**
 * Keeps the newest SNAPSHOTS_KEPT snapshots and the chunks they list, and removes temporary
 * files a crash or a failed snapshot left (runs right after a commit, or after an abandoned
 * snapshot's worker has exited: when no snapshot is being written). When a
 * kept snapshot's meta cannot be read, no chunk is removed: which ones it needs is unknown.
 */
export function pruneSnapshots(dir: string): void {
  const snapshots = listSnapshots(dir);
  for (const old of snapshots.slice(SNAPSHOTS_KEPT)) unlinkSync(old.path);
  for (const name of readdirSync(dir)) if (SNAPSHOT_TEMP_PATTERN.test(name)) unlinkSync(join(dir, name));
  const referenced = new Set<string>();
  for (const kept of snapshots.slice(0, SNAPSHOTS_KEPT)) {
    let meta: SnapshotMeta;
    try {
      meta = readSnapshotMeta(kept.path);
    } catch {
      return;
    }
    for (const chunk of meta.txnChunks ?? []) referenced.add(chunk.name);
  }
  pruneChunks(dir, referenced);
}

/**
 * Reads the magic and the meta, leaving the reader at the first section. For the meta-last
 * layout, `trailer` holds the meta and its length as found at the end: the caller reads them
 * again after the sections, so that the CRC covers them.
 */
function readHead(reader: ChecksummedReader): { meta: SnapshotMeta; trailer: Buffer | undefined } {
  const magic = Buffer.alloc(8);
  reader.read(magic);
  if (magic.equals(SNAPSHOT_MAGIC_META_FIRST)) {
    const length = Buffer.alloc(4);
    reader.read(length);
    const metaBytes = Buffer.alloc(checkedMetaLength(length.readUInt32LE(0), reader.remaining, reader.path));
    reader.read(metaBytes);
    const meta = parseMeta(metaBytes, reader.path);
    if (meta.version === SNAPSHOT_VERSION) throw new Error(`snapshot ${reader.path}: version ${meta.version} in the layout of versions 1 and 2`);
    return { meta, trailer: undefined };
  }
  if (!magic.equals(SNAPSHOT_MAGIC)) throw new Error(`snapshot ${reader.path}: bad magic`);
  const lengthAt = reader.size - 8;
  const length = Buffer.alloc(4);
  reader.readAt(length, lengthAt);
  const metaBytes = Buffer.alloc(checkedMetaLength(length.readUInt32LE(0), lengthAt - 8, reader.path));
  reader.readAt(metaBytes, lengthAt - metaBytes.length);
  const meta = parseMeta(metaBytes, reader.path);
  if (meta.version !== SNAPSHOT_VERSION) throw new Error(`snapshot ${reader.path}: version ${meta.version} in the layout of version ${SNAPSHOT_VERSION}`);
  return { meta, trailer: Buffer.concat([metaBytes, length]) };
}

function checkedMetaLength(length: number, room: number, path: string): number {
  if (length > META_BYTES_MAX) throw new Error(`snapshot ${path}: meta too large`);
  if (length > room) throw new Error(`snapshot ${path}: meta length ${length} passes the end of the file`);
  return length;
}

const COUNT = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const HEX_32 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const U32 = { type: 'integer', minimum: 0, maximum: 0xffff_ffff } as const;

/**
 * What a meta must hold before anything in it is used: a version this code reads (a newer
 * writer's file is refused, not misread), counts that are safe integers, and chunk names of
 * the chunk pattern (they are joined to the directory).
 */
const META_SCHEMA: JSONSchemaType<SnapshotMeta> = {
  type: 'object',
  required: ['version', 'sequence', 'chainHash', 'digest', 'createdAtMs', 'logSegmentFirstSequence', 'logOffset', 'accountCount', 'txnCount', 'txnSlots', 'sections'],
  properties: {
    version: { type: 'integer', enum: [...SNAPSHOT_VERSIONS_READ] },
    sequence: COUNT,
    chainHash: HEX_32,
    digest: HEX_32,
    createdAtMs: COUNT,
    logSegmentFirstSequence: COUNT,
    logOffset: COUNT,
    accountCount: COUNT,
    txnCount: COUNT,
    // Checked before a table of this many slots is allocated.
    txnSlots: { type: 'integer', minimum: 0, maximum: TXN_TABLE_SLOTS_MAX },
    sections: {
      type: 'array',
      items: { type: 'object', required: ['name', 'bytes'], properties: { name: { type: 'string' }, bytes: COUNT }, additionalProperties: false },
    },
    txnChunks: {
      type: 'array',
      nullable: true,
      items: {
        type: 'object',
        required: ['name', 'afterSequence', 'toSequence', 'count', 'fold'],
        properties: {
          name: { type: 'string', pattern: CHUNK_NAME_PATTERN.source },
          afterSequence: COUNT,
          toSequence: COUNT,
          count: COUNT,
          fold: { type: 'array', items: U32, minItems: 4, maxItems: 4 },
        },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
};
const validateMeta = new Ajv({ strict: true, allErrors: false }).compile(META_SCHEMA);

function parseMeta(metaBytes: Buffer, path: string): SnapshotMeta {
  let meta: unknown;
  try {
    meta = JSON.parse(metaBytes.toString('utf8'));
  } catch {
    throw new Error(`snapshot ${path}: meta is not JSON`);
  }
  // The version first: a newer writer's meta may differ in any field, and must be refused as such.
  const version: unknown = typeof meta === 'object' && meta !== null && 'version' in meta ? meta.version : undefined;
  if (!SNAPSHOT_VERSIONS_READ.some((known) => known === version)) {
    throw new Error(`snapshot ${path}: version ${JSON.stringify(version) ?? 'none'} is not one this walletd reads (${SNAPSHOT_VERSIONS_READ.join(' or ')})`);
  }
  if (validateMeta(meta)) return meta;
  const error = validateMeta.errors?.[0];
  throw new Error(`snapshot ${path}: meta ${error?.instancePath || '(root)'} ${error?.message ?? 'is malformed'}`);
}

/** A snapshot's meta alone (its sections and CRC unchecked): which chunks it lists. */
function readSnapshotMeta(path: string): SnapshotMeta {
  const reader = new ChecksummedReader(path);
  try {
    return readHead(reader).meta;
  } finally {
    reader.close();
  }
}

/**
 * Reads and fully checks a snapshot (CRC, chunks, then the state digest recomputed). Throws if bad.
 * `logEventsAtMost` (recovery's bound on the log's events) sizes the transaction table for the
 * snapshot's ids plus every event after it, so replaying the tail never grows the table.
 */
export function loadSnapshot(path: string, logEventsAtMost = 0): LoadedSnapshot {
  const { meta, data } = readChecksummedFile(path, (reader) => {
    const { meta, trailer } = readHead(reader);
    const data = readSections(meta, reader);
    if (trailer !== undefined) {
      const again = Buffer.alloc(trailer.length);
      reader.read(again);
      if (!again.equals(trailer)) throw new Error(`snapshot ${path}: the sections do not end where the meta begins`);
    }
    return { meta, data };
  });
  const chunks = meta.txnChunks ?? [];
  checkChunkList(chunks, meta.sequence, meta.txnCount);
  const dir = join(path, '..');
  const entries = [...(data.has('txn_entries') ? [data.get('txn_entries') as Uint32Array] : []), ...chunks.map((chunk) => readChunk(dir, chunk))];
  const tailEventsMax = Math.max(0, logEventsAtMost - meta.sequence);
  const txnSlots = Math.max(meta.txnSlots, TxnTable.slotsFor(Math.min(meta.txnCount + tailEventsMax, TXN_TABLE_ENTRIES_MAX)));
  const state = stateFromSections(meta, data, entries, txnSlots);
  const digest = stateDigest(state);
  if (digest !== meta.digest) throw new Error(`snapshot ${path}: state digest mismatch`);
  return { meta, state, path };
}

const ELEMENT_TYPES: Record<string, (length: number) => ArrayBufferView> = {
  account_id_lengths: (n) => new Uint8Array(n),
  account_id_arena: (n) => new Int32Array(n / 4),
  owner_id_lengths: (n) => new Uint8Array(n),
  owner_id_arena: (n) => new Int32Array(n / 4),
  account_records: (n) => new Int32Array(n / 4),
  txn_entries: (n) => new Uint32Array(n / 4),
};

/** The sections, each checked to fit in what is left of the file before anything is allocated for it (the meta is not CRC-checked yet). */
function readSections(meta: SnapshotMeta, reader: ChecksummedReader): Map<string, ArrayBufferView> {
  const data = new Map<string, ArrayBufferView>();
  for (const section of meta.sections) {
    const make = ELEMENT_TYPES[section.name];
    if (make === undefined) throw new Error(`snapshot: unknown section ${section.name}`);
    if (section.bytes > reader.remaining) throw new Error(`${reader.path} is truncated`);
    const view = make(section.bytes);
    reader.read(bytesOf(view));
    data.set(section.name, view);
  }
  return data;
}

function stateFromSections(meta: SnapshotMeta, data: Map<string, ArrayBufferView>, txnEntries: readonly Uint32Array[], txnSlots: number): LedgerState {
  const get = <T extends ArrayBufferView>(name: string): T => {
    const view = data.get(name);
    if (view === undefined) throw new Error(`snapshot: missing section ${name}`);
    return view as T;
  };
  const accounts = IdTable.fromParts(get<Uint8Array>('account_id_lengths'), get<Int32Array>('account_id_arena'));
  const owners = IdTable.fromParts(get<Uint8Array>('owner_id_lengths'), get<Int32Array>('owner_id_arena'));
  const txns = TxnTable.fromEntries(txnEntries, txnSlots);
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
