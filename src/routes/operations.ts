import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { forbidden, operationNotFound } from '../errors.js';
import type { Authorize } from '../http/auth.js';
import type { OperationService } from '../operations/operation-service.js';
import { operationVisible } from '../operations/selection.js';
import { BULK_OPS, operationListQuerySchema, operationSchema, selectorBodySchema, type Operation } from '../resources/operation.js';
import { access, errors, ok } from '../resources/envelope.js';

/** Operations (bulk, and one table's async calls): start, follow, list, cancel. */
export async function operationRoutes(fastify: FastifyInstance, opts: { operations: OperationService; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['operations'];
  const body = (o: Operation) => ({ code: 0 as const, message: `${o.op} of ${o.total} agent(s): ${o.state}${o.cancel ? ` (cancel asked by ${o.cancel.by})` : ''}`, operation: o });
  const idParams = z.object({ id: z.uuid('an operation id is a UUID') });

  for (const op of BULK_OPS) {
    app.post(`/v1/api/bulk/${op}`, {
      onRequest: opts.authorize('operate'),
      schema: {
        tags,
        summary: `${op} every agent the selector picks (db, tables, health, state, or all), concurrency at a time; answers 202 with the operation to follow`,
        ...access('operate'),
        body: selectorBodySchema,
        response: { 202: ok({ operation: operationSchema }), ...errors(400, 401, 403, 409, 422, 503) },
      },
      config: { idempotent: true },
      handler: async (req, reply) => {
        const { concurrency, ...selector } = req.body;
        const dbs = req.principal?.dbs;
        const outside = [selector.db, ...(selector.tables ?? []).map((t) => t.split('.')[0])].filter((d) => d && dbs && !dbs.includes(d));
        if (outside.length) throw forbidden(`this token is limited to db ${dbs!.join(', ')}`);
        const o = await opts.operations.begin(op, selector, concurrency, req.principal?.sub ?? 'unknown', dbs);
        return reply.status(202).header('location', `/v1/api/operations/${o.id}`).header('x-operation-id', o.id).send(body(o));
      },
    });
  }

  app.get('/v1/api/operations/:id', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: "A bulk operation's progress and each table's outcome (kept 24 h); also streamed as \"operation\" events",
      ...access('read'),
      params: idParams,
      response: { 200: ok({ operation: operationSchema }), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const o = await opts.operations.get(req.params.id);
      // A token limited to some dbs sees only operations within them: others are not there for it.
      if (!operationVisible(o.dbs, req.principal?.dbs)) throw operationNotFound(req.params.id);
      return body(o);
    },
  });

  app.get('/v1/api/operations', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: "Operations of the last 24 h, newest first (within the token's dbs): filter by kind, op, state, db; page with nextCursor",
      ...access('read'),
      querystring: operationListQuerySchema,
      response: { 200: ok({ operations: z.array(operationSchema), nextCursor: z.string().nullable().describe('pass as ?cursor= for the next page; null: this was the last') }), ...errors(400, 401, 403, 503) },
    },
    handler: async (req) => {
      const page = await opts.operations.list(req.query, req.principal?.dbs);
      return { code: 0 as const, message: `${page.operations.length} operation(s), newest first${page.nextCursor ? '; more with ?cursor=' + page.nextCursor : ''}`, ...page };
    },
  });

  app.post('/v1/api/operations/:id/cancel', {
    onRequest: opts.authorize('operate'),
    schema: {
      tags,
      summary: 'Cancel a running bulk operation: tables whose turn has not come are left as they are (outcome cancelled); those under way finish',
      ...access('operate'),
      params: idParams,
      response: { 200: ok({ operation: operationSchema }), ...errors(400, 401, 403, 404, 409, 503) },
    },
    handler: async (req) => {
      const seen = await opts.operations.get(req.params.id);
      if (!operationVisible(seen.dbs, req.principal?.dbs)) throw operationNotFound(req.params.id);
      return body(await opts.operations.cancel(req.params.id, req.principal?.sub ?? 'unknown'));
    },
  });
}
