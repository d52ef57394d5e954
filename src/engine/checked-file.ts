/**
 * Whole-file writes and reads with a running CRC-32, shared by snapshots and their transaction
 * chunks: a file is written under a temporary name, flushed as it goes, fsynced, and only then
 * renamed into place by its owner; a reader checks every byte against the CRC-32 trailer.
 */
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { crc32 } from '../stdx/crc32.js';

/** Bytes written between two fdatasyncs. */
const SYNC_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * zlib.crc32 of a zero-length *buffer* restarts the checksum at 0 (Node 20), while an empty view
 * into a larger buffer keeps `crc`. A section can be empty (no accounts yet, no owner ids), so
 * empty data must not touch the running CRC at all.
 */
function crcUpdate(data: Uint8Array, crc: number): number {
  return data.length === 0 ? crc : crc32(data, crc);
}

export class ChecksummedWriter {
  private readonly fd: number;
  private crc = 0;
  private unsyncedBytes = 0;
  bytes = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w', 0o600);
  }

  write(data: Uint8Array): void {
    for (let at = 0; at < data.length; ) {
      const written = writeSync(this.fd, data, at, Math.min(SYNC_EVERY_BYTES, data.length - at));
      at += written;
      this.unsyncedBytes += written;
      // Flush as we go: on ext4 (data=ordered) the log's fdatasync would otherwise wait for
      // every dirty byte of the file, stalling group commits for seconds.
      if (this.unsyncedBytes >= SYNC_EVERY_BYTES) {
        fdatasyncSync(this.fd);
        this.unsyncedBytes = 0;
      }
    }
    this.crc = crcUpdate(data, this.crc);
    this.bytes += data.length;
  }

  /** Appends the CRC-32 of everything written, fsyncs and closes; returns the file's size. */
  finish(): number {
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(this.crc, 0);
    writeSync(this.fd, trailer);
    this.bytes += 4;
    fsyncSync(this.fd);
    closeSync(this.fd);
    return this.bytes;
  }

  /**
   * After a failed write (ENOSPC, EIO): closes and removes the file, so hundreds of MB are not
   * left under a name nothing reuses. Cleanup failing too must not hide the write error.
   */
  abandon(): void {
    try {
      closeSync(this.fd);
    } catch {
      // The descriptor is gone either way.
    }
    try {
      unlinkSync(this.path);
    } catch {
      // Left behind: recovery ignores temporary files, and pruning removes them.
    }
  }
}

/** Writes a file through `fill`, removing it when `fill` throws. Returns the file's size. */
export function writeChecksummedFile(path: string, fill: (writer: ChecksummedWriter) => void): number {
  const writer = new ChecksummedWriter(path);
  try {
    fill(writer);
    return writer.finish();
  } catch (error) {
    writer.abandon();
    throw error;
  }
}

export class ChecksummedReader {
  private readonly fd: number;
  readonly size: number;
  private at = 0;
  private crc = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    this.size = fstatSync(this.fd).size;
  }

  /** Bytes left before the CRC-32 trailer. */
  get remaining(): number {
    return this.size - 4 - this.at;
  }

  read(target: Uint8Array): void {
    this.readAt(target, this.at);
    this.crc = crcUpdate(target, this.crc);
    this.at += target.length;
  }

  /**
   * Reads `target.length` bytes at `offset` (before the CRC-32 trailer) without moving on or
   * counting them: to find what tells how to read the rest (a meta at the end), which must then
   * be read again in order so that the CRC covers it.
   */
  readAt(target: Uint8Array, offset: number): void {
    if (offset < 0 || offset + target.length > this.size - 4) throw new Error(`${this.path} is truncated`);
    for (let got = 0; got < target.length; ) {
      const n = readSync(this.fd, target, got, target.length - got, offset + got);
      if (n === 0) throw new Error(`${this.path} is truncated`);
      got += n;
    }
  }

  /** Checks that everything was read and matches the trailer. */
  checkEnd(): void {
    const trailer = Buffer.alloc(4);
    if (this.remaining !== 0 || readSync(this.fd, trailer, 0, 4, this.at) !== 4 || trailer.readUInt32LE(0) !== this.crc) {
      throw new Error(`${this.path}: checksum mismatch`);
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Reads a file through `read`, closing it whatever happens; the CRC is checked at the end. */
export function readChecksummedFile<T>(path: string, read: (reader: ChecksummedReader) => T): T {
  const reader = new ChecksummedReader(path);
  try {
    const result = read(reader);
    reader.checkEnd();
    return result;
  } finally {
    reader.close();
  }
}
