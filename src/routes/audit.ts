import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditLog } from '../audit/audit-log.js';
import type { RefusedCalls } from '../audit/refused-calls.js';
import { NAME_PATTERN } from '../resources/table.js';
import type { Authorize } from '../http/auth.js';
import { access, errors, ok } from '../resources/envelope.js';

const entrySchema = z.object({
  at: z.string(),
  who: z.string().nullable().describe("the control token's subject (null: no valid token)"),
  role: z.string().nullable(),
  action: z.string().describe('"<METHOD> <route>"'),
  db: z.string().nullable(),
  table: z.string().nullable(),
  status: z.number(),
  outcome: z.enum(['ok', 'error']),
  error: z.string().nullable(),
  operationId: z.string().nullable(),
  query: z.string().nullable(),
  ip: z.string(),
  requestId: z.string().optional().describe("the call's X-Request-Id"),
});
const querySchema = z.strictObject({
  db: z.string().regex(NAME_PATTERN).optional(),
  table: z.string().regex(NAME_PATTERN).optional(),
  who: z.string().min(1).max(128).optional(),
  action: z.string().min(1).max(100).optional().describe('part of the action, e.g. "stop" or "config"'),
  outcome: z.enum(['ok', 'error']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().regex(/^\d{1,16}-\d{1,10}$/, 'cursor is the nextCursor of the previous page').optional().describe("the previous page's nextCursor"),
});
const nextCursor = z.string().nullable().describe('pass as ?cursor= for the next (older) page; null: nothing older is kept');

/** The audit trail, newest first. */
const refusedSchema = z.object({
  minute: z.string(),
  ip: z.string().describe('the caller\'s address ("*": one of many, past 10,000 callers in 2 s)'),
  who: z.string().nullable().describe("the control token's subject when it was valid but not allowed (403); null: no valid token (401)"),
  role: z.string().nullable(),
  db: z.string().nullable(),
  status: z.number(),
  count: z.number(),
  actions: z.array(z.string()).describe('up to five of the actions refused'),
});

export async function auditRoutes(fastify: FastifyInstance, opts: { audit: AuditLog; refused: RefusedCalls; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get('/v1/api/audit', {
    onRequest: opts.authorize('admin'),
    schema: {
      tags: ['operations'],
      summary: 'Who changed what: every mutating call that passed authorization, newest first, with filters (kept in var/audit.log, queried from Redis); refused calls are at /v1/api/audit/refused',
      ...access('admin'),
      querystring: querySchema,
      response: { 200: ok({ entries: z.array(entrySchema), nextCursor }), ...errors(400, 401, 403, 503) },
    },
    handler: async (req) => {
      const { entries, nextCursor: next } = await opts.audit.query({ ...req.query, dbs: req.principal?.dbs });
      return { code: 0 as const, message: `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, newest first`, entries, nextCursor: next };
    },
  });

  app.get('/v1/api/audit/refused', {
    onRequest: opts.authorize('admin'),
    schema: {
      tags: ['operations'],
      summary: 'Calls refused for their token (401, 403), counted per address, subject, db, status and minute, newest first (the newest 10,000 records, Redis only)',
      ...access('admin'),
      querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      response: { 200: ok({ entries: z.array(refusedSchema) }), ...errors(400, 401, 403, 503) },
    },
    handler: async (req) => {
      const entries = await opts.refused.query({ limit: req.query.limit, dbs: req.principal?.dbs });
      const calls = entries.reduce((n, e) => n + e.count, 0);
      return { code: 0 as const, message: `${calls} refused call(s) in ${entries.length} group(s), newest first`, entries };
    },
  });
}
