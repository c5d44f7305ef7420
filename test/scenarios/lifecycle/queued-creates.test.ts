import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';

// Creates wait their turn for the host's start queue (AGENT_START_CONCURRENCY, 1 here), are
// answered in the order they came, and say where they stand meanwhile.
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(), AGENT_START_CONCURRENCY: '1' });
});
afterAll(async () => {
  await h?.close();
});

describe('queued creates', () => {
  it('answers creates in the order they came, one JVM start at a time, with the queue visible in status', async () => {
    const tables = ['q1', 'q2', 'q3', 'q4'];
    const answered: string[] = [];
    const creates: Array<Promise<number>> = [];
    for (const t of tables) {
      creates.push(
        h.inject({ method: 'POST', url: `/v1/api/queue/${t}/create`, payload: { sink: 'logger' } }).then((r) => {
          answered.push(t);
          return r.statusCode;
        }),
      );
      // Each one arrives after the one before: its agent is on disk before the next is fired.
      await until(async () => (await h.inject({ method: 'GET', url: `/v1/api/queue/${t}/status` })).statusCode, (c) => c !== 404, 20_000, 10);
    }
    // The last one waits behind the others, and says so.
    const waiting = await until(
      async () => (await h.inject({ method: 'GET', url: '/v1/api/queue/q4/status' })).json(),
      (s) => s.queue !== null && s.queue !== undefined,
      20_000,
      20,
    );
    expect(waiting.queue).toMatchObject({ concurrency: 1 });
    expect(waiting.queue.position).toBeGreaterThanOrEqual(1);
    expect(waiting.health).toBe('starting');
    expect(waiting.healthReason).toMatch(/queued to start/);
    // A stop of another table and the listing do not wait behind the starts.
    const listing = await h.inject({ method: 'GET', url: '/v1/api/services' });
    expect(listing.statusCode).toBe(200);
    expect(listing.json().agents.find((s: { table: string }) => s.table === 'q4')?.queue).toBeTruthy();

    expect(await Promise.all(creates)).toEqual([201, 201, 201, 201]);
    expect(answered).toEqual(tables);
    for (const t of tables) {
      const s = (await h.inject({ method: 'GET', url: `/v1/api/queue/${t}/status?fresh=true` })).json();
      expect(s).toMatchObject({ accepting: true, queue: null });
    }
  });
});
