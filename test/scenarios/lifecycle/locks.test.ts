import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { javaProcessesMentioning } from '../../helpers/flume.js';
import { until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
});
afterAll(async () => {
  await h?.close();
});

describe('operations read the agent inside the table lock', () => {
  it('a start racing a delete never brings the deleted agent back; a second delete answers 404', async () => {
    for (const round of [1, 2, 3]) {
      const table = `race${round}`;
      const program = `flume-race-${table}`;
      expect((await h.api('POST', `/v1/api/race/${table}/create`)).statusCode).toBe(201);
      expect((await h.api('POST', `/v1/api/race/${table}/stop`)).statusCode).toBe(200);
      // Starts fired before, during and after the delete.
      const del = h.api('DELETE', `/v1/api/race/${table}`);
      const starts: Array<Promise<{ statusCode: number }>> = [];
      for (let i = 0; i < 8; i++) {
        starts.push(h.api('POST', `/v1/api/race/${table}/start`));
        await new Promise((r) => setTimeout(r, round * 40));
      }
      const [d, ...s] = await Promise.all([del, ...starts]);
      // Every start either ran whole before the delete took the table (200), found it busy (409)
      // or found it gone (404).
      for (const r of s) expect([200, 404, 409]).toContain(r.statusCode);
      if (d.statusCode === 409) {
        // A start held the table when the delete came: delete again, now nothing holds it.
        expect((await h.api('DELETE', `/v1/api/race/${table}`)).statusCode).toBe(200);
      } else {
        expect(d.statusCode).toBe(200);
      }
      const p = agentPaths(h.config, program);
      expect(existsSync(p.programFile)).toBe(false);
      expect(existsSync(p.metaFile)).toBe(false);
      expect((await h.driver.infoAll()).map((i) => i.name)).not.toContain(program);
      expect(await h.redis.get(h.keys.route('race', table))).toBeNull();
      expect(Object.values(await h.redis.hgetall(h.keys.ports()))).not.toContain(program);
      expect(await until(() => javaProcessesMentioning(p.flumeConf), (l) => l.length === 0, 30_000)).toEqual([]);
      expect((await h.api('GET', `/v1/api/race/${table}/status`)).statusCode).toBe(404);
      const again = await h.api('DELETE', `/v1/api/race/${table}`);
      expect(again.statusCode).toBe(404);
      expect(again.json()).toMatchObject({ error: 'AGENT_NOT_FOUND' });
    }
  });

  it('a 409 BUSY says which operation holds the table and since when', async () => {
    expect((await h.api('POST', '/v1/api/race/held/create')).statusCode).toBe(201);
    const restart = h.api('POST', '/v1/api/race/held/restart');
    const lock = await until(() => h.redis.get(h.keys.lock('flume-race-held')), (v) => v !== null, 10_000, 5);
    expect(lock).not.toBeNull();
    const busy = await h.api('POST', '/v1/api/race/held/stop');
    expect(busy.statusCode).toBe(409);
    const body = busy.json() as { error: string; message: string; details: { operation: string; since: string } };
    expect(body.error).toBe('BUSY');
    expect(body.details.operation).toBe('restart');
    expect(Date.parse(body.details.since)).toBeGreaterThan(Date.now() - 60_000);
    expect(body.message).toContain('restart in progress since');
    expect((await restart).statusCode).toBe(200);
  });
});
