import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { sinkLines } from '../../helpers/flume.js';
import { TestGateway, ingest, setRoute } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';

// A contract per table: a JSON Schema subset kept in the table's spec, checked by the gateway on
// every event, with a drift policy. A real agent (file_roll) for what reaches the sink; a stand-in
// agent that records what it is sent for the marks a flagged event carries.
let h: Harness;
let gw: TestGateway;
let token: string;
let standIn: Server;
const received: Array<{ headers: Record<string, string>; body: string }> = [];

const ORDER = {
  type: 'object',
  required: ['id', 'amount', 'currency'],
  additionalProperties: false,
  properties: {
    id: { type: 'integer', minimum: 1 },
    amount: { type: 'number', exclusiveMinimum: 0 },
    currency: { enum: ['EUR', 'USD'] },
    note: { type: 'string', maxLength: 20 },
  },
};
const contract = (policy: string) => ({ policy, body: ORDER, headers: { type: 'object', properties: { source: { type: 'string', minLength: 1 } } } });

/** Event i of the 10,000: every tenth off the contract, in one of five ways, and where it fails. */
function order(i: number): { body: string; bad?: string } {
  const ok = { id: i + 1, amount: 10 + (i % 7), currency: i % 2 ? 'EUR' : 'USD' };
  if (i % 10 !== 9) return { body: JSON.stringify(ok) };
  const ways = [
    [{ ...ok, id: `#${i}` }, 'body.id'], // a type
    [{ id: ok.id, amount: ok.amount }, 'body.currency'], // a required field missing
    [{ ...ok, amount: -1 }, 'body.amount'], // out of range
    [{ ...ok, currency: 'GBP' }, 'body.currency'], // not one of the values
    [{ ...ok, coupon: 'X' }, 'body.coupon'], // a field the contract does not have
  ] as const;
  const [body, bad] = ways[Math.floor(i / 10) % 5]!;
  return { body: JSON.stringify(body), bad };
}

beforeAll(async () => {
  standIn = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      received.push(...(JSON.parse(body) as typeof received));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => standIn.listen(0, '127.0.0.1', r));
  h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()), GATEWAY_METRICS_PORT: String(await freePort()), GATEWAY_RATE_LIMIT: '0' });
  gw = new TestGateway(h.config);
  await gw.start();
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'pos', scope: ['shop', 'fake'] } })).json().token as string;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  standIn?.close();
});

