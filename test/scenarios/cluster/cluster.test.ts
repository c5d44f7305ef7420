import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterStack } from '../../helpers/cluster-stack.js';
import type { Installation } from '../../helpers/installation.js';
import type { NetnsCluster } from '../../helpers/netns.js';
import { until } from '../../helpers/wait.js';

// Many hosts (issue 23): three hosts as network namespaces, each the whole stack as the README's
// first command brings it up (its own Redis, supervisord, API, gateway), joined by a three-member
// etcd. One cluster for the whole file.

const TTL = 3;
const WAIT_MS = 20_000;
const stack = new ClusterStack({ ttlSeconds: TTL, waitMs: WAIT_MS });
let cluster: NetnsCluster;
let hosts: Map<number, Installation>;
let admin: string;
let viewer: string;

type Node = { id: string; state: string; alive: boolean; self: boolean; sameKeys: boolean | null; apiUrl: string | null; lastSeenSecondsAgo: number | null; capacity: { agents: number; freePorts: number; cpuCores: number; memAvailableBytes: number } | null };
const api = (i: number) => `http://${cluster.address(i)}:8001`;
/** GET /v1/api/nodes asked of host `of`, from inside host `from`. */
const nodesSeenBy = async (of: number, from = of) => {
  const r = await cluster.http(from, 'GET', `${api(of)}/v1/api/nodes`, { token: admin });
  expect(r.status, r.text).toBe(200);
  return r.body.nodes as Node[];
};
const byId = (nodes: Node[]) => Object.fromEntries(nodes.map((n) => [n.id, n]));

beforeAll(async () => {
  await stack.up();
  ({ cluster, hosts, admin, viewer } = stack);
}, 300_000);

afterAll(() => stack.down(), 120_000);

