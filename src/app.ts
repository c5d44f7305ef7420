import { join } from 'node:path';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AgentService } from './agents/agent-service.js';
import { AgentBatch } from './agents/batch.js';
import type { HostParts } from './agents/host-parts.js';
import { AgentStore } from './store/agent-store.js';
import { ConfigService } from './agents/config-service.js';
import { PortAllocator } from './agents/port-allocator.js';
import { Reconciler } from './recovery/reconciler.js';
import type { RestoreReport } from './resources/restore.js';
import { RouteTable } from './agents/route-table.js';
import { PlacementSeam } from './agents/placement.js';
import { StartQueue } from './agents/start-queue.js';
import { TableLock } from './agents/table-lock.js';
import type { Config } from './config.js';
import { FleetModel } from './fleet/fleet-model.js';
import type { IdleEvent, QuarantineGrew } from './resources/incident.js';
import { SupervisorEvents } from './redis/supervisor-events.js';
import { ControlTokenRevocations } from './auth/revocations.js';
import { loadOrCreateSecret, loadOrCreateTokenHashKey, loadOrCreateWebhookSecret } from './auth/secret.js';
import { registerAuth } from './http/auth.js';
import { registerHostCheck } from './http/host-check.js';
import { registerJsonBody } from './http/json-body.js';
import { registerOpenApi } from './http/openapi.js';
import { KnownRoutes, registerContract } from './http/contract.js';
import { registerConditionalGet } from './http/conditional-get.js';
import { registerRequestId, requestIdOf } from './http/request-id.js';
import { registerIdempotency } from './http/idempotency.js';
import { EventStreams } from './http/sse.js';
import { EventJournal } from './http/event-journal.js';
import { clientErrorHandler, frameworkErrors, registerErrorHandling } from './http/error-handler.js';
import { makeKeys } from './redis/keys.js';
import { agentRoutes } from './routes/agents.js';
import { configRoutes } from './routes/config.js';
import { auditRoutes } from './routes/audit.js';
import { logRoutes } from './routes/logs.js';
import { loggerRoutes } from './routes/loggers.js';
import { quotaRoutes } from './routes/quotas.js';
import { Quotas } from './tenants/quotas.js';
import { adoptRoutes } from './routes/adopt.js';
import { LogLevels } from './agents/log-levels.js';
import { quarantineRoutes } from './routes/quarantine.js';
import { traceRoutes } from './routes/traces.js';
import { TraceStore } from './traces/trace-store.js';
import { QuarantineService } from './agents/quarantine-service.js';
import { fleetRoutes } from './routes/fleet.js';
import { AuditLog } from './audit/audit-log.js';
import { registerAudit } from './http/audit.js';
import { RefusedCalls } from './audit/refused-calls.js';
import { operationRoutes } from './routes/operations.js';
import { fleetApplyRoutes } from './routes/fleet-apply.js';
import { FleetApply } from './operations/fleet-apply.js';
import { OperationService } from './operations/operation-service.js';
import { healthRoutes, readinessWarnings } from './routes/health.js';
import { eventRoutes } from './routes/events.js';
import { metricsRoutes } from './routes/metrics.js';
import { pageRoutes } from './routes/pages.js';
import { tokenRoutes } from './routes/tokens.js';
import { controlTokenRoutes } from './routes/control-tokens.js';
import { sinkRoutes } from './routes/sinks.js';
import { nodeRoutes } from './routes/nodes.js';
import { EtcdCluster, SingleHost, type Nodes } from './cluster/cluster.js';
import { measureCapacity, roomForAnotherJvm } from './agents/capacity.js';
import { StandIns } from './agents/stand-in.js';
import { sizeBytes } from './resources/jvm-options.js';
import type { Lifecycle } from './agents/lifecycle.js';
import { clusterLifecycle } from './placement/index.js';
import { IncidentService } from './incidents/incident-service.js';
import { Healer } from './recovery/healer.js';
import { RetryHints } from './agents/retry-hints.js';
import { WebhookOutbox } from './incidents/webhook-outbox.js';
import type { SupervisorDriver } from './supervisor/driver.js';
import { TokenService } from './tokens/token-service.js';
import { readBuildInfo } from './store/build-info.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  redis: Redis;
  driver: SupervisorDriver;
}

