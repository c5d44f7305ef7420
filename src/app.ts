import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AgentService } from './agents/agent-service.js';
import { PortAllocator } from './agents/port-allocator.js';
import type { Config } from './config.js';
import { invalidJson } from './errors.js';
import { loadOrCreateSecret } from './auth/secret.js';
import { registerAuth } from './http/auth.js';
import { registerErrorHandling } from './http/error-handler.js';
import { makeKeys } from './redis/keys.js';
import { agentRoutes } from './routes/agents.js';
import { healthRoutes } from './routes/health.js';
import { eventRoutes } from './routes/events.js';
import { metricsRoutes } from './routes/metrics.js';
import { pageRoutes } from './routes/pages.js';
import { LatencyHistogram } from './http/latency.js';
import { tokenRoutes } from './routes/tokens.js';
import { IncidentService } from './incidents/incident-service.js';
import type { SupervisorDriver } from './supervisor/driver.js';
import { TokenService } from './tokens/token-service.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  redis: Redis;
  driver: SupervisorDriver;
  /** server.ts flips `reconciled` once disk state is restored; /readyz waits for it. */
  readiness?: { reconciled: boolean };
}

export interface BuiltApp {
  app: FastifyInstance;
  agents: AgentService;
  tokens: TokenService;
  /** Not started: server.ts (and tests) start it once disk state is reconciled. */
  incidents: IncidentService;
}

/** Builds the HTTP app from its dependencies. It never listens: server.ts and tests do. */
export function buildApp({ config, log, redis, driver, readiness = { reconciled: true } }: AppDeps): BuiltApp {
  const keys = makeKeys(config.REDIS_KEY_PREFIX);
  const ports = new PortAllocator(redis, keys, config.PORT_RANGE);
  const agents = new AgentService(config, redis, keys, driver, ports, log.child({ component: 'agents' }));

  const app: FastifyInstance = Fastify({
    loggerInstance: log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: 1_048_576,
  });
  // An empty body is "no options"; anything else must be JSON. Bodies are read as JSON
  // whatever their content type, so `curl -d '{...}'` (form-encoded by default) works too.
  const parseJson = (_req: unknown, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
    const text = String(body).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(invalidJson('the body is not valid JSON'), undefined);
    }
  };
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson);
  app.addContentTypeParser('*', { parseAs: 'string' }, parseJson);
  registerErrorHandling(app);
  const latency = new LatencyHistogram();
  latency.attach(app);
  const authorize = registerAuth(app, loadOrCreateSecret(config));
  const tokens = new TokenService(redis, keys, config.TOKEN_GRACE_SECONDS, log.child({ component: 'tokens' }), join(config.varDir, 'tokens'));
  void app.register(healthRoutes, { redis, driver, readiness });
  void app.register(agentRoutes, { agents, tokens, authorize });
  const incidents = new IncidentService(config, redis, keys, driver, agents, log.child({ component: 'incidents' }));
  void app.register(tokenRoutes, { tokens, authorize });
  void app.register(eventRoutes, { incidents, agents, authorize });
  void app.register(metricsRoutes, { agents, incidents, latency });
  void app.register(pageRoutes);
  app.addHook('onClose', async () => incidents.stop());
  return { app, agents, tokens, incidents };
}
