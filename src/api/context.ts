/**
 * What every route needs: the ledger once it is open (the server listens while the ledger is
 * still recovering), the credentials, metrics, and the service's lifecycle phase.
 */
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../auth/principal.js';
import type { KeyStore } from '../auth/keys.js';
import type { Ledger } from '../engine/types.js';
import { assert } from '../stdx/assert.js';
import type { ServeConfig } from './config.js';
import type { ApiMetrics } from './metrics.js';
import { TransferSubmitter } from './transfer-submitter.js';

export type Phase = 'recovering' | 'ready' | 'closing' | 'failed';

/** Who may call a route: anyone (operations), any valid credential, or the admin only. */
export type Access = 'public' | 'authenticated' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    /** Set by the authentication hook on every /v1 route; null elsewhere. */
    principal: Principal | null;
    /**
     * The matched route's path pattern ('unmatched' for 404s), read once by the onRequest hook:
     * Fastify's `routeOptions` getter builds a new object on every access.
     */
    routeLabel: string;
  }
}

export class ApiContext {
  private openLedger: Ledger | undefined;
  private openSubmitter: TransferSubmitter | undefined;
  private currentPhase: Phase = 'recovering';

  constructor(
    readonly config: ServeConfig,
    readonly keys: KeyStore,
    readonly metrics: ApiMetrics,
  ) {}

  get phase(): Phase {
    return this.currentPhase;
  }

  /** Called once `openLedger` resolves: from now on /v1 routes are served. */
  attachLedger(ledger: Ledger): void {
    assert(this.openLedger === undefined, 'ledger attached twice');
    this.openLedger = ledger;
    this.openSubmitter = new TransferSubmitter(ledger, {
      coalesce: this.config.coalesceTransfers,
      timeoutMs: this.config.requestTimeoutMs,
      metrics: this.metrics,
    });
    this.metrics.attachStats(() => ledger.stats());
    this.metrics.attachLogScrub(() => ledger.logScrub());
    if (this.currentPhase === 'recovering') this.setPhase('ready');
  }

  setPhase(phase: Phase): void {
    this.currentPhase = phase;
    this.metrics.setReady(phase === 'ready');
  }

  /** The open ledger; the request hook has already answered 503 when there is none. */
  get ledger(): Ledger {
    assert(this.openLedger !== undefined, 'route ran before the ledger was open');
    return this.openLedger;
  }

  get submitter(): TransferSubmitter {
    assert(this.openSubmitter !== undefined, 'route ran before the ledger was open');
    return this.openSubmitter;
  }
}

/** The caller of a /v1 route (the hook guarantees one is set before any handler runs). */
export function principalOf(request: FastifyRequest): Principal {
  const principal = request.principal;
  assert(principal !== null, 'authenticated route without a principal');
  return principal;
}
