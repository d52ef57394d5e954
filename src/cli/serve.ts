/**
 * `walletd serve`: the HTTP API v1 on the embedded ledger.
 *
 * Start-up order matters for operations: the HTTP server listens first (so /healthz answers
 * and /readyz says 503 while the log is replayed), then the ledger opens, then /v1 is served.
 * Stop order: SIGTERM/SIGINT → refuse new requests, let in-flight ones finish and be answered,
 * close the ledger (final snapshot), exit 0 — all within 30 seconds.
 */
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { buildHttpServer, type HttpServer } from '../api/server.js';
import { MIB, parseServeArgs, serveHelpText, type ServeConfig } from '../api/config.js';
import { ApiMetrics } from '../api/metrics.js';
import { KeyStore, type KeyStoreOpened } from '../auth/keys.js';
import type { Authenticate } from '../auth/principal.js';
import { startProtocolServer, type ProtocolServer } from '../protocol/server.js';
import { openLedger } from '../engine/ledger.js';
import { crc32Native } from '../stdx/crc32.js';
import { hugePagesRequested } from '../stdx/node-flags.js';
import type { Ledger, LogScrubStatus } from '../engine/types.js';

/** The whole graceful stop must end before this (API.md: within 30 seconds). */
const STOP_DEADLINE_MS = 29_500;
const RECOVERY_LOG_EVERY_MS = 2_000;
const EXIT_GRACE_MS = 1_000;
const LOG_BUFFER_BYTES = 8 * 1024;
const LOG_BUFFER_BYTES_MAX = 16 * 1024 * 1024;
const LOG_FLUSH_EVERY_MS = 200;

export async function serveCommand(args: string[]): Promise<number> {
  const parsed = parseServeArgs(args, process.env);
  if (parsed.kind === 'help') {
    process.stdout.write(`${serveHelpText()}\n`);
    return 0;
  }
  if (parsed.kind === 'error') {
    process.stderr.write(`walletd serve: ${parsed.message}\nRun 'walletd serve --help' for the options.\n`);
    return 2;
  }
  const code = await serve(parsed.config);
  // Everything is closed; should a stray handle keep the event loop alive, do not hang around.
  setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  return code;
}

async function serve(config: ServeConfig): Promise<number> {
  await mkdir(config.dataDir, { recursive: true });
  const opened = await KeyStore.open(config.dataDir, config.adminToken);
  if (opened.generatedAdminToken !== undefined) announceAdminToken(opened.generatedAdminToken, opened.adminTokenPath);
  const metrics = new ApiMetrics();
  const logDestination = bufferedStdout();
  const server = await buildHttpServer({ config, keys: opened.store, metrics, logStream: logDestination });
  const stopSignal = waitForStopSignal(server);
  try {
    const flushLogs = (): void => logDestination.flush();
    return await run(config, server, { metrics, opened, stopSignal, flushLogs });
  } finally {
    logDestination.flushSync();
  }
}

type RunParts = Readonly<{ metrics: ApiMetrics; opened: KeyStoreOpened; stopSignal: Promise<NodeJS.Signals>; flushLogs: () => void }>;

async function run(config: ServeConfig, server: HttpServer, parts: RunParts): Promise<number> {
  const { metrics, opened, stopSignal, flushLogs } = parts;
  await server.app.listen({ port: config.port, host: config.host });
  const address = server.app.server.address() as AddressInfo;
  server.app.log.info({ port: address.port, host: address.address, dataDir: config.dataDir }, 'listening');
  flushLogs();

  const ledgerOpening = openLedgerLogged(config, server, metrics);
  const first = await Promise.race([
    ledgerOpening.then((ledger) => ({ kind: 'open' as const, ledger }), (error: unknown) => ({ kind: 'failed' as const, error })),
    stopSignal.then((signal) => ({ kind: 'signal' as const, signal })),
  ]);
  let protocol: ProtocolServer | undefined;
  try {
    if (first.kind === 'failed') throw first.error;
    if (first.kind === 'open') protocol = await startServing(config, server, first.ledger, opened.store.authenticate);
    flushLogs();
  } catch (error) {
    server.context.setPhase('failed');
    server.app.log.fatal({ err: error }, 'could not start serving');
    await server.app.close();
    await ledgerOpening.then((ledger) => ledger.close()).catch(() => undefined);
    return 1;
  }
  const signal = first.kind === 'signal' ? first.signal : await stopSignal;
  return stop(server, protocol, ledgerOpening, config, signal);
}

