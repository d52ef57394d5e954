/**
 * Protocol codec and parser, without a server: every byte layout round-trips (encode, decode,
 * compare), the parser yields the same frames however the byte stream is cut into chunks, and
 * each kind of malformed header is refused before its body is buffered.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RECORD_BYTES, readTransferRecord, writeTransferRecord } from '../src/core/transfer-record.js';
import type { TransferCommand } from '../src/core/transfer-record.js';
import {
  FRAME_HEADER_BYTES,
  HEADER_OFFSET_OP,
  MAGIC_U32,
  Op,
  OpenedFlag,
  PROTOCOL_VERSION,
  RESULT_BYTES,
} from '../src/protocol/constants.js';
import {
  decodeAccountView,
  decodeErrorReason,
  decodeFrameHeader,
  decodeHandshakeHead,
  decodeHandshakeReply,
  decodeIdQuery,
  decodeOpenAccount,
  decodeResults,
  decodeTransferView,
  encodeAccountView,
  encodeErrorReason,
  encodeFrameHeader,
  encodeHandshake,
  encodeHandshakeReply,
  encodeIdQuery,
  encodeOpenAccount,
  encodeResults,
  encodeTransferView,
  frameChecksum,
} from '../src/protocol/frame.js';
import { FrameParser } from '../src/protocol/parser.js';
import type { ParseEvent, ParserRole } from '../src/protocol/parser.js';

const idArb = fc.stringMatching(/^[A-Za-z0-9_.:-]{1,64}$/);
const safeU53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const kindArb = fc.constantFrom<TransferCommand['kind']>('transfer', 'deposit', 'withdrawal');
const commandArb: fc.Arbitrary<TransferCommand> = fc.record({
  kind: kindArb,
  transactionId: idArb,
  fromAccount: idArb,
  toAccount: idArb,
  amountMinor: fc.bigInt({ min: 1n, max: (1n << 63n) - 1n }),
  currencyNumeric: fc.integer({ min: 1, max: 999 }),
});

function parserFor(role: ParserRole): FrameParser {
  return new FrameParser({ role, frameBodyBytesMax: 8190 * RECORD_BYTES, allocateBody: (bytes) => Buffer.alloc(bytes), releaseBody: () => undefined });
}

/** Feeds `chunks` through a parser and collects every event. */
function parseAll(parser: FrameParser, chunks: readonly Buffer[]): ParseEvent[] {
  const events: ParseEvent[] = [];
  for (const chunk of chunks) {
    let at = 0;
    while (at < chunk.length && !parser.failed) {
      at = parser.consume(chunk, at);
      const event = parser.take();
      if (event !== undefined) events.push(event);
    }
  }
  return events;
}

function frame(requestId: number, op: number, count: number, body: Buffer, status = 0): Buffer {
  return Buffer.concat([encodeFrameHeader(requestId, op, status, count, body), body]);
}

