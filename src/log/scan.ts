/**
 * Sequential reading of segment files with full checks: header and body checksums, sequence
 * continuity and the hash chain. Used by recovery, `walletd verify` and `walletd replay`.
 *
 * A bad frame is a *torn tail* only when it is in the last segment and nothing valid follows it
 * (a write cut short by a crash: truncated header or body, zero fill, or garbage with no valid
 * frame after it). Anything else is *corruption*: a hard error naming the file and offset.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { assert } from '../stdx/assert.js';
import { bodyCrcMatches, chainHashOf, decodeFrameHeader, FRAME_HEADER_BYTES, FRAME_MAGIC, type FrameHeader } from './frame.js';
import type { SegmentFile } from './segments.js';

const READ_CHUNK_BYTES = 16 * 1024 * 1024;

export class CorruptLogError extends Error {
  override readonly name = 'CorruptLogError';
  constructor(
    readonly path: string,
    readonly offset: number,
    readonly sequence: number,
    readonly reason: string,
  ) {
    super(`corrupt log: ${path} at byte offset ${offset} (near sequence ${sequence}): ${reason}`);
  }
}

export type FrameVisitor = (header: FrameHeader, body: Buffer, offset: number) => void;

export type ScanEnd =
  | Readonly<{ kind: 'clean'; endOffset: number }>
  | Readonly<{ kind: 'torn'; endOffset: number; reason: string }>;

export type ScanContext = {
  /** Chain hash of the frame before the first one scanned. */
  chainHash: Buffer;
  /** Sequence the next frame must start at. */
  nextSequence: number;
};

/** A forward-only window over a file, so many small frames cost few system calls. */
export class FileWindow {
  private buffer = Buffer.alloc(READ_CHUNK_BYTES);
  private start = 0;
  private end = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  /** Bytes [offset, offset+length) — valid until the next call. */
  read(offset: number, length: number): Buffer | undefined {
    if (offset + length > this.size) return undefined;
    if (offset < this.start || offset + length > this.end) this.fill(offset, length);
    return this.buffer.subarray(offset - this.start, offset - this.start + length);
  }

  private fill(offset: number, length: number): void {
    if (length > this.buffer.length) this.buffer = Buffer.alloc(length);
    const want = Math.min(this.buffer.length, this.size - offset);
    let got = 0;
    while (got < want) {
      const n = readSync(this.fd, this.buffer, got, want - got, offset + got);
      assert(n > 0, 'unexpected end of file while reading a segment');
      got += n;
    }
    this.start = offset;
    this.end = offset + got;
  }
}

/**
 * Scans frames of one segment from `startOffset`, checking each and calling `visit`. Throws
 * CorruptLogError on corruption; returns where the valid data ends and whether a torn tail
 * follows (only possible when `isLastSegment`). `endOffset`: read nothing at or past it (a
 * frame must end by it), for a segment the writer is still appending to.
 */
export function scanSegment(path: string, startOffset: number, isLastSegment: boolean, context: ScanContext, visit: FrameVisitor, endOffset = Infinity): ScanEnd {
  const fd = openSync(path, 'r');
  try {
    const window = new FileWindow(fd, Math.min(fstatSync(fd).size, endOffset));
    let offset = startOffset;
    while (offset < window.size) {
      const problem = checkFrameAt(window, offset, context);
      if (problem !== undefined) {
        if (isLastSegment && isTornTail(window, offset, problem)) return { kind: 'torn', endOffset: offset, reason: problem.reason };
        throw new CorruptLogError(path, offset, context.nextSequence, problem.reason);
      }
      const header = decodeFrameHeaderOrThrow(window, offset);
      const body = window.read(offset + FRAME_HEADER_BYTES, header.bodyBytes)!;
      visit(header, body, offset);
      context.chainHash = header.chainHash;
      context.nextSequence = header.firstSequence + header.eventCount;
      offset += FRAME_HEADER_BYTES + header.bodyBytes;
    }
    return { kind: 'clean', endOffset: offset };
  } finally {
    closeSync(fd);
  }
}

