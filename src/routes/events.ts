import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentService } from '../agents/agent-service.js';
import { programName, tableParamsSchema } from '../resources/table.js';
import type { Authorize } from '../http/auth.js';
import type { FleetModel } from '../fleet/fleet-model.js';
import type { StateChange } from '../resources/agent-status.js';
import { incidentFor, type IncidentService } from '../incidents/incident-service.js';
import type { Incident } from '../resources/incident.js';
import { roleAllows, type Principal } from '../auth/roles.js';
import { operationVisible, type OperationProgress, type OperationService } from '../operations/operation-service.js';
import type { EventStreams } from '../http/sse.js';
import { access, errors, ok } from '../resources/envelope.js';
import { incidentSchema } from '../resources/incident.js';

/** Incident history per agent, and the live stream of incidents and state changes (SSE). */
export async function eventRoutes(
  fastify: FastifyInstance,
  opts: { incidents: IncidentService; fleet: FleetModel; agents: AgentService; operations: OperationService; authorize: Authorize; streams: EventStreams },
): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const onRequest = opts.authorize('read');
  const open = opts.streams.open.bind(opts.streams);
  /** Log tails are for those who may read logs (operators, admins). */
  const shown = (p: Principal | undefined) => (i: Incident) => incidentFor(i, !!p && roleAllows(p.role, 'operate'));

  app.get('/v1/api/:db/:table/incidents', {
    onRequest,
    schema: {
      tags: ['operations'],
      summary: "The agent's last 100 incidents, newest first",
      ...access('read'),
      params: tableParamsSchema,
      response: { 200: ok({ incidents: z.array(incidentSchema) }), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      await opts.agents.status(req.params); // 404 for a table without an agent
      const incidents = (await opts.incidents.stored.history(programName(req.params))).map(shown(req.principal));
      return { code: 0 as const, message: `${incidents.length} incident(s), newest first`, incidents };
    },
  });

  app.get('/v1/api/incidents', {
    onRequest,
    schema: {
      tags: ['operations'],
      summary: "The newest incidents across the fleet (within the token's dbs), newest first: one call for a dashboard",
      ...access('read'),
      querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
      response: { 200: ok({ incidents: z.array(incidentSchema) }), ...errors(400, 401, 403, 503) },
    },
    handler: async (req) => {
      const dbs = req.principal?.dbs;
      const programs = opts.agents.list().filter((a) => !dbs || dbs.includes(a.db)).map((a) => a.program);
      const incidents = (await opts.incidents.stored.recent(programs, req.query.limit)).map(shown(req.principal));
      return { code: 0 as const, message: `${incidents.length} incident(s), newest first`, incidents };
    },
  });

  app.post('/v1/api/:db/:table/incidents/:id/ack', {
    onRequest: opts.authorize('operate'),
    schema: {
      tags: ['operations'],
      summary: 'Acknowledge an incident: who and when are kept (idempotent: the first acknowledgement stays)',
      ...access('operate'),
      params: tableParamsSchema.extend({ id: z.uuid('an incident id is a UUID') }),
      response: { 200: ok({ incident: incidentSchema }), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const { id, ...ref } = req.params;
      await opts.agents.status(ref);
      const incident = shown(req.principal)(await opts.incidents.acknowledge(programName(ref), id, req.principal?.sub ?? 'unknown'));
      return { code: 0 as const, message: `acknowledged by ${incident.acknowledged?.by}`, incident };
    },
  });

  // text/event-stream: "event: incident" and "event: state", JSON data; a comment every 15 s
  // keeps proxies from closing an idle stream.
  app.get('/v1/api/events', {
    onRequest,
    schema: {
      tags: ['operations'],
      summary: 'Server-sent events (text/event-stream): "incident", "state" and "operation" (bulk progress), JSON data; limited to the token\'s dbs',
      ...access('read'),
      response: { 200: z.string().describe('text/event-stream'), ...errors(401, 403) },
    },
  }, (req, reply) => {
    const dbs = req.principal?.dbs;
    const visible = (x: { db: string }) => !dbs || dbs.includes(x.db);
    const incidentShown = shown(req.principal);
    const send = (event: string) => (x: Incident | StateChange | OperationProgress) => {
      // An operation's closing event names no table: it reaches those who may see the operation.
      const visibleHere = event === 'operation' && x.db === '' ? operationVisible((x as OperationProgress).dbs, dbs) : visible(x);
      if (visibleHere) stream.send(event, event === 'incident' ? incidentShown(x as Incident) : x);
    };
    const onIncident = send('incident');
    const onState = send('state');
    const onOperation = send('operation');
    const stream = open(req, reply, () => {
      opts.incidents.off('incident', onIncident);
      opts.fleet.off('state', onState);
      opts.operations.off('operation', onOperation);
    });
    opts.incidents.on('incident', onIncident);
    opts.fleet.on('state', onState);
    opts.operations.on('operation', onOperation);
  });
}
