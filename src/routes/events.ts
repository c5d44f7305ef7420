import type { FastifyInstance } from 'fastify';
import type { AgentService } from '../agents/agent-service.js';
import { programName, tableParamsSchema } from '../agents/names.js';
import { invalidName } from '../errors.js';
import type { Authorize } from '../http/auth.js';
import type { FleetModel, StateChange } from '../fleet/fleet-model.js';
import type { Incident, IncidentService } from '../incidents/incident-service.js';

/** Incident history per agent, and the live stream of incidents and state changes (SSE). */
export async function eventRoutes(
  app: FastifyInstance,
  opts: { incidents: IncidentService; fleet: FleetModel; agents: AgentService; authorize: Authorize },
): Promise<void> {
  const read = { onRequest: opts.authorize('read') };
  // Open streams never end by themselves: a shutdown ends them, or it would wait for clients.
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of streams) end();
  });

  app.get('/v1/api/:db/:table/incidents', read, async (req) => {
    const p = tableParamsSchema.safeParse(req.params);
    if (!p.success) throw invalidName(p.error.issues.map((i) => i.message).join('; '));
    await opts.agents.status(p.data); // 404 for a table without an agent
    const incidents = await opts.incidents.history(programName(p.data));
    return { code: 0, message: `${incidents.length} incident(s), newest first`, incidents };
  });

  // text/event-stream: "event: incident" and "event: state", JSON data; a comment every 15 s
  // keeps proxies from closing an idle stream.
  app.get('/v1/api/events', read, (req, reply) => {
    const dbs = req.principal?.dbs;
    const visible = (x: { db: string }) => !dbs || dbs.includes(x.db);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': flume-service events\n\n');
    const send = (event: string) => (x: Incident | StateChange) => {
      if (visible(x)) res.write(`event: ${event}\ndata: ${JSON.stringify(x)}\n\n`);
    };
    const onIncident = send('incident');
    const onState = send('state');
    opts.incidents.on('incident', onIncident);
    opts.fleet.on('state', onState);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    const end = () => {
      clearInterval(beat);
      opts.incidents.off('incident', onIncident);
      opts.fleet.off('state', onState);
      streams.delete(end);
      res.end();
    };
    streams.add(end);
    req.raw.on('close', end);
  });
}
