import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { until } from '../helpers/wait.js';

let h: Harness;
let base: string;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: '29000-29099', RESYNC_INTERVAL_MS: '2000' });
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
  const sample = new RegExp(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(?:${label})(?:,${label})*\\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|\\+Inf|NaN))$`);
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
    expect([...m.keys()].some((k) => k.startsWith('flume_service_http_request_duration_seconds_bucket{method="GET",route="/v1/api/services"'))).toBe(true);
  });

  it('publishes an OpenAPI document of every route, generated from the route schemas', async () => {
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, Record<string, any>> };
    for (const p of ['/v1/api/{db}/{table}/create', '/v1/api/{db}/{table}/status', '/v1/api/services', '/v1/api/token', '/v1/api/token/{username}', '/v1/api/events', '/v1/api/reconcile', '/metrics']) {
      expect(doc.paths, p).toHaveProperty([p]);
    }
    const create = doc.paths['/v1/api/{db}/{table}/create']!.post;
    expect(create.parameters.find((p: { name: string }) => p.name === 'db').schema.pattern).toBe('^[a-z0-9][a-z0-9_]{0,47}$');
    expect(create.requestBody.content['application/json'].schema.properties.sink.enum).toEqual(['file_roll', 'hdfs', 'kafka', 'logger']);
    expect(create.requestBody.content['application/json'].schema.additionalProperties).toBe(false);
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

    const shot = join(mkdtempSync(join(tmpdir(), 'flume-dashboard-')), 'dashboard.png');
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

  it('the API docs page lists every operation', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/docs`);
    await page.locator('details').first().waitFor();
    expect(await page.locator('details').count()).toBeGreaterThanOrEqual(15);
    expect(await page.locator('summary', { hasText: '/v1/api/{db}/{table}/create' }).count()).toBe(1);
  });
});
