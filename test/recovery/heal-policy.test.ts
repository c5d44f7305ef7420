import { describe, expect, it } from 'vitest';
import { nextGrace, problemOf, trackSink, type SinkTrack } from '../../src/recovery/heal-policy.js';
import type { AgentStatus } from '../../src/resources/agent-status.js';

const metrics = (m: Partial<NonNullable<AgentStatus['metrics']>> = {}): NonNullable<AgentStatus['metrics']> => ({
  eventsReceived: 10, eventsAccepted: 10, eventsDrained: 10, channelSize: 0, channelCapacity: 1000, channelFillPercent: 0,
  sinkConnectionFailures: 0, sinkWriteFailures: 0, channelOpen: true, lastEventAt: null, lastEventAgeSeconds: null, oldestEventAgeSeconds: null, channelFullInSeconds: null, ...m,
});
const status = (s: Partial<AgentStatus> = {}): AgentStatus => ({
  db: 'shop', table: 'orders', program: 'flume-shop-orders', node: 'h1', sink: 'kafka', state: 'RUNNING', desired: 'running', pid: 4711,
  uptimeSeconds: 120, startedAt: '2026-12-05T00:00:00.000Z', accepting: true, health: 'healthy', healthReason: 'fine', metrics: metrics(),
  revision: { desired: 1, running: 1 }, rates: null, resources: null, disk: null, paused: false, drained: true, description: 'pid 4711',
  observedAt: '2026-12-05T00:02:00.000Z', queue: null, standIn: null, quarantined: 0, ...s,
});
const settings = { sinkFailingSeconds: 60 };

describe('heal policy', () => {
  it('calls a running agent whose source does not accept unresponsive, unless it is starting, stopped or queued', () => {
    const down = status({ accepting: false, health: 'down', healthReason: 'the JVM hangs' });
    expect(problemOf(down, null, 0, settings)).toEqual({ problem: 'unresponsive', reason: 'the JVM hangs' });
    expect(problemOf({ ...down, health: 'starting' }, null, 0, settings)).toBeNull();
    expect(problemOf({ ...down, desired: 'stopped' }, null, 0, settings)).toBeNull();
    expect(problemOf({ ...down, state: 'BACKOFF' }, null, 0, settings)).toBeNull(); // supervisord's own retries; incidents tell those
    expect(problemOf({ ...down, queue: { position: 1, waiting: 1, concurrency: 2 } }, null, 0, settings)).toBeNull();
    expect(problemOf(status(), null, 0, settings)).toBeNull();
  });

  it('follows a spell of sink failures: from the first failed write with events waiting until anything drains', () => {
    let t: SinkTrack | null = trackSink(null, status({ metrics: metrics({ channelSize: 5 }) }), 0);
    expect(t?.failingSince).toBeNull();
    t = trackSink(t, status({ metrics: metrics({ channelSize: 6, sinkWriteFailures: 1 }) }), 1000);
    expect(t?.failingSince).toBe(1000);
    t = trackSink(t, status({ metrics: metrics({ channelSize: 9, sinkWriteFailures: 4 }) }), 50_000);
    expect(t?.failingSince).toBe(1000);
    expect(problemOf(status({ metrics: metrics({ channelSize: 9, sinkWriteFailures: 4 }) }), t, 50_000, settings)).toBeNull();
    const failing = problemOf(status({ metrics: metrics({ channelSize: 9, sinkWriteFailures: 4 }) }), t, 61_000, settings);
    expect(failing).toMatchObject({ problem: 'sink_failing', reason: expect.stringContaining('failed every write for 60 s') });
    expect(problemOf(status(), t, 61_000, { sinkFailingSeconds: 0 })).toBeNull(); // off
    // One drained event ends the spell; so does another process, or an empty channel.
    expect(trackSink(t, status({ metrics: metrics({ channelSize: 9, sinkWriteFailures: 5, eventsDrained: 11 }) }), 62_000)?.failingSince).toBeNull();
    expect(trackSink(t, status({ pid: 4712, metrics: metrics({ channelSize: 9, sinkWriteFailures: 5 }) }), 62_000)?.failingSince).toBeNull();
    expect(trackSink(t, status({ metrics: metrics({ channelSize: 0, sinkWriteFailures: 5 }) }), 62_000)?.failingSince).toBeNull();
    expect(trackSink(t, status({ metrics: null, pid: null }), 62_000)).toBeNull();
  });

  it('waits twice as long for every restart already made in the window, and gives up after the last', () => {
    expect([0, 1, 2].map((n) => nextGrace(n, 30, 3))).toEqual([30, 60, 120]);
    expect(nextGrace(3, 30, 3)).toBeNull();
    expect(nextGrace(0, 30, 0)).toBeNull();
  });
});
