import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestGateway, ingest, setRoute } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';

// One address with no token floods the gateway (real nginx, two workers) with connections that
// never finish a request, or holds requests open; a valid sender on another address must still
// get its answers. The flood comes from 127.0.0.2 and 127.0.0.3 (loopback: every 127/8 address
// is this host's own).
const HEADER_TIMEOUT = 2;
// Long enough that the held requests of the second test still wait for their bodies while it probes.
const BODY_TIMEOUT = 4;
const PER_ADDRESS = 20;
let h: Harness;
let gw: TestGateway;
let agent: Server;
let token: string;
const events = (...bodies: string[]) => bodies.map((body) => ({ headers: {}, body }));

beforeAll(async () => {
  agent = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
  h = await startHarness({
    PORT_RANGE: await portRange(10),
    GATEWAY_PORT: String(await freePort()),
    GATEWAY_HEADER_TIMEOUT_SECONDS: String(HEADER_TIMEOUT),
    GATEWAY_BODY_TIMEOUT_SECONDS: String(BODY_TIMEOUT),
    GATEWAY_CONNECTIONS_PER_ADDRESS: String(PER_ADDRESS),
  });
  gw = new TestGateway(h.config);
  await gw.start();
  await setRoute(h, 'flood', 'target', `127.0.0.1:${(agent.address() as AddressInfo).port}`);
  const r = await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'sender', scope: ['flood'] } });
  token = (r.json() as { token: string }).token;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  await new Promise((r) => agent?.close(r));
});

/**
 * `n` connections from `from`, each sending `text` and then nothing; resolves once all are open
 * (with `until`: once each has received that text from the gateway).
 */
async function hold(from: string, n: number, text: string, until?: string): Promise<{ sockets: Socket[]; closed: () => number; answers: string[] }> {
  let closed = 0;
  const answers: string[] = [];
  const sockets: Socket[] = [];
  const open = (): Promise<void> =>
    new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port: h.config.GATEWAY_PORT, localAddress: from });
      s.setNoDelay(true);
      s.on('connect', () => {
        s.write(text);
        if (!until) resolve();
      });
      s.on('data', (d: Buffer) => {
        answers.push(d.toString());
        if (until && d.toString().includes(until)) resolve();
      });
      s.on('error', () => resolve());
      s.on('close', () => closed++);
      sockets.push(s);
    });
  for (let i = 0; i < n; i += 200) await Promise.all(Array.from({ length: Math.min(200, n - i) }, open));
  return { sockets, closed: () => closed, answers };
}

describe('a connection flood from one address', () => {
  it('leaves a valid sender on another address its answers, and is closed by the header timeout', async () => {
    const flood = await hold('127.0.0.2', 9000, 'POST /ingest/flood/target HTTP/1.1\r\nHost: gw\r\n');
    try {
      expect(flood.sockets.length).toBe(9000);
      const started = Date.now();
      for (let i = 0; i < 5; i++) {
        const r = await ingest(gw, 'flood', 'target', token, events(`during-${i}`));
        expect(r.status, JSON.stringify(r.json)).toBe(200);
      }
      console.log(`5 of 5 sends answered 200 in ${Date.now() - started} ms while 127.0.0.2 held 9,000 half-open connections`);
      // Every one of the flood's connections is closed once the header timeout passes.
      await until(async () => flood.closed(), (n) => n === 9000, (HEADER_TIMEOUT + 20) * 1000, 200);
      expect(gw.errorLog()).not.toContain('worker_connections are not enough');
    } finally {
      for (const s of flood.sockets) s.destroy();
    }
  }, 120_000);

  it('answers an address over its in-progress limit 429 TOO_MANY_CONNECTIONS with Retry-After; other addresses go on', async () => {
    // Whole headers, then a body that never comes: each is an ingest request in progress (the
    // gateway's 100 Continue says it has the headers and waits for the body).
    const held = await hold('127.0.0.3', PER_ADDRESS, `POST /ingest/flood/target HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n`, '100 Continue');
    try {
      const probe = () =>
        new Promise<string>((resolve) => {
          const s = connect({ host: '127.0.0.1', port: h.config.GATEWAY_PORT, localAddress: '127.0.0.3' }, () => {
            s.write(`POST /ingest/flood/target HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]`);
          });
          let text = '';
          s.on('data', (d: Buffer) => (text += d.toString()));
          s.on('close', () => resolve(text));
        });
      const over = await probe();
      expect(held.closed(), held.answers.join(' | ')).toBe(0);
      expect(over).toMatch(/^HTTP\/1\.1 429/);
      expect(over).toMatch(/\r\nRetry-After: 1\r\n/i);
      expect(JSON.parse(over.slice(over.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 10066, error: 'TOO_MANY_CONNECTIONS' });
      expect((await ingest(gw, 'flood', 'target', token, events('elsewhere'))).status).toBe(200);
      // The held requests' bodies never came: each is closed by the body timeout (408, or a reset).
      await until(async () => held.closed(), (n) => n === PER_ADDRESS, (BODY_TIMEOUT + 20) * 1000, 200);
    } finally {
      for (const s of held.sockets) s.destroy();
    }
  }, 60_000);
});
