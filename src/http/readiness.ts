import type { Redis } from 'ioredis';
import type { SupervisorDriver } from '../supervisor/driver.js';

/** Each readiness check gets this long: an answer within about 2 s even if one hangs. */
const CHECK_TIMEOUT_MS = 1500;

export interface ReadinessParts {
  redis: Redis;
  driver: SupervisorDriver;
  readiness: { reconciled: boolean };
}

/** Each check: "ok" or what is wrong. */
export type ReadinessChecks = { redis: string; supervisord: string; reconciled: string };

/**
 * Whether this API can serve: Redis and supervisord answer and the disk's state is restored.
 * What GET /readyz answers and what the flume_service_ready metric exports: one definition.
 */
export async function readinessChecks(parts: ReadinessParts): Promise<{ ready: boolean; checks: ReadinessChecks }> {
  const check = async (fn: () => Promise<unknown>) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
    });
    try {
      await Promise.race([fn(), timeout]);
      return 'ok';
    } catch (e) {
      return (e as Error).message;
    } finally {
      clearTimeout(timer);
    }
  };
  const [redis, supervisord] = await Promise.all([check(() => parts.redis.ping()), check(() => parts.driver.ping(CHECK_TIMEOUT_MS))]);
  const reconciled = parts.readiness.reconciled ? 'ok' : 'restoring state from disk';
  return { ready: redis === 'ok' && supervisord === 'ok' && reconciled === 'ok', checks: { redis, supervisord, reconciled } };
}
