import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../src/store/paths.js';
import { postEvents } from '../helpers/flume.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { portRange } from '../helpers/ports.js';
import { until } from '../helpers/wait.js';

let h: Harness;
const status = async (fresh = false) => (await h.inject({ method: 'GET', url: `/v1/api/quiet/t1/status${fresh ? '?fresh=true' : ''}` })).json();
const agentPort = () => (JSON.parse(readFileSync(agentPaths(h.config, 'flume-quiet-t1').metaFile, 'utf8')) as { port: number }).port;
const refreshes = async (n: number) => {
  const from = h.fleet.refreshes;
  await until(async () => h.fleet.refreshes, (r) => r >= from + n, 30_000, 50);
};

beforeAll(async () => {
  // Counters of a quiet agent are read once a minute here: long enough to see them stand.
  h = await startHarness({ PORT_RANGE: await portRange(), FLEET_REFRESH_MS: '300', FLEET_QUIET_COUNTERS_MS: '60000' });
  const r = await h.inject({ method: 'POST', url: '/v1/api/quiet/t1/create', payload: { sink: 'logger' } });
  expect(r.statusCode, r.body).toBe(201);
});
afterAll(async () => {
  await h?.close();
});

describe("a quiet agent's counters", () => {
  it('stand between reads while nothing moves; ?fresh=true reads them now, and once events move they are read every refresh', async () => {
    // RUNNING (supervisord's event, startsecs after the start, observes it afresh), then two equal reads: quiet.
    await until(() => status(), (s) => s.state === 'RUNNING', 30_000, 100);
    await refreshes(3);
    expect((await status()).metrics.eventsAccepted).toBe(0);
    expect(await postEvents(agentPort(), ['a', 'b', 'c'])).toBe(200);
    await refreshes(4);
    const stale = await status();
    // Still accepting (the source is probed every refresh), counters as last read.
    expect(stale).toMatchObject({ accepting: true, health: 'healthy', metrics: { eventsAccepted: 0 } });
    expect((await status(true)).metrics.eventsAccepted).toBe(3);
    // Moving now: the next refreshes read the counters again.
    expect(await postEvents(agentPort(), ['d', 'e'])).toBe(200);
    const moving = await until(() => status(), (s) => s.metrics.eventsAccepted === 5, 10_000, 100);
    expect(moving.metrics.eventsAccepted).toBe(5);
  });
});
