import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { flumeProperties, readSeedInstall, tableOf } from '../../src/adopt/seed-install.js';
import { seedSpec } from '../../src/adopt/seed-spec.js';
import { seedInstallAt, seedRedisCommands } from '../helpers/seed-install.js';

const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), 'seed-'));
  dirs.push(d);
  return seedInstallAt(d);
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** The fixture's Redis as the seed left it: its SET keys. */
const keys = new Map(seedRedisCommands().filter(([c]) => c === 'SET').map(([, k, v]) => [k!, v!]));
const redis = { get: async (k: string) => keys.get(k) ?? null };
const limits = { defaultHeap: '256m', maxHeap: '1g' };

describe('a seed-style installation, read', () => {
  it('finds each table with its port, channel and db/table (the HDFS path splits an ambiguous name)', async () => {
    const root = fresh();
    const install = await readSeedInstall(root, redis);
    expect(install.problems).toEqual([]);
    expect(install.tables.map((t) => [t.service, `${t.db}.${t.table}`, t.program, t.port, t.portInRedis])).toEqual([
      ['logs_web', 'logs.web', 'flume-logs-web', 10003, 10002],
      ['shop_order_items', 'shop.order_items', 'flume-shop-order_items', 10001, 10001],
      ['shop_orders', 'shop.orders', 'flume-shop-orders', 10000, 10000],
    ]);
    const orders = install.tables[2]!;
    expect(orders.checkpointDir).toBe(join(root, 'var/shop_orders/file-channel/checkpoint'));
    expect(orders.dataDirs).toEqual([join(root, 'var/shop_orders/file-channel/data')]);
    expect(orders.eventsAtCheckpoint).toBeNull(); // never checkpointed here: not known to be empty
    expect(install.tables[0]!.notes.join()).toContain('its config listens on 10003');
    expect(orders.notes).toEqual([]);
  });

  it('maps each to our spec, saying what is not carried over and what it needs', async () => {
    const [web] = (await readSeedInstall(fresh(), redis)).tables;
    const without = seedSpec(web!, { limits });
    expect(without.spec).toBeNull();
    expect(without.problems.join()).toContain('--name-node');
    const s = seedSpec(web!, { limits, nameNode: 'hdfs://namenode:8020' });
    expect(s.problems).toEqual([]);
    expect(s.spec).toEqual({
      sink: 'hdfs',
      options: { nameNode: 'hdfs://namenode:8020', path: '/ingestion/logs/web/%Y-%m-%d/%H', filePrefix: 'ing', fileSuffix: '.json', rollInterval: 60, rollCount: 8192, rollSize: 1024000 },
      channel: { capacity: 10000000, transactionCapacity: 100000 },
    });
    expect(s.notes.join('\n')).toMatch(/hdfs.round\* not carried over[\s\S]*idleTimeout 60/);
  });

  it('names what it cannot take over, and never follows a path out of the installation', async () => {
    const root = fresh();
    writeFileSync(join(root, 'conf.d', 'x_y.conf'), '[program:x_y]\ncommand = flume-ng agent --conf-file /etc/passwd --name a1\n');
    writeFileSync(join(root, 'conf.d', 'a_b_c.conf'), '[program:a_b_c]\ncommand = flume-ng agent --conf-file ' + join(root, 'services/shop_orders/flume.conf').replace('shop_orders', 'a_b_c') + '\n');
    writeFileSync(join(root, 'conf.d', 'evil.conf'), '[program:../../etc]\ncommand = x\n[program:Shop-Orders]\ncommand = x\n');
    const install = await readSeedInstall(root, redis);
    expect(install.tables).toHaveLength(3);
    expect(install.problems.join('\n')).toContain('/etc/passwd is outside');
    expect(install.problems.join('\n')).toContain('a_b_c.conf: its Flume config');
    expect(install.problems.filter((p) => p.includes('is not a table')).length).toBe(2);
    expect(tableOf('a_b_c', {})).toBe('a_b_c could be a.b_c or a_b.c: its config does not say which');
    expect(flumeProperties('a1.sources.r1.port = 1\n#a1.x = 2\nb1.y = 3\n')).toEqual({ 'sources.r1.port': '1' });
    const [web] = install.tables;
    const kafka = seedSpec({ ...web!, properties: { ...web!.properties, 'sinks.k1.type': 'org.example.Custom' } }, { limits });
    expect(kafka).toMatchObject({ spec: null, problems: ['sink org.example.Custom: not one adopt takes over (hdfs, logger, file_roll)'] });
    const tooBig = seedSpec({ ...web!, properties: { ...web!.properties, 'channels.c1.transactionCapacity': '99999999999' } }, { limits, nameNode: 'hdfs://nn:8020' });
    expect(tooBig.spec).toBeNull();
    expect(tooBig.problems.join()).toContain('channel.transactionCapacity');
  });
});
