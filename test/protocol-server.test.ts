/**
 * The protocol server against a real engine on a temp dir, spoken to byte by byte over TCP.
 *
 * Checks: the handshake (token, version, magic), every operation, pipelined answers matched by
 * request id, owner restrictions per record, the in-flight and connection limits, graceful
 * close, and — with fast-check — that malformed streams (random bytes, truncated frames,
 * oversize lengths, wrong checksums, bad versions, unknown ops, bad counts) get a protocol
 * error and a closed connection while the server stays up and the log does not grow by a
 * single record.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { Principal } from '../src/auth/principal.js';
import { ERRORS } from '../src/core/errors.js';
import { encodeTransferBatch, RECORD_BYTES } from '../src/core/transfer-record.js';
import type { TransferCommand } from '../src/core/transfer-record.js';
import { openLedger } from '../src/engine/ledger.js';
import type { Ledger } from '../src/engine/types.js';
import { HEADER_OFFSET_BODY_BYTES, HEADER_OFFSET_OP, Op, PrincipalKind, PROTOCOL_VERSION } from '../src/protocol/constants.js';
import type { ProtocolLimits } from '../src/protocol/constants.js';
import {
  decodeAccountView,
  decodeErrorReason,
  decodeResults,
  decodeTransferView,
  encodeFrameHeader,
  encodeHandshake,
  encodeIdQuery,
  encodeOpenAccount,
} from '../src/protocol/frame.js';
import type { FrameHeader, HandshakeReply } from '../src/protocol/frame.js';
import { FrameParser } from '../src/protocol/parser.js';
import type { ProtocolServer } from '../src/protocol/server.js';
import { ProtocolHost, startProtocolServer } from '../src/protocol/server.js';
import { createMemoryTransportPair } from '../src/protocol/transport-memory.js';
import { deposit, numericOf, tempDir, transfer, waitUntil, withSubmit } from './support/ledger.js';

const TOKENS: Record<string, Principal> = {
  'admin-token': { kind: 'admin' },
  'alice-key': { kind: 'owner', owner: 'alice' },
};
const authenticate = (token: string): Principal | undefined => TOKENS[token];
const USD = numericOf('USD');

type Answer = Readonly<{ header: FrameHeader; body: Buffer }>;

/** A client that speaks raw bytes and reads the server's answers with a client-role parser. */
class RawConnection {
  readonly socket: net.Socket;
  reply: HandshakeReply | undefined;
  readonly answers: Answer[] = [];
  closed = false;
  private readonly parser = new FrameParser({ role: 'client', frameBodyBytesMax: 8190 * RECORD_BYTES, allocateBody: (n) => Buffer.alloc(n), releaseBody: () => undefined });
  private readonly waiters: Array<() => void> = [];

