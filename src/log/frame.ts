/**
 * Log frames: one frame per group of events decided together. Byte table in docs/LOG-FORMAT.md.
 *
 * | off | bytes | field                                                              |
 * |-----|-------|--------------------------------------------------------------------|
 * | 0   | 4     | magic "WLG1"                                                       |
 * | 4   | 2     | format version: 1 or 2, by the chain hash the writer chose        |
 * | 6   | 2     | header bytes (80)                                                  |
 * | 8   | 4     | body bytes: events, then a u32 offset per event                    |
 * | 12  | 4     | event count (≥ 1)                                                  |
 * | 16  | 8     | sequence of the first event (u64)                                  |
 * | 24  | 8     | timestamp, ms since the Unix epoch, stamped by the engine (u64)    |
 * | 32  | 32    | chain hash: H(previous chain hash ‖ header[0,32) ‖ body), where H  |
 * |     |       | is BLAKE2b-512 cut to its first 32 bytes (version 2) or SHA-256 (1)|
 * | 64  | 4     | CRC-32 of the body                                                 |
 * | 68  | 8     | reserved, zero                                                     |
 * | 76  | 4     | CRC-32 of header[0,76)                                             |
 *
 * The first frame's previous chain hash is 32 zero bytes. Every integer is little-endian.
 *
 * Why two: the chain hash reads every byte the engine logs (on the log writer's thread, which
 * seals frames: sealFrame), and which algorithm is faster depends on the CPU. Without SHA instructions (this project's Intel host
 * of 2026-11-26) bench/frame-bench.ts encoded frames of 8,190 transfer events (71 bytes each)
 * in 224 ns a transfer with SHA-256, a fifth of a core at 1M transfers/s, and
 * 138 ns with BLAKE2b; on an AMD EPYC host, which has SHA instructions, the same bench gave
 * 56.6 ns with SHA-256 and 106.1 with BLAKE2b (2026-11-26, 12:47 UTC). So a writer times both once (fasterChainHash) and writes the version of
 * the faster; every reader checks either, and one log may hold both.
 */
import { createHash } from 'node:crypto';
import { crc32 } from '../stdx/crc32.js';
import { assert } from '../stdx/assert.js';

export const FRAME_MAGIC = 0x31474c57; // "WLG1" read as little-endian u32
/** Frames whose chain hash is SHA-256 (the only version before 467707d). */
export const FRAME_VERSION_SHA256 = 1;
/** Frames whose chain hash is the first 32 bytes of BLAKE2b-512. */
export const FRAME_VERSION_BLAKE2B = 2;
export type FrameVersion = typeof FRAME_VERSION_SHA256 | typeof FRAME_VERSION_BLAKE2B;
/** The chain hashes a frame may use: the one list options, calibration and readers go by. */
export const CHAIN_HASH_NAMES = ['sha256', 'blake2b'] as const;
export type ChainHashName = (typeof CHAIN_HASH_NAMES)[number];
export const FRAME_VERSION_OF: Readonly<Record<ChainHashName, FrameVersion>> = { sha256: FRAME_VERSION_SHA256, blake2b: FRAME_VERSION_BLAKE2B };
const FRAME_VERSIONS_READ = CHAIN_HASH_NAMES.map((name) => FRAME_VERSION_OF[name]);

/** The chain hash of frames of `version`, or undefined for a version this walletd does not read. */
export function chainHashOfVersion(version: number): ChainHashName | undefined {
  return CHAIN_HASH_NAMES.find((name) => FRAME_VERSION_OF[name] === version);
}
export const FRAME_HEADER_BYTES = 80;
export const CHAIN_HASH_BYTES = 32;
/** Limits: a frame holds at most this many events and body bytes. */
export const FRAME_EVENTS_MAX = 1 << 17;
export const FRAME_BODY_BYTES_MAX = 64 * 1024 * 1024;
export const GENESIS_CHAIN_HASH = Buffer.alloc(CHAIN_HASH_BYTES);

