/**
 * Transport over a TCP socket. The only protocol file that touches `node:net`.
 */
import net from 'node:net';
import { assert } from '../stdx/assert.js';
import type { Transport, TransportHandlers } from './transport.js';

export class TcpTransport implements Transport {
  readonly peer: string;
  private readonly socket: net.Socket;
  private handlers: TransportHandlers | undefined;
  private closedFlag = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    // Frames are whole requests; Nagle would only add latency to the last frame of a burst.
    socket.setNoDelay(true);
    // An error is always followed by 'close'; the protocol reacts to the close alone.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closedFlag = true;
      this.handlers?.onClose();
    });
  }

  get closed(): boolean {
    return this.closedFlag || this.socket.destroyed;
  }

  setHandlers(handlers: TransportHandlers): void {
    assert(this.handlers === undefined, 'transport handlers set twice');
    this.handlers = handlers;
    // The data listener goes on only now: until then the socket stays paused and keeps its bytes.
    this.socket.on('data', handlers.onData);
    this.socket.on('drain', handlers.onDrain);
    if (this.closedFlag) queueMicrotask(handlers.onClose);
  }

  write(head: Uint8Array, body?: Uint8Array): boolean {
    // After end() the socket refuses writes; a late answer is dropped like one to a closed peer.
    if (this.closed || this.socket.writableEnded) return true;
    if (body === undefined || body.length === 0) return this.socket.write(head);
    // Corked writes leave as one writev: header and a 1.7 MB body, no concatenation copy.
    this.socket.cork();
    this.socket.write(head);
    const below = this.socket.write(body);
    this.socket.uncork();
    return below;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Opens a TCP connection; rejects with the socket error or after `timeoutMs`. */
export function connectTcp(host: string, port: number, timeoutMs: number): Promise<Transport> {
  assert(timeoutMs > 0);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new TcpTransport(socket));
    });
  });
}
