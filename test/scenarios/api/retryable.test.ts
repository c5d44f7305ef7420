import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { until } from '../../helpers/wait.js';
import type { Operation } from '../../../src/resources/operation.js';

let h: Harness;
const json = { 'content-type': 'application/json' };

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
});
afterAll(async () => {
  await h?.close();
});

const operation = async (id: string) => (await h.inject({ method: 'GET', url: `/v1/api/operations/${id}` })).json().operation as Operation;
const finished = (id: string) => until(() => operation(id), (o) => o.state !== 'running', 120_000, 200);

describe('an API clients can retry', () => {
  it('creates with a Location; the same create again is the same agent (200), another spec is 409 naming what differs', async () => {
    const body = { sink: 'logger', options: { maxBytesToLog: 32 } };
    const [a, b] = await Promise.all([
      h.inject({ method: 'POST', url: '/v1/api/api/orders/create', headers: { ...json, 'x-request-id': 'client-trace-1' }, payload: body }),
      // A client that timed out and tried again while the first create still runs.
      until(() => h.redis.exists(h.keys.lock('flume-api-orders')), (n) => n === 1, 10_000, 10).then(() =>
        h.inject({ method: 'POST', url: '/v1/api/api/orders/create', headers: json, payload: body }),
      ),
    ]);
    expect([a.statusCode, b.statusCode], `${a.body} ${b.body}`).toEqual([201, 200]);
    expect(a.headers.location).toBe('/v1/api/api/orders');
    expect(a.headers['x-request-id']).toBe('client-trace-1');
    expect(b.json()).toMatchObject({ program: 'flume-api-orders', pid: a.json().pid, accepting: true });
    expect(b.json().message).toContain('already created with this spec');

    // Key order does not make another spec.
    const again = await h.inject({ method: 'POST', url: '/v1/api/api/orders/create', headers: json, payload: { options: { maxBytesToLog: 32 }, sink: 'logger' } });
    expect(again.statusCode).toBe(200);
    expect(again.json().startedAt).toBe(a.json().startedAt);

    const other = await h.inject({ method: 'POST', url: '/v1/api/api/orders/create', headers: json, payload: { sink: 'logger', options: { maxBytesToLog: 64 } } });
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ error: 'AGENT_EXISTS', details: { differences: [{ field: 'options.maxBytesToLog', existing: 32, requested: 64 }] } });
    expect(other.json().message).toContain('options.maxBytesToLog');
    expect(other.json().requestId).toBe(other.headers['x-request-id']);
  });

  it('serves the agent at its own URL: status, spec, revision as ETag, links', async () => {
    const r = await h.inject({ method: 'GET', url: '/v1/api/api/orders' });
    expect(r.statusCode).toBe(200);
    expect(r.headers.etag).toBe('"1"');
    expect(r.json()).toMatchObject({
      agent: { program: 'flume-api-orders', accepting: true },
      spec: { sink: 'logger', options: { maxBytesToLog: 32 } },
      revision: 1,
      links: { self: '/v1/api/api/orders', config: '/v1/api/api/orders/config' },
    });
    expect((await h.inject({ method: 'GET', url: '/v1/api/api/nope' })).statusCode).toBe(404);
  });

  it('two concurrent edits of one config with If-Match: one 200, the other 412 with the current revision', async () => {
    const read = await h.inject({ method: 'GET', url: '/v1/api/api/orders/config' });
    const etag = read.headers.etag as string;
    expect(etag).toBe('"1"');
    const edit = (n: number) =>
      h.inject({ method: 'PATCH', url: '/v1/api/api/orders/config', headers: { ...json, 'if-match': etag }, payload: { options: { maxBytesToLog: n } } });
    const [x, y] = await Promise.all([edit(40), edit(48)]);
    const codes = [x.statusCode, y.statusCode].sort();
    // The second either found the table locked by the first (409 BUSY, retry) or, after it, a new revision (412).
    expect(codes[0]).toBe(200);
    const loser = x.statusCode === 200 ? y : x;
    const winner = x.statusCode === 200 ? x : y;
    expect(winner.headers.etag).toBe('"2"');
    if (loser.statusCode === 409) {
      expect(loser.json().error).toBe('BUSY');
      expect(Number(loser.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      const retried = await edit(48);
      expect(retried.statusCode).toBe(412);
      expect(retried.json()).toMatchObject({ error: 'PRECONDITION_FAILED', details: { revision: 2, etag: '"2"' } });
    } else {
      expect(loser.statusCode).toBe(412);
      expect(loser.json()).toMatchObject({ error: 'PRECONDITION_FAILED', details: { revision: 2 } });
    }
    // Nothing of the loser was applied.
    const now = await h.inject({ method: 'GET', url: '/v1/api/api/orders/config' });
    expect(now.headers.etag).toBe('"2"');
    expect(now.json().spec.options.maxBytesToLog).toBe(winner === x ? 40 : 48);
    // A malformed If-Match is a 400, not a silent overwrite.
    const bad = await h.inject({ method: 'PATCH', url: '/v1/api/api/orders/config', headers: { ...json, 'if-match': 'revision two' }, payload: { options: { maxBytesToLog: 1 } } });
    expect(bad.statusCode).toBe(400);
    expect((await h.inject({ method: 'GET', url: '/v1/api/api/orders/config' })).headers.etag).toBe('"2"');
  });

  it('PUT /v1/api/:db/:table declares the agent: created, then unchanged (nothing restarted), then a new revision', async () => {
    const spec = { sink: 'logger' };
    const created = await h.inject({ method: 'PUT', url: '/v1/api/api/declared', headers: json, payload: spec });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ outcome: 'created', agent: { accepting: true }, change: null });
    expect(created.headers.location).toBe('/v1/api/api/declared');
    const pid = (await h.status('api', 'declared', { fresh: true })).pid;

    const same = await h.inject({ method: 'PUT', url: '/v1/api/api/declared', headers: json, payload: spec });
    expect(same.statusCode).toBe(200);
    expect(same.json()).toMatchObject({ outcome: 'unchanged', change: { revision: 1 } });
    expect((await h.status('api', 'declared', { fresh: true })).pid).toBe(pid);

    const stale = await h.inject({ method: 'PUT', url: '/v1/api/api/declared', headers: { ...json, 'if-match': '"7"' }, payload: { sink: 'logger', options: { maxBytesToLog: 8 } } });
    expect(stale.statusCode).toBe(412);
    const changed = await h.inject({ method: 'PUT', url: '/v1/api/api/declared', headers: { ...json, 'if-match': '"1"' }, payload: { sink: 'logger', options: { maxBytesToLog: 8 } } });
    expect(changed.statusCode, changed.body).toBe(200);
    expect(changed.json()).toMatchObject({ outcome: 'applied', change: { revision: 2 }, agent: { accepting: true } });
    expect(changed.headers.etag).toBe('"2"');
    expect((await h.inject({ method: 'PUT', url: '/v1/api/api/nothing', headers: { ...json, 'if-match': '"1"' }, payload: spec })).statusCode).toBe(412);
    expect((await h.inject({ method: 'GET', url: '/v1/api/api/nothing' })).statusCode).toBe(404);
  });

  it('answers a long call at once with Prefer: respond-async; its operation finishes with the answer', async () => {
    const t0 = Date.now();
    const r = await h.inject({ method: 'POST', url: '/v1/api/api/later/create', headers: { ...json, prefer: 'respond-async' }, payload: { sink: 'logger' } });
    const answeredMs = Date.now() - t0;
    expect(r.statusCode, r.body).toBe(202);
    expect(r.headers['preference-applied']).toBe('respond-async');
    const id = r.json().operation.id as string;
    expect(r.headers.location).toBe(`/v1/api/operations/${id}`);
    expect(r.json().operation).toMatchObject({ kind: 'table', op: 'create', state: 'running', results: [{ table: 'later', outcome: 'pending' }] });
    const done = await finished(id);
    // The agent took seconds to accept; the 202 did not wait for it.
    expect(Date.parse(done.finishedAt!) - t0).toBeGreaterThan(answeredMs);
    expect(done).toMatchObject({ state: 'done', counts: { applied: 1 }, answer: { status: 201, body: { program: 'flume-api-later', accepting: true } } });
    expect((await h.status('api', 'later', { fresh: true })).accepting).toBe(true);

    // A failure is recorded as the error the call would have answered.
    const bad = await h.inject({ method: 'POST', url: '/v1/api/api/later/create', headers: { ...json, prefer: 'respond-async' }, payload: { sink: 'logger', options: { maxBytesToLog: 1 } } });
    const failed = await finished(bad.json().operation.id);
    expect(failed).toMatchObject({ counts: { failed: 1 }, results: [{ outcome: 'failed', code: 'AGENT_EXISTS' }], answer: { status: 409, body: { error: 'AGENT_EXISTS' } } });
  });

  it('lists operations newest first, filtered, a page at a time; cancels a running bulk operation', async () => {
    for (const t of ['c1', 'c2', 'c3', 'c4']) expect((await h.inject({ method: 'POST', url: `/v1/api/cancel/${t}/create?start=false`, headers: json, payload: { sink: 'logger' } })).statusCode).toBe(201);
    const started = await h.inject({ method: 'POST', url: '/v1/api/bulk/start', headers: json, payload: { db: 'cancel', concurrency: 1 } });
    expect(started.statusCode).toBe(202);
    const id = started.json().operation.id as string;
    const cancel = await h.inject({ method: 'POST', url: `/v1/api/operations/${id}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    expect(cancel.json().operation.cancel).toMatchObject({ by: 'test-admin' });
    const o = await finished(id);
    expect(o.state).toBe('cancelled');
    expect(o.counts.cancelled).toBeGreaterThanOrEqual(2);
    expect(o.counts.applied + o.counts.cancelled).toBe(4);
    // What was cancelled was left as it was: stopped.
    const list = (await h.inject({ method: 'GET', url: '/v1/api/services?db=cancel' })).json().agents as Array<{ table: string; state: string }>;
    const left = o.results.filter((x) => x.outcome === 'cancelled').map((x) => x.table);
    expect(list.filter((a) => left.includes(a.table)).map((a) => a.state)).toEqual(left.map(() => 'STOPPED'));
    expect((await h.inject({ method: 'POST', url: `/v1/api/operations/${id}/cancel` })).json()).toMatchObject({ error: 'OPERATION_NOT_CANCELLABLE' });

    const all = (await h.inject({ method: 'GET', url: '/v1/api/operations' })).json();
    expect(all.operations[0].id).toBe(id);
    expect(all.operations.map((x: Operation) => x.kind)).toContain('table');
    const tables = (await h.inject({ method: 'GET', url: '/v1/api/operations?kind=table&op=create' })).json().operations as Operation[];
    expect(tables.length).toBeGreaterThanOrEqual(2);
    expect(tables.every((x) => x.kind === 'table' && x.op === 'create')).toBe(true);
    // Paging: one at a time gives the same list as all at once, without repeats.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { operations: Operation[]; nextCursor: string | null } = (await h.inject({ method: 'GET', url: `/v1/api/operations?limit=1${cursor ? `&cursor=${cursor}` : ''}` })).json();
      paged.push(...page.operations.map((x) => x.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(paged).toEqual(all.operations.map((x: Operation) => x.id));
    expect((await h.inject({ method: 'GET', url: '/v1/api/operations?cursor=../x' })).statusCode).toBe(400);
    // A token limited to another db sees none of them.
    const other = h.tokenFor('viewer', ['elsewhere']);
    expect((await h.api('GET', '/v1/api/operations', undefined, other)).json().operations).toEqual([]);
    expect((await h.api('POST', '/v1/api/bulk/delete', { db: 'cancel' })).statusCode).toBe(202);
  });

  it('honours Idempotency-Key: the same request is answered once, another request with the key is 422', async () => {
    const key = randomUUID();
    const send = (payload: object) => h.inject({ method: 'POST', url: '/v1/api/bulk/pause', headers: { ...json, 'idempotency-key': key }, payload });
    const first = await send({ tables: ['api.orders'] });
    expect(first.statusCode).toBe(202);
    await finished(first.json().operation.id);
    const again = await send({ tables: ['api.orders'] });
    expect(again.statusCode).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().operation.id).toBe(first.json().operation.id);
    expect(again.headers.location).toBe(first.headers.location);
    const reused = await send({ tables: ['api.declared'] });
    expect(reused.statusCode).toBe(422);
    expect(reused.json().error).toBe('IDEMPOTENCY_KEY_REUSED');
    // Another caller's same key is its own.
    const mine = await h.inject({ method: 'POST', url: '/v1/api/bulk/resume', headers: { ...json, 'idempotency-key': key, authorization: `Bearer ${h.tokenFor('operator')}` }, payload: { tables: ['api.orders'] } });
    expect(mine.statusCode).toBe(202);
    expect(mine.headers['idempotent-replayed']).toBeUndefined();
    expect((await finished(mine.json().operation.id)).counts.applied).toBe(1);
    expect((await h.inject({ method: 'POST', url: '/v1/api/bulk/pause', headers: { ...json, 'idempotency-key': 'bad key!' }, payload: { all: true } })).statusCode).toBe(400);
  });

  it("keeps an Idempotency-Key's answer to the caller's whole identity: a token of the same sub with another role or dbs gets none of it", async () => {
    const key = randomUUID();
    const sign = (role: 'admin' | 'operator', dbs?: string[]) => h.app.jwt.sign({ sub: 'shared-sub', role, jti: randomUUID(), ...(dbs ? { dbs } : {}) }, { expiresIn: '1h' });
    const pause = (token: string) => h.inject({ method: 'POST', url: '/v1/api/bulk/pause', headers: { ...json, 'idempotency-key': key, authorization: `Bearer ${token}` }, payload: { all: true } });
    const admin = await pause(sign('admin'));
    expect(admin.statusCode).toBe(202);
    const adminOp = await finished(admin.json().operation.id);
    expect(adminOp.counts.applied).toBeGreaterThan(0);
    // The same sub limited to another db: not the admin's answer (which names api's tables), its own run over its own dbs.
    const limited = await pause(sign('operator', ['elsewhere']));
    expect(limited.statusCode).toBe(202);
    expect(limited.headers['idempotent-replayed']).toBeUndefined();
    expect(limited.json().operation.id).not.toBe(admin.json().operation.id);
    const limitedOp = await finished(limited.json().operation.id);
    expect(JSON.stringify(limitedOp)).not.toContain('api.orders');
    // The admin's own retry still replays.
    const again = await pause(sign('admin'));
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().operation.id).toBe(admin.json().operation.id);
    await finished((await h.inject({ method: 'POST', url: '/v1/api/bulk/resume', headers: json, payload: { all: true } })).json().operation.id);
  });

  it('gives every answer a request id, kept in the audit entry; an unusable one is replaced', async () => {
    const r = await h.inject({ method: 'POST', url: '/v1/api/api/orders/resume', headers: { 'x-request-id': 'trace-abc.123' } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['x-request-id']).toBe('trace-abc.123');
    const bad = await h.inject({ method: 'POST', url: '/v1/api/api/orders/resume', headers: { 'x-request-id': 'x\u0001'.repeat(3) + ' y' } });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const audit = await until(
      async () => (await h.inject({ method: 'GET', url: '/v1/api/audit?action=resume' })).json().entries as Array<{ requestId?: string }>,
      (e) => e.some((x) => x.requestId === 'trace-abc.123'),
      5000,
    );
    expect(audit.map((x) => x.requestId)).toContain('trace-abc.123');
    const missing = await h.inject({ method: 'GET', url: '/v1/api/api/nope/status' });
    expect(missing.json()).toMatchObject({ error: 'AGENT_NOT_FOUND', requestId: missing.headers['x-request-id'] });
  });
});