function openLedgerLogged(config: ServeConfig, server: HttpServer, metrics: ApiMetrics): Promise<Ledger> {
  return openLedger({
    dataDir: config.dataDir,
    fsync: config.fsync,
    observer: {
      ...metrics.engineObserver,
      // Logged as well as counted: an operator reading the log sees how often snapshots land,
      // how long they take and how large they are (the restart's tail is what comes after one).
      onSnapshot: (info) => {
        metrics.engineObserver.onSnapshot?.(info);
        const { sequence, bytes, newEntries, entriesFrom } = info;
        server.app.log.info({ sequence, bytes, ms: Math.round(info.ms), newEntries, entriesFrom }, 'snapshot written');
      },
      onLogScrubStart: (upToSequence, fromSequence) =>
        server.app.log.info({ fromSequence, upToSequence, mibPerSecond: config.logScrubMiBPerSecond }, fromSequence > 1 ? 'log scrub resumed from its checkpoint' : 'log scrub started'),
      onLogScrubEnd: (status) => logScrubEnd(server, status),
    },
    onRecoveryProgress: recoveryLogger(server),
    logScrubBytesPerSecond: config.logScrubMiBPerSecond === 'off' ? 'off' : config.logScrubMiBPerSecond * MIB,
    onFatal: (error) => {
      // The in-memory state is ahead of the disk: only a restart (recovery from the log) is safe.
      server.app.log.fatal({ err: error }, 'log write failed; exiting for recovery');
      process.exit(70);
    },
    ...(config.snapshotEveryRecords === undefined ? {} : { snapshotEveryRecords: config.snapshotEveryRecords }),
    ...(config.queueRecordsMax === undefined ? {} : { queueRecordsMax: config.queueRecordsMax }),
    ...(config.expectedTransactions === undefined ? {} : { expectedTransactions: config.expectedTransactions }),
    ...(config.maxTransactions === undefined ? {} : { maxTransactions: config.maxTransactions }),
    ...(config.maxAccounts === undefined ? {} : { maxAccounts: config.maxAccounts }),
  });
}

/**
 * A failed scrub is logged at error level and counted (walletd_log_scrub_failed) but does not
 * stop the service: the state was rebuilt from a snapshot whose digest checked, and the frames
 * after it were checked by recovery; what is damaged is history (verify, replays, statements
 * reaching into it), which the operator restores from a copy of the log.
 */
function logScrubEnd(server: HttpServer, status: LogScrubStatus): void {
  const { bytesChecked, framesChecked, resumedFromSequence } = status;
  if (status.failure === undefined) {
    const from = resumedFromSequence > 1 ? ` from sequence ${resumedFromSequence} (an interrupted scrub checked those before)` : '';
    server.app.log.info({ bytesChecked, framesChecked, resumedFromSequence }, `log scrub passed: the frames the snapshot covers check${from}, and their hash chain ends at its chain hash`);
  } else server.app.log.error({ ...status.failure, bytesChecked, framesChecked, resumedFromSequence }, `log scrub failed: ${status.failure.message}`);
}

/** With the ledger open: the binary protocol listener (unless off), then /v1 and readiness. */
async function startServing(config: ServeConfig, server: HttpServer, ledger: Ledger, authenticate: Authenticate): Promise<ProtocolServer | undefined> {
  // The binary protocol (the high-throughput path) shares the ledger and the credentials.
  let protocol: ProtocolServer | undefined;
  if (config.protocolPort === 'off') {
    server.app.log.info('protocol off: no binary protocol listener');
  } else {
    protocol = await startProtocolServer({ ledger, authenticate, host: config.host, port: config.protocolPort });
    server.app.log.info({ protocolPort: protocol.port, host: config.host }, 'protocol listening');
  }
  server.context.attachLedger(ledger);
  const stats = ledger.stats();
  server.app.log.info({ headSequence: stats.headSequence, accounts: stats.accounts, fsync: config.fsync, hugePages: hugePagesRequested(), crc32: crc32Native ? 'native' : 'zlib', chainHash: stats.chainHash }, 'ready');
  return protocol;
}

