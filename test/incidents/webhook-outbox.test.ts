import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebhookOutbox } from '../../src/incidents/webhook-outbox.js';
import type { WebhookDelivery } from '../../src/resources/incident.js';
import { tempDir } from '../helpers/harness.js';
import { until } from '../helpers/wait.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A loopback HTTP server answering with `handle`; counts the requests it got. */
async function receiver(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const s = createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => handle(req, res));
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/hook`, hits: () => hits };
}

function outbox(url: string, reports: WebhookDelivery[]): WebhookOutbox {
  return new WebhookOutbox(tempDir('outbox'), [url], { retries: 2, baseMs: 100, secret: 's'.repeat(40) }, async (_p, _id, d) => reports.push(d), pino({ level: 'silent' }));
}

describe('webhook deliveries', () => {
  for (const status of [301, 302, 307, 308]) {
    it(`never follow a ${status}: the signed incident stays with the receiver, and the delivery is refused with its status`, async () => {
      const elsewhere = await receiver((_q, res) => res.writeHead(204).end());
      const hook = await receiver((_q, res) => res.writeHead(status, { location: elsewhere.url }).end());
      const reports: WebhookDelivery[] = [];
      const o = outbox(hook.url, reports);
      await o.start();
      await o.send('inc-1', { id: 'inc-1' }, 'flume-a-b');
      const [d] = await until(async () => reports, (r) => r.length > 0, 10_000, 20);
      o.stop();
      expect(d).toMatchObject({ outcome: 'refused', status, attempts: 1 });
      expect(hook.hits()).toBe(1);
      expect(elsewhere.hits()).toBe(0);
    });
  }

  it('are delivered on a 2xx, retried on a 5xx', async () => {
    let n = 0;
    const hook = await receiver((_q, res) => res.writeHead(++n === 1 ? 503 : 200).end());
    const reports: WebhookDelivery[] = [];
    const o = outbox(hook.url, reports);
    await o.start();
    await o.send('inc-2', { id: 'inc-2' }, 'flume-a-b');
    await until(async () => reports, (r) => r.some((d) => d.outcome === 'delivered'), 10_000, 20);
    o.stop();
    expect(reports.map((d) => [d.outcome, d.status])).toEqual([
      ['pending', 503],
      ['delivered', 200],
    ]);
  });
});
