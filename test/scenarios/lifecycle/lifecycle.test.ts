import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { queuedEvents } from '../../../src/flume/checkpoint.js';
import { dropPrefix, startHarness, tempDir, type Harness } from '../../helpers/harness.js';
import { agentOf, javaProcessesMentioning, pidAlive, postEvents, routePort, waitForLines } from '../../helpers/flume.js';
import { until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

/** Started: STARTING until supervisord's startsecs pass, then RUNNING. */
const UP = expect.stringMatching(/^(STARTING|RUNNING)$/);
let h: Harness;
const paths = (program: string) => agentPaths(h.config, program);

/**
 * Polls status until supervisord reports `state` (STARTING turns RUNNING after startsecs) and,
 * for RUNNING, the source accepts (the fleet model observes both within its refresh).
 */
async function waitState(db: string, table: string, state: string) {
  return until(
    async () => (await h.api('GET', `/v1/api/${db}/${table}/status`)).json() as { state: string; accepting: boolean },
    (s) => s.state === state && (state !== 'RUNNING' || s.accepting),
    30_000,
    200,
  );
}

/** What a failed or rejected call must leave untouched. */
async function snapshot() {
  return {
    confD: readdirSync(h.config.confDir).sort(),
    services: readdirSync(h.config.servicesDir).sort(),
    var: readdirSync(h.config.varDir).sort(),
    redis: (await h.redis.keys(`${h.config.REDIS_KEY_PREFIX}*`)).sort(),
    ports: await h.redis.hgetall(h.keys.ports()),
    programs: (await h.driver.infoAll()).map((p) => p.name).sort(),
  };
}

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange(1000) });
});
afterAll(async () => {
  await h?.close();
});

