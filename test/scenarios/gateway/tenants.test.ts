import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { sinkLines } from '../../helpers/flume.js';
import { TestGateway, ingest, setRoute } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';

// Sharing the host between dbs: each db's quota (API, gateway, usage) on a real agent, and the
// fair share while the gateway is saturated, in front of stand-in agents that take 30 ms to
// commit (so the requests in flight are known, whatever the machine's speed).
const IN_FLIGHT = 8;
let h: Harness;
let gw: TestGateway;
let slow: Server;
let token: string;
let slowCommits = 0;

type Answer = { status: number; json: Record<string, unknown>; headers: Record<string, string> };
const put = (db: string, payload: unknown, as?: string) =>
  h.inject({ method: 'PUT', url: `/v1/api/quotas/${db}`, payload: payload as object, ...(as ? { headers: { authorization: `Bearer ${as}` } } : {}) });
const events = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ body: `${tag}-${i}` }));

/** `clients` senders posting `n`-event requests back to back until `ms` passed; every answer kept. */
async function flood(db: string, table: string, clients: number, ms: number, n = 1, tag = db): Promise<Answer[]> {
  const answers: Answer[] = [];
  const end = Date.now() + ms;
  let seq = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < end) answers.push(await ingest(gw, db, table, token, events(n, `${tag}-${seq++}`)));
    }),
  );
  return answers;
}

beforeAll(async () => {
  slow = createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => (slowCommits++, res.writeHead(200).end()), 30));
  });
  slow.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()), GATEWAY_METRICS_PORT: String(await freePort()), GATEWAY_RATE_LIMIT: '0', GATEWAY_FAIR_SHARE_IN_FLIGHT: String(IN_FLIGHT), GATEWAY_FAIR_SHARE_WAIT_MS: '40' });
  gw = new TestGateway(h.config);
  await gw.start();
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'tenant', scope: ['shop', 'flood', 'steady', 'alone'] } })).json().token as string;
  const port = (slow.address() as AddressInfo).port;
  for (const [db, table] of [['flood', 'a'], ['steady', 'b'], ['alone', 'c']] as const) await setRoute(h, db, table, `127.0.0.1:${port} tx=1000`);
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  slow?.close();
});