/**
 * `tornUnlessFollowed`: the remains of an interrupted append unless a frame header whose CRC
 * checks comes after it: a bad header, or a whole header whose body's CRC failed (a write cut
 * short, with zeros or stale bytes where the rest of the body was). A whole frame that is out of
 * sequence or off the hash chain is never torn, nor is a header whose CRC checks but whose
 * version this walletd does not read: cutting it would destroy a newer writer's frames.
 */
type Problem = { reason: string; lastInFile: boolean; tornUnlessFollowed: boolean };

function checkFrameAt(window: FileWindow, offset: number, context: ScanContext): Problem | undefined {
  const headerBytes = window.read(offset, FRAME_HEADER_BYTES);
  if (headerBytes === undefined) return { reason: 'truncated frame header', lastInFile: true, tornUnlessFollowed: true };
  const check = decodeFrameHeader(headerBytes, 0);
  // A header that checks but cannot be used (a newer version) was written whole: not torn.
  if (!check.ok) return { reason: check.reason, lastInFile: false, tornUnlessFollowed: !check.intact };
  const header = check.header;
  const frameEnd = offset + FRAME_HEADER_BYTES + header.bodyBytes;
  if (frameEnd > window.size) return { reason: 'truncated frame body', lastInFile: true, tornUnlessFollowed: false };
  const lastInFile = frameEnd === window.size;
  const prefix = Buffer.from(headerBytes.subarray(0, 32));
  const body = window.read(offset + FRAME_HEADER_BYTES, header.bodyBytes)!;
  if (!bodyCrcMatches(header, body)) return { reason: 'body checksum mismatch', lastInFile, tornUnlessFollowed: true };
  if (header.firstSequence !== context.nextSequence) {
    return { reason: `sequence gap: expected ${context.nextSequence}, found ${header.firstSequence}`, lastInFile: false, tornUnlessFollowed: false };
  }
  if (!chainHashOf(context.chainHash, prefix, body).equals(header.chainHash)) {
    return { reason: 'hash chain broken (frame does not follow its predecessor)', lastInFile: false, tornUnlessFollowed: false };
  }
  return undefined;
}

function decodeFrameHeaderOrThrow(window: FileWindow, offset: number): FrameHeader {
  const check = decodeFrameHeader(window.read(offset, FRAME_HEADER_BYTES)!, 0);
  assert(check.ok, 'header checked before');
  return check.header;
}

/** True when the bad frame at `offset` can only be the remains of an interrupted append. */
function isTornTail(window: FileWindow, offset: number, problem: Problem): boolean {
  if (problem.lastInFile) return true;
  return problem.tornUnlessFollowed && !validHeaderFollows(window, offset + 1);
}

function validHeaderFollows(window: FileWindow, from: number): boolean {
  for (let offset = from; offset + FRAME_HEADER_BYTES <= window.size; offset++) {
    const word = window.read(offset, 4)!;
    if (word.readUInt32LE(0) !== FRAME_MAGIC) continue;
    const check = decodeFrameHeader(window.read(offset, FRAME_HEADER_BYTES)!, 0);
    if (check.ok || check.intact) return true;
  }
  return false;
}

/**
 * History reads find an event's segment by the file names alone, so a segment read from its
 * start must be named for the sequence the log continues at (its first frame's, or for a
 * frameless newest segment the next one's); a file that breaks this is corruption, even when
 * the frames themselves follow on.
 */
export function checkSegmentName(segment: SegmentFile, nextSequence: number): void {
  if (segment.firstSequence === nextSequence) return;
  throw new CorruptLogError(segment.path, 0, nextSequence, `the segment is named for sequence ${segment.firstSequence} but the log continues at sequence ${nextSequence}`);
}

/**
 * A segment with no whole frame is what a crash right after the writer created it leaves (or a
 * torn first frame): only ever the newest one. The writer never rolls over from an empty segment.
 */
export function checkFramesBeforeNewest(segment: SegmentFile, scannedEnd: number, isNewest: boolean, nextSequence: number): void {
  if (scannedEnd === 0 && !isNewest) throw new CorruptLogError(segment.path, 0, nextSequence, 'a segment with no frame before the newest segment');
}
