import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { createEtcd, RecordSeal, sealKey, type EtcdAccess } from '../../src/cluster/etcd.js';
import { OwnLease } from '../../src/cluster/lease.js';
import { EtcdMembers } from '../../src/cluster/members.js';
import { Mirror } from '../../src/cluster/mirror.js';
import { TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/harness.js';
import { elapsed, until } from '../helpers/wait.js';

// The one door to etcd (src/cluster/etcd.ts) against a real etcd 3.4 member on loopback,
// protected as docs/cluster.md deploys it (TLS, client certificates, authentication).
const log = pino({ level: 'silent' });
/** The service's access: TLS, and its client certificate (or its user and password). */
const access = (how: 'cert' | 'password' | 'ca-only' | 'intruder' = 'cert', seal?: RecordSeal): EtcdAccess => {
  const c = etcd.certs!;
  const pem = (f: string) => readFileSync(f);
  return {
    endpoints: [etcd.endpoint],
    ca: pem(c.ca),
    ...(how === 'cert' ? { cert: pem(c.service.cert), key: pem(c.service.key) } : {}),
    ...(how === 'intruder' ? { cert: pem(c.intruder.cert), key: pem(c.intruder.key) } : {}),
    // etcd asks every client for a certificate (--client-cert-auth): a user signs in on top of one (here another user's, root's, which the password overrides).
    ...(how === 'password' ? { cert: pem(c.root.cert), key: pem(c.root.key), user: { username: 'flume-service', password: etcd.password } } : {}),
    ...(seal ? { seal } : {}),
  };
};
let etcd: TestEtcd;
beforeAll(async () => {
  etcd = new TestEtcd();
  await etcd.start();
});
afterAll(async () => {
  await etcd?.destroy();
});

/** A Mirror of `prefix` into a map: what a host's view would hold. */
function mirrored(members: EtcdMembers, prefix: string): { view: Map<string, string>; mirror: Mirror } {
  const view = new Map<string, string>();
  const mirror = new Mirror(members, prefix, {
    reset: (entries) => {
      view.clear();
      for (const [k, e] of entries) view.set(k, e.value);
    },
    put: (k, e) => view.set(k, e.value),
    delete: (k) => view.delete(k),
  }, log);
  return { view, mirror };
}

describe('the etcd mirror', () => {
  it('holds every key under its prefix, and misses nothing across an etcd restart with a compaction in between', async () => {
    const client = createEtcd(access());
    const members = new EtcdMembers(access());
    const { view, mirror } = mirrored(members, '/m/');
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
      members.close();
    }
  });
});

describe('our lease', () => {
  it('fences itself at 2/3 of its TTL without renewals, before etcd lets it lapse; once lapsed, takes a new lease and puts its keys again', async () => {
    const client = createEtcd(access());
    const members = new EtcdMembers(access());
    const lease = new OwnLease(members, 3, log);
    try {
      await lease.ready(3000);
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
      members.close();
    }
  });
});

describe('a client that signs in with a password', () => {
  it('signs in again after etcd restarted (its tokens are gone), however long after it started', async () => {
    const client = createEtcd(access('password'));
    try {
      const signedIn = Date.now();
      await client.put('/auth/a').value('1').exec();
      // Past the sign-in's deadline as first computed: a deadline fixed at start would have lapsed.
      await elapsed(signedIn, 3500);
      await etcd.kill();
      await etcd.start();
      const got = await until(
        () => client.get('/auth/a').string().then((v) => v, (err: Error) => `failed: ${err.message}`),
        (v) => v === '1',
        15_000,
        200,
      );
      expect(got).toBe('1');
    } finally {
      client.close();
    }
  });
});

describe('a protected etcd', () => {
  it('takes the service by its client certificate or by its user; refuses a client without either, and a certificate of a user it does not know', async () => {
    for (const how of ['cert', 'password'] as const) {
      const c = createEtcd(access(how));
      try {
        await c.put(`/p/${how}`).value('ok').exec();
        expect(await c.get(`/p/${how}`).string()).toBe('ok');
      } finally {
        c.close();
      }
    }
    for (const how of ['ca-only', 'intruder'] as const) {
      const c = createEtcd(access(how));
      try {
        await expect(c.put('/p/x').value('no').exec()).rejects.toThrow(/permission denied|user name is empty|authentication|certificate|No connection established/i);
      } finally {
        c.close();
      }
    }
    expect(etcd.ctl('get', '/p/x').stdout).toBe('');
  });
});

