import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AgentService } from '../agents/agent-service.js';
import { NAME_PATTERN, tableParamsSchema, type TableRef } from '../agents/names.js';
import type { Reconciler } from '../agents/reconciler.js';
import { forbidden, invalidName, invalidRequest, methodNotAllowed } from '../errors.js';
import type { AgentStatus, FleetModel } from '../fleet/fleet-model.js';
import type { Authorize } from '../http/auth.js';
import { PROCESS_STATES } from '../supervisor/driver.js';

function tableOf(params: unknown): TableRef {
  const r = tableParamsSchema.safeParse(params);
  if (!r.success) throw invalidName(r.error.issues.map((i) => i.message).join('; '));
  return r.data;
}

export const deleteQuerySchema = z.object({ force: z.enum(['true', 'false', '1', '0']).optional() }).strict();
const STATES = [...Object.values(PROCESS_STATES), 'NOT_LOADED'] as const;
export const listQuerySchema = z
  .object({
    db: z.string().regex(NAME_PATTERN, 'db must be a valid db name').optional(),
    state: z
      .string()
      .transform((s) => s.toUpperCase())
      .refine((s) => (STATES as readonly string[]).includes(s), `state must be one of ${STATES.join(', ')} (any case)`)
      .optional(),
  })
  .strict();
export const statusQuerySchema = z.object({ fresh: z.enum(['true', 'false', '1', '0']).optional() }).strict();

/** The listing as dashboards poll it: ages tick every second, so they are left out (see below). */
function listed({ uptimeSeconds: _u, description: _d, observedAt: _o, metrics, ...a }: AgentStatus) {
  if (!metrics) return { ...a, metrics };
  const { lastEventAgeSeconds: _l, ...m } = metrics;
  return { ...a, metrics: m };
}

/** The lifecycle API. Each handler validates, calls one AgentService method, shapes the body. */
export async function agentRoutes(
  app: FastifyInstance,
  opts: { agents: AgentService; reconciler: Reconciler; fleet: FleetModel; authorize: Authorize },
): Promise<void> {
  const { agents, fleet, authorize } = opts;
  const read = { onRequest: authorize('read') };
  const operate = { onRequest: authorize('operate') };
  const ok = <T extends object>(message: string, body: T) => ({ code: 0, message, ...body });

  app.post('/v1/api/:db/:table/create', operate, async (req, reply) => {
    const s = await agents.create(tableOf(req.params), req.body);
    return reply.status(201).send(ok(`${s.program}: created, ${s.state}`, s));
  });

  for (const action of ['start', 'stop', 'restart'] as const) {
    app.post(`/v1/api/:db/:table/${action}`, operate, async (req) => {
      const s = await agents[action](tableOf(req.params));
      return ok(`${s.program}: ${s.state}`, s);
    });
  }

  app.get('/v1/api/:db/:table/status', read, async (req) => {
    const q = statusQuerySchema.safeParse(req.query ?? {});
    if (!q.success) throw invalidRequest('the only query parameter is fresh=true|false');
    const s = await agents.status(tableOf(req.params), q.data.fresh === 'true' || q.data.fresh === '1');
    return ok(`${s.program}: ${s.state}`, s);
  });

  app.delete('/v1/api/:db/:table', operate, async (req) => {
    const q = deleteQuerySchema.safeParse(req.query ?? {});
    if (!q.success) throw invalidRequest('the only query parameter is force=true|false');
    const r = await agents.delete(tableOf(req.params), q.data.force === 'true' || q.data.force === '1');
    return ok(`${r.program}: deleted, channel data ${r.channel}`, r);
  });

  // The serialized listing per (fleet version, filter, dbs claim): an unchanged fleet costs a
  // map lookup, whatever the number of agents and pollers.
  const listings = new Map<string, { body: string; etag: string }>();
  let listingsVersion = -1;
  app.get('/v1/api/services', read, async (req, reply) => {
    const q = listQuerySchema.safeParse(req.query ?? {});
    if (!q.success) throw invalidRequest(q.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; '));
    const dbs = req.principal?.dbs;
    if (q.data.db && dbs && !dbs.includes(q.data.db)) throw forbidden(`this token is limited to db ${dbs.join(', ')}`);
    if (listingsVersion !== fleet.version) {
      listings.clear();
      listingsVersion = fleet.version;
    }
    const key = `${q.data.db ?? ''}|${q.data.state ?? ''}|${dbs?.join(',') ?? '*'}`;
    let cached = listings.get(key);
    if (!cached) {
      const list = agents.list(q.data).filter((a) => !dbs || dbs.includes(a.db)).map(listed);
      // Everything after the leading fields, so each answer only splices in its observedAt.
      const body = JSON.stringify({ agents: list }).slice(1);
      const etag = `W/"${createHash('sha1').update(body).digest('base64url')}"`;
      cached = { body: `"message":"${list.length} agent(s)",${body}`, etag };
      listings.set(key, cached);
    }
    void reply.header('etag', cached.etag).header('cache-control', 'no-cache').header('vary', 'authorization');
    if (req.headers['if-none-match'] === cached.etag) return reply.status(304).send();
    return reply.type('application/json; charset=utf-8').send(`{"code":0,"observedAt":"${fleet.observedAt}",${cached.body}`);
  });

  app.post('/v1/api/reconcile', { onRequest: authorize('admin') }, async () => ok('reconciled', await opts.reconciler.restore()));

  // A browser or a habit from the original GET API: say which method to use instead.
  for (const action of ['create', 'start', 'stop', 'restart']) {
    app.route({
      method: ['GET', 'PUT', 'PATCH', 'DELETE'],
      url: `/v1/api/:db/:table/${action}`,
      ...read,
      handler: async () => {
        throw methodNotAllowed('POST');
      },
    });
  }
  app.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v1/api/:db/:table/status',
    ...read,
    handler: async () => {
      throw methodNotAllowed('GET');
    },
  });
}
