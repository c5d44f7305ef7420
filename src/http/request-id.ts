import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

/** What a caller's X-Request-Id may hold to be kept: it reaches logs and the audit trail. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/**
 * Fastify's `genReqId`: the caller's `X-Request-Id` when it is 1-128 characters of letters,
 * digits and `._:@/+=-` (a proxy's or a client's trace id), else a new UUID. Either way it is
 * the request's `req.id`: logged with every line as `reqId`, echoed in `X-Request-Id`, written
 * into every error body (`requestId`) and the audit entry.
 */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/** Echoes the request id on every answer (errors, streams and 304s included). */
export function registerRequestId(app: FastifyInstance): void {
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id);
  });
}
