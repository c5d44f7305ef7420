import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';

let h: Harness;

beforeAll(async () => {
  // A var/tokens/ with one corrupt record and one good one: start-up must still complete.
  h = await startHarness({ PORT_RANGE: await portRange() }, (dir) => {
    const tokens = join(dir, 'var', 'tokens');
    mkdirSync(tokens, { recursive: true });
    writeFileSync(join(tokens, 'broken.json'), '{"username": "broken", "user": {');
    writeFileSync(join(tokens, 'wrongshape.json'), '{"username": 7}');
    writeFileSync(
      join(tokens, 'kept.json'),
      JSON.stringify({ username: 'kept', user: { current: 'a'.repeat(40), previous: '', previousUntil: '0', scope: '*', exp: '0', createdAt: '1' }, tokens: { ['a'.repeat(40)]: { user: 'kept', scope: '*', exp: '0', graceUntil: '0' } } }),
    );
  });
});
afterAll(async () => {
  await h?.close();
});

describe('/readyz', () => {
  it('is ready although one token record on disk is corrupt; the good ones are restored', async () => {
    const ready = await h.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    const users = (await h.inject({ method: 'GET', url: '/v1/api/token' })).json() as { users: Array<{ username: string }> };
    expect(users.users.map((u) => u.username)).toEqual(['kept']);
  });

  it('answers 503 within its deadline while supervisord hangs, and 200 once it answers again', async () => {
    const pid = h.supervisord.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      // A hang check, not a speed assertion: without its own deadline /readyz would wait minutes.
      const r = await h.inject({ method: 'GET', url: '/readyz' });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toMatchObject({ error: 'NOT_READY', checks: { redis: 'ok', supervisord: expect.stringMatching(/no answer within/) } });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect((await h.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });
});
