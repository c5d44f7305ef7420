import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AgentService } from '../agents/agent-service.js';
import { AGENT_STATES, HEALTHS, type AgentStatus } from '../resources/agent-status.js';
import type { IncidentService } from '../incidents/incident-service.js';
import { z } from 'zod';
import { access } from '../resources/envelope.js';
import { INCIDENT_TYPES } from '../resources/incident.js';
import type { BuildInfo } from '../store/build-info.js';
import type { WebhookOutbox } from '../incidents/webhook-outbox.js';
import { readinessChecks, type ReadinessParts } from '../http/readiness.js';

const AGENT_LABELS = ['db', 'table', 'program'] as const;

/**
 * GET /metrics (open, like /healthz, for scrapers): prom-client's registry of this app. Agent
 * figures are read from the fleet model at scrape time; request latency is observed per route
 * pattern (per-table URLs do not multiply the series); Node's own process metrics (event-loop
 * lag, heap, GC, CPU) come with prom-client's defaults.
 */
async function metrics(
  app: FastifyInstance,
  opts: { agents: AgentService; incidents: IncidentService; build: BuildInfo; webhooks: WebhookOutbox | null; readiness: ReadinessParts },
): Promise<void> {
  const register = new Registry();
  collectDefaultMetrics({ register });
  new Gauge({
    name: 'flume_service_build_info',
    help: "What runs: this service's version, the Flume its agents run, Node (always 1).",
    labelNames: ['version', 'flume', 'node'] as const,
    registers: [register],
  }).set({ version: opts.build.version, flume: opts.build.flume, node: opts.build.node }, 1);

  new Gauge({
    name: 'flume_service_ready',
    help: 'Whether this API can serve (GET /readyz), per check: redis, supervisord, reconciled (the disk state restored); 1 ok, 0 not.',
    labelNames: ['check'] as const,
    registers: [register],
    async collect() {
      const { checks } = await readinessChecks(opts.readiness);
      for (const [check, v] of Object.entries(checks)) this.set({ check }, v === 'ok' ? 1 : 0);
    },
  });

  const requests = new Histogram({
    name: 'flume_service_http_request_duration_seconds',
    help: 'API request latency in seconds.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [register],
  });
  app.addHook('onResponse', async (req, reply) => {
    requests.observe({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status: reply.statusCode }, reply.elapsedTime / 1000);
  });

  // Agent gauges are filled from one listing per scrape (collect() runs for each metric).
  let listing: { at: number; agents: AgentStatus[] } = { at: 0, agents: [] };
  const agents = () => {
    if (Date.now() - listing.at > 100) listing = { at: Date.now(), agents: opts.agents.list() };
    return listing.agents;
  };
  new Gauge({
    name: 'flume_service_agents',
    help: 'Agents by supervisord state.',
    labelNames: ['state'] as const,
    registers: [register],
    collect() {
      // Every state, zeros included: a series that vanishes cannot be alerted on.
      const list = agents();
      for (const state of AGENT_STATES) this.set({ state }, list.filter((a) => a.state === state).length);
    },
  });
  new Gauge({
    name: 'flume_service_agents_health',
    help: 'Agents by health.',
    labelNames: ['health'] as const,
    registers: [register],
    collect() {
      const list = agents();
      for (const health of HEALTHS) this.set({ health }, list.filter((a) => a.health === health).length);
    },
  });
  new Counter({
    name: 'flume_service_incidents_total',
    help: 'Incidents raised since this API process started, by type.',
    labelNames: ['type'] as const,
    registers: [register],
    collect() {
      // Every type from 0: a counter that first appears at 1 is invisible to increase().
      this.reset();
      for (const type of INCIDENT_TYPES) this.inc({ type }, opts.incidents.counts.get(type) ?? 0);
    },
  });

  const perAgent: Array<[string, 'gauge' | 'counter', string, (a: AgentStatus) => number | null]> = [
    ['flume_agent_up', 'gauge', "1 if the agent's HTTP source answers.", (a) => (a.accepting ? 1 : 0)],
    ['flume_agent_desired_running', 'gauge', '1 if the agent should run (created or started, not stopped on purpose).', (a) => (a.desired === 'running' ? 1 : 0)],
    ['flume_agent_paused', 'gauge', '1 if an operator paused its intake.', (a) => (a.paused ? 1 : 0)],
    ['flume_agent_healthy', 'gauge', "1 if the agent's health is healthy.", (a) => (a.health === 'healthy' ? 1 : 0)],
    ['flume_agent_sink_connection_failures_total', 'counter', "The sink's failed connections (since the JVM started).", (a) => a.metrics?.sinkConnectionFailures ?? null],
    ['flume_agent_sink_write_failures_total', 'counter', 'Batches the sink failed to write (since the JVM started).', (a) => a.metrics?.sinkWriteFailures ?? null],
    ['flume_agent_channel_capacity', 'gauge', "The file channel's capacity in events.", (a) => a.metrics?.channelCapacity ?? null],
    ['flume_agent_last_event_timestamp_seconds', 'gauge', 'Unix time the source last accepted events.', (a) => (a.metrics?.lastEventAt ? Date.parse(a.metrics.lastEventAt) / 1000 : null)],
    ['flume_agent_resident_memory_bytes', 'gauge', "The JVM's resident memory.", (a) => a.resources?.rssBytes ?? null],
    ['flume_agent_channel_disk_usable_bytes', 'gauge', 'Usable bytes where the channel lives.', (a) => a.disk?.usableBytes ?? null],
    ['flume_agent_channel_disk_required_bytes', 'gauge', "The channel's minimumRequiredSpace: below it Flume refuses events.", (a) => a.disk?.minimumRequiredBytes ?? null],
    ['flume_agent_events_received_total', 'counter', 'Events the source received (since the JVM started).', (a) => a.metrics?.eventsReceived ?? null],
    ['flume_agent_events_accepted_total', 'counter', 'Events the source committed to the channel.', (a) => a.metrics?.eventsAccepted ?? null],
    ['flume_agent_events_drained_total', 'counter', 'Events the sink drained.', (a) => a.metrics?.eventsDrained ?? null],
    ['flume_agent_channel_size', 'gauge', 'Events waiting in the file channel.', (a) => a.metrics?.channelSize ?? null],
    ['flume_agent_channel_fill_ratio', 'gauge', 'Channel fill, 0-1.', (a) => (a.metrics ? a.metrics.channelFillPercent / 100 : null)],
    ['flume_agent_last_event_age_seconds', 'gauge', 'Seconds since the source last accepted events.', (a) => a.metrics?.lastEventAgeSeconds ?? null],
    ['flume_agent_oldest_event_age_seconds', 'gauge', 'Seconds the oldest event still in the channel has waited for the sink (0: none waits).', (a) => a.metrics?.oldestEventAgeSeconds ?? null],
    ['flume_agent_channel_full_in_seconds', 'gauge', "At the last minute's rates, seconds until the channel is full (absent: not filling).", (a) => a.metrics?.channelFullInSeconds ?? null],
    ['flume_agent_quarantined_events', 'gauge', 'Events the sink can never deliver, kept aside in the quarantine (GET .../quarantine).', (a) => a.quarantined],
  ];
  new Gauge({
    name: 'flume_agent_health',
    help: "The agent's health as a state set: 1 for its health, 0 for the others.",
    labelNames: [...AGENT_LABELS, 'health'] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const a of agents()) for (const health of HEALTHS) this.set({ db: a.db, table: a.table, program: a.program, health }, a.health === health ? 1 : 0);
    },
  });
  new Counter({
    name: 'flume_service_webhook_deliveries_total',
    help: 'Webhook deliveries that ended, by outcome (delivered, refused, failed), since this process started.',
    labelNames: ['outcome'] as const,
    registers: [register],
    collect() {
      this.reset();
      for (const outcome of ['delivered', 'refused', 'failed'] as const) this.inc({ outcome }, opts.webhooks?.ended[outcome] ?? 0);
    },
  });
  new Gauge({
    name: 'flume_service_webhook_pending',
    help: 'Webhook deliveries waiting for their next attempt (kept in var/webhooks/).',
    registers: [register],
    collect() {
      this.set(opts.webhooks?.pending ?? 0);
    },
  });
  for (const [name, type, help, value] of perAgent) {
    // Flume's counters restart with its JVM: each scrape sets them as Flume reports them.
    const Metric = type === 'counter' ? Counter : Gauge;
    new Metric({
      name,
      help,
      labelNames: AGENT_LABELS,
      registers: [register],
      collect(this: Gauge<(typeof AGENT_LABELS)[number]> | Counter<(typeof AGENT_LABELS)[number]>) {
        this.reset();
        for (const a of agents()) {
          const v = value(a);
          if (v === null) continue;
          const labels = { db: a.db, table: a.table, program: a.program };
          if (this instanceof Gauge) this.set(labels, v);
          else this.inc(labels, v);
        }
      },
    });
  }

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        summary: 'Prometheus metrics (text format)',
        ...access('none'),
        produces: ['text/plain'],
        response: { 200: z.string().describe('the Prometheus text exposition format, version 0.0.4') },
      },
    },
    async (_req, reply) => reply.type(register.contentType).send(await register.metrics()),
  );
}

/** Not encapsulated: its latency hook sees every route of the app. */
export const metricsRoutes = fp(metrics, { name: 'metrics' });
