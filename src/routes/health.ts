import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { ErrorCodes } from '../errors.js';
import type { SupervisorDriver } from '../supervisor/driver.js';

/** /healthz: the process is up. /readyz: Redis and supervisord both answer. */
export async function healthRoutes(app: FastifyInstance, opts: { redis: Redis; driver: SupervisorDriver }): Promise<void> {
  app.get('/healthz', async () => ({ code: 0, message: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const check = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
        return 'ok';
      } catch (e) {
        return (e as Error).message;
      }
    };
    const [redis, supervisord] = await Promise.all([
      check(() => opts.redis.ping()),
      check(() => opts.driver.ping()),
    ]);
    const ready = redis === 'ok' && supervisord === 'ok';
    return reply
      .status(ready ? 200 : 503)
      .send(
        ready
          ? { code: 0, message: 'ready', checks: { redis, supervisord } }
          : { code: ErrorCodes.NOT_READY, error: 'NOT_READY', message: 'a dependency does not answer', checks: { redis, supervisord } },
      );
  });
}
