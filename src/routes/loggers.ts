import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { LogLevels } from '../agents/log-levels.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';
import { loggerChangeSchema, loggerNameSchema, loggersSchema } from '../resources/loggers.js';
import { tableParamsSchema } from '../resources/table.js';

/** An agent's log levels at run time (Flume's log4j2 loggers), and the ones saved for every start. */
export async function loggerRoutes(fastify: FastifyInstance, opts: { levels: LogLevels; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['operations'];
  const params = tableParamsSchema.extend({ logger: loggerNameSchema });

  app.get('/v1/api/:db/:table/loggers', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: "The agent's log levels: every logger its running JVM has a level for, and the saved ones (set at every start)",
      ...access('read'),
      params: tableParamsSchema,
      response: { 200: ok(loggersSchema.shape), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => ({ code: 0 as const, message: 'log levels', ...(await opts.levels.get(req.params)) }),
  });

  app.put('/v1/api/:db/:table/loggers/:logger', {
    onRequest: opts.authorize('operate'),
    schema: {
      tags,
      summary: 'Set a logger\'s level in the running agent at once, no restart ("root" for the root logger); a restart forgets it unless save is true',
      ...access('operate'),
      description: `409 LOGGERS_UNAVAILABLE when the agent is not running (a saved level still applies at its next start). ${access('operate').description}`,
      params,
      body: loggerChangeSchema,
      response: { 200: ok(loggersSchema.shape), ...errors(400, 401, 403, 404, 409, 503) },
    },
    config: { idempotent: true },
    handler: async (req) => {
      const { logger, ...ref } = req.params;
      const r = await opts.levels.set(ref, logger, req.body);
      return { code: 0 as const, ...r };
    },
  });

  app.delete('/v1/api/:db/:table/loggers/:logger', {
    onRequest: opts.authorize('operate'),
    schema: {
      tags,
      summary: 'Forget a saved level: the running agent keeps its level until it restarts',
      ...access('operate'),
      params,
      response: { 200: ok(loggersSchema.shape), ...errors(400, 401, 403, 404, 503) },
    },
    handler: async (req) => {
      const { logger, ...ref } = req.params;
      return { code: 0 as const, ...(await opts.levels.unsave(ref, logger)) };
    },
  });
}
