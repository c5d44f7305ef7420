import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { agentOf, postEvents, routePort } from '../../helpers/flume.js';
import { TestGateway, ingest } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { TestKafka } from '../../helpers/kafka.js';
import { freePort, repeatWhile, until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

// One real broker for the file (KRaft, from Maven Central's jars), started once.
let kafka: TestKafka;
let h: Harness;
let gw: TestGateway;
let token: string;
const events = (...bodies: string[]) => bodies.map((body) => ({ headers: { src: 'test' }, body }));
/** A sender posting one event a request (`<kind>-<n>`) until stopped; every answer recorded. */
function sender(table: string, kind: string, headers: Record<string, string> = {}, pauseMs = 0) {
  const answers: Array<{ body: string; status: number; committed: unknown }> = [];
  let on = true;
  let i = 0;
  const done = repeatWhile(() => on, pauseMs, async () => {
    const body = `${kind}-${i++}`;
    const r = await ingest(gw, 'shop', table, token, [{ body }], undefined, headers).catch(() => ({ status: 0, json: {} as Record<string, unknown> }));
    answers.push({ body, status: r.status, committed: r.json.committed });
  });
  return { answers, stop: async () => ((on = false), await done, answers) };
}
const create = (table: string, options: object) =>
  h.inject({ method: 'POST', url: `/v1/api/shop/${table}/create`, payload: { sink: 'kafka', options: { bootstrapServers: kafka.bootstrap, ...options } } });

beforeAll(async () => {
  kafka = new TestKafka();
  await kafka.start();
  h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()), FLEET_REFRESH_MS: '1000', AGENT_HEAP: '256m' });
  gw = new TestGateway(h.config);
  await gw.start();
  const r = await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'billing', scope: ['shop'] } });
  token = (r.json() as { token: string }).token;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
  await kafka?.destroy();
});

