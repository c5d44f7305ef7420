import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { waitForLines } from '../../helpers/flume.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';

let h: Harness;
let gw: TestGateway;
let token: string;
const url = '/v1/api/shop/orders';
const events = (...bodies: string[]) => bodies.map((body) => ({ headers: {}, body }));
const revisions = async () => (await h.inject({ method: 'GET', url: `${url}/config/revisions` })).json().revisions as Array<Record<string, unknown>>;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()), CONFIG_REVISIONS_KEPT: '4' });
  gw = new TestGateway(h.config);
  await gw.start();
  expect((await h.inject({ method: 'POST', url: `${url}/create` })).statusCode).toBe(201);
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'cfg' } })).json().token;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
});

describe('config as a resource', () => {
  it('shows the desired config, its rendered flume.conf and the revision desired and running', async () => {
    const r = await h.inject({ method: 'GET', url: `${url}/config` });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body).toMatchObject({ code: 0, program: 'flume-shop-orders', revision: { desired: 1, running: 1 }, spec: { sink: 'file_roll', options: { rollInterval: 30 } } });
    expect(body.flumeConf).toContain('a1.sinks.k1.sink.rollInterval = 30');
    expect(await revisions()).toMatchObject([{ revision: 1, reason: 'create', outcome: 'applied', by: 'test-admin' }]);
    expect((await h.inject({ method: 'GET', url: '/v1/api/shop/nope/config' })).statusCode).toBe(404);
  });

  it('previews a change: per-field validation and a diff, nothing applied', async () => {
    const before = (await h.status('shop', 'orders', { fresh: true })).startedAt;
    const dry = await h.inject({ method: 'PATCH', url: `${url}/config?dryRun=true`, payload: { options: { rollInterval: 5 } } });
    expect(dry.statusCode).toBe(200);
    expect(dry.json()).toMatchObject({ outcome: 'dry_run', revision: 2, previousRevision: 1, spec: { options: { rollInterval: 5, batchSize: 100 } }, fields: [] });
    expect(dry.json().diff).toContain('-a1.sinks.k1.sink.rollInterval = 30');
    expect(dry.json().diff).toContain('+a1.sinks.k1.sink.rollInterval = 5');

    const bad = await h.inject({ method: 'PATCH', url: `${url}/config?dryRun=true`, payload: { options: { rollInterval: -1, nope: 1 } } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().details.fields.map((f: { field: string }) => f.field).sort()).toEqual(['options', 'options.rollInterval']);
    const mangled = await h.inject({ method: 'PUT', url: `${url}/config?dryRun=true`, payload: { options: { batchSize: 500 }, channel: { transactionCapacity: 100 } } });
    expect(mangled.statusCode).toBe(422);
    expect(mangled.json()).toMatchObject({ error: 'CONFIG_REJECTED', details: { fields: [{ field: 'options.batchSize' }] } });

    expect((await h.inject({ method: 'GET', url: `${url}/config` })).json().revision).toEqual({ desired: 1, running: 1 });
    expect(await revisions()).toHaveLength(1);
    expect((await h.status('shop', 'orders', { fresh: true })).startedAt).toBe(before);
  });

  it('applies a change on the same port and channel, events before and after arrive', async () => {
    const port = h.meta('shop', 'orders').port;
    expect((await ingest(gw, 'shop', 'orders', token, events('before-change'))).status).toBe(200);
    const r = await h.inject({ method: 'PATCH', url: `${url}/config`, payload: { channel: { capacity: 2_000_000 } } });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ outcome: 'applied', revision: 2, previousRevision: 1, spec: { channel: { capacity: 2_000_000 } } });
    expect(h.meta('shop', 'orders')).toMatchObject({ port, revision: 2 });
    expect(await h.status('shop', 'orders', { fresh: true })).toMatchObject({ state: 'RUNNING', accepting: true, revision: { desired: 2, running: 2 } });
    expect(readFileSync(agentPaths(h.config, 'flume-shop-orders').flumeConf, 'utf8')).toContain('a1.channels.c1.capacity = 2000000');
    expect((await ingest(gw, 'shop', 'orders', token, events('after-change'))).status).toBe(200);
    await waitForLines(agentPaths(h.config, 'flume-shop-orders').outDir, ['before-change', 'after-change']);
    // The same spec again changes nothing.
    const same = await h.inject({ method: 'PATCH', url: `${url}/config`, payload: { channel: { capacity: 2_000_000 } } });
    expect(same.json()).toMatchObject({ outcome: 'unchanged', revision: 2 });
  });

  it('reverts by itself a change that keeps the agent from accepting events, and says so', async () => {
    // More free disk required than any disk has: Flume starts, its file channel does not open,
    // and its source refuses every event.
    const r = await h.inject({ method: 'PATCH', url: `${url}/config`, payload: { channel: { minimumRequiredSpace: 1e15 } } });
    expect(r.statusCode).toBe(422);
    expect(r.json()).toMatchObject({ error: 'CONFIG_REVERTED', details: { revision: 3, restoredRevision: 2, restored: true } });
    expect(r.json().details.reason).toMatch(/file channel/);
    expect(await h.status('shop', 'orders', { fresh: true })).toMatchObject({ state: 'RUNNING', accepting: true, health: expect.any(String), revision: { desired: 2, running: 2 } });
    expect(readFileSync(agentPaths(h.config, 'flume-shop-orders').flumeConf, 'utf8')).toContain('a1.channels.c1.minimumRequiredSpace = 524288000');
    expect((await revisions()).at(-1)).toMatchObject({ revision: 3, outcome: 'reverted', error: expect.stringMatching(/Usable space exhausted/) });
    const incidents = (await h.inject({ method: 'GET', url: `${url}/incidents` })).json().incidents as Array<{ type: string; details: Record<string, unknown> }>;
    expect(incidents[0]).toMatchObject({ type: 'config_reverted', details: { revision: 3, restoredRevision: 2 } });
    expect((await ingest(gw, 'shop', 'orders', token, events('after-revert'))).status).toBe(200);
    await waitForLines(agentPaths(h.config, 'flume-shop-orders').outDir, ['before-change', 'after-change', 'after-revert']);
  });

  it('goes back to an earlier revision as a new one; keeps only the last N', async () => {
    const r = await h.inject({ method: 'POST', url: `${url}/config/rollback`, payload: { revision: 1 } });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ outcome: 'applied', revision: 4, spec: { channel: { capacity: 1_000_000 } } });
    expect((await revisions()).at(-1)).toMatchObject({ revision: 4, reason: 'rollback', from: 1 });
    // No revision given: the last good one before the desired (3 was reverted, so 2).
    const back = await h.inject({ method: 'POST', url: `${url}/config/rollback` });
    expect(back.json()).toMatchObject({ revision: 5, spec: { channel: { capacity: 2_000_000 } } });
    expect((await revisions()).map((x) => x.revision)).toEqual([2, 3, 4, 5]);
    const gone = await h.inject({ method: 'POST', url: `${url}/config/rollback`, payload: { revision: 1 } });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ error: 'REVISION_NOT_FOUND' });
  });

  it('stores a change for a stopped agent, which runs it at its next start', async () => {
    expect((await h.inject({ method: 'POST', url: `${url}/stop` })).statusCode).toBe(200);
    const r = await h.inject({ method: 'PUT', url: `${url}/config`, payload: { options: { rollInterval: 7 } } });
    expect(r.json()).toMatchObject({ outcome: 'stored', revision: 6 });
    expect(await h.status('shop', 'orders', { fresh: true })).toMatchObject({ state: 'STOPPED', revision: { desired: 6, running: null } });
    expect((await h.inject({ method: 'POST', url: `${url}/start` })).statusCode).toBe(200);
    expect(await h.status('shop', 'orders', { fresh: true })).toMatchObject({ accepting: true, revision: { desired: 6, running: 6 } });
  });
});

