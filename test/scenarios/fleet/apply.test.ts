import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';

// Fleet as code: 30 tables made so from one document (PUT /v1/api/fleet), with profiles.
let h: Harness;
const DB = 'fa';
const names = Array.from({ length: 30 }, (_, i) => `t${String(i).padStart(2, '0')}`);
const RUNNING = ['t00', 't01', 't02'];
const SEED = { sink: 'logger', options: { maxBytesToLog: 16 } };

type Op = { id: string; state: string; counts: Record<string, number>; results: Array<{ db: string; table: string; outcome: string; code: string | null; message: string }> };
type Plan = { entries: Array<{ table: string; action: string; diff: string | null; revision: number | null }>; counts: Record<string, number> };

/** 25 of the 30 (t25..t29 absent); t00..t09 take the "wide" profile as given. */
const fleetDoc = (wide: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  profiles: { base: { sink: 'logger', options: { maxBytesToLog: 16 } }, wide },
  tables: {
    ...Object.fromEntries(names.slice(0, 25).map((t, i) => [`${DB}.${t}`, { profiles: i < 10 ? ['base', 'wide'] : ['base'] }])),
    ...extra,
  },
});
const put = (doc: unknown, query: string, token?: string) =>
  h.inject({ method: 'PUT', url: `/v1/api/fleet?${query}`, payload: doc as object, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
const finished = async (id: string) =>
  until(async () => (await h.inject({ method: 'GET', url: `/v1/api/operations/${id}` })).json().operation as Op, (o) => o.state !== 'running', 180_000, 300);
const revisionOf = async (t: string) => (await h.inject({ method: 'GET', url: `/v1/api/${DB}/${t}/config` })).json().revision.desired as number;
const revisions = async (of = names) => Object.fromEntries(await Promise.all(of.map(async (t) => [t, await revisionOf(t)] as const)));
const pids = async () => Object.fromEntries(await Promise.all(RUNNING.map(async (t) => [t, (await h.status(DB, t)).pid] as const)));

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
  await Promise.all(
    names.map(async (t) => {
      const r = await h.inject({ method: 'POST', url: `/v1/api/${DB}/${t}/create${RUNNING.includes(t) ? '' : '?start=false'}`, payload: SEED });
      expect(r.statusCode, t).toBe(201);
    }),
  );
  for (const t of RUNNING) await h.waitFor(DB, t, (s) => s.accepting);
}, 240_000);
afterAll(async () => {
  await h?.close();
});

