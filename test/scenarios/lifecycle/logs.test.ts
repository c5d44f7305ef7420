import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postEvents, routePort } from '../../helpers/flume.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';
import { openEventStream } from '../../helpers/webhook.js';

let h: Harness;
let base: string;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
  base = await h.app.listen({ port: 0, host: '127.0.0.1' });
  expect((await h.inject({ method: 'POST', url: '/v1/api/logs/talk/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
});
afterAll(async () => {
  await h?.close();
});

describe("an agent's log", () => {
  it('returns its tail, bounded, to operators only', async () => {
    const r = await h.inject({ method: 'GET', url: '/v1/api/logs/talk/logs?lines=5' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ code: 0, program: 'flume-logs-talk' });
    expect(r.json().lines).toHaveLength(5);
    const all = (await h.inject({ method: 'GET', url: '/v1/api/logs/talk/logs' })).json().lines as string[];
    expect(all.join('\n')).toMatch(/Started Jetty|HTTP source|Component type: SOURCE/i);
    for (const q of ['lines=0', 'lines=1001', 'lines=x', 'follow=maybe', 'x=1']) {
      expect((await h.inject({ method: 'GET', url: `/v1/api/logs/talk/logs?${q}` })).statusCode, q).toBe(400);
    }
    expect((await h.inject({ method: 'GET', url: '/v1/api/logs/none/logs' })).statusCode).toBe(404);
    expect((await h.inject({ method: 'GET', url: '/v1/api/logs/talk/logs', headers: { authorization: `Bearer ${h.tokenFor('viewer')}` } })).statusCode).toBe(403);
  });

  it('follows new lines as server-sent events until the client leaves', async () => {
    const stream = openEventStream(`${base}/v1/api/logs/talk/logs?follow=true&lines=1`, h.tokenFor('operator'));
    try {
      await until(async () => stream.events.length, (n) => n >= 1, 10_000);
      const port = (await routePort(h.redis, h.keys, 'logs', 'talk'))!;
      expect(await postEvents(port, ['followed-line-1', 'followed-line-2'])).toBe(200);
      // The logger sink writes each event's body into the agent's log.
      const lines = await until(
        async () => stream.events.filter((e) => e.event === 'line').map((e) => String(e.data.line)),
        (l) => l.some((x) => x.includes('followed-line-2')),
        20_000,
      );
      expect(lines.some((x) => x.includes('followed-line-1'))).toBe(true);
    } finally {
      await stream.close();
    }
  });
});
