/**
 * The TCP listener of the binary protocol: accepts connections up to `connectionsMax`, runs a
 * ServerConnection on each, and closes gracefully (stop accepting, answer what is in flight,
 * then close every connection).
 */
import net from 'node:net';
import { assert } from '../stdx/assert.js';
import { ERRORS } from '../core/errors.js';
import type { Authenticate } from '../auth/principal.js';
import type { Ledger } from '../engine/types.js';
import { BodyPool } from './body-pool.js';
import { resolveLimits } from './constants.js';
import type { ProtocolLimits } from './constants.js';
import { encodeHandshakeRefusal } from './frame.js';
import { ServerConnection } from './server-connection.js';
import type { ConnectionContext } from './server-connection.js';
import { TcpTransport } from './transport-tcp.js';
import type { Transport } from './transport.js';

export type ProtocolServerOptions = Readonly<{
  ledger: Ledger;
  authenticate: Authenticate;
  host?: string;
  /** 0 picks a free port; the handle says which. */
  port: number;
  limits?: Partial<ProtocolLimits>;
}>;

export type ProtocolServer = Readonly<{
  port: number;
  /** Connections open right now (for metrics and tests). */
  connections: () => number;
  /** Stops accepting, answers in-flight requests, closes every connection. Idempotent. */
  close: () => Promise<void>;
}>;

/** Runs the protocol over any transports; startProtocolServer feeds it TCP sockets. */
export class ProtocolHost {
  readonly limits: ProtocolLimits;
  private readonly context: ConnectionContext;
  private readonly open = new Set<ServerConnection>();
  private closing = false;
  private readonly closedWaiters: Array<() => void> = [];

  constructor(options: Readonly<{ ledger: Ledger; authenticate: Authenticate; limits?: Partial<ProtocolLimits> }>) {
    this.limits = resolveLimits(options.limits);
    const pool = new BodyPool({
      slabBytes: this.limits.frameBodyBytesMax,
      bytesMax: this.limits.inFlightBytesMax,
      slabsFreeMax: Math.ceil(this.limits.inFlightBytesMax / this.limits.frameBodyBytesMax),
    });
    this.context = { ledger: options.ledger, authenticate: options.authenticate, limits: this.limits, pool };
  }

  get connections(): number {
    return this.open.size;
  }

  /** Takes over a new transport: serves it, or refuses it in a handshake reply. */
  accept(transport: Transport): void {
    if (this.closing || this.open.size >= this.limits.connectionsMax) {
      const status = this.closing ? ERRORS.shutting_down.wire : ERRORS.overloaded.wire;
      return refuse(transport, status);
    }
    const connection = new ServerConnection(transport, this.context, (closed) => this.onConnectionClosed(closed));
    this.open.add(connection);
  }

  /** Resolves when every connection has closed; cuts the stragglers after closeTimeoutMs. */
  close(): Promise<void> {
    this.closing = true;
    for (const connection of this.open) connection.beginClose();
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const connection of this.open) connection.destroy();
      }, this.limits.closeTimeoutMs);
      this.closedWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private onConnectionClosed(connection: ServerConnection): void {
    assert(this.open.has(connection), 'unknown connection closed');
    this.open.delete(connection);
    if (this.closing && this.open.size === 0) {
      for (const waiter of this.closedWaiters.splice(0)) waiter();
    }
  }
}

function refuse(transport: Transport, status: number): void {
  transport.setHandlers({ onData: () => undefined, onDrain: () => undefined, onClose: () => undefined });
  transport.write(encodeHandshakeRefusal(status));
  transport.end();
}

export async function startProtocolServer(options: ProtocolServerOptions): Promise<ProtocolServer> {
  const host = new ProtocolHost(options);
  // Paused on connect so that TcpTransport.accepted can move the connection to a socket that reads into a buffer of its own.
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => host.accept(TcpTransport.accepted(socket)));
  await listen(server, options.host ?? '127.0.0.1', options.port);
  // After listening, errors are transient accept failures (EMFILE); connections carry on.
  server.on('error', () => undefined);
  const address = server.address();
  assert(address !== null && typeof address === 'object', 'server has no address');
  let closed: Promise<void> | undefined;
  return {
    port: address.port,
    connections: () => host.connections,
    close: () => {
      closed ??= Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), host.close()]).then(() => undefined);
      return closed;
    },
  };
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
