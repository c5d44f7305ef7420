import { createHash } from 'node:crypto';
import { flagSchema, isSet } from '../flag.js';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Lifecycle } from '../agents/lifecycle.js';
import type { ConfigService } from '../agents/config-service.js';
import type { OperationService } from '../operations/operation-service.js';
import { acceptedBody, answering } from '../http/prefer.js';
import { etagOf, noneMatch, preconditionOf } from '../http/conditional.js';
import { AppError, nothingToMatch, preconditionFailed, preconditionRequired } from '../errors.js';
import { fails } from '../resources/precondition.js';
import { agentSpecSchema } from '../resources/agent-spec.js';
import { configChangeSchema } from '../resources/revision.js';
import { NAME_PATTERN, programName, tableParamsSchema, type TableRef } from '../resources/table.js';
import type { Reconciler } from '../recovery/reconciler.js';
import { createBodySchema } from '../resources/agent-spec.js';
import { forbidden } from '../errors.js';
import type { FleetModel } from '../fleet/fleet-model.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, notModified, ok as okBody } from '../resources/envelope.js';
import { AGENT_STATES, deleteSchema, listed, listedSchema, statusSchema } from '../resources/agent-status.js';
import { restoreSchema } from '../resources/restore.js';
import { moveBodySchema, moveResultSchema } from '../resources/move.js';