describe("the records' seal", () => {
  const seal = () => new RecordSeal(sealKey('the cluster\'s shared control-token secret, 48 chars..'), '/s/');
  it('seals every value written under the prefix, and believes no value etcd holds without its seal', async () => {
    const mine = seal();
    const client = createEtcd(access('cert', mine));
    const members = new EtcdMembers(access('cert', mine));
    const { view, mirror } = mirrored(members, '/s/');
    try {
      await client.put('/s/owner').value('h1').exec();
      await client.put('/outside').value('plain').exec();
      // etcd holds the sealed form; this process reads the value.
      expect(etcd.ctl('get', '/s/owner', '--print-value-only').stdout.trim()).toMatch(/^fs1\.[A-Za-z0-9_-]{43}\.h1$/);
      expect(etcd.ctl('get', '/outside', '--print-value-only').stdout.trim()).toBe('plain');
      expect(await client.get('/s/owner').string()).toBe('h1');
      await mirror.start();
      expect(view.get('/s/owner')).toBe('h1');

      // A writer of etcd without the key (etcd's own root here): not believed, by a read or a watch.
      expect(etcd.ctl('put', '/s/forged', 'h9').status).toBe(0);
      expect(etcd.ctl('put', '/s/owner', 'h9').status).toBe(0);
      const copied = etcd.ctl('get', '/s/owner', '--print-value-only').stdout.trim();
      expect(await client.get('/s/forged').string()).toBeNull();
      expect(await client.get('/s/owner').string()).toBeNull();
      await client.put('/s/after').value('x').exec();
      await until(() => view.has('/s/after'), (v) => v, 5000, 20);
      expect(view.get('/s/owner')).toBe('h1');
      expect(view.has('/s/forged')).toBe(false);
      expect(mine.refused).toBeGreaterThanOrEqual(3);
      // A sealed value moved to another key is not believed there either.
      await client.put('/s/owner').value('h1').exec();
      const sealed = etcd.ctl('get', '/s/owner', '--print-value-only').stdout.trim();
      expect(sealed).not.toBe(copied);
      expect(etcd.ctl('put', '/s/other', sealed).status).toBe(0);
      expect(await client.get('/s/other').string()).toBeNull();
      expect(await client.getAll().prefix('/s/').strings()).toEqual({ '/s/after': 'x', '/s/owner': 'h1' });

      // A compare on a value compares the sealed form: true for the value this process wrote.
      const txn = await client.if('/s/owner', 'Value', '==', 'h1').then(client.put('/s/moved').value('yes')).commit();
      expect(txn.succeeded).toBe(true);
      expect(await client.get('/s/moved').string()).toBe('yes');
      // A host with another key believes none of it.
      const other = createEtcd(access('cert', new RecordSeal(sealKey('another cluster entirely, its own secret of 48 chars'), '/s/')));
      try {
        expect(await other.getAll().prefix('/s/').strings()).toEqual({});
      } finally {
        other.close();
      }
    } finally {
      await mirror.stop();
      client.close();
      members.close();
    }
  });
});

describe('sealing the records of a cluster from before seals', () => {
  it('lists the unsealed records, then seals them so the hosts believe them again', async () => {
    const secret = 'a cluster upgraded from before seals: its secret';
    for (const [k, v] of [['/up/tables/a/b/owner', 'h1'], ['/up/nodes/h1/state', 'active']] as const) expect(etcd.ctl('put', k, v).status).toBe(0);
    const env = { ...process.env, ...etcd.settings, ETCD_PREFIX: '/up/', JWT_SECRET: secret, STATE_DIR: tempDir('seal'), SETTINGS_FILE: '/dev/null', NODE_ADDRESS: '127.0.0.1' };
    const client = createEtcd(access('cert', new RecordSeal(sealKey(secret), '/up/')));
    try {
      expect(await client.getAll().prefix('/up/').strings()).toEqual({});
      const dry = spawnSync(process.execPath, ['dist/cli/seal-records.js'], { env, encoding: 'utf8' });
      expect(dry.status, dry.stderr).toBe(0);
      expect(dry.stdout).toContain('would seal /up/tables/a/b/owner = h1');
      expect(dry.stdout).toContain('2 of 2 record(s) under /up/ not sealed');
      const done = spawnSync(process.execPath, ['dist/cli/seal-records.js', '--write'], { env, encoding: 'utf8' });
      expect(done.status, done.stderr).toBe(0);
      expect(await client.getAll().prefix('/up/').strings()).toEqual({ '/up/tables/a/b/owner': 'h1', '/up/nodes/h1/state': 'active' });
    } finally {
      client.close();
    }
  });
});

describe("the seal's interceptor", () => {
  it('seals a request etcd3 sends again (a retry) once, from the value it was given', () => {
    const seal = new RecordSeal(sealKey('retries must not seal twice, 40 characters.'), '/r/');
    const sent: Array<{ key: Buffer; value: Buffer }> = [];
    const bottom = {
      start: () => undefined,
      sendMessageWithContext: (_c: unknown, m: { key: Buffer; value: Buffer }) => sent.push(m),
      sendMessage: (m: { key: Buffer; value: Buffer }) => sent.push(m),
      startRead: () => undefined,
      halfClose: () => undefined,
      cancelWithStatus: () => undefined,
      getPeer: () => '',
    };
    const request = { key: Buffer.from('/r/owner'), value: Buffer.from('h1') };
    for (let attempt = 0; attempt < 2; attempt++) {
      const call = seal.interceptor()({ method_definition: { path: '/etcdserverpb.KV/Put' } } as never, () => bottom as never);
      call.start(new grpc.Metadata(), {});
      call.sendMessage(request);
    }
    expect(request.value.toString()).toBe('h1');
    expect(sent.map((m) => m.value.toString().replace(/^fs1\.[A-Za-z0-9_-]{43}\./, ''))).toEqual(['h1', 'h1']);
  });
});
