import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AgentService } from '../agents/agent-service.js';
import { HEALTHS, type AgentStatus } from '../resources/agent-status.js';
import type { IncidentService } from '../incidents/incident-service.js';
import { access } from '../resources/envelope.js';

const AGENT_LABELS = ['db', 'table', 'program'] as const;

/**
 * GET /metrics (open, like /healthz, for scrapers): prom-client's registry of this app. Agent
 * figures are read from the fleet model at scrape time; request latency is observed per route
 * pattern (per-table URLs do not multiply the series); Node's own process metrics (event-loop
 * lag, heap, GC, CPU) come with prom-client's defaults.
 */
async function metrics(app: FastifyInstance, opts: { agents: AgentService; incidents: IncidentService }): Promise<void> {
  const register = new Registry();
  collectDefaultMetrics({ register });

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
      this.reset();
      for (const a of agents()) this.inc({ state: a.state });
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
      this.reset();
      for (const [type, n] of opts.incidents.counts) this.inc({ type }, n);
    },
  });

  const perAgent: Array<[string, 'gauge' | 'counter', string, (a: AgentStatus) => number | null]> = [
    ['flume_agent_up', 'gauge', "1 if the agent's HTTP source answers.", (a) => (a.accepting ? 1 : 0)],
    ['flume_agent_healthy', 'gauge', "1 if the agent's health is healthy.", (a) => (a.health === 'healthy' ? 1 : 0)],
    ['flume_agent_events_received_total', 'counter', 'Events the source received (since the JVM started).', (a) => a.metrics?.eventsReceived ?? null],
    ['flume_agent_events_accepted_total', 'counter', 'Events the source committed to the channel.', (a) => a.metrics?.eventsAccepted ?? null],
    ['flume_agent_events_drained_total', 'counter', 'Events the sink drained.', (a) => a.metrics?.eventsDrained ?? null],
    ['flume_agent_channel_size', 'gauge', 'Events waiting in the file channel.', (a) => a.metrics?.channelSize ?? null],
    ['flume_agent_channel_fill_ratio', 'gauge', 'Channel fill, 0-1.', (a) => (a.metrics ? a.metrics.channelFillPercent / 100 : null)],
    ['flume_agent_last_event_age_seconds', 'gauge', 'Seconds since the source last accepted events.', (a) => a.metrics?.lastEventAgeSeconds ?? null],
  ];
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
    { schema: { tags: ['health'], summary: 'Prometheus metrics (text format)', ...access('none') } },
    async (_req, reply) => reply.type(register.contentType).send(await register.metrics()),
  );
}

/** Not encapsulated: its latency hook sees every route of the app. */
export const metricsRoutes = fp(metrics, { name: 'metrics' });
