import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { redisUnavailable } from '../errors.js';

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

/** Runs a Redis call, turning connection failures into REDIS_UNAVAILABLE. */
export async function redisCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw redisUnavailable(`Redis did not answer: ${msg}`);
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
