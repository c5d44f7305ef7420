import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentOf, postEvents } from '../../helpers/flume.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';

let h: Harness;
const refreshes = async (n: number) => {
  const from = h.fleet.refreshes;
  await until(async () => h.fleet.refreshes, (r) => r >= from + n, 30_000, 50);
};

beforeAll(async () => {
  // Counters of a quiet agent are read once a minute here: long enough to see them stand.
  h = await startHarness({ PORT_RANGE: await portRange(), FLEET_REFRESH_MS: '300', FLEET_QUIET_COUNTERS_MS: '60000' });
  const r = await h.inject({ method: 'POST', url: '/v1/api/quiet/t1/create', payload: { sink: 'logger' } });
  expect(r.statusCode, r.body).toBe(201);
});
afterAll(async () => {
  await h?.close();
});

describe("a quiet agent's counters", () => {
  it('stand between reads while nothing moves; ?fresh=true reads them now, and once events move they are read every refresh', async () => {
    // RUNNING (supervisord's event, startsecs after the start, observes it afresh), then two equal reads: quiet.
    await until(() => h.status('quiet', 't1'), (s) => s.state === 'RUNNING', 30_000, 100);
    await refreshes(3);
    expect((await h.status('quiet', 't1')).metrics!.eventsAccepted).toBe(0);
    expect(await postEvents(agentOf(h.config, 'quiet', 't1'), ['a', 'b', 'c'])).toBe(200);
    await refreshes(4);
    const stale = await h.status('quiet', 't1');
    // Still accepting (the source is probed every refresh), counters as last read.
    expect(stale).toMatchObject({ accepting: true, health: 'healthy', metrics: { eventsAccepted: 0 } });
    expect((await h.status('quiet', 't1', { fresh: true })).metrics!.eventsAccepted).toBe(3);
    // Moving now: the next refreshes read the counters again.
    expect(await postEvents(agentOf(h.config, 'quiet', 't1'), ['d', 'e'])).toBe(200);
    const moving = await until(() => h.status('quiet', 't1'), (s) => s.metrics?.eventsAccepted === 5, 10_000, 100);
    expect(moving.metrics!.eventsAccepted).toBe(5);
  });
});

describe('a quiet agent whose JVM hangs', () => {
  let q: Harness;
  beforeAll(async () => {
    // Between two reads of a quiet agent's counters its source is not probed either (the kernel's
    // listen table stands in): a JVM that hangs with its port open is seen at the next read.
    // The healer would restart it after its grace: long enough here to see it recover by itself.
    q = await startHarness({ PORT_RANGE: await portRange(), FLEET_REFRESH_MS: '300', FLEET_QUIET_COUNTERS_MS: '3000', HEAL_GRACE_SECONDS: '600' });
    const r = await q.inject({ method: 'POST', url: '/v1/api/hang/t1/create', payload: { sink: 'logger' } });
    expect(r.statusCode, r.body).toBe(201);
  });
  afterAll(async () => {
    await q?.close();
  });

  it('turns degraded within a read of its counters, then down and unresponsive (an incident), and healthy again once it runs', async () => {
    const up = await until(() => q.status('hang', 't1'), (s) => s.state === 'RUNNING' && s.health === 'healthy', 30_000, 100);
    const from = q.fleet.refreshes;
    await until(async () => q.fleet.refreshes, (r) => r >= from + 3, 30_000, 50);
    process.kill(up.pid!, 'SIGSTOP');
    try {
      const hung = await until(() => q.status('hang', 't1'), (s) => s.health !== 'healthy', 30_000, 100);
      expect(hung).toMatchObject({ state: 'RUNNING', pid: up.pid, healthReason: expect.stringMatching(/metrics do not answer|the JVM hangs/) });
      // Silent twice in a row with nothing accepted: a hang, not a busy source.
      const down = await until(() => q.status('hang', 't1'), (s) => s.health === 'down', 30_000, 100);
      expect(down).toMatchObject({ accepting: false, healthReason: expect.stringContaining('the JVM hangs') });
      const raised = await until(() => q.incidentsOf('hang', 't1'), (l) => l.some((i) => i.type === 'unresponsive'), 20_000, 100);
      expect(raised.find((i) => i.type === 'unresponsive')).toMatchObject({ details: { pid: up.pid, restartInSeconds: 600 } });
    } finally {
      process.kill(up.pid!, 'SIGCONT');
    }
    const back = await until(() => q.status('hang', 't1'), (s) => s.health === 'healthy', 30_000, 100);
    expect(back).toMatchObject({ accepting: true, pid: up.pid });
    // It recovered by itself before the grace: no restart, and the incident's end is told.
    const told = await until(() => q.incidentsOf('hang', 't1'), (l) => l[0]?.type === 'recovered', 20_000, 100);
    expect(told[0]!.message).toMatch(/accepts events again \(by itself, pid \d+\)/);
    expect(told.some((i) => i.type === 'restarted')).toBe(false);
  });
});
