import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import pLimit from 'p-limit';
import { z } from 'zod';
import type { Lifecycle } from '../agents/lifecycle.js';
import { isSet } from '../flag.js';
import type { Authorize } from '../http/auth.js';
import { tableCallsAs } from '../http/table-calls.js';
import type { FleetApply } from '../operations/fleet-apply.js';
import { access, errors, ok } from '../resources/envelope.js';
import { fleetDocumentSchema, fleetPlanSchema, fleetQuerySchema } from '../resources/fleet.js';
import { operationSchema } from '../resources/operation.js';
import { NAME_PATTERN } from '../resources/table.js';

/** Fleet as code: the set of tables as one document, read (export) and made so (apply, with a dry run). */
export async function fleetApplyRoutes(fastify: FastifyInstance, opts: { fleet: FleetApply; agents: Lifecycle; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['fleet'];
  const calls = (req: { headers: { authorization?: string }; id: string }) => tableCallsAs(fastify, req.headers.authorization ?? '', req.id);
  const counted = (c: z.infer<typeof fleetPlanSchema>['counts']) => `${c.create} to create, ${c.change} to change, ${c.unchanged} unchanged, ${c.delete} to delete, ${c.absent} absent (kept)`;

  app.get('/v1/api/fleet', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: 'The tables as a fleet document (every desired spec): what PUT /v1/api/fleet takes, to keep in version control',
      ...access('read'),
      querystring: z.strictObject({ db: z.string().regex(NAME_PATTERN, 'db must be a valid db name').optional().describe("only this db's tables") }),
      response: { 200: ok({ fleet: fleetDocumentSchema }), ...errors(400, 401, 403, 503) },
    },
    handler: async (req) => {
      const dbs = req.principal?.dbs;
      const tables = opts.agents.list(req.query.db ? { db: req.query.db } : undefined).filter((s) => !dbs || dbs.includes(s.db));
      const c = calls(req);
      const limit = pLimit(8);
      const specs = await Promise.all(tables.map((s) => limit(async () => [`${s.db}.${s.table}`, await c.spec(s)] as const)));
      const fleet = { profiles: {}, tables: Object.fromEntries(specs.sort(([a], [b]) => a.localeCompare(b))) };
      return { code: 0 as const, message: `${specs.length} table(s)`, fleet };
    },
  });

  app.put('/v1/api/fleet', {
    onRequest: opts.authorize('operate'),
    schema: {
      tags,
      summary: 'Make the set of tables so: create what is missing, change what differs (canary first, halting at the first that does not come up), leave the same alone; absent tables are deleted only with prune=true, drained first',
      description: `?dryRun=true answers the plan only (200). Otherwise 202 with the operation (GET /v1/api/operations/:id; "operation" events). Every table's spec is checked first: one bad table refuses the document (400/422 naming tables.<db.table>.<field>). ${access('operate').description}`,
      querystring: fleetQuerySchema,
      body: fleetDocumentSchema,
      response: { 200: ok({ plan: fleetPlanSchema }), 202: ok({ plan: fleetPlanSchema, operation: operationSchema }), ...errors(400, 401, 403, 404, 422, 503) },
    },
    config: { idempotent: true },
    handler: async (req, reply) => {
      const by = req.principal?.sub ?? 'unknown';
      if (isSet(req.query.dryRun)) {
        const { plan } = await opts.fleet.plan(req.body, req.query, req.principal?.dbs, calls(req));
        return reply.status(200).send({ code: 0 as const, message: `dry run: ${counted(plan.counts)}`, plan });
      }
      const { operation, plan } = await opts.fleet.apply(req.body, req.query, by, req.principal?.dbs, calls(req));
      return reply
        .status(202)
        .header('location', `/v1/api/operations/${operation.id}`)
        .header('x-operation-id', operation.id)
        .send({ code: 0 as const, message: `apply: ${counted(plan.counts)}`, plan, operation });
    },
  });
}
