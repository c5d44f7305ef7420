import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../helpers/flume.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';
import { openEventStream } from '../../helpers/webhook.js';

let h: Harness;
let stream: ReturnType<typeof openEventStream>;
const TABLES = ['a1', 'a2', 'a3', 'a4'];
type Op = { id: string; state: string; total: number; counts: Record<string, number>; results: Array<{ db: string; table: string; outcome: string; code: string | null; message: string }> };

const bulk = async (op: string, payload: object, token?: string) => {
  const r = await h.inject({ method: 'POST', url: `/v1/api/bulk/${op}`, payload, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  return r;
};
const finished = async (id: string) =>
  until(async () => (await h.inject({ method: 'GET', url: `/v1/api/operations/${id}` })).json().operation as Op, (o) => o.state === 'done', 120_000, 200);
const outcomes = (o: Op) => Object.fromEntries(o.results.map((r) => [`${r.db}.${r.table}`, r.outcome]));

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' });
  stream = openEventStream(`${base}/v1/api/events`, h.tokenFor('viewer'));
  await Promise.all(TABLES.map(async (t) => expect((await h.inject({ method: 'POST', url: `/v1/api/bulk_db/${t}/create`, payload: { sink: 'logger' } })).statusCode).toBe(201)));
  expect((await h.inject({ method: 'POST', url: '/v1/api/other/keep/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
});
afterAll(async () => {
  await stream?.close();
  await h?.close();
});

describe('bulk operations', () => {
  it('stops every agent of a db at once, reports each table, and leaves the others alone', async () => {
    const pids = await Promise.all(TABLES.map(async (t) => (await h.inject({ method: 'GET', url: `/v1/api/bulk_db/${t}/status` })).json().pid as number));
    const r = await bulk('stop', { db: 'bulk_db', concurrency: 4 });
    expect(r.statusCode).toBe(202);
    const { operation } = r.json();
    expect(r.headers.location).toBe(`/v1/api/operations/${operation.id}`);
    expect(operation).toMatchObject({ op: 'stop', total: 4, by: 'test-admin' });
    const done = await finished(operation.id);
    expect(done.counts).toEqual({ applied: 4, failed: 0, skipped: 0, pending: 0, cancelled: 0 });
    for (const pid of pids) expect(pidAlive(pid)).toBe(false);
    for (const t of TABLES) expect((await h.inject({ method: 'GET', url: `/v1/api/bulk_db/${t}/status` })).json()).toMatchObject({ state: 'STOPPED', desired: 'stopped' });
    expect((await h.inject({ method: 'GET', url: '/v1/api/other/keep/status' })).json().state).toMatch(/RUNNING|STARTING/);
    // Progress reached the event stream, one event per table, then the closing one.
    const events = await until(
      async () => stream.events.filter((e) => e.event === 'operation' && e.data.id === operation.id),
      (ev) => ev.some((e) => e.data.state === 'done'),
      10_000,
    );
    expect(events.filter((e) => e.data.table !== '').map((e) => e.data.outcome)).toEqual(['applied', 'applied', 'applied', 'applied']);

    const again = await finished((await bulk('stop', { db: 'bulk_db' })).json().operation.id);
    expect(again.counts).toMatchObject({ skipped: 4, applied: 0 });
    expect(again.results[0]!.message).toBe('already stopped');
  });

  it('starts a list of tables; a table without an agent fails by name, the rest go on', async () => {
    const r = await bulk('start', { tables: ['bulk_db.a1', 'bulk_db.a2', 'bulk_db.nope'], concurrency: 2 });
    const done = await finished(r.json().operation.id);
    expect(outcomes(done)).toEqual({ 'bulk_db.a1': 'applied', 'bulk_db.a2': 'applied', 'bulk_db.nope': 'failed' });
    expect(done.results.find((x) => x.table === 'nope')).toMatchObject({ code: 'AGENT_NOT_FOUND' });
    expect((await h.inject({ method: 'GET', url: '/v1/api/bulk_db/a1/status' })).json()).toMatchObject({ accepting: true });
  });

  it('restarts by state and pauses/resumes by list; a busy table fails with BUSY', async () => {
    const pid = (await h.inject({ method: 'GET', url: '/v1/api/bulk_db/a1/status' })).json().pid as number;
    const restart = await finished((await bulk('restart', { db: 'bulk_db', state: ['RUNNING', 'STARTING'] })).json().operation.id);
    expect(outcomes(restart)).toEqual({ 'bulk_db.a1': 'applied', 'bulk_db.a2': 'applied' });
    expect(pidAlive(pid)).toBe(false);
    expect((await h.inject({ method: 'GET', url: '/v1/api/bulk_db/a1/status' })).json()).toMatchObject({ accepting: true });

    const pause = await finished((await bulk('pause', { tables: ['bulk_db.a1', 'bulk_db.a2'] })).json().operation.id);
    expect(pause.counts.applied).toBe(2);
    expect((await h.inject({ method: 'GET', url: '/v1/api/bulk_db/a2/status' })).json().paused).toBe(true);
    const resume = await finished((await bulk('resume', { db: 'bulk_db' })).json().operation.id);
    expect(outcomes(resume)).toMatchObject({ 'bulk_db.a1': 'applied', 'bulk_db.a2': 'applied', 'bulk_db.a3': 'skipped' });

    // A table held by another operation: BUSY for it, the others still stop.
    const busyKey = h.keys.lock('flume-bulk_db-a1');
    await h.redis.set(busyKey, JSON.stringify({ id: 'x', operation: 'test', since: new Date().toISOString(), host: 'h', pid: 1 }), 'PX', 30_000);
    const stop = await finished((await bulk('stop', { tables: ['bulk_db.a1', 'bulk_db.a2'] })).json().operation.id);
    await h.redis.del(busyKey);
    expect(stop.results.find((x) => x.table === 'a1')).toMatchObject({ outcome: 'failed', code: 'BUSY' });
    expect(stop.results.find((x) => x.table === 'a2')).toMatchObject({ outcome: 'applied' });
  });

  it('refuses an empty selector, unknown operations and fields, and selectors outside the token', async () => {
    expect((await bulk('stop', {})).json()).toMatchObject({ code: 10011 });
    expect((await bulk('stop', { db: 'bulk_db', concurrency: 0 })).statusCode).toBe(400);
    expect((await bulk('stop', { db: 'bulk_db', color: 'red' })).statusCode).toBe(400);
    expect((await bulk('stop', { tables: ['no-dots'] })).statusCode).toBe(400);
    // /v1/api/bulk/explode reads as table "explode" of db "bulk", which takes no POST: 405 with what it takes.
    const unknown = await bulk('explode', { all: true });
    expect(unknown.statusCode).toBe(405);
    expect(String(unknown.headers.allow)).toContain('GET');
    expect(String(unknown.headers.allow)).not.toContain('POST');
    const limited = h.tokenFor('operator', ['other']);
    expect((await bulk('stop', { db: 'bulk_db' }, limited)).statusCode).toBe(403);
    expect((await bulk('stop', { tables: ['bulk_db.a3'] }, limited)).statusCode).toBe(403);
    expect((await bulk('stop', { db: 'bulk_db' }, h.tokenFor('viewer'))).statusCode).toBe(403);
    // "all" with a limited token reaches only its dbs.
    const all = await finished((await bulk('pause', { all: true }, limited)).json().operation.id);
    expect(outcomes(all)).toEqual({ 'other.keep': 'applied' });
    expect((await h.inject({ method: 'GET', url: '/v1/api/operations/00000000-0000-4000-8000-000000000000' })).json()).toMatchObject({ error: 'OPERATION_NOT_FOUND' });
    expect((await h.inject({ method: 'GET', url: '/v1/api/operations/nope' })).statusCode).toBe(400);
  });
});

describe('audit', () => {
  it('keeps who did what, with filters, admin only; the file has it too and refills a lost Redis', async () => {
    const r = await h.inject({ method: 'GET', url: '/v1/api/audit?db=bulk_db&limit=1000' });
    expect(r.statusCode).toBe(200);
    const entries = r.json().entries as Array<Record<string, unknown>>;
    expect(entries.filter((e) => e.action === 'POST /v1/api/:db/:table/create')).toHaveLength(4);
    expect(entries[entries.length - 1]).toMatchObject({ who: 'test-admin', role: 'admin', db: 'bulk_db', outcome: 'ok', status: 201 });

    const bulkEntries = (await h.inject({ method: 'GET', url: '/v1/api/audit?action=bulk/stop&outcome=ok' })).json().entries as Array<Record<string, unknown>>;
    expect(bulkEntries.length).toBeGreaterThanOrEqual(3);
    expect(bulkEntries[0]).toMatchObject({ status: 202, operationId: expect.any(String) });
    // Refused calls are counted apart (they cannot push real entries out of the trail).
    expect((await h.inject({ method: 'GET', url: '/v1/api/audit?who=test-viewer' })).json().entries).toEqual([]);
    const refused = await until(
      async () => (await h.inject({ method: 'GET', url: '/v1/api/audit/refused' })).json().entries as Array<Record<string, unknown>>,
      (e) => e.some((x) => x.who === 'test-viewer'),
      5000,
    );
    expect(refused.find((x) => x.who === 'test-viewer')).toMatchObject({ role: 'viewer', status: 403, actions: ['POST /v1/api/bulk/stop'], count: expect.any(Number) });

    expect((await h.inject({ method: 'GET', url: '/v1/api/audit', headers: { authorization: `Bearer ${h.tokenFor('operator')}` } })).statusCode).toBe(403);
    expect((await h.inject({ method: 'GET', url: '/v1/api/audit?limit=0' })).statusCode).toBe(400);
    expect((await h.inject({ method: 'GET', url: '/v1/api/audit?color=1' })).statusCode).toBe(400);

    const lines = readFileSync(join(h.config.varDir, 'audit.log'), 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(entries.length);
    // Redis loses everything under our prefix: the service notices and refills the trail.
    const total = (await h.inject({ method: 'GET', url: '/v1/api/audit?limit=1000' })).json().entries.length as number;
    const keys = await h.redis.keys(`${h.config.REDIS_KEY_PREFIX}*`);
    await h.redis.del(...keys);
    const back = await until(
      async () => (await h.inject({ method: 'GET', url: '/v1/api/audit?limit=1000' })).json().entries as unknown[],
      (e) => e.length >= total,
      20_000,
      250,
    );
    expect(back.length).toBeGreaterThanOrEqual(total);
  });
});
