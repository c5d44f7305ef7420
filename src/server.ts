import closeWithGrace from 'close-with-grace';
import { pino } from 'pino';
import { buildApp } from './app.js';
import { hostPort } from './config-kinds.js';
import { ConfigError, loadConfig } from './config-load.js';
import { createRedis } from './redis/client.js';
import { createSupervisorDriver } from './supervisor/index.js';
import { findStrays, reap } from './supervisor/strays.js';
import { parseProgramName } from './resources/table.js';

/** Longest a graceful shutdown may take before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

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
  // What a supervisord that died left running (an API on this port, orphaned gateway workers,
  // agents holding their tables' channels) is stopped before this process binds anything: the
  // supervisord that runs this API may have been started by something other than scripts/up.sh.
  const reaped = await reap(findStrays(config));
  for (const r of reaped) {
    log.warn({ pid: r.pid, kind: r.kind, program: r.program, signal: r.signal, graceful: r.graceful, ms: r.ms }, 'stopped a process of this installation that no live supervisord owns');
  }
  const redis = createRedis(config.REDIS_URL, config.REDIS_TLS_CA_FILE);
  redis.on('error', () => undefined); // reported by /readyz and by the calls that fail
  const driver = createSupervisorDriver(config);
  const { app, start, agents } = buildApp({ config, log, redis, driver });

  closeWithGrace({ delay: SHUTDOWN_DEADLINE_MS, logger: { error: (m: string) => log.error(m) } }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'shutting down after an error');
    else log.info({ signal }, 'shutting down');
    await app.close();
    await driver.close();
    redis.disconnect();
  });

  // Redis may be a fresh one (or not up yet): rebuild it from disk, retrying until it answers.
  // /readyz reports 503 meanwhile.
  const restore = async (): Promise<void> => {
    try {
      if (redis.status === 'wait') await redis.connect();
      log.info({ ...(await start()) }, 'restored Redis and supervisord from conf.d/, services/ and var/tokens/');
    } catch (err) {
      log.warn({ err }, 'cannot restore state into Redis yet; retrying in 2 s');
      setTimeout(() => void restore(), 2000).unref();
    }
  };
  await restore();
  // The agents stopped above ran tables whose own JVM (started by this supervisord) could not
  // take the port or the channel: start those that should run again, now that both are free.
  for (const r of reaped) {
    const ref = r.program ? parseProgramName(r.program) : null;
    if (!ref) continue;
    void agents
      .status(ref)
      .then((s) => (s.desired === 'running' ? agents.restart(ref) : undefined))
      .then(() => log.info({ program: r.program }, 'restarted the agent after stopping what held its table'))
      .catch((err: unknown) => log.warn({ err, program: r.program }, 'could not restart the agent after stopping what held its table'));
  }

  await app.listen({ host: config.API_HOST, port: config.API_PORT });
  log.info(
    { url: `http://${hostPort(config.API_HOST, config.API_PORT)}` },
    'listening; every /v1/api call needs a token: mint one with `npm run -s token -- --role admin`',
  );
}

void main();
