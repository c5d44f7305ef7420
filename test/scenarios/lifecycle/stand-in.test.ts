import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sinkLines } from '../../helpers/flume.js';
import { TestGateway, startSender } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';
import { agentPaths, standInProgram } from '../../../src/store/paths.js';

// Restarts and config changes of a table that senders post to through the real gateway all
// along: each runs behind a stand-in (a second JVM of the table), so no sender is refused.
let h: Harness;
let gw: TestGateway;
let token: string;
const url = '/v1/api/zero/live';
const program = 'flume-zero-live';

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()), FLEET_REFRESH_MS: '300' });
  gw = new TestGateway(h.config);
  await gw.start();
  const r = await h.inject({ method: 'POST', url: `${url}/create`, payload: { sink: 'file_roll', options: { rollInterval: 0 } } });
  expect(r.statusCode, r.body).toBe(201);
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'sender', scope: ['zero'] } })).json().token as string;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
});

const standInGone = () =>
  until(
    async () => ({ status: await h.status('zero', 'live', { fresh: true }), files: existsSync(agentPaths(h.config, standInProgram(program)).serviceDir) }),
    (x) => x.status.standIn === null && !x.files,
    60_000,
    100,
  );

describe('changes behind the gateway', () => {
  it('restarts, changes config and bulk-restarts with senders never refused and nothing acknowledged lost', async () => {
    const senders = [0, 1, 2, 3].map((i) => startSender(gw, 'zero', 'live', token, `s${i}`));
    const answers = () => senders.flatMap((s) => s.answers);
    await until(async () => answers().filter((a) => a.status === 200).length, (n) => n >= 40, 30_000, 50);
    // What status shows meanwhile: the stand-in, serving and then draining.
    const phases = new Set<string>();
    let watchOn = true;
    const watching = until(
      async () => {
        const s = await h.status('zero', 'live', { fresh: true }).catch(() => null);
        if (s?.standIn) phases.add(s.standIn.phase);
        return !watchOn;
      },
      (stopped) => stopped,
      600_000,
      100,
    );
    const pids: number[] = [(await h.status('zero', 'live', { fresh: true })).pid!];
    const changes: Array<() => Promise<{ statusCode: number; body: string }>> = [
      () => h.inject({ method: 'POST', url: `${url}/restart` }),
      () => h.inject({ method: 'PATCH', url: `${url}/config`, payload: { channel: { capacity: 200_000 } } }),
      () => h.inject({ method: 'POST', url: `${url}/restart` }),
      () => h.inject({ method: 'PATCH', url: `${url}/config`, payload: { channel: { capacity: 300_000 } } }),
    ];
    for (const change of changes) {
      const r = await change();
      expect(r.statusCode, r.body).toBe(200);
      pids.push((await h.status('zero', 'live', { fresh: true })).pid!);
      await standInGone();
    }
    const bulk = await h.inject({ method: 'POST', url: '/v1/api/bulk/restart', payload: { db: 'zero' } });
    expect(bulk.statusCode, bulk.body).toBe(202);
    const id = bulk.json().operation.id as string;
    const done = await until(async () => (await h.inject({ method: 'GET', url: `/v1/api/operations/${id}` })).json().operation, (o) => o.state === 'done', 120_000, 200);
    expect(done.results).toMatchObject([{ db: 'zero', table: 'live', outcome: 'applied' }]);
    pids.push((await h.status('zero', 'live', { fresh: true })).pid!);
    await standInGone();
    // Each change ran a new JVM of the table, on its own port and channel as before.
    expect(new Set(pids).size).toBe(pids.length);
    expect(h.meta('zero', 'live')).toMatchObject({ revision: 3 });
    const settledAt = Date.now();
    await until(async () => answers().filter((a) => a.sentAt > settledAt && a.status === 200).length, (n) => n >= 20, 30_000, 50);
    await Promise.all(senders.map((s) => s.stop()));
    watchOn = false;
    await watching;
    const refused = answers().filter((a) => a.status !== 200 && a.status !== 429);
    expect(refused, JSON.stringify(refused.slice(0, 5))).toEqual([]);
    const accepted = answers().filter((a) => a.status === 200).map((a) => a.body);
    expect(accepted.length).toBeGreaterThan(100);
    const out = agentPaths(h.config, program).outDir;
    const delivered = await until(async () => new Set(sinkLines(out)), (s) => accepted.every((b) => s.has(b)), 60_000, 200);
    expect(accepted.filter((b) => !delivered.has(b))).toEqual([]);
    expect([...phases].sort()).toEqual(expect.arrayContaining(['draining', 'serving']));
  });

  it('leaves the running agent untouched when the new revision does not start, senders never refused', async () => {
    const before = await h.status('zero', 'live', { fresh: true });
    const sender = startSender(gw, 'zero', 'live', token, 'bad');
    await until(async () => sender.answers.filter((a) => a.status === 200).length, (n) => n >= 10, 30_000, 50);
    // More free disk required than any disk has: the stand-in's file channel does not open.
    const r = await h.inject({ method: 'PATCH', url: `${url}/config`, payload: { channel: { minimumRequiredSpace: 1e15 } } });
    expect(r.statusCode, r.body).toBe(422);
    expect(r.json()).toMatchObject({ error: 'CONFIG_REVERTED', details: { revision: 4, restoredRevision: 3, restored: true } });
    expect(r.json().message).toMatch(/revision 3 runs again/);
    const after = await h.status('zero', 'live', { fresh: true });
    expect(after).toMatchObject({ pid: before.pid, startedAt: before.startedAt, accepting: true, revision: { desired: 3, running: 3 }, standIn: null });
    expect(existsSync(agentPaths(h.config, standInProgram(program)).serviceDir)).toBe(false);
    const at = Date.now();
    await until(async () => sender.answers.filter((a) => a.sentAt > at && a.status === 200).length, (n) => n >= 5, 30_000, 50);
    await sender.stop();
    expect(sender.answers.filter((a) => a.status !== 200)).toEqual([]);
  });
});
