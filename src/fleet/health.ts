import type { SourceProbe } from '../flume/client.js';
import type { Desired, FlumeCounters, Health } from '../resources/agent-status.js';
import type { ProcessInfo } from '../supervisor/driver.js';

export type { Health };

export interface HealthInput {
  desired: Desired;
  info: ProcessInfo | null;
  probe: SourceProbe | null;
  port: number;
  counters: FlumeCounters | null;
  /** Seconds since the sink last drained while events waited in the channel (null: not stalled). */
  sinkStalledSeconds: number | null;
  /** The sink's type, named in reasons. */
  sink: string;
  /** Seconds since the sink last failed a write, if it failed since it last drained (null: not failing). */
  sinkFailingSeconds: number | null;
  /** This process's source answered before: it is past starting, whatever its uptime. */
  answeredBefore?: boolean;
}

/** Seconds a RUNNING JVM may take before a closed source port counts as down (unless its source answered already). */
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
  const started = uptime >= STARTUP_GRACE_SECONDS || x.answeredBefore === true;
  if (x.probe === 'silent' && started) {
    // Senders get no answer either: as good as down.
    return { health: 'down', reason: `supervisord says ${state}, but the HTTP source on port ${x.port} accepts connections and does not answer: the JVM hangs` };
  }
  if (x.probe !== 'flume') {
    if (state === 'STARTING' || !started) {
      return { health: 'starting', reason: `the JVM is up ${uptime} s; its source on port ${x.port} is not answering yet` };
    }
    return { health: 'down', reason: `supervisord says ${state}, but the HTTP source on port ${x.port} does not accept connections` };
  }
  if (state === 'STARTING') return { health: 'starting', reason: 'the source accepts events; supervisord has not passed startsecs yet' };
  if (!x.counters) return { health: 'degraded', reason: "the source accepts events, but Flume's metrics do not answer" };
  if (!x.counters.channelOpen) {
    return { health: 'down', reason: "the source answers, but Flume could not open the file channel: every event is refused (see the agent's log)" };
  }
  if (x.counters.channelFillPercent >= FILL_DEGRADED_PERCENT) {
    return { health: 'degraded', reason: `the channel is ${x.counters.channelFillPercent.toFixed(1)}% full` };
  }
  if (x.sinkFailingSeconds !== null && x.counters.channelSize > 0) {
    return {
      health: 'degraded',
      reason: `the ${x.sink} sink fails to deliver (${x.counters.sinkWriteFailures} failed writes, the last ${x.sinkFailingSeconds} s ago): ${x.counters.channelSize} events wait in the channel`,
    };
  }
  if (x.sinkStalledSeconds !== null && x.sinkStalledSeconds >= SINK_STALL_SECONDS) {
    return { health: 'degraded', reason: `the ${x.sink} sink has drained nothing for ${x.sinkStalledSeconds} s while ${x.counters.channelSize} events wait` };
  }
  return { health: 'healthy', reason: 'running, accepting events, sink draining' };
}
