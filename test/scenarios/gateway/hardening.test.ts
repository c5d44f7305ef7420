import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateTokenHashKey } from '../../../src/auth/secret.js';
import { hashToken } from '../../../src/tokens/hash.js';
import { TestGateway, ingest, setRoute } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { TestRedisServer } from '../../helpers/redis-server.js';
import { freePort, until } from '../../helpers/wait.js';

// The gateway in front of a stand-in agent (a plain HTTP server that records what reaches it),
// with its own Redis so that Redis can be taken away.
const CACHE_TTL_MS = 1000;
const STALE_SECONDS = 4;
const RATE_LIMIT = 5;
let redis: TestRedisServer;
let h: Harness;
let gw: TestGateway;
let agent: Server;
const seen: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
const events = (...bodies: string[]) => bodies.map((body) => ({ headers: {}, body }));

const tokenFor = async (username: string, scope = ['fake']) => {
  const r = await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username, scope } });
  expect(r.statusCode).toBe(200);
  return (r.json() as { token: string }).token;
};
/** A table whose route points at `port` (the stand-in agent, or nothing). */
const route = (table: string, port: number | null) => setRoute(h, 'fake', table, port === null ? null : `127.0.0.1:${port}`);

beforeAll(async () => {
  redis = new TestRedisServer();
  await redis.start();
  agent = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
  h = await startHarness({
    REDIS_URL: redis.url,
    PORT_RANGE: await portRange(10),
    GATEWAY_PORT: String(await freePort()),
    GATEWAY_CACHE_TTL_MS: String(CACHE_TTL_MS),
    GATEWAY_STALE_SECONDS: String(STALE_SECONDS),
    GATEWAY_RATE_LIMIT: String(RATE_LIMIT),
  });
  gw = new TestGateway(h.config);
  await gw.start();
  await route('agent', (agent.address() as AddressInfo).port);
});
afterAll(async () => {
  if (redis && !redis.running) await redis.start(); // a failed test may have left it down
  await gw?.stop();
  await h?.close();
  await redis?.stop();
  agent?.close();
});

