import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { PROJECT_ROOT } from '../../../src/config-kinds.js';
import type { AgentStatus } from '../../../src/resources/agent-status.js';
import { agentOf, postEvents, routePort } from '../../helpers/flume.js';
import { TestGateway } from '../../helpers/gateway.js';
import { startHarness, tempDir, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';

// The shipped alert rules against what a real stack exports: promtool checks them, then a
// promtool rule test is fed two real scrapes (before and after an agent is killed into a crash
// loop and stopped behind the service's back, and a Kafka sink loses its broker) and must fire
// exactly the alerts an operator expects, and no "agent down" for a table stopped on purpose.
const RULES = join(PROJECT_ROOT, 'monitoring', 'alerts.yml');
const dir = tempDir('alerts');
let h: Harness;
let gw: TestGateway;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(), CRASH_LOOP_EXITS: '3', RESYNC_INTERVAL_MS: '2000', FATAL_RETRY_BASE_SECONDS: '600', GATEWAY_PORT: String(await freePort()), GATEWAY_METRICS_PORT: String(await freePort()) });
  gw = new TestGateway(h.config);
  await gw.start();
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The samples of a Prometheus text scrape: series (name{labels}) -> value. Histogram buckets left out. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (!m || m[1]!.includes('_bucket')) continue;
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}
const scrape = async () => samples((await h.inject({ method: 'GET', url: '/metrics' })).body);
const status = async (table: string) => (await h.inject({ method: 'GET', url: `/v1/api/mon/${table}/status?fresh=true` })).json() as AgentStatus;

