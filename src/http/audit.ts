import type { FastifyInstance } from 'fastify';
import type { AuditLog } from '../audit/audit-log.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Records every mutating call to a route of the API (who, what, which table, outcome, the
 * operation id) once its answer is sent. Unknown routes and reads are not recorded.
 */
export function registerAudit(app: FastifyInstance, audit: AuditLog): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url;
    if (!MUTATING.has(req.method) || !route?.startsWith('/v1/api/')) return;
    const params = (req.params ?? {}) as { db?: unknown; table?: unknown };
    const ok = reply.statusCode < 400;
    const q = req.url.indexOf('?');
    void audit.record({
      at: new Date().toISOString(),
      who: req.principal?.sub ?? null,
      role: req.principal?.role ?? null,
      action: `${req.method} ${route}`,
      db: typeof params.db === 'string' ? params.db.slice(0, 64) : null,
      table: typeof params.table === 'string' ? params.table.slice(0, 64) : null,
      status: reply.statusCode,
      outcome: ok ? 'ok' : 'error',
      error: ok ? null : (req.errorName ?? String(reply.statusCode)),
      operationId: (reply.getHeader('x-operation-id') as string | undefined) ?? null,
      query: q >= 0 ? req.url.slice(q + 1, q + 201) : null,
      ip: req.ip,
    });
  });
}
