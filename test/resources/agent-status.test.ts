import { describe, expect, it } from 'vitest';
import { listed, listedSchema, stableDigest, VOLATILE_FIELDS, type AgentStatus } from '../../src/resources/agent-status.js';

const status = (s: Partial<AgentStatus> = {}): AgentStatus => ({
  db: 'shop', table: 'orders', program: 'flume-shop-orders', node: 'h1', sink: 'kafka', state: 'RUNNING', desired: 'running', pid: 4711,
  uptimeSeconds: 120, startedAt: '2026-12-05T00:00:00.000Z', accepting: true, health: 'healthy', healthReason: 'fine',
  metrics: {
    eventsReceived: 10, eventsAccepted: 10, eventsDrained: 10, channelSize: 0, channelCapacity: 1000, channelFillPercent: 0,
    sinkConnectionFailures: 0, sinkWriteFailures: 0, channelOpen: true, lastEventAt: null, lastEventAgeSeconds: 3, oldestEventAgeSeconds: 2, channelFullInSeconds: 9,
  },
  revision: { desired: 1, running: 1 }, rates: null, resources: null, disk: null, paused: false, drained: true, description: 'pid 4711',
  observedAt: '2026-12-05T00:02:00.000Z', queue: { position: 1, waiting: 2, concurrency: 2 }, standIn: null, quarantined: 0, ...s,
});

describe('a status in the listing', () => {
  it('leaves out what moves all the time, keeps the queue place, and is what the listing schema says', () => {
    const l = listed(status());
    for (const f of VOLATILE_FIELDS.filter((f) => f !== 'queue')) expect(l).not.toHaveProperty(f);
    expect(l.queue).toEqual({ position: 1, waiting: 2, concurrency: 2 });
    expect(l.metrics).not.toHaveProperty('lastEventAgeSeconds');
    expect(l.metrics).toMatchObject({ eventsReceived: 10, channelCapacity: 1000 });
    expect(listedSchema.strict().parse(l)).toEqual(l);
    expect(listed(status({ metrics: null })).metrics).toBeNull();
  });
});

describe("a status's stable digest", () => {
  it('does not move with the volatile fields', () => {
    const moved = status({ uptimeSeconds: 999, description: 'x', observedAt: 'later', queue: null, rates: null });
    expect(stableDigest(moved)).toBe(stableDigest(status()));
  });

  it('moves with anything a dashboard would see change', () => {
    expect(stableDigest(status({ health: 'down' }))).not.toBe(stableDigest(status()));
    expect(stableDigest(status({ paused: true }))).not.toBe(stableDigest(status()));
  });
});
