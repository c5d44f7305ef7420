import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../src/config-kinds.js';
import { LOG4J_CONFIG } from '../../../src/agents/launch.js';
import { agentPaths } from '../../../src/store/paths.js';
import { REDIS_URL, startHarness, tempDir, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { seedInstallAt, seedRedisCommands } from '../../helpers/seed-install.js';
import { freePort, repeatWhile, until } from '../../helpers/wait.js';

// An installation of the original design, running (its own supervisord, one Flume JVM per
// table, ports in Redis) with events flowing, taken over by flumectl adopt --apply.
let h: Harness;
let url: string;
let root: string;
let seedRedis: Redis;
const SEED_DB = `${REDIS_URL}/12`;
const TABLES = [
  { service: 'shop_orders', db: 'shop', table: 'orders', port: 0 },
  { service: 'shop_order_items', db: 'shop', table: 'order_items', port: 0 },
];
// logs_web's port is one this host already gave another agent of ours: it cannot be taken over.
const WEB = { service: 'logs_web', db: 'logs', table: 'web', port: 0 };
const oldCtl = (...args: string[]) => spawnSync('supervisorctl', ['-c', join(root, 'supervisor.conf'), ...args], { encoding: 'utf8' });

beforeAll(async () => {
  // The original design's senders post to the agents' ports: while they do, ours take keyless intake.
  h = await startHarness({ PORT_RANGE: await portRange(), AGENT_INTAKE_KEY: 'false' });
  url = await h.app.listen({ port: 0, host: '127.0.0.1' });
  root = seedInstallAt(join(tempDir('seed'), 'service'));
  // The seed ran `flume-ng agent`; here the JVM is started as flume-ng would, with Flume's own
  // Application, and its HDFS sink is a file_roll one (what reached the sink is then countable).
  for (const t of [...TABLES, WEB]) {
    t.port = await freePort();
    const conf = join(root, 'services', t.service, 'flume.conf');
    const text = readFileSync(conf, 'utf8')
      .replace(/a1\.sources\.r1\.port = \d+/, `a1.sources.r1.port = ${t.port}`)
      // shop_orders' old sink cannot write (its directory is under a file): what it acknowledges
      // stays in its channel, and reaches a sink only if the channel is handed over whole.
      .replace('a1.sinks.k1.type = hdfs', `a1.sinks.k1.type = file_roll\na1.sinks.k1.sink.directory = ${t.service === 'shop_orders' ? join(root, 'supervisor.conf', 'out') : join(root, 'out', t.service)}`)
      .replace('a1.channels.c1.capacity = 10000000', 'a1.channels.c1.capacity = 100000')
      .replace('a1.channels.c1.transactionCapacity = 100000', 'a1.channels.c1.transactionCapacity = 1000');
    writeFileSync(conf, text);
    spawnSync('mkdir', ['-p', join(root, 'out', t.service)]);
    const program = join(root, 'conf.d', `${t.service}.conf`);
    const java = `${h.config.JAVA_BIN} -Xmx128m -Dlog4j.configurationFile=${LOG4J_CONFIG} -cp ${join(PROJECT_ROOT, 'flume', 'lib')}/* org.apache.flume.node.Application --name a1 --conf-file ${conf} --no-reload-conf`;
    writeFileSync(program, readFileSync(program, 'utf8').replace(/^command = .*$/m, `command = ${java}\nstopwaitsecs = 30`));
  }
  seedRedis = new Redis(SEED_DB);
  for (const [cmd, ...args] of seedRedisCommands()) await seedRedis.call(cmd!, ...args);
  for (const t of [...TABLES, WEB]) await seedRedis.set(t.service, String(t.port));
  expect(spawnSync('supervisord', ['-c', join(root, 'supervisor.conf')]).status).toBe(0);
  for (const t of [...TABLES, WEB]) await until(() => fetch(`http://127.0.0.1:${t.port}/`, { method: 'POST', body: '[]' }).then((r) => r.status, () => 0), (s) => s === 200, 60_000, 250);
}, 180_000);
afterAll(async () => {
  oldCtl('shutdown');
  await seedRedis?.del('shop_orders', 'shop_order_items', 'logs_web', 'FLUME_PORTS', 'billing');
  seedRedis?.disconnect();
  await h?.close();
  if (root) rmSync(join(root, '..'), { recursive: true, force: true });
}, 120_000);

function flumectl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, 'dist', 'cli', 'flumectl.js'), ...args], {
      env: { PATH: process.env.PATH ?? '', FLUME_API_URL: url, FLUME_TOKEN: h.tokenFor('admin') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Every line the sink wrote, old and ours: each event's body is one line. */
const delivered = (): Set<string> => {
  const lines = new Set<string>();
  const dirs = [...TABLES.map((t) => join(root, 'out', t.service)), ...TABLES.map((t) => join(h.config.varDir, `flume-${t.db}-${t.table}`, 'out'))];
  for (const d of dirs.filter(existsSync)) for (const f of readdirSync(d)) for (const l of readFileSync(join(d, f), 'utf8').split('\n')) if (l) lines.add(l);
  return lines;
};
/**
 * The Flume JVMs running for a table (the old one's command names its flume.conf, ours its
 * program), as `pid ppid elapsed args` lines: by their whole paths, since other test files
 * running meanwhile have tables of the same names. A JVM's own child between its fork and its
 * exec shows the JVM's command line for a moment: one whose parent is listed is not a second JVM.
 */
const jvmLines = (t: (typeof TABLES)[number]): string[] => {
  const confs = [join(root, 'services', t.service, 'flume.conf'), agentPaths(h.config, `flume-${t.db}-${t.table}`).flumeConf];
  const lines = spawnSync('ps', ['-eo', 'pid=,ppid=,etimes=,args=', '-ww'], { encoding: 'utf8' }).stdout.split('\n')
    .filter((l) => /java/.test(l) && confs.some((c) => l.includes(c)));
  const pids = new Set(lines.map((l) => l.trim().split(/\s+/)[0]));
  return lines.filter((l) => !pids.has(l.trim().split(/\s+/)[1]));
};
const jvms = (t: (typeof TABLES)[number]): number => jvmLines(t).length;

describe('adopting an installation of the original design', () => {
  it('puts a table it cannot take over back as it was: the old program runs again on its port, nothing of ours is left', async () => {
    await h.redis.hset(h.keys.ports(), String(WEB.port), 'flume-logs-other');
    const web = await flumectl(['adopt', '--from', root, '--seed-redis', SEED_DB, '--apply', '--tables', 'logs.web']);
    await h.redis.hdel(h.keys.ports(), String(WEB.port));
    expect(web.code, web.stdout + web.stderr).toBe(4);
    expect(web.stdout).toContain(`logs.web: not taken over: 400 INVALID_REQUEST: port ${WEB.port} is held by flume-logs-other here`);
    expect(web.stdout).toContain('the old program runs again');
    expect(web.stdout).toContain('0 of 1 table(s) taken over; halted');
    await until(() => fetch(`http://127.0.0.1:${WEB.port}/`, { method: 'POST', body: '[]' }).then((r) => r.status, () => 0), (st) => st === 200, 60_000, 250);
    expect(existsSync(join(root, 'conf.d', 'logs_web.conf'))).toBe(true);
    expect((await h.api('GET', '/v1/api/logs/web/status')).statusCode).toBe(404);
    expect(existsSync(join(h.config.servicesDir, 'flume-logs-web'))).toBe(false);
    expect(existsSync(join(root, 'var', 'logs_web', 'file-channel', 'checkpoint'))).toBe(true);
    expect(oldCtl('status', 'logs_web').stdout).toMatch(/logs_web\s+RUNNING/);
  });

  it('takes every table over with its port and its channel while senders send: every acknowledged event reaches the sink, one JVM per table at every moment', async () => {
    const acked: string[] = [];
    let sending = true;
    let n = 0;
    let most = 0;
    const senders = TABLES.map((t) =>
      repeatWhile(() => sending, 20, async () => {
        const batch = Array.from({ length: 20 }, () => `${t.service}-${n++}`);
        const status = await fetch(`http://127.0.0.1:${t.port}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch.map((body) => ({ headers: {}, body }))) }).then((r) => r.status, () => 0);
        if (status === 200) acked.push(...batch);
      }),
    );
    let seen: string[] = [];
    const watcher = repeatWhile(() => sending, 50, async () => {
      for (const t of TABLES) {
        const now = jvmLines(t);
        if (now.length > most) [most, seen] = [now.length, now];
      }
    });
    await until(() => acked.length, (a) => a >= 400, 30_000);

    const plan = await flumectl(['adopt', '--from', root, '--seed-redis', SEED_DB]);
    expect(plan, plan.stderr).toMatchObject({ code: 0 });
    const applied = await flumectl(['adopt', '--from', root, '--seed-redis', SEED_DB, '--apply', '--tables', 'shop.orders,shop.order_items']);
    expect(applied, applied.stderr).toMatchObject({ code: 0 });
    expect(applied.stdout).toContain('2 of 2 table(s) taken over');
    const handed = Number(/shop\.orders: taken over on port \d+ as flume-shop-orders, (\d+) event\(s\) handed over/.exec(applied.stdout)?.[1]);
    expect(handed, applied.stdout).toBeGreaterThan(0);
    const before = acked.length;
    await until(() => acked.length, (a) => a >= before + 400, 30_000);
    sending = false;
    await Promise.all([...senders, watcher]);

    // Every acknowledged event, whichever JVM took it, is at a sink.
    const lost = await until(() => acked.filter((id) => !delivered().has(id)), (l) => l.length === 0, 60_000, 500).catch(() => acked.filter((id) => !delivered().has(id)));
    expect(lost.slice(0, 5), `${lost.length} of ${acked.length} acknowledged events not delivered`).toEqual([]);
    expect(most, seen.map((l) => l.slice(0, 300)).join('\n')).toBe(1);

    for (const t of TABLES) {
      // Ports kept: ours listens where the old one did (the old gateway's Redis map still holds).
      expect(h.meta(t.db, t.table).port).toBe(t.port);
      await h.waitFor(t.db, t.table, (s) => s.state === 'RUNNING');
      // Nothing orphaned: the old program is gone from the old supervisord, its channel moved.
      expect(existsSync(join(root, 'conf.d', `${t.service}.conf.adopted`))).toBe(true);
      expect(existsSync(join(root, 'var', t.service, 'file-channel', 'checkpoint'))).toBe(false);
      expect(jvms(t)).toBe(1);
    }
    // The old supervisord runs only what was not taken over.
    expect(oldCtl('status').stdout.trim().split('\n').map((l) => l.split(/\s+/)[0])).toEqual(['logs_web']);
    const again = await flumectl(['adopt', '--from', root, '--seed-redis', SEED_DB]);
    expect(again.stdout).not.toMatch(/shop\.\S+.*take over/);
    console.log(`adopt: ${acked.length} events acknowledged while 2 tables were taken over, ${handed} of them handed over in shop.orders' channel, ${lost.length} lost; at most ${most} JVM per table`);
  });
});