describe('agent lifecycle against real supervisord, Redis and Flume', () => {
  it('create -> events reach the sink -> stop -> start on the same port -> restart -> delete', async () => {
    const created = await h.api('POST', '/v1/api/shop/orders/create');
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      code: 0,
      db: 'shop',
      table: 'orders',
      program: 'flume-shop-orders',
      sink: 'file_roll',
      state: UP,
      desired: 'running',
      accepting: true,
    });
    const p = paths('flume-shop-orders');
    const port = await routePort(h.redis, h.keys, 'shop', 'orders');
    const [lo, hi] = h.config.PORT_RANGE;
    expect(port).toBeGreaterThanOrEqual(lo);
    expect(port).toBeLessThanOrEqual(hi);
    expect(await h.redis.hget(h.keys.ports(), String(port))).toBe('flume-shop-orders');
    expect(existsSync(p.programFile)).toBe(true);

    expect(await postEvents(agentOf(h.config, 'shop', 'orders'), ['o-1', 'o-2', 'o-3'])).toBe(200);
    expect(await waitForLines(p.outDir, ['o-1', 'o-2', 'o-3'])).toEqual(expect.arrayContaining(['o-1', 'o-2', 'o-3']));

    const { pid } = created.json() as { pid: number };
    const stopped = await h.api('POST', '/v1/api/shop/orders/stop');
    expect(stopped.statusCode).toBe(200);
    expect(stopped.json()).toMatchObject({ state: 'STOPPED', desired: 'stopped', accepting: false, pid: null });
    expect(pidAlive(pid)).toBe(false);
    expect(javaProcessesMentioning(p.flumeConf)).toEqual([]);
    expect(await h.redis.get(h.keys.route('shop', 'orders'))).toBeNull();
    expect(await h.redis.hget(h.keys.ports(), String(port))).toBe('flume-shop-orders');
    // stop keeps the channel (the original deleted it)
    expect(existsSync(join(p.checkpointDir, 'checkpoint'))).toBe(true);
    expect(readdirSync(p.dataDir).some((f) => f.startsWith('log-'))).toBe(true);
    await expect(postEvents(agentOf(h.config, 'shop', 'orders'), ['lost?'])).rejects.toThrow();

    const started = await h.api('POST', '/v1/api/shop/orders/start');
    expect(started.statusCode).toBe(200);
    expect(started.json()).toMatchObject({ state: UP, desired: 'running', accepting: true });
    expect(await routePort(h.redis, h.keys, 'shop', 'orders')).toBe(port);
    expect(await postEvents(agentOf(h.config, 'shop', 'orders'), ['o-4'])).toBe(200);

    const restarted = await h.api('POST', '/v1/api/shop/orders/restart');
    expect(restarted.statusCode).toBe(200);
    expect(restarted.json()).toMatchObject({ state: UP, accepting: true });
    expect((restarted.json() as { pid: number }).pid).not.toBe((started.json() as { pid: number }).pid);
    expect(await routePort(h.redis, h.keys, 'shop', 'orders')).toBe(port);
    expect(await postEvents(agentOf(h.config, 'shop', 'orders'), ['o-5'])).toBe(200);
    const lines = await waitForLines(p.outDir, ['o-4', 'o-5']);
    expect(lines).toEqual(expect.arrayContaining(['o-1', 'o-2', 'o-3', 'o-4', 'o-5']));

    const status = await h.api('GET', '/v1/api/shop/orders/status');
    expect(status.statusCode).toBe(200);
    expect(status.json()).toMatchObject({ code: 0, state: UP, accepting: true, desired: 'running' });
    expect((status.json() as { uptimeSeconds: number }).uptimeSeconds).toBeGreaterThanOrEqual(0);

    // The sink drains: the channel is empty at delete.
    const drained = await until(
      async () => (await h.api('GET', '/v1/api/shop/orders/status?fresh=true')).json() as { metrics: { channelSize: number } | null },
      (s) => s.metrics?.channelSize === 0,
      30_000,
      200,
    );
    expect(drained.metrics?.channelSize).toBe(0);
    const del = await h.api('DELETE', '/v1/api/shop/orders');
    expect(del.statusCode).toBe(200);
    expect(del.json()).toMatchObject({ code: 0, channel: 'removed', queuedEvents: 0 });
    expect(existsSync(p.programFile)).toBe(false);
    expect(existsSync(p.serviceDir)).toBe(false);
    expect(existsSync(p.channelDir)).toBe(false);
    expect(existsSync(p.outDir)).toBe(true); // delivered output is never deleted without force
    expect(await h.redis.hget(h.keys.ports(), String(port))).toBeNull();
    expect(await h.redis.get(h.keys.route('shop', 'orders'))).toBeNull();
    expect((await h.api('GET', '/v1/api/shop/orders/status')).statusCode).toBe(404);
    expect(javaProcessesMentioning(p.flumeConf)).toEqual([]);
  });

  it('keeps queued events through stop, start and delete, and a re-created agent delivers them', async () => {
    // A Kafka sink whose broker is down: accepted events stay in the file channel.
    const created = await h.api('POST', '/v1/api/shop/refunds/create', {
      sink: 'kafka',
      options: { bootstrapServers: '127.0.0.1:1' },
    });
    expect(created.statusCode).toBe(201);
    const p = paths('flume-shop-refunds');
    const port = (await routePort(h.redis, h.keys, 'shop', 'refunds'))!;
    expect(await postEvents(agentOf(h.config, 'shop', 'refunds'), ['r-1', 'r-2', 'r-3', 'r-4'])).toBe(200);

    expect((await h.api('POST', '/v1/api/shop/refunds/stop')).statusCode).toBe(200);
    expect(await queuedEvents(p.checkpointDir)).toBe(4);
    expect((await h.api('POST', '/v1/api/shop/refunds/start')).statusCode).toBe(200);
    expect(await routePort(h.redis, h.keys, 'shop', 'refunds')).toBe(port);
    expect(await postEvents(agentOf(h.config, 'shop', 'refunds'), ['r-5'])).toBe(200);

    const del = await h.api('DELETE', '/v1/api/shop/refunds');
    expect(del.statusCode).toBe(200);
    expect(del.json()).toMatchObject({ channel: 'kept', queuedEvents: 5 });
    expect(existsSync(p.dataDir)).toBe(true);

    // Same table again, now with a sink that works: the kept channel is replayed into it.
    const again = await h.api('POST', '/v1/api/shop/refunds/create', { sink: 'file_roll' });
    expect(again.statusCode).toBe(201);
    const lines = await waitForLines(p.outDir, ['r-1', 'r-2', 'r-3', 'r-4', 'r-5']);
    expect(lines).toEqual(expect.arrayContaining(['r-1', 'r-2', 'r-3', 'r-4', 'r-5']));

    const forced = await h.api('DELETE', '/v1/api/shop/refunds?force=true');
    expect(forced.json()).toMatchObject({ channel: 'removed', keptPath: null });
    expect(existsSync(p.varDir)).toBe(false);
  });

  it('answers 409 for a second create, 404 for unknown tables and 405 for the wrong method', async () => {
    expect((await h.api('POST', '/v1/api/crm/leads/create', { sink: 'logger' })).statusCode).toBe(201);
    const before = await snapshot();
    const dup = await h.api('POST', '/v1/api/crm/leads/create');
    expect(dup.statusCode).toBe(409);
    expect(dup.json()).toMatchObject({ code: 10090, error: 'AGENT_EXISTS', details: { differences: expect.arrayContaining([{ field: 'sink', existing: 'logger', requested: 'file_roll' }]) } });
    expect(await snapshot()).toEqual(before);

    for (const [method, url] of [
      ['POST', '/v1/api/crm/nope/start'],
      ['POST', '/v1/api/crm/nope/stop'],
      ['POST', '/v1/api/crm/nope/restart'],
      ['GET', '/v1/api/crm/nope/status'],
      ['DELETE', '/v1/api/crm/nope'],
    ] as const) {
      const r = await h.api(method, url);
      expect(r.statusCode, url).toBe(404);
      expect(r.json(), url).toMatchObject({ code: 10041, error: 'AGENT_NOT_FOUND' });
    }

    const get = await h.api('GET', '/v1/api/crm/leads/stop');
    expect(get.statusCode).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(get.json()).toMatchObject({ error: 'METHOD_NOT_ALLOWED', message: 'use POST for this endpoint' });
    expect((await h.api('POST', '/v1/api/crm/leads/status')).statusCode).toBe(405);
    expect((await h.api('GET', '/v1/api/crm/leads/status')).json()).toMatchObject({ state: UP });
  });

  it('rejects bad names and bad bodies with a 4xx and changes nothing', async () => {
    const before = await snapshot();
    const badNames = ['Shop', 'a-b', 'a.b', '..a', '%2Fetc', 'x%3Brm%20-rf%20%2F', '_x', 'a'.repeat(49), '%24(id)'];
    for (const bad of badNames) {
      for (const url of [`/v1/api/${bad}/t/create`, `/v1/api/db/${bad}/create`]) {
        const r = await h.api('POST', url);
        expect(r.statusCode, url).toBe(400);
        expect(r.json(), url).toMatchObject({ code: 10010, error: 'INVALID_NAME' });
      }
    }
    // "..": the URL itself normalises away, so no route matches at all.
    expect((await h.api('POST', '/v1/api/%2e%2e/%2e%2e/create')).json()).toMatchObject({ error: 'NOT_FOUND' });
    const bodies: Array<[unknown, number, string]> = [
      [{ sink: 'exec' }, 400, 'INVALID_REQUEST'],
      [{ options: { unknownOption: 1 } }, 400, 'INVALID_REQUEST'],
      [{ sink: 'kafka', options: { bootstrapServers: 'k:1', topic: 'a\nb' } }, 400, 'INVALID_REQUEST'],
      [{ options: { batchSize: 1000 }, channel: { transactionCapacity: 10 } }, 422, 'CONFIG_REJECTED'],
      [{ sink: 'hdfs' }, 400, 'INVALID_REQUEST'], // no nameNode: Hadoop's client would write to the local disk
    ];
    for (const [body, status, error] of bodies) {
      const r = await h.api('POST', '/v1/api/ok/table/create', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(status);
      expect(r.json()).toMatchObject({ error });
    }
    const notJson = await h.inject({
      method: 'POST',
      url: '/v1/api/ok/table/create',
      payload: '{"sink":',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toMatchObject({ code: 10001, error: 'INVALID_JSON' });
    // curl -d sends form-encoded by default: the body is still read as JSON (and checked)
    const formEncoded = await h.inject({
      method: 'POST',
      url: '/v1/api/ok/table/create',
      payload: '{"sink":"nope"}',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(formEncoded.json()).toMatchObject({ error: 'INVALID_REQUEST' });
    expect(await snapshot()).toEqual(before);
  });

  it('lets one operation per table run at a time: the second gets 409 BUSY', async () => {
    const [restart, stop] = await Promise.all([
      h.api('POST', '/v1/api/crm/leads/restart'),
      // The stop comes once the restart holds the table.
      until(() => h.redis.exists(h.keys.lock('flume-crm-leads')), (n) => n === 1, 10_000, 10).then(() => h.api('POST', '/v1/api/crm/leads/stop')),
    ]);
    expect(restart.statusCode).toBe(200);
    expect(stop.statusCode).toBe(409);
    expect(stop.json()).toMatchObject({ code: 10091, error: 'BUSY' });
    // Retry-After: what is left of the holder's lease (LOCK_LEASE_MS, renewed while it works).
    expect(Number(stop.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(stop.headers['retry-after'])).toBeLessThanOrEqual(h.config.LOCK_LEASE_MS / 1000);
    expect((await h.api('GET', '/v1/api/crm/leads/status')).json()).toMatchObject({ state: UP, desired: 'running' });
  });

  it('creates an agent stopped with ?start=false: registered, port kept, no route, no JVM; start brings it up', async () => {
    const r = await h.api('POST', '/v1/api/cold/orders/create?start=false', { sink: 'logger' });
    expect(r.statusCode).toBe(201);
    expect(r.json()).toMatchObject({ program: 'flume-cold-orders', state: 'STOPPED', desired: 'stopped', health: 'stopped', pid: null });
    expect(await h.redis.exists(h.keys.route('cold', 'orders'))).toBe(0);
    expect(Object.values(await h.redis.hgetall(h.keys.ports()))).toContain('flume-cold-orders');
    expect(javaProcessesMentioning(paths('flume-cold-orders').flumeConf)).toEqual([]);
    expect((await h.api('POST', '/v1/api/cold/orders/create?start=maybe')).statusCode).toBe(400);
    const started = await h.api('POST', '/v1/api/cold/orders/start');
    expect(started.json()).toMatchObject({ desired: 'running', accepting: true });
    expect(await h.redis.exists(h.keys.route('cold', 'orders'))).toBe(1);
    expect((await h.api('DELETE', '/v1/api/cold/orders?force=true')).statusCode).toBe(200);
  });

  it('describes every sink: what it does, whether it can run here, its options with defaults', async () => {
    const r = await h.app.inject({ method: 'GET', url: '/v1/api/sinks', headers: { authorization: `Bearer ${h.tokenFor('viewer')}` } });
    expect(r.statusCode).toBe(200);
    const sinks = r.json().sinks as Array<{ name: string; available: boolean; options: { properties: Record<string, { default?: unknown }>; required?: string[] } }>;
    expect(sinks.map((x) => x.name)).toEqual(['file_roll', 'hdfs', 'kafka', 'logger']);
    expect(sinks.filter((x) => x.name !== 'hdfs').every((x) => x.available)).toBe(true);
    const byName = Object.fromEntries(sinks.map((x) => [x.name, x]));
    expect(byName.file_roll!.options.properties.rollInterval!.default).toBe(30);
    expect(byName.kafka!.options.required).toEqual(['bootstrapServers']);
    expect(byName.kafka!.options.properties.topic!.default).toBe('{{db}}.{{table}}');
    expect(byName.hdfs!.options.required).toEqual(['nameNode']);
  });

  it('lists every agent in one call, with db and state filters', async () => {
    expect((await h.api('POST', '/v1/api/crm/contacts/create', { sink: 'logger' })).statusCode).toBe(201);
    expect((await h.api('POST', '/v1/api/crm/contacts/stop')).statusCode).toBe(200);
    expect(await waitState('crm', 'leads', 'RUNNING')).toMatchObject({ state: 'RUNNING', accepting: true });
    const all = (await h.api('GET', '/v1/api/services')).json() as { agents: Array<{ program: string; state: string }> };
    expect(all.agents.map((a) => `${a.program}:${a.state}`).sort()).toEqual([
      'flume-crm-contacts:STOPPED',
      'flume-crm-leads:RUNNING',
    ]);
    const running = (await h.api('GET', '/v1/api/services?db=crm&state=running')).json() as { agents: Array<{ program: string }> };
    expect(running.agents.map((a) => a.program)).toEqual(['flume-crm-leads']);
    expect(((await h.api('GET', '/v1/api/services?db=shop')).json() as { agents: unknown[] }).agents).toEqual([]);
    expect((await h.api('GET', '/v1/api/services?db=Bad!')).statusCode).toBe(400);
  });

  it('after supervisord restarts, agents that should run come back and stopped ones stay stopped', async () => {
    await h.supervisord.restart();
    const leads = await waitState('crm', 'leads', 'RUNNING');
    expect(leads).toMatchObject({ state: 'RUNNING', accepting: true });
    expect((await h.api('GET', '/v1/api/crm/contacts/status')).json()).toMatchObject({ state: 'STOPPED', desired: 'stopped' });
  });

  it('refuses to start an agent whose port another process took meanwhile (409), changing nothing', async () => {
    expect((await h.api('POST', '/v1/api/crm/deals/create', { sink: 'logger' })).statusCode).toBe(201);
    const port = (await routePort(h.redis, h.keys, 'crm', 'deals'))!;
    expect((await h.api('POST', '/v1/api/crm/deals/stop')).statusCode).toBe(200);
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    try {
      const r = await h.api('POST', '/v1/api/crm/deals/start');
      expect(r.statusCode).toBe(409);
      expect(r.json()).toMatchObject({ code: 10092, error: 'PORT_CONFLICT' });
      expect((await h.api('GET', '/v1/api/crm/deals/status')).json()).toMatchObject({ state: 'STOPPED', desired: 'stopped' });
      expect(await h.redis.get(h.keys.route('crm', 'deals'))).toBeNull();
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    expect((await h.api('POST', '/v1/api/crm/deals/start')).json()).toMatchObject({ state: UP, accepting: true });
    expect(await routePort(h.redis, h.keys, 'crm', 'deals')).toBe(port);
  });

  it('rebuilds port reservations and routes from disk when Redis lost them', async () => {
    // Settled first: leads runs and its route is published (after the supervisord restart above,
    // the route sync withdraws it until the agent accepts again, then publishes it).
    const leads = await until(() => h.redis.get(h.keys.route('crm', 'leads')), (v) => v !== null, 30_000);
    expect(leads).not.toBeNull();
    const before = { ports: await h.redis.hgetall(h.keys.ports()), leads };
    expect(Object.keys(before.ports).length).toBeGreaterThanOrEqual(3);
    // The service would notice the loss and restore by itself (test/scenarios/heal/redis-restarted.test.ts):
    // hold that off, so that this tests the explicit reconcile alone.
    await h.reconciler.stop();
    try {
      await dropPrefix(h.redis, h.config.REDIS_KEY_PREFIX);
      expect(await h.reconciler.reconcile()).toMatchObject({ conflicts: [], skippedBusy: [] });
      expect(await h.redis.hgetall(h.keys.ports())).toEqual(before.ports);
      expect(await h.redis.get(h.keys.route('crm', 'leads'))).toBe(before.leads);
      expect(await h.redis.get(h.keys.route('crm', 'contacts'))).toBeNull(); // stopped: no route
      expect(await h.reconciler.reconcile()).toMatchObject({ conflicts: [] }); // twice changes nothing
      expect(await h.redis.hgetall(h.keys.ports())).toEqual(before.ports);
    } finally {
      h.reconciler.start();
    }
  });

  it('answers /healthz and /readyz', async () => {
    expect((await h.api('GET', '/healthz')).json()).toMatchObject({ code: 0 });
    const ready = await h.api('GET', '/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ checks: { redis: 'ok', supervisord: 'ok' } });
    expect((await h.api('GET', '/v1/api/nothing')).statusCode).toBe(404);
  });
});

describe('a create that fails', () => {
  it('rolls back completely: no port, file, route or program is left', async () => {
    const bad = await startHarness({ PORT_RANGE: await portRange(), JAVA_BIN: '/bin/false' });
    try {
      // History is the only thing a failed create may add to: supervisord's events, and the API's
      // event stream when it saw the program change state before the rollback removed it.
      const history = [bad.keys.supervisorEvents(), bad.keys.events()];
      const keys = async () => (await bad.redis.keys(`${bad.config.REDIS_KEY_PREFIX}*`)).filter((k) => !history.includes(k)).sort();
      const keysBefore = await keys();
      const r = await bad.inject({ method: 'POST', url: '/v1/api/shop/broken/create' });
      expect(r.statusCode).toBe(502);
      expect(r.json()).toMatchObject({ code: 10100, error: 'AGENT_START_FAILED' });
      expect(readdirSync(bad.config.confDir)).toEqual([]);
      expect(readdirSync(bad.config.servicesDir)).toEqual([]);
      expect(readdirSync(bad.config.varDir).filter((f) => f.startsWith('flume-'))).toEqual([]);
      expect(await keys()).toEqual(keysBefore);
      expect(await bad.redis.hgetall(bad.keys.ports())).toEqual({});
      expect(await bad.redis.smembers(bad.keys.tables())).toEqual([]);
      expect((await bad.driver.infoAll()).map((p) => p.name).filter((n) => n.startsWith('flume-'))).toEqual([]);
    } finally {
      await bad.close();
    }
  });

  it('fails at once, and rolls back, when Flume says it cannot bind its port (instead of waiting out the ready timeout)', async () => {
    // A stand-in JVM that does what Flume does when its port is taken: logs the bind failure
    // and keeps running without a source.
    const binDir = tempDir('fakejava');
    const bin = join(binDir, 'java');
    writeFileSync(
      bin,
      [
        '#!/bin/sh',
        'conf=""; while [ $# -gt 0 ]; do [ "$1" = "-f" ] && conf="$2"; shift; done',
        'port=$(sed -n "s/^a1.sources.r1.port = //p" "$conf")',
        'echo "ERROR [lifecycleSupervisor-1-2] HTTPSource - Error while starting HTTPSource. java.io.IOException: Failed to bind to /127.0.0.1:$port"',
        'exec sleep 600',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const bad = await startHarness({ PORT_RANGE: await portRange(), JAVA_BIN: bin, AGENT_READY_TIMEOUT_MS: '90000' });
    try {
      const r = await bad.inject({ method: 'POST', url: '/v1/api/shop/taken/create' });
      expect(r.statusCode).toBe(502);
      expect(r.json()).toMatchObject({ error: 'AGENT_START_FAILED', message: expect.stringMatching(/its port \d+ is held by another process/) });
      expect((r.json() as { details: { logTail: string[] } }).details.logTail.join('\n')).toContain('Failed to bind');
      expect(readdirSync(bad.config.confDir)).toEqual([]);
      expect(await bad.redis.hgetall(bad.keys.ports())).toEqual({});
      expect((await bad.driver.infoAll()).map((p) => p.name).filter((n) => n.startsWith('flume-'))).toEqual([]);
    } finally {
      await bad.close();
      rmSync(binDir, { recursive: true, force: true });
    }
  });
});