describe('the kafka sink, against a real broker', () => {
  it('delivers what the gateway accepted to the table\'s topic, with the sender\'s name as a record header', async () => {
    const r = await create('orders', { acks: 'all' });
    expect(r.statusCode).toBe(201);
    const conf = readFileSync(agentPaths(h.config, 'flume-shop-orders').flumeConf, 'utf8');
    expect(conf).toMatch(/^a1\.sinks\.k1\.kafka\.producer\.acks = all$/m);
    expect(conf).toMatch(/^a1\.sinks\.k1\.allowTopicOverride = false$/m);

    expect((await ingest(gw, 'shop', 'orders', token, events('o-1', 'o-2', 'o-3'))).status).toBe(200);
    const records = await until(() => kafka.consume('shop.orders'), (l) => l.length >= 3, 60_000, 0);
    expect(records.map((x) => x.value)).toEqual(['o-1', 'o-2', 'o-3']);
    for (const rec of records) expect(rec.headers).toMatchObject({ username: 'billing' });
    const pid = (r.json() as { pid: number }).pid;
    const rss = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024;
    console.log(`kafka agent RSS after delivering (-Xmx${h.config.AGENT_HEAP}): ${rss.toFixed(0)} MiB`);
  });

  it('lets no sender route: topic and key headers are refused at the gateway, and the agent ignores a topic header anyway', async () => {
    for (const header of ['topic', 'key']) {
      const r = await ingest(gw, 'shop', 'orders', token, [{ headers: { [header]: 'elsewhere' }, body: `steer-${header}` }]);
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ code: 10062, error: 'RESERVED_HEADER' });
    }
    // Straight to the agent, with its intake key (a process of the service's own): the table's topic.
    expect(await postEvents(agentOf(h.config, 'shop', 'orders'), ['direct-steer'], { topic: 'elsewhere' })).toBe(200);
    const records = await until(() => kafka.consume('shop.orders'), (l) => l.some((x) => x.value === 'direct-steer'), 60_000, 0);
    expect(records.map((x) => x.value)).toEqual(['o-1', 'o-2', 'o-3', 'direct-steer']);
    expect((await kafka.consume('elsewhere', 3000)).map((x) => x.value)).toEqual([]);
    expect(records.some((x) => x.value.startsWith('steer-'))).toBe(false);
  });

  it('puts each table in the topic its template names; bad options are refused', async () => {
    expect((await create('refunds', { topic: 'money.{{table}}', acks: '1' })).statusCode).toBe(201);
    expect((await ingest(gw, 'shop', 'refunds', token, events('r-1'))).status).toBe(200);
    const records = await until(() => kafka.consume('money.refunds'), (l) => l.length >= 1, 60_000, 0);
    expect(records.map((x) => x.value)).toEqual(['r-1']);
    const bad = await create('broken', { acks: 'most' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'INVALID_REQUEST', message: expect.stringContaining('acks') });
  });

  it('keeps accepting while the broker is away, says the sink is failing, and delivers everything once it is back; a sender that waits for the sink gets no 200 meanwhile', async () => {
    expect((await create('acks', { batchSize: 10 })).statusCode).toBe(201);
    await kafka.stop();
    // Two senders into one table all through the cut: one waits for the sink (1 s at most), one does not.
    const waiting = sender('acks', 'sink', { Prefer: 'ack=sink, wait=1' });
    const plain = sender('acks', 'plain', {}, 50);
    const bodies = Array.from({ length: 20 }, (_, i) => `away-${i}`);
    for (const b of bodies) expect((await ingest(gw, 'shop', 'orders', token, events(b))).status).toBe(200);
    const degraded = await until(() => h.status('shop', 'orders'), (s) => s.health === 'degraded', 90_000, 500);
    expect(degraded.health).toBe('degraded');
    expect(degraded.healthReason).toMatch(/the kafka sink (fails to deliver|has drained nothing)/);
    expect(degraded.metrics!.channelSize).toBeGreaterThan(0);

    // A table whose small channel fills while the broker is away: its CHANNEL_FULL tells senders
    // when to come back from what its sink drains (nothing: the catalogue's 5 s would be too soon).
    const brim = await h.inject({
      method: 'POST',
      url: '/v1/api/shop/brim/create',
      payload: { sink: 'kafka', options: { bootstrapServers: kafka.bootstrap, batchSize: 5 }, channel: { capacity: 20, transactionCapacity: 5 } },
    });
    expect(brim.statusCode, brim.body).toBe(201);
    // Batches until the channel refuses (the sink's failing batch may hold room meanwhile).
    const fills: number[] = [];
    for (let i = 0; i < 8 && fills.at(-1) !== 503; i++) fills.push((await ingest(gw, 'shop', 'brim', token, events(...Array.from({ length: 5 }, (_, j) => `brim-${i}-${j}`)))).status);
    expect(fills.at(-1), fills.join(' ')).toBe(503);
    expect(fills.slice(0, -1).every((st) => st === 200), fills.join(' ')).toBe(true);
    const refused = await until(() => ingest(gw, 'shop', 'brim', token, events('one too many')), (r) => r.headers['retry-after'] === '60', 30_000, 500);
    expect(refused).toMatchObject({ status: 503, json: { error: 'CHANNEL_FULL' } });

    const [cutSink, cutPlain] = [await waiting.stop(), await plain.stop()];
    await kafka.start();
    const records = await until(() => kafka.consume('shop.orders'), (l) => bodies.every((b) => l.some((x) => x.value === b)), 120_000, 0);
    const values = records.map((x) => x.value);
    for (const b of bodies) expect(values).toContain(b);
    // At least once: none lost. (A batch the broker took just before it went away may repeat.)
    expect(new Set(values).size).toBe(24);
    const healthy = await until(() => h.status('shop', 'orders'), (s) => s.health === 'healthy' && s.metrics?.channelSize === 0, 60_000, 500);
    expect(healthy.health).toBe('healthy');
    // The full table drains too, and takes events again. Delivered: its sink runs with the batch size asked for (Flume dropped a sink whose
    // batch, read from a key Flume 1.11 ignores, was its default 100 > transactionCapacity 5).
    const room = await until(() => ingest(gw, 'shop', 'brim', token, events('room again')), (r) => r.status === 200, 60_000, 500);
    expect(room.status).toBe(200);
    const taken = fills.slice(0, -1).flatMap((_, i) => Array.from({ length: 5 }, (_, j) => `brim-${i}-${j}`));
    const brimRecords = await until(() => kafka.consume('shop.brim'), (l) => taken.every((b) => l.some((x) => x.value === b)), 60_000, 0);
    for (const b of taken) expect(brimRecords.map((x) => x.value)).toContain(b);

    // Through the cut: the sender that waited for the sink heard 202 "committed to the channel",
    // never 200; the other heard 200 throughout. Healed: the topic holds each kind's acknowledged
    // events (by eventId: a batch sent just before the cut may repeat).
    const count = (a: typeof cutSink, status: number) => a.filter((x) => x.status === status).length;
    console.log(`broker away: waiting sender ${count(cutSink, 200)} x 200, ${count(cutSink, 202)} x 202; plain sender ${count(cutPlain, 200)} x 200 of ${cutPlain.length}`);
    expect(count(cutSink, 200)).toBe(0);
    expect(cutSink.length).toBeGreaterThan(2);
    expect(cutSink.every((x) => x.status === 202 && x.committed === 'channel')).toBe(true);
    expect(cutPlain.every((x) => x.status === 200 && x.committed === 'channel')).toBe(true);
    // Healed, a sender that waits for the sink hears 200; its trace says t0 <= t1 <= t2, and the
    // consumer finds its record by the event id (its request id and place). A retry with the same
    // X-Request-Id would carry the same eventId: the consumer's duplicate to drop.
    const traced = await until(() => ingest(gw, 'shop', 'acks', token, [{ body: 'traced' }], undefined, { Prefer: 'ack=sink', 'X-Request-Id': 'kafka-trace-1' }), (r) => r.status === 200, 60_000, 500);
    expect(traced).toMatchObject({ status: 200, json: { committed: 'sink', requestId: 'kafka-trace-1' } });
    // The gateway writes its traces every 0.2 s.
    const trace = await until(async () => (await h.inject({ method: 'GET', url: '/v1/api/shop/acks/trace/kafka-trace-1' })).json() as Record<string, string>, (t) => t.stage === 'sink', 10_000, 100);
    expect(trace).toMatchObject({ ack: 'sink', stage: 'sink', events: 1 });
    const [t0, t1, t2] = [trace.acceptedAt, trace.committedAt, trace.takenBy].map((x) => Date.parse(x!));
    expect(t0! <= t1! && t1! <= t2!, JSON.stringify(trace)).toBe(true);

    const acked = [...cutSink, ...cutPlain].map((x) => x.body);
    const inTopic = await until(() => kafka.consume('shop.acks', 3000), (l) => acked.every((b) => l.some((x) => x.value === b)), 120_000, 0);
    const ids = (kind: string) => new Set(inTopic.filter((x) => x.value.startsWith(`${kind}-`)).map((x) => x.headers.eventId));
    expect(ids('sink').size).toBe(cutSink.length);
    expect(ids('plain').size).toBe(cutPlain.length);
    const found = inTopic.filter((x) => x.headers.eventId === 'kafka-trace-1:1');
    expect(found.length).toBeGreaterThanOrEqual(1);
    expect(found.every((x) => x.value === 'traced' && x.headers.requestId === 'kafka-trace-1')).toBe(true);
  });

  it('loses nothing and writes no producer-retry duplicate when the agent is killed -9 under load; what a replay repeats carries one eventId', { timeout: 240_000 }, async () => {
    expect((await create('crashy', { batchSize: 50 })).statusCode).toBe(201);
    const conf = readFileSync(agentPaths(h.config, 'flume-shop-crashy').flumeConf, 'utf8');
    expect(conf).toMatch(/^a1\.sinks\.k1\.kafka\.producer\.acks = all$/m);
    expect(conf).toMatch(/^a1\.sinks\.k1\.kafka\.producer\.enable\.idempotence = true$/m);
    const senders = Array.from({ length: 4 }, (_, c) => sender('crashy', `crash${c}`));
    const ok = () => senders.reduce((n, s) => n + s.answers.filter((a) => a.status === 200).length, 0);
    for (let k = 0; k < 2; k++) {
      const before = ok();
      await until(async () => ok(), (n) => n >= before + 150, 60_000, 20);
      const { pid } = await h.status('shop', 'crashy', { fresh: true });
      process.kill(pid!, 'SIGKILL');
      await until(() => h.status('shop', 'crashy', { fresh: true }), (st) => st.accepting && st.pid !== pid, 90_000, 250);
    }
    const answers = (await Promise.all(senders.map((s) => s.stop()))).flat();
    const acked = answers.filter((a) => a.status === 200).map((a) => a.body);
    const records = await until(() => kafka.consume('shop.crashy', 3000), (l) => acked.every((b) => l.some((x) => x.value === b)), 120_000, 0);
    expect(acked.filter((b) => !records.some((x) => x.value === b))).toEqual([]);
    // Every record carries its event's id; copies of one event carry one id, so a consumer drops them.
    expect(records.every((x) => /:1$/.test(x.headers.eventId ?? '') && x.headers.requestId)).toBe(true);
    const byId = new Map<string, Set<string>>();
    for (const x of records) byId.set(x.headers.eventId!, (byId.get(x.headers.eventId!) ?? new Set()).add(x.value));
    expect([...byId.values()].every((v) => v.size === 1)).toBe(true);
    const duplicates = records.length - byId.size;
    // Which producer wrote each copy: a new JVM is a new idempotent producer.
    const stored = await kafka.stored('shop.crashy');
    expect(stored.length).toBe(records.length);
    const producersOf = new Map<string, number[]>();
    for (const r of stored) producersOf.set(r.value, [...(producersOf.get(r.value) ?? []), r.producerId]);
    const retryDuplicates = [...producersOf.values()].reduce((n, ids) => n + (ids.length - new Set(ids).size), 0);
    console.log(`kill -9 x2 under load into Kafka: ${acked.length} acknowledged, ${records.length} records, ${duplicates} duplicates by eventId (replays by a later JVM), ${retryDuplicates} producer-retry duplicates, producers ${new Set(stored.map((r) => r.producerId)).size}`);
    expect(stored.every((r) => r.producerId >= 0)).toBe(true);
    expect(retryDuplicates).toBe(0);
  });

  it('keeps an event the topic can never take in the quarantine; every other event reaches the topic; replay delivers it once the limit is raised', async () => {
    expect((await create('poison', { batchSize: 20 })).statusCode).toBe(201);
    // What the producer can never send is refused at the door, naming the event and the limit.
    const huge = await ingest(gw, 'shop', 'poison', token, [{ headers: {}, body: 'ok' }, { headers: {}, body: 'y'.repeat(1_047_600) }]);
    expect(huge.status).toBe(413);
    expect(huge.json).toMatchObject({ code: 10067, error: 'EVENT_TOO_LARGE', message: expect.stringMatching(/^event 2 is 1047\d{3} bytes .*never deliver more than 1047552/) });
    // The topic exists once something was produced to it; then its records may be 20,000 bytes at
    // most (above the producer's batch.size, 16 KiB, so the producer sends the big one alone).
    expect((await ingest(gw, 'shop', 'poison', token, events('p-first'))).status).toBe(200);
    await until(() => kafka.consume('shop.poison'), (l) => l.length === 1, 60_000, 0);
    await kafka.setTopicConfig('shop.poison', 'max.message.bytes', '20000');
    const big = `big-${'x'.repeat(30_000)}`;
    const small = Array.from({ length: 40 }, (_, i) => `p-${i}`);
    // The big one in the middle of a request (one batch with others), and more after it.
    expect((await ingest(gw, 'shop', 'poison', token, events(...small.slice(0, 10), big, ...small.slice(10, 20)))).status).toBe(200);
    for (let i = 20; i < 40; i += 5) expect((await ingest(gw, 'shop', 'poison', token, events(...small.slice(i, i + 5)))).status).toBe(200);

    // Kept aside within one batch's delivery (the producer's timeouts), the rest delivered.
    const held = await until(() => h.status('shop', 'poison', { fresh: true }), (st) => st.quarantined === 1, 60_000, 250);
    expect(held).toMatchObject({ quarantined: 1 });
    const records = await until(() => kafka.consume('shop.poison'), (l) => small.every((b) => l.some((x) => x.value === b)), 60_000, 0);
    expect(records.map((x) => x.value).sort()).toEqual(['p-first', ...small].sort());
    const q = await h.inject({ method: 'GET', url: '/v1/api/shop/poison/quarantine' });
    expect(q.statusCode, q.body).toBe(200);
    expect(q.json()).toMatchObject({ count: 1, events: [{ body: big, headers: { username: 'billing', src: 'test' }, error: expect.stringMatching(/RecordTooLargeException/) }] });
    const incidents = await until(() => h.incidentsOf('shop', 'poison'), (l) => l.some((i) => i.type === 'quarantined'), 30_000, 250);
    expect(incidents.find((i) => i.type === 'quarantined')).toMatchObject({ severity: 'warning', details: { count: 1, added: 1 } });
    const metrics = (await h.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/flume_agent_quarantined_events\{[^}]*table="poison"[^}]*\} 1/);

    // A replay into another db is refused for a token limited to this one, and changes nothing.
    const limited = h.tokenFor('operator', ['shop']);
    const elsewhere = await h.inject({ method: 'POST', url: '/v1/api/shop/poison/quarantine/replay', payload: { to: { db: 'other', table: 'x' } }, headers: { authorization: `Bearer ${limited}` } });
    expect(elsewhere.statusCode, elsewhere.body).toBe(403);
    // The cause fixed: the replay delivers exactly that record, once.
    await kafka.setTopicConfig('shop.poison', 'max.message.bytes', '1048588');
    const replay = await h.inject({ method: 'POST', url: '/v1/api/shop/poison/quarantine/replay', payload: {} });
    expect(replay.statusCode, replay.body).toBe(200);
    expect(replay.json()).toMatchObject({ replayed: 1, unreadable: 0, to: { db: 'shop', table: 'poison' } });
    const after = await until(() => kafka.consume('shop.poison'), (l) => l.some((x) => x.value === big), 60_000, 0);
    expect(after.filter((x) => x.value === big)).toHaveLength(1);
    expect(after).toHaveLength(small.length + 2);
    expect((await h.status('shop', 'poison', { fresh: true })).quarantined).toBe(0);
    const dropped = await h.inject({ method: 'DELETE', url: '/v1/api/shop/poison/quarantine' });
    expect(dropped.json()).toMatchObject({ dropped: 0 });
    expect((await h.inject({ method: 'GET', url: '/v1/api/shop/nope/quarantine' })).statusCode).toBe(404);
  });

  it('with a contract whose policy is quarantine, keeps each event off it aside in the quarantine and delivers the rest; a replay delivers them flagged', async () => {
    const schema = { policy: 'quarantine', body: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } } };
    expect((await h.inject({ method: 'POST', url: '/v1/api/shop/contracted/create', payload: { sink: 'kafka', options: { bootstrapServers: kafka.bootstrap }, schema } })).statusCode).toBe(201);
    const sent = await ingest(gw, 'shop', 'contracted', token, events('{"id":1}', '{"id":"two"}', 'not json', '{"id":4}'));
    expect(sent.status, JSON.stringify(sent.json)).toBe(200);
    expect(sent.json).toMatchObject({ events: 4 });
    const records = await until(() => kafka.consume('shop.contracted', 1500), (l) => l.length >= 2, 60_000, 0);
    expect(records.map((x) => x.value)).toEqual(['{"id":1}', '{"id":4}']);
    const held = await until(() => h.inject({ method: 'GET', url: '/v1/api/shop/contracted/quarantine' }), (r) => r.json().count === 2, 60_000, 250);
    expect(held.json().events).toMatchObject([
      { body: '{"id":"two"}', headers: { quarantine: 'body.id: expected integer, got string' }, error: "ContractMismatch: the event does not meet the table's schema: body.id: expected integer, got string" },
      { body: 'not json', headers: { quarantine: 'body: is not JSON' } },
    ]);
    // Replayed, they go to the topic, marked as the flag policy marks them.
    expect((await h.inject({ method: 'POST', url: '/v1/api/shop/contracted/quarantine/replay', payload: {} })).json()).toMatchObject({ replayed: 2 });
    const after = await until(() => kafka.consume('shop.contracted', 1500), (l) => l.length >= 4, 60_000, 0);
    expect(after.filter((x) => x.value === 'not json').map((x) => x.headers)).toEqual([expect.objectContaining({ schemaDrift: 'body: is not JSON' })]);
    expect(after.every((x) => !('quarantine' in x.headers))).toBe(true);
  });
});
