import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { dbAllowed } from '../auth/roles.js';
import type { Authorize } from '../http/auth.js';
import type { Keys } from '../redis/keys.js';
import { access, errors, ok } from '../resources/envelope.js';
import { dbQuotaSchema, quotaSchema, type DbQuota, type Usage } from '../resources/quota.js';
import { tableParamsSchema } from '../resources/table.js';
import type { Quotas } from '../tenants/quotas.js';
import { USAGE_MINUTES, readUsage } from '../tenants/usage.js';

const dbParams = tableParamsSchema.pick({ db: true });

/** Each db's quota at the gateway and its use of it (docs/gateway.md#fair-share-between-dbs). */
export async function quotaRoutes(fastify: FastifyInstance, opts: { quotas: Quotas; redis: Redis; keys: Keys; authorize: Authorize }): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['quotas'];
  const none = (): Usage => ({ eventsPerSecond: 0, bytesPerSecond: 0, refused: {}, minutes: [] });
  const view = async (db: string): Promise<DbQuota> => ({ db, quota: opts.quotas.get(db), usage: (await readUsage(opts.redis, opts.keys)).get(db) ?? none() });

  app.get('/v1/api/quotas', {
    onRequest: opts.authorize('read'),
    schema: {
      tags,
      summary: `Every db with a quota or with senders in the last ${USAGE_MINUTES} minutes (within the token's dbs): its quota and its use of the gateway, every host's together`,
      ...access('read'),
      response: { 200: ok({ dbs: z.array(dbQuotaSchema) }), ...errors(401, 403, 503) },
    },
    handler: async (req) => {
      const usage = await readUsage(opts.redis, opts.keys);
      const names = [...new Set([...opts.quotas.all().keys(), ...usage.keys()])].filter((db) => !req.principal || dbAllowed(req.principal, db)).sort();
      const dbs = names.map((db) => ({ db, quota: opts.quotas.get(db), usage: usage.get(db) ?? none() }));
      return { code: 0 as const, message: `${dbs.length} db(s)`, dbs };
    },
  });

  app.get('/v1/api/quotas/:db', {
    onRequest: opts.authorize('read'),
    schema: { tags, summary: "One db's quota (null: none) and its use of the gateway", ...access('read'), params: dbParams, response: { 200: ok(dbQuotaSchema.shape), ...errors(400, 401, 403, 503) } },
    handler: async (req) => ({ code: 0 as const, message: 'quota', ...(await view(req.params.db)) }),
  });

  app.put('/v1/api/quotas/:db', {
    onRequest: opts.authorize('admin'),
    schema: {
      tags,
      summary: "Set a db's quota at the gateway (replaces the whole quota): events and bytes per second and per UTC day, any of them; each host's gateway holds it within a second",
      ...access('admin'),
      params: dbParams,
      body: quotaSchema,
      response: { 200: ok(dbQuotaSchema.shape), ...errors(400, 401, 403, 503) },
    },
    config: { idempotent: true },
    handler: async (req) => {
      await opts.quotas.set(req.params.db, req.body);
      return { code: 0 as const, message: `quota of ${req.params.db} set`, ...(await view(req.params.db)) };
    },
  });

  app.delete('/v1/api/quotas/:db', {
    onRequest: opts.authorize('admin'),
    schema: { tags, summary: "Remove a db's quota (only the fair share limits it then)", ...access('admin'), params: dbParams, response: { 200: ok(dbQuotaSchema.shape), ...errors(400, 401, 403, 503) } },
    handler: async (req) => {
      await opts.quotas.set(req.params.db, null);
      return { code: 0 as const, message: `quota of ${req.params.db} removed`, ...(await view(req.params.db)) };
    },
  });
}
