import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { loadConfig } from '../../../src/config-load.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { agentOf, sinkLines, waitForLines } from '../../helpers/flume.js';
import { until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';
import { freePort } from '../../helpers/wait.js';

let h: Harness;
let gw: TestGateway;
const events = (...bodies: string[]) => bodies.map((body) => ({ headers: { src: 'test' }, body }));
const setToken = async (payload: object) => {
  const r = await h.inject({ method: 'POST', url: '/v1/api/token', payload });
  expect(r.statusCode).toBe(200);
  return r.json() as { token?: string; previousValidUntil: string | null };
};

beforeAll(async () => {
  // A long cache TTL: anything that takes effect at once below does so by invalidation.
  h = await startHarness({
    PORT_RANGE: await portRange(),
    GATEWAY_PORT: String(await freePort()),
    GATEWAY_METRICS_PORT: String(await freePort()),
    GATEWAY_MAX_BODY: '4k',
    GATEWAY_CACHE_TTL_MS: '30000',
    TOKEN_GRACE_SECONDS: '2',
  });
  gw = new TestGateway(h.config);
  await gw.start();
  expect((await h.inject({ method: 'POST', url: '/v1/api/shop/orders/create' })).statusCode).toBe(201);
  expect((await h.inject({ method: 'POST', url: '/v1/api/shop/audit/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
});

describe('an agent takes events only from the gateway', () => {
  it("refuses another local user posting straight to its port (found with ss), with no key or a wrong one; the gateway's events go in", async () => {
    const agent = agentOf(h.config, 'shop', 'orders');
    expect(agent.key).toMatch(/^[\w-]{43}$/);
    expect(statSync(agentPaths(h.config, 'flume-shop-orders').controlKeyFile).mode & 0o077).toBe(0);
    const asNobody = (args: string[]) => spawnSync(args[0]!, args.slice(1), { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 15_000 });
    // The key is not theirs to read, and the port is anyone's to find.
    expect(asNobody(['cat', agentPaths(h.config, 'flume-shop-orders').controlKeyFile]).status).not.toBe(0);
    expect(asNobody(['ss', '-ltnH']).stdout).toContain(`127.0.0.1:${agent.port} `);
    const post = (body: string, headers: string[] = []) =>
      asNobody(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '-H', 'Content-Type: application/json', ...headers.flatMap((x) => ['-H', x]), '--data', body, `http://127.0.0.1:${agent.port}/`]).stdout;
    expect(post('[{"headers":{},"body":"sneaked-in"}]')).toBe('400');
    expect(post('[{"headers":{},"body":"sneaked-in-guessing"}]', [`X-Flume-Intake-Key: ${'A'.repeat(43)}`])).toBe('400');
    expect(post('[{"headers":{"topic":"elsewhere"},"body":"sneaked-in-empty-key"}]', ['X-Flume-Intake-Key;'])).toBe('400');

    const { token } = await setToken({ username: 'carol' });
    // A sender's own intake-key header is not passed on: the gateway sets the route's.
    expect((await ingest(gw, 'shop', 'orders', token!, events('through-the-gateway'), undefined, { 'X-Flume-Intake-Key': 'mine' })).status).toBe(200);
    const out = agentPaths(h.config, 'flume-shop-orders').outDir;
    await waitForLines(out, ['through-the-gateway']);
    expect(sinkLines(out).filter((l) => l.startsWith('sneaked-in'))).toEqual([]);
  });
});

describe('gateway: tokens from the API let events through to the sink', () => {
  it('delivers events with a token set through the API, and the caller reaches the agent as a header', async () => {
    const { token } = await setToken({ username: 'alice' });
    const r = await ingest(gw, 'shop', 'orders', token!, events('gw-1', 'gw-2'));
    expect(r).toMatchObject({ status: 200, json: { code: 0, message: 'accepted', events: 2 } });
    const lines = await waitForLines(agentPaths(h.config, 'flume-shop-orders').outDir, ['gw-1', 'gw-2']);
    expect(lines).toEqual(expect.arrayContaining(['gw-1', 'gw-2']));

    expect((await ingest(gw, 'shop', 'audit', token!, events('who-sent-this'))).status).toBe(200);
    const log = agentPaths(h.config, 'flume-shop-audit').logFile;
    const text = await until(() => readFileSync(log, 'utf8'), (t) => t.includes('who-sent-this'), 15_000, 250);
    expect(text).toMatch(/headers:\{[^}]*username=alice[^}]*\}/);

    const listed = (await h.inject({ method: 'GET', url: '/v1/api/token' })).json() as { users: Array<{ username: string; lastUsedAt: string | null }> };
    expect(listed.users.find((u) => u.username === 'alice')?.lastUsedAt).not.toBeNull();
  });

  it('keeps the replaced token valid for the grace period, then only the new one works', async () => {
    const { token: old } = await setToken({ username: 'bob' });
    expect((await ingest(gw, 'shop', 'orders', old!, events('bob-1'))).status).toBe(200);
    const { token: fresh, previousValidUntil } = await setToken({ username: 'bob' });
    expect(previousValidUntil).not.toBeNull();
    expect((await ingest(gw, 'shop', 'orders', old!, events('bob-2'))).status).toBe(200);
    expect((await ingest(gw, 'shop', 'orders', fresh!, events('bob-3'))).status).toBe(200);
    // Refused once the grace period is over (the gateway compares whole seconds).
    const after = await until(() => ingest(gw, 'shop', 'orders', old!, events('bob-4')), (r) => r.status !== 200, 15_000, 200);
    expect(after.status).toBe(401);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(previousValidUntil!));
    expect((await ingest(gw, 'shop', 'orders', fresh!, events('bob-5'))).status).toBe(200);
  });

  it('refuses an expired token', async () => {
    const { token } = await setToken({ username: 'carol', ttlSeconds: 1 });
    expect((await ingest(gw, 'shop', 'orders', token!, events('c-1'))).status).toBe(200);
    const later = await until(() => ingest(gw, 'shop', 'orders', token!, events('c-2')), (r) => r.status !== 200, 15_000, 200);
    expect(later).toMatchObject({ status: 401, json: { error: 'TOKEN_EXPIRED' } });
  });

  it('revokes at once, even for a token the gateway has cached', async () => {
    const { token } = await setToken({ username: 'dave' });
    expect((await ingest(gw, 'shop', 'orders', token!, events('d-1'))).status).toBe(200);
    expect((await h.inject({ method: 'DELETE', url: '/v1/api/token/dave' })).statusCode).toBe(200);
    // The invalidation is a Redis pub/sub message (milliseconds); the cache TTL here is 30 s.
    const revoked = await until(() => ingest(gw, 'shop', 'orders', token!, events('d-2')), (r) => r.status !== 200, 5000, 20);
    expect(revoked).toMatchObject({ status: 401, json: { error: 'TOKEN_INVALID' } });
  });

  it('holds a token to its scope', async () => {
    const { token: crmOnly } = await setToken({ username: 'erin', scope: ['crm'] });
    expect(await ingest(gw, 'shop', 'orders', crmOnly!, events('e-1'))).toMatchObject({ status: 403, json: { error: 'TOKEN_SCOPE' } });
    const { token: one } = await setToken({ username: 'frank', scope: ['shop.audit'] });
    expect((await ingest(gw, 'shop', 'audit', one!, events('f-1'))).status).toBe(200);
    expect((await ingest(gw, 'shop', 'orders', one!, events('f-2'))).status).toBe(403);
  });
});

describe('gateway: every failure has a short JSON answer', () => {
  let token: string;
  beforeAll(async () => {
    token = (await setToken({ username: 'grace' })).token!;
  });

  it('401 without or with a bad token, 404 for an unknown table, 405 for GET', async () => {
    expect(await ingest(gw, 'shop', 'orders', null, events('x'))).toMatchObject({ status: 401, json: { error: 'TOKEN_MISSING' } });
    expect(await ingest(gw, 'shop', 'orders', 'not-a-token', events('x'))).toMatchObject({ status: 401, json: { error: 'TOKEN_INVALID' } });
    expect(await ingest(gw, 'shop', 'nothing', token, events('x'))).toMatchObject({ status: 404, json: { error: 'TABLE_NOT_FOUND' } });
    expect(await ingest(gw, 'Bad-Name', 'x', token, events('x'))).toMatchObject({ status: 404, json: { error: 'TABLE_NOT_FOUND' } });
    const get = await fetch(`${gw.url}/ingest/shop/orders`, { headers: { authorization: `Bearer ${token}` } });
    expect(get.status).toBe(405);
    expect(await get.json()).toMatchObject({ error: 'METHOD_NOT_ALLOWED' });
    expect((await fetch(`${gw.url}/elsewhere`)).status).toBe(404);
    // Each error names its request: the sender's X-Request-Id, or one the gateway made.
    const made = await ingest(gw, 'shop', 'orders', null, events('x'));
    expect(made.json.requestId).toMatch(/^[0-9a-f]{32}$/);
    expect(made.headers['x-request-id']).toBe(made.json.requestId);
    const given = await fetch(`${gw.url}/ingest/shop/orders`, { method: 'POST', headers: { 'x-request-id': 'sender-trace.7' }, body: '[]' });
    expect(given.headers.get('x-request-id')).toBe('sender-trace.7');
    expect(await given.json()).toMatchObject({ error: 'TOKEN_MISSING', requestId: 'sender-trace.7' });
  });

  it('400 for a body that is not a JSON array of events, 413 over the size limit', async () => {
    expect(await ingest(gw, 'shop', 'orders', token, null, '{"body":"an object"}')).toMatchObject({ status: 400, json: { error: 'BAD_EVENTS' } });
    expect(await ingest(gw, 'shop', 'orders', token, null, 'not json')).toMatchObject({ status: 400, json: { error: 'BAD_EVENTS' } });
    const big = await ingest(gw, 'shop', 'orders', token, events('y'.repeat(5000)));
    expect(big).toMatchObject({ status: 413, json: { error: 'BODY_TOO_LARGE' } });
  });

  it('400 for events as Flume does not define them: headers not an object of strings', async () => {
    const out = agentPaths(h.config, 'flume-shop-orders').outDir;
    const bad: unknown[] = [
      [{ headers: 'a string', body: 'bad-1' }],
      [{ headers: ['a', 'b'], body: 'bad-2' }],
      [{ headers: { n: 1 }, body: 'bad-3' }],
      [{ headers: { nested: { x: 'y' } }, body: 'bad-4' }],
      [{ headers: { nul: null }, body: 'bad-5' }],
      [{ headers: {}, body: 'ok-but-next-is-bad' }, 'bad-6'],
      [['bad-7']],
    ];
    for (const body of bad) {
      const r = await ingest(gw, 'shop', 'orders', token, body);
      expect(r, JSON.stringify(body)).toMatchObject({ status: 400, json: { code: 10061, error: 'BAD_EVENTS' } });
    }
    // Nothing of a refused request reaches the sink; a good one after them does.
    expect((await ingest(gw, 'shop', 'orders', token, [{ body: 'no-headers-is-fine' }])).status).toBe(200);
    const lines = await waitForLines(out, ['no-headers-is-fine']);
    expect(lines).toContain('no-headers-is-fine');
    expect(lines.filter((l) => l.startsWith('bad-') || l.startsWith('ok-but'))).toEqual([]);
  });

  it('503 once the agent is stopped (the route is withdrawn at once), 200 again after start', async () => {
    expect((await ingest(gw, 'shop', 'audit', token, events('before'))).status).toBe(200);
    expect((await h.inject({ method: 'POST', url: '/v1/api/shop/audit/stop' })).statusCode).toBe(200);
    expect(await ingest(gw, 'shop', 'audit', token, events('while-down'))).toMatchObject({ status: 503, json: { error: 'AGENT_DOWN' } });
    expect((await h.inject({ method: 'POST', url: '/v1/api/shop/audit/start' })).statusCode).toBe(200);
    expect((await until(() => ingest(gw, 'shop', 'audit', token, events('after')), (r) => r.status === 200, 5000, 20)).status).toBe(200);
  });

  it('502, not a hang, when the route points at a port nothing answers on', async () => {
    await h.redis.multi().set(h.keys.route('ghost', 'table'), '127.0.0.1:1').sadd(h.keys.tables(), 'ghost:table').publish(h.keys.invalidateChannel(), 'route:ghost:table').exec();
    expect(await ingest(gw, 'ghost', 'table', token, events('x'))).toMatchObject({ status: 502, json: { error: 'AGENT_UNREACHABLE' } });
  });

  it('503, not a hang, when Redis is unreachable', async () => {
    const cfg = loadConfig({
      STATE_DIR: h.config.STATE_DIR,
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_KEY_PREFIX: h.config.REDIS_KEY_PREFIX,
      GATEWAY_PORT: String(await freePort()),
    });
    const blind = new TestGateway(cfg);
    await blind.start();
    try {
      expect(await ingest(blind, 'shop', 'orders', token, events('x'))).toMatchObject({ status: 503, json: { error: 'REDIS_UNAVAILABLE' } });
    } finally {
      await blind.stop();
    }
  });
});

describe('gateway: its own metrics', () => {
  it('counts answers by table and status, and request and agent latency, on its metrics listener; made-up tables make no series', async () => {
    const token = (await setToken({ username: 'metered' })).token!;
    const scrape = async () => (await (await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/metrics`)).text()).split('\n');
    const before = await scrape();
    const value = (lines: string[], series: string) => Number(lines.find((l) => l.startsWith(`${series} `))?.split(' ')[1] ?? 0);
    const ok = 'flume_gateway_requests_total{db="shop",table="orders",status="200"}';
    const unknown = 'flume_gateway_requests_total{db="",table="",status="404"}';
    for (let i = 0; i < 3; i++) expect((await ingest(gw, 'shop', 'orders', token, events(`m-${i}`))).status).toBe(200);
    for (const t of ['made_up_1', 'made_up_2']) expect((await ingest(gw, 'shop', t, token, events('x'))).status).toBe(404);
    const after = await scrape();
    expect(value(after, ok) - value(before, ok)).toBe(3);
    expect(value(after, unknown) - value(before, unknown)).toBe(2);
    expect(after.some((l) => l.includes('made_up'))).toBe(false);
    expect(value(after, 'flume_gateway_request_duration_seconds_count')).toBeGreaterThanOrEqual(5);
    expect(value(after, 'flume_gateway_upstream_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(after).toContain('# TYPE flume_gateway_redis_errors_total counter');
    expect((await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/elsewhere`)).status).toBe(404);
  });
});
