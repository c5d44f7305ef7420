import type { FastifyInstance } from 'fastify';
import type { AgentService } from '../agents/agent-service.js';
import type { LatencyHistogram } from '../http/latency.js';
import type { IncidentService } from '../incidents/incident-service.js';

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** GET /metrics: Prometheus text format. Open, like /healthz, for scrapers. */
export async function metricsRoutes(
  app: FastifyInstance,
  opts: { agents: AgentService; incidents: IncidentService; latency: LatencyHistogram },
): Promise<void> {
  app.get('/metrics', async (_req, reply) => {
    const agents = await opts.agents.list();
    const lines: string[] = [];
    const gauge = (name: string, help: string, type = 'gauge') => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

    gauge('flume_service_agents', 'Agents by supervisord state.');
    const byState = new Map<string, number>();
    for (const a of agents) byState.set(a.state, (byState.get(a.state) ?? 0) + 1);
    for (const [state, n] of byState) lines.push(`flume_service_agents{state="${state}"} ${n}`);

    gauge('flume_service_agents_health', 'Agents by health.');
    for (const health of ['healthy', 'starting', 'degraded', 'down', 'stopped']) {
      lines.push(`flume_service_agents_health{health="${health}"} ${agents.filter((a) => a.health === health).length}`);
    }

    gauge('flume_service_incidents_total', 'Incidents raised since this API process started, by type.', 'counter');
    for (const [type, n] of opts.incidents.counts) lines.push(`flume_service_incidents_total{type="${type}"} ${n}`);

    const per: Array<[string, string, string, (a: (typeof agents)[number]) => number | null]> = [
      ['flume_agent_up', 'gauge', '1 if the agent\'s HTTP source answers.', (a) => (a.accepting ? 1 : 0)],
      ['flume_agent_healthy', 'gauge', '1 if the agent\'s health is healthy.', (a) => (a.health === 'healthy' ? 1 : 0)],
      ['flume_agent_events_received_total', 'counter', 'Events the source received (since the JVM started).', (a) => a.metrics?.eventsReceived ?? null],
      ['flume_agent_events_accepted_total', 'counter', 'Events the source committed to the channel.', (a) => a.metrics?.eventsAccepted ?? null],
      ['flume_agent_events_drained_total', 'counter', 'Events the sink drained.', (a) => a.metrics?.eventsDrained ?? null],
      ['flume_agent_channel_size', 'gauge', 'Events waiting in the file channel.', (a) => a.metrics?.channelSize ?? null],
      ['flume_agent_channel_fill_ratio', 'gauge', 'Channel fill, 0-1.', (a) => (a.metrics ? a.metrics.channelFillPercent / 100 : null)],
      ['flume_agent_last_event_age_seconds', 'gauge', 'Seconds since the source last accepted events.', (a) => a.metrics?.lastEventAgeSeconds ?? null],
    ];
    for (const [name, type, help, value] of per) {
      gauge(name, help, type);
      for (const a of agents) {
        const v = value(a);
        if (v !== null) lines.push(`${name}{db="${esc(a.db)}",table="${esc(a.table)}",program="${esc(a.program)}"} ${v}`);
      }
    }
    lines.push(...opts.latency.render('flume_service_http_request_duration_seconds'));
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(`${lines.join('\n')}\n`);
  });
}
