import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AgentService } from '../agents/agent-service.js';
import { checkHandover } from '../adopt/handover.js';
import { agentExists, notClustered } from '../errors.js';
import type { Authorize } from '../http/auth.js';
import { statusSchema } from '../resources/agent-status.js';
import { access, errors, ok } from '../resources/envelope.js';
import { handoverBodySchema } from '../resources/handover.js';
import { programName, tableParamsSchema } from '../resources/table.js';
import type { AgentStore } from '../store/agent-store.js';

/** Taking over a table of an installation of the original design (flumectl adopt): its port and its channel become ours. */
export async function adoptRoutes(fastify: FastifyInstance, opts: { agents: AgentService; store: AgentStore; authorize: Authorize; clustered: boolean; varDir: string; servicesDir: string }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.post('/v1/api/:db/:table/adopt', {
    onRequest: opts.authorize('admin'),
    schema: {
      tags: ['agents'],
      summary: "Take over a table of another installation whose agent is stopped: our agent on its port, with its file channel's directories moved into ours (their events replayed), started; on any failure everything is put back",
      ...access('admin'),
      params: tableParamsSchema,
      body: handoverBodySchema,
      response: { 201: ok(statusSchema.shape), ...errors(400, 401, 403, 404, 409, 422, 502, 503) },
    },
    handler: async (req, reply) => {
      if (opts.clustered) throw notClustered('adopt takes a table over on one host: run it with ETCD_ENDPOINTS empty, then join the host to the cluster');
      const program = programName(req.params);
      if (opts.store.hasMeta(program) || opts.store.hasProgram(program)) throw agentExists(program);
      const { spec, ...handover } = req.body;
      await checkHandover(handover, { varDir: opts.varDir, servicesDir: opts.servicesDir, uid: process.getuid?.() ?? -1 });
      const c = await opts.agents.create(req.params, spec, { start: true, by: req.principal?.sub ?? 'unknown', handover });
      return reply.status(201).send({ code: 0 as const, message: `${program}: taken over on port ${handover.port}, ${c.status.state}`, ...c.status });
    },
  });
}
