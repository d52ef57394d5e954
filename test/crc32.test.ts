// The CRC-32 dispatcher (src/stdx/crc32.ts): native for large inputs, zlib for small ones. The
// checksums on disk and on the wire must not depend on which one ran, so every size around the
// switch, views at any offset and running (chained) checksums are compared with zlib.crc32.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { crc32, crc32Native } from '../src/stdx/crc32.js';

test('the native implementation loads where @node-rs/crc32 ships a build (linux x64 and arm64, glibc)', (t) => {
  const expected = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64') && (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime !== undefined;
  if (!expected) return t.skip(`no prebuilt native CRC-32 expected on ${process.platform}/${process.arch}; zlib computes every checksum`);
  assert.equal(crc32Native, true, '@node-rs/crc32 did not load: every checksum falls back to zlib.crc32 (slower, same values)');
});

test('crc32 equals zlib.crc32 for every size around the switch, at any offset, chained or not', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 6000, size: 'max' }),
      fc.nat(16),
      fc.nat(6000),
      fc.nat(0xffffffff),
      (bytes, skip, split, initial) => {
        const data = bytes.subarray(Math.min(skip, bytes.length)); // a view that does not start at byte 0
        if (data.length > 0) assert.equal(crc32(data, initial), zlibCrc32(data, initial));
        assert.equal(crc32(data), zlibCrc32(data));
        const cut = Math.min(split, data.length);
        if (cut > 0 && cut < data.length) assert.equal(crc32(data.subarray(cut), crc32(data.subarray(0, cut))), zlibCrc32(data));
      },
    ),
    { numRuns: 300, endOnFailure: true }, // shrinking kilobyte arrays takes minutes; the failing case is reported as drawn
  );
  // A protocol frame body of 8,190 records, in one call and in two across the switch.
  const body = Buffer.alloc(8190 * 208);
  for (let index = 0; index < body.length; index++) body[index] = (index * 2654435761) >>> 24;
  assert.equal(crc32(body), zlibCrc32(body));
  assert.equal(crc32(body.subarray(700), crc32(body.subarray(0, 700))), zlibCrc32(body));
});
