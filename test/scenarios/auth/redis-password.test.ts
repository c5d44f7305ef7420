import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config-load.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { startHarness, tempDir, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { TestRedisServer } from '../../helpers/redis-server.js';
import { freePort } from '../../helpers/wait.js';

// The embedded Redis has a generated password (scripts/up.sh): API, event listener and gateway
// read it from a file (REDIS_PASSWORD_FILE), never from an environment or a command line.
const password = randomBytes(24).toString('base64url');
const redis = new TestRedisServer(password);
const dir = tempDir('redis-pw');
const file = join(dir, 'password');
let h: Harness;
let gw: TestGateway;

beforeAll(async () => {
  await redis.start();
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  h = await startHarness({ REDIS_URL: redis.url, REDIS_PASSWORD_FILE: file, PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()) });
  gw = new TestGateway(h.config);
  await gw.start();
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a Redis with a password', () => {
  it('serves the API and the gateway with the password from REDIS_PASSWORD_FILE', async () => {
    expect((await h.inject({ method: 'POST', url: '/v1/api/pw/events/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
    const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'pw-sender' } })).json().token as string;
    const r = await ingest(gw, 'pw', 'events', token, [{ body: 'with a password' }]);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect((await h.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });

  it('stops start-up with a message naming the setting when the file cannot be read', () => {
    expect(() => loadConfig({ REDIS_URL: redis.url, REDIS_PASSWORD_FILE: join(dir, 'missing') })).toThrow(/REDIS_PASSWORD_FILE: cannot read/);
  });

  it('refuses clients without it', async () => {
    const { connect } = await import('node:net');
    const answer = await new Promise<string>((resolve) => {
      const sock = connect(redis.port, '127.0.0.1', () => sock.write('GET x\r\n'));
      sock.once('data', (d: Buffer) => (sock.destroy(), resolve(d.toString())));
      sock.once('error', (e) => resolve(e.message));
    });
    expect(answer).toMatch(/^-NOAUTH/);
  });
});
