import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { StillRunning, type Lifecycle } from '../agents/lifecycle.js';
import { pendingSchema } from '../resources/operation.js';
import { NAME_PATTERN, tableParamsSchema } from '../resources/table.js';
import type { Reconciler } from '../recovery/reconciler.js';
import { createBodySchema } from '../resources/agent-spec.js';
import { forbidden, methodNotAllowed } from '../errors.js';
import type { FleetModel } from '../fleet/fleet-model.js';
import type { AgentStatus } from '../resources/agent-status.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok as okBody } from '../resources/envelope.js';
import { AGENT_STATES, deleteSchema, listed, listedSchema, statusSchema } from '../resources/agent-status.js';
import { restoreSchema } from '../resources/restore.js';
import { moveBodySchema, moveResultSchema } from '../resources/move.js';

const flag = z.enum(['true', 'false', '1', '0']);
const isSet = (v: string | undefined) => v === 'true' || v === '1';
const deleteQuerySchema = z.strictObject({ force: flag.optional().describe('remove the channel even if it holds events') });
const STATES = AGENT_STATES;
const listQuerySchema = z.strictObject({
  db: z.string().regex(NAME_PATTERN, 'db must be a valid db name').optional(),
  state: z
    .string()
    .transform((s) => s.toUpperCase())
    .refine((s) => (STATES as readonly string[]).includes(s), `state must be one of ${STATES.join(', ')} (any case)`)
    .optional()
    .describe(`one of ${STATES.join(', ')} (any case)`),
});
const createQuerySchema = z.strictObject({
  start: flag.optional().describe('false: render and register the agent stopped (desired stopped, no route); start it later'),
  node: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'node must be a host id (letters, digits, _ . -)')
    .optional()
    .describe('many hosts: the host to run it on (alive and active); left out, the one with the most headroom'),
});
const statusQuerySchema = z.strictObject({ fresh: flag.optional().describe('observe the agent now instead of reading the fleet model') });

/**
 * The lifecycle API. Each route declares its contract once; its handler calls one method of the
 * lifecycle (this host's AgentService, or with many hosts the cluster's, which any host answers).
 */
