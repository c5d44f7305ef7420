import type { FastifyInstance } from 'fastify';
import { type Config } from '../config.js';
import { etcdProtected } from '../config-load.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ErrorCodes } from '../errors.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import { access, ok } from '../resources/envelope.js';
import type { BuildInfo } from '../store/build-info.js';
import { readinessChecks } from '../http/readiness.js';

const checks = z.object({ redis: z.string(), supervisord: z.string(), reconciled: z.string() }).describe('"ok" or what is wrong');

/** What an operator should know though the service is ready: settings that leave a door open. */
export function readinessWarnings(cfg: Pick<Config, 'ETCD_ENDPOINTS' | 'ETCD_ALLOW_UNPROTECTED' | 'ETCD_CERT_FILE' | 'ETCD_USERNAME'>): string[] {
  return cfg.ETCD_ENDPOINTS.length > 0 && !etcdProtected(cfg) && cfg.ETCD_ALLOW_UNPROTECTED
    ? ['etcd is not protected (ETCD_ALLOW_UNPROTECTED=true): anyone who reaches it may write the cluster\'s records and stop its tables (docs/cluster.md, "Starting three hosts")']
    : [];
}

/** /healthz: the process is up. /readyz: Redis and supervisord answer and disk state is restored. */
export async function healthRoutes(
  fastify: FastifyInstance,
  opts: { redis: Redis; driver: SupervisorDriver; readiness: { reconciled: boolean }; build: BuildInfo; node: string; warnings: string[] },
): Promise<void> {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const tags = ['health'];
  const startedAt = new Date().toISOString();
  app.get('/version', {
    schema: {
      tags,
      summary: "What runs: this service's version, the Flume its agents run, Node, this host and when the process started (also the flume_service_build_info metric)",
      ...access('none'),
      response: { 200: ok({ version: z.string(), flume: z.string(), node: z.string(), host: z.string(), startedAt: z.string() }) },
    },
  }, async () => ({ code: 0 as const, message: `flume-service ${opts.build.version}`, ...opts.build, host: opts.node, startedAt }));
  app.get('/healthz', { schema: { tags, summary: 'The process is up', ...access('none'), response: { 200: ok({}) } } }, async () => ({
    code: 0 as const,
    message: 'ok',
  }));
  app.get('/readyz', {
    schema: {
      tags,
      summary: 'Redis and supervisord answer and disk state is restored',
      ...access('none'),
      response: {
        200: ok({ checks, warnings: z.array(z.string()).describe('settings that leave a door open, e.g. an unprotected etcd; empty when none') }),
        503: z.object({ code: z.literal(ErrorCodes.NOT_READY), error: z.literal('NOT_READY'), message: z.string(), checks, warnings: z.array(z.string()) }),
      },
    },
  }, async (_req, reply) => {
    const { ready, checks: { redis, supervisord, reconciled } } = await readinessChecks(opts);
    return reply
      .status(ready ? 200 : 503)
      .send(
        ready
          ? { code: 0 as const, message: 'ready', checks: { redis, supervisord, reconciled }, warnings: opts.warnings }
          : { code: ErrorCodes.NOT_READY, error: 'NOT_READY' as const, message: 'not ready', checks: { redis, supervisord, reconciled }, warnings: opts.warnings },
      );
  });
}
