/**
 * The options every /v1 route shares: who may call it, and its schemas (which validate the
 * request, serialize the answer and document the route in /openapi.json).
 */
import type { FastifySchema } from 'fastify';
import type { Access } from './context.js';
import { errorResponses } from './schemas.js';

export type V1RouteSpec = Readonly<{
  access: Exclude<Access, 'public'>;
  tag: 'accounts' | 'transfers' | 'keys';
  summary: string;
  body?: object;
  params?: object;
  querystring?: object;
  /** Success responses by status. */
  ok: Readonly<Record<number, object>>;
  /** Error statuses beyond those every /v1 route may answer (400, 401, 429, 503). */
  errors: readonly number[];
}>;

export function v1Route(spec: V1RouteSpec): { config: { access: Access }; schema: FastifySchema } {
  return {
    config: { access: spec.access },
    schema: {
      tags: [spec.tag],
      summary: spec.summary,
      security: [{ bearer: [] }],
      ...(spec.body === undefined ? {} : { body: spec.body }),
      ...(spec.params === undefined ? {} : { params: spec.params }),
      ...(spec.querystring === undefined ? {} : { querystring: spec.querystring }),
      response: { ...spec.ok, ...errorResponses(...spec.errors) },
    },
  };
}
