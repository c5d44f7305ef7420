import { stat } from 'node:fs/promises';
import { flagSchema, isSet } from '../flag.js';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { logSince, logTail, shownLogLine, type AgentStore } from '../store/agent-store.js';
import type { AgentService } from '../agents/agent-service.js';
import { programName, tableParamsSchema } from '../resources/table.js';
import type { Authorize } from '../http/auth.js';
import type { EventStreams } from '../http/sse.js';
import { access, errors, ok } from '../resources/envelope.js';

const querySchema = z.strictObject({
  lines: z.coerce.number().int().min(1).max(1000).default(100).describe('how many of the last lines (at most 1000)'),
  follow: flagSchema.optional().describe('true: server-sent events, "line" per new line, until the client leaves'),
});
/** How often a followed log is looked at for new lines. */
const FOLLOW_POLL_MS = 500;

/** An agent's log (var/<program>/agent.log): its tail, or followed live. Operators only: logs can hold event data. */
export async function logRoutes(fastify: FastifyInstance, opts: { agents: AgentService; store: AgentStore; authorize: Authorize; streams: EventStreams }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const open = opts.streams.open.bind(opts.streams);

  app.get('/v1/api/:db/:table/logs', {
    onRequest: opts.authorize('operate'),
    schema: {
      tags: ['operations'],
      summary: "The tail of the agent's log; ?follow=true streams new lines as server-sent events (\"line\", JSON {line})",
      ...access('operate'),
      params: tableParamsSchema,
      querystring: querySchema,
      response: { 200: ok({ program: z.string(), lines: z.array(z.string()) }), ...errors(400, 401, 403, 404, 429, 503) },
    },
    handler: async (req, reply) => {
      await opts.agents.status(req.params); // 404 for a table without an agent
      const program = programName(req.params);
      const file = opts.store.paths(program).logFile;
      const lines = await logTail(file, req.query.lines);
      if (!isSet(req.query.follow)) return { code: 0 as const, message: `${lines.length} line(s)`, program, lines };

      let timer: NodeJS.Timeout | undefined;
      let closed = false;
      const stream = open(req, reply, () => {
        closed = true;
        clearInterval(timer);
      });
      const send = (line: string) => stream.send('line', { line: shownLogLine(line) });
      for (const line of lines) send(line);
      let offset = (await stat(file).catch(() => null))?.size ?? 0;
      let partial = '';
      let busy = false;
      timer = setInterval(() => {
        if (closed) return clearInterval(timer);
        if (busy) return;
        busy = true;
        void (async () => {
          const size = (await stat(file).catch(() => null))?.size ?? 0;
          if (size < offset) offset = 0; // rotated by supervisord: the new file from its start
          if (size > offset) {
            const text = partial + (await logSince(file, offset, 1_048_576));
            offset = size;
            const parts = text.split('\n');
            partial = parts.pop() ?? '';
            for (const line of parts) send(line);
          }
        })().finally(() => (busy = false));
      }, FOLLOW_POLL_MS);
    },
  });
}
