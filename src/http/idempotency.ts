import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Principal } from '../auth/roles.js';
import { idempotencyInProgress, idempotencyKeyReused, invalidRequest } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route honours Idempotency-Key (src/http/idempotency.ts). */
    idempotent?: boolean;
  }
  interface FastifyRequest {
    /** The Redis key holding this request's Idempotency-Key record, while it is this request's to answer. */
    idempotencyRecord?: { key: string; fingerprint: string };
  }
}

/** What an Idempotency-Key may be: it becomes part of a Redis key. */
const KEY = /^[A-Za-z0-9._:+/=-]{1,200}$/;
/** Headers a replayed answer carries again. */
const KEPT = ['content-type', 'location', 'content-location', 'etag', 'x-operation-id', 'preference-applied', 'retry-after'];
/** A first request that never answered (its API process died) holds its key at most this long. */
const PENDING_SECONDS = 600;
/** The largest answer kept for a replay. */
const MAX_KEPT_BYTES = 1024 * 1024;

/**
 * Who an Idempotency-Key belongs to: the caller's whole identity, not its `sub` alone (which the
 * caller's minter chooses, and which two tokens of different roles or dbs may share).
 */
function principalKey(p: Principal | undefined): string {
  const identity = p ? [p.sub, p.role, p.dbs ? [...p.dbs].sort() : '*'] : null;
  return createHash('sha256').update(JSON.stringify(identity)).digest('base64url').slice(0, 22);
}

interface Stored {
  state: 'pending' | 'done';
  fingerprint: string;
  status?: number;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header) on the routes marked
 * `config: { idempotent: true }` (create, upsert, config changes, rollback, bulk operations).
 *
 * Guarantees, per principal (the token's sub, role and dbs together: two tokens that differ in
 * any of them never see each other's answers) and key, for `windowSeconds` after the first answer:
 * - the first request runs; a repeat with the same method, URL and body gets its answer again
 *   (status, body, Location/ETag/X-Operation-Id), with `Idempotent-Replayed: true`, and runs nothing;
 * - a repeat while the first still runs: 409 IDEMPOTENCY_IN_PROGRESS with Retry-After;
 * - the key with another method, URL or body: 422 IDEMPOTENCY_KEY_REUSED;
 * - answers worth retrying (5xx, 429, 409 BUSY) are not kept: the next try runs again.
 * Records live in Redis only: a Redis loss forgets them (a retried create is still safe: the
 * same spec answers the existing agent).
 */
export function registerIdempotency(app: FastifyInstance, redis: Redis, keys: Keys, windowSeconds: number, log: Logger): void {
  app.addHook('preHandler', async (req, reply) => {
    if (!req.routeOptions.config.idempotent) return;
    const given = req.headers['idempotency-key'];
    if (given === undefined) return;
    if (typeof given !== 'string' || !KEY.test(given)) {
      throw invalidRequest('Idempotency-Key must be 1-200 characters of letters, digits and ._:+/=- (a UUID is a good one)');
    }
    const who = principalKey(req.principal);
    const key = keys.idempotency(who, given);
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([req.method, req.url, req.body ?? null, req.headers.prefer ?? null, req.headers['if-match'] ?? null, ...(req.headers['if-none-match'] ? [req.headers['if-none-match']] : [])]))
      .digest('base64url');
    const first: Stored = { state: 'pending', fingerprint };
    const taken = await redisCall(() => redis.set(key, JSON.stringify(first), 'EX', PENDING_SECONDS, 'NX'));
    if (taken === 'OK') {
      req.idempotencyRecord = { key, fingerprint };
      return;
    }
    const raw = await redisCall(() => redis.get(key));
    const stored = raw ? (JSON.parse(raw) as Stored) : null;
    if (!stored) throw idempotencyInProgress(); // it expired just now: a retry runs it
    if (stored.fingerprint !== fingerprint) throw idempotencyKeyReused();
    if (stored.state === 'pending') throw idempotencyInProgress();
    return reply
      .status(stored.status ?? 200)
      .headers({ ...stored.headers, 'idempotent-replayed': 'true' })
      .send(stored.body ?? '');
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const rec = req.idempotencyRecord;
    if (!rec) return payload;
    req.idempotencyRecord = undefined;
    const status = reply.statusCode;
    // Answers too large to keep (a bulk operation over thousands of tables) are not replayed either.
    const retryable = status >= 500 || status === 429 || req.errorName === 'BUSY' || (typeof payload === 'string' && payload.length > MAX_KEPT_BYTES);
    const write = retryable
      ? redis.del(rec.key)
      : redis.set(
          rec.key,
          JSON.stringify({
            state: 'done',
            fingerprint: rec.fingerprint,
            status,
            headers: Object.fromEntries(KEPT.flatMap((h) => (reply.getHeader(h) === undefined ? [] : [[h, String(reply.getHeader(h))]]))),
            body: typeof payload === 'string' ? payload : '',
          } satisfies Stored),
          'EX',
          windowSeconds,
        );
    await write.catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not keep the Idempotency-Key answer'));
    return payload;
  });
}