describe('the fair share while the gateway is saturated', () => {
  // First in the file: no other db has sent yet (one that sent in the last 0.1-0.2 s counts as sending).
  it('never refuses a db that sends alone, however hard', async () => {
    const answers = await flood('alone', 'c', 3 * IN_FLIGHT, 1500);
    expect(answers.length).toBeGreaterThan(50);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  });

  it("refuses a flooding db past its share, never the steady one within it, and keeps the gateway busy", { timeout: 30_000 }, async () => {
    const before = slowCommits;
    const [a, b] = await Promise.all([flood('flood', 'a', 5 * IN_FLIGHT, 3000), flood('steady', 'b', 2, 3000)]);
    const aRefused = a.filter((x) => x.status === 429);
    expect(b.length).toBeGreaterThan(20);
    expect(b.filter((x) => x.status !== 200)).toEqual([]);
    expect(aRefused.length).toBeGreaterThan(0);
    expect(a.filter((x) => x.status === 200).length).toBeGreaterThan(b.length);
    expect(a.filter((x) => x.status !== 200 && x.status !== 429)).toEqual([]);
    // The last refusal: by then only these two dbs send (the db of the case before counts as
    // sending for up to 0.2 s after its last request, and this flood may start within that).
    const r = aRefused[aRefused.length - 1]!;
    expect(r.json).toMatchObject({ code: 10069, error: 'OVER_FAIR_SHARE', message: expect.stringMatching(/flood had its share in flight \(4 of 8, shared by 2 dbs sending\) for \d+ ms/) });
    expect(r.headers['retry-after']).toBe('1');
    expect(r.headers['ratelimit-policy']).toBe('"fair-share";q=4;w=1;qu="concurrent-requests"');
    expect(r.headers.ratelimit).toBe('"fair-share";r=0;t=1');
    expect(slowCommits).toBeGreaterThan(before);
    // Every request left the count it was in, the refused ones too.
    const metrics = await (await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/metrics`)).text();
    expect(metrics).toContain('flume_gateway_in_flight_requests 0');
    expect(metrics).toMatch(/flume_gateway_db_refused_total\{db="flood",reason="share"\} [1-9]/);
    expect(metrics).not.toMatch(/db="steady",reason=/);
  });
});

describe("a db's quota", () => {
  it('is set by an admin for dbs within its token, checked whole, and refused to every other role', async () => {
    const bad: unknown[] = [{}, { eventsPerSecond: 0 }, { eventsPerSecond: 1.5 }, { eventsPerSecond: -1 }, { eventsPerMinute: 5 }, { bytesPerSecond: '10' }, []];
    for (const b of bad) {
      const r = await put('shop', b);
      expect(r.statusCode, JSON.stringify(b)).toBe(400);
      expect(r.json().error).toMatch(/^INVALID_(REQUEST|JSON)$/);
    }
    expect((await put('Shop!', { eventsPerSecond: 5 })).statusCode).toBe(400);
    expect((await put('quotas', { eventsPerSecond: 5 })).statusCode).toBe(400);
    for (const role of ['operator', 'viewer'] as const) {
      const r = await put('shop', { eventsPerSecond: 5 }, h.tokenFor(role));
      expect(r.statusCode, role).toBe(403);
    }
    expect((await put('shop', { eventsPerSecond: 5 }, h.tokenFor('admin', ['other']))).statusCode).toBe(403);
    expect((await h.inject({ method: 'GET', url: '/v1/api/quotas/shop' })).json()).toMatchObject({ quota: null });
    // A db name can no longer be "quotas": the API's own path.
    const reserved = await h.inject({ method: 'POST', url: '/v1/api/quotas/x/create', payload: {} });
    expect(reserved.statusCode).toBe(400);
    expect(reserved.json().message).toMatch(/db may not be token, quotas \(reserved\)/);
  });

  it('holds at the gateway per second and per day, with RateLimit headers and a Retry-After that is right; nothing refused reaches the agent', { timeout: 60_000 }, async () => {
    expect((await h.inject({ method: 'POST', url: '/v1/api/shop/orders/create', payload: { sink: 'file_roll', options: { rollInterval: 0 } } })).statusCode).toBe(201);
    const set = await put('shop', { eventsPerSecond: 50 });
    expect(set.statusCode, set.body).toBe(200);
    expect(set.json()).toMatchObject({ db: 'shop', quota: { eventsPerSecond: 50 } });

    // 10 events a request, back to back: 5 fit in a second, the 6th waits for the window to slide.
    const answers: Answer[] = [];
    for (let i = 0; i < 8; i++) answers.push(await ingest(gw, 'shop', 'orders', token, events(10, `s${i}`)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    const refused = answers.find((a) => a.status === 429)!;
    expect(refused.json).toMatchObject({ code: 10068, error: 'QUOTA_EXCEEDED', message: expect.stringMatching(/shop is over its quota of 50 events a second/) });
    expect(refused.headers['ratelimit-policy']).toBe('"events";q=50;w=1');
    const wait = Number(refused.headers['retry-after']);
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(2);
    expect(refused.headers.ratelimit).toBe(`"events";r=0;t=${wait}`);
    // Retry-After is when it fits again: by then it does (a refused try takes nothing of the quota).
    const after = await until(() => ingest(gw, 'shop', 'orders', token, events(10, 'after')), (a) => a.status === 200, (wait + 1) * 1000, 100);
    expect(after.status).toBe(200);
    // A request larger than the quota can never fit: not a 429 to retry forever.
    const huge = await ingest(gw, 'shop', 'orders', token, events(60, 'huge'));
    expect(huge.status).toBe(413);
    expect(huge.json).toMatchObject({ error: 'TOO_MANY_EVENTS', message: expect.stringMatching(/can never fit shop's quota of 50 events a second/) });

    // The day's quota (counted from when it is set): 340 events; what is left of the day is the wait.
    expect((await put('shop', { eventsPerDay: 340 })).json()).toMatchObject({ quota: { eventsPerDay: 340 } });
    let accepted = 60;
    let day: Answer | undefined;
    for (let i = 0; i < 40 && !day; i++) {
      const a = await ingest(gw, 'shop', 'orders', token, events(10, `d${i}`));
      if (a.status === 200) accepted += 10;
      else day = a;
    }
    expect(accepted).toBe(400);
    expect(day!.json).toMatchObject({ error: 'QUOTA_EXCEEDED', message: expect.stringMatching(/shop has used its quota of 340 events for the day/) });
    const now = Date.now() / 1000;
    const toMidnight = 86_400 - (now % 86_400);
    expect(Math.abs(Number(day!.headers['retry-after']) - toMidnight)).toBeLessThan(5);
    expect(day!.headers['ratelimit-policy']).toBe('"events-per-day";q=340;w=86400');

    // Exactly the accepted events reached the sink.
    const out = agentPaths(h.config, 'flume-shop-orders').outDir;
    const lines = await until(() => sinkLines(out), (l) => l.length >= 400, 30_000, 200);
    expect(lines.length).toBe(400);
    expect(lines.some((l) => l.startsWith('huge'))).toBe(false);

    // The db's use, every worker's counts flushed each second.
    const usage = await until(
      async () => (await h.inject({ method: 'GET', url: '/v1/api/quotas' })).json() as { dbs: Array<{ db: string; usage: { minutes: Array<{ events: number; refused: number }> } }> },
      (u) => (u.dbs.find((d) => d.db === 'shop')?.usage.minutes.reduce((n, m) => n + m.events, 0) ?? 0) >= 400,
      10_000,
      250,
    );
    const shop = usage.dbs.find((d) => d.db === 'shop')!;
    expect(shop.usage.minutes.reduce((n, m) => n + m.events, 0)).toBe(400);
    expect(shop.usage.minutes.reduce((n, m) => n + m.refused, 0)).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/metrics`)).text();
    expect(metrics).toContain('flume_gateway_db_events_total{db="shop"} 400');
    expect(metrics).toMatch(/flume_gateway_db_refused_total\{db="shop",reason="quota"\} [1-9]/);

    // Removed: the day's count no longer refuses.
    expect((await h.inject({ method: 'DELETE', url: '/v1/api/quotas/shop' })).json()).toMatchObject({ quota: null });
    expect((await ingest(gw, 'shop', 'orders', token, events(10, 'free'))).status).toBe(200);
  });
});
