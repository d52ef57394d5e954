/**
 * One transport's life on the client side: the handshake, then frames out and answers in.
 * It knows nothing of retries: when the transport closes it reports which requests were
 * unanswered, and the client (client.ts) decides to send them again on a new connection.
 */
import { assert } from '../stdx/assert.js';
import { codeOfWire, WalletError } from '../core/errors.js';
import { FRAME_BODY_BYTES_DEFAULT, Op, PROTOCOL_VERSION } from '../protocol/constants.js';
import { decodeErrorReason, encodeHandshake } from '../protocol/frame.js';
import type { FrameHeader, HandshakeReply } from '../protocol/frame.js';
import { FrameParser } from '../protocol/parser.js';
import type { ParseEvent } from '../protocol/parser.js';
import type { Transport } from '../protocol/transport.js';

export type ConnectionEvents = Readonly<{
  onResponse: (header: FrameHeader, body: Buffer) => void;
  /** The server refused the frame `requestId` as malformed; it must not be sent again. */
  onProtocolError: (requestId: number, reason: string) => void;
  onDrain: () => void;
  onClose: () => void;
}>;

export class ClientConnection {
  readonly reply: HandshakeReply;
  private readonly transport: Transport;
  private readonly parser: FrameParser;
  private events: ConnectionEvents | undefined;
  private readonly early: Array<Readonly<{ header: FrameHeader; body: Buffer }>> = [];

  private constructor(transport: Transport, parser: FrameParser, reply: HandshakeReply) {
    this.transport = transport;
    this.parser = parser;
    this.reply = reply;
  }

  /**
   * Sends the handshake and waits for the reply. Rejects with a WalletError: `unauthorized`
   * for a bad token, `protocol_error` for a server that does not speak version 1, the
   * server's code (`overloaded`, `shutting_down`) when it refuses, `request_timeout` when it
   * is silent.
   */
  static open(transport: Transport, token: string, timeoutMs: number): Promise<ClientConnection> {
    assert(timeoutMs > 0);
    const parser = new FrameParser({
      role: 'client',
      frameBodyBytesMax: FRAME_BODY_BYTES_DEFAULT,
      allocateBody: (bytes) => Buffer.allocUnsafe(bytes),
      releaseBody: () => undefined,
    });
    return new Promise((resolve, reject) => {
      let connection: ClientConnection | undefined;
      const timer = setTimeout(() => settle(new WalletError('request_timeout', 'no handshake reply in time')), timeoutMs);
      const settle = (outcome: ClientConnection | WalletError): void => {
        clearTimeout(timer);
        if (outcome instanceof WalletError) {
          transport.destroy();
          reject(outcome);
        } else {
          resolve(outcome);
        }
      };
      transport.setHandlers({
        onData: (chunk) => {
          if (connection !== undefined) return connection.onData(chunk);
          const outcome = readHandshakeReply(parser, chunk);
          if (outcome === undefined) return;
          if (outcome instanceof WalletError) return settle(outcome);
          connection = new ClientConnection(transport, parser, outcome.reply);
          connection.onData(chunk, outcome.offset);
          settle(connection);
        },
        onDrain: () => connection?.events?.onDrain(),
        onClose: () => (connection === undefined ? settle(new WalletError('request_timeout', 'connection closed during handshake')) : connection.onClose()),
      });
      transport.write(encodeHandshake(token));
    });
  }

  /** Binds the handlers; answers that arrived with the handshake reply are delivered now. */
  attach(events: ConnectionEvents): void {
    assert(this.events === undefined);
    this.events = events;
    for (const { header, body } of this.early.splice(0)) events.onResponse(header, body);
    if (this.transport.closed) events.onClose();
  }

  get closed(): boolean {
    return this.transport.closed;
  }

  /** Returns false when the transport wants the caller to wait for onDrain. */
  send(head: Buffer, body: Buffer | undefined): boolean {
    return this.transport.write(head, body);
  }

  end(): void {
    this.transport.end();
  }

  destroy(): void {
    this.transport.destroy();
  }

  private onData(chunk: Buffer, offset = 0): void {
    let at = offset;
    while (at < chunk.length && !this.parser.failed) {
      at = this.parser.consume(chunk, at);
      const event = this.parser.take();
      if (event !== undefined) this.onEvent(event);
    }
  }

  private onEvent(event: ParseEvent): void {
    if (event.kind === 'error') {
      // The server broke the protocol (or the bytes were damaged): drop the connection and
      // let the client retry everything unanswered on a fresh one.
      this.transport.destroy();
      return;
    }
    assert(event.kind === 'frame', 'handshake reply after the handshake');
    if (event.header.op === Op.protocol_error) {
      this.events?.onProtocolError(event.header.requestId, decodeErrorReason(event.body));
      return;
    }
    if (this.events === undefined) this.early.push({ header: event.header, body: event.body });
    else this.events.onResponse(event.header, event.body);
  }

  private onClose(): void {
    this.parser.dispose();
    this.events?.onClose();
  }
}

/** Reads the reply from the first chunk(s); undefined while incomplete. */
function readHandshakeReply(parser: FrameParser, chunk: Buffer): Readonly<{ reply: HandshakeReply; offset: number }> | WalletError | undefined {
  const offset = parser.consume(chunk, 0);
  const event = parser.take();
  if (event === undefined) return undefined;
  if (event.kind === 'error') return new WalletError('protocol_error', event.reason);
  assert(event.kind === 'handshake_reply');
  const reply = event.reply;
  if (reply.version !== PROTOCOL_VERSION) return new WalletError('protocol_error', `server speaks protocol version ${reply.version}`);
  if (reply.status !== 0) return new WalletError(codeOfWire(reply.status) ?? 'internal_error');
  if (reply.batchRecordsMax === 0 || reply.inFlightRequestsMax === 0) return new WalletError('protocol_error', 'server announced zero limits');
  return { reply, offset };
}