describe('membership', () => {
  it('lists every host from any host: alive, active, with what each measured of itself', async () => {
    for (const i of cluster.hosts()) {
      const nodes = await until(() => nodesSeenBy(i), (l) => l.filter((n) => n.alive).length === 3, 15_000, 200);
      expect(nodes.map((n) => [n.id, n.state, n.alive, n.self])).toEqual(cluster.hosts().map((h) => [`h${h}`, 'active', true, h === i]));
      for (const n of nodes) {
        expect(n.apiUrl).toBe(`http://${cluster.address(Number(n.id.slice(1)))}:8001`);
        expect(n.capacity).toMatchObject({ agents: 0, cpuCores: expect.any(Number) });
        expect(n.sameKeys).toBe(true);
        expect(n.capacity!.freePorts).toBeGreaterThan(1000);
        expect(n.capacity!.memAvailableBytes).toBeGreaterThan(0);
      }
    }
  });

  it("answers another host's request on its cluster address, and only with a token", async () => {
    // h2 asks h1's API over the bridge; the API answers only on what API_ALLOWED_HOSTS names.
    expect((await nodesSeenBy(1, 2)).length).toBe(3);
    expect((await cluster.http(2, 'GET', `${api(1)}/v1/api/nodes`)).status).toBe(401);
  });

  it("keeps an operator's membership state, seen by every host within a second; only admins set it", async () => {
    const refused = await cluster.http(2, 'PUT', `${api(2)}/v1/api/nodes/h3/state`, { token: viewer, body: { state: 'draining' } });
    expect(refused.status).toBe(403);
    expect((await cluster.http(2, 'PUT', `${api(2)}/v1/api/nodes/h9/state`, { token: admin, body: { state: 'draining' } })).body).toMatchObject({ error: 'NODE_NOT_FOUND' });
    expect((await cluster.http(2, 'PUT', `${api(2)}/v1/api/nodes/h3/state`, { token: admin, body: { state: 'gone' } })).status).toBe(400);
    const t0 = Date.now();
    const set = await cluster.http(2, 'PUT', `${api(2)}/v1/api/nodes/h3/state`, { token: admin, body: { state: 'draining' } });
    expect(set.status, set.text).toBe(200);
    const seen = await until(() => nodesSeenBy(1), (l) => byId(l).h3?.state === 'draining', 5000, 50);
    expect(byId(seen).h3).toMatchObject({ state: 'draining', alive: true });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await cluster.http(1, 'PUT', `${api(1)}/v1/api/nodes/h3/state`, { token: admin, body: { state: 'active' } })).status).toBe(200);
  });

  it('holds a control token revoked through one host on every host within a second', async () => {
    const doomed = hosts.get(1)!.token('--role', 'viewer', '--ttl', '1h');
    expect((await cluster.http(3, 'GET', `${api(3)}/v1/api/nodes`, { token: doomed })).status).toBe(200);
    const t0 = Date.now();
    const r = await cluster.http(1, 'POST', `${api(1)}/v1/api/control-tokens/revoke`, { token: admin, body: { token: doomed } });
    expect(r.status, r.text).toBe(200);
    for (const i of [2, 3]) {
      const refused = await until(async () => (await cluster.http(i, 'GET', `${api(i)}/v1/api/nodes`, { token: doomed })).status, (s) => s === 401, 5000, 20);
      expect(refused, `h${i}`).toBe(401);
    }
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('tells a host that stopped renewing its lease from one that left: the presence lapses, the state stays', async () => {
    const h3 = hosts.get(3)!;
    const pid = Number(h3.supervisorctl('pid', 'api').trim());
    expect(pid).toBeGreaterThan(1);
    // Frozen, the API renews nothing: its presence lapses within the TTL (plus etcd's tick).
    process.kill(pid, 'SIGSTOP');
    try {
      const gone = await until(() => nodesSeenBy(1), (l) => byId(l).h3?.alive === false, (TTL + 5) * 1000, 100);
      expect(byId(gone).h3).toMatchObject({ alive: false, state: 'active' });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Thawed, it finds its lease gone, takes a new one and is there again.
    const back = await until(() => nodesSeenBy(1), (l) => byId(l).h3?.alive === true, 30_000, 200);
    expect(byId(back).h3!.alive).toBe(true);
  });
});

describe('tables across hosts', () => {
  type Status = { program: string; node: string; state: string; accepting: boolean; desired: string };
  const viewerToken = () => viewer;
  const at = (i: number, path: string) => `${api(i)}${path}`;
  const statusVia = async (via: number, table: string) => (await cluster.http(via, 'GET', at(via, `/v1/api/spread/${table}/status`), { token: admin })).body as Status & { error?: string };

  it('creates a table on the host asked for, through any host, and every host answers for it', async () => {
    const r = await cluster.http(2, 'POST', at(2, '/v1/api/spread/orders/create?node=h3'), { token: admin, body: { sink: 'logger' } });
    expect(r.status, r.text).toBe(201);
    expect(r.body).toMatchObject({ program: 'flume-spread-orders', node: 'h3', accepting: true });
    // It runs on h3, and only there.
    expect(hosts.get(3)!.states()['flume-spread-orders']).toMatch(/STARTING|RUNNING/);
    for (const i of [1, 2]) expect(hosts.get(i)!.states()['flume-spread-orders']).toBeUndefined();
    const seen = await until(() => statusVia(1, 'orders'), (s) => s.node === 'h3' && s.state === 'RUNNING', 15_000, 100);
    expect(seen).toMatchObject({ node: 'h3', state: 'RUNNING', accepting: true });
    const listed = (await cluster.http(1, 'GET', at(1, '/v1/api/services?db=spread'), { token: admin })).body.agents as Status[];
    expect(listed.map((a) => [a.program, a.node])).toEqual([['flume-spread-orders', 'h3']]);
  });

  it("drives a table on another host through any API: stop via h1, start via h2, and each answer is the owner's", async () => {
    const stopped = await cluster.http(1, 'POST', at(1, '/v1/api/spread/orders/stop'), { token: admin });
    expect(stopped.status, stopped.text).toBe(200);
    expect(stopped.body).toMatchObject({ node: 'h3', state: 'STOPPED', desired: 'stopped' });
    expect(hosts.get(3)!.states()['flume-spread-orders']).toBe('STOPPED');
    const t0 = Date.now();
    const seen = await until(() => statusVia(2, 'orders'), (s) => s.state === 'STOPPED', 5000, 20);
    expect(seen.state).toBe('STOPPED');
    // A state change on h3, seen through h2's API: well within a second of the answer.
    expect(Date.now() - t0).toBeLessThan(1000);
    const started = await cluster.http(2, 'POST', at(2, '/v1/api/spread/orders/start'), { token: admin });
    expect(started.status, started.text).toBe(200);
    expect(started.body).toMatchObject({ node: 'h3', accepting: true });
  });

  it("hands the owner's own business to the owner: pause, logs, config, a fresh status through another host", async () => {
    const paused = await cluster.http(1, 'POST', at(1, '/v1/api/spread/orders/pause'), { token: admin });
    expect(paused.status, paused.text).toBe(200);
    expect(paused.body).toMatchObject({ node: 'h3', paused: true });
    // The owner publishes the change; h2 answers from it within a moment.
    expect(await until(async () => (await statusVia(2, 'orders')) as unknown as { paused: boolean }, (x) => x.paused, 5000, 50)).toMatchObject({ paused: true });
    const fresh = await cluster.http(2, 'GET', at(2, '/v1/api/spread/orders/status?fresh=true'), { token: admin });
    expect(fresh.body).toMatchObject({ node: 'h3', paused: true, accepting: true });
    const logs = await cluster.http(2, 'GET', at(2, '/v1/api/spread/orders/logs?lines=20'), { token: admin });
    expect(logs.status, logs.text).toBe(200);
    expect((logs.body.lines as string[]).length).toBeGreaterThan(0);
    const config = await cluster.http(1, 'GET', at(1, '/v1/api/spread/orders/config'), { token: admin });
    expect(config.body).toMatchObject({ program: 'flume-spread-orders', spec: { sink: 'logger' } });
    // etcd holds every table's config as its owner's disk has it, revision by revision.
    const specInEtcd = () => {
      const r = cluster.etcdValue(1, '/flume-service/tables/spread/orders/spec');
      return r ? (JSON.parse(r) as { revision: number; spec: { sink: string; channel: { capacity: number } } }) : null;
    };
    expect(await until(async () => specInEtcd(), (x) => x?.revision === 1, 5000, 100)).toMatchObject({ revision: 1, spec: { sink: 'logger' } });
    const changed = await cluster.http(2, 'PATCH', at(2, '/v1/api/spread/orders/config'), { token: admin, body: { channel: { capacity: 200000 } } });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body).toMatchObject({ outcome: 'applied', revision: 2 });
    expect(await until(async () => specInEtcd(), (x) => x?.revision === 2, 5000, 100)).toMatchObject({ revision: 2, spec: { channel: { capacity: 200000 } } });
    // If-Match travels with the call to the owner: a stale revision through another host is 412, unchanged.
    const stale = await cluster.http(1, 'PATCH', at(1, '/v1/api/spread/orders/config'), { token: admin, body: { channel: { capacity: 300000 } }, headers: { 'if-match': '"1"' } });
    expect(stale.status, stale.text).toBe(412);
    expect(stale.body).toMatchObject({ error: 'PRECONDITION_FAILED', details: { revision: 2 } });
    const agent = await cluster.http(2, 'GET', at(2, '/v1/api/spread/orders'), { token: admin });
    expect(agent.status, agent.text).toBe(200);
    expect(agent.body).toMatchObject({ agent: { node: 'h3' }, revision: 2, spec: { channel: { capacity: 200000 } } });
    const viewer = await cluster.http(1, 'GET', at(1, '/v1/api/spread/orders/logs'), { token: viewerToken() });
    expect(viewer.status).toBe(403); // checked by the host asked, before anything is handed on
    expect((await cluster.http(2, 'POST', at(2, '/v1/api/spread/orders/resume'), { token: admin })).body).toMatchObject({ node: 'h3', paused: false });
  });

  it("keeps agent ports on the owner's loopback: another host cannot reach them", async () => {
    const meta = JSON.parse(readFileSync(join(hosts.get(3)!.dir, 'services', 'flume-spread-orders', 'agent.json'), 'utf8')) as { port: number; metricsPort: number };
    const inside = await cluster.http(3, 'OPTIONS', `http://127.0.0.1:${meta.port}/`);
    expect(inside.status).toBe(403); // Flume's Jetty answers OPTIONS with 403: it is there
    for (const port of [meta.port, meta.metricsPort]) {
      const outside = await cluster.http(1, 'GET', `http://${cluster.address(3)}:${port}/`, { timeoutS: 3 });
      expect(outside.status, `port ${port} from h1`).toBe(0);
    }
  });

  it('makes one agent when two hosts create the same table at once: the same spec twice is one create, another spec is 409', async () => {
    const [a, b] = await Promise.all([
      cluster.http(1, 'POST', at(1, '/v1/api/spread/race/create?start=false'), { token: admin, body: { sink: 'logger' } }),
      cluster.http(2, 'POST', at(2, '/v1/api/spread/race/create?start=false'), { token: admin, body: { sink: 'logger' } }),
    ]);
    // One made it (201); the other is the same create, answered with its agent (200).
    expect([a.status, b.status].sort(), `${a.text} ${b.text}`).toEqual([200, 201]);
    expect(a.body.node).toBe(b.body.node);
    const [c, d] = await Promise.all([
      cluster.http(1, 'POST', at(1, '/v1/api/spread/race2/create?start=false'), { token: admin, body: { sink: 'logger' } }),
      cluster.http(2, 'POST', at(2, '/v1/api/spread/race2/create?start=false'), { token: admin, body: { sink: 'logger', options: { maxBytesToLog: 64 } } }),
    ]);
    expect([c.status, d.status].sort()).toEqual([201, 409]);
    expect((c.status === 409 ? c : d).body).toMatchObject({ error: 'AGENT_EXISTS', details: { differences: [{ field: 'options.maxBytesToLog' }] } });
    for (const t of ['flume-spread-race', 'flume-spread-race2']) expect(cluster.hosts().filter((i) => hosts.get(i)!.states()[t])).toHaveLength(1);
  });

  it('spreads new tables over the hosts, refuses a bad body before placing anything, and deletes through any host', async () => {
    const nodesOf: string[] = [];
    for (const t of ['s1', 's2', 's3']) {
      const r = await cluster.http(1, 'POST', at(1, `/v1/api/spread/${t}/create?start=false`), { token: admin, body: { sink: 'logger' } });
      expect(r.status, r.text).toBe(201);
      nodesOf.push(r.body.node as string);
    }
    // With orders on h3 and race somewhere, the three land where there were fewest.
    const all = ((await cluster.http(2, 'GET', at(2, '/v1/api/services?db=spread'), { token: admin })).body.agents as Status[]).map((a) => a.node);
    const counts = cluster.hosts().map((i) => all.filter((n) => n === `h${i}`).length);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    expect(new Set(nodesOf).size).toBeGreaterThanOrEqual(2);

    const bad = await cluster.http(3, 'POST', at(3, '/v1/api/spread/bad/create'), { token: admin, body: { sink: 'nope' } });
    expect(bad.status).toBe(400);
    expect((await statusVia(1, 'bad')).error).toBe('AGENT_NOT_FOUND');
    expect((await cluster.http(1, 'POST', at(1, '/v1/api/spread/x/create?node=h9'), { token: admin, body: {} })).body).toMatchObject({ error: 'NODE_NOT_FOUND' });

    const owner = Number(nodesOf[0]!.slice(1));
    const via = owner === 1 ? 2 : 1;
    const del = await cluster.http(via, 'DELETE', at(via, '/v1/api/spread/s1?force=true'), { token: admin });
    expect(del.status, del.text).toBe(200);
    expect(del.body).toMatchObject({ program: 'flume-spread-s1', channel: 'removed' });
    expect(hosts.get(owner)!.states()['flume-spread-s1']).toBeUndefined();
    expect((await until(() => statusVia(3, 's1'), (s) => s.error === 'AGENT_NOT_FOUND', 5000, 50)).error).toBe('AGENT_NOT_FOUND');
    // Created again: placed afresh.
    expect((await cluster.http(3, 'POST', at(3, '/v1/api/spread/s1/create?start=false'), { token: admin, body: { sink: 'logger' } })).status).toBe(201);
  });
});