describe('gateway hardening', () => {
  it("keeps the caller's token from the agent, and names the caller in each event", async () => {
    const token = await tokenFor('hdr');
    const r = await ingest(gw, 'fake', 'agent', token, events('one'));
    expect(r.status).toBe(200);
    const last = seen.at(-1)!;
    expect(last.headers.authorization).toBeUndefined();
    expect(JSON.stringify(last.headers)).not.toContain(token);
    // The caller's name and the event's ids (the request's, answered in the body): nothing else added.
    const rid = String(r.json.requestId);
    expect(JSON.parse(last.body)).toEqual([{ headers: { username: 'hdr', requestId: rid, eventId: `${rid}:1` }, body: 'one' }]);
  });

  it('answers 429 with Retry-After once one token goes over its rate, and other tokens still pass', async () => {
    const busy = await tokenFor('busy');
    const calm = await tokenFor('calm');
    // Sent at once. The limit holds per one-second window of the gateway's clock: count the
    // windows the burst touched (a loaded machine spreads it over more than one).
    const from = Math.floor(Date.now() / 1000);
    const answers = await Promise.all(Array.from({ length: 8 * RATE_LIMIT }, () => ingest(gw, 'fake', 'agent', busy, events('x'))));
    const windows = Math.floor(Date.now() / 1000) - from + 1;
    const limited = answers.filter((a) => a.status === 429);
    expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true);
    expect(answers.filter((a) => a.status === 200).length).toBeLessThanOrEqual(windows * RATE_LIMIT);
    expect(limited.length).toBeGreaterThanOrEqual(Math.max(1, answers.length - windows * RATE_LIMIT));
    expect(limited[0]).toMatchObject({ json: { code: 10064, error: 'RATE_LIMITED' }, headers: { 'retry-after': '1' } });
    expect((await ingest(gw, 'fake', 'agent', calm, events('y'))).status).toBe(200);
  });

  it('tells senders when to retry: 502 and 503 carry Retry-After', async () => {
    const token = await tokenFor('retry');
    await route('dead', await freePort());
    await route('down', null);
    expect(await ingest(gw, 'fake', 'dead', token, events('x'))).toMatchObject({ status: 502, json: { error: 'AGENT_UNREACHABLE' }, headers: { 'retry-after': '5' } });
    expect(await ingest(gw, 'fake', 'down', token, events('x'))).toMatchObject({ status: 503, json: { error: 'AGENT_DOWN' }, headers: { 'retry-after': '5' } });
  });

  it('stores token hashes keyed with a secret outside Redis, and re-keys records written before', async () => {
    const key = loadOrCreateTokenHashKey(h.config);
    expect(readFileSync(join(h.config.varDir, 'token-hash-key'), 'utf8')).toContain(key);
    const token = await tokenFor('keyed');
    const sha1 = createHash('sha1').update(token).digest('hex');
    expect(await h.redis.exists(h.keys.token(sha1))).toBe(0);
    expect(await h.redis.exists(h.keys.token(hashToken(token, key)))).toBe(1);

    // A user as the previous version wrote it: records keyed by the bare SHA-1, in Redis and on disk.
    const legacy = 'legacy-token-0123456789abcdefghijklmnop';
    const old = createHash('sha1').update(legacy).digest('hex');
    const user = { current: old, previous: '', previousUntil: '0', scope: 'fake', exp: '0', createdAt: '1' };
    await h.redis.hset(h.keys.user('oldie'), user);
    await h.redis.hset(h.keys.token(old), { user: 'oldie', scope: 'fake', exp: '0', graceUntil: '0' });
    await h.redis.sadd(h.keys.users(), 'oldie');
    mkdirSync(join(h.config.varDir, 'tokens'), { recursive: true });
    writeFileSync(join(h.config.varDir, 'tokens', 'oldie.json'), JSON.stringify({ username: 'oldie', user, tokens: { [old]: { user: 'oldie', scope: 'fake', exp: '0', graceUntil: '0' } } }));

    expect((await h.inject({ method: 'POST', url: '/v1/api/reconcile' })).statusCode).toBe(200);
    await route('agent', (agent.address() as AddressInfo).port); // reconcile removed the stand-in's route (no agent on disk)
    expect(await h.redis.exists(h.keys.token(old))).toBe(0);
    expect(await h.redis.hget(h.keys.user('oldie'), 'current')).toBe(hashToken(legacy, key));
    const file = readFileSync(join(h.config.varDir, 'tokens', 'oldie.json'), 'utf8');
    expect(file).not.toContain(old);
    expect(file).toContain(hashToken(legacy, key));
    expect((await ingest(gw, 'fake', 'agent', legacy, events('migrated'))).status).toBe(200);
  });

  it('revokes at once through the invalidation message, and within one cache TTL if that message is lost', async () => {
    const token = await tokenFor('gone');
    expect((await ingest(gw, 'fake', 'agent', token, events('cached'))).status).toBe(200);
    expect((await h.inject({ method: 'DELETE', url: '/v1/api/token/gone' })).statusCode).toBe(200);
    expect((await ingest(gw, 'fake', 'agent', token, events('x'))).status).toBe(401);

    // Lost message: the record disappears from Redis with nobody telling the gateway.
    const quiet = await tokenFor('quiet');
    expect((await ingest(gw, 'fake', 'agent', quiet, events('cached'))).status).toBe(200);
    await h.redis.del(h.keys.token(hashToken(quiet, loadOrCreateTokenHashKey(h.config))));
    const deletedAt = Date.now();
    const refused = await until(() => ingest(gw, 'fake', 'agent', quiet, events('x')), (r) => r.status === 401, 10 * CACHE_TTL_MS, 1000 / (RATE_LIMIT - 1));
    expect(refused.status).toBe(401);
    console.log(`a revocation whose message was lost took effect after ${Date.now() - deletedAt} ms (cache TTL ${CACHE_TTL_MS} ms)`);
  });

  it('keeps cached senders going for the stale window while Redis is down, then answers 503 with Retry-After', async () => {
    const cached = await tokenFor('cached');
    const fresh = await tokenFor('fresh');
    expect((await ingest(gw, 'fake', 'agent', cached, events('before'))).status).toBe(200);
    await redis.kill();
    const downAt = Date.now();
    // A token the gateway never saw cannot be checked: 503, retry later.
    expect(await ingest(gw, 'fake', 'agent', fresh, events('x'))).toMatchObject({ status: 503, json: { error: 'REDIS_UNAVAILABLE' }, headers: { 'retry-after': '1' } });
    // Past the cache TTL, Redis does not answer: the cached lookup is used.
    // (Polled below the token's rate limit: RATE_LIMIT per second.)
    const stale = await until(() => ingest(gw, 'fake', 'agent', cached, events('stale')), () => Date.now() - downAt > CACHE_TTL_MS + 200, 10_000, 1000 / (RATE_LIMIT - 1));
    expect(stale.status).toBe(200);
    // Past the stale window: refused like any lookup without Redis.
    const refused = await until(() => ingest(gw, 'fake', 'agent', cached, events('late')), (r) => r.status === 503, 30_000, 1000 / (RATE_LIMIT - 1));
    expect(refused).toMatchObject({ status: 503, json: { error: 'REDIS_UNAVAILABLE' } });
    console.log(`Redis down: a cached sender was served for ${Date.now() - downAt} ms (stale window ${STALE_SECONDS} s)`);
    await redis.start();
    // Back, empty: the service restores the tokens from disk by itself, and the sender passes
    // Redis's check again (its table has no agent on disk, so the restore dropped the stand-in route: 404).
    expect((await until(() => ingest(gw, 'fake', 'agent', cached, events('after')), (r) => r.status === 404, 30_000, 200)).status).toBe(404);
  });
});
