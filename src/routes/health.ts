import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { ErrorCodes } from '../errors.js';
import type { SupervisorDriver } from '../supervisor/driver.js';

/** Each readiness check gets this long: /readyz answers within about 2 s even if one hangs. */
const CHECK_TIMEOUT_MS = 1500;

/** /healthz: the process is up. /readyz: Redis and supervisord answer and disk state is restored. */
export async function healthRoutes(
  app: FastifyInstance,
  opts: { redis: Redis; driver: SupervisorDriver; readiness: { reconciled: boolean } },
): Promise<void> {
  app.get('/healthz', async () => ({ code: 0, message: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
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
    const [redis, supervisord] = await Promise.all([
      check(() => opts.redis.ping()),
      check(() => opts.driver.ping(CHECK_TIMEOUT_MS)),
    ]);
    const reconciled = opts.readiness.reconciled ? 'ok' : 'restoring state from disk';
    const ready = redis === 'ok' && supervisord === 'ok' && reconciled === 'ok';
    return reply
      .status(ready ? 200 : 503)
      .send(
        ready
          ? { code: 0, message: 'ready', checks: { redis, supervisord, reconciled } }
          : { code: ErrorCodes.NOT_READY, error: 'NOT_READY', message: 'not ready', checks: { redis, supervisord, reconciled } },
      );
  });
}
