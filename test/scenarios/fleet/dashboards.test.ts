import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { agentOf, postEvents } from '../../helpers/flume.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

let h: Harness;
let base: string;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(), RESYNC_INTERVAL_MS: '2000' });
  base = await h.app.listen({ port: 0, host: '127.0.0.1' });
  for (const t of ['clicks', 'views']) {
    expect((await h.inject({ method: 'POST', url: `/v1/api/web/${t}/create`, payload: { sink: 'logger' } })).statusCode).toBe(201);
  }
});
afterAll(async () => {
  await h?.close();
});

/** Exposition-format lines: comments, or `name{labels} value`. Throws on anything else. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
  const sample = new RegExp(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(?:${label})(?:,${label})*\\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|\\+Inf|[Nn]a[Nn]))$`); // Prometheus parses NaN in any case (prom-client writes Nan)
  for (const line of text.split('\n')) {
    if (line === '' || /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const m = sample.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return samples;
}

describe('for dashboards', () => {
  it('answers an unchanged listing poll with 304, a changed one with 200', async () => {
    // Settle first: STARTING turns RUNNING (and healthy) once supervisord's startsecs pass.
    await until(
      async () => ((await h.inject({ method: 'GET', url: '/v1/api/services' })).json() as { agents: Array<{ health: string }> }).agents,
      (agents) => agents.every((a) => a.health === 'healthy'),
      30_000,
      200,
    );
    const first = await h.inject({ method: 'GET', url: '/v1/api/services' });
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^W\/".+"$/);
    // Two refreshes of the fleet model later (uptimes ticked), an unchanged fleet is still 304.
    const from = h.fleet.refreshes;
    await until(() => h.fleet.refreshes, (n) => n >= from + 2, 30_000);
    const again = await h.inject({ method: 'GET', url: '/v1/api/services', headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect((await h.inject({ method: 'POST', url: '/v1/api/web/views/stop' })).statusCode).toBe(200);
    const changed = await h.inject({ method: 'GET', url: '/v1/api/services', headers: { 'if-none-match': etag } });
    expect(changed.statusCode).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
    expect((await h.inject({ method: 'POST', url: '/v1/api/web/views/start' })).statusCode).toBe(200);
  });

  it('serves Prometheus metrics that parse', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const m = parsePrometheus(await res.text());
    expect(m.get('flume_agent_up{db="web",table="clicks",program="flume-web-clicks"}')).toBe(1);
    expect(m.has('flume_agent_channel_size{db="web",table="clicks",program="flume-web-clicks"}')).toBe(true);
    expect(m.get('flume_service_agents_health{health="down"}')).toBe(0);
    const keys = [...m.keys()];
    expect(keys.some((k) => k.startsWith('flume_service_http_request_duration_seconds_bucket{') && k.includes('method="GET",route="/v1/api/services"'))).toBe(true);
    // prom-client's process metrics: event-loop lag, heap, GC, memory.
    for (const name of ['nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes', 'process_resident_memory_bytes']) expect(m.has(name), name).toBe(true);
    expect(keys.some((k) => k.startsWith('nodejs_gc_duration_seconds_count'))).toBe(true);
  });

  it('publishes an OpenAPI document of every route, generated from the route schemas', async () => {
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, any>> };
    for (const p of ['/v1/api/{db}/{table}/create', '/v1/api/{db}/{table}/status', '/v1/api/services', '/v1/api/token', '/v1/api/token/{username}', '/v1/api/events', '/v1/api/reconcile', '/metrics']) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    const create = doc.paths['/v1/api/{db}/{table}/create']!.post;
    expect(create.parameters.find((p: { name: string }) => p.name === 'db').schema.pattern).toBe('^[a-z0-9][a-z0-9_]{0,47}$');
    // One body shape per sink, each with that sink's options: the same union the route validates with.
    const shapes = create.requestBody.content['application/json'].schema.oneOf as Array<Record<string, any>>;
    expect(shapes.map((b) => b.properties.sink.enum[0])).toEqual(['file_roll', 'hdfs', 'kafka', 'logger']);
    expect(shapes.every((b) => b.additionalProperties === false)).toBe(true);
    expect(shapes[2]!.properties.options.required).toEqual(['bootstrapServers']);
    expect(create.responses['201'].content['application/json'].schema.properties.health.enum).toContain('degraded');
    // Every error status names the one error schema.
    expect(create.responses['409'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
    expect((doc as any).components.schemas.Error.required).toEqual(['code', 'error', 'message']);
    // Operations that need no token say so; the rest need the bearer token.
    expect(doc.paths['/healthz']!.get.security).toEqual([]);
    expect(doc.paths['/v1/api/services']!.get.security).toBeUndefined();
  });

  it('answers router-level errors in the documented shape', async () => {
    const cases: Array<[string, number, string]> = [
      [`/v1/api/${'a'.repeat(120)}/b/status`, 414, 'URI_TOO_LONG'],
      ['/v1/api/%FF/b/status', 400, 'INVALID_REQUEST'],
      ['/v1/api/nope/nope/nope/nope', 404, 'NOT_FOUND'],
    ];
    for (const [url, status, error] of cases) {
      const res = await fetch(`${base}${url}`);
      expect(res.status, url).toBe(status);
      expect(await res.json(), url).toMatchObject({ code: expect.any(Number), error, message: expect.any(String) });
    }
    const big = await fetch(`${base}/v1/api/web/big/create`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.tokenFor('admin')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ options: { pad: 'x'.repeat(1_100_000) } }),
    });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 10060, error: 'BODY_TOO_LARGE' });
  });
});

describe('in a real browser (headless Chromium)', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('the dashboard shows agents live: a killed agent raises an incident and comes back; stop works', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 700 } });
    await page.goto(`${base}/dashboard`);
    await page.fill('#token', h.tokenFor('operator'));
    await page.click('#save');
    const clicks = page.locator('tr[data-program="flume-web-clicks"]');
    await clicks.locator('[data-testid="health"]', { hasText: 'healthy' }).waitFor({ timeout: 30_000 });
    await page.locator('#live.on').waitFor({ timeout: 10_000 });

    const { pid } = (await h.inject({ method: 'GET', url: '/v1/api/web/clicks/status' })).json() as { pid: number };
    process.kill(pid, 'SIGKILL');
    await page.locator('#incidents li[data-type="unexpected_exit"]', { hasText: 'web.clicks' }).waitFor({ timeout: 15_000 });
    await page.locator('tr.row-down[data-program="flume-web-clicks"] [data-testid="alert"]').waitFor({ timeout: 5_000 }); // red
    await page.locator('#incidents li[data-type="recovered"]', { hasText: 'web.clicks' }).waitFor({ timeout: 60_000 });
    await clicks.locator('[data-testid="health"]', { hasText: 'healthy' }).waitFor({ timeout: 60_000 });
    expect(await clicks.locator('[data-testid="alert"]').count()).toBe(0); // and back

    await page.locator('tr[data-program="flume-web-views"] button[data-op="stop"]').click();
    await page.locator('tr[data-program="flume-web-views"] [data-testid="state"]', { hasText: 'STOPPED' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('tr[data-program="flume-web-views"] [data-testid="health"]').textContent()).toBe('stopped');

    // The summary counts by health, and filters the table.
    await page.locator('#summary button[data-health="stopped"] b', { hasText: '1' }).waitFor({ timeout: 15_000 });
    await page.locator('#summary button[data-health="stopped"]').click();
    expect(await page.locator('#agents tr[data-program]').count()).toBe(1);
    await page.locator('#summary button[data-health="stopped"]').click();

    // The agent's own view: sparklines from its history, its incident (how it ended, what to
    // do) to acknowledge, its config revision and its log, fetched for this agent only.
    for (let i = 0; i < 5; i++) await postEvents(agentOf(h.config, 'web', 'clicks'), Array.from({ length: 50 }, (_, j) => `c${i}-${j}`));
    await clicks.locator('td').first().click();
    const detail = page.locator('[data-testid="detail"][data-program="flume-web-clicks"]');
    await detail.waitFor({ timeout: 10_000 });
    expect(await detail.locator('[data-testid="spark"]').count()).toBe(5);
    // How late its data is, from its status.
    await detail.locator('[data-testid="freshness"]', { hasText: /oldest waiting event: (none waits|\d+ s).*channel full: (not filling|in )/ }).waitFor({ timeout: 10_000 });
    await detail.locator('polyline:not([points=""])').first().waitFor({ timeout: 30_000 });
    await detail.locator('[data-testid="revision"]', { hasText: 'revision 1' }).waitFor({ timeout: 10_000 });
    expect(await detail.locator('[data-testid="log"]').textContent()).toMatch(/\S/);
    const exit = detail.locator('[data-testid="agent-incidents"] li[data-type="unexpected_exit"]').first();
    expect(await exit.textContent()).toMatch(/SIGKILL.*OOM killer/s);
    await exit.locator('button[data-ack]').click();
    await detail.locator('[data-testid="agent-incidents"] li[data-type="unexpected_exit"] [data-testid="acked"]', { hasText: 'acknowledged by test-operator' }).first().waitFor({ timeout: 10_000 });

    // A request's trace (written by the gateway; here straight into Redis): selecting the agent
    // filled in its table.
    const t0 = Date.now();
    await h.redis.hset(h.keys.traces('web', 'clicks', Math.floor(t0 / 60_000)), 'req-dash-1', `${t0},${t0 + 4},3,sink,1,3,0,${t0 + 19}`);
    expect(await page.inputValue('#trace-table')).toBe('web.clicks');
    await page.fill('#trace-id', 'req-dash-1');
    await page.click('#trace-form button');
    await page.locator('[data-testid="trace"]', { hasText: /3 event\(s\), answered on the sink[\s\S]*committed to the channel\s+\+4 ms[\s\S]*taken by the sink\s+by \+19 ms/ }).waitFor({ timeout: 10_000 });
    await page.fill('#trace-id', 'req-unknown');
    await page.click('#trace-form button');
    await page.locator('[data-testid="trace"]', { hasText: 'no trace of request req-unknown' }).waitFor({ timeout: 10_000 });

    // Each db's use of the gateway (the gateway adds it every second; here straight into Redis,
    // the last full minute) beside its quota.
    // (The minute before, this one and the next: the last full minute is one of them whenever the
    // page reads it within the next minute.)
    const minute = Math.floor(Date.now() / 60_000);
    // (A db nobody sends to here, so no gateway adds to these counts meanwhile.)
    for (const m of [minute - 1, minute, minute + 1]) await h.redis.hset(h.keys.usage(m), { 'ledger\te': '6000', 'ledger\tb': '600000', 'ledger\tshare': '7' });
    expect((await h.inject({ method: 'PUT', url: '/v1/api/quotas/ledger', payload: { eventsPerSecond: 250 } })).statusCode).toBe(200);
    await page.locator('[data-testid="tenants"] tr', { hasText: /^ledger100\.0250share 7$/ }).waitFor({ timeout: 25_000 });

    // DOCS_SCREENSHOT=docs/images/dashboard.png npm test -- test/scenarios/fleet/dashboards.test.ts
    // refreshes the picture docs/operations.md shows; otherwise it goes to a temp dir.
    const shot = process.env.DOCS_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), 'flume-dashboard-')), 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`dashboard screenshot: ${shot}`);
  });

  it('a viewer token sees the agents but may not stop one', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/dashboard`);
    await page.fill('#token', h.tokenFor('viewer'));
    await page.click('#save');
    await page.locator('tr[data-program="flume-web-clicks"]').waitFor({ timeout: 30_000 });
    await page.locator('tr[data-program="flume-web-clicks"] button[data-op="stop"]').click();
    await page.locator('#flash', { hasText: 'may not' }).waitFor({ timeout: 10_000 });
    expect((await h.inject({ method: 'GET', url: '/v1/api/web/clicks/status' })).json()).toMatchObject({ desired: 'running' });
  });

  it('works behind a proxy that serves the API under a path prefix', async () => {
    // A reverse proxy as an operator would put in front: /flume/<path> -> the API's /<path>.
    const api = new URL(base);
    const seen: string[] = [];
    const proxy = createServer((req, res) => {
      seen.push(req.url ?? '');
      if (!req.url?.startsWith('/flume/')) {
        res.writeHead(404).end();
        return;
      }
      const upstream = httpRequest(
        { host: api.hostname, port: api.port, method: req.method, path: req.url.slice('/flume'.length), headers: { ...req.headers, host: api.host } },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}/flume/dashboard`);
      await page.fill('#token', h.tokenFor('viewer'));
      await page.click('#save');
      await page.locator('tr[data-program="flume-web-clicks"] [data-testid="health"]', { hasText: 'healthy' }).waitFor({ timeout: 30_000 });
      await page.locator('#live.on').waitFor({ timeout: 10_000 });
      expect(seen.some((u) => u.startsWith('/flume/v1/api/services'))).toBe(true);
      expect(seen.some((u) => u.startsWith('/flume/v1/api/events'))).toBe(true);
      // Nothing the page asks for leaves the prefix (the browser's own /favicon.ico aside).
      expect(seen.filter((u) => !u.startsWith('/flume/') && u !== '/favicon.ico')).toEqual([]);
    } finally {
      proxy.closeAllConnections();
      proxy.close();
    }
  });

  it('the API docs page lists every operation', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/docs`);
    // Swagger UI, rendering /openapi.json: one block per operation.
    await page.locator('.opblock').first().waitFor();
    expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(15);
    expect(await page.locator('.opblock-summary-path[data-path="/v1/api/{db}/{table}/create"]').count()).toBe(1);
  });
});
