import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A webhook receiver on a random loopback port; keeps every JSON body it gets, and each request as sent. */
export async function startWebhookReceiver(): Promise<{
  url: string;
  received: Array<Record<string, unknown>>;
  requests: Array<{ headers: Record<string, string | string[] | undefined>; body: string }>;
  close(): Promise<void>;
}> {
  const received: Array<Record<string, unknown>> = [];
  const requests: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ headers: req.headers, body });
      try {
        received.push(JSON.parse(body) as Record<string, unknown>);
      } catch {
        received.push({ raw: body });
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook`, received, requests, close: () => new Promise((r) => server.close(() => r())) };
}

/** Reads a server-sent-event stream with a bearer token (EventSource cannot send headers). */
export function openEventStream(url: string, token: string) {
  const events: Array<{ event: string; data: Record<string, unknown>; receivedAt: number }> = [];
  const ctl = new AbortController();
  const state = { opened: false };
  const done = (async () => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: ctl.signal });
    state.opened = res.ok;
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown>, receivedAt: Date.now() });
      }
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
