import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { REDIS_URL, startHarness, type Harness } from '../helpers/harness.js';
import { seedInstallAt, seedRedisCommands } from '../helpers/seed-install.js';
import { portRange } from '../helpers/ports.js';
import { freePort } from '../helpers/wait.js';

// flumectl drives the README walk-through against a real stack, as an operator types it.
let h: Harness;
let url: string;
let operator: string;

beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
  url = await h.app.listen({ port: 0, host: '127.0.0.1' });
  operator = h.tokenFor('admin');
});
afterAll(async () => {
  await h?.close();
});

function flumectl(args: string[], env: Record<string, string> = {}, input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'cli', 'flumectl.ts'), ...args], {
      env: { PATH: process.env.PATH ?? '', FLUME_API_URL: url, FLUME_TOKEN: operator, ...env },
      cwd: PROJECT_ROOT,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('flumectl', () => {
  it('creates from a file, shows status, stops and starts, and mints a sender token', async () => {
    const spec = join(h.config.varDir, 'orders.json');
    writeFileSync(spec, JSON.stringify({ sink: 'logger' }));
    const created = await flumectl(['create', 'shop.orders', '-f', spec]);
    expect(created, created.stderr).toMatchObject({ code: 0 });
    expect(created.stdout).toContain('flume-shop-orders: created');
    const again = await flumectl(['create', 'shop.orders', '-f', spec]);
    expect(again.stdout).toContain('it was there already');

    const listed = await flumectl(['status']);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')[0]).toMatch(/^TABLE\s+STATE\s+DESIRED\s+HEALTH/);
    expect(listed.stdout).toMatch(/shop\.orders\s+(RUNNING|STARTING)\s+running/);
    const json = JSON.parse((await flumectl(['--json', 'status', 'shop'])).stdout) as { agents: Array<{ table: string }> };
    expect(json.agents.map((a) => a.table)).toEqual(['orders']);

    expect((await flumectl(['stop', 'shop.orders'])).stdout).toContain('flume-shop-orders: STOPPED');
    expect((await flumectl(['start', 'shop.orders'])).code).toBe(0);
    expect((await flumectl(['pause', 'shop.orders'])).stdout).toContain('paused');
    expect((await flumectl(['resume', 'shop.orders'])).stdout).toContain('intake open');

    const token = await flumectl(['token', 'billing', '--scope', 'shop']);
    expect(token.code, token.stderr).toBe(0);
    expect(token.stdout.trim()).toMatch(/^\S{32,}$/);
  });

  it('reads, diffs and applies a config, and applies only onto what it read', async () => {
    const spec = join(h.config.varDir, 'orders-2.json');
    writeFileSync(spec, JSON.stringify({ sink: 'logger', options: { maxBytesToLog: 32 } }));
    expect((await flumectl(['config', 'get', 'shop.orders'])).stdout).toMatch(/^flume-shop-orders revision 1/);
    const diff = await flumectl(['config', 'diff', 'shop.orders', '-f', spec]);
    expect(diff.stdout).toContain('maxBytesToLog = 32');
    const applied = await flumectl(['config', 'apply', 'shop.orders', '-f', spec]);
    expect(applied, applied.stderr).toMatchObject({ code: 0 });
    expect(applied.stdout).toContain('revision 2 applied');
    expect((await flumectl(['config', 'diff', 'shop.orders', '-f', spec])).stdout.trim()).toBe('no change');
  });

  it('runs a bulk operation with its progress, and reads logs and incidents', async () => {
    const bulk = await flumectl(['bulk', 'restart', '--tables', 'shop.orders,shop.nothing']);
    // One table restarted, one without an agent: done with failures (exit 4), each named.
    expect(bulk.code, bulk.stderr).toBe(4);
    expect(bulk.stdout).toMatch(/restart of 2 agent\(s\): 1 applied, 0 skipped, 1 failed/);
    expect(bulk.stdout).toContain('shop.nothing: AGENT_NOT_FOUND');
    const logs = await flumectl(['logs', 'shop.orders', '-n', '5']);
    expect(logs.code).toBe(0);
    expect(logs.stdout.trim().length).toBeGreaterThan(0);
    const incidents = await flumectl(['incidents']);
    expect(incidents.code).toBe(0);
  });

  it('exports the fleet as YAML, shows the plan of an edited copy, applies it, and applies it again to no effect', async () => {
    const exported = await flumectl(['fleet', 'export', '--db', 'shop']);
    expect(exported, exported.stderr).toMatchObject({ code: 0 });
    const doc = parse(exported.stdout) as { tables: Record<string, { options?: Record<string, unknown> }> };
    expect(Object.keys(doc.tables)).toEqual(['shop.orders']);
    doc.tables['shop.orders']!.options = { ...doc.tables['shop.orders']!.options, maxBytesToLog: 64 };
    const file = join(h.config.varDir, 'fleet.yaml');
    writeFileSync(file, stringify(doc));

    const plan = await flumectl(['apply', '-f', file, '--db', 'shop', '--dry-run']);
    expect(plan, plan.stderr).toMatchObject({ code: 0 });
    expect(plan.stdout).toContain('0 to create, 1 to change, 0 to delete, 0 absent (kept), 0 unchanged');
    expect(plan.stdout).toContain('maxBytesToLog = 64');
    const applied = await flumectl(['apply', '-f', file, '--db', 'shop']);
    expect(applied, applied.stderr).toMatchObject({ code: 0 });
    expect(applied.stdout).toMatch(/apply of 1 agent\(s\): 1 applied, 0 skipped, 0 failed/);
    const again = await flumectl(['apply', '-f', file, '--db', 'shop']);
    expect(again.stdout).toMatch(/apply of 1 agent\(s\): 0 applied, 1 skipped, 0 failed/);

    writeFileSync(file, 'tables: [unclosed');
    const bad = await flumectl(['apply', '-f', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not YAML or JSON');
    writeFileSync(file, stringify({ tables: { 'shop.orders': { sink: 'nowhere' } } }));
    const refused = await flumectl(['apply', '-f', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^flumectl: 4\d\d /m);
  });

  it("lists and sets an agent's log levels", async () => {
    const set = await flumectl(['loggers', 'shop.orders', 'org.apache.flume.sink', 'debug']);
    expect(set, set.stderr).toMatchObject({ code: 0 });
    expect(set.stdout).toContain('org.apache.flume.sink = DEBUG on flume-shop-orders until it restarts');
    const listed = await flumectl(['loggers', 'shop.orders']);
    expect(listed.stdout).toMatch(/^LOGGER\s+LEVEL\s+SAVED/);
    expect(listed.stdout).toMatch(/org\.apache\.flume\.sink\s+DEBUG/);
    expect((await flumectl(['loggers', 'shop.orders', 'root'])).code).toBe(2);
    const loud = await flumectl(['loggers', 'shop.orders', 'root', 'LOUD']);
    expect(loud.code).toBe(1);
    expect(loud.stderr).toContain('400');
  });

  it("sets, shows and removes a db's quota", async () => {
    const set = await flumectl(['quota', 'shop', 'set', 'eventsPerSecond=5000', 'bytesPerDay=1000000000']);
    expect(set, set.stderr).toMatchObject({ code: 0 });
    expect(set.stdout).toMatch(/^DB\s+EVENTS\/S\s+BYTES\/S\s+EVENTS\/DAY\s+BYTES\/DAY/);
    expect(set.stdout).toMatch(/shop\s+5000\s+-\s+-\s+1000000000/);
    expect((await flumectl(['quota'])).stdout).toMatch(/shop\s+5000/);
    expect((await flumectl(['quota', 'shop', 'set', 'eventsPerMinute=5'])).code).toBe(2);
    expect((await flumectl(['quota', 'shop', 'set', 'eventsPerSecond=0'])).code).toBe(1);
    const removed = await flumectl(['quota', 'shop', 'remove', '--json']);
    expect(JSON.parse(removed.stdout)).toMatchObject({ db: 'shop', quota: null });
  });

  it('plans the take-over of a seed-style installation from its files and its Redis, changing nothing', async () => {
    const root = seedInstallAt(join(h.config.varDir, 'seed-install'));
    const url = `${REDIS_URL}/11`;
    const seed = new Redis(url);
    try {
      for (const [cmd, ...args] of seedRedisCommands()) await seed.call(cmd!, ...args);
      const before = readFileSync(join(root, 'services/shop_orders/flume.conf'), 'utf8');
      const plan = await flumectl(['adopt', '--from', root, '--seed-redis', url, '--name-node', 'hdfs://namenode:8020']);
      expect(plan, plan.stderr).toMatchObject({ code: 0 });
      expect(plan.stdout).toMatch(/^TABLE\s+FROM\s+PORT\s+EVENTS\s+SINK\s+ACTION/m);
      expect(plan.stdout).toMatch(/shop\.order_items\s+shop_order_items\s+10001\s+\?\s+hdfs\s+take over/);
      expect(plan.stdout).toContain('logs.web: Redis maps logs_web to port 10002, its config listens on 10003');
      expect(plan.stdout).toContain('nothing was changed');
      const json = JSON.parse((await flumectl(['--json', 'adopt', '--from', root, '--seed-redis', url, '--name-node', 'hdfs://nn:8020'])).stdout) as { tables: Array<{ program: string; spec: unknown }> };
      expect(json.tables.map((t) => t.program)).toEqual(['flume-logs-web', 'flume-shop-order_items', 'flume-shop-orders']);
      const blocked = await flumectl(['adopt', '--from', root, '--seed-redis', url]);
      expect(blocked.code).toBe(4);
      expect(blocked.stdout).toContain('problem: hdfs: the old agents found their NameNode');
      expect((await flumectl(['adopt', '--from', root, '--seed-redis', `redis://127.0.0.1:${await freePort()}/0`])).code).toBe(3);
      expect((await flumectl(['adopt', '--from', 'relative/dir'])).code).toBe(2);
      // Read only: the old installation's files and keys are as they were.
      expect(readFileSync(join(root, 'services/shop_orders/flume.conf'), 'utf8')).toBe(before);
      expect(await seed.get('shop_orders')).toBe('10000');
    } finally {
      await seed.del('shop_orders', 'shop_order_items', 'logs_web', 'FLUME_PORTS', 'billing');
      seed.disconnect();
    }
  });

  it("counts a topic's duplicate events from Kafka's console consumer, and says when a trace is unknown", async () => {
    const printed = ['username:a,eventId:r1:1\tx', 'username:a,eventId:r1:1\tx', 'eventId:r1:2\ty', 'NO_HEADERS\told', ''].join('\n');
    const d = await flumectl(['duplicates'], { FLUME_API_URL: 'http://127.0.0.1:1' }, printed);
    expect(d, d.stderr).toMatchObject({ code: 0 });
    expect(d.stdout).toContain('4 record(s), 2 event(s) by eventId: 1 duplicate(s), 1 without an eventId');
    expect(d.stdout).toContain('r1:1: 2 copies');
    const unknown = await flumectl(['trace', 'shop.orders', 'never-sent']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no trace of request never-sent');
    expect((await flumectl(['trace', 'shop.orders'])).code).toBe(2);
  });

  it('says what went wrong with an exit code that means it', async () => {
    const missing = await flumectl(['stop', 'shop.nothing']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/404 AGENT_NOT_FOUND: no agent for this table/);
    const viewer = await flumectl(['stop', 'shop.orders'], { FLUME_TOKEN: h.tokenFor('viewer') });
    expect(viewer.code).toBe(1);
    expect(viewer.stderr).toContain('403 FORBIDDEN');
    expect((await flumectl(['stop', 'Shop-Orders'])).code).toBe(2);
    expect((await flumectl(['frobnicate'])).code).toBe(2);
    expect((await flumectl(['status'], { FLUME_TOKEN: '' })).stderr).toContain('no control token');
    const down = await flumectl(['status'], { FLUME_API_URL: `http://127.0.0.1:${await freePort()}` });
    expect(down.code).toBe(3);
    expect(down.stderr).toContain('cannot reach the API');
    const asJson = await flumectl(['--json', 'stop', 'shop.nothing']);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ error: 'AGENT_NOT_FOUND' });
  });
});
