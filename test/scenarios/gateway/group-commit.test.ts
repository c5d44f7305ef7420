import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { sinkLines } from '../../helpers/flume.js';
import { TestGateway, ingest, setRoute } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';

// Group commit: the gateway in front of a stand-in agent that records each request it gets (and
// can be told to fail), then in front of a real agent that is killed while senders are sending.
// The window is long here so that concurrent requests surely meet in one batch on a busy machine.
const WINDOW_MS = 50;
type Event = { headers: Record<string, string>; body: string };
let h: Harness;
let gw: TestGateway;
let standIn: Server;
let answer = 200;
const batches: Event[][] = [];
let token: string;

/** A table whose route points at the stand-in with this transactionCapacity. */
const route = (table: string, port: number, tx: number) => setRoute(h, 'fake', table, `127.0.0.1:${port} tx=${tx}`);
const send = (table: string, bodies: string[], body?: string) =>
  ingest(gw, 'fake', table, token, bodies.map((b) => ({ headers: { n: b }, body: b })), body);
const received = () => batches.flat().map((e) => e.body);

beforeAll(async () => {
  standIn = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      batches.push(JSON.parse(body) as Event[]);
      res.writeHead(answer).end();
    });
  });
  await new Promise<void>((r) => standIn.listen(0, '127.0.0.1', r));
  h = await startHarness({
    PORT_RANGE: await portRange(),
    GATEWAY_PORT: String(await freePort()),
    GATEWAY_RATE_LIMIT: '0',
    GATEWAY_BATCH_WINDOW_MS: String(WINDOW_MS),
  });
  gw = new TestGateway(h.config);
  await gw.start();
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'gc' } })).json().token as string;
  await route('agent', (standIn.address() as AddressInfo).port, 10_000);
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  standIn?.close();
});

describe('group commit at the gateway', () => {
  it('sends concurrent requests for one table as few batches, and answers each with its own count', async () => {
    batches.length = 0;
    const bodies = Array.from({ length: 40 }, (_, i) => [`a${i}`, ...(i % 2 ? [`b${i}`] : [])]);
    const answers = await Promise.all(bodies.map((b) => send('agent', b)));
    answers.forEach((a, i) => expect(a).toMatchObject({ status: 200, json: { code: 0, message: 'accepted', events: bodies[i]!.length } }));
    // Every event reached the agent exactly once, named after its sender, and in far fewer requests.
    expect(received().sort()).toEqual(bodies.flat().sort());
    expect(batches.flat().every((e) => e.headers.username === 'gc' && e.headers.n === e.body)).toBe(true);
    expect(batches.length).toBeLessThanOrEqual(10);
  });

  it("caps a batch at the table's transactionCapacity; a request that fills it alone goes alone, one over it is refused", async () => {
    await route('small', (standIn.address() as AddressInfo).port, 4);
    batches.length = 0;
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => send('small', [`s${i}`])));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(received().sort()).toEqual(Array.from({ length: 30 }, (_, i) => `s${i}`).sort());
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(4);
    expect(batches.length).toBeGreaterThanOrEqual(8); // 30 events, at most 4 a batch

    batches.length = 0;
    expect((await send('small', ['w', 'x', 'y', 'z'])).status).toBe(200);
    expect(batches).toHaveLength(1);
    expect(batches[0]!.map((e) => e.body)).toEqual(['w', 'x', 'y', 'z']);
    // More than one transaction holds never reaches the agent.
    const over = await send('small', ['w', 'x', 'y', 'z', 'over']);
    expect(over).toMatchObject({ status: 413, json: { code: 10063, error: 'TOO_MANY_EVENTS' } });
    expect(batches).toHaveLength(1);
  });

  it("gives every member of a failed batch the failure, and one sender's bad event fails only that sender", async () => {
    answer = 503;
    try {
      const full = await Promise.all(Array.from({ length: 12 }, (_, i) => send('agent', [`f${i}`])));
      for (const a of full) expect(a).toMatchObject({ status: 503, json: { code: 10109, error: 'CHANNEL_FULL' }, headers: { 'retry-after': '5' } });
    } finally {
      answer = 200;
    }

    await route('dead', await freePort(), 10_000);
    const dead = await Promise.all(Array.from({ length: 12 }, (_, i) => send('dead', [`d${i}`])));
    for (const a of dead) expect(a).toMatchObject({ status: 502, json: { code: 10105, error: 'AGENT_UNREACHABLE' }, headers: { 'retry-after': '5' } });

    batches.length = 0;
    const mixed = await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => send('agent', [`ok${i}`])),
      send('agent', [], JSON.stringify([{ headers: {}, body: 42 }])),
      send('agent', [], JSON.stringify([{ headers: {}, body: { nested: true } }])),
    ]);
    expect(mixed.slice(0, 10).every((a) => a.status === 200)).toBe(true);
    for (const a of mixed.slice(10)) expect(a).toMatchObject({ status: 400, json: { code: 10061, error: 'BAD_EVENTS', message: 'event 1: body must be a string' } });
    expect(received().sort()).toEqual(Array.from({ length: 10 }, (_, i) => `ok${i}`).sort());
  });

  it('loses no acknowledged event when a real agent is killed -9 under group-committed load', { timeout: 240_000 }, async () => {
    expect((await h.inject({ method: 'POST', url: '/v1/api/shop/orders/create' })).statusCode).toBe(201);
    const status = async () => (await h.inject({ method: 'GET', url: '/v1/api/shop/orders/status?fresh=true' })).json() as { pid: number | null; accepting: boolean };
    const { pid } = await status();
    const acked: string[] = [];
    const other = new Map<number, number>();
    let killed = false;
    const sender = async (c: number) => {
      for (let i = 0; !killed; i++) {
        const body = `c${c}-${i}`;
        const r = await ingest(gw, 'shop', 'orders', token, [{ headers: {}, body }]);
        if (r.status === 200) acked.push(body);
        else other.set(r.status, (other.get(r.status) ?? 0) + 1);
      }
    };
    const senders = Promise.all(Array.from({ length: 20 }, (_, c) => sender(c)));
    await until(() => acked.length, (n) => n >= 200, 30_000);
    process.kill(pid!, 'SIGKILL');
    killed = true;
    await senders;
    // Supervisord restarts the agent; its file channel replays what it had committed.
    await until(status, (s) => s.accepting && s.pid !== pid, 90_000, 250);
    const out = agentPaths(h.config, 'flume-shop-orders').outDir;
    const lines = await until(() => new Set(sinkLines(out)), (l) => acked.every((b) => l.has(b)), 60_000, 500);
    expect(acked.filter((b) => !lines.has(b))).toEqual([]);
    console.log(`kill -9 under group commit: ${acked.length} acknowledged, all at the sink; refused meanwhile: ${JSON.stringify(Object.fromEntries(other))}`);
  });
});
