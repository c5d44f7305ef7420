import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type BuiltApp } from '../../../src/app.js';
import type { Incident } from '../../../src/resources/incident.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';
import { openEventStream, startWebhookReceiver } from '../../helpers/webhook.js';

// Webhooks that survive the receiver's and the API's restarts, and an event stream a client
// resumes: what a receiver and a dashboard built on the README see.
const SECRET = 'deliveries-secret-'.padEnd(48, 'z');
let h: Harness;
let hookPort: number;
let second: BuiltApp | null = null;

beforeAll(async () => {
  hookPort = await freePort();
  h = await startHarness({ PORT_RANGE: await portRange(), WEBHOOK_URLS: `http://127.0.0.1:${hookPort}/hook`, WEBHOOK_SECRET: SECRET, WEBHOOK_RETRY_BASE_MS: '400', RESYNC_INTERVAL_MS: '2000' });
});
afterAll(async () => {
  await second?.app.close();
  await h?.close();
});

type Inject = (o: object) => Promise<{ json(): unknown }>;
const incidentsOf = async (inject: Inject) =>
  ((await inject({ method: 'GET', url: '/v1/api/hooks/w1/incidents', headers: { authorization: `Bearer ${h.tokenFor('admin')}` } })).json() as { incidents: Incident[] }).incidents;

describe('webhooks people can rely on', () => {
  it('gets every incident to a receiver that was down across an API restart, once each by webhook-id, signed the standard way', async () => {
    expect((await h.inject({ method: 'POST', url: '/v1/api/hooks/w1/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
    // The receiver is down: two crashes happen, each an incident (and a recovery) that cannot be delivered.
    const crashes = (l: Incident[]) => l.filter((i) => i.type === 'unexpected_exit');
    const kill = async (inject: Inject, before: number) => {
      // Killed once it runs (past supervisord's startsecs): an unexpected exit, then a recovery.
      const s = await until(
        async () => (await inject({ method: 'GET', url: '/v1/api/hooks/w1/status?fresh=true', headers: { authorization: `Bearer ${h.tokenFor('admin')}` } })).json() as { pid: number; state: string; accepting: boolean },
        (x) => x.state === 'RUNNING' && x.accepting,
        60_000,
        250,
      );
      process.kill(s.pid, 'SIGKILL');
      return until(() => incidentsOf(inject), (l) => crashes(l).length > before && l[0]!.type === 'recovered', 60_000, 200);
    };
    const first = await kill((o) => h.app.inject(o as never), 0);
    expect(crashes(first), JSON.stringify(first.map((i) => i.type))).toHaveLength(1);
    const pending = await until(() => incidentsOf((o) => h.app.inject(o as never)), (l) => crashes(l)[0]!.webhooks[0]!.attempts >= 2, 20_000, 200);
    expect(crashes(pending)[0]!.webhooks[0]).toMatchObject({ outcome: 'pending', status: null });

    // The API restarts (its deliveries are on disk), and raises another incident meanwhile.
    await h.app.close();
    second = buildApp({ config: h.config, log: pino({ level: 'silent' }), redis: h.redis, driver: h.driver });
    await second.app.ready();
    await second.start();
    const inject2: Inject = (o) => second!.app.inject(o as never);
    const both = await kill(inject2, 1);
    expect(crashes(both)).toHaveLength(2);

    // The receiver comes back on its address.
    const hook = await startWebhookReceiver({ port: hookPort, secret: SECRET });
    try {
      const raised = await until(() => incidentsOf(inject2), (l) => l.length >= both.length && l.every((i) => i.webhooks[0]?.outcome === 'delivered'), 90_000, 500);
      const ids = raised.map((i) => i.id).sort();
      await until(async () => hook.byId.size, (n) => n >= ids.length, 30_000, 200);
      expect([...hook.byId.keys()].sort()).toEqual(ids);
      expect(hook.rejected).toBe(0);
      // Each body is the incident (as a viewer sees it: no log tail).
      for (const i of raised) expect(hook.byId.get(i.id)).toMatchObject({ id: i.id, type: i.type, program: 'flume-hooks-w1', logTail: [] });
      // The deliveries are visible per incident: delivered, after more than one attempt.
      expect(raised.find((i) => i.id === crashes(first)[0]!.id)!.webhooks[0]).toMatchObject({ outcome: 'delivered', status: 204 });
      expect(raised.some((i) => i.webhooks[0]!.attempts > 1)).toBe(true);
      // The older headers are still sent, for one release.
      expect(hook.requests.every((r) => typeof r.headers['x-flume-signature'] === 'string' && typeof r.headers['webhook-id'] === 'string')).toBe(true);
      // A forged signature is what the receiver refuses.
      const forged = await fetch(hook.url, { method: 'POST', headers: { 'webhook-id': 'x', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA' }, body: '{}' });
      expect(forged.status).toBe(401);
    } finally {
      await hook.close();
    }
  }, 300_000);
});

describe('an event stream a client resumes', () => {
  it('replays what a client missed after Last-Event-ID, then goes on live; says so when it cannot', async () => {
    const app = second?.app ?? h.app;
    const server = await app.listen({ port: 0, host: '127.0.0.1' });
    const token = h.tokenFor('admin');
    const bulk = async (op: string) => {
      const r = await app.inject({ method: 'POST', url: `/v1/api/bulk/${op}`, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify({ tables: ['hooks.w1'] }) });
      return r.json().operation.id as string;
    };
    const s1 = openEventStream(`${server}/v1/api/events`, token);
    await until(() => s1.opened, (o) => o, 5000, 50);
    const seen = await bulk('pause');
    const before = await until(() => s1.events.filter((e) => e.event === 'operation' && e.data.id === seen), (l) => l.length >= 2, 10_000, 50);
    expect(before.every((e) => /^\d+-\d+$/.test(e.id ?? ''))).toBe(true);
    const lastSeen = s1.events.at(-1)!.id!;
    await s1.close();

    // Missed while away.
    const missed = [await bulk('resume'), await bulk('pause'), await bulk('resume')];
    // Missed only if they ended while away: each one's closing event is kept before it reconnects.
    await until(async () => (await h.redis.xrange(h.keys.events(), '-', '+')).filter(([, f]) => f[1] === 'operation' && f[3]!.includes('"state":"done"') && missed.some((id) => f[3]!.includes(id))).length, (n) => n === 3, 10_000, 50);
    const s2 = openEventStream(`${server}/v1/api/events`, token, lastSeen);
    const live = await until(() => s2.opened, (o) => o, 5000, 50).then(() => bulk('pause'));
    const got = await until(() => s2.events, (l) => l.some((e) => e.data.id === live && e.data.state === 'done'), 10_000, 50);
    const opIds = [...new Set(got.filter((e) => e.event === 'operation').map((e) => e.data.id))];
    expect(opIds.sort()).toEqual([...missed, live].sort());
    expect(got.some((e) => e.event === 'gap')).toBe(false);
    // Ids only grow, none repeats.
    const ids = got.map((e) => e.id!).filter(Boolean);
    expect(new Set(ids).size).toBe(ids.length);
    await s2.close();

    // Redis lost the kept events: the client is told, then gets live events.
    await h.redis.del(h.keys.events());
    const s3 = openEventStream(`${server}/v1/api/events`, token, lastSeen);
    await until(() => s3.events, (l) => l.length > 0, 5000, 50);
    expect(s3.events[0]).toMatchObject({ event: 'gap', data: { lastEventId: lastSeen } });
    await s3.close();
  }, 60_000);
});
