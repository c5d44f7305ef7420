import type { FastifyInstance } from 'fastify';
import type { AuditLog } from '../audit/audit-log.js';
import type { RefusedCalls } from '../audit/refused-calls.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Records every mutating call to a route of the API (who, what, which table, outcome, the
 * operation id) once its answer is sent. Unknown routes and reads are not recorded. Calls
 * refused for their token (401, 403) are counted apart (RefusedCalls), so they can never push
 * the entries of authorized calls out of the trail.
 */
export function registerAudit(app: FastifyInstance, audit: AuditLog, refused: RefusedCalls): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url;
    if (!MUTATING.has(req.method) || !route?.startsWith('/v1/api/')) return;
    const params = (req.params ?? {}) as { db?: unknown; table?: unknown };
    const db = typeof params.db === 'string' ? params.db.slice(0, 64) : null;
    if (reply.statusCode === 401 || reply.statusCode === 403) {
      refused.record({ ip: req.ip, who: req.principal?.sub ?? null, role: req.principal?.role ?? null, db, status: reply.statusCode, action: `${req.method} ${route}`, at: new Date() });
      return;
    }
    const ok = reply.statusCode < 400;
    const q = req.url.indexOf('?');
    void audit.record({
      at: new Date().toISOString(),
      who: req.principal?.sub ?? null,
      role: req.principal?.role ?? null,
      action: `${req.method} ${route}`,
      db,
      table: typeof params.table === 'string' ? params.table.slice(0, 64) : null,
      status: reply.statusCode,
      outcome: ok ? 'ok' : 'error',
      error: ok ? null : (req.errorName ?? String(reply.statusCode)),
      operationId: (reply.getHeader('x-operation-id') as string | undefined) ?? null,
      query: q >= 0 ? req.url.slice(q + 1, q + 201) : null,
      ip: req.ip,
      requestId: req.id,
    });
  });
}
