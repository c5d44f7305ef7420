import { describe, expect, it } from 'vitest';
import { isQuiet, observeStatus, track, type ObserveInput } from '../../src/fleet/observe.js';
import { RateWindow } from '../../src/fleet/samples.js';
import type { FlumeCounters } from '../../src/resources/agent-status.js';
import type { AgentMeta } from '../../src/store/agent-store.js';

const counters = (c: Partial<FlumeCounters> = {}): FlumeCounters => ({
  eventsReceived: 0, eventsAccepted: 0, eventsDrained: 0, channelSize: 0, channelCapacity: 1000, channelFillPercent: 0,
  sinkConnectionFailures: 0, sinkWriteFailures: 0, channelOpen: true, ...c,
});
const meta: AgentMeta = {
  db: 'shop', table: 'orders', program: 'flume-shop-orders', port: 20001, metricsPort: 20002, createdAt: '2026-01-01T00:00:00Z',
  spec: { sink: 'file_roll', options: {}, channel: { capacity: 1000, transactionCapacity: 100, minimumRequiredSpace: 1_000_000 } },
};
const T0 = 1_800_000_000_000;
const input = (x: Partial<ObserveInput> = {}): ObserveInput => ({
  node: 'h1', meta, desired: 'running', running: true, probe: 'flume', counters: counters(), kept: false,
  info: { name: meta.program, state: 'RUNNING', pid: 4242, start: T0 / 1000 - 60, now: T0 / 1000, description: 'pid 4242', exitStatus: 0, spawnErr: '' },
  usage: { rssBytes: 80 * 1024 ** 2, cpuSeconds: 3 }, usable: 10 * 1024 ** 3, known: undefined, rates: new RateWindow(),
  stamp: T0, now: T0, spaceMarginBytes: 256 * 1024 ** 2, ...x,
});

describe('observing one agent (pure)', () => {
  it('reads a running, accepting agent with an empty channel as healthy, drained, on its revision', () => {
    const { status, idle } = observeStatus(input());
    expect(status).toMatchObject({ state: 'RUNNING', health: 'healthy', accepting: true, drained: true, pid: 4242, revision: { desired: 1, running: 1 } });
    expect(status.startedAt).toBe(new Date(T0 - 60_000).toISOString());
    expect(idle).toBe(false);
  });

  it('turns degraded when the channel disk nears minimumRequiredSpace, and says how much is left', () => {
    const { status } = observeStatus(input({ usable: 1_000_000 + 1024 }));
    expect(status.health).toBe('degraded');
    expect(status.healthReason).toMatch(/MiB usable; Flume refuses every event below 1 MiB/);
  });

  it('turns degraded past the idle limit, and only while it should receive', () => {
    const idleMeta = { ...meta, spec: { ...meta.spec, idleMinutes: 0.5 } };
    const quiet = observeStatus(input({ meta: idleMeta }));
    expect(quiet).toMatchObject({ idle: true, status: { health: 'degraded' } });
    expect(observeStatus(input({ meta: { ...idleMeta, paused: { since: 'x', by: 'ops' } } })).idle).toBe(false);
    expect(observeStatus(input({ meta: idleMeta, desired: 'stopped' })).idle).toBe(false);
  });

  it('says when intake is paused, and what is left to drain', () => {
    const { status } = observeStatus(input({ meta: { ...meta, paused: { since: '2026-01-01T00:00:00Z', by: 'ops' } }, counters: counters({ channelSize: 7 }) }));
    expect(status.paused).toBe(true);
    expect(status.healthReason).toBe('intake paused by ops since 2026-01-01T00:00:00Z; 7 events left to drain');
  });

  it('gives CPU as a share of one core between two observations of the same process', () => {
    const first = observeStatus(input());
    const known = { status: first.status, progress: first.progress, cpu: { t: T0, cpuSeconds: 3, pid: 4242 }, idleSince: null };
    const next = observeStatus(input({ known, now: T0 + 2000, stamp: T0 + 2000, usage: { rssBytes: 1, cpuSeconds: 3.5 } }));
    expect(next.status.resources).toEqual({ rssBytes: 1, cpuPercent: 25 });
    const otherPid = observeStatus(input({ known: { ...known, cpu: { ...known.cpu, pid: 1 } }, now: T0 + 2000, usage: { rssBytes: 1, cpuSeconds: 3.5 } }));
    expect(otherPid.status.resources?.cpuPercent).toBeNull();
  });
});

describe('progress and quiet agents', () => {
  it('stamps when events last arrived and drained, and starts over when the JVM did', () => {
    const p1 = track(null, counters({ eventsAccepted: 5, eventsDrained: 5 }), 1000)!;
    expect(p1).toMatchObject({ accepted: 5, acceptedAt: 1000, drainedAt: 1000 });
    const p2 = track(p1, counters({ eventsAccepted: 5, eventsDrained: 5, channelSize: 0 }), 2000)!;
    expect(p2.acceptedAt).toBe(1000);
    const restarted = track(p2, counters({ eventsAccepted: 0 }), 3000)!;
    expect(restarted).toMatchObject({ accepted: 0, acceptedAt: null, drainedAt: 3000 });
  });

  it('is quiet only with an open, empty channel and no counter moved', () => {
    const c = counters({ eventsAccepted: 3, eventsDrained: 3 });
    expect(isQuiet(c, null)).toBe(false);
    expect(isQuiet(c, c)).toBe(true);
    expect(isQuiet(c, { ...c, eventsAccepted: 2 })).toBe(false);
    expect(isQuiet({ ...c, channelSize: 1 }, { ...c, channelSize: 1 })).toBe(false);
    expect(isQuiet({ ...c, channelOpen: false }, { ...c, channelOpen: false })).toBe(false);
  });
});