  constructor(port: number) {
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  send(...parts: Buffer[]): void {
    this.socket.write(Buffer.concat(parts));
  }

  /** Resolves once `ready()` holds, or fails after `timeoutMs`. */
  async until(ready: () => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the server');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  private onData(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.parser.failed) {
      at = this.parser.consume(chunk, at);
      const event = this.parser.take();
      if (event?.kind === 'handshake_reply') this.reply = event.reply;
      if (event?.kind === 'frame') this.answers.push({ header: event.header, body: event.body });
      if (event?.kind === 'error') throw new Error(`server sent a malformed frame: ${event.reason}`);
    }
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

function frame(requestId: number, op: number, count: number, body: Buffer): Buffer {
  return Buffer.concat([encodeFrameHeader(requestId, op, 0, count, body), body]);
}

function submitFrame(requestId: number, commands: readonly TransferCommand[]): Buffer {
  return frame(requestId, Op.submit_transfers, commands.length, encodeTransferBatch(commands));
}

async function handshaken(port: number, token = 'admin-token'): Promise<RawConnection> {
  const connection = new RawConnection(port);
  connection.send(encodeHandshake(token));
  await connection.until(() => connection.reply !== undefined);
  assert.equal(connection.reply?.status, 0);
  return connection;
}

function balanceOf(ledger: Ledger, accountId: string): bigint | undefined {
  return ledger.account(accountId)?.balance;
}


/** A real ledger that also records how many transfer batches it holds at once. */
function observed(ledger: Ledger): { ledger: Ledger; concurrentMax: () => number; onSubmit: (hook: () => void) => void } {
  let current = 0;
  let max = 0;
  let hook: (() => void) | undefined;
  const wrapped = withSubmit(ledger, async (batch) => {
    current += 1;
    max = Math.max(max, current);
    hook?.();
    try {
      return await ledger.submitTransfers(batch);
    } finally {
      current -= 1;
    }
  });
  return { ledger: wrapped, concurrentMax: () => max, onSubmit: (next) => (hook = next) };
}

describe('protocol server', () => {
  const dir = tempDir('walletd-protocol-');
  let ledger: Ledger;
  let server: ProtocolServer;
  let txCounter = 0;
  const nextTx = (): string => `tx-${++txCounter}`;

  async function startServer(limits: Partial<ProtocolLimits>, over: Ledger = ledger): Promise<ProtocolServer> {
    return startProtocolServer({ ledger: over, authenticate, port: 0, limits: { handshakeTimeoutMs: 300, ...limits } });
  }

  before(async () => {
    ledger = await openLedger({ dataDir: dir.path, fsync: false });
    for (const [accountId, owner] of [['alice', 'alice'], ['bob', 'bob'], ['carol', 'carol']] as const) {
      await ledger.openAccount({ accountId, currencyCode: 'USD', owner });
    }
    const funded = await ledger.submitTransfers({ bytes: encodeTransferBatch([deposit('seed-a', 'alice', 100_000n), deposit('seed-c', 'carol', 100_000n)]), count: 2 });
    assert.deepEqual([...funded.codes], [0, 0]);
    server = await startServer({});
  });

  after(async () => {
    await server.close();
    await ledger.close();
    dir.remove();
  });

  describe('handshake', () => {
    it('accepts a known token and announces the limits', async () => {
      const connection = await handshaken(server.port);
      assert.deepEqual(connection.reply, {
        magic: 0x44544c57,
        version: PROTOCOL_VERSION,
        status: 0,
        principalKind: PrincipalKind.admin,
        frameBodyBytesMax: 8190 * RECORD_BYTES,
        inFlightRequestsMax: 32,
        batchRecordsMax: 8190,
      });
      connection.socket.destroy();
    });

    const refusals: Array<[string, Buffer, number]> = [
      ['an unknown token', encodeHandshake('nope'), ERRORS.unauthorized.wire],
      ['another protocol version', encodeHandshake('admin-token', 9), ERRORS.protocol_error.wire],
      ['bad magic', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), ERRORS.protocol_error.wire],
    ];
    for (const [name, bytes, status] of refusals) {
      it(`refuses ${name} with code ${status} and closes`, async () => {
        const connection = new RawConnection(server.port);
        connection.send(bytes);
        await connection.until(() => connection.closed);
        assert.equal(connection.reply?.status, status);
        assert.equal(connection.reply?.principalKind, PrincipalKind.none);
      });
    }

    it('closes a connection that never completes its handshake', async () => {
      const connection = new RawConnection(server.port);
      connection.send(encodeHandshake('admin-token').subarray(0, 5));
      await connection.until(() => connection.closed);
      assert.equal(connection.reply?.status, ERRORS.request_timeout.wire);
    });
  });

  describe('operations', () => {
    it('answers pipelined requests, each matched by its request id', async () => {
      const connection = await handshaken(server.port);
      const id = nextTx();
      connection.send(
        submitFrame(10, [transfer(id, 'alice', 'bob', 250n), transfer(nextTx(), 'bob', 'carol', 10_000_000n)]),
        frame(11, Op.get_account, 1, encodeIdQuery('nobody')),
        frame(12, Op.open_account, 1, encodeOpenAccount({ accountId: 'dave', owner: '', currencyNumeric: USD })),
      );
      await connection.until(() => connection.answers.length === 3);
      connection.send(frame(13, Op.get_transfer, 1, encodeIdQuery(id)), frame(14, Op.get_account, 1, encodeIdQuery('alice')));
      await connection.until(() => connection.answers.length === 5);
      const byId = new Map(connection.answers.map((answer) => [answer.header.requestId, answer]));

      const submitted = byId.get(10);
      assert.ok(submitted !== undefined);
      const results = decodeResults(submitted.body, submitted.header.count);
      assert.deepEqual([...results.codes], [0, ERRORS.insufficient_funds.wire]);
      assert.ok((results.sequences[0] ?? 0) > 0 && (results.sequences[1] ?? 0) > (results.sequences[0] ?? 0));

      assert.deepEqual([byId.get(11)?.header.status, byId.get(11)?.header.count], [ERRORS.account_not_found.wire, 0]);
      const opened = decodeAccountView(byId.get(12)?.body ?? Buffer.alloc(0));
      assert.deepEqual([opened.accountId, opened.owner, opened.balance, opened.opened], ['dave', 'dave', 0n, 1]);

      const view = decodeTransferView(byId.get(13)?.body ?? Buffer.alloc(0));
      assert.deepEqual([view.record.transactionId, view.record.fromAccount, view.record.amountMinor, view.code], [id, 'alice', 250n, 0]);
      assert.equal(view.sequence, results.sequences[0]);
      assert.equal(decodeAccountView(byId.get(14)?.body ?? Buffer.alloc(0)).balance, balanceOf(ledger, 'alice'));
      connection.socket.destroy();
    });

    it('answers a retried transaction with its first outcome', async () => {
      const connection = await handshaken(server.port);
      const command = transfer(nextTx(), 'alice', 'bob', 1n);
      const before = balanceOf(ledger, 'bob');
      connection.send(submitFrame(1, [command]), submitFrame(2, [command]));
      await connection.until(() => connection.answers.length === 2);
      const [first, second] = connection.answers.map((answer) => decodeResults(answer.body, 1));
      assert.deepEqual([first?.codes[0], first?.sequences[0]], [second?.codes[0], second?.sequences[0]]);
      assert.equal(balanceOf(ledger, 'bob'), (before ?? 0n) + 1n);
      connection.socket.destroy();
    });
  });

  describe('owner keys', () => {
    it('may send only transfers from their own accounts, checked per record', async () => {
      const connection = await handshaken(server.port, 'alice-key');
      assert.equal(connection.reply?.principalKind, PrincipalKind.owner);
      const before = [balanceOf(ledger, 'alice'), balanceOf(ledger, 'bob'), balanceOf(ledger, 'carol')];
      const commands = [
        transfer(nextTx(), 'alice', 'bob', 100n),
        transfer(nextTx(), 'carol', 'alice', 100n),
        deposit(nextTx(), 'alice', 100n),
        { ...transfer(nextTx(), 'alice', '', 100n), kind: 'withdrawal' as const },
        transfer(nextTx(), 'ghost', 'alice', 100n),
      ];
      connection.send(submitFrame(1, commands));
      await connection.until(() => connection.answers.length === 1);
      const results = decodeResults(connection.answers[0]?.body ?? Buffer.alloc(0), commands.length);
      const forbidden = ERRORS.forbidden.wire;
      assert.deepEqual([...results.codes], [0, forbidden, forbidden, forbidden, forbidden]);
      assert.deepEqual([...results.sequences].slice(1), [0, 0, 0, 0]);
      assert.deepEqual([balanceOf(ledger, 'alice'), balanceOf(ledger, 'bob'), balanceOf(ledger, 'carol')], [(before[0] ?? 0n) - 100n, (before[1] ?? 0n) + 100n, before[2]]);
      // The refused records were never remembered: their transaction ids stay free.
      assert.equal(await ledger.transfer(commands[1]?.transactionId ?? ''), undefined);
      connection.socket.destroy();
    });

    it('may read and open only for their own owner', async () => {
      const foreign = nextTx();
      await ledger.submitTransfers({ bytes: encodeTransferBatch([transfer(foreign, 'carol', 'bob', 1n)]), count: 1 });
      const connection = await handshaken(server.port, 'alice-key');
      connection.send(
        frame(1, Op.get_account, 1, encodeIdQuery('bob')),
        frame(2, Op.get_account, 1, encodeIdQuery('alice')),
        frame(3, Op.open_account, 1, encodeOpenAccount({ accountId: 'mallory', owner: '', currencyNumeric: USD })),
        frame(4, Op.open_account, 1, encodeOpenAccount({ accountId: 'alice-eur', owner: 'alice', currencyNumeric: numericOf('EUR') })),
        frame(5, Op.get_transfer, 1, encodeIdQuery(foreign)),
      );
      await connection.until(() => connection.answers.length === 5);
      const statuses = new Map(connection.answers.map((answer) => [answer.header.requestId, answer.header.status]));
      const forbidden = ERRORS.forbidden.wire;
      assert.deepEqual([1, 2, 3, 4, 5].map((id) => statuses.get(id)), [forbidden, 0, forbidden, 0, forbidden]);
      assert.equal(ledger.account('mallory'), undefined);
      connection.socket.destroy();
    });
  });

  describe('limits and closing', () => {
    it('holds at most inFlightRequestsMax requests of a connection in the engine', async () => {
      const probe = observed(ledger);
      const limited = await startServer({ inFlightRequestsMax: 2 }, probe.ledger);
      const connection = await handshaken(limited.port);
      assert.equal(connection.reply?.inFlightRequestsMax, 2);
      connection.send(...Array.from({ length: 12 }, (_, index) => submitFrame(index + 1, [transfer(nextTx(), 'alice', 'bob', 1n)])));
      await connection.until(() => connection.answers.length === 12);
      assert.deepEqual(connection.answers.map((answer) => answer.header.status), new Array(12).fill(0));
      assert.ok(probe.concurrentMax() <= 2, `saw ${probe.concurrentMax()} batches in flight`);
      assert.ok(probe.concurrentMax() >= 1);
      connection.socket.destroy();
      await limited.close();
    });

    it('keeps a copy of what it holds back: the transport lends each chunk for one call', async () => {
      // Twelve frames in one chunk with room for two in flight: ten are parsed later, after the
      // transport has reused the chunk's memory (the memory transport overwrites it at once).
      const host = new ProtocolHost({ ledger, authenticate, limits: { inFlightRequestsMax: 2 } });
      const pair = createMemoryTransportPair();
      host.accept(pair.server);
      const answers: Answer[] = [];
      const parser = new FrameParser({ role: 'client', frameBodyBytesMax: 1 << 20, allocateBody: (n) => Buffer.alloc(n), releaseBody: () => undefined });
      pair.client.setHandlers({
        onData: (chunk) => {
          for (let at = 0; at < chunk.length && !parser.failed; ) {
            at = parser.consume(chunk, at);
            const event = parser.take();
            if (event?.kind === 'frame') answers.push({ header: event.header, body: Buffer.from(event.body) });
          }
        },
        onDrain: () => undefined,
        onClose: () => undefined,
      });
      const ids = Array.from({ length: 12 }, () => nextTx());
      pair.client.write(Buffer.concat([encodeHandshake('admin-token'), ...ids.map((id, index) => submitFrame(index + 1, [transfer(id, 'alice', 'bob', 1n)]))]));
      await waitUntil(() => answers.length === 12, 'twelve answers');
      assert.deepEqual(answers.map((answer) => [answer.header.requestId, answer.header.op, answer.header.status]).sort((a, b) => a[0]! - b[0]!), ids.map((_, index) => [index + 1, Op.submit_transfers, 0]));
      for (const id of ids) assert.equal((await ledger.transfer(id))?.code, 'ok');
      pair.client.destroy();
      await host.close();
    });

    it('announces and enforces a lower frame limit', async () => {
      const small = await startServer({ frameBodyBytesMax: 4 * RECORD_BYTES });
      const connection = await handshaken(small.port);
      assert.deepEqual([connection.reply?.frameBodyBytesMax, connection.reply?.batchRecordsMax], [4 * RECORD_BYTES, 4]);
      const fits = Array.from({ length: 4 }, () => transfer(nextTx(), 'alice', 'bob', 1n));
      const over = Array.from({ length: 5 }, () => transfer(nextTx(), 'alice', 'bob', 1n));
      connection.send(submitFrame(1, fits), submitFrame(2, over));
      await connection.until(() => connection.closed);
      assert.deepEqual(connection.answers.map((answer) => [answer.header.requestId, answer.header.op, answer.header.status]), [
        [1, Op.submit_transfers, 0],
        [2, Op.protocol_error, ERRORS.protocol_error.wire],
      ]);
      assert.equal(await ledger.transfer(over[0]?.transactionId ?? ''), undefined);
      await small.close();
    });

    it('refuses connections beyond connectionsMax with overloaded', async () => {
      const limited = await startServer({ connectionsMax: 2 });
      const first = await handshaken(limited.port);
      const second = await handshaken(limited.port);
      const third = new RawConnection(limited.port);
      third.send(encodeHandshake('admin-token'));
      await third.until(() => third.closed);
      assert.equal(third.reply?.status, ERRORS.overloaded.wire);
      first.socket.destroy();
      second.socket.destroy();
      await limited.close();
    });

    it('closes gracefully: answers what is in the engine, then refuses new connections', async () => {
      const probe = observed(ledger);
      const closing = await startServer({}, probe.ledger);
      const connection = await handshaken(closing.port);
      let closed: Promise<void> | undefined;
      probe.onSubmit(() => (closed ??= closing.close()));
      const id = nextTx();
      connection.send(submitFrame(1, [transfer(id, 'alice', 'bob', 1n)]));
      await connection.until(() => connection.closed);
      await closed;
      assert.equal(connection.answers.length, 1);
      assert.equal(connection.answers[0]?.header.status, 0);
      assert.equal((await ledger.transfer(id))?.code, 'ok');
      const late = new RawConnection(closing.port);
      await late.until(() => late.closed);
      assert.equal(late.reply, undefined);
    });
  });

  describe('malformed input', () => {
    /** Builds a stream that would move 1 minor unit, then damages it one way. */
    const damage = fc.oneof(
      fc.record({ kind: fc.constant('random bytes' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }) }),
      fc.record({ kind: fc.constant('random after handshake' as const), bytes: fc.uint8Array({ minLength: 16, maxLength: 600 }) }),
      fc.record({ kind: fc.constant('wrong checksum' as const), position: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant('truncated' as const), keep: fc.nat() }),
      fc.record({ kind: fc.constant('oversize length' as const), bodyBytes: fc.integer({ min: 8190 * RECORD_BYTES + 1, max: 0xffff_ffff }) }),
      fc.record({ kind: fc.constant('unknown op' as const), op: fc.integer({ min: 5, max: 255 }) }),
      fc.record({ kind: fc.constant('bad count' as const), count: fc.integer({ min: 0, max: 0xffff }).filter((count) => count !== 2) }),
      fc.record({ kind: fc.constant('bad version' as const), version: fc.integer({ min: 0, max: 0xffff }).filter((version) => version !== PROTOCOL_VERSION) }),
    );
    type Damage = typeof damage extends fc.Arbitrary<infer T> ? T : never;

    function damaged(spec: Damage, good: Buffer): { stream: Buffer; closesItself: boolean } {
      const handshake = encodeHandshake('admin-token');
      const bad = Buffer.from(good);
      switch (spec.kind) {
        case 'random bytes':
          return { stream: Buffer.from(spec.bytes), closesItself: true };
        case 'random after handshake':
          return { stream: Buffer.concat([handshake, Buffer.from(spec.bytes)]), closesItself: false };
        case 'wrong checksum': {
          // Any byte but the length, op and count fields, which have their own checks.
          const covered = [4, 5, 6, 7, 8, 9, 10, 11, 13, ...Array.from({ length: bad.length - 16 }, (_, index) => 16 + index)];
          const at = covered[spec.position % covered.length] as number;
          bad[at] = (bad[at] as number) ^ spec.xor;
          return { stream: Buffer.concat([handshake, bad]), closesItself: true };
        }
        case 'truncated':
          return { stream: Buffer.concat([handshake, bad.subarray(0, spec.keep % bad.length)]), closesItself: false };
        case 'oversize length':
          bad.writeUInt32LE(spec.bodyBytes, HEADER_OFFSET_BODY_BYTES);
          return { stream: Buffer.concat([handshake, bad]), closesItself: true };
        case 'unknown op':
          bad[HEADER_OFFSET_OP] = spec.op;
          return { stream: Buffer.concat([handshake, bad]), closesItself: true };
        case 'bad count':
          bad.writeUInt16LE(spec.count, 14);
          return { stream: Buffer.concat([handshake, bad]), closesItself: true };
        case 'bad version':
          return { stream: Buffer.concat([encodeHandshake('admin-token', spec.version), good]), closesItself: true };
      }
    }

    it('never crashes, closes with a protocol error, and applies nothing', async () => {
      await fc.assert(
        fc.asyncProperty(damage, async (spec) => {
          const before = ledger.stats().headSequence;
          const balances = [balanceOf(ledger, 'alice'), balanceOf(ledger, 'bob')];
          const ids = [nextTx(), nextTx()];
          const good = submitFrame(77, [transfer(ids[0] ?? '', 'alice', 'bob', 1n), transfer(ids[1] ?? '', 'bob', 'alice', 1n)]);
          const { stream, closesItself } = damaged(spec, good);
          const connection = new RawConnection(server.port);
          connection.send(stream);
          // A stream that stops mid-frame leaves the server waiting for the rest; we hang up.
          if (!closesItself) setTimeout(() => connection.socket.end(), 100);
          await connection.until(() => connection.closed);

          const refusedInHandshake = connection.reply !== undefined && connection.reply.status !== 0;
          const errorFrame = connection.answers.find((answer) => answer.header.op === Op.protocol_error);
          if (closesItself) assert.ok(refusedInHandshake || errorFrame !== undefined, `no protocol error for ${spec.kind}`);
          // Too few bytes for a handshake: the server gives up waiting (request_timeout).
          if (refusedInHandshake) assert.ok([ERRORS.protocol_error.wire, ERRORS.request_timeout.wire].includes(connection.reply?.status as never));
          if (errorFrame !== undefined) {
            assert.equal(errorFrame.header.status, ERRORS.protocol_error.wire);
            assert.ok(decodeErrorReason(errorFrame.body).length > 0);
          }
          assert.ok(connection.answers.every((answer) => answer.header.op === Op.protocol_error), 'a damaged frame was answered');

          await ledger.sync();
          assert.equal(ledger.stats().headSequence, before, 'the log grew');
          assert.deepEqual([balanceOf(ledger, 'alice'), balanceOf(ledger, 'bob')], balances);
          for (const id of ids) assert.equal(await ledger.transfer(id), undefined);
        }),
        { numRuns: 120 },
      );
      // The server still serves.
      const connection = await handshaken(server.port);
      connection.socket.destroy();
    });

    it('answers the good frames before a bad one, then closes', async () => {
      const connection = await handshaken(server.port);
      const good = submitFrame(1, [transfer(nextTx(), 'alice', 'bob', 1n)]);
      const bad = submitFrame(2, [transfer(nextTx(), 'alice', 'bob', 1n)]);
      bad[20] = (bad[20] as number) ^ 1;
      const after = frame(3, Op.get_account, 1, encodeIdQuery('alice'));
      connection.send(good, bad, after);
      await connection.until(() => connection.closed);
      assert.deepEqual(connection.answers.map((answer) => [answer.header.requestId, answer.header.op]), [
        [1, Op.submit_transfers],
        [2, Op.protocol_error],
      ]);
      assert.equal(decodeErrorReason(connection.answers[1]?.body ?? Buffer.alloc(0)), 'checksum mismatch');
    });
  });
});
