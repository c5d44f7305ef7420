import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config-load.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { startHarness, tempDir, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { TestRedisServer } from '../../helpers/redis-server.js';
import { makeCertificates } from '../../helpers/certs.js';
import { freePort } from '../../helpers/wait.js';

// A Redis reached over TLS (rediss://) as an ACL user: the API, the event listener and the
// gateway all use it. The test makes its own CA and server certificate with openssl.
const dir = tempDir('redis-tls');
const user = { name: 'flume_svc', password: randomBytes(18).toString('base64url') };
let redis: TestRedisServer;
let certs: ReturnType<typeof makeCertificates>;
let h: Harness;
let gw: TestGateway;

beforeAll(async () => {
  certs = makeCertificates(dir);
  redis = new TestRedisServer(undefined, { user, tls: { cert: certs.cert, key: certs.key, ca: certs.ca } });
  await redis.start();
  h = await startHarness({ REDIS_URL: redis.url, REDIS_TLS_CA_FILE: certs.ca, PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()) });
  gw = new TestGateway(h.config);
  await gw.start();
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('Redis over TLS, as an ACL user', () => {
  it('serves the API and the gateway: events go through, the route and the token come from the TLS Redis', async () => {
    expect(redis.url).toMatch(/^rediss:\/\/flume_svc:/);
    expect((await h.inject({ method: 'POST', url: '/v1/api/tls/events/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
    const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'tls-sender' } })).json().token as string;
    const r = await ingest(gw, 'tls', 'events', token, [{ body: 'over TLS' }]);
    expect(r.status, `${JSON.stringify(r.json)}\n${gw.errorLog().slice(-2000)}`).toBe(200);
    expect((await h.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    // A load balancer's paths: up, and ready (it reaches Redis).
    expect(await (await fetch(`${gw.url}/healthz`)).json()).toEqual({ code: 0, message: 'ok' });
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('verifies the certificate: a gateway that trusts another CA reaches no Redis (503), it does not talk in the clear', async () => {
    const other = new TestGateway(loadConfig({ ...process.env, STATE_DIR: join(dir, 'other-state'), REDIS_URL: redis.url, REDIS_TLS_CA_FILE: certs.otherCa, REDIS_KEY_PREFIX: h.config.REDIS_KEY_PREFIX, GATEWAY_PORT: String(await freePort()), GATEWAY_STALE_SECONDS: '0', GATEWAY_CACHE_TTL_MS: '0' }));
    await other.start();
    try {
      const r = await ingest(other, 'tls', 'events', 'x'.repeat(40), [{ body: 'refused' }]);
      expect(r.status, `${JSON.stringify(r.json)}\n${other.errorLog().slice(-1500)}`).toBe(503);
      expect(r.json.error).toBe('REDIS_UNAVAILABLE');
      // Up, but not ready: a load balancer sends it nothing.
      expect((await fetch(`${other.url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${other.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ error: 'REDIS_UNAVAILABLE' });
      expect(ready.headers.get('retry-after')).toBe('1');
    } finally {
      await other.stop();
    }
  });

  it('refuses a REDIS_URL the gateway cannot speak, naming the setting', () => {
    expect(() => loadConfig({ REDIS_URL: 'unix:///var/run/redis.sock' })).toThrow(/REDIS_URL: must be redis:\/\//);
    expect(() => loadConfig({ REDIS_URL: redis.url, REDIS_TLS_CA_FILE: '/nope/ca.pem' })).toThrow(/REDIS_TLS_CA_FILE: cannot read/);
    expect(() => loadConfig({ REDIS_URL: redis.url, REDIS_TLS_CA_FILE: '/etc/x;include /etc/passwd' })).toThrow(/REDIS_TLS_CA_FILE/);
  });
});