export interface BuiltApp {
  app: FastifyInstance;
  agents: AgentService;
  tokens: TokenService;
  fleet: FleetModel;
  reconciler: Reconciler;
  incidents: IncidentService;
  /**
   * Restores Redis from disk, then starts the background work (fleet refresh, Redis-loss
   * check, route sync, incidents). Throws if Redis or supervisord do not answer: call again.
   * /readyz answers 503 until it has succeeded. app.close() stops it all.
   */
  start(): Promise<RestoreReport>;
}

/** Builds the HTTP app from its dependencies. It never listens: server.ts and tests do. */
export function buildApp({ config, log, redis, driver }: AppDeps): BuiltApp {
  const keys = makeKeys(config.REDIS_KEY_PREFIX);
  const store = new AgentStore(config);
  // Many hosts answer which tables are elsewhere (placement/, built below): bound before start.
  const placement = new PlacementSeam();
  const routeTable = new RouteTable(redis, keys, (program) => store.controlKey(program), placement);
  const lock = new TableLock(
    redis,
    keys,
    // A start may wait its turn in the start queue before its ready timeout begins.
    { leaseMs: config.LOCK_LEASE_MS, maxHoldMs: config.AGENT_READY_TIMEOUT_MS + 120_000 + 15 * 60_000 },
    log.child({ component: 'lock' }),
  );
  const ports = new PortAllocator(redis, keys, config.PORT_RANGE, () => store.ownedPorts());
  const usable = ports.usable();
  if (usable.skipped) {
    log.warn(
      { portRange: config.PORT_RANGE, skipped: usable.skipped, usable: usable.count },
      "PORT_RANGE overlaps the kernel's ephemeral port range (net.ipv4.ip_local_port_range): agents get no ports from the overlap",
    );
  }
  const startQueue = new StartQueue(config.AGENT_START_CONCURRENCY);
  const events = new SupervisorEvents(redis, keys, log.child({ component: 'supervisor-events' }));
  const fleet = new FleetModel(config, store, driver, events, log.child({ component: 'fleet' }), startQueue);
  const host: HostParts = { cfg: config, store, routes: routeTable, lock, driver, ports };
  const standIns = new StandIns(
    host,
    startQueue,
    async (meta) => roomForAnotherJvm(fleet.status(meta.program)?.resources?.rssBytes ?? null, sizeBytes(meta.spec.jvm?.heap ?? config.AGENT_HEAP) ?? 0),
    log.child({ component: 'stand-ins' }),
  );
  const agents = new AgentService(host, fleet, log.child({ component: 'agents' }), startQueue, standIns);
  const quarantine = new QuarantineService(store, routeTable, lock, log.child({ component: 'quarantine' }));
  const tokens = new TokenService(redis, keys, config.TOKEN_GRACE_SECONDS, log.child({ component: 'tokens' }), join(config.varDir, 'tokens'), loadOrCreateTokenHashKey(config));
  const audit = new AuditLog(join(config.varDir, 'audit.log'), redis, keys, { maxBytes: config.AUDIT_LOG_MAX_BYTES, files: 5, streamLength: 10_000 }, log.child({ component: 'audit' }));
  const revocations = new ControlTokenRevocations(redis, keys, join(config.varDir, 'revoked-control-tokens.json'), log.child({ component: 'auth' }));
  // What Redis copies from disk besides the agents' own keys: restored the one way (Restorable).
  const quotas = new Quotas(redis, keys, join(config.varDir, 'quotas.json'), log.child({ component: 'quotas' }));
  const reconciler = new Reconciler(redis, keys, host, fleet, agents, [tokens, audit, revocations, quotas], log.child({ component: 'reconciler' }));
  const webhookSecret = config.WEBHOOK_URLS.length ? loadOrCreateWebhookSecret(config) : '';
  const outbox: WebhookOutbox | null = config.WEBHOOK_URLS.length
    ? new WebhookOutbox(
        join(config.varDir, 'webhooks'),
        config.WEBHOOK_URLS,
        { retries: config.WEBHOOK_RETRIES, baseMs: config.WEBHOOK_RETRY_BASE_MS, secret: webhookSecret },
        (program, id, d): Promise<void> => incidents.recordDelivery(program, id, d),
        log.child({ component: 'webhooks' }),
      )
    : null;
  const incidents = new IncidentService(config, redis, keys, events, driver, store, lock, agents, log.child({ component: 'incidents' }), outbox);
  fleet.on('idle', (e: IdleEvent) => void incidents.reportIdle(e).catch((err: unknown) => log.warn({ err }, 'could not raise an idle incident')));
  fleet.on('quarantined', (e: QuarantineGrew) => void incidents.reportQuarantined(e).catch((err: unknown) => log.warn({ err }, 'could not raise a quarantined incident')));
  const hints = new RetryHints(redis, keys, fleet, config.FLEET_REFRESH_MS, log.child({ component: 'retry-hints' }));
  const healer = new Healer(config, redis, keys, fleet, agents, lock, incidents, (ref) => routeTable.elsewhere(ref), log.child({ component: 'healer' }));
  const configs = new ConfigService(config, store, lock, agents, routeTable, log.child({ component: 'config' }), async (c) => {
    const { program, message, ...details } = c;
    await incidents.report(program, 'config_reverted', message, details);
  });
  const measure = () => measureCapacity(config, fleet, ports);
  // One host needs no etcd; with ETCD_ENDPOINTS this host joins the cluster's membership.
  const cluster = config.ETCD_ENDPOINTS.length
    ? new EtcdCluster(config, measure, { jwtSecret: loadOrCreateSecret(config), tokenHashKey: loadOrCreateTokenHashKey(config) }, log.child({ component: 'cluster' }))
    : null;
  const nodes: Nodes = cluster ?? new SingleHost(config, measure);
  const spread = cluster ? clusterLifecycle(
        config, cluster,
        { agents, store, routes: routeTable, reconciler, tokens, revocations, quotas, webhooks: outbox },
        log.child({ component: 'placement' }),
      ) : null;
  if (spread) placement.bind(spread.placement);
  const lifecycle: Lifecycle = spread?.lifecycle ?? agents;
  const operations = new OperationService(lifecycle, new AgentBatch(host, agents), config.NODE_ID, redis, keys, log.child({ component: 'operations' }));
  const refused = new RefusedCalls(redis, keys, 10_000, log.child({ component: 'audit' }));
  const readiness = { reconciled: false };

  const app: FastifyInstance = Fastify({
    loggerInstance: log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: 1_048_576,
    // A client that sends its request slowly (or never finishes it) is cut off; once the request
    // is in, a long answer (a create waits for the agent) or an event stream is not.
    http: { headersTimeout: config.API_HEADERS_TIMEOUT_MS, requestTimeout: Math.max(config.API_REQUEST_TIMEOUT_MS, config.API_HEADERS_TIMEOUT_MS), connectionsCheckingInterval: 1000 },
    requestTimeout: Math.max(config.API_REQUEST_TIMEOUT_MS, config.API_HEADERS_TIMEOUT_MS),
    // Dashboards poll all day: requests are counted by the latency histogram, not logged line
    // by line; errors are still logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    // Router-level errors (bad percent-encoding, an overlong parameter) answer in our shape too.
    frameworkErrors,
    clientErrorHandler,
    // X-Request-Id: the caller's (allow-listed) or a new one; see src/http/request-id.ts.
    requestIdHeader: false,
    genReqId: requestIdOf,
    // TRUST_PROXY: whose X-Forwarded-For names the client (req.ip); none by default.
    trustProxy: config.TRUST_PROXY,
  });
  registerRequestId(app);
  const known = new KnownRoutes();
  registerContract(app, known);
  registerOpenApi(app);
  registerJsonBody(app);
  registerErrorHandling(app, known);
  registerConditionalGet(app);
  // With many hosts the API also answers on the address it tells the others (NODE_ADDRESS).
  registerHostCheck(app, config.API_HOST, cluster ? [...config.API_ALLOWED_HOSTS, config.NODE_ADDRESS.toLowerCase()] : config.API_ALLOWED_HOSTS);
  spread?.register(app);
  registerAudit(app, audit, refused);
  registerIdempotency(app, redis, keys, config.IDEMPOTENCY_WINDOW_SECONDS, log.child({ component: 'idempotency' }));
  const streams = new EventStreams({ perToken: config.API_MAX_STREAMS_PER_TOKEN, maxBufferBytes: config.API_STREAM_MAX_BUFFER_BYTES });
  app.addHook('preClose', async () => streams.closeAll());
  const authorize = registerAuth(app, loadOrCreateSecret(config), revocations);
  const build = readBuildInfo(config.FLUME_LIB_DIR);
  void app.register(healthRoutes, { redis, driver, readiness, build, node: config.NODE_ID, warnings: readinessWarnings(config) });
  void app.register(agentRoutes, { lifecycle, reconciler, fleet, authorize, configs, operations, requireIfMatch: config.CONFIG_REQUIRE_IF_MATCH });
  void app.register(configRoutes, { config: configs, authorize, operations, requireIfMatch: config.CONFIG_REQUIRE_IF_MATCH });
  void app.register(operationRoutes, { operations, authorize });
  void app.register(fleetApplyRoutes, { fleet: new FleetApply(lifecycle, operations, { defaultHeap: config.AGENT_HEAP, maxHeap: config.AGENT_MAX_HEAP }), agents: lifecycle, authorize });
  void app.register(auditRoutes, { audit, refused, authorize });
  void app.register(logRoutes, { agents, store, authorize, streams });
  void app.register(loggerRoutes, { levels: new LogLevels(store), authorize });
  void app.register(quotaRoutes, { quotas, redis, keys, authorize });
  void app.register(adoptRoutes, { agents, store, authorize, clustered: config.ETCD_ENDPOINTS.length > 0, varDir: config.varDir, servicesDir: config.servicesDir });
  void app.register(quarantineRoutes, { quarantine, authorize });
  void app.register(traceRoutes, { traces: new TraceStore(redis, keys, config.GATEWAY_TRACE_SECONDS), authorize });
  void app.register(fleetRoutes, { agents: lifecycle, fleet, incidents, authorize });
  void app.register(tokenRoutes, { tokens, authorize });
  void app.register(controlTokenRoutes, { revocations, authorize });
  void app.register(sinkRoutes, { config, authorize });
  void app.register(nodeRoutes, { nodes, actions: spread?.actions ?? null, authorize });
  const journal = new EventJournal(redis, keys, config.API_EVENTS_REPLAY, log.child({ component: 'events' }));
  incidents.on('incident', (i: unknown) => journal.publish('incident', i));
  fleet.on('state', (c: unknown) => journal.publish('state', c));
  operations.on('operation', (o: unknown) => journal.publish('operation', o));
  void app.register(eventRoutes, { incidents, agents, journal, authorize, streams });
  void app.register(metricsRoutes, { agents, incidents, build, webhooks: outbox, readiness: { redis, driver, readiness } });
  void app.register(pageRoutes);

  let started = false;
  const start = async () => {
    const report = await reconciler.restore();
    readiness.reconciled = true;
    if (!started) {
      started = true;
      await fleet.start();
      reconciler.start();
      revocations.start();
      await incidents.start();
      healer.start();
      standIns.start();
      hints.start();
      await nodes.start(spread?.member);
    }
    return report;
  };
  app.addHook('onClose', async () => {
    await Promise.all([hints.stop(), healer.stop(), standIns.stop(), incidents.stop(), reconciler.stop(), fleet.stop(), revocations.stop(), refused.close(), nodes.stop()]);
  });
  return { app, agents, tokens, fleet, reconciler, incidents, start };
}
