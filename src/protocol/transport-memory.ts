/**
 * An in-memory transport pair: what one side writes, the other receives on a later turn of the
 * event loop, as with a socket. Used by tests to run the real protocol code without TCP, and to
 * cut a connection at an exact point.
 *
 * Chunks are lent as the server's TCP transport lends them, through one buffer the next chunk
 * is read into; here it is also overwritten right after each onData call, so a receiver that
 * keeps a chunk instead of a copy reads garbage and its tests fail.
 */
import { assert } from '../stdx/assert.js';
import type { Transport, TransportHandlers } from './transport.js';

let pairsCreated = 0;
/** What a lent chunk holds after its onData call: not a valid frame header or record. */
const LENT_GARBAGE = 0xee;

export class MemoryTransport implements Transport {
  readonly peer: string;
  other: MemoryTransport | undefined;
  private handlers: TransportHandlers | undefined;
  private readonly inbox: Buffer[] = [];
  private paused = false;
  private deliveryScheduled = false;
  private closedFlag = false;
  private closeNotified = false;
  private endingAfterDelivery = false;
  private lent = Buffer.alloc(0);

  constructor(peer: string) {
    this.peer = peer;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  setHandlers(handlers: TransportHandlers): void {
    assert(this.handlers === undefined, 'transport handlers set twice');
    this.handlers = handlers;
    this.scheduleDelivery();
  }

  write(head: Uint8Array, body?: Uint8Array): boolean {
    if (this.closedFlag) return true;
    const peer = this.other;
    assert(peer !== undefined, 'memory transport has no peer');
    // Copy: the bytes wait in the inbox until delivered, and the sender may reuse its buffers once answered.
    peer.receive(Buffer.concat(body === undefined ? [head] : [head, body]));
    return true;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.scheduleDelivery();
  }

  /** The peer sees everything written so far, then the close. */
  end(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    const peer = this.other;
    if (peer !== undefined) peer.endAfterDelivery();
    this.notifyClose();
  }

  destroy(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.other?.destroy();
    this.notifyClose();
  }

  private receive(chunk: Buffer): void {
    if (this.closedFlag) return;
    this.inbox.push(chunk);
    this.scheduleDelivery();
  }

  private endAfterDelivery(): void {
    this.endingAfterDelivery = true;
    this.scheduleDelivery();
  }

  private scheduleDelivery(): void {
    if (this.deliveryScheduled) return;
    this.deliveryScheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.deliveryScheduled = false;
    const handlers = this.handlers;
    if (handlers === undefined) return;
    while (!this.paused && this.inbox.length > 0 && !this.closeNotified) {
      this.lend(this.inbox.shift() as Buffer, handlers.onData);
    }
    if (this.endingAfterDelivery && this.inbox.length === 0) this.destroy();
    if (this.closedFlag) this.notifyClose();
  }

  private lend(chunk: Buffer, onData: (chunk: Buffer) => void): void {
    if (this.lent.length < chunk.length) this.lent = Buffer.alloc(Math.max(chunk.length, 2 * this.lent.length));
    chunk.copy(this.lent);
    onData(this.lent.subarray(0, chunk.length));
    this.lent.fill(LENT_GARBAGE, 0, chunk.length);
  }

  private notifyClose(): void {
    if (this.closeNotified || this.handlers === undefined) return;
    this.closeNotified = true;
    const handlers = this.handlers;
    queueMicrotask(() => handlers.onClose());
  }
}

/** Two connected ends: `client` writes arrive at `server` and the other way round. */
export function createMemoryTransportPair(): { client: MemoryTransport; server: MemoryTransport } {
  pairsCreated += 1;
  const client = new MemoryTransport(`memory#${pairsCreated}/client`);
  const server = new MemoryTransport(`memory#${pairsCreated}/server`);
  client.other = server;
  server.other = client;
  return { client, server };
}
