import type { AgentStatus } from '../resources/agent-status.js';

/**
 * When a running agent needs the service's hand, and how long it waits before lending it.
 * Pure: statuses and times in, decisions out (src/recovery/healer.ts acts on them).
 */

/** What is wrong with an agent that supervisord says runs. */
export type Problem = 'unresponsive' | 'sink_failing';

/** What the last statuses said of the sink: since when it failed every write (null: it does not). */
export interface SinkTrack {
  pid: number | null;
  drained: number;
  failures: number;
  failingSince: number | null;
}

export interface HealSettings {
  /** Seconds the sink may fail every write (nothing drained, events waiting) before it counts; 0: never. */
  sinkFailingSeconds: number;
}

/**
 * Follows the sink from one status to the next: a spell of failures begins at the first failed
 * write with events waiting and nothing drained since, and ends when anything drains, the
 * channel empties, or another process runs.
 */
export function trackSink(prev: SinkTrack | null, s: AgentStatus, now: number): SinkTrack | null {
  const m = s.metrics;
  if (!m || s.pid === null) return null;
  if (!prev || prev.pid !== s.pid || m.eventsDrained > prev.drained || m.channelSize === 0 || m.sinkWriteFailures < prev.failures) {
    return { pid: s.pid, drained: m.eventsDrained, failures: m.sinkWriteFailures, failingSince: null };
  }
  const failingSince = prev.failingSince ?? (m.sinkWriteFailures > prev.failures ? now : null);
  return { ...prev, failures: m.sinkWriteFailures, failingSince };
}

/**
 * The problem of an agent that should run and that supervisord says RUNNING, or null:
 * - unresponsive: past starting (the start-up grace, or its source answered once), its source
 *   does not accept events (closed, held by another process, or silent: a JVM that hangs);
 * - sink_failing: its sink failed every write for `sinkFailingSeconds` while events waited.
 * A stopped, starting, queued or paused-by-supervisord agent is not the healer's.
 */
export function problemOf(s: AgentStatus, track: SinkTrack | null, now: number, settings: HealSettings): { problem: Problem; reason: string } | null {
  if (s.desired !== 'running' || s.state !== 'RUNNING' || s.queue !== null) return null;
  if (!s.accepting) {
    // Starting: within the start-up grace, its source never answered yet (fleet/health.ts).
    if (s.health === 'starting') return null;
    return { problem: 'unresponsive', reason: s.healthReason };
  }
  if (settings.sinkFailingSeconds > 0 && track?.failingSince != null) {
    const seconds = Math.round((now - track.failingSince) / 1000);
    if (seconds >= settings.sinkFailingSeconds) {
      return {
        problem: 'sink_failing',
        reason: `the ${s.sink} sink has failed every write for ${seconds} s (${s.metrics?.sinkWriteFailures ?? '?'} failed writes) while ${s.metrics?.channelSize ?? '?'} events wait`,
      };
    }
  }
  return null;
}

/**
 * Seconds to wait before the next restart: the grace, doubled for every restart the service
 * already made within the window; null once it made `maxRestarts` (it gives up until the agent
 * is healthy again).
 */
export function nextGrace(restartsInWindow: number, graceSeconds: number, maxRestarts: number): number | null {
  if (restartsInWindow >= maxRestarts) return null;
  return graceSeconds * 2 ** restartsInWindow;
}
