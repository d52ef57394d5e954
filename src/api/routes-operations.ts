/**
 * API keys (admin) and the unauthenticated operations endpoints: liveness, readiness, metrics,
 * OpenAPI document.
 */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from './context.js';
import { sendError } from './http-errors.js';
import { v1Route } from './route-options.js';
import * as schemas from './schemas.js';

export function registerKeyRoutes(app: FastifyInstance, context: ApiContext): void {
  app.post<{ Body: { owner: string } }>(
    '/v1/api-keys',
    v1Route({
      access: 'admin',
      tag: 'keys',
      summary: 'Create an owner-scoped API key (admin); the secret is shown only in this response',
      body: schemas.createKeyBody,
      ok: { 201: schemas.apiKeyResponse },
      errors: [403],
    }),
    async (request, reply) => {
      const apiKey = await context.keys.createOwnerKey(request.body.owner);
      return reply.code(201).send({ api_key: apiKey, owner: request.body.owner });
    },
  );
}

const statusBody = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string' } },
} as const;

export function registerOperationRoutes(app: FastifyInstance, context: ApiContext): void {
  app.get(
    '/healthz',
    { config: { access: 'public' }, schema: { tags: ['operations'], summary: 'The process is alive', response: { 200: statusBody } } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'Ready to accept writes (503 while recovering or shutting down)',
        response: { 200: statusBody, 503: schemas.errorBody },
      },
    },
    async (_request, reply) => {
      switch (context.phase) {
        case 'ready':
          return reply.send({ status: 'ready' });
        case 'recovering':
          return sendError(reply, 'not_ready');
        case 'failed':
          return sendError(reply, 'not_ready', 'the ledger failed to open; see the logs');
        case 'closing':
          return sendError(reply, 'shutting_down');
      }
    },
  );

  app.get(
    '/metrics',
    { config: { access: 'public' }, schema: { tags: ['operations'], summary: 'Prometheus text format', produces: ['text/plain'] } },
    async (_request, reply) => {
      const text = await context.metrics.render();
      return reply.type(context.metrics.contentType).send(text);
    },
  );

  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async (_request, reply) => {
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(app.swagger()));
  });
}