describe('the shipped alert rules', () => {
  it('pass promtool', () => {
    const r = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('fire for an agent killed into a crash loop and left down, and for a sink that lost its broker; not for a table stopped on purpose', async () => {
    const create = async (table: string, body: object, query = '') => {
      const r = await h.inject({ method: 'POST', url: `/v1/api/mon/${table}/create${query}`, payload: body });
      expect(r.statusCode, r.body).toBe(201);
    };
    await create('killed', { sink: 'logger' });
    await create('resting', { sink: 'logger' }, '?start=false');
    await create('stalled', { sink: 'kafka', options: { bootstrapServers: `127.0.0.1:${await freePort()}` } });
    await until(() => status('killed'), (s) => s.state === 'RUNNING' && s.accepting, 60_000, 250);
    const before = await scrape();

    // Three kill -9 in a row: a crash loop; then stopped in supervisord behind the service's back.
    for (let i = 0; i < 3; i++) {
      const s = await until(() => status('killed'), (x) => x.state === 'RUNNING' && x.accepting && x.pid !== null, 60_000, 250);
      process.kill(s.pid!, 'SIGKILL');
      await until(() => status('killed'), (x) => x.pid !== s.pid, 30_000, 200);
    }
    await until(() => h.incidentsOf('mon', 'killed'), (l) => l.some((x) => x.type === 'crash_loop'), 30_000, 250);
    await h.driver.stop('flume-mon-killed');
    await until(() => status('killed'), (x) => !x.accepting && x.desired === 'running', 30_000, 250);
    // The broker is not there: an event waits in the channel and the sink drains nothing.
    expect(await postEvents(agentOf(h.config, 'mon', 'stalled'), ['waits for a broker'])).toBe(200);
    const stalled = await until(() => status('stalled'), (x) => !!x.metrics && x.metrics.channelSize > 0, 60_000, 500);
    expect(stalled.metrics!.channelSize).toBeGreaterThan(0);
    await until(() => h.fleet.status('flume-mon-stalled')!, (x) => !!x.metrics && x.metrics.channelSize > 0 && (x.metrics.oldestEventAgeSeconds ?? 0) >= 1, 10_000, 200);
    const after = await scrape();
    // The event waits, and its age says so.
    expect(after.get('flume_agent_oldest_event_age_seconds{db="mon",table="stalled",program="flume-mon-stalled"}')).toBeGreaterThan(0);
    expect(after.get('flume_agent_oldest_event_age_seconds{db="mon",table="resting",program="flume-mon-resting"}')).toBeUndefined();
    expect(after.get('flume_agent_desired_running{db="mon",table="resting",program="flume-mon-resting"}')).toBe(0);
    expect(after.get('flume_service_agents{state="FATAL"}')).toBe(0); // zeros are exported, not left out

    // Each series: its first scrape for 5 minutes, then its second (missing: no sample).
    const value = (m: Map<string, number>, k: string) => (m.has(k) ? String(m.get(k)) : '_');
    // An age grows a minute per minute while the sink stays away.
    const growing = (k: string) => k.startsWith('flume_agent_oldest_event_age_seconds') && (after.get(k) ?? 0) > 0;
    const series = [...new Set([...before.keys(), ...after.keys()])]
      .filter((k) => k.startsWith('flume_'))
      .map((k) => ({ series: k, values: growing(k) ? `${value(before, k)}x4 ${value(after, k)}+60x40` : `${value(before, k)}x4 ${value(after, k)}x40` }));
    series.push({ series: 'up{job="flume-service",instance="api:8001"}', values: '1x44' });
    const rules = parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; labels: Record<string, string>; annotations: Record<string, string> }> }> };
    const rule = (name: string) => rules.groups[0]!.rules.find((r) => r.alert === name)!;
    const expected = (name: string, labels: Record<string, string>) => {
      const fill = (t: string) => t.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? '');
      return { exp_labels: { ...rule(name).labels, ...labels }, exp_annotations: Object.fromEntries(Object.entries(rule(name).annotations).map(([k, v]) => [k, fill(v)])) };
    };
    const agent = (table: string) => ({ db: 'mon', table, program: `flume-mon-${table}` });
    // Flume counts a failed write only once the producer gave up on a batch: fired if it did.
    const moved = (name: string) => (after.get(`${name}{db="mon",table="stalled",program="flume-mon-stalled"}`) ?? 0) > (before.get(`${name}{db="mon",table="stalled",program="flume-mon-stalled"}`) ?? 0);
    const sinkFailing = moved('flume_agent_sink_write_failures_total') || moved('flume_agent_sink_connection_failures_total');
    const test = {
      rule_files: [RULES],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: series,
          alert_rule_test: [
            { eval_time: '10m', alertname: 'FlumeAgentDown', exp_alerts: [expected('FlumeAgentDown', agent('killed'))] },
            { eval_time: '10m', alertname: 'FlumeAgentCrashLoop', exp_alerts: [expected('FlumeAgentCrashLoop', { type: 'crash_loop' })] },
            { eval_time: '10m', alertname: 'FlumeSinkFailing', exp_alerts: sinkFailing ? [expected('FlumeSinkFailing', agent('stalled'))] : [] },
            { eval_time: '30m', alertname: 'FlumeSinkStalled', exp_alerts: [expected('FlumeSinkStalled', agent('stalled'))] },
            { eval_time: '30m', alertname: 'FlumeEventsDelayed', exp_alerts: [expected('FlumeEventsDelayed', agent('stalled'))] },
            { eval_time: '10m', alertname: 'FlumeEventsDelayed', exp_alerts: [] },
            // Before anything happened: nothing fires.
            { eval_time: '3m', alertname: 'FlumeAgentDown', exp_alerts: [] },
            { eval_time: '3m', alertname: 'FlumeSinkFailing', exp_alerts: [] },
            { eval_time: '10m', alertname: 'FlumeServiceDown', exp_alerts: [] },
            { eval_time: '10m', alertname: 'FlumeServiceNotReady', exp_alerts: [] },
          ],
        },
      ],
    };
    const file = join(dir, 'alerts.test.yml');
    writeFileSync(file, stringify(test));
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
    // On a failure, what the two scrapes said of incidents and every incident raised, in order.
    const raised = async () => (await Promise.all(['killed', 'resting', 'stalled'].map((t) => h.incidentsOf('mon', t)))).flat().sort((x, y) => x.at.localeCompare(y.at)).map((i) => `${i.at} ${i.table} ${i.type}: ${i.message}`);
    const counts = (m: Map<string, number>) => [...m].filter(([k]) => k.startsWith('flume_service_incidents_total')).map(([k, v]) => `${k} ${v}`);
    expect(r.status, r.status === 0 ? '' : `${r.stdout}${r.stderr}\nbefore: ${counts(before).join(', ')}\nafter: ${counts(after).join(', ')}\nincidents:\n${(await raised()).join('\n')}`).toBe(0);
    expect(execFileSync('promtool', ['--version'], { encoding: 'utf8' })).toMatch(/promtool/);
  }, 240_000);

  it('and the Grafana dashboard queries only metrics the service exports, and the rules name none that it does not', async () => {
    const gateway = samples(await (await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/metrics`)).text());
    const names = new Set([...(await scrape()).keys(), ...gateway.keys()].map((k) => k.replace(/\{.*$/, '')));
    // Every histogram and counter the gateway declares, even before its first sample.
    for (const m of (await (await fetch(`http://127.0.0.1:${h.config.GATEWAY_METRICS_PORT}/metrics`)).text()).matchAll(/^# TYPE (\S+) (\w+)$/gm)) {
      names.add(m[1]!);
      if (m[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${m[1]}${suffix}`);
    }
    // Histograms: the scrape above leaves buckets out; their base name stands for them.
    for (const n of [...names]) if (n.endsWith('_count')) names.add(`${n.slice(0, -'_count'.length)}_bucket`);
    const dashboard = JSON.parse(readFileSync(join(PROJECT_ROOT, 'monitoring', 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }>; templating: { list: Array<{ query?: string }> } };
    const exprs = [...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)), ...dashboard.templating.list.map((t) => t.query ?? ''), readFileSync(RULES, 'utf8')];
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(flume_[a-z_]+)\b/g)].map((m) => m[1]!)).filter((n) => !/^flume_(mon|service)$/.test(n)));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((n) => !names.has(n))).toEqual([]);
    expect(dashboard.panels.filter((p) => p.targets).length).toBeGreaterThanOrEqual(12);
  });
});