describe('a contract per table, checked at the gateway', () => {
  it('refuses a contract the gateway could not check whole, naming the field; quarantine only where a quarantine exists', async () => {
    const create = (schema: unknown, sink = 'file_roll') => h.inject({ method: 'POST', url: '/v1/api/shop/never/create', payload: { sink, schema } });
    const cases: Array<[unknown, number, RegExp]> = [
      [{ body: { type: 'object', properties: { id: { type: 'string', pattern: '^a' } } } }, 400, /schema\.body\.properties\.id\.pattern.*not in the subset/],
      [{ body: { oneOf: [] } }, 400, /schema\.body\.oneOf/],
      [{ body: { type: 'text' } }, 400, /schema\.body\.type/],
      [{ body: { additionalProperties: { type: 'string' } } }, 400, /additionalProperties: only true or false/],
      [{ policy: 'ignore', body: {} }, 400, /schema\.policy/],
      [{ policy: 'reject' }, 400, /give body, headers or both/],
      [{ body: { minLength: 5, maxLength: 2 } }, 400, /minLength\/maxLength/],
      [{ body: { type: 'object' }, extra: 1 }, 400, /extra/],
      [{ policy: 'quarantine', body: { type: 'object' } }, 422, /only a kafka sink has/],
    ];
    for (const [schema, status, message] of cases) {
      const r = await create(schema);
      expect(r.statusCode, JSON.stringify(schema)).toBe(status);
      expect(r.json().message, JSON.stringify(schema)).toMatch(message);
    }
    expect((await h.inject({ method: 'GET', url: '/v1/api/shop/never/status' })).statusCode).toBe(404);
  });

  it('with reject, lets no event off the contract reach the sink: 10,000 events, a tenth off it in five ways, each refused with its path', { timeout: 180_000 }, async () => {
    const created = await h.inject({ method: 'POST', url: '/v1/api/shop/orders/create', payload: { sink: 'file_roll', options: { rollInterval: 0 }, schema: contract('reject') } });
    expect(created.statusCode, created.body).toBe(201);
    const all = Array.from({ length: 10_000 }, (_, i) => order(i));
    const named = new Map<number, string>(); // event number -> the path the gateway named
    for (let start = 0; start < all.length; start += 100) {
      const batch = all.slice(start, start + 100);
      const r = await ingest(gw, 'shop', 'orders', token, batch.map((e) => ({ headers: { source: 'till-1' }, body: e.body })));
      const bad = batch.flatMap((e, i) => (e.bad ? [i] : []));
      expect(r.status, JSON.stringify(r.json)).toBe(422);
      expect(r.json).toMatchObject({ code: 10119, error: 'SCHEMA_MISMATCH', details: { count: bad.length } });
      const invalid = (r.json.details as { invalid: Array<{ event: number; path: string; problem: string }> }).invalid;
      expect(invalid.map((x) => x.event)).toEqual(bad.map((i) => i + 1));
      for (const x of invalid) named.set(start + x.event - 1, x.path);
      // Nothing of a refused request was taken: the sender sends its good events again.
      const good = batch.filter((e) => !e.bad);
      expect((await ingest(gw, 'shop', 'orders', token, good.map((e) => ({ headers: { source: 'till-1' }, body: e.body })))).status).toBe(200);
    }
    const wrong = all.flatMap((e, i) => (e.bad && named.get(i) !== e.bad ? [`${i}: ${named.get(i)} (expected ${e.bad})`] : []));
    expect(wrong).toEqual([]);
    expect(named.size).toBe(1000);
    const goodBodies = all.filter((e) => !e.bad).map((e) => e.body);
    const outDir = agentPaths(h.config, 'flume-shop-orders').outDir;
    const lines = await until(() => sinkLines(outDir), (l) => l.length >= goodBodies.length, 60_000, 250);
    expect(lines.length).toBe(9000);
    expect(new Set(lines)).toEqual(new Set(goodBodies));
    // The headers' contract too: a source header that is empty.
    const r = await ingest(gw, 'shop', 'orders', token, [{ headers: { source: '' }, body: all[0]!.body }]);
    expect(r.status).toBe(422);
    expect(r.json.details).toMatchObject({ invalid: [{ event: 1, path: 'headers.source', problem: 'must be at least 1 characters, got 0' }] });
    const metrics = await (await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/metrics`)).text();
    expect(metrics).toContain('flume_gateway_schema_invalid_events_total{db="shop",table="orders",policy="reject"} 1001');
  });

  it('changes the policy as a revision without restarting the agent; flag takes every event and counts those off the contract', async () => {
    type Status = { pid: number; revision: { desired: number; running: number } };
    const before = (await h.inject({ method: 'GET', url: '/v1/api/shop/orders/status' })).json() as Status;
    const patched = await h.inject({ method: 'PATCH', url: '/v1/api/shop/orders/config', payload: { schema: { policy: 'flag' } } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ outcome: 'applied', revision: before.revision.desired + 1, spec: { schema: { policy: 'flag', body: ORDER } } });
    const after = (await h.inject({ method: 'GET', url: '/v1/api/shop/orders/status' })).json() as Status;
    // The same JVM runs the new revision: nothing of the agent changed, only what the gateway checks.
    expect(after.pid).toBe(before.pid);
    expect(after.revision).toEqual({ desired: before.revision.desired + 1, running: before.revision.desired + 1 });
    const r = await ingest(gw, 'shop', 'orders', token, [order(0), order(9), order(19)].map((e) => ({ body: e.body })));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json).toMatchObject({ events: 3 });
    const metrics = await (await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/metrics`)).text();
    expect(metrics).toContain('flume_gateway_schema_invalid_events_total{db="shop",table="orders",policy="flag"} 2');
    // Going back to the revision without a contract: any event again.
    const history = (await h.inject({ method: 'GET', url: '/v1/api/shop/orders/config/revisions' })).json() as { revisions?: Array<{ revision: number }> };
    expect(history.revisions?.length ?? 0).toBeGreaterThanOrEqual(2);
    const off = await h.inject({ method: 'PATCH', url: '/v1/api/shop/orders/config', payload: { schema: null } });
    expect(off.statusCode, off.body).toBe(200);
    expect((await ingest(gw, 'shop', 'orders', token, [{ body: 'not json at all' }])).status).toBe(200);
  });

  it('marks a flagged event for whoever reads it, and a sender cannot forge the marks', async () => {
    const port = (standIn.address() as AddressInfo).port;
    await setRoute(h, 'fake', 'flagged', `127.0.0.1:${port} tx=100\n${JSON.stringify(contract('flag'))}`);
    const r = await ingest(gw, 'fake', 'flagged', token, [order(0), order(9), order(29)].map((e) => ({ headers: { source: 'x' }, body: e.body })));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(received.map((e) => e.headers.schemaDrift ?? null)).toEqual([null, 'body.id: expected integer, got string', 'body.amount: must be above 0, got -1']);
    for (const forged of ['schemaDrift', 'quarantine']) {
      const f = await ingest(gw, 'fake', 'flagged', token, [{ headers: { [forged]: 'fine' }, body: order(0).body }]);
      expect(f.status).toBe(400);
      expect(f.json).toMatchObject({ error: 'RESERVED_HEADER' });
    }
  });
});
