import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { EventSourceMessage } from 'eventsource-parser';
import { EventSourceParserStream } from 'eventsource-parser/stream';

/**
 * A webhook receiver on a loopback port (random, or `port`); keeps every JSON body it gets, and
 * each request as sent. With `secret`, it is the receiver docs/api.md describes: it verifies the
 * Standard Webhooks signature with a standard library (a bad one: 401, kept in `rejected`) and
 * keeps each message once by `webhook-id` in `byId` (`duplicates` counts repeats).
 */
export async function startWebhookReceiver(opts: { port?: number; secret?: string } = {}): Promise<{
  url: string;
  port: number;
  received: Array<Record<string, unknown>>;
  requests: Array<{ headers: Record<string, string | string[] | undefined>; body: string }>;
  byId: Map<string, Record<string, unknown>>;
  duplicates: number;
  rejected: number;
  close(): Promise<void>;
}> {
  const received: Array<Record<string, unknown>> = [];
  const requests: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
  const byId = new Map<string, Record<string, unknown>>();
  const counts = { duplicates: 0, rejected: 0 };
  const verifier = opts.secret ? new Webhook(`whsec_${Buffer.from(opts.secret, 'utf8').toString('base64')}`) : null;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ headers: req.headers, body });
      if (verifier) {
        try {
          const msg = verifier.verify(body, req.headers as Record<string, string>) as Record<string, unknown>;
          const id = String(req.headers['webhook-id']);
          if (byId.has(id)) counts.duplicates++;
          else byId.set(id, msg);
        } catch {
          counts.rejected++;
          res.writeHead(401).end();
          return;
        }
      }
      try {
        received.push(JSON.parse(body) as Record<string, unknown>);
      } catch {
        received.push({ raw: body });
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    received,
    requests,
    byId,
    get duplicates() {
      return counts.duplicates;
    },
    get rejected() {
      return counts.rejected;
    },
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Reads a server-sent-event stream with a bearer token (EventSource cannot send headers). */
export function openEventStream(url: string, token: string, lastEventId?: string) {
  const events: Array<{ id: string | null; event: string; data: Record<string, unknown>; receivedAt: number }> = [];
  const ctl = new AbortController();
  const state = { opened: false };
  const done = (async () => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }, signal: ctl.signal });
    state.opened = res.ok;
    const stream = res.body!.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
    for await (const m of stream as unknown as AsyncIterable<EventSourceMessage>) {
      if (m.event) events.push({ id: m.id ?? null, event: m.event, data: JSON.parse(m.data) as Record<string, unknown>, receivedAt: Date.now() });
    }
  })().catch(() => undefined);
  return {
    events,
    /** The server answered 200 and the stream is open. */
    get opened() {
      return state.opened;
    },
    close: async () => {
      ctl.abort();
      await done;
    },
  };
}
