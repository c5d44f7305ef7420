import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { sinkCatalog } from '../agents/sink-catalog.js';
import { SINK_TYPES } from '../resources/agent-spec.js';
import type { Config } from '../config.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';

const sinkInfoSchema = z.object({
  name: z.enum(SINK_TYPES),
  description: z.string(),
  available: z.boolean().describe('its jars are present: agents with it can start here'),
  unavailableReason: z.string().nullable().describe('what to install when it is not available'),
  options: z.record(z.string(), z.unknown()).describe("JSON Schema of the create body's options for this sink, defaults included"),
});

/** The sink catalog: what each sink does, whether it can run here, and its options. */
export async function sinkRoutes(fastify: FastifyInstance, opts: { config: Config; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get('/v1/api/sinks', {
    onRequest: opts.authorize('read'),
    schema: {
      tags: ['agents'],
      summary: 'Every sink an agent can have: what it does, whether its jars are here, its options as JSON Schema with defaults',
      ...access('read'),
      response: { 200: ok({ sinks: z.array(sinkInfoSchema) }), ...errors(401, 403) },
    },
    handler: async () => {
      const sinks = sinkCatalog(opts.config);
      return { code: 0 as const, message: `${sinks.filter((s) => s.available).length} of ${sinks.length} sink(s) available`, sinks };
    },
  });
}
