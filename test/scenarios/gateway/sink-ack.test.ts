import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { sinkLines } from '../../helpers/flume.js';
import { TestGateway, ingest, setRoute } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';

// "Prefer: ack=sink": the gateway in front of a stand-in agent whose channel counts (its metrics
// port) the test sets, then in front of a real agent. The window is long so that concurrent
// requests surely meet in one batch on a busy machine.
type Event = { headers: Record<string, string>; body: string };
let h: Harness;
let gw: TestGateway;
let agent: Server;
let metricsServer: Server;
const batches: Event[][] = [];
let token: string;
/** The stand-in's channel, as its metrics tell it: each batch it takes is counted as put. */
const channel = { start: 1_000, backlog: 0, put: 0, take: 0, answering: true, reads: 0 };
/** Until the gateway has read the stand-in's counts `n` more times: it has seen what they say now. */
const gatewayReads = async (n: number) => {
  const from = channel.reads;
  await until(async () => channel.reads, (r) => r >= from + n, 5_000, 5);
};
const SINK = { Prefer: 'ack=sink' };

const listen = async (s: Server) => {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
};
const send = (table: string, bodies: string[], headers: Record<string, string> = {}) =>
  ingest(gw, 'fake', table, token, bodies.map((b) => ({ body: b })), undefined, headers);

beforeAll(async () => {
  agent = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const events = JSON.parse(body) as Event[];
      batches.push(events);
      channel.put += events.length;
      res.writeHead(200).end();
    });
  });
  metricsServer = createServer((_req, res) => {
    channel.reads++;
    if (!channel.answering) return res.writeHead(503).end();
    const c = channel;
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        'SOURCE.r1': { EventAcceptedCount: String(c.put) },
        'CHANNEL.c1': { StartTime: String(c.start), StartBacklog: String(c.backlog), EventPutSuccessCount: String(c.put), EventTakeSuccessCount: String(c.take), ChannelSize: String(c.backlog + c.put - c.take) },
      }),
    );
  });
  const [agentPort, metricsPort] = [await listen(agent), await listen(metricsServer)];
  h = await startHarness({
    PORT_RANGE: await portRange(),
    GATEWAY_PORT: String(await freePort()),
    GATEWAY_RATE_LIMIT: '0',
    GATEWAY_BATCH_WINDOW_MS: '50',
    // 20 traces a second per worker: the budget below is seen.
    GATEWAY_TRACE_PER_SECOND: '40',
  });
  gw = new TestGateway(h.config);
  await gw.start();
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'ack' } })).json().token as string;
  await setRoute(h, 'fake', 'agent', `127.0.0.1:${agentPort} tx=10000 m=${metricsPort}`);
  await setRoute(h, 'fake', 'old', `127.0.0.1:${agentPort} tx=10000`);
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  agent?.close();
  metricsServer?.close();
});

/** Takes every event put so far, `after` ms from now; resolves with when it did. */
const sinkTakesAll = (after: number) =>
  new Promise<number>((resolve) =>
    setTimeout(() => {
      channel.take = channel.backlog + channel.put;
      resolve(Date.now());
    }, after),
  );

