import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createEtcd, Mirror, OwnLease } from '../../src/cluster/etcd.js';
import { TestEtcd } from '../helpers/etcd.js';
import { until } from '../helpers/wait.js';

// The one door to etcd (src/cluster/etcd.ts) against a real etcd 3.4 member on loopback.
const log = pino({ level: 'silent' });
let etcd: TestEtcd;
beforeAll(async () => {
  etcd = new TestEtcd();
  await etcd.start();
});
afterAll(async () => {
  await etcd?.destroy();
});

describe('the etcd mirror', () => {
  it('holds every key under its prefix, and misses nothing across an etcd restart with a compaction in between', async () => {
    const client = createEtcd([etcd.endpoint]);
    const view = new Map<string, string>();
    const mirror = new Mirror(client, '/m/', {
      reset: (entries) => {
        view.clear();
        for (const [k, e] of entries) view.set(k, e.value);
      },
      put: (k, e) => view.set(k, e.value),
      delete: (k) => view.delete(k),
    }, log);
    try {
      await client.put('/m/a').value('1').exec();
      await client.put('/other').value('x').exec();
      await mirror.start();
      expect(Object.fromEntries(view)).toEqual({ '/m/a': '1' });
      await client.put('/m/b').value('2').exec();
      await client.delete().key('/m/a').exec();
      await until(() => view.size, () => view.has('/m/b') && !view.has('/m/a'), 5000, 20);
      expect(Object.fromEntries(view)).toEqual({ '/m/b': '2' });

      // Down: the watch breaks. Back: changes land and the history is compacted before the
      // watch can come back to its revision, which etcd then no longer has.
      await etcd.kill();
      await etcd.start();
      for (let i = 0; i < 5; i++) etcd.ctl('put', `/m/c${i}`, String(i));
      etcd.ctl('del', '/m/b');
      const rev = /"revision":(\d+)/.exec(etcd.ctl('endpoint', 'status', '-w', 'json').stdout)?.[1];
      etcd.ctl('compact', rev!);
      const want = { '/m/c0': '0', '/m/c1': '1', '/m/c2': '2', '/m/c3': '3', '/m/c4': '4' };
      const seen = await until(() => Object.fromEntries(view), (v) => JSON.stringify(v) === JSON.stringify(want), 30_000, 100);
      expect(seen).toEqual(want);
    } finally {
      await mirror.stop();
      client.close();
    }
  });
});

describe('our lease', () => {
  it('fences itself at 2/3 of its TTL without renewals, before etcd lets it lapse; once lapsed, takes a new lease and puts its keys again', async () => {
    const client = createEtcd([etcd.endpoint]);
    const lease = new OwnLease(client, 3, log);
    try {
      await lease.put('/l/presence', 'here');
      expect(etcd.ctl('get', '/l/presence', '--print-value-only').stdout.trim()).toBe('here');
      const fenced = new Promise<number>((r) => lease.once('fenced', () => r(Date.now())));
      const t0 = Date.now();
      etcd.signal('SIGSTOP'); // etcd answers nothing: no renewal succeeds
      const at = await fenced;
      expect(lease.fenced).toBe(true);
      // 2/3 of 3 s after the last renewal: at most 2 s after the stop, and before the TTL.
      expect(at - t0).toBeLessThan(3000);
      // Held stopped past the TTL (by the lease's own clock): etcd revokes the lease when it runs again.
      await until(() => lease.ageSeconds, (s) => s > 3 + 1, 10_000, 50);
      const regranted = new Promise((r) => lease.once('regranted', r));
      etcd.signal('SIGCONT');
      await regranted;
      await until(() => lease.fenced, (f) => !f, 20_000, 50);
      expect(await until(() => etcd.ctl('get', '/l/presence', '--print-value-only').stdout.trim(), (v) => v === 'here', 20_000, 100)).toBe('here');
    } finally {
      etcd.signal('SIGCONT');
      await lease.close();
      client.close();
    }
  });
});
