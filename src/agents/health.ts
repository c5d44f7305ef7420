import { Agent, request } from 'node:http';

// Connections to agents' metrics servers are reused: dashboards poll them all day.
const keepAlive = new Agent({ keepAlive: true, maxSockets: 4, timeout: 30_000 });
import type { ProcessInfo } from '../supervisor/driver.js';
import type { SourceProbe } from './probe.js';

/** Flume's own counters, from its metrics server (-Dflume.monitoring.type=http). */
export interface FlumeCounters {
  eventsReceived: number;
  eventsAccepted: number;
  eventsDrained: number;
  channelSize: number;
  channelCapacity: number;
  channelFillPercent: number;
  sinkConnectionFailures: number;
}

/** GET /metrics on the agent's metrics port; null if it does not answer in time. */
export function readFlumeMetrics(port: number, timeoutMs = 500): Promise<FlumeCounters | null> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', timeout: timeoutMs, agent: keepAlive }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          const m = JSON.parse(text) as Record<string, Record<string, string>>;
          const src = m['SOURCE.r1'] ?? {};
          const ch = m['CHANNEL.c1'] ?? {};
          const sink = m['SINK.k1'] ?? {};
          const n = (v: string | undefined) => Number(v ?? 0) || 0;
          resolve({
            eventsReceived: n(src.EventReceivedCount),
            eventsAccepted: n(src.EventAcceptedCount),
            eventsDrained: n(sink.EventDrainSuccessCount),
            channelSize: n(ch.ChannelSize),
            channelCapacity: n(ch.ChannelCapacity),
            channelFillPercent: n(ch.ChannelFillPercentage),
            sinkConnectionFailures: n(sink.ConnectionFailedCount),
          });
        } catch {
          resolve(null);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
    req.end();
  });
}

export type Health = 'healthy' | 'starting' | 'degraded' | 'down' | 'stopped';

export interface HealthInput {
  desired: 'running' | 'stopped';
  info: ProcessInfo | null;
  probe: SourceProbe | null;
  port: number;
  counters: FlumeCounters | null;
  /** Seconds since the sink last drained while events waited in the channel (null: not stalled). */
  sinkStalledSeconds: number | null;
}

/** Seconds a RUNNING JVM may take before a closed source port counts as down. */
export const STARTUP_GRACE_SECONDS = 30;
export const SINK_STALL_SECONDS = 60;
export const FILL_DEGRADED_PERCENT = 80;

/**
 * One word and a reason, from supervisord's state, the source probe and Flume's counters.
 * RUNNING alone is never enough: a source that does not answer is `down`.
 */
export function assessHealth(x: HealthInput): { health: Health; reason: string } {
  const state = x.info?.state ?? 'NOT_LOADED';
  const running = state === 'RUNNING' || state === 'STARTING';
  if (x.desired === 'stopped') {
    return running
      ? { health: 'degraded', reason: `asked to stop, but supervisord says ${state}` }
      : { health: 'stopped', reason: 'stopped by an operator' };
  }
  if (!running) {
    if (state === 'BACKOFF') return { health: 'down', reason: 'the agent exits during start-up and supervisord keeps retrying (BACKOFF)' };
    return { health: 'down', reason: `should run, but supervisord says ${state}${x.info?.description ? ` (${x.info.description})` : ''}` };
  }
  const uptime = x.info && x.info.start ? x.info.now - x.info.start : 0;
  if (x.probe === 'foreign') {
    // Flume retries a taken port forever while its JVM stays up: no grace, this is down.
    return { health: 'down', reason: `supervisord says ${state}, but port ${x.port} is held by another process: the agent could not bind its source` };
  }
  if (x.probe !== 'flume') {
    if (state === 'STARTING' || uptime < STARTUP_GRACE_SECONDS) {
      return { health: 'starting', reason: `the JVM is up ${uptime} s; its source on port ${x.port} is not answering yet` };
    }
    return { health: 'down', reason: `supervisord says ${state}, but the HTTP source on port ${x.port} does not accept connections` };
  }
  if (state === 'STARTING') return { health: 'starting', reason: 'the source accepts events; supervisord has not passed startsecs yet' };
  if (!x.counters) return { health: 'degraded', reason: "the source accepts events, but Flume's metrics do not answer" };
  if (x.counters.channelFillPercent >= FILL_DEGRADED_PERCENT) {
    return { health: 'degraded', reason: `the channel is ${x.counters.channelFillPercent.toFixed(1)}% full` };
  }
  if (x.sinkStalledSeconds !== null && x.sinkStalledSeconds >= SINK_STALL_SECONDS) {
    return { health: 'degraded', reason: `the sink has drained nothing for ${x.sinkStalledSeconds} s while ${x.counters.channelSize} events wait` };
  }
  return { health: 'healthy', reason: 'running, accepting events, sink draining' };
}
