import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/app.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

interface Status {
  state: string;
  pid: number | null;
  accepting: boolean;
  desired: string;
  health: string;
  observedAt: string;
}

let h: Harness;
const status = async (table: string, query = '') => {
  const r = await h.inject({ method: 'GET', url: `/v1/api/fleet/${table}/status${query}` });
  return { code: r.statusCode, body: r.json() as Status };
};

beforeAll(async () => {
  // No periodic refresh during these tests (60 s): what the model knows comes from operations,
  // supervisord's events, ?fresh=true, or a refresh the test runs itself.
  h = await startHarness({ PORT_RANGE: await portRange(), FLEET_REFRESH_MS: '60000' });
  for (const t of ['alpha', 'beta']) {
    expect((await h.inject({ method: 'POST', url: `/v1/api/fleet/${t}/create`, payload: { sink: 'logger' } })).statusCode).toBe(201);
  }
  await until(() => status('alpha'), (s) => s.body.state === 'RUNNING' && s.body.accepting, 60_000);
});
afterAll(async () => {
  await h?.close();
});

describe('the fleet model', () => {
  it('answers status from what it observed, not by asking the agent; ?fresh=true observes now', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add((await status('alpha')).body.observedAt);
    // 200 reads of a steady agent, no refresh in between: one observation served 200 times.
    expect(seen.size).toBe(1);
    await h.fleet.refresh();
    const refreshed = (await status('alpha')).body.observedAt;
    expect(Date.parse(refreshed)).toBeGreaterThan(Date.parse([...seen][0]!));

    const asked = Date.now();
    const fresh = await status('alpha', '?fresh=true');
    expect(fresh.code).toBe(200);
    expect(Date.parse(fresh.body.observedAt)).toBeGreaterThanOrEqual(asked);
    expect(fresh.body).toMatchObject({ state: 'RUNNING', accepting: true, health: 'healthy' });
    expect((await status('alpha', '?fresh=maybe')).code).toBe(400);
    expect((await status('alpha', '?other=1')).code).toBe(400);
  });

  it('is updated by every operation before it answers', async () => {
    const stop = await h.inject({ method: 'POST', url: '/v1/api/fleet/beta/stop' });
    expect(stop.statusCode).toBe(200);
    expect((await status('beta')).body).toMatchObject({ state: 'STOPPED', desired: 'stopped', accepting: false, pid: null, health: 'stopped' });
    const start = await h.inject({ method: 'POST', url: '/v1/api/fleet/beta/start' });
    expect(start.statusCode).toBe(200);
    expect((await status('beta')).body).toMatchObject({ desired: 'running', accepting: true });
    expect((await status('beta')).body.pid).toBe((start.json() as Status).pid);
  });

  it('applies a crash from supervisord\'s event stream, without waiting for a refresh', async () => {
    const { body: before } = await status('alpha');
    const refreshes = h.fleet.refreshes;
    process.kill(before.pid!, 'SIGKILL');
    const exited = await until(() => status('alpha'), (s) => s.body.state !== 'RUNNING', 30_000, 20);
    expect(exited.body.state).toMatch(/^(EXITED|STARTING|BACKOFF)$/);
    const back = await until(() => status('alpha'), (s) => s.body.state === 'RUNNING' && s.body.pid !== before.pid, 60_000);
    expect(back.body.state).toBe('RUNNING');
    expect(back.body.pid).not.toBe(before.pid);
    expect(h.fleet.refreshes).toBe(refreshes); // no refresh ran: the events told the model
  });

  it('lists from the model with one observedAt; unknown filters are refused', async () => {
    const r = await h.inject({ method: 'GET', url: '/v1/api/services' });
    expect(r.statusCode).toBe(200);
    const body = r.json() as { observedAt: string; agents: Array<{ program: string; observedAt?: string }> };
    expect(Date.parse(body.observedAt)).toBeGreaterThan(0);
    expect(body.agents.map((a) => a.program)).toEqual(['flume-fleet-alpha', 'flume-fleet-beta']);
    expect(body.agents[0]).not.toHaveProperty('observedAt');
    const bad = await h.inject({ method: 'GET', url: '/v1/api/services?state=nope' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 10011, error: 'INVALID_REQUEST' });
  });

  it('sees an agent another API process created, and forgets a deleted one for good', async () => {
    // A second API process on the same disk, supervisord and Redis.
    const other = buildApp({ config: { ...h.config, INSTANCE_NAME: 'other' }, log: pino({ level: 'silent' }), redis: h.redis, driver: h.driver });
    await other.app.ready();
    try {
      const token = other.app.jwt.sign({ sub: 'test', role: 'admin', jti: 'other-api-admin' }, { expiresIn: '1h' });
      const created = await other.app.inject({ method: 'POST', url: '/v1/api/fleet/gamma/create', payload: { sink: 'logger' }, headers: { authorization: `Bearer ${token}` } });
      expect(created.statusCode).toBe(201);
    } finally {
      await other.app.close();
    }
    expect((await status('gamma')).code).toBe(200);

    // A refresh that began before the delete must not bring the agent back.
    const racing = h.fleet.refresh();
    expect((await h.inject({ method: 'DELETE', url: '/v1/api/fleet/gamma' })).statusCode).toBe(200);
    await racing;
    await h.fleet.refresh();
    expect((await status('gamma')).code).toBe(404);
    const list = (await h.inject({ method: 'GET', url: '/v1/api/services' })).json() as { agents: Array<{ program: string }> };
    expect(list.agents.map((a) => a.program)).not.toContain('flume-fleet-gamma');
  });
});
