/**
 * Schema validation with two Ajv instances, because bodies and query strings need opposite
 * rules:
 * - JSON bodies are checked exactly: no type coercion ("amount": 10 must fail, not become
 *   "10"), unknown fields are errors (not silently removed), no defaults injected.
 * - Query strings and path parameters are text by nature, so `limit=50` is coerced to 50.
 * Fastify's default compiler applies one set of options to both, which cannot satisfy this.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchema, FastifySchemaCompiler } from 'fastify';

const bodyAjv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, strict: true });
const textAjv = new Ajv({ coerceTypes: true, removeAdditional: false, useDefaults: true, allErrors: false, strict: true });
for (const ajv of [bodyAjv, textAjv]) {
  // Documentation-only keywords that OpenAPI readers understand; Ajv's strict mode would reject them.
  ajv.addKeyword({ keyword: 'example' });
  ajv.addFormat('date-time', true);
}

export const validatorCompiler: FastifySchemaCompiler<FastifySchema> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : textAjv;
  return ajv.compile(schema as object);
};

/** A standalone body validator (the batch route checks each item on its own). */
export function compileBodyValidator(schema: object): ValidateFunction {
  return bodyAjv.compile(schema);
}

export type { ErrorObject };
