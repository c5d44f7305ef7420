import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFlumeMetrics } from '../../../src/flume/client.js';
import { agentOf, postEvents, routePort } from '../../helpers/flume.js';
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
      expect(await postEvents(agentOf(h.config, 'logs', 'talk'), ['followed-line-1', 'followed-line-2'])).toBe(200);
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

  it('sets a logger\'s level in the running agent at once, forgets it on restart unless saved, and only through the API', async () => {
    const url = '/v1/api/logs/talk/loggers';
    const as = (role: 'viewer' | 'operator') => ({ authorization: `Bearer ${h.tokenFor(role)}` });
    const put = (logger: string, payload: object, role: 'viewer' | 'operator' = 'operator') => h.inject({ method: 'PUT', url: `${url}/${logger}`, payload, headers: as(role) });
    const levels = async () => (await h.inject({ method: 'GET', url, headers: as('viewer') })).json() as { loggers: Record<string, string> | null; saved: Record<string, string> };
    const log = async () => ((await h.inject({ method: 'GET', url: '/v1/api/logs/talk/logs?lines=1000' })).json().lines as string[]).join('\n');
    const agent = agentOf(h.config, 'logs', 'talk');
    const sink = 'org.apache.flume.sink.LoggerSink';
    const meta = JSON.parse(readFileSync(join(h.config.servicesDir, 'flume-logs-talk', 'agent.json'), 'utf8')) as { metricsPort: number };

    expect(await levels()).toMatchObject({ loggers: { root: 'INFO' }, saved: {} });
    // WARN: the logger sink's INFO lines (each event's body) stop at once, no restart.
    const quiet = await put(sink, { level: 'WARN' });
    expect(quiet.statusCode, quiet.body).toBe(200);
    expect(quiet.json().loggers[sink]).toBe('WARN');
    const drained = async () => (await readFlumeMetrics(meta.metricsPort))?.eventsDrained ?? -1;
    const before = await drained();
    expect(await postEvents(agent, ['muted-line-1'])).toBe(200);
    await until(drained, (n) => n > before, 20_000); // taken by the sink while it was WARN
    expect((await put(sink, { level: 'INFO' })).statusCode).toBe(200);
    expect(await postEvents(agent, ['heard-line-1'])).toBe(200);
    const text = await until(log, (t) => t.includes('heard-line-1'), 20_000);
    expect(text).not.toContain('muted-line-1');

    // Only the API may: the JVM's own endpoint (127.0.0.1, any local user) wants the agent's key.
    const keyFile = join(h.config.servicesDir, 'flume-logs-talk', 'control.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    for (const headers of [{}, { 'x-flume-control-key': 'x'.repeat(43) }] as Array<Record<string, string>>) {
      const direct = await fetch(`http://127.0.0.1:${meta.metricsPort}/loggers?name=root&level=TRACE`, { method: 'PUT', headers });
      expect(direct.status).toBe(401);
    }
    expect((await fetch(`http://127.0.0.1:${meta.metricsPort}/metrics`)).status).toBe(200);
    expect((await levels()).loggers!.root).toBe('INFO');
    expect((await put('root', { level: 'TRACE' }, 'viewer')).statusCode).toBe(403);
    for (const [logger, body] of [['root', { level: 'LOUD' }], ['root', { level: 'info' }], ['a..b', { level: 'INFO' }], ['root', {}], ['root', { level: 'INFO', extra: 1 }]] as const) {
      const bad = await put(logger, body);
      expect(bad.statusCode, `${logger} ${JSON.stringify(body)}`).toBe(400);
    }
    expect((await h.inject({ method: 'PUT', url: '/v1/api/logs/none/loggers/root', payload: { level: 'INFO' } })).statusCode).toBe(404);

    // A restart forgets what was not saved; a saved level is set again at every start.
    expect((await put(sink, { level: 'ERROR' })).statusCode).toBe(200);
    const saved = await put('org.apache.flume.channel', { level: 'ERROR', save: true });
    expect(saved.json()).toMatchObject({ saved: { 'org.apache.flume.channel': 'ERROR' } });
    expect((await h.inject({ method: 'POST', url: '/v1/api/logs/talk/restart' })).statusCode).toBe(200);
    const after = await until(levels, (l) => l.loggers !== null, 20_000);
    expect(after.loggers![sink]).toBeUndefined();
    expect(after.loggers!['org.apache.flume.channel']).toBe('ERROR');

    // Stopped: nothing to set now (409), but a saved level waits for the next start.
    expect((await h.inject({ method: 'POST', url: '/v1/api/logs/talk/stop' })).statusCode).toBe(200);
    const down = await put(sink, { level: 'DEBUG' });
    expect(down.statusCode).toBe(409);
    expect(down.json()).toMatchObject({ error: 'LOGGERS_UNAVAILABLE' });
    expect((await put(sink, { level: 'WARN', save: true })).json()).toMatchObject({ loggers: null, saved: { [sink]: 'WARN' } });
    expect((await h.inject({ method: 'DELETE', url: `${url}/org.apache.flume.channel` })).json().saved).toEqual({ [sink]: 'WARN' });
    expect((await h.inject({ method: 'POST', url: '/v1/api/logs/talk/start' })).statusCode).toBe(200);
    const started = await until(levels, (l) => l.loggers !== null, 20_000);
    expect(started.loggers).toMatchObject({ [sink]: 'WARN', root: 'INFO' });
    expect(started.loggers!['org.apache.flume.channel']).toBeUndefined();
  });
});

