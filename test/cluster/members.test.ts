import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { nothingApplied, type EtcdAccess } from '../../src/cluster/etcd.js';
import { makeClusterKeys } from '../../src/cluster/keys.js';
import { EtcdMembers } from '../../src/cluster/members.js';
import { Membership } from '../../src/cluster/membership.js';
import { TestEtcd } from '../helpers/etcd.js';
import { SilentProxy } from '../helpers/silent-proxy.js';
import { sampleUntil, until } from '../helpers/wait.js';

// What keeps a host alive in the cluster's eyes must never wait on an etcd member that went
// silent (cut off by the network): here a member is a proxy to a real etcd 3.4 that stops
// passing bytes, connections left open, as a cut link leaves them.
const log = pino({ level: 'silent' });
let etcd: TestEtcd;
let proxy: SilentProxy;
beforeAll(async () => {
  etcd = new TestEtcd();
  await etcd.start();
  proxy = new SilentProxy({ host: '127.0.0.1', port: etcd.clientPort });
  await proxy.start();
});
afterAll(async () => {
  await proxy?.stop();
  await etcd?.destroy();
});

/** The silent-able member first (it is the one a client prefers until it goes silent), then the member itself. */
const access = (): EtcdAccess => {
  const c = etcd.certs!;
  return { endpoints: [`https://${proxy.endpoint}`, etcd.endpoint], ca: readFileSync(c.ca), cert: readFileSync(c.service.cert), key: readFileSync(c.service.key) };
};
const capacity = { agents: 0, cpuCores: 2, loadAverage: 0, memTotalBytes: 1, memAvailableBytes: 1, diskFreeBytes: null, freePorts: 100 };

function host(id: string, ttl: number) {
  const members = new EtcdMembers(access());
  const m = new Membership(members.pooled, members, makeClusterKeys('/ms/'), { id, address: '127.0.0.1', apiUrl: 'http://x', gatewayUrl: 'http://y', leaseTtlSeconds: ttl, keysDigest: 'same' }, async () => capacity, log);
  return {
    m,
    async stop() {
      await m.stop();
      members.close();
    },
  };
}

describe('a member that goes silent', () => {
  it("costs no host its lease, and no host sees another as gone: each renews, beats and watches through the member that answers", async () => {
    const ttl = 3;
    const a = host('a', ttl);
    const b = host('b', ttl);
    try {
      await Promise.all([a.m.start(), b.m.start()]);
      const bothAlive = () => [a.m, b.m].every((x) => x.nodes().length === 2 && x.nodes().every((n) => n.alive));
      expect(await until(bothAlive, (ok) => ok, 10_000, 50)).toBe(true);
      proxy.silence();
      // Three TTLs: any host waiting on the silent member would be fenced, or judged gone, in one.
      const seen: string[] = [];
      const end = Date.now() + 3 * ttl * 1000;
      await sampleUntil(end, 100, () => {
        for (const x of [a.m, b.m]) {
          if (x.fenced) seen.push(`${x.id} fenced`);
          for (const n of x.nodes()) if (!n.alive) seen.push(`${x.id} sees ${n.id} gone`);
        }
      });
      expect([...new Set(seen)]).toEqual([]);
      // And a change of state written through one host reaches the other's view meanwhile.
      await a.m.setState('b', 'draining');
      expect(await until(() => b.m.nodes().find((n) => n.id === 'b')?.state, (s) => s === 'draining', 5000, 50)).toBe('draining');
    } finally {
      proxy.speak();
      await Promise.all([a.stop(), b.stop()]);
    }
  }, 60_000);
});

describe('what a failed etcd call changed', () => {
  it('is nothing only when no member took it: refused for want of a leader, or never sent', () => {
    for (const m of ['14 UNAVAILABLE: etcdserver: no leader', '14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 10.77.0.12:2379', 'Execution prevented because the circuit breaker is open']) expect(nothingApplied(new Error(m)), m).toBe(true);
    for (const m of ['4 DEADLINE_EXCEEDED: Deadline exceeded', '14 UNAVAILABLE: etcdserver: request timed out', '14 UNAVAILABLE: etcdserver: leader changed', '14 UNAVAILABLE: Connection dropped', '13 INTERNAL: Received RST_STREAM']) expect(nothingApplied(new Error(m)), m).toBe(false);
  });
});
