/**
 * The byte pipe under the protocol. Protocol code (parser, server connection, client) only sees
 * this interface and never imports `node:net`, so it runs unchanged over TCP
 * (transport-tcp.ts) or over an in-memory pair in tests (transport-memory.ts).
 */

export type TransportHandlers = Readonly<{
  /**
   * A chunk of bytes from the peer, lent for the call only: the transport may read the next
   * chunk into the same memory (the server's TCP transport does), so a receiver that keeps
   * bytes past the call keeps a copy.
   */
  onData: (chunk: Buffer) => void;
  /** The send buffer drained below its high-water mark after `write` returned false. */
  onDrain: () => void;
  /** The pipe is closed in both directions (peer closed, error, `end` or `destroy`). Called once. */
  onClose: () => void;
}>;

export interface Transport {
  /**
   * Queues `head` then `body` as one write (one syscall on TCP). The transport keeps a reference
   * to both until they are sent, so callers must not reuse them before the answer comes back.
   * Returns false when the send buffer is over its high-water mark: stop producing until onDrain.
   */
  write(head: Uint8Array, body?: Uint8Array): boolean;
  /** Stops onData until resume(); bytes wait in the OS buffer, which pushes back on the peer. */
  pause(): void;
  resume(): void;
  /** Sends what is queued, then closes. */
  end(): void;
  /** Closes now, dropping whatever is queued. */
  destroy(): void;
  readonly closed: boolean;
  /** A short description of the peer for logs ("127.0.0.1:53122", "memory#3"). */
  readonly peer: string;
  setHandlers(handlers: TransportHandlers): void;
}
