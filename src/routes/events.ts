import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AgentService } from '../agents/agent-service.js';
import { programName, tableParamsSchema } from '../resources/table.js';
import type { Authorize } from '../http/auth.js';
import type { StateChange } from '../resources/agent-status.js';
import { incidentFor, type IncidentService } from '../incidents/incident-service.js';
import type { Incident } from '../resources/incident.js';
import { roleAllows, type Principal } from '../auth/roles.js';
import type { OperationProgress } from '../operations/operation-service.js';
import { operationVisible } from '../operations/selection.js';
import { idBefore, type EventJournal, type JournalEvent } from '../http/event-journal.js';
import type { EventStreams } from '../http/sse.js';
import { access, errors, ok } from '../resources/envelope.js';
import { incidentSchema } from '../resources/incident.js';

/** Incident history per agent, and the live stream of incidents and state changes (SSE). */
export async function eventRoutes(
  fastify: FastifyInstance,
  opts: { incidents: IncidentService; agents: AgentService; journal: EventJournal; authorize: Authorize; streams: EventStreams },
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
      querystring: z.strictObject({
        limit: z.coerce.number().int().min(1).max(500).default(50),
        cursor: z.string().regex(/^\d{4}-\d\d-\d\dT[\d:.]+Z\|[0-9a-f-]{36}$/, 'cursor is the nextCursor of the previous page').optional().describe("the previous page's nextCursor"),
      }),
      response: { 200: ok({ incidents: z.array(incidentSchema), nextCursor: z.string().nullable().describe('pass as ?cursor= for the next (older) page; null: no older one is kept') }), ...errors(400, 401, 403, 503) },
    },
    handler: async (req) => {
      const dbs = req.principal?.dbs;
      const programs = opts.agents.list().filter((a) => !dbs || dbs.includes(a.db)).map((a) => a.program);
      const page = await opts.incidents.stored.page(programs, req.query.limit, req.query.cursor);
      const incidents = page.incidents.map(shown(req.principal));
      return { code: 0 as const, message: `${incidents.length} incident(s), newest first`, incidents, nextCursor: page.nextCursor };
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

  // text/event-stream: "event: incident", "state" and "operation", JSON data, each with an id; a
  // comment every 15 s keeps proxies from closing an idle stream.
  app.get('/v1/api/events', {
    onRequest,
    schema: {
      tags: ['operations'],
      summary: 'Server-sent events (text/event-stream): "incident", "state" and "operation" (progress), JSON data, each with an id; limited to the token\'s dbs',
      description:
        'Reconnect with Last-Event-ID (EventSource does it by itself; or ?lastEventId=) to get what was missed first: the newest API_EVENTS_REPLAY events are kept. When they no longer reach back that far (or Redis lost them), the stream says so first with "event: gap" ({lastEventId, oldestKept}): read the state again (GET /v1/api/services). ' +
        access('read').description,
      querystring: z.strictObject({ lastEventId: z.string().max(40).optional().describe('as the Last-Event-ID header') }),
      produces: ['text/event-stream'],
      response: { 200: z.string().describe('text/event-stream: "event: <kind>", "id: <id>", "data: <JSON>"'), ...errors(400, 401, 403, 429) },
    },
  }, (req, reply) => {
    const dbs = req.principal?.dbs;
    const visible = (x: { db: string }) => !dbs || dbs.includes(x.db);
    const incidentShown = shown(req.principal);
    const deliver = ({ id, event, data }: JournalEvent) => {
      const x = data as Incident | StateChange | OperationProgress;
      // An operation's closing event names no table: it reaches those who may see the operation.
      const visibleHere = event === 'operation' && x.db === '' ? operationVisible((x as OperationProgress).dbs, dbs) : visible(x);
      if (visibleHere) stream.send(event, event === 'incident' ? incidentShown(x as Incident) : x, id);
    };
    const header = req.headers['last-event-id'];
    const lastId = (typeof header === 'string' ? header : undefined) ?? req.query.lastEventId;
    // While the missed events are read, live ones wait (then those not already replayed follow).
    let waiting: JournalEvent[] | null = lastId === undefined ? null : [];
    let unsubscribe = () => {};
    const stream = open(req, reply, () => unsubscribe());
    unsubscribe = opts.journal.subscribe((e) => (waiting ? waiting.push(e) : deliver(e)));
    if (lastId === undefined) return;
    const gap = (oldest: string | null) =>
      stream.send('gap', { lastEventId: lastId.slice(0, 40), oldestKept: oldest, message: 'events after Last-Event-ID are no longer all kept: read the current state again (GET /v1/api/services)' });
    void opts.journal
      .since(lastId)
      .then(
        ({ events, complete, oldest }) => {
          if (!complete) gap(oldest);
          let last = lastId;
          for (const e of events) {
            deliver(e);
            last = e.id ?? last;
          }
          return last;
        },
        () => {
          gap(null);
          return lastId;
        },
      )
      .then((last) => {
        for (const e of waiting ?? []) if (!e.id || !/^\d+-\d+$/.test(last) || idBefore(last, e.id)) deliver(e);
        waiting = null;
      });
  });
}
