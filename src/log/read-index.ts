/**
 * Random access to events by sequence, for history queries (a transfer by id, statements,
 * balances in the past). Per segment, a frame index (first sequence and byte offset of each
 * frame) is kept in memory: built as frames are written, or, for segments written before this
 * process started, by walking their frame headers on first use. Reading one event costs three
 * small reads (header, offset-table entry, event) that the page cache usually serves.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { assert } from '../stdx/assert.js';
import { decodeEvent, EVENT_BYTES_MAX, type LedgerEvent } from '../core/events.js';
import { decodeFrameHeader, FRAME_HEADER_BYTES } from './frame.js';
import { FileWindow } from './scan.js';
import { listSegments, segmentFileName } from './segments.js';
import { join } from 'node:path';
import type { WrittenFrame } from './writer.js';

/** Open file descriptors kept for reading old segments. */
const OPEN_SEGMENTS_MAX = 64;

class FrameIndex {
  firstSequences = new Float64Array(256);
  offsets = new Float64Array(256);
  counts = new Uint32Array(256);
  length = 0;

  push(firstSequence: number, offset: number, count: number): void {
    if (this.length > 0) assert(firstSequence > this.firstSequences[this.length - 1]!, 'frames indexed out of order');
    if (this.length === this.firstSequences.length) this.grow();
    this.firstSequences[this.length] = firstSequence;
    this.offsets[this.length] = offset;
    this.counts[this.length] = count;
    this.length++;
  }

  /** Index of the frame holding `sequence`, or -1. */
  find(sequence: number): number {
    let low = 0;
    let high = this.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.firstSequences[mid]! <= sequence) low = mid + 1;
      else high = mid - 1;
    }
    if (high < 0) return -1;
    return sequence < this.firstSequences[high]! + this.counts[high]! ? high : -1;
  }

  private grow(): void {
    const size = this.firstSequences.length * 2;
    const firstSequences = new Float64Array(size);
    firstSequences.set(this.firstSequences);
    const offsets = new Float64Array(size);
    offsets.set(this.offsets);
    const counts = new Uint32Array(size);
    counts.set(this.counts);
    this.firstSequences = firstSequences;
    this.offsets = offsets;
    this.counts = counts;
  }
}

type SegmentEntry = { firstSequence: number; path: string; frames: FrameIndex | undefined };

export type ReadEvent = Readonly<{ event: LedgerEvent; sequence: number; atMs: number }>;

export class LogReadIndex {
  private readonly segments: SegmentEntry[];
  private readonly fds = new Map<string, number>();
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private readonly eventBytes = Buffer.alloc(EVENT_BYTES_MAX);
  private readonly word = Buffer.alloc(4);

  constructor(private readonly logDir: string) {
    this.segments = listSegments(logDir).map((segment) => ({ ...segment, frames: undefined }));
  }

  /** Records a frame written by this process (segments created now are indexed from birth). */
  noteFrame(frame: WrittenFrame): void {
    let last = this.segments[this.segments.length - 1];
    if (last === undefined || last.firstSequence !== frame.segmentFirstSequence) {
      last = { firstSequence: frame.segmentFirstSequence, path: join(this.logDir, segmentFileName(frame.segmentFirstSequence)), frames: new FrameIndex() };
      this.segments.push(last);
    }
    // A segment that existed before start is indexed lazily, including the frames added now.
    if (last.frames !== undefined) last.frames.push(frame.firstSequence, frame.offset, frame.eventCount);
  }

  /** The event at `sequence`, or undefined when no written frame holds it. */
  read(sequence: number): ReadEvent | undefined {
    const segment = this.segmentFor(sequence);
    if (segment === undefined) return undefined;
    const frames = this.framesOf(segment);
    const frame = frames.find(sequence);
    if (frame < 0) return undefined;
    const fd = this.fdOf(segment.path);
    const offset = frames.offsets[frame]!;
    readExactly(fd, this.header, offset);
    const check = decodeFrameHeader(this.header, 0);
    assert(check.ok, `frame header at ${segment.path}:${offset} unreadable`);
    const header = check.header;
    const index = sequence - header.firstSequence;
    const bodyStart = offset + FRAME_HEADER_BYTES;
    const tableStart = header.bodyBytes - 4 * header.eventCount;
    readExactly(fd, this.word, bodyStart + tableStart + 4 * index);
    const eventOffset = this.word.readUInt32LE(0);
    const length = Math.min(EVENT_BYTES_MAX, tableStart - eventOffset);
    readExactly(fd, this.eventBytes.subarray(0, length), bodyStart + eventOffset);
    return { event: decodeEvent(this.eventBytes, 0).event, sequence, atMs: header.timestampMs };
  }

  /** Indexes the newest segment now, before this process appends to it. */
  indexTail(): void {
    const last = this.segments[this.segments.length - 1];
    if (last !== undefined) this.framesOf(last);
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  /** The last segment starting at or before `sequence` (binary search: reads walk many). */
  private segmentFor(sequence: number): SegmentEntry | undefined {
    let low = 0;
    let high = this.segments.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.segments[mid]!.firstSequence <= sequence) low = mid + 1;
      else high = mid - 1;
    }
    return high < 0 ? undefined : this.segments[high];
  }

  private framesOf(segment: SegmentEntry): FrameIndex {
    if (segment.frames === undefined) segment.frames = walkFrameHeaders(segment.path);
    return segment.frames;
  }

  private fdOf(path: string): number {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      if (this.fds.size >= OPEN_SEGMENTS_MAX) this.close();
      fd = openSync(path, 'r');
      this.fds.set(path, fd);
    }
    return fd;
  }
}

/** Builds a segment's frame index from its headers (the file was checked at recovery). */
function walkFrameHeaders(path: string): FrameIndex {
  const frames = new FrameIndex();
  const fd = openSync(path, 'r');
  try {
    const window = new FileWindow(fd, fstatSync(fd).size);
    let offset = 0;
    for (;;) {
      const bytes = window.read(offset, FRAME_HEADER_BYTES);
      if (bytes === undefined) break;
      const check = decodeFrameHeader(bytes, 0);
      if (!check.ok) break;
      frames.push(check.header.firstSequence, offset, check.header.eventCount);
      offset += FRAME_HEADER_BYTES + check.header.bodyBytes;
    }
  } finally {
    closeSync(fd);
  }
  return frames;
}

function readExactly(fd: number, target: Uint8Array, position: number): void {
  for (let got = 0; got < target.length; ) {
    const n = readSync(fd, target, got, target.length - got, position + got);
    assert(n > 0, 'unexpected end of segment while reading an event');
    got += n;
  }
}