/** Cuts `bytes` at the given (sorted, deduplicated) offsets. */
function cut(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets.map((offset) => offset % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks.filter((chunk) => chunk.length > 0);
}

describe('byte layouts round-trip', () => {
  it('handshake and handshake reply', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 300 }), (token) => {
        const bytes = encodeHandshake(token);
        const head = decodeHandshakeHead(bytes);
        assert.deepEqual(head, { magic: MAGIC_U32, version: PROTOCOL_VERSION, tokenBytes: Buffer.byteLength(token) });
        assert.equal(bytes.subarray(8).toString('utf8'), token);
      }),
    );
    const reply = { status: 11, principalKind: 2, frameBodyBytesMax: 1_703_520, inFlightRequestsMax: 32, batchRecordsMax: 8190 };
    assert.deepEqual(decodeHandshakeReply(encodeHandshakeReply(reply)), { magic: MAGIC_U32, version: PROTOCOL_VERSION, ...reply });
    assert.equal(encodeHandshake('t').subarray(0, 4).toString('latin1'), 'WLTD');
  });

  it('frame header, checksum covering header fields and body', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 512 }), (requestId, op, status, count, bodyBytes) => {
        const body = Buffer.from(bodyBytes);
        const head = encodeFrameHeader(requestId, op, status, count, body);
        const header = decodeFrameHeader(head);
        assert.deepEqual({ ...header, checksum: 0 }, { bodyBytes: body.length, checksum: 0, requestId, op, status, count });
        assert.equal(header.checksum, frameChecksum(head, body));
        // Any change to a covered header byte changes the checksum.
        const flipped = Buffer.from(head);
        flipped[HEADER_OFFSET_OP] = (op + 1) & 0xff;
        assert.notEqual(frameChecksum(flipped, body), header.checksum);
      }),
    );
  });

  it('transfer record', () => {
    fc.assert(
      fc.property(commandArb, fc.nat({ max: 3 }), (command, index) => {
        const bytes = Buffer.alloc(4 * RECORD_BYTES);
        writeTransferRecord(bytes, index, command);
        assert.deepEqual(readTransferRecord(bytes, index), { ...command });
      }),
    );
  });

  it('open account, id query', () => {
    fc.assert(
      fc.property(idArb, fc.oneof(fc.constant(''), idArb), fc.integer({ min: 0, max: 0xffff }), (accountId, owner, currencyNumeric) => {
        assert.deepEqual(decodeOpenAccount(encodeOpenAccount({ accountId, owner, currencyNumeric })), { accountId, owner, currencyNumeric, reservedZero: true });
        assert.equal(decodeIdQuery(encodeIdQuery(accountId)), accountId);
      }),
    );
  });

  it('transfer results', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), safeU53), { minLength: 1, maxLength: 300 }), (pairs) => {
        const codes = Uint8Array.from(pairs.map(([code]) => code));
        const sequences = Float64Array.from(pairs.map(([, sequence]) => sequence));
        const bytes = encodeResults({ codes, sequences }, pairs.length);
        assert.equal(bytes.length, pairs.length * RESULT_BYTES);
        const decoded = decodeResults(bytes, pairs.length);
        assert.deepEqual([...decoded.codes], [...codes]);
        assert.deepEqual([...decoded.sequences], [...sequences]);
      }),
    );
  });

  it('account view and transfer view', () => {
    const accountArb = fc.record({
      accountId: fc.oneof(idArb, fc.constant('@external:USD')),
      owner: idArb,
      balance: fc.bigInt({ min: -((1n << 63n) - 1n), max: (1n << 63n) - 1n }),
      sequence: safeU53,
      currencyNumeric: fc.integer({ min: 1, max: 999 }),
      opened: fc.constantFrom(OpenedFlag.none, OpenedFlag.created, OpenedFlag.existed),
    });
    fc.assert(fc.property(accountArb, (account) => assert.deepEqual(decodeAccountView(encodeAccountView(account)), { ...account })));
    const transferArb = fc.record({ record: commandArb, sequence: safeU53, atMs: safeU53, code: fc.integer({ min: 0, max: 5 }) });
    fc.assert(fc.property(transferArb, (transfer) => assert.deepEqual(decodeTransferView(encodeTransferView(transfer)), { ...transfer, record: { ...transfer.record } })));
  });

  it('protocol error reason', () => {
    assert.equal(decodeErrorReason(encodeErrorReason('checksum mismatch')), 'checksum mismatch');
    assert.equal(decodeErrorReason(encodeErrorReason('bad\u0000byte\u00ff')), 'bad?byte?');
    assert.equal(encodeErrorReason('x'.repeat(1000)).length, 200);
  });
});

