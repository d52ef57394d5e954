/**
 * Transport over a TCP socket. The only protocol file that touches `node:net`.
 */
import net from 'node:net';
import { assert } from '../stdx/assert.js';
import type { Transport, TransportHandlers } from './transport.js';

/**
 * Bytes an accepted connection reads into, reused for every read. Node's own read path
 * allocates a fresh 64 KiB buffer per read; at ~200 MB/s of transfer records that is thousands
 * of buffers a second outside V8's heap, and V8 answers that external memory with full
 * collections (every 80–190 ms in the latency-shaped benchmark, BENCHMARKS.md). One buffer per
 * connection: at most connectionsMax × 256 KiB (64 MiB at the default 256 connections).
 */
export const READ_BUFFER_BYTES = 256 * 1024;

export class TcpTransport implements Transport {
  readonly peer: string;
  private readonly socket: net.Socket;
  private handlers: TransportHandlers | undefined;
  private closedFlag = false;
  /** Whether the socket reads into a buffer of its own (accepted()), delivering chunks through onLentChunk. */
  readonly readsIntoOwnBuffer: boolean;

  /**
   * A connection the protocol server accepted: paused (the server listens with
   * pauseOnConnect) and, where this Node allows it, re-wrapped to read into one buffer of its
   * own (READ_BUFFER_BYTES). Otherwise the socket is used as it came.
   */
  static accepted(socket: net.Socket): TcpTransport {
    let transport: TcpTransport | undefined;
    const deliver = (bytesRead: number, buffer: Uint8Array): void => transport?.onLentChunk(bytesRead, buffer);
    const rewrapped = withOwnReadBuffer(socket, Buffer.allocUnsafe(READ_BUFFER_BYTES), deliver);
    transport = new TcpTransport(rewrapped ?? socket, rewrapped !== undefined);
    return transport;
  }

  constructor(socket: net.Socket, readsIntoOwnBuffer = false) {
    this.socket = socket;
    this.readsIntoOwnBuffer = readsIntoOwnBuffer;
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
    // Reading starts only now: until then the socket stays paused and keeps its bytes.
    if (!this.readsIntoOwnBuffer) this.socket.on('data', handlers.onData);
    this.socket.resume();
    this.socket.on('drain', handlers.onDrain);
    if (this.closedFlag) queueMicrotask(handlers.onClose);
  }

  private onLentChunk(bytesRead: number, buffer: Uint8Array): void {
    const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytesRead);
    this.handlers?.onData(chunk);
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

/**
 * `socket`'s connection under a new net.Socket that reads into `buffer` (the `onread` option,
 * which Node offers only to sockets it constructs: not to those a server accepts). The handle is
 * taken from the accepted socket, which then lets go of it: destroyed without a handle, it
 * closes nothing and only leaves the server's connection count (the protocol host counts its
 * own). Reading starts paused, as the accepted socket was. Returns undefined, touching nothing,
 * where the socket does not look as this expects (a Node whose internals differ).
 */
function withOwnReadBuffer(socket: net.Socket, buffer: Buffer, onRead: (bytesRead: number, buffer: Uint8Array) => void): net.Socket | undefined {
  const inner = socket as net.Socket & { _handle?: unknown };
  const handle = inner._handle;
  if (typeof handle !== 'object' || handle === null || typeof (handle as { readStart?: unknown }).readStart !== 'function') return undefined;
  if (socket.readableFlowing === true || socket.bytesRead > 0) return undefined;
  inner._handle = null;
  socket.destroy();
  const options = { handle, pauseOnCreate: true, readable: true, writable: true, onread: { buffer, callback: onRead } };
  return new net.Socket(options as net.SocketConstructorOpts);
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
