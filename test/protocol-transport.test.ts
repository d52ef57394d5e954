/**
 * The TCP transport of an accepted connection: it reads into one buffer of its own (the
 * `onread` path, reached by moving the accepted socket's handle to a new socket) and lends each
 * chunk for one onData call. Checks: that path is taken on this Node; every byte arrives, in
 * order, across many reads into the same memory; pause holds bytes back until resume; the
 * peer's end closes the transport; the listener itself can close; a socket the move does not
 * apply to is served as it came.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import { READ_BUFFER_BYTES, TcpTransport } from '../src/protocol/transport-tcp.js';
import { waitUntil } from './support/ledger.js';

type Received = { bytes: Buffer[]; memories: Set<ArrayBufferLike>; closed: boolean };

/** A listener that wraps each connection as the protocol server does and records what arrives. */
async function listening(): Promise<{ server: net.Server; port: number; accepted: Promise<{ transport: TcpTransport; received: Received }> }> {
  let resolveAccepted!: (value: { transport: TcpTransport; received: Received }) => void;
  const accepted = new Promise<{ transport: TcpTransport; received: Received }>((resolve) => (resolveAccepted = resolve));
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const transport = TcpTransport.accepted(socket);
    const received: Received = { bytes: [], memories: new Set(), closed: false };
    transport.setHandlers({
      onData: (chunk) => {
        received.bytes.push(Buffer.from(chunk)); // lent: copied
        received.memories.add(chunk.buffer);
      },
      onDrain: () => undefined,
      onClose: () => (received.closed = true),
    });
    resolveAccepted({ transport, received });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port, accepted };
}

function pattern(bytes: number, seed: number): Buffer {
  const buffer = Buffer.allocUnsafe(bytes);
  for (let index = 0; index < bytes; index++) buffer[index] = (index * 31 + seed) & 0xff;
  return buffer;
}

describe('TCP transport of accepted connections', () => {
  it('reads into one buffer of its own and delivers every byte in order', { timeout: 15_000 }, async () => {
    const { server, port, accepted } = await listening();
    const client = net.connect({ port, host: '127.0.0.1' });
    await once(client, 'connect');
    const { transport, received } = await accepted;
    assert.equal(transport.readsIntoOwnBuffer, true, 'this Node should allow the accepted socket to be moved to one with its own read buffer');
    // More than the buffer holds, in writes of odd sizes: several reads must reuse the memory.
    const sent = Array.from({ length: 40 }, (_, index) => pattern(17_000 + index * 997, index));
    for (const part of sent) client.write(part);
    const total = sent.reduce((sum, part) => sum + part.length, 0);
    assert.ok(total > 2 * READ_BUFFER_BYTES);
    await waitUntil(() => received.bytes.reduce((sum, part) => sum + part.length, 0) === total, 'every byte');
    assert.ok(Buffer.concat(received.bytes).equals(Buffer.concat(sent)), 'bytes differ from what was sent');
    assert.equal(received.memories.size, 1, 'chunks came in more than one memory');
    assert.ok(received.bytes.length >= 2);
    client.end();
    await waitUntil(() => received.closed, 'the close after the peer ended');
    server.close();
    await once(server, 'close');
  });

  it('holds bytes back while paused and delivers them on resume', { timeout: 15_000 }, async () => {
    const { server, port, accepted } = await listening();
    const client = net.connect({ port, host: '127.0.0.1' });
    const { transport, received } = await accepted;
    transport.pause();
    client.write(pattern(5_000, 1));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(received.bytes.length, 0, 'delivered while paused');
    transport.resume();
    await waitUntil(() => received.bytes.reduce((sum, part) => sum + part.length, 0) === 5_000, 'the held bytes');
    assert.ok(Buffer.concat(received.bytes).equals(pattern(5_000, 1)));
    // Writing works on the moved socket too, and the listener closes while the connection is open.
    const echoed = once(client, 'data');
    assert.equal(transport.write(Buffer.from('pong')), true);
    assert.equal(String((await echoed)[0]), 'pong');
    server.close();
    await once(server, 'close');
    transport.destroy();
    await waitUntil(() => received.closed, 'the close after destroy');
    client.destroy();
  });

  it('serves a socket the move does not apply to as it came', () => {
    const transport = TcpTransport.accepted(new net.Socket());
    assert.equal(transport.readsIntoOwnBuffer, false);
    transport.destroy();
  });
});
