/**
 * Segment files: the log is a directory of append-only files, each named by the sequence of
 * its first event, so the file holding any sequence is found from the names alone.
 */
import { closeSync, fsyncSync, openSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const SEGMENT_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;
const SEGMENT_PATTERN = /^segment-(\d{20})\.wlog$/;

export type SegmentFile = Readonly<{ firstSequence: number; path: string }>;

export function segmentFileName(firstSequence: number): string {
  return `segment-${String(firstSequence).padStart(20, '0')}.wlog`;
}

/** Segments of `logDir`, oldest first. */
export function listSegments(logDir: string): SegmentFile[] {
  const segments: SegmentFile[] = [];
  for (const name of readdirSync(logDir)) {
    const match = SEGMENT_PATTERN.exec(name);
    if (match === null) continue;
    segments.push({ firstSequence: Number(match[1]), path: join(logDir, name) });
  }
  return segments.sort((a, b) => a.firstSequence - b.firstSequence);
}

/** Makes a directory entry (a new or renamed file) durable. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
