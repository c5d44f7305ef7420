import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { postEvents, routePort } from '../helpers/flume.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: '23000-23999', AGENT_HEAP: '64m' });
});
afterAll(async () => {
  await h?.close();
});

describe('20 tables created at once', () => {
  it('get 20 distinct ports and 20 agents that accept events', async () => {
    const tables = Array.from({ length: 20 }, (_, i) => `t${i}`);
    const results = await Promise.all(
      tables.map((t) => h.inject({ method: 'POST', url: `/v1/api/burst/${t}/create`, payload: { sink: 'logger' } })),
    );
    expect(results.map((r) => r.statusCode)).toEqual(tables.map(() => 201));

    const ports = await Promise.all(tables.map((t) => routePort(h.redis, h.keys, 'burst', t)));
    expect(new Set(ports).size).toBe(20);
    ports.forEach((p) => expect(p).toBeGreaterThanOrEqual(23000));
    expect(Object.keys(await h.redis.hgetall(h.keys.ports()))).toHaveLength(40); // source + metrics

    const statuses = await Promise.all(ports.map((p, i) => postEvents(p!, [`event-${i}`])));
    expect(statuses).toEqual(tables.map(() => 200));

    const list = h.inject({ method: 'GET', url: '/v1/api/services?db=burst' });
    const listed = ((await list).json() as { agents: Array<{ accepting: boolean }> }).agents;
    expect(listed.filter((a) => a.accepting)).toHaveLength(20);

    const deleted = await Promise.all(tables.map((t) => h.inject({ method: 'DELETE', url: `/v1/api/burst/${t}?force=true` })));
    expect(deleted.map((r) => r.statusCode)).toEqual(tables.map(() => 200));
    expect(await h.redis.hgetall(h.keys.ports())).toEqual({});
  });
});
