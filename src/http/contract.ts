import { STATUS_CODES } from 'node:http';
import type { FastifyInstance, RouteOptions } from 'fastify';
import FindMyWay from 'find-my-way';
import { z } from 'zod';
import { ERRORS, errorNamesFor } from '../errors.js';
import { errorSchema } from '../resources/envelope.js';
import { ANY_HOST } from './host-check.js';

/**
 * The rules every operation shares, in one place: a query parameter a route does not take is
 * refused (as an unknown body field is); a method a known path does not take is 405 with Allow;
 * and the OpenAPI document declares, on every operation, every status it can answer: its own and
 * those the server gives to any request (from the error catalogue, src/errors.ts).
 */

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Every method and path the API serves, to tell 405 (the path is known) from 404. */
export class KnownRoutes {
  private readonly router = FindMyWay({ maxParamLength: 100 });
  private readonly seen = new Set<string>();

  add(method: string, url: string): void {
    const key = `${method} ${url}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.router.on(method as 'GET', url, () => undefined);
  }

  /** The methods `path` is served with (none: the path is unknown). */
  allowed(path: string): string[] {
    return [...new Set([...this.seen].map((k) => k.split(' ')[0]!))].filter((m) => this.router.find(m as 'GET', path) !== null).sort();
  }
}

/**
 * Records every route in `known`, and gives each documented route without a query schema one that
 * takes no parameter: `?limit=x` where no limit is taken is 400, not silently ignored.
 */
export function registerContract(app: FastifyInstance, known: KnownRoutes): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    for (const m of [route.method].flat()) known.add(m, route.url);
    const schema = route.schema as Record<string, unknown> | undefined;
    if (schema && !schema.hide && !schema.querystring) route.schema = { ...schema, querystring: z.strictObject({}) };
  });
}

type JsonSchema = Record<string, unknown>;
/** The error body as the document's components.schemas.Error. */
export const errorJson = z.toJSONSchema(errorSchema, { target: 'openapi-3.0' }) as JsonSchema;
delete errorJson.$schema;

const header = (description: string, schema: JsonSchema = { type: 'string' }) => ({ ...schema, description });
const REQUEST_ID = header("the request's id: the caller's X-Request-Id (allow-listed) or a new one");
const RETRY_AFTER = header('seconds to wait before trying again', { type: 'integer' });

/** Why any route can answer a status, beyond the errors named in the catalogue. */
const WHY: Record<number, string> = {
  400: 'the request is not valid: a body or path value off its schema, a query parameter the operation does not take, bad percent-encoding',
  405: 'the path was called with a method it does not take; Allow names those it does',
  408: 'the request did not arrive within API_HEADERS_TIMEOUT_MS / API_REQUEST_TIMEOUT_MS',
  413: 'the body is over 1 MiB',
  414: 'a path parameter is over 100 characters',
  421: 'the Host is not one this API answers for (API_ALLOWED_HOSTS)',
  431: 'the request headers are over 16 KiB',
  500: 'an internal error (the service log has it, by request id)',
};

/** The statuses any request to this route can be answered with, whatever the route does. */
export function sharedStatuses(route: { method: string | string[]; url: string; schema?: { security?: readonly unknown[] }; config?: unknown }): number[] {
  const statuses = [400, 405, 408, 431, 500];
  if (!ANY_HOST.has(route.url)) statuses.push(421);
  if (route.url.includes(':')) statuses.push(414);
  if ([route.method].flat().some((m) => BODY_METHODS.has(m))) statuses.push(413);
  const security = route.schema?.security;
  if (!security || security.length) statuses.push(401, 403);
  // Idempotency-Key: a repeat while the first runs (409), the key on another request (422).
  if ((route.config as { idempotent?: boolean } | undefined)?.idempotent) statuses.push(409, 422);
  return statuses;
}

/** What an error status carries here: the reason, why it can happen and the catalogue's names for it. */
function errorDescription(status: number): string {
  const names = errorNamesFor(status, 'api').map((n) => `${n} (${ERRORS[n].code})`);
  return `${STATUS_CODES[status] ?? 'Error'}${WHY[status] ? `: ${WHY[status]}` : ''}. error: ${names.join(', ') || 'see docs/api.md'}`;
}

/**
 * An operation's responses, completed for the OpenAPI document (`responses`: its JSON schemas by
 * status, as @fastify/swagger takes them): every shared status with the error schema, each status
 * described, 304 without a body, and the headers the answers carry.
 */
export function completeResponses(responses: Record<string, JsonSchema> | undefined, route: Parameters<typeof sharedStatuses>[0] & { schema?: { response?: unknown } }): Record<string, JsonSchema> {
  const out: Record<string, JsonSchema> = { ...(responses ?? { 200: { description: 'OK' } }) };
  // The error body, declared once (components.schemas.Error) and named by each error status.
  const declared = (route.schema?.response ?? {}) as Record<string, unknown>;
  for (const status of new Set([...sharedStatuses(route), ...Object.keys(declared).map(Number).filter((s) => declared[s] === errorSchema)])) {
    out[status] = { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  }
  for (const [key, schema] of Object.entries(out)) {
    const status = Number(key);
    const headers: Record<string, JsonSchema> = { 'X-Request-Id': REQUEST_ID, ...(schema.headers as Record<string, JsonSchema> | undefined) };
    if (status === 304) {
      out[key] = { type: 'null', description: 'Not Modified: the ETag in If-None-Match is current; no body', headers: { ...headers, ETag: header('the current entity-tag') } };
      continue;
    }
    if (status === 405) headers.Allow = header('the methods this path takes');
    if (status >= 200 && status < 300 && out[304]) headers.ETag = header('the entity-tag: send it as If-None-Match to be answered 304 while it is current');
    if (status === 429 || status === 503 || errorNamesFor(status, 'api').some((n) => 'retryAfter' in ERRORS[n])) headers['Retry-After'] = RETRY_AFTER;
    const described = typeof schema.description === 'string' && !['error', 'Default Response'].includes(schema.description) ? schema.description : undefined;
    out[key] = { ...schema, headers, description: status >= 400 ? errorDescription(status) : (described ?? STATUS_CODES[status] ?? 'OK') };
  }
  return out;
}