describe('JVM settings', () => {
  const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  it('runs agents with the lighter defaults and the shared class-data archive, and takes a table\'s own', async () => {
    const s = await h.status('shop', 'orders', { fresh: true });
    expect(cmdline(s.pid!)).toEqual(expect.arrayContaining(['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', `-XX:SharedArchiveFile=${h.config.AGENT_CDS_ARCHIVE}`]));
    // The archive is in use: mapped into the JVM (a mismatched one would be dropped, -Xshare:auto),
    // read-only where it was dumped (not relocated, so its pages stay shared between agents).
    expect(readFileSync(`/proc/${s.pid}/maps`, 'utf8')).toMatch(/^8[0-9a-f]{8}-[0-9a-f]+ r--p .*\/flume\.jsa$/m);
    // Started by our launcher (channel first, no 500 ms wait), built by the set-up into flume/lib.
    expect(cmdline(s.pid!)).toContain('flumeservice.Agent');
    const r = await h.inject({ method: 'PATCH', url: `${url}/config`, payload: { jvm: { heap: '64m', options: ['-XX:+UseSerialGC', '-Xss256k'] } } });
    expect(r.statusCode, r.body).toBe(200);
    const after = await h.status('shop', 'orders', { fresh: true });
    expect(cmdline(after.pid!)).toEqual(expect.arrayContaining(['-Xmx64m', '-XX:+UseSerialGC', '-Xss256k']));
    expect(cmdline(after.pid!)).not.toContain('-XX:TieredStopAtLevel=1');
    expect(after.accepting).toBe(true);
    // null: back to the service's defaults.
    expect((await h.inject({ method: 'PATCH', url: `${url}/config`, payload: { jvm: null } })).statusCode).toBe(200);
    expect(cmdline((await h.status('shop', 'orders', { fresh: true })).pid!)).toContain('-XX:TieredStopAtLevel=1');
  });
});

describe('pause and drain', () => {
  it('tells senders to retry while the agent drains, and reopens on resume', async () => {
    const p = await h.inject({ method: 'POST', url: `${url}/pause` });
    expect(p.statusCode).toBe(200);
    expect(p.json()).toMatchObject({ paused: true, accepting: true });
    const refused = await ingest(gw, 'shop', 'orders', token, events('while-paused'));
    expect(refused).toMatchObject({ status: 503, json: { code: 10107, error: 'AGENT_PAUSED' } });
    expect(refused.headers['retry-after']).toBe('30');
    const drained = await until(() => h.status('shop', 'orders', { fresh: true }), (s) => s.drained === true, 30_000, 250);
    expect(drained).toMatchObject({ paused: true, accepting: true, healthReason: expect.stringContaining('intake paused by test-admin') });
    // A restart keeps the pause.
    expect((await h.inject({ method: 'POST', url: `${url}/restart` })).json()).toMatchObject({ paused: true });
    expect((await ingest(gw, 'shop', 'orders', token, events('still-paused'))).status).toBe(503);

    expect((await h.inject({ method: 'POST', url: `${url}/resume` })).json()).toMatchObject({ paused: false });
    expect((await ingest(gw, 'shop', 'orders', token, events('after-resume'))).status).toBe(200);
    const lines = await waitForLines(agentPaths(h.config, 'flume-shop-orders').outDir, ['after-resume']);
    expect(lines).not.toContain('while-paused');
  });
});
