import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { FenceNotices } from '../../src/cluster/fence-notices.js';
import { applyRecord, type Known } from '../../src/cluster/known-hosts.js';
import { presenceSchema } from '../../src/resources/node.js';

const presence = JSON.stringify(
  presenceSchema.parse({
    id: 'h2', address: '10.0.0.2', apiUrl: 'http://10.0.0.2:8001', gatewayUrl: 'http://10.0.0.2:8080', startedAt: '2026-12-06T00:00:00.000Z',
    renewedAt: '2026-12-06T00:00:01.000Z', keysDigest: 'k',
    capacity: { agents: 0, cpuCores: 2, loadAverage: 0.1, memTotalBytes: 1, memAvailableBytes: 1, diskFreeBytes: null, freePorts: 100 },
  }),
);

describe("a host's records", () => {
  it('make it alive with its presence, gone (and remembered) without it', () => {
    const known = new Map<string, Known>();
    const r1 = applyRecord(known, 'h2', 'presence', presence, 7, 1000);
    expect(r1).toBe(true);
    expect(known.get('h2')).toMatchObject({ presence: { id: 'h2' }, seenAt: 1000, goneAt: null, presenceRevision: 7 });
    expect(applyRecord(known, 'h2', 'presence', null, 8, 2000)).toBe(true);
    expect(known.get('h2')).toBeUndefined(); // nothing else known of it: forgotten
  });

  it('keep a host with a state after its presence went, and count an unreadable record as absent', () => {
    const known = new Map<string, Known>();
    applyRecord(known, 'h2', 'state', 'active', 1, 0);
    applyRecord(known, 'h2', 'presence', presence, 2, 10);
    expect(applyRecord(known, 'h2', 'presence', '{not json', 3, 20)).toBe(true);
    expect(known.get('h2')).toMatchObject({ state: 'active', presence: null, goneAt: 20, seenAt: null });
    expect(known.get('h2')?.last).not.toBeNull();
    expect(applyRecord(known, 'h2', 'state', 'bogus', 4, 30)).toBe(true);
    expect(known.has('h2')).toBe(false); // no state, presence or leaving time left: forgotten
  });
});

describe('fence notices', () => {
  it('tell each listener the state the lease is in when their turn comes, once per change', async () => {
    let fenced = false;
    const heard: boolean[] = [];
    const n = new FenceNotices(() => fenced, pino({ level: 'silent' }));
    n.subscribe(async (f) => void heard.push(f));
    n.subscribe(async () => {
      throw new Error('a listener that fails does not stop the others');
    });
    fenced = true;
    n.tell();
    fenced = false;
    n.tell(); // fenced and renewed before the first turn: only the state it ends in
    n.tell();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(heard).toEqual([false]);
    fenced = true;
    n.tell();
    await new Promise((r) => setImmediate(r));
    expect(heard).toEqual([false, true]);
  });
});
