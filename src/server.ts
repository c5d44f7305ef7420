import { pino } from 'pino';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createRedis } from './redis/client.js';
import { createSupervisorDriver } from './supervisor/index.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`flume-service: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = pino({ level: config.LOG_LEVEL });
  const redis = createRedis(config.REDIS_URL);
  const driver = createSupervisorDriver(config);
  const readiness = { reconciled: false };
  const { app, agents, tokens, incidents } = buildApp({ config, log, redis, driver, readiness });

  // Redis may be a fresh one (or not up yet): rebuild reservations and routes from disk,
  // retrying until it answers. /readyz reports Redis meanwhile.
  const restore = async (): Promise<void> => {
    try {
      if (redis.status === 'wait') await redis.connect();
      const tokensRestored = await tokens.restoreFromDisk();
      log.info({ ...(await agents.reconcile()), tokensRestored }, 'reconciled Redis and supervisord with conf.d/ and services/');
      readiness.reconciled = true;
      await incidents.start();
    } catch (err) {
      log.warn({ err }, 'cannot restore state into Redis yet; retrying in 2 s');
      setTimeout(() => void restore(), 2000).unref();
    }
  };
  await restore();
  // Routes follow readiness between operations too (an agent that died, or came back).
  const routeSync = setInterval(() => {
    agents.syncRoutes().catch((err: unknown) => log.warn({ err }, 'route sync failed'));
  }, 5000);
  routeSync.unref();

  await app.listen({ host: config.API_HOST, port: config.API_PORT });
  log.info(
    { url: `http://${config.API_HOST}:${config.API_PORT}` },
    'listening; every /v1/api call needs a token: mint one with `npm run -s token -- --role admin`',
  );

  let closing = false;
  const close = async (signal: string) => {
    if (closing) return;
    closing = true;
    clearInterval(routeSync);
    log.info({ signal }, 'shutting down');
    await app.close();
    await driver.close();
    redis.disconnect();
    process.exit(0);
  };
  process.on('SIGTERM', () => void close('SIGTERM'));
  process.on('SIGINT', () => void close('SIGINT'));
}

void main();