describe('parser', () => {
  it('yields the same frames however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(commandArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 20 }), (commands, offsets) => {
        const records = Buffer.alloc(commands.length * RECORD_BYTES);
        commands.forEach((command, index) => writeTransferRecord(records, index, command));
        const query = encodeIdQuery('alice');
        const stream = Buffer.concat([encodeHandshake('secret'), frame(7, Op.submit_transfers, commands.length, records), frame(8, Op.get_account, 1, query)]);
        const events = parseAll(parserFor('server'), cut(stream, offsets));
        assert.equal(events.length, 3);
        assert.deepEqual(events[0], { kind: 'handshake', version: PROTOCOL_VERSION, token: 'secret' });
        const [submit, lookup] = [events[1], events[2]];
        assert.ok(submit?.kind === 'frame' && lookup?.kind === 'frame');
        assert.deepEqual([submit.header.requestId, submit.header.op, submit.header.count], [7, Op.submit_transfers, commands.length]);
        assert.ok(submit.body.equals(records));
        assert.ok(lookup.body.equals(query));
      }),
    );
  });

  it('client role: handshake reply, then empty and full response bodies', () => {
    const reply = encodeHandshakeReply({ status: 0, principalKind: 1, frameBodyBytesMax: 1000, inFlightRequestsMax: 4, batchRecordsMax: 4 });
    const results = encodeResults({ codes: Uint8Array.of(0, 1), sequences: Float64Array.of(5, 6) }, 2);
    const stream = Buffer.concat([reply, frame(1, Op.get_account, 0, Buffer.alloc(0), 4), frame(2, Op.submit_transfers, 2, results)]);
    const events = parseAll(parserFor('client'), cut(stream, [1, 17, 20, 33, 40]));
    assert.deepEqual(events.map((event) => event.kind), ['handshake_reply', 'frame', 'frame']);
    const empty = events[1];
    assert.ok(empty?.kind === 'frame');
    assert.deepEqual([empty.header.status, empty.body.length], [4, 0]);
  });

  const handshake = encodeHandshake('secret');
  const malformed: Array<[string, Buffer, RegExp]> = [
    ['bad magic', Buffer.from('HTTP/1.1 GET /\r\n\r\n'), /bad magic/],
    ['bad version', encodeHandshake('secret', 2), /unsupported version 2/],
    ['unknown op', Buffer.concat([handshake, frame(1, 99, 1, Buffer.alloc(64))]), /unknown op 99/],
    ['response op from a client', Buffer.concat([handshake, frame(1, Op.protocol_error, 1, Buffer.alloc(1))]), /unknown op 255/],
    ['count does not match length', Buffer.concat([handshake, frame(1, Op.submit_transfers, 2, Buffer.alloc(RECORD_BYTES))]), /count 2 does not match/],
    ['zero records', Buffer.concat([handshake, frame(1, Op.submit_transfers, 0, Buffer.alloc(0))]), /count 0 out of range/],
    ['two accounts in one lookup', Buffer.concat([handshake, frame(1, Op.get_account, 2, Buffer.alloc(128))]), /count 2 out of range/],
    ['nonzero status in a request', Buffer.concat([handshake, frame(1, Op.get_account, 1, Buffer.alloc(64), 3)]), /status must be zero/],
  ];
  for (const [name, bytes, reason] of malformed) {
    it(`refuses ${name}`, () => {
      const events = parseAll(parserFor('server'), [bytes]);
      const last = events.at(-1);
      assert.ok(last?.kind === 'error', `expected an error event, got ${last?.kind}`);
      assert.match(last.reason, reason);
    });
  }

  it('refuses an oversize length from the header alone, without allocating', () => {
    let allocated = 0;
    const parser = new FrameParser({ role: 'server', frameBodyBytesMax: 1000, allocateBody: (bytes) => ((allocated += bytes), Buffer.alloc(bytes)), releaseBody: () => undefined });
    const head = encodeFrameHeader(3, Op.submit_transfers, 0, 5, Buffer.alloc(5 * RECORD_BYTES));
    const events = parseAll(parser, [handshake, head]);
    assert.deepEqual(events.at(-1), { kind: 'error', requestId: 3, reason: 'frame body of 1040 bytes over the limit' });
    assert.equal(allocated, 0);
  });

  it('refuses a corrupted body or header byte by checksum, however the stream is chunked, and returns the body buffer', () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), fc.array(fc.nat(), { maxLength: 8 }), (position, xor, offsets) => {
        const good = frame(5, Op.get_transfer, 1, encodeIdQuery('tx-1'));
        // Length, op and count are checked by the header rules; corrupt the other bytes.
        const covered = [4, 5, 6, 7, 8, 9, 10, 11, ...Array.from({ length: 64 }, (_, index) => FRAME_HEADER_BYTES + index)];
        const at = covered[position % covered.length] as number;
        const bad = Buffer.from(good);
        bad[at] = (bad[at] as number) ^ xor;
        let released = 0;
        const parser = new FrameParser({ role: 'server', frameBodyBytesMax: 1000, allocateBody: (bytes) => Buffer.alloc(bytes), releaseBody: () => (released += 1) });
        const events = parseAll(parser, cut(Buffer.concat([handshake, bad]), offsets));
        assert.equal(events.at(-1)?.kind, 'error');
        assert.equal(released, 1);
      }),
    );
  });
});
