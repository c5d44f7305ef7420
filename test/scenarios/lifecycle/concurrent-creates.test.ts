import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { agentOf, postEvents, routePort } from '../../helpers/flume.js';
import { until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(1000), AGENT_HEAP: '64m' });
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
    const [lo, hi] = h.config.PORT_RANGE;
    ports.forEach((p) => expect(p! >= lo && p! <= hi, `port ${p} in ${lo}-${hi}`).toBe(true));
    expect(Object.keys(await h.redis.hgetall(h.keys.ports()))).toHaveLength(40); // source + metrics

    const statuses = await Promise.all(tables.map((t, i) => postEvents(agentOf(h.config, 'burst', t), [`event-${i}`])));
    expect(statuses).toEqual(tables.map(() => 200));

    // The listing is what the fleet model observed: with 20 JVMs starting on 2 cores, a probe
    // may miss its deadline once; within a refresh or two every agent shows accepting.
    const listed = await until(
      async () => ((await h.inject({ method: 'GET', url: '/v1/api/services?db=burst' })).json() as { agents: Array<{ accepting: boolean }> }).agents,
      (agents) => agents.filter((a) => a.accepting).length === 20,
      30_000,
      250,
    );
    expect(listed.filter((a) => a.accepting)).toHaveLength(20);

    const deleted = await Promise.all(tables.map((t) => h.inject({ method: 'DELETE', url: `/v1/api/burst/${t}?force=true` })));
    expect(deleted.map((r) => r.statusCode)).toEqual(tables.map(() => 200));
    expect(await h.redis.hgetall(h.keys.ports())).toEqual({});
  });
});
