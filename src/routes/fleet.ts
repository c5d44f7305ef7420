import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Lifecycle } from '../agents/lifecycle.js';
import { programName, tableParamsSchema } from '../resources/table.js';
import { agentNotFound } from '../errors.js';
import { HISTORY_INTERVAL_MS, type FleetModel } from '../fleet/fleet-model.js';
import { HEALTHS } from '../resources/agent-status.js';
import type { Authorize } from '../http/auth.js';
import type { IncidentService } from '../incidents/incident-service.js';
import { access, errors, ok } from '../resources/envelope.js';

const pointSchema = z.object({
  at: z.string(),
  inPerSecond: z.number().nullable(),
  outPerSecond: z.number().nullable(),
  channelFillPercent: z.number().nullable(),
  rssBytes: z.number().nullable(),
});
const counts = z.record(z.string(), z.number());

/** The fleet's headline, and one agent's recent history (for sparklines). */
export async function fleetRoutes(
  fastify: FastifyInstance,
  /** `agents`: the lifecycle (with many hosts, the summary counts every host's tables). */
  opts: { agents: Pick<Lifecycle, 'list' | 'status'>; fleet: FleetModel; incidents: IncidentService; authorize: Authorize },
): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get('/v1/api/summary', {
    onRequest: opts.authorize('read'),
    schema: {
      tags: ['agents'],
      summary: 'The headline: agents by state and by health, paused ones, unacknowledged incidents of the last 24 h (within the token\'s dbs)',
      ...access('read'),
      response: {
        200: ok({
          observedAt: z.string(),
          agents: z.number(),
          byState: counts,
          byHealth: counts,
          paused: z.number(),
          unacknowledgedIncidents: z.number(),
        }),
        ...errors(401, 403, 503),
      },
    },
    handler: async (req) => {
      const dbs = req.principal?.dbs;
      const list = opts.agents.list().filter((a) => !dbs || dbs.includes(a.db));
      const byState: Record<string, number> = {};
      const byHealth: Record<string, number> = Object.fromEntries(HEALTHS.map((h) => [h, 0]));
      for (const a of list) {
        byState[a.state] = (byState[a.state] ?? 0) + 1;
        byHealth[a.health] = (byHealth[a.health] ?? 0) + 1;
      }
      const unacknowledgedIncidents = await opts.incidents.stored.unacknowledged(list.map((a) => a.program));
      const problems = byHealth.degraded! + byHealth.down!;
      return {
        code: 0 as const,
        message: `${list.length} agent(s), ${problems} degraded or down, ${unacknowledgedIncidents} unacknowledged incident(s)`,
        observedAt: opts.fleet.observedAt,
        agents: list.length,
        byState,
        byHealth,
        paused: list.filter((a) => a.paused).length,
        unacknowledgedIncidents,
      };
    },
  });

  app.get('/v1/api/:db/:table/history', {
    onRequest: opts.authorize('read'),
    schema: {
      tags: ['agents'],
      summary: 'The last hour, a point every 10 s: events in/out per second, channel fill, RSS (kept in memory by each API process)',
      ...access('read'),
      params: tableParamsSchema,
      response: { 200: ok({ program: z.string(), intervalSeconds: z.number(), points: z.array(pointSchema) }), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const program = programName(req.params);
      const points = opts.fleet.history(program);
      if (!points) throw agentNotFound(program);
      return { code: 0 as const, message: `${points.length} point(s)`, program, intervalSeconds: HISTORY_INTERVAL_MS / 1000, points };
    },
  });
}