type LogSink = Readonly<{ write(line: string): void; flush(): void; flushSync(): void }>;

/**
 * JSON logs go to stdout through a buffer: a line per request would otherwise cost a write
 * (a thread-pool round trip or a blocking syscall) per request. Lines leave when 8 KiB gather
 * or every 200 ms, lifecycle lines at once (`flush`), everything before the process ends
 * (pino flushes on exit). A stdout nobody reads cannot grow the buffer beyond 16 MiB: lines
 * past that are dropped rather than exhausting memory.
 *
 * Lines are handed over as bytes: in text mode sonic-boom re-measures the UTF-8 length of its
 * whole pending string on every write (about 2 µs a line at an 8 KiB buffer, measured), while
 * in buffer mode it only adds lengths (about 0.5 µs a line, the copy included).
 */

function bufferedStdout(): LogSink {
  const destination = pino.destination({
    dest: 1,
    sync: false,
    contentMode: 'buffer',
    minLength: LOG_BUFFER_BYTES,
    maxLength: LOG_BUFFER_BYTES_MAX,
    periodicFlush: LOG_FLUSH_EVERY_MS,
  });
  // In buffer mode sonic-boom's write takes a Buffer; its typings only know the text mode.
  const writeBytes = destination.write.bind(destination) as unknown as (bytes: Buffer) => boolean;
  return {
    write: (line) => void writeBytes(Buffer.from(line, 'utf8')),
    flush: () => destination.flush(),
    flushSync: () => destination.flushSync(),
  };
}

/** Printed once, to the terminal and not to the JSON log: the log must never hold a token. */
function announceAdminToken(token: string, path: string | undefined): void {
  process.stderr.write(
    `walletd: generated an admin token (stored in ${path ?? 'the data directory'}, mode 0600; shown only this once):\n${token}\n`,
  );
}

function waitForStopSignal(server: HttpServer): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received) {
        server.app.log.warn({ signal }, 'second stop signal: exiting at once');
        process.exit(1);
      }
      received = true;
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

async function stop(
  server: HttpServer,
  protocol: ProtocolServer | undefined,
  ledgerOpening: Promise<Ledger>,
  config: ServeConfig,
  signal: string,
): Promise<number> {
  const { app, context } = server;
  context.setPhase('closing');
  app.log.info({ signal }, 'stopping: no new requests, finishing in-flight ones');
  const watchdog = setTimeout(() => {
    app.log.error('graceful stop exceeded its deadline; exiting');
    process.exit(1);
  }, STOP_DEADLINE_MS);
  watchdog.unref();
  // Requests still running after the grace period lose their connection; their transfers are
  // either logged (a retry returns them) or not (a retry applies them): idempotency covers both.
  const cut = setTimeout(() => app.server.closeAllConnections(), config.shutdownTimeoutMs);
  await Promise.all([app.close(), protocol?.close()]);
  clearTimeout(cut);
  // A stop during recovery waits for the ledger to open, so it is closed with a snapshot.
  const ledger = await ledgerOpening.catch(() => undefined);
  if (ledger === undefined) {
    app.log.error('stopped; the ledger had failed to open');
    return 1;
  }
  const headSequence = ledger.stats().headSequence;
  await ledger.close();
  clearTimeout(watchdog);
  app.log.info({ headSequence }, 'stopped: final snapshot written');
  return 0;
}

function recoveryLogger(server: HttpServer): (done: number, total: number) => void {
  let lastLogMs = 0;
  return (done, total) => {
    const now = Date.now();
    if (now - lastLogMs < RECOVERY_LOG_EVERY_MS && done < total) return;
    lastLogMs = now;
    server.app.log.info({ done, total }, 'recovering');
  };
}
