import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';
import { traceParamsSchema, traceSchema } from '../resources/trace.js';
import type { TraceStore } from '../traces/trace-store.js';

/** One ingest request's way to the sink, by the request id the gateway answered (X-Request-Id). */
export async function traceRoutes(fastify: FastifyInstance, opts: { traces: TraceStore; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get('/v1/api/:db/:table/trace/:requestId', {
    onRequest: opts.authorize('read'),
    schema: {
      tags: ['traces'],
      summary: 'Where an ingest request got to: accepted by the gateway (t0), committed to the channel (t1), taken by the sink (t2); kept GATEWAY_TRACE_SECONDS (600 s)',
      ...access('read'),
      params: traceParamsSchema,
      response: { 200: ok(traceSchema.shape), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const { requestId, ...ref } = req.params;
      const t = await opts.traces.get(ref, requestId);
      return { code: 0 as const, message: `${t.events} event(s): ${t.stage === 'sink' ? `taken by the sink by ${t.takenBy}` : 'committed to the channel, not yet known taken by the sink'}`, ...t };
    },
  });
}
