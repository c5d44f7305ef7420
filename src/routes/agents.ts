import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AgentService } from '../agents/agent-service.js';
import { NAME_PATTERN, tableParamsSchema, type TableRef } from '../agents/names.js';
import { forbidden, invalidName, invalidRequest, methodNotAllowed } from '../errors.js';
import type { Authorize } from '../http/auth.js';
import type { TokenService } from '../tokens/token-service.js';

function tableOf(params: unknown): TableRef {
  const r = tableParamsSchema.safeParse(params);
  if (!r.success) throw invalidName(r.error.issues.map((i) => i.message).join('; '));
  return r.data;
}

export const deleteQuerySchema = z.object({ force: z.enum(['true', 'false', '1', '0']).optional() }).strict();
export const listQuerySchema = z
  .object({
    db: z.string().regex(NAME_PATTERN, 'db must be a valid db name').optional(),
    state: z.string().regex(/^[A-Za-z_]+$/).optional(),
  })
  .strict();

/** The lifecycle API. Each handler validates, calls one AgentService method, shapes the body. */
export async function agentRoutes(
  app: FastifyInstance,
  opts: { agents: AgentService; tokens: TokenService; authorize: Authorize },
): Promise<void> {
  const { agents, authorize } = opts;
  const read = { onRequest: authorize('read') };
  const operate = { onRequest: authorize('operate') };
  const ok = <T extends object>(message: string, body: T) => ({ code: 0, message, ...body });

  app.post('/v1/api/:db/:table/create', operate, async (req, reply) => {
    const s = await agents.create(tableOf(req.params), req.body);
    return reply.status(201).send(ok(`${s.program}: created, ${s.state}`, s));
  });

  for (const action of ['start', 'stop', 'restart'] as const) {
    app.post(`/v1/api/:db/:table/${action}`, operate, async (req) => {
      const s = await agents[action](tableOf(req.params));
      return ok(`${s.program}: ${s.state}`, s);
    });
  }

  app.get('/v1/api/:db/:table/status', read, async (req) => {
    const s = await agents.status(tableOf(req.params));
    return ok(`${s.program}: ${s.state}`, s);
  });

  app.delete('/v1/api/:db/:table', operate, async (req) => {
    const q = deleteQuerySchema.safeParse(req.query ?? {});
    if (!q.success) throw invalidRequest('the only query parameter is force=true|false');
    const r = await agents.delete(tableOf(req.params), q.data.force === 'true' || q.data.force === '1');
    return ok(`${r.program}: deleted, channel data ${r.channel}`, r);
  });

  app.get('/v1/api/services', read, async (req, reply) => {
    const q = listQuerySchema.safeParse(req.query ?? {});
    if (!q.success) throw invalidRequest(q.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`).join('; '));
    const dbs = req.principal?.dbs;
    if (q.data.db && dbs && !dbs.includes(q.data.db)) throw forbidden(`this token is limited to db ${dbs.join(', ')}`);
    const list = (await agents.list(q.data))
      .filter((a) => !dbs || dbs.includes(a.db))
      // Ages tick every second (uptimeSeconds, supervisord's description "uptime 0:00:07");
      // dashboards get stable timestamps (startedAt, lastEventAt) instead, so an unchanged
      // fleet polls as 304 Not Modified.
      .map(({ uptimeSeconds: _u, description: _d, metrics, ...a }) => {
        if (!metrics) return { ...a, metrics };
        const { lastEventAgeSeconds: _l, ...m } = metrics;
        return { ...a, metrics: m };
      });
    const body = ok(`${list.length} agent(s)`, { agents: list });
    const etag = `"${createHash('sha1').update(JSON.stringify(body)).digest('base64url')}"`;
    void reply.header('etag', etag).header('cache-control', 'no-cache').header('vary', 'authorization');
    if (req.headers['if-none-match'] === etag) return reply.status(304).send();
    return body;
  });

  app.post('/v1/api/reconcile', { onRequest: authorize('admin') }, async () => {
    const tokensRestored = await opts.tokens.restoreFromDisk();
    const report = await agents.reconcile();
    return ok('reconciled', { ...report, tokensRestored });
  });

  // A browser or a habit from the original GET API: say which method to use instead.
  for (const action of ['create', 'start', 'stop', 'restart']) {
    app.route({
      method: ['GET', 'PUT', 'PATCH', 'DELETE'],
      url: `/v1/api/:db/:table/${action}`,
      ...read,
      handler: async () => {
        throw methodNotAllowed('POST');
      },
    });
  }
  app.route({
    method: ['POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v1/api/:db/:table/status',
    ...read,
    handler: async () => {
      throw methodNotAllowed('GET');
    },
  });
}
