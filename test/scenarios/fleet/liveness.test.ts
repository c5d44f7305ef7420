import { statfsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentOf, postEvents } from '../../helpers/flume.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';

let h: Harness;
// Straight to the agent (the route follows readiness and may be re-published meanwhile).

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(), FLEET_REFRESH_MS: '500' });
  // Flume refuses events once the channel's disk has less than minimumRequiredSpace usable:
  // ask for all but 512 MiB of what is usable now, inside the 1 GiB warning margin.
  const fs = statfsSync(h.config.STATE_DIR);
  const nearlyAll = Math.floor(fs.bavail * fs.bsize - 512 * 1024 ** 2);
  for (const [t, body] of [
    // file_roll: Flume's logger sink keeps no drain counter.
    ['busy', { sink: 'file_roll' }],
    ['full', { sink: 'logger', channel: { minimumRequiredSpace: nearlyAll } }],
    ['quiet', { sink: 'logger', idleMinutes: 0.1 }],
  ] as const) {
    const r = await h.inject({ method: 'POST', url: `/v1/api/live/${t}/create`, payload: body });
    expect(r.statusCode, r.body).toBe(201);
  }
});
afterAll(async () => {
  await h?.close();
});

describe('capacity and liveness', () => {
  it('turns degraded before the channel refuses events: the disk is within the margin of minimumRequiredSpace', async () => {
    const s = await until(() => h.status('live', 'full'), (x) => x.accepting && x.health === 'degraded', 30_000, 250);
    expect(s.healthReason).toMatch(/channel's disk has .* MiB usable; Flume refuses every event below/);
    expect(s.disk!.usableBytes).toBeGreaterThan(s.disk!.minimumRequiredBytes);
    // Still accepting: the warning comes first.
    expect(await postEvents(agentOf(h.config, 'live', 'full'), ['still-taken'])).toBe(200);
  });

  it('raises "idle" for a table that receives nothing past its limit, once per quiet period, not while paused', async () => {
    const first = await until(() => h.incidentsOf('live', 'quiet'), (l) => l.some((i) => i.type === 'idle'), 30_000, 250);
    expect(first.find((i) => i.type === 'idle')).toMatchObject({ severity: 'warning', details: { idleMinutes: 0.1 }, suggestedAction: expect.stringContaining('pause') });
    expect(await h.status('live', 'quiet')).toMatchObject({ health: 'degraded', healthReason: expect.stringMatching(/no events for \d+ min \(idle limit 0.1 min\)/) });
    // Events end the quiet period; a new one raises a second incident.
    expect(await postEvents(agentOf(h.config, 'live', 'quiet'), ['wake-up'])).toBe(200);
    await until(() => h.status('live', 'quiet'), (x) => x.health === 'healthy', 10_000, 200);
    const second = await until(() => h.incidentsOf('live', 'quiet'), (l) => l.filter((i) => i.type === 'idle').length === 2, 30_000, 250);
    expect(second[0]?.details.lastEventAt).not.toBeNull();
    // Paused: no idle incident, however long it stays quiet.
    expect((await h.inject({ method: 'POST', url: '/v1/api/live/quiet/pause' })).statusCode).toBe(200);
    expect(await postEvents(agentOf(h.config, 'live', 'quiet'), ['last-before-quiet'])).toBe(200);
    const refreshes = h.fleet.refreshes;
    await until(async () => h.fleet.refreshes, (n) => n >= refreshes + 18, 60_000, 250); // 9 s at 500 ms: past the 6 s limit
    expect((await h.incidentsOf('live', 'quiet')).filter((i) => i.type === 'idle')).toHaveLength(2);
    expect((await h.status('live', 'quiet')).healthReason).toMatch(/^intake paused/);
  });

  it('reports rates, memory and CPU, a history for sparklines, and a summary', async () => {
    for (let i = 0; i < 10; i++) expect(await postEvents(agentOf(h.config, 'live', 'busy'), Array.from({ length: 20 }, (_, j) => `e${i}-${j}`))).toBe(200);
    const s = await until(() => h.status('live', 'busy'), (x) => (x.rates?.inPerSecond ?? 0) > 0 && (x.rates?.outPerSecond ?? 0) > 0, 20_000, 250);
    expect(s.resources!.rssBytes).toBeGreaterThan(30 * 1024 ** 2);
    expect(s.resources!.cpuPercent).toEqual(expect.any(Number));
    const listing = (await h.inject({ method: 'GET', url: '/v1/api/services' })).json().agents[0];
    expect(listing).not.toHaveProperty('rates');

    const hist = await until(
      async () => (await h.inject({ method: 'GET', url: '/v1/api/live/busy/history' })).json(),
      (x) => x.points?.some((p: { inPerSecond: number | null }) => (p.inPerSecond ?? 0) > 0),
      30_000,
      500,
    );
    expect(hist).toMatchObject({ code: 0, program: 'flume-live-busy', intervalSeconds: 10 });
    expect(hist.points[0]).toMatchObject({ at: expect.any(String), rssBytes: expect.any(Number) });
    expect((await h.inject({ method: 'GET', url: '/v1/api/live/none/history' })).statusCode).toBe(404);

    const sum = (await h.inject({ method: 'GET', url: '/v1/api/summary' })).json();
    expect(sum).toMatchObject({ code: 0, agents: 3, paused: 1, byState: { RUNNING: 3 } });
    expect(sum.byHealth.degraded).toBeGreaterThanOrEqual(1);
    expect(sum.unacknowledgedIncidents).toBe(2);
    const limited = (await h.inject({ method: 'GET', url: '/v1/api/summary', headers: { authorization: `Bearer ${h.tokenFor('viewer', ['other'])}` } })).json();
    expect(limited).toMatchObject({ agents: 0, unacknowledgedIncidents: 0 });
  });
});
