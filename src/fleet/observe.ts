import type { SourceProbe } from '../flume/client.js';
import type { FlumeCounters } from '../resources/agent-status.js';
import type { AgentStatus, Desired, StandInStatus } from '../resources/agent-status.js';
import type { AgentMeta } from '../store/agent-store.js';
import { revisionPair } from '../store/revisions.js';
import type { ProcessInfo } from '../supervisor/driver.js';
import { assessHealth } from './health.js';
import type { RateWindow } from './samples.js';

/**
 * One agent's status from what was read of it (disk, supervisord, its source and counters,
 * /proc, the disk's free space) and what was known of it before. Pure: no I/O, `now` given.
 */

/** When events last arrived and drained, and the sink last failed: ages come from it. */
export interface Progress {
  accepted: number;
  acceptedAt: number | null;
  drained: number;
  drainedAt: number;
  failures: number;
  failedAt: number | null;
}

/** Flume's counters out of a status's metrics (without the ages the model adds). */
export function countersOf(m: NonNullable<AgentStatus['metrics']>): FlumeCounters {
  const { lastEventAt: _a, lastEventAgeSeconds: _b, oldestEventAgeSeconds: _c, channelFullInSeconds: _d, ...c } = m;
  return c;
}

/** Nothing to watch closely: the channel is open and empty and no counter moved since the read before. */
export function isQuiet(c: FlumeCounters, prev: FlumeCounters | null): boolean {
  return (
    prev !== null && c.channelOpen && c.channelSize === 0 && c.eventsReceived === prev.eventsReceived && c.eventsAccepted === prev.eventsAccepted &&
    c.eventsDrained === prev.eventsDrained && c.sinkWriteFailures === prev.sinkWriteFailures && c.sinkConnectionFailures === prev.sinkConnectionFailures
  );
}

/** Turns counters into ages: when events last arrived, and when the sink last drained. */
export function track(prev: Progress | null, c: FlumeCounters | null, now: number): Progress | null {
  if (!c) return prev;
  // Counters restart at 0 with the JVM: a drop is a new process, not a negative rate.
  const fresh = !prev || c.eventsAccepted < prev.accepted || c.eventsDrained < prev.drained || c.sinkWriteFailures < prev.failures;
  const p: Progress = fresh
    ? { accepted: c.eventsAccepted, acceptedAt: c.eventsAccepted > 0 ? now : null, drained: c.eventsDrained, drainedAt: now, failures: c.sinkWriteFailures, failedAt: null }
    : { ...prev };
  if (c.eventsAccepted > p.accepted) Object.assign(p, { accepted: c.eventsAccepted, acceptedAt: now });
  if (c.eventsDrained > p.drained || c.channelSize === 0) Object.assign(p, { drained: c.eventsDrained, drainedAt: now });
  if (c.sinkWriteFailures > p.failures) Object.assign(p, { failures: c.sinkWriteFailures, failedAt: now });
  return p;
}

const mib = (b: number) => Math.round(b / 1_048_576).toLocaleString('en-US');

export interface ObserveInput {
  /** This host (NODE_ID). */
  node: string;
  meta: AgentMeta;
  desired: Desired;
  info: ProcessInfo | null;
  /** supervisord says it runs (STARTING or RUNNING). */
  running: boolean;
  probe: SourceProbe | null;
  /** Counters read now, or those kept from a quiet agent's last read (`kept`). */
  counters: FlumeCounters | null;
  kept: boolean;
  usage: { rssBytes: number; cpuSeconds: number } | null;
  usable: number | null;
  /** What was known before: the last status, progress, rates, CPU sample, idle start. */
  known: { status: AgentStatus; progress: Progress | null; cpu: { t: number; cpuSeconds: number; pid: number } | null; idleSince: number | null } | undefined;
  /** The rate window to add to (the known one, or a new one). */
  rates: RateWindow;
  stamp: number;
  now: number;
  /** This process's source answered before (a later silence is not start-up). */
  answeredBefore?: boolean;
  /** Free disk below minimumRequiredSpace plus this turns a healthy agent degraded. */
  spaceMarginBytes: number;
  /** Its restart's stand-in, while there is one. */
  standIn?: StandInStatus | null;
  /** Events in its quarantine. */
  quarantined?: number;
}