export type FrameHeader = Readonly<{
  bodyBytes: number;
  eventCount: number;
  firstSequence: number;
  timestampMs: number;
  chainHash: Buffer;
  bodyCrc: number;
}>;

/**
 * Builds a frame (header + body) from encoded events and their offsets, in memory from
 * `allocate`, without its chain hash and CRCs (bytes 32..80 of the header are left as they
 * were): sealFrame finishes it. The engine encodes frames this way and the log writer's thread
 * seals them, so the hash, which reads every logged byte, runs off the engine thread.
 */
export function encodeUnsealedFrame(
  events: Uint8Array,
  eventBytes: number,
  offsets: Uint32Array,
  eventCount: number,
  firstSequence: number,
  timestampMs: number,
  version: FrameVersion,
  allocate: (bytes: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  assert(eventCount >= 1 && eventCount <= FRAME_EVENTS_MAX, 'frame event count out of range');
  const bodyBytes = eventBytes + 4 * eventCount;
  assert(bodyBytes <= FRAME_BODY_BYTES_MAX, 'frame body too large');
  const frame = allocate(FRAME_HEADER_BYTES + bodyBytes);
  frame.set(events.subarray(0, eventBytes), FRAME_HEADER_BYTES);
  const offsetTable = Buffer.from(offsets.buffer, offsets.byteOffset, eventCount * 4);
  frame.set(offsetTable, FRAME_HEADER_BYTES + eventBytes);
  frame.writeUInt32LE(FRAME_MAGIC, 0);
  frame.writeUInt16LE(version, 4);
  frame.writeUInt16LE(FRAME_HEADER_BYTES, 6);
  frame.writeUInt32LE(bodyBytes, 8);
  frame.writeUInt32LE(eventCount, 12);
  frame.writeBigUInt64LE(BigInt(firstSequence), 16);
  frame.writeBigUInt64LE(BigInt(timestampMs), 24);
  return frame;
}

/** Writes an unsealed frame's chain hash (chained to `previousChainHash`), body CRC and header CRC; returns the chain hash. */
export function sealFrame(frame: Buffer, previousChainHash: Uint8Array): Buffer {
  assert(previousChainHash.length === CHAIN_HASH_BYTES, 'chain hash length');
  assert(frame.length >= FRAME_HEADER_BYTES && frame.readUInt32LE(0) === FRAME_MAGIC, 'sealing something that is not a frame');
  const body = frame.subarray(FRAME_HEADER_BYTES);
  const chainHash = chainHashOf(previousChainHash, frame.subarray(0, 32), body);
  chainHash.copy(frame, 32);
  frame.writeUInt32LE(crc32(body), 64);
  frame.fill(0, 68, 76);
  frame.writeUInt32LE(crc32(frame.subarray(0, 76)), 76);
  return chainHash;
}

/** The chain hash of a frame, by the algorithm of the version in its header prefix. */
export function chainHashOf(previous: Uint8Array, headerPrefix: Uint8Array, body: Uint8Array): Buffer {
  const version = headerPrefix[4]! | (headerPrefix[5]! << 8);
  if (version === FRAME_VERSION_SHA256) return createHash('sha256').update(previous).update(headerPrefix).update(body).digest();
  assert(version === FRAME_VERSION_BLAKE2B, 'chain hash of an unknown frame version');
  return createHash('blake2b512').update(previous).update(headerPrefix).update(body).digest().subarray(0, CHAIN_HASH_BYTES);
}

const CALIBRATION_BYTES = 128 * 1024;
const CALIBRATION_ROUNDS = 4;
let fasterMeasured: ChainHashName | undefined;

/**
 * The chain hash that runs faster on this CPU: each is timed on 128 KiB, best of four rounds
 * alternating (about 2 ms, once per process). The choice decides only which version new frames
 * carry; what the log records, and every state and digest, is the same either way.
 */
export function fasterChainHash(): ChainHashName {
  if (fasterMeasured !== undefined) return fasterMeasured;
  const data = Buffer.alloc(CALIBRATION_BYTES, 0x5a);
  fasterMeasured = fasterByTiming((name) => {
    const started = process.hrtime.bigint();
    chainHashOf(GENESIS_CHAIN_HASH, versionPrefix(FRAME_VERSION_OF[name]), data);
    return Number(process.hrtime.bigint() - started);
  });
  return fasterMeasured;
}

/**
 * fasterChainHash's choice with the clock given: `timeOnce` hashes once with `name` and returns
 * how long it took. Rounds alternate the two; each keeps its best (a round slowed by the rest of
 * the machine does not count), and a tie goes to SHA-256, the version every walletd reads.
 */
export function fasterByTiming(timeOnce: (name: ChainHashName) => number, rounds = CALIBRATION_ROUNDS): ChainHashName {
  const best: Record<ChainHashName, number> = { sha256: Infinity, blake2b: Infinity };
  for (let round = 0; round < rounds; round++) {
    for (const name of CHAIN_HASH_NAMES) best[name] = Math.min(best[name], timeOnce(name));
  }
  return best.blake2b < best.sha256 ? 'blake2b' : 'sha256';
}

/** A header prefix carrying only `version`, for chainHashOf's dispatch. */
function versionPrefix(version: FrameVersion): Buffer {
  const prefix = Buffer.alloc(32);
  prefix.writeUInt16LE(version, 4);
  return prefix;
}

/**
 * `intact`: the header's CRC matched, so it was written whole (by a writer that is not this
 * one, when its version is unknown): never the remains of an interrupted append.
 */
export type HeaderCheck = { ok: true; header: FrameHeader } | { ok: false; reason: string; intact: boolean };

/** Parses and checks a header (magic, version, sizes, CRC). Does not check the body. */
export function decodeFrameHeader(bytes: Buffer, offset: number): HeaderCheck {
  if (bytes.length - offset < FRAME_HEADER_BYTES) return { ok: false, reason: 'truncated header', intact: false };
  if (bytes.readUInt32LE(offset) !== FRAME_MAGIC) return { ok: false, reason: 'bad magic', intact: false };
  if (crc32(bytes.subarray(offset, offset + 76)) !== bytes.readUInt32LE(offset + 76)) {
    return { ok: false, reason: 'header checksum mismatch', intact: false };
  }
  const version = bytes.readUInt16LE(offset + 4);
  if (chainHashOfVersion(version) === undefined) {
    return { ok: false, reason: `frame format version ${version}: this walletd reads versions ${FRAME_VERSIONS_READ.join(' and ')} (written by a newer walletd?)`, intact: true };
  }
  if (bytes.readUInt16LE(offset + 6) !== FRAME_HEADER_BYTES) return { ok: false, reason: 'bad header size', intact: true };
  const bodyBytes = bytes.readUInt32LE(offset + 8);
  const eventCount = bytes.readUInt32LE(offset + 12);
  if (eventCount < 1 || eventCount > FRAME_EVENTS_MAX) return { ok: false, reason: 'event count out of range', intact: true };
  if (bodyBytes > FRAME_BODY_BYTES_MAX || bodyBytes < eventCount * 5) return { ok: false, reason: 'body size out of range', intact: true };
  const header: FrameHeader = {
    bodyBytes,
    eventCount,
    firstSequence: Number(bytes.readBigUInt64LE(offset + 16)),
    timestampMs: Number(bytes.readBigUInt64LE(offset + 24)),
    chainHash: Buffer.from(bytes.subarray(offset + 32, offset + 64)),
    bodyCrc: bytes.readUInt32LE(offset + 64),
  };
  return { ok: true, header };
}

export function bodyCrcMatches(header: FrameHeader, body: Uint8Array): boolean {
  return crc32(body) === header.bodyCrc;
}

/** Byte offset within the body of event `index` (from the offset table at the body's end). */
export function eventOffsetInBody(body: Buffer, header: FrameHeader, index: number): number {
  assert(index >= 0 && index < header.eventCount, 'event index out of range');
  return body.readUInt32LE(header.bodyBytes - 4 * header.eventCount + 4 * index);
}
