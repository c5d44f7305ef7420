import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Installation } from '../../helpers/installation.js';
import { NetnsCluster } from '../../helpers/netns.js';
import { until } from '../../helpers/wait.js';

// Many hosts (issue 23): three hosts as network namespaces, each the whole stack as the README's
// first command brings it up (its own Redis, supervisord, API, gateway), joined by a three-member
// etcd. One cluster for the whole file.

const TTL = 3;
let cluster: NetnsCluster;
const hosts = new Map<number, Installation>();
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
  cluster = new NetnsCluster(3);
  await cluster.create();
  await cluster.startEtcd();
  for (const i of cluster.hosts()) {
    hosts.set(
      i,
      new Installation(
        {
          NODE_ID: `h${i}`,
          NODE_ADDRESS: cluster.address(i),
          ETCD_ENDPOINTS: cluster.etcdEndpoints,
          NODE_LEASE_TTL_SECONDS: String(TTL),
          API_HOST: '0.0.0.0',
          API_ALLOWED_HOSTS: cluster.hosts().map((h) => cluster.address(h)).join(','),
          AGENT_HEAP: '128m',
        },
        { netns: cluster.ns(i) },
      ),
    );
  }
  // A cluster's hosts share the keys that sign control tokens and hash ingestion tokens.
  const keys = { 'jwt-secret': randomBytes(48).toString('base64url'), 'token-hash-key': randomBytes(48).toString('base64url') };
  for (const h of hosts.values()) {
    mkdirSync(h.varDir, { recursive: true });
    for (const [file, key] of Object.entries(keys)) writeFileSync(join(h.varDir, file), `${key}\n`, { mode: 0o600 });
  }
  await Promise.all([...hosts.values()].map((h) => h.up()));
  admin = hosts.get(1)!.token('--role', 'admin', '--ttl', '1h');
  viewer = hosts.get(1)!.token('--role', 'viewer', '--ttl', '1h');
}, 300_000);

afterAll(async () => {
  await Promise.all([...hosts.values()].map((h) => h.destroy()));
  await cluster?.destroy();
}, 120_000);

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
