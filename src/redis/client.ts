import { readFileSync } from 'node:fs';
import { Redis, ReplyError } from 'ioredis';
import { AppError, appError, redisUnavailable, withCause } from '../errors.js';

/**
 * A client that fails fast instead of queueing commands while Redis is away, so an API call
 * answers 503 REDIS_UNAVAILABLE in bounded time rather than hanging. `rediss://` is TLS,
 * verified against `tlsCaFile` when given (else the system's roots).
 */
export function createRedis(url: string, tlsCaFile?: string): Redis {
  const tls = url.startsWith('rediss:') && tlsCaFile ? { tls: { ca: readFileSync(tlsCaFile) } } : {};
  return new Redis(url, {
    ...tls,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    commandTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}

/**
 * Redis refusals that pass once Redis is itself again (loading its data, busy with a script,
 * out of memory, a replica, our password not yet or no longer accepted): as transient as no answer.
 */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|OOM|READONLY|NOAUTH|WRONGPASS|NOREPLICAS)\b/;

/**
 * How a failed Redis call ends: `transient` (no answer, or a refusal that passes: 503
 * REDIS_UNAVAILABLE, retry) or `terminal` (Redis refused the command itself, e.g. WRONGTYPE: a
 * fault here, 500 INTERNAL). Errors of our own (AppError) pass as they are.
 */
export function classifyRedisError(err: unknown): 'ours' | 'transient' | 'terminal' {
  if (err instanceof AppError) return 'ours';
  if (err instanceof ReplyError && !TRANSIENT_REPLY.test((err as Error).message)) return 'terminal';
  return 'transient';
}

/** Runs a Redis call: every Redis call goes through here, so each failure is classified and keeps its cause. */
export async function redisCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const kind = classifyRedisError(err);
    if (kind === 'ours') throw err;
    const msg = err instanceof Error ? err.message : String(err);
    if (kind === 'terminal') throw withCause(appError('INTERNAL', `Redis refused a command (${msg.split(' ')[0]}); see the service log`), err);
    throw redisUnavailable(`Redis did not answer: ${msg}`, err);
  }
}

/**
 * A second connection for blocking reads (XREAD BLOCK): it waits for Redis instead of failing
 * fast, and never times a blocking call out.
 */
export function blockingReader(redis: Redis): Redis {
  const reader = redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
  reader.on('error', () => undefined);
  return reader;
}