describe('a sender that asks for the sink', () => {
  it("is answered 200 once the channel's takes pass what was replayed and put up to its events, and says so", async () => {
    Object.assign(channel, { start: 2_000, backlog: 7, put: 0, take: 0 });
    const first = send('agent', ['s1', 's2'], SINK);
    // Taken: the 7 replayed and one of the request's two. Not yet enough.
    await until(async () => batches.length, (n) => n >= 1, 5_000, 5);
    channel.take = 8;
    let done = false;
    void first.then(() => (done = true));
    await gatewayReads(6);
    expect(done).toBe(false);
    channel.take = 9;
    const r = await first;
    expect(r).toMatchObject({ status: 200, json: { code: 0, events: 2, committed: 'sink' }, headers: { 'preference-applied': 'ack=sink' } });
    expect(r.json.requestId).toBe(r.headers['x-request-id']);
    // The default: answered once the channel has them.
    const plain = await send('agent', ['p1']);
    expect(plain).toMatchObject({ status: 200, json: { committed: 'channel' } });
    expect(plain.headers['preference-applied']).toBeUndefined();
  });

  it('gets 202 "committed to the channel" past its wait, and where the counts cannot be read', async () => {
    Object.assign(channel, { start: 3_000, backlog: 0, put: 0, take: 0 });
    const late = await send('agent', ['late'], { Prefer: 'ack=sink, wait=1' });
    expect(late).toMatchObject({ status: 202, json: { code: 0, events: 1, committed: 'channel', message: expect.stringContaining('within 1 s') } });
    expect(batches.at(-1)!.map((e) => e.body)).toEqual(['late']);
    channel.answering = false;
    try {
      expect(await send('agent', ['blind'], SINK)).toMatchObject({ status: 202, json: { committed: 'channel', message: expect.stringContaining('cannot be read') } });
    } finally {
      channel.answering = true;
    }
    // A route written before metrics ports were kept: the same honest answer.
    expect(await send('old', ['older'], SINK)).toMatchObject({ status: 202, json: { committed: 'channel' } });
  });

  it("counts a restart of the agent's JVM: what was left before it, taken by the new one", async () => {
    Object.assign(channel, { start: 4_000, backlog: 0, put: 40, take: 10 });
    const waiting = send('agent', ['r1', 'r2'], SINK); // need 42 taken
    await until(async () => channel.put, (p) => p === 42, 5_000, 5);
    await gatewayReads(2); // the gateway has seen take 10
    // A new JVM: its channel replayed the 32 left; it counts from 0.
    Object.assign(channel, { start: 5_000, backlog: 32, put: 0, take: 31 });
    let done = false;
    void waiting.then(() => (done = true));
    await gatewayReads(6);
    expect(done).toBe(false);
    channel.take = 32;
    expect(await waiting).toMatchObject({ status: 200, json: { committed: 'sink' } });
  });

  it('shares a group commit with senders that do not wait: they are answered at once, it when the sink has the batch', async () => {
    Object.assign(channel, { start: 6_000, backlog: 0, put: 0, take: 0 });
    batches.length = 0;
    const answeredAt: Record<string, number> = {};
    const timed = (name: string, p: ReturnType<typeof send>) => p.then((r) => ((answeredAt[name] = Date.now()), r));
    const took = sinkTakesAll(2_000);
    const all = await Promise.all([
      timed('sink', send('agent', ['m-sink'], SINK)),
      ...Array.from({ length: 5 }, (_, i) => timed(`plain${i}`, send('agent', [`m-${i}`]))),
    ]);
    expect(all.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(all[0]!.json.committed).toBe('sink');
    expect(all.slice(1).every((a) => a.json.committed === 'channel')).toBe(true);
    // One batch (or two, on a slow machine) carried both kinds.
    expect(batches.length).toBeLessThanOrEqual(2);
    expect(batches.flat().map((e) => e.body).sort()).toEqual(['m-0', 'm-1', 'm-2', 'm-3', 'm-4', 'm-sink']);
    const sinkTookAt = await took;
    expect(Math.max(...Array.from({ length: 5 }, (_, i) => answeredAt[`plain${i}`]!))).toBeLessThan(sinkTookAt);
    expect(answeredAt.sink).toBeGreaterThanOrEqual(sinkTookAt);
  });

  it("gives each event ids from the sender's Idempotency-Key (else the request's id), and refuses a bad key or ids of its own", async () => {
    batches.length = 0;
    const keyed = await send('agent', ['k1', 'k2'], { 'Idempotency-Key': 'order-77', 'X-Request-Id': 'req-5' });
    expect(keyed).toMatchObject({ status: 200, json: { requestId: 'req-5' }, headers: { 'x-request-id': 'req-5' } });
    expect(batches.flat().map((e) => [e.headers.eventId, e.headers.requestId])).toEqual([
      ['order-77:1', 'req-5'],
      ['order-77:2', 'req-5'],
    ]);
    batches.length = 0;
    const plain = await send('agent', ['n1']);
    expect(batches.flat()[0]!.headers.eventId).toBe(`${String(plain.json.requestId)}:1`);
    const bad = await send('agent', ['x'], { 'Idempotency-Key': 'no spaces allowed' });
    expect(bad).toMatchObject({ status: 400, json: { error: 'INVALID_REQUEST', message: expect.stringContaining('Idempotency-Key') } });
    const own = await ingest(gw, 'fake', 'agent', token, [{ headers: { eventId: 'mine' }, body: 'x' }]);
    expect(own).toMatchObject({ status: 400, json: { error: 'RESERVED_HEADER' } });
    expect(batches).toHaveLength(1);
  });
});

describe('traces', () => {
  it('are written for at most GATEWAY_TRACE_PER_SECOND requests a second, the rest answered all the same', async () => {
    const ids = Array.from({ length: 100 }, (_, i) => `burst-${i}`);
    const answers = await Promise.all(ids.map((id) => send('agent', [id], { 'X-Request-Id': id })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const traced = async () => {
      let n = 0;
      for (const id of ids) if ((await h.inject({ method: 'GET', url: `/v1/api/fake/agent/trace/${id}` })).statusCode === 200) n++;
      return n;
    };
    // Written within 0.2 s by each worker; the burst may straddle a second: 40 at most in each.
    const n = await until(traced, (x) => x >= 20, 5_000, 250);
    expect(n).toBeGreaterThanOrEqual(20);
    expect(n).toBeLessThanOrEqual(80);
  });
});

describe('a real agent', () => {
  it("answers a sender that asks for the sink once its file_roll sink wrote the events, one request after another", { timeout: 120_000 }, async () => {
    expect((await h.inject({ method: 'POST', url: '/v1/api/shop/acks/create', payload: { sink: 'file_roll', options: { rollInterval: 0, batchSize: 1 } } })).statusCode).toBe(201);
    const out = agentPaths(h.config, 'flume-shop-acks').outDir;
    const took: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = Date.now();
      const r = await ingest(gw, 'shop', 'acks', token, [{ body: `real-${i}` }], undefined, SINK);
      took.push(Date.now() - t0);
      expect(r, JSON.stringify(r.json) + gw.errorLog()).toMatchObject({ status: 200, json: { committed: 'sink' } });
      // Answered 200: the sink has written it (file_roll flushes each batch before it commits).
      expect(sinkLines(out)).toContain(`real-${i}`);
    }
    took.sort((a, b) => a - b);
    console.log(`sink acknowledgement, one request after another on a quiet table: median ${took[10]} ms, slowest ${took[19]} ms`);
  });

  it("answers on the sink by the table's own default (spec ack), which a sender may decline, and a config change turns off", { timeout: 120_000 }, async () => {
    const made = await h.inject({ method: 'POST', url: '/v1/api/shop/sinky/create', payload: { sink: 'file_roll', ack: 'sink' } });
    expect(made.statusCode, made.body).toBe(201);
    const send1 = (headers: Record<string, string> = {}) => ingest(gw, 'shop', 'sinky', token, [{ body: 'd' }], undefined, headers);
    expect(await send1()).toMatchObject({ status: 200, json: { committed: 'sink' }, headers: { 'preference-applied': 'ack=sink' } });
    expect(await send1({ Prefer: 'ack=channel' })).toMatchObject({ status: 200, json: { committed: 'channel' } });
    expect((await h.inject({ method: 'GET', url: '/v1/api/shop/sinky/config' })).json()).toMatchObject({ spec: { ack: 'sink' } });
    const changed = await h.inject({ method: 'PATCH', url: '/v1/api/shop/sinky/config', payload: { ack: null } });
    expect(changed.statusCode, changed.body).toBe(200);
    expect(await send1()).toMatchObject({ status: 200, json: { committed: 'channel' } });
    const bad = await h.inject({ method: 'POST', url: '/v1/api/shop/other/create', payload: { sink: 'file_roll', ack: 'disk' } });
    expect(bad.statusCode).toBe(400);
  });

  it('traces each request: accepted (t0), committed to the channel (t1), taken by the sink by t2, for either kind', { timeout: 60_000 }, async () => {
    const trace = (id: string, table = 'acks') => h.inject({ method: 'GET', url: `/v1/api/shop/${table}/trace/${encodeURIComponent(id)}` });
    const waited = await ingest(gw, 'shop', 'acks', token, [{ body: 'traced-sink' }], undefined, { ...SINK, 'X-Request-Id': 'trace-sink-1' });
    expect(waited.status).toBe(200);
    const plain = await ingest(gw, 'shop', 'acks', token, [{ body: 'traced-plain' }, { body: 'traced-plain-2' }]);
    expect(plain.status).toBe(200);
    const plainId = String(plain.json.requestId);
    for (const [id, ack, events] of [['trace-sink-1', 'sink', 1], [plainId, 'channel', 2]] as const) {
      // The gateway writes its traces every 0.2 s; the sink's take of a plain request is known from its samples.
      const t = await until(async () => (await trace(id)).json() as Record<string, unknown>, (b) => b.stage === 'sink', 20_000, 100);
      expect(t).toMatchObject({ code: 0, requestId: id, db: 'shop', table: 'acks', events, ack, stage: 'sink' });
      const [t0, t1, t2] = [t.acceptedAt, t.committedAt, t.takenBy].map((x) => Date.parse(String(x)));
      expect(t0).toBeLessThanOrEqual(t1!);
      expect(t1).toBeLessThanOrEqual(t2!);
    }
    // Only the table's own; a request never traced; a malformed id.
    expect((await trace('trace-sink-1', 'orders')).json()).toMatchObject({ error: 'TRACE_NOT_FOUND' });
    expect((await trace('never-sent')).statusCode).toBe(404);
    expect((await trace('has space')).statusCode).toBe(400);
  });
});
