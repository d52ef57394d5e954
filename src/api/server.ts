/**
 * Builds the HTTP API v1 server (Fastify): schemas, authentication, rate limits, routes, docs,
 * metrics and request logs. The server can listen before the ledger is open: until
 * `context.attachLedger` is called, /v1 answers 503 not_ready and /readyz says so.
 */
import { randomBytes } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import pino, { type Logger } from 'pino';
import type { KeyStore } from '../auth/keys.js';
import type { ErrorCode } from '../core/errors.js';
import { isValidId } from '../core/ids.js';
import type { ServeConfig } from './config.js';
import { ApiContext, type Access } from './context.js';
import { handleError, handleNotFound, sendError } from './http-errors.js';
import type { ApiMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { LazyChildLogger, RequestLine } from './request-log.js';
import { registerAccountRoutes } from './routes-accounts.js';
import { registerKeyRoutes, registerOperationRoutes } from './routes-operations.js';
import { registerTransferRoutes } from './routes-transfers.js';
import { validatorCompiler } from './validation.js';

export type HttpServer = Readonly<{ app: FastifyInstance; context: ApiContext }>;

export type HttpServerOptions = Readonly<{
  config: ServeConfig;
  keys: KeyStore;
  metrics: ApiMetrics;
  /** Where JSON logs go (stdout by default). */
  logStream?: { write(line: string): unknown };
}>;

export async function buildHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { config } = options;
  const destination = options.logStream ?? pino.destination({ dest: 1, sync: true });
  const logger = buildLogger(config.logLevel, destination);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // A request's own logger is made only if something logs through it (request-log.ts).
    childLoggerFactory: (parent, bindings, childOptions) => new LazyChildLogger(parent, bindings, childOptions),
    // Fastify's two lines per request are replaced by one line in the onResponse hook.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    genReqId: requestIdGenerator(),
  });
  app.server.maxConnections = config.connectionsMax;
  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  app.decorateRequest('principal', null);
  app.decorateRequest('routeLabel', '');

  const context = new ApiContext(config, options.keys, options.metrics);
  const requestLine = new RequestLine(logger, destination);
  const limiter = new RateLimiter(config.rateLimitPerSecond, config.rateLimitBurst);
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    const refusal = admit(context, limiter, request, reply);
    if (refusal !== undefined) {
      sendError(reply, refusal);
      return;
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    observeResponse(context, requestLine, request, reply);
    done();
  });

  await registerDocumentation(app);
  registerOperationRoutes(app, context);
  registerKeyRoutes(app, context);
  registerAccountRoutes(app, context);
  registerTransferRoutes(app, context);
  return { app, context };
}

/**
 * Authentication, rate limit, role and lifecycle checks, in that order, before the body is
 * even read: an unauthenticated or throttled client costs no parsing.
 */
function admit(context: ApiContext, limiter: RateLimiter, request: FastifyRequest, reply: FastifyReply): ErrorCode | undefined {
  const route = request.routeOptions;
  request.routeLabel = route.url ?? 'unmatched';
  const access: Access = route.config.access ?? 'public';
  if (access === 'public') return undefined;
  const token = bearerTokenOf(request.headers.authorization);
  const principal = token === undefined ? undefined : context.keys.authenticate(token);
  if (token === undefined || principal === undefined) {
    reply.header('www-authenticate', 'Bearer');
    return 'unauthorized';
  }
  const retryAfterSeconds = limiter.take(token);
  if (retryAfterSeconds > 0) {
    reply.header('retry-after', String(retryAfterSeconds));
    return 'rate_limited';
  }
  if (access === 'admin' && principal.kind !== 'admin') return 'forbidden';
  request.principal = principal;
  return refusalOfPhase(context, reply);
}

function refusalOfPhase(context: ApiContext, reply: FastifyReply): ErrorCode | undefined {
  switch (context.phase) {
    case 'ready':
      return undefined;
    case 'recovering':
    case 'failed':
      return 'not_ready';
    case 'closing':
      reply.header('connection', 'close');
      return 'shutting_down';
  }
}

const BEARER = /^Bearer +(\S+) *$/i;

function bearerTokenOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  return BEARER.exec(header)?.[1];
}

function observeResponse(context: ApiContext, requestLine: RequestLine, request: FastifyRequest, reply: FastifyReply): void {
  const route = request.routeLabel === '' ? (request.routeOptions.url ?? 'unmatched') : request.routeLabel;
  const elapsedMs = reply.elapsedTime;
  context.metrics.observeRequest(request.method, route, reply.statusCode, elapsedMs / 1000);
  if (context.config.logRequests) {
    requestLine.write({ reqId: request.id, method: request.method, route, url: request.url, status: reply.statusCode, ms: Math.round(elapsedMs * 100) / 100 });
  }
}

/**
 * The server's pino logger, with Fastify's own serializers rebuilt here (a logger instance
 * given to Fastify gets none): tokens are never logged, because no line carries headers and a
 * request is reduced to method, url, host and remote address (a test greps the logs).
 */
function buildLogger(level: string, destination: { write(line: string): unknown }): Logger {
  return pino(
    {
      level,
      serializers: {
        err: pino.stdSerializers.err,
        req: (request: FastifyRequest) => ({ method: request.method, url: request.url, host: request.host, remoteAddress: request.ip }),
        res: (reply: FastifyReply) => ({ statusCode: reply.statusCode }),
      },
    },
    destination,
  );
}

/**
 * Request ids: a caller's valid `x-request-id` is kept (so ids follow a request across
 * services); otherwise a per-process random prefix plus a counter, unique across restarts.
 */
function requestIdGenerator(): (request: { headers: Record<string, string | string[] | undefined> }) => string {
  const prefix = randomBytes(4).toString('hex');
  let counter = 0;
  return (request) => {
    const given = request.headers['x-request-id'];
    if (typeof given === 'string' && isValidId(given)) return given;
    counter += 1;
    return `${prefix}-${counter.toString(36)}`;
  };
}

async function registerDocumentation(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'walletd HTTP API',
        version: '1',
        description: 'Digital-wallet ledger: accounts, durable idempotent transfers, history. Errors are {"error":{"code","message"}}.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Admin token or owner API key' } } },
      tags: [
        { name: 'accounts', description: 'Open and read accounts, balances and statements' },
        { name: 'transfers', description: 'Move money; every outcome is durable and idempotent by transaction_id' },
        { name: 'keys', description: 'Owner-scoped API keys' },
        { name: 'operations', description: 'Health, readiness, metrics (no token)' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list', deepLinking: false } });
}