describe('bulk operations across hosts', () => {
  it('starts and stops tables on several hosts in one bulk operation through one API', async () => {
    type Op = { id: string; state: string; counts: Record<string, number>; results: Array<{ table: string; outcome: string; message: string }> };
    const finished = async (id: string) => until(async () => (await cluster.http(1, 'GET', `${api(1)}/v1/api/operations/${id}`, { token: admin })).body.operation as Op, (o) => o.state === 'done', 120_000, 200);
    const listed = (await cluster.http(1, 'GET', `${api(1)}/v1/api/services?db=spread`, { token: admin })).body.agents as Array<{ table: string; node: string }>;
    const picked = ['s2', 's3'];
    expect(new Set(listed.filter((a) => picked.includes(a.table)).map((a) => a.node)).size).toBe(2);
    for (const op of ['start', 'stop'] as const) {
      const r = await cluster.http(1, 'POST', `${api(1)}/v1/api/bulk/${op}`, { token: admin, body: { tables: picked.map((t) => `spread.${t}`) } });
      expect(r.status, r.text).toBe(202);
      const o = await finished((r.body.operation as Op).id);
      expect(o.counts, JSON.stringify(o.results)).toMatchObject({ applied: 2, failed: 0 });
      for (const t of picked) {
        const owner = Number(listed.find((a) => a.table === t)!.node.slice(1));
        expect(hosts.get(owner)!.states()[`flume-spread-${t}`] ?? '', `${t} on h${owner}`).toMatch(op === 'start' ? /STARTING|RUNNING/ : /STOPPED/);
      }
    }
  });
});