export async function agentRoutes(
  fastify: FastifyInstance,
  opts: { lifecycle: Lifecycle; reconciler: Reconciler; fleet: FleetModel; authorize: Authorize },
): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { lifecycle, fleet, authorize } = opts;
  const ok = <T extends object>(message: string, body: T) => ({ code: 0 as const, message, ...body });
  const statusBody = okBody(statusSchema.shape);
  // Many hosts: the owner still works on it past CLUSTER_WAIT_MS; GET .../status tells the outcome.
  const pendingBody = okBody({ pending: pendingSchema }).describe('under way on its owner (many hosts): GET .../status for the outcome');
  const orPending = async <T>(reply: FastifyReply, fn: () => Promise<T>): Promise<T | FastifyReply> => {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StillRunning)) throw err;
      const p = err.pending;
      return reply.status(202).header('retry-after', '5').send({ code: 0 as const, message: `${p.op} under way on ${p.node} (operation ${p.generation}); GET .../status for its outcome`, pending: p });
    }
  };
  const tags = ['agents'];

  app.post('/v1/api/:db/:table/create', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: "Create the table's agent and start it; answers once its source accepts events. No body: a file_roll agent with defaults",
      ...access('operate'),
      params: tableParamsSchema,
      querystring: createQuerySchema,
      body: createBodySchema,
      response: { 201: statusBody, 202: pendingBody, ...errors(400, 401, 403, 404, 409, 422, 502, 503) },
    },
    handler: async (req, reply) =>
      orPending(reply, async () => {
        const s = await lifecycle.create(req.params, req.body, { start: req.query.start === undefined || isSet(req.query.start), by: req.principal?.sub, node: req.query.node });
        return reply.status(201).send(ok(`${s.program}: created, ${s.state}`, s));
      }),
  });

  const summaries = {
    start: 'Start the agent on its port (idempotent)',
    stop: 'Withdraw the route and stop the agent; port and channel are kept',
    restart: 'Stop and start, same port, same channel',
    pause: 'Pause intake: the gateway answers 503 AGENT_PAUSED with Retry-After; the agent keeps running and drains its channel (status: paused, drained)',
    resume: 'Resume intake after a pause',
  };
  for (const action of ['start', 'stop', 'restart', 'pause', 'resume'] as const) {
    app.post(`/v1/api/:db/:table/${action}`, {
      onRequest: authorize('operate'),
      schema: {
        tags,
        summary: summaries[action],
        ...access('operate'),
        params: tableParamsSchema,
        response: { 200: statusBody, 202: pendingBody, ...errors(400, 401, 403, 404, 409, 502, 503) },
      },
      handler: async (req, reply) =>
        orPending(reply, async () => {
          const s = action === 'pause' ? await lifecycle.pause(req.params, req.principal?.sub ?? 'unknown') : await lifecycle[action](req.params);
          return ok(`${s.program}: ${action === 'pause' || action === 'resume' ? (s.paused ? 'paused' : 'intake open') : s.state}`, s);
        }),
    });
  }

  app.get('/v1/api/:db/:table/status', {
    onRequest: authorize('read'),
    schema: {
      tags,
      summary: 'State, desired state, health and counters, from the fleet model',
      ...access('read'),
      params: tableParamsSchema,
      querystring: statusQuerySchema,
      response: { 200: statusBody, ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const s = await lifecycle.status(req.params, isSet(req.query.fresh));
      return ok(`${s.program}: ${s.state}`, s);
    },
  });

  app.delete('/v1/api/:db/:table', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: 'Remove the agent; its channel stays while it holds events, unless force',
      ...access('operate'),
      params: tableParamsSchema,
      querystring: deleteQuerySchema,
      response: { 200: okBody(deleteSchema.shape), 202: pendingBody, ...errors(400, 401, 403, 404, 409, 503) },
    },
    handler: async (req, reply) =>
      orPending(reply, async () => {
        const r = await lifecycle.delete(req.params, isSet(req.query.force));
        return ok(`${r.program}: deleted, channel data ${r.channel}`, r);
      }),
  });

  app.post('/v1/api/:db/:table/move', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary:
        "Many hosts: re-create the table on another host with its config; the old host's agent takes events until the new one accepts, then drains its channel into its sink and goes (a host that is away does so when it returns: abandonChannel)",
      ...access('operate'),
      params: tableParamsSchema,
      body: moveBodySchema,
      response: { 200: okBody(moveResultSchema.shape), 202: pendingBody, ...errors(400, 401, 403, 404, 409, 502, 503) },
    },
    handler: async (req, reply) =>
      orPending(reply, async () => {
        const r = await lifecycle.move(req.params, { to: req.body.to, abandonChannel: req.body.abandonChannel, by: req.principal?.sub ?? 'unknown' });
        const drains = r.stranded.hostAlive ? 'drains its channel into its sink now' : 'drains its channel into its sink when it comes back';
        return ok(`${r.status.program}: moved from ${r.from} to ${r.to}, ${r.status.state}; ${r.from} ${drains}`, r);
      }),
  });

  // The serialized listing per (fleet version, filter, dbs claim): an unchanged fleet costs a
  // map lookup, whatever the number of agents and pollers.
  const listings = new Map<string, { body: string; etag: string }>();
  let listingsVersion = '';
  app.get('/v1/api/services', {
    onRequest: authorize('read'),
    schema: {
      tags,
      summary: 'Every agent in one call; If-None-Match with the last ETag answers 304 when nothing changed',
      ...access('read'),
      querystring: listQuerySchema,
      response: { 200: okBody({ observedAt: z.string(), agents: z.array(listedSchema) }), 304: z.null().describe('unchanged'), ...errors(400, 401, 403, 503) },
    },
    handler: async (req, reply) => {
      const q = req.query;
      const dbs = req.principal?.dbs;
      if (q.db && dbs && !dbs.includes(q.db)) throw forbidden(`this token is limited to db ${dbs.join(', ')}`);
      if (listingsVersion !== lifecycle.listVersion()) {
        listings.clear();
        listingsVersion = lifecycle.listVersion();
      }
      const key = `${q.db ?? ''}|${q.state ?? ''}|${dbs?.join(',') ?? '*'}`;
      let cached = listings.get(key);
      if (!cached) {
        const list = lifecycle.list(q).filter((a) => !dbs || dbs.includes(a.db)).map(listed);
        // Everything after the leading fields, so each answer only splices in its observedAt.
        const body = JSON.stringify({ agents: list }).slice(1);
        const etag = `W/"${createHash('sha1').update(body).digest('base64url')}"`;
        cached = { body: `"message":"${list.length} agent(s)",${body}`, etag };
        listings.set(key, cached);
      }
      void reply.header('etag', cached.etag).header('cache-control', 'no-cache').header('vary', 'authorization');
      if (req.headers['if-none-match'] === cached.etag) return reply.status(304).send(null);
      // Already JSON (the cached listing with this answer's observedAt): sent as it is, the
      // schema above documents it.
      const json = `{"code":0,"observedAt":"${fleet.observedAt}",${cached.body}`;
      return reply.type('application/json; charset=utf-8').send(json as never);
    },
  });

  app.post('/v1/api/reconcile', {
    onRequest: authorize('admin', { allDbs: true }),
    schema: {
      tags: ['operations'],
      summary: 'Make Redis and supervisord agree with conf.d/, services/ and var/tokens/ (also done by itself after a Redis loss)',
      ...access('admin'),
      response: { 200: okBody(restoreSchema.shape), ...errors(401, 403, 503) },
    },
    handler: async () => ok('reconciled', await opts.reconciler.restore()),
  });

  // A browser or a habit from the original GET API: say which method to use instead.
  for (const action of ['create', 'start', 'stop', 'restart', 'pause', 'resume']) {
    app.route({
      method: ['GET', 'PUT', 'PATCH', 'DELETE'],
      url: `/v1/api/:db/:table/${action}`,
      onRequest: authorize('read'),
      schema: { hide: true },
      handler: async () => {
        throw methodNotAllowed('POST');
      },
    });
  }
  app.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v1/api/:db/:table/status',
    onRequest: authorize('read'),
    schema: { hide: true },
    handler: async () => {
      throw methodNotAllowed('GET');
    },
  });
}