const flag = flagSchema;
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
  opts: { lifecycle: Lifecycle; reconciler: Reconciler; fleet: FleetModel; authorize: Authorize; configs: ConfigService; operations: OperationService; requireIfMatch: boolean },
): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { lifecycle, fleet, authorize, configs } = opts;
  const ok = <T extends object>(message: string, body: T) => ({ code: 0 as const, message, ...body });
  const statusBody = okBody(statusSchema.shape);
  // Prefer: respond-async: 202 and the operation; many hosts: the owner still works on it past CLUSTER_WAIT_MS.
  const pendingBody = acceptedBody;
  const answer = answering(opts.operations);
  const by = (req: { principal?: { sub: string } }) => req.principal?.sub ?? 'unknown';
  const self = (ref: TableRef) => `/v1/api/${ref.db}/${ref.table}`;
  const async = 'Prefer: respond-async answers 202 at once with the operation that carries it out (GET /v1/api/operations/:id).';
  const tags = ['agents'];

  app.post('/v1/api/:db/:table/create', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: "Create the table's agent and start it; answers once its source accepts events. No body: a file_roll agent with defaults",
      description: `201 with Location: the agent's URL. The same create again (a retry after a timeout) answers 200 with the agent; another spec is 409 AGENT_EXISTS naming each field that differs. ${async} ${access('operate').description}`,
      params: tableParamsSchema,
      querystring: createQuerySchema,
      body: createBodySchema,
      response: { 200: statusBody, 201: statusBody, 202: pendingBody, ...errors(400, 401, 403, 404, 409, 422, 502, 503) },
    },
    config: { idempotent: true },
    handler: async (req, reply) =>
      answer(req, reply, 'create', req.params, async () => {
        const c = await lifecycle.create(req.params, req.body, { start: req.query.start === undefined || isSet(req.query.start), by: req.principal?.sub, node: req.query.node });
        const s = c.status;
        return {
          status: c.created ? 201 : 200,
          headers: { location: self(req.params), 'content-location': self(req.params) },
          body: ok(c.created ? `${s.program}: created, ${s.state}` : `${s.program}: already created with this spec, ${s.state}`, s),
        };
      }),
  });

  const agentBody = okBody({
    agent: statusSchema,
    spec: agentSpecSchema,
    revision: z.number().describe('the desired config revision (also the ETag)'),
    links: z.record(z.string(), z.string()).describe('related resources: self, status, config, revisions, incidents, logs, history'),
  });
  const linksOf = (ref: TableRef) => {
    const base = self(ref);
    return { self: base, status: `${base}/status`, config: `${base}/config`, revisions: `${base}/config/revisions`, incidents: `${base}/incidents`, logs: `${base}/logs`, history: `${base}/history` };
  };
  app.get('/v1/api/:db/:table', {
    onRequest: authorize('read'),
    schema: {
      tags,
      summary: 'The agent: its status (from the fleet model), its desired spec and revision (ETag), and links to the rest',
      ...access('read'),
      params: tableParamsSchema,
      response: { 200: agentBody, 304: notModified, ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req, reply) => {
      const [agent, current] = await Promise.all([lifecycle.status(req.params), configs.current(req.params)]);
      void reply.header('etag', etagOf(current.revision));
      return ok(`${agent.program}: ${agent.state}, revision ${current.revision}`, { agent, ...current, links: linksOf(req.params) });
    },
  });

  const upsertBody = okBody({
    outcome: z.enum(['created', 'unchanged', 'applied', 'stored']).describe('created: there was no agent; unchanged: the spec is the desired one already (nothing done); applied/stored: a new revision (see PUT .../config)'),
    agent: statusSchema,
    change: configChangeSchema.nullable().describe('the config change, when there was an agent already'),
  });
  app.put('/v1/api/:db/:table', {
    onRequest: authorize('operate'),
    schema: {
      tags,
      summary: "Declare the table's agent (an upsert): created when there is none (201, started), else its config becomes this spec as a new revision (200; the same spec: unchanged, nothing restarted)",
      description: `If-Match (the ETag of GET /v1/api/:db/:table or .../config) makes the change conditional: 412 when another revision is desired now. ${async} ${access('operate').description}`,
      params: tableParamsSchema,
      body: createBodySchema,
      response: { 200: upsertBody, 201: upsertBody, 202: pendingBody, ...errors(400, 401, 403, 404, 409, 412, 422, 428, 502, 503) },
    },
    config: { idempotent: true },
    handler: async (req, reply) => {
      const precondition = preconditionOf(req.headers);
      return answer(req, reply, 'upsert', req.params, async () => {
        const exists = await lifecycle.status(req.params).then(
          () => true,
          (err: unknown) => {
            if (err instanceof AppError && err.error === 'AGENT_NOT_FOUND') return false;
            throw err;
          },
        );
        if (!exists) {
          // If-Match on a table without an agent: nothing matches it (RFC 9110).
          if (precondition.ifMatch !== undefined) throw nothingToMatch(programName(req.params));
          const c = await lifecycle.create(req.params, req.body ?? {}, { by: req.principal?.sub });
          // If-None-Match: * (create only): another create came first with the same spec.
          const failed = c.created ? null : fails({ ifNoneMatch: precondition.ifNoneMatch }, c.status.revision.desired);
          if (failed) throw preconditionFailed(c.status.program, c.status.revision.desired, failed);
          return {
            status: c.created ? 201 : 200,
            headers: { location: self(req.params), etag: etagOf(c.status.revision.desired) },
            body: ok(`${c.status.program}: ${c.created ? 'created' : 'unchanged'}, ${c.status.state}`, { outcome: c.created ? ('created' as const) : ('unchanged' as const), agent: c.status, change: null }),
          };
        }
        if (precondition.ifMatch === undefined && precondition.ifNoneMatch === undefined && opts.requireIfMatch) throw preconditionRequired(programName(req.params));
        const change = await configs.change(req.params, req.body ?? {}, { mode: 'put', dryRun: false, by: by(req), precondition });
        const agent = await lifecycle.status(req.params);
        return {
          status: 200,
          headers: { location: self(req.params), etag: etagOf(change.revision) },
          body: ok(change.outcome === 'unchanged' ? `${change.program}: unchanged, revision ${change.revision} stays` : `${change.program}: revision ${change.revision} ${change.outcome}`, { outcome: change.outcome as 'unchanged' | 'applied' | 'stored', agent, change }),
        };
      });
    },
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
      handler: async (req, reply) => {
        const run = async () => {
          const s = action === 'pause' ? await lifecycle.pause(req.params, by(req)) : await lifecycle[action](req.params);
          return { status: 200, body: ok(`${s.program}: ${action === 'pause' || action === 'resume' ? (s.paused ? 'paused' : 'intake open') : s.state}`, s) };
        };
        // pause and resume are quick: they always answer when done.
        return answer(req, reply, action === 'pause' || action === 'resume' ? null : action, req.params, run);
      },
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
      answer(req, reply, 'delete', req.params, async () => {
        const r = await lifecycle.delete(req.params, isSet(req.query.force));
        return { status: 200, body: ok(`${r.program}: deleted, channel data ${r.channel}`, r) };
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
      answer(req, reply, 'move', req.params, async () => {
        const r = await lifecycle.move(req.params, { to: req.body.to, abandonChannel: req.body.abandonChannel, by: by(req) });
        const drains = r.stranded.hostAlive ? 'drains its channel into its sink now' : 'drains its channel into its sink when it comes back';
        return { status: 200, body: ok(`${r.status.program}: moved from ${r.from} to ${r.to}, ${r.status.state}; ${r.from} ${drains}`, r) };
      }),
  });

  // The serialized listing per (fleet version, filter, dbs claim): an unchanged fleet costs a
  // map lookup, whatever the number of agents and pollers. The whole answer is kept as bytes for
  // the fleet's current observedAt (a refresh every FLEET_REFRESH_MS): between refreshes every
  // poller gets the same buffer, nothing built or copied per request.
  const listings = new Map<string, { body: string; etag: string; at: string; bytes: Buffer }>();
  let listingsVersion = '';
  app.get('/v1/api/services', {
    onRequest: authorize('read'),
    schema: {
      tags,
      summary: 'Every agent in one call; If-None-Match with the last ETag answers 304 when nothing changed',
      ...access('read'),
      querystring: listQuerySchema,
      response: { 200: okBody({ observedAt: z.string(), agents: z.array(listedSchema) }), 304: notModified, ...errors(400, 401, 403, 503) },
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
        cached = { body: `"message":"${list.length} agent(s)",${body}`, etag, at: '', bytes: Buffer.alloc(0) };
        listings.set(key, cached);
      }
      void reply.header('etag', cached.etag).header('cache-control', 'no-cache').header('vary', 'authorization');
      // Nothing changed since the client's copy: 304 with the headers above and no body.
      if (noneMatch(req.headers['if-none-match'], cached.etag)) return reply.status(304).send(undefined as never);
      // Already JSON (the cached listing with the fleet's observedAt): sent as it is, the
      // schema above documents it.
      const at = fleet.observedAt;
      if (cached.at !== at) [cached.at, cached.bytes] = [at, Buffer.from(`{"code":0,"observedAt":"${at}",${cached.body}`)];
      return reply.type('application/json; charset=utf-8').send(cached.bytes as never);
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
}
