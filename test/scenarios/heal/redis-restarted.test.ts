import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { TestRedisServer } from '../../helpers/redis-server.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';
import { agentPaths } from '../../../src/store/paths.js';
import { waitForLines } from '../../helpers/flume.js';

// A Redis that keeps nothing on disk, restarted: the service must notice and heal by itself.
let redis: TestRedisServer;
let h: Harness;
let gw: TestGateway;
const portsOf = async (table: string) => {
  const meta = (await import('node:fs')).readFileSync(agentPaths(h.config, `flume-heal-${table}`).metaFile, 'utf8');
  const { port, metricsPort } = JSON.parse(meta) as { port: number; metricsPort: number };
  return [port, metricsPort];
};

beforeAll(async () => {
  redis = new TestRedisServer();
  await redis.start();
  // A narrow port range, so that a new table would land on a stopped agent's ports if the
  // allocator trusted an empty Redis.
  h = await startHarness({ REDIS_URL: redis.url, PORT_RANGE: await portRange(10), GATEWAY_PORT: String(await freePort()), GATEWAY_CACHE_TTL_MS: '0' });
  gw = new TestGateway(h.config);
  await gw.start();
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  await redis?.stop();
});

describe('Redis restarted empty', () => {
  it('heals by itself: the same sender token passes, a stopped agent keeps its ports and starts again', async () => {
    expect((await h.api('POST', '/v1/api/heal/orders/create')).statusCode).toBe(201);
    expect((await h.api('POST', '/v1/api/heal/parked/create', { sink: 'logger' })).statusCode).toBe(201);
    expect((await h.api('POST', '/v1/api/heal/parked/stop')).statusCode).toBe(200);
    const parkedPorts = await portsOf('parked');
    const r = await h.api('POST', '/v1/api/token', { username: 'sender', scope: ['heal.orders'] });
    const { token } = r.json() as { token: string };
    expect((await ingest(gw, 'heal', 'orders', token, [{ headers: {}, body: 'before' }])).status).toBe(200);
    expect((await h.api('PUT', '/v1/api/quotas/heal', { eventsPerDay: 2 })).statusCode).toBe(200);

    const ready = async () => /^flume_service_ready\{check="redis"\} (\d)$/m.exec((await h.api('GET', '/metrics')).body)?.[1];
    expect(await ready()).toBe('1');
    await redis.kill();
    const downAt = Date.now();
    // What FlumeServiceNotReady (monitoring/alerts.yml) watches: the API says Redis is gone.
    expect(await ready()).toBe('0');
    await redis.start(); // same port, empty
    expect(await h.redis.dbsize().catch(() => 0)).toBeLessThanOrEqual(1);

    // Nobody calls reconcile: the service notices the loss and restores Redis from disk by itself
    // (meanwhile the gateway serves the sender it knew from its cache, never a 401).
    expect(await until(() => h.reconciler.heals, (n) => n >= 1, 30_000, 100)).toBeGreaterThanOrEqual(1);
    const healed = await until(() => ingest(gw, 'heal', 'orders', token, [{ headers: {}, body: 'after' }]), (x) => x.status === 200, 30_000, 200);
    expect(healed.status).toBe(200);
    console.log(`Redis restarted empty -> the same token accepted again after ${Date.now() - downAt} ms`);
    expect(h.reconciler.heals).toBeGreaterThanOrEqual(1);
    expect(await ready()).toBe('1');
    expect(await waitForLines(agentPaths(h.config, 'flume-heal-orders').outDir, ['before', 'after'])).toEqual(
      expect.arrayContaining(['before', 'after']),
    );
    expect((await h.redis.smembers(h.keys.tables())).sort()).toEqual(['heal:orders', 'heal:parked']);
    // The db's quota is back too (the disk's copy): its day is used up by 'before' and 'after'.
    expect(await h.redis.hget(h.keys.quotas(), 'heal')).toBe('epd=2');
    const over = await until(() => ingest(gw, 'heal', 'orders', token, [{ headers: {}, body: 'third' }]), (x) => x.status !== 200, 15_000, 200);
    expect(over.json).toMatchObject({ error: 'QUOTA_EXCEEDED' });
    expect((await h.api('DELETE', '/v1/api/quotas/heal')).statusCode).toBe(200);
    const reserved = await h.redis.hgetall(h.keys.ports());
    for (const p of parkedPorts) expect(reserved[String(p)]).toBe('flume-heal-parked');

    // New tables never get the stopped agent's ports, and that agent starts again.
    for (const t of ['one', 'two']) {
      expect((await h.api('POST', `/v1/api/heal/${t}/create`, { sink: 'logger' })).statusCode).toBe(201);
      for (const p of await portsOf(t)) expect(parkedPorts).not.toContain(p);
    }
    const started = await h.api('POST', '/v1/api/heal/parked/start');
    expect(started.statusCode).toBe(200);
    expect(started.json()).toMatchObject({ accepting: true, desired: 'running' });
  });

  it('never hands out a port an agent on disk owns, even while Redis is empty', async () => {
    // The range is full: five agents, two ports each. "two" stops, so its ports are free on the host.
    expect((await h.api('POST', '/v1/api/heal/three/create', { sink: 'logger' })).statusCode).toBe(201);
    expect((await h.api('POST', '/v1/api/heal/two/stop')).statusCode).toBe(200);
    const owned = await portsOf('two');
    // Keep Redis empty while we create: no self-healing for now.
    await h.reconciler.stop();
    try {
      await redis.kill();
      await redis.start();
      await until(() => h.redis.ping().catch(() => 'down'), (x) => x === 'PONG', 10_000);
      expect(await h.redis.hlen(h.keys.ports())).toBe(0);
      const r = await h.api('POST', '/v1/api/heal/four/create', { sink: 'logger' });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toMatchObject({ error: 'NO_FREE_PORT' });
      expect(r.headers['retry-after']).toBe('5');
    } finally {
      h.reconciler.start();
    }
    await until(() => h.redis.hget(h.keys.ports(), String(owned[0])), (x) => x === 'flume-heal-two', 15_000);
    const started = await h.api('POST', '/v1/api/heal/two/start');
    expect(started.statusCode).toBe(200);
    expect(await portsOf('two')).toEqual(owned);
  });
});