describe('fleet as code', () => {
  it('exports the set as a document that applies as it is (nothing to do)', async () => {
    const r = await h.inject({ method: 'GET', url: `/v1/api/fleet?db=${DB}` });
    expect(r.statusCode).toBe(200);
    const fleet = r.json().fleet as { tables: Record<string, unknown> };
    expect(Object.keys(fleet.tables)).toHaveLength(30);
    expect(fleet.tables[`${DB}.t00`]).toMatchObject({ sink: 'logger', options: { maxBytesToLog: 16 } });
    const dry = await put(fleet, `db=${DB}&dryRun=true`);
    expect(dry.statusCode).toBe(200);
    expect(dry.json().plan.counts).toEqual({ create: 0, change: 0, unchanged: 30, absent: 0, delete: 0 });
  });

  it('previews exactly the changes and the absent tables, and changes nothing', async () => {
    const before = await revisions();
    const r = await put(fleetDoc({ options: { maxBytesToLog: 64 } }), `db=${DB}&dryRun=true`);
    expect(r.statusCode).toBe(200);
    const plan = r.json().plan as Plan;
    expect(plan.counts).toEqual({ create: 0, change: 10, unchanged: 15, absent: 5, delete: 0 });
    const listed = plan.entries.filter((e) => e.action !== 'unchanged');
    expect(listed.map((e) => `${e.table}:${e.action}`)).toEqual([...names.slice(0, 10).map((t) => `${t}:change`), ...names.slice(25).map((t) => `${t}:absent`)]);
    for (const e of listed.filter((x) => x.action === 'change')) expect(e.diff).toMatch(/\+a1\.sinks\.k1\.maxBytesToLog = 64/);
    expect(await revisions()).toEqual(before);
  });

  it('halts after a canary that does not come up: it is reverted and no other table is touched', async () => {
    const [before, running] = [await revisions(), await pids()];
    // More free disk required than any disk has: t00 (running, the canary) does not accept events.
    const r = await put(fleetDoc({ channel: { minimumRequiredSpace: 1e15 } }), `db=${DB}&canary=1`);
    expect(r.statusCode).toBe(202);
    expect(r.headers.location).toBe(`/v1/api/operations/${r.json().operation.id}`);
    const o = await finished(r.json().operation.id);
    expect(o.state).toBe('halted');
    expect(o.results.find((x) => x.table === 't00')).toMatchObject({ outcome: 'failed', code: 'CONFIG_REVERTED' });
    expect(o.counts).toEqual({ applied: 0, failed: 1, skipped: 20, pending: 0, cancelled: 9 });
    for (const x of o.results.filter((y) => y.outcome === 'cancelled')) expect(x.message).toMatch(/^halted: fa\.t00 failed/);
    // Nothing else changed: the same revisions desired, the other running agents the same JVMs.
    expect(await revisions()).toEqual(before);
    expect((await pids()).t01).toBe(running.t01);
    expect((await pids()).t02).toBe(running.t02);
    expect(await h.status(DB, 't00', { fresh: true })).toMatchObject({ state: 'RUNNING', accepting: true });
  });

  it('applies a profile change to its tables (canary, then the rest); applying it again restarts no agent', async () => {
    const before = await revisions();
    const r = await put(fleetDoc({ options: { maxBytesToLog: 64 } }), `db=${DB}&canary=2&concurrency=4`);
    expect(r.statusCode).toBe(202);
    const o = await finished(r.json().operation.id);
    expect(o.state).toBe('done');
    expect(o.counts).toEqual({ applied: 10, failed: 0, skipped: 20, pending: 0, cancelled: 0 });
    const after = await revisions();
    // A new revision for each of the 10 (t00's reverted one above keeps its number: revisions only grow); the rest as they were.
    for (const t of names) expect(after[t]! > before[t]!, t).toBe(names.indexOf(t) < 10);
    for (const t of RUNNING) expect(await h.status(DB, t, { fresh: true }), t).toMatchObject({ state: 'RUNNING', accepting: true, revision: { desired: after[t], running: after[t] } });
    expect((await h.inject({ method: 'GET', url: `/v1/api/${DB}/t05/config` })).json().spec.options.maxBytesToLog).toBe(64);

    const running = await pids();
    const again = await put(fleetDoc({ options: { maxBytesToLog: 64 } }), `db=${DB}`);
    expect(again.json().plan.counts).toEqual({ create: 0, change: 0, unchanged: 25, absent: 5, delete: 0 });
    const o2 = await finished(again.json().operation.id);
    expect(o2.counts).toEqual({ applied: 0, failed: 0, skipped: 30, pending: 0, cancelled: 0 });
    expect(await pids()).toEqual(running);
    expect(await revisions()).toEqual(after);
  });

  it('creates what is new, and deletes absent tables only when asked (drained first)', async () => {
    const doc = fleetDoc({ options: { maxBytesToLog: 64 } }, { [`${DB}.fresh`]: { profiles: ['base'] } });
    const plan = (await put(doc, `db=${DB}&prune=true&dryRun=true`)).json().plan as Plan;
    expect(plan.counts).toEqual({ create: 1, change: 0, unchanged: 25, absent: 0, delete: 5 });
    const o = await finished((await put(doc, `db=${DB}&prune=true`)).json().operation.id);
    expect(o.counts).toEqual({ applied: 6, failed: 0, skipped: 25, pending: 0, cancelled: 0 });
    expect(await h.waitFor(DB, 'fresh', (x) => x.state === 'RUNNING' && x.accepting)).toMatchObject({ desired: 'running' });
    for (const t of names.slice(25)) expect((await h.inject({ method: 'GET', url: `/v1/api/${DB}/${t}/status` })).statusCode, t).toBe(404);
    expect((await h.inject({ method: 'GET', url: `/v1/api/fleet?db=${DB}` })).json().fleet.tables).toHaveProperty(`${DB}.fresh`);
  });

  it('refuses a bad document whole, naming each table and field, and changes nothing', async () => {
    const kept = names.slice(0, 25);
    const before = await revisions(kept);
    const good = fleetDoc({ options: { maxBytesToLog: 64 } });
    const unknownProfile = await put({ ...good, tables: { ...good.tables, [`${DB}.t03`]: { profiles: ['nope'] } } }, `db=${DB}`);
    expect(unknownProfile.statusCode).toBe(400);
    expect(unknownProfile.json()).toMatchObject({ error: 'INVALID_REQUEST', details: { fields: [{ field: `tables.${DB}.t03.profiles` }] } });
    const badSpec = await put({ ...good, tables: { ...good.tables, [`${DB}.t03`]: { sink: 'kafka' }, [`${DB}.t04`]: { profiles: ['base'], channel: { capacity: -1 } } } }, `db=${DB}`);
    expect(badSpec.statusCode).toBe(400);
    const fields = (badSpec.json().details.fields as Array<{ field: string }>).map((f) => f.field);
    expect(fields.some((f) => f.startsWith(`tables.${DB}.t03`))).toBe(true);
    expect(fields.some((f) => f.startsWith(`tables.${DB}.t04.channel`))).toBe(true);
    expect((await put({ tables: { 'other.x': { sink: 'logger' } } }, `db=${DB}`)).json()).toMatchObject({ error: 'INVALID_REQUEST', message: expect.stringMatching(/not of db fa/) });
    expect((await put({ tables: { 'no-dots': {} } }, `db=${DB}`)).statusCode).toBe(400);
    expect((await put({ tables: {}, colour: 'blue' }, `db=${DB}`)).statusCode).toBe(400);
    expect((await put(good, `db=${DB}&canary=-1`)).statusCode).toBe(400);
    // Roles and reach: a viewer may read, not apply; a token of another db may not touch this one.
    expect((await put(good, `db=${DB}&dryRun=true`, h.tokenFor('viewer'))).statusCode).toBe(403);
    expect((await h.inject({ method: 'GET', url: `/v1/api/fleet`, headers: { authorization: `Bearer ${h.tokenFor('viewer')}` } })).statusCode).toBe(200);
    const other = h.tokenFor('operator', ['other']);
    expect((await put(good, 'dryRun=true', other)).json()).toMatchObject({ error: 'FORBIDDEN' });
    expect(Object.keys((await h.inject({ method: 'GET', url: '/v1/api/fleet', headers: { authorization: `Bearer ${other}` } })).json().fleet.tables)).toEqual([]);
    // An empty set with prune, from a token limited to another db, deletes nothing of this one.
    const none = await finished((await put({ tables: {} }, 'prune=true', other)).json().operation.id);
    expect(none.counts).toEqual({ applied: 0, failed: 0, skipped: 0, pending: 0, cancelled: 0 });
    expect(await revisions(kept)).toEqual(before);
  });
});