describe('ingest through any gateway', () => {
  // Each sender talks to its own host's gateway on loopback.
  const gw = (_i: number) => 'http://127.0.0.1:8080';
  let token: string;
  const send = (via: number, tag: string, n: number, tok = token, extra: Record<string, string> = {}) =>
    cluster.http(via, 'POST', `${gw(via)}/ingest/spread/ingest`, {
      token: tok,
      body: Array.from({ length: n }, (_, k) => ({ headers: extra, body: `${tag}-${k}` })),
      timeoutS: 30,
    });

  beforeAll(async () => {
    const r = await cluster.http(3, 'POST', `${api(3)}/v1/api/spread/ingest/create?node=h3`, { token: admin, body: { sink: 'file_roll', options: { rollInterval: 0, batchSize: 1 } } });
    expect(r.status, r.text).toBe(201);
    // A sender's token, set through h2: every gateway takes it.
    const t = await cluster.http(2, 'POST', `${api(2)}/v1/api/token`, { token: admin, body: { username: 'spread-sender', scope: ['spread'] } });
    expect(t.status, t.text).toBe(200);
    token = t.body.token as string;
  }, 120_000);

  it("takes events for a table on h3 through h1's and h2's gateways, and every acknowledged event reaches h3's sink", async () => {
    let acked = 0;
    for (const via of [1, 2, 3]) {
      const r = await until(() => send(via, `via${via}`, 5), (x) => x.status === 200, 10_000, 100);
      expect(r.status, `via h${via}: ${r.text} ${hosts.get(via)!.log('gateway.log').slice(-1500)}`).toBe(200);
      expect(r.body).toMatchObject({ events: 5 });
      acked += 5;
    }
    const lines = await until(() => hosts.get(3)!.delivered('flume-spread-ingest'), (l) => l.length >= acked, 20_000, 200);
    expect(lines.sort()).toEqual([1, 2, 3].flatMap((v) => Array.from({ length: 5 }, (_, k) => `via${v}-${k}`)).sort());
    // The sender's name is set by the gateway that took it first and checked again by the owner's.
    expect(hosts.get(1)!.delivered('flume-spread-ingest')).toEqual([]);
    // A sender that waits for the sink, through h1's gateway: h3's gateway waits for its agent's
    // sink, and its trace, in h3's Redis, is read through h1's API.
    const waited = await cluster.http(1, 'POST', `${gw(1)}/ingest/spread/ingest`, { token, body: [{ body: 'waited' }], headers: { Prefer: 'ack=sink', 'X-Request-Id': 'cluster-trace-1' }, timeoutS: 30 });
    expect(waited.status, waited.text).toBe(200);
    expect(waited.body).toMatchObject({ committed: 'sink', requestId: 'cluster-trace-1' });
    expect(hosts.get(3)!.delivered('flume-spread-ingest')).toContain('waited');
    const trace = await until(() => cluster.http(1, 'GET', `${api(1)}/v1/api/spread/ingest/trace/cluster-trace-1`, { token: admin }), (r) => r.status === 200, 10_000, 200);
    expect(trace.body).toMatchObject({ ack: 'sink', stage: 'sink', events: 1 });
  });

  it('never forwards a request that went through two gateways already, and refuses what the owner refuses', async () => {
    const hopped = await cluster.http(1, 'POST', `${gw(1)}/ingest/spread/ingest`, { token, body: [{ body: 'x' }] });
    expect(hopped.status).toBe(200);
    const looped = await new Promise<{ status: number; text: string }>((resolve) => {
      const r = cluster.run(1, 'curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', '-X', 'POST', '-H', `authorization: Bearer ${token}`, '-H', 'x-flume-hop: 2', '--data-binary', '[{"body":"loop"}]', `${gw(1)}/ingest/spread/ingest`]);
      const cut = r.stdout.lastIndexOf('\n');
      resolve({ status: Number(r.stdout.slice(cut + 1)), text: r.stdout.slice(0, cut) });
    });
    expect(looped.status, looped.text).toBe(503);
    expect(JSON.parse(looped.text)).toMatchObject({ error: 'AGENT_DOWN' });
    // A header that steers the sink is refused, here as on one host.
    const reserved = await send(2, 'bad', 1, token, { topic: 'elsewhere' });
    expect(reserved.status).toBe(400);
  });

  it("holds a db's quota set through one host on every host, counted at the gateway of the host that runs the table", async () => {
    const set = await cluster.http(2, 'PUT', `${api(2)}/v1/api/quotas/spread`, { token: admin, body: { eventsPerSecond: 5 } });
    expect(set.status, set.text).toBe(200);
    for (const i of [1, 3]) {
      const seen = await until(() => cluster.http(i, 'GET', `${api(i)}/v1/api/quotas/spread`, { token: admin }), (r) => r.body.quota !== null, 5000, 50);
      expect(seen.body, `h${i}`).toMatchObject({ quota: { eventsPerSecond: 5 } });
    }
    // Through h1's gateway to h3's (which runs the table): h3 holds the quota it learned from etcd.
    const big = await until(() => send(1, 'over-quota', 10), (x) => x.status === 413, 5000, 50);
    expect(big.body).toMatchObject({ error: 'TOO_MANY_EVENTS', message: expect.stringMatching(/spread's quota of 5 events a second/) });
    expect((await cluster.http(3, 'DELETE', `${api(3)}/v1/api/quotas/spread`, { token: admin })).status).toBe(200);
    const gone = await until(() => cluster.http(2, 'GET', `${api(2)}/v1/api/quotas/spread`, { token: admin }), (r) => r.body.quota === null, 5000, 50);
    expect(gone.body).toMatchObject({ quota: null });
    expect((await until(() => send(1, 'quota-gone', 10), (x) => x.status === 200, 5000, 50)).status).toBe(200);
  });

  it('holds a revocation made through one host at every gateway within a second', async () => {
    const t0 = Date.now();
    const r = await cluster.http(3, 'DELETE', `${api(3)}/v1/api/token/spread-sender`, { token: admin });
    expect(r.status, r.text).toBe(200);
    const refused = await until(() => send(1, 'after-revoke', 1), (x) => x.status === 401, 5000, 20);
    expect(refused.status).toBe(401);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await send(2, 'after-revoke', 1)).status).toBe(401);
    // A new token, through h1 this time.
    const t = await cluster.http(1, 'POST', `${api(1)}/v1/api/token`, { token: admin, body: { username: 'spread-sender', scope: ['spread'] } });
    token = t.body.token as string;
    expect((await until(() => send(2, 'new-token', 1), (x) => x.status === 200, 5000, 50)).status).toBe(200);
  });

  it("says so when the host that runs a table is gone: its status is down everywhere, gateways answer 503 NODE_DOWN, and both come back", async () => {
    const h3 = hosts.get(3)!;
    const pid = Number(h3.supervisorctl('pid', 'api').trim());
    process.kill(pid, 'SIGSTOP');
    try {
      const down = await until(async () => (await cluster.http(1, 'GET', `${api(1)}/v1/api/spread/ingest/status`, { token: admin })).body, (b) => b.health === 'down', (TTL + 6) * 1000, 100);
      expect(down).toMatchObject({ node: 'h3', health: 'down', accepting: false });
      expect(down.healthReason).toMatch(/host h3 is not alive/);
      const refused = await until(() => send(2, 'while-down', 1), (x) => x.status === 503, 5000, 50);
      expect(refused.body).toMatchObject({ error: 'NODE_DOWN' });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const back = await until(() => send(2, 'back', 1), (x) => x.status === 200, 30_000, 200);
    expect(back.status, back.text).toBe(200);
  });

  it('fences a host cut off from etcd: its own gateway stops intake (503 NODE_FENCED) and opens again once the link is back', async () => {
    const local = () => send(3, 'fence', 1);
    expect((await until(local, (x) => x.status === 200, 10_000, 100)).status).toBe(200);
    cluster.run(3, 'ip', ['link', 'set', 'eth0', 'down']);
    try {
      const fenced = await until(local, (x) => x.status === 503, (TTL + 5) * 1000, 50);
      expect(fenced.body).toMatchObject({ error: 'NODE_FENCED' });
    } finally {
      cluster.run(3, 'ip', ['link', 'set', 'eth0', 'up']);
    }
    const open = await until(local, (x) => x.status === 200, 60_000, 200);
    expect(open.status, open.text).toBe(200);
  });

  it('answers 202 with the operation under way when the owner does not finish within the wait, and the owner carries it out later', async () => {
    const h3 = hosts.get(3)!;
    const pid = Number(h3.supervisorctl('pid', 'api').trim());
    process.kill(pid, 'SIGSTOP');
    let r: Awaited<ReturnType<typeof cluster.http>>;
    try {
      r = await cluster.http(1, 'POST', `${api(1)}/v1/api/spread/ingest/stop`, { token: admin, timeoutS: WAIT_MS / 1000 + 30 });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(r.status, r.text).toBe(202);
    expect(r.body).toMatchObject({ code: 0, pending: { node: 'h3', op: 'stop' } });
    const stopped = await until(async () => (await cluster.http(2, 'GET', `${api(2)}/v1/api/spread/ingest/status`, { token: admin })).body, (b) => b.state === 'STOPPED', 30_000, 200);
    expect(stopped).toMatchObject({ node: 'h3', state: 'STOPPED' });
    expect(hosts.get(3)!.states()['flume-spread-ingest']).toBe('STOPPED');
    expect((await cluster.http(2, 'POST', `${api(2)}/v1/api/spread/ingest/start`, { token: admin })).status).toBe(200);
  });

  it("heals h1's Redis restarted empty from etcd: the remote route and the token come back", async () => {
    const h1 = hosts.get(1)!;
    h1.supervisorctl('stop', 'redis');
    for (const f of ['appendonly.aof', 'appendonlydir', 'dump.rdb']) rmSync(join(h1.varDir, 'redis', f), { recursive: true, force: true });
    h1.supervisorctl('start', 'redis');
    const back = await until(() => send(1, 'after-redis', 1), (x) => x.status === 200, 30_000, 200);
    expect(back.status, back.text).toBe(200);
  });
});

describe('a writer of etcd without the cluster key', () => {
  // Someone with etcd's credentials (here the hosts' own etcd user) but not the hosts' keys writes
  // a host of its own and gives it a table: nothing of it is believed. Its "host" is a listener
  // in h2's namespace that records whatever reaches it.
  it("gets no caller's token and no event, moves no table and removes no agent", async () => {
    const created = await cluster.http(1, 'POST', `${api(1)}/v1/api/spread/forged/create?node=h1`, { token: admin, body: { sink: 'file_roll', options: { rollInterval: 0, batchSize: 1 } }, timeoutS: 120 });
    expect(created.status, created.text).toBe(201);
    const t = await cluster.http(1, 'POST', `${api(1)}/v1/api/token`, { token: admin, body: { username: 'forge-sender', scope: ['spread'] } });
    const ingestToken = t.body.token as string;
    const before = await until(async () => (await cluster.http(1, 'GET', `${api(1)}/v1/api/spread/forged/status`, { token: admin })).body, (b) => b.state === 'RUNNING' && b.accepting === true, 60_000, 200);

    const captured = join(cluster.dir, 'captured.log');
    const trap = `require('http').createServer((q, s) => { let b = ''; q.on('data', (d) => (b += d)); q.on('end', () => { require('fs').appendFileSync(${JSON.stringify(captured)}, JSON.stringify({ url: q.url, headers: q.headers, body: b }) + '\\n'); s.end('{}'); }); }).listen(9999, ${JSON.stringify(cluster.address(2))});`;
    const listener = cluster.spawn(2, process.execPath, ['-e', trap], join(cluster.dir, 'trap.out'));
    const fake = `http://${cluster.address(2)}:9999`;
    const as = { as: cluster.certs.service };
    const key = (k: string) => `/flume-service/${k}`;
    const ownerKey = key('tables/spread/forged/owner');
    const realOwner = cluster.etcdctl(1, ['get', '--print-value-only', ownerKey]).stdout.trim();
    expect(realOwner).toMatch(/^fs1\..+\.h1$/);
    try {
      const now = new Date().toISOString();
      const presence = { id: 'h9', address: cluster.address(2), apiUrl: fake, gatewayUrl: fake, startedAt: now, renewedAt: now, capacity: { agents: 0, freePorts: 50000, cpuCores: 64, memAvailableBytes: 1e12 }, keysDigest: '0' };
      for (const [k, v] of [[key('nodes/h9/presence'), JSON.stringify(presence)], [key('nodes/h9/state'), 'active'], [ownerKey, 'h9']] as const) {
        const w = cluster.etcdctl(1, ['put', k, v], as);
        expect(w.status, w.stderr).toBe(0);
      }
      // A change made after the forgery, seen by every host: each has read past it.
      expect((await cluster.http(2, 'PUT', `${api(2)}/v1/api/nodes/h3/state`, { token: admin, body: { state: 'draining' } })).status).toBe(200);
      for (const i of cluster.hosts()) await until(() => nodesSeenBy(i), (l) => byId(l).h3?.state === 'draining', 10_000, 100);
      expect((await cluster.http(2, 'PUT', `${api(2)}/v1/api/nodes/h3/state`, { token: admin, body: { state: 'active' } })).status).toBe(200);

      for (const i of cluster.hosts()) expect((await nodesSeenBy(i)).map((n) => n.id)).not.toContain('h9');
      // An admin's read through another host goes to the real owner, with the admin's token nowhere else.
      const config = await cluster.http(2, 'GET', `${api(2)}/v1/api/spread/forged/config`, { token: admin });
      expect(config.status, config.text).toBe(200);
      expect((await cluster.http(3, 'GET', `${api(3)}/v1/api/spread/forged/status?fresh=true`, { token: admin })).body).toMatchObject({ node: 'h1', accepting: true });
      // A sender through h2's and h3's gateways: its events reach h1's agent.
      for (const via of [2, 3]) {
        const r = await cluster.http(via, 'POST', `http://127.0.0.1:8080/ingest/spread/forged`, { token: ingestToken, body: [{ body: `after-forgery-${via}` }] });
        expect(r.status, r.text).toBe(200);
      }
      await until(() => hosts.get(1)!.delivered('flume-spread-forged'), (l) => l.includes('after-forgery-2') && l.includes('after-forgery-3'), 20_000, 200);
      // h1 still runs its agent, the same JVM: it did not hand the table to the forged owner.
      const after = await cluster.http(1, 'GET', `${api(1)}/v1/api/spread/forged/status?fresh=true`, { token: admin });
      expect(after.body).toMatchObject({ node: 'h1', state: 'RUNNING', pid: before.pid, accepting: true });
      expect(hosts.get(1)!.jvmsOf('flume-spread-forged')).toEqual([before.pid]);
      expect(hosts.get(1)!.log('api.log')).toContain('no host of this cluster sealed');
      // Nothing ever reached the forged host.
      expect(existsSync(captured) ? readFileSync(captured, 'utf8') : '').toBe('');
    } finally {
      listener.kill('SIGKILL');
      // Put back the value h1 wrote (a record a host sealed), and take the forged host away.
      cluster.etcdctl(1, ['put', ownerKey, realOwner]);
      cluster.etcdctl(1, ['del', '--prefix', key('nodes/h9/')]);
    }
  });
});
