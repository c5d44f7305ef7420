import { readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config-load.js';
import { makeCertificates } from '../../helpers/certs.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { startHarness, tempDir, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort } from '../../helpers/wait.js';

// Senders on other machines: the gateway speaks HTTPS with a certificate the test makes, keeps
// connections alive, and offers plain HTTP on loopback only when asked.
const dir = tempDir('gw-tls');
const certs = makeCertificates(dir);
let h: Harness;
let gw: TestGateway;
let token: string;
let plainPort: number;

beforeAll(async () => {
  plainPort = await freePort();
  h = await startHarness({
    PORT_RANGE: await portRange(),
    GATEWAY_PORT: String(await freePort()),
    GATEWAY_TLS_CERT_FILE: certs.cert,
    GATEWAY_TLS_KEY_FILE: certs.key,
    GATEWAY_PLAIN_PORT: String(plainPort),
  });
  gw = new TestGateway(h.config);
  await gw.start();
  expect((await h.inject({ method: 'POST', url: '/v1/api/tls/orders/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'tls-sender' } })).json().token as string;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One POST over HTTPS, trusting `ca`, on `agent` (keep-alive): status, body, HTTP version, whether the socket was reused. */
function post(agent: Agent, ca: string, body: string): Promise<{ status: number; body: string; version: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: h.config.GATEWAY_PORT, path: '/ingest/tls/orders', method: 'POST', agent, ca: readFileSync(ca), headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, version: res.httpVersion, reused: req.reusedSocket }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('TLS at the gateway', () => {
  it('takes events over HTTPS, HTTP/1.1 with keep-alive', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await post(agent, certs.ca, JSON.stringify([{ headers: {}, body: 'over https 1' }]));
      expect(first, first.body).toMatchObject({ status: 200, version: '1.1', reused: false });
      const second = await post(agent, certs.ca, JSON.stringify([{ headers: {}, body: 'over https 2' }]));
      expect(second).toMatchObject({ status: 200, reused: true });
      expect(JSON.parse(second.body)).toMatchObject({ code: 0, events: 1 });
    } finally {
      agent.destroy();
    }
  });

  it('is the certificate made for it (a client trusting another CA refuses it), and takes no plain HTTP on its port', async () => {
    const agent = new Agent({ keepAlive: false });
    await expect(post(agent, certs.otherCa, '[]')).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    const plain = await fetch(`http://127.0.0.1:${h.config.GATEWAY_PORT}/ingest/tls/orders`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '[]' });
    expect(plain.status).toBe(400);
    await plain.arrayBuffer();
  });

  it('offers plain HTTP on loopback only, when GATEWAY_PLAIN_PORT asks for it', async () => {
    const r = await ingest(new TestGateway({ ...h.config, GATEWAY_TLS_CERT_FILE: undefined, GATEWAY_PORT: plainPort }), 'tls', 'orders', token, [{ headers: {}, body: 'plain on loopback' }]);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const conf = readFileSync(`${h.config.varDir}/gateway/nginx.conf`, 'utf8');
    expect(conf).toContain(`listen 127.0.0.1:${plainPort};`);
    expect(conf).toMatch(/ssl_protocols TLSv1\.2 TLSv1\.3;/);
  });

  it('refuses half a TLS setting, naming both', () => {
    expect(() => loadConfig({ GATEWAY_TLS_CERT_FILE: certs.cert })).toThrow(/GATEWAY_TLS_CERT_FILE, GATEWAY_TLS_KEY_FILE: set both/);
    expect(() => loadConfig({ GATEWAY_PLAIN_PORT: '8081' })).toThrow(/GATEWAY_PLAIN_PORT: only with TLS/);
    expect(() => loadConfig({ GATEWAY_TLS_CERT_FILE: '/nope.pem', GATEWAY_TLS_KEY_FILE: certs.key })).toThrow(/GATEWAY_TLS_CERT_FILE: cannot read/);
  });
});
