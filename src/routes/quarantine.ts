import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { QuarantineService } from '../agents/quarantine-service.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';
import { NAME_PATTERN, programName, tableParamsSchema } from '../resources/table.js';
import { quarantinedEventSchema } from '../store/quarantine.js';
import { forbidden } from '../errors.js';
import { dbAllowed } from '../auth/roles.js';

const pageQuery = z.strictObject({
  offset: z.coerce.number().int().min(0).default(0).describe('events to skip, oldest first'),
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe('at most this many events (1000)'),
});
const tableName = z.string().regex(NAME_PATTERN, 'a name of lowercase letters, digits and _ (at most 48)');
const replayBody = z
  .strictObject({
    to: z.strictObject({ db: tableName, table: tableName }).optional().describe('the table to send them into (default: this table)'),
  })
  .default({});

/**
 * A table's quarantine: the events its sink can never deliver, kept aside so that the rest flow
 * on (the Kafka sink: too large for the broker or the topic, invalid). Read it, replay it once
 * the cause is fixed (into this table or another), or drop it.
 */
export async function quarantineRoutes(fastify: FastifyInstance, opts: { quarantine: QuarantineService; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { quarantine, authorize } = opts;
  const tags = ['quarantine'];

  app.get('/v1/api/:db/:table/quarantine', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: 'The events the sink can never deliver, oldest first, with the reason and when; count is all of them',
      ...access('operate'),
      params: tableParamsSchema,
      querystring: pageQuery,
      response: {
        200: ok({ program: z.string(), count: z.number(), events: z.array(quarantinedEventSchema.extend({ file: z.string().describe('the quarantine file it is in') })) }),
        ...errors(400, 401, 403, 404, 503),
      },
    },
    handler: async (req) => {
      const page = await quarantine.list(req.params, req.query.offset, req.query.limit);
      return { code: 0 as const, message: `${page.count} event(s) in quarantine`, program: programName(req.params), ...page };
    },
  });

  app.post('/v1/api/:db/:table/quarantine/replay', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: "Sends every quarantined event into this table's agent (or `to`'s) and removes it once committed; what the sink still refuses is quarantined again",
      ...access('operate'),
      params: tableParamsSchema,
      body: replayBody,
      response: {
        200: ok({ program: z.string(), replayed: z.number(), unreadable: z.number().describe('files that do not parse, left where they are'), to: z.object({ db: z.string(), table: z.string() }) }),
        ...errors(400, 401, 403, 404, 409, 503),
      },
    },
    handler: async (req) => {
      const to = req.body.to ?? req.params;
      // Events go into `to`: the caller must be allowed to operate it too.
      if (req.principal && !dbAllowed(req.principal, to.db)) throw forbidden(`this token is limited to db ${req.principal.dbs?.join(', ')}: it may not send events into ${to.db}`);
      const r = await quarantine.replay(req.params, to);
      return { code: 0 as const, message: `${r.replayed} event(s) replayed into ${to.db}.${to.table}`, program: programName(req.params), ...r };
    },
  });

  app.delete('/v1/api/:db/:table/quarantine', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: 'Drops every quarantined event (recorded in the audit trail)',
      ...access('operate'),
      params: tableParamsSchema,
      response: { 200: ok({ program: z.string(), dropped: z.number() }), ...errors(400, 401, 403, 404, 409, 503) },
    },
    handler: async (req) => {
      const r = await quarantine.drop(req.params);
      return { code: 0 as const, message: `${r.dropped} event(s) dropped`, program: programName(req.params), ...r };
    },
  });
}