export interface Observation {
  status: AgentStatus;
  progress: Progress | null;
  /** The agent is past its idle limit. */
  idle: boolean;
}

export function observeStatus(x: ObserveInput): Observation {
  const { meta, desired, info, running, probe, counters, kept, usage, usable, known, now } = x;
  const progress = kept ? (known?.progress ?? null) : track(known?.progress ?? null, counters, now);
  const sinkStalledSeconds = counters && counters.channelSize > 0 && progress ? Math.round((now - progress.drainedAt) / 1000) : null;
  const failing = progress?.failedAt != null && progress.failedAt >= progress.drainedAt;
  const sinkFailingSeconds = failing ? Math.round((now - progress.failedAt!) / 1000) : null;
  const rate = kept ? (known?.status.rates ?? null) : counters ? x.rates.add(now, counters.eventsAccepted, counters.eventsDrained) : null;
  const prevCpu = known?.cpu;
  const cpuPercent =
    usage && prevCpu && prevCpu.pid === info?.pid && now > prevCpu.t ? Math.round(((usage.cpuSeconds - prevCpu.cpuSeconds) / ((now - prevCpu.t) / 1000)) * 1000) / 10 : null;
  const required = meta.spec.channel.minimumRequiredSpace;
  // Idle: accepting and should receive, but nothing arrived for longer than the table's limit.
  const idleLimitMs = meta.spec.idleMinutes ? meta.spec.idleMinutes * 60_000 : null;
  const quietSince = progress?.acceptedAt ?? (running && info?.start ? info.start * 1000 : null);
  const idle = idleLimitMs !== null && !meta.paused && desired === 'running' && probe === 'flume' && quietSince !== null && now - quietSince > idleLimitMs;
  const assessed = assessHealth({ desired, info, probe, port: meta.port, counters, sinkStalledSeconds, sink: meta.spec.sink, sinkFailingSeconds, answeredBefore: x.answeredBefore });
  let { health } = assessed;
  if (health === 'healthy' && usable !== null && usable < required + x.spaceMarginBytes) {
    health = 'degraded';
    assessed.reason = `the channel's disk has ${mib(usable)} MiB usable; Flume refuses every event below ${mib(required)} MiB (minimumRequiredSpace): free space before it does`;
  } else if (health === 'healthy' && idle) {
    health = 'degraded';
    assessed.reason = `no events for ${Math.round((now - quietSince!) / 60_000)} min (idle limit ${meta.spec.idleMinutes} min)`;
  }
  const drainText = counters ? (counters.channelSize ? `${counters.channelSize} events left to drain` : 'channel drained') : assessed.reason;
  const reason = meta.paused ? `intake paused by ${meta.paused.by} since ${meta.paused.since}; ${health === 'healthy' ? drainText : assessed.reason}` : assessed.reason;
  const startedAtMs = running && info?.start ? info.start * 1000 : null;
  const status: AgentStatus = {
    db: meta.db,
    table: meta.table,
    program: meta.program,
    node: x.node,
    sink: meta.spec.sink,
    state: info?.state ?? 'NOT_LOADED',
    desired,
    pid: running && info?.pid ? info.pid : null,
    uptimeSeconds: null,
    startedAt: startedAtMs === null ? null : new Date(startedAtMs).toISOString(),
    accepting: probe === 'flume',
    health,
    healthReason: reason,
    metrics: counters ? { ...counters, lastEventAt: progress?.acceptedAt ? new Date(progress.acceptedAt).toISOString() : null, lastEventAgeSeconds: null, oldestEventAgeSeconds: null, channelFullInSeconds: null } : null,
    revision: revisionPair(meta, running),
    rates: rate,
    resources: usage ? { rssBytes: usage.rssBytes, cpuPercent } : null,
    disk: usable === null ? null : { usableBytes: usable, minimumRequiredBytes: required },
    paused: Boolean(meta.paused),
    drained: counters ? counters.channelSize === 0 : null,
    description: info?.description ?? 'supervisord has not loaded this program',
    observedAt: new Date(x.stamp).toISOString(),
    queue: null,
    standIn: x.standIn ?? null,
    quarantined: x.quarantined ?? 0,
  };
  return { status, progress, idle };
}
