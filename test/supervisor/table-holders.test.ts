import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tableHolders } from '../../src/supervisor/strays.js';
import { until } from '../helpers/wait.js';

// A "JVM" is any process named java: a copy of tail, following the table's flume.conf as an
// agent would run it, is one.
const dir = mkdtempSync(join(tmpdir(), 'flume-holders-'));
const servicesDir = join(dir, 'services');
const conf = (program: string) => join(servicesDir, program, 'flume.conf');
for (const p of ['flume-shop-orders', 'flume-shop-refunds']) {
  mkdirSync(join(servicesDir, p), { recursive: true });
  writeFileSync(conf(p), '# agent\n');
}
const java = join(dir, 'java');
copyFileSync('/usr/bin/tail', java);
const started = [spawn(java, ['-f', conf('flume-shop-orders')]), spawn(java, ['-f', conf('flume-shop-orders')]), spawn('tail', ['-f', conf('flume-shop-orders')])];
afterAll(() => {
  for (const c of started) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('tableHolders', () => {
  it("finds every JVM running a table's config but the one named, and nothing else", async () => {
    const [a, b] = started as [(typeof started)[0], (typeof started)[0]];
    const both = [a.pid!, b.pid!].sort((x, y) => x - y);
    await until(() => tableHolders({ servicesDir }, 'flume-shop-orders', null).length, (n) => n === 2, 5_000);
    expect(tableHolders({ servicesDir }, 'flume-shop-orders', null).sort((x, y) => x - y)).toEqual(both);
    expect(tableHolders({ servicesDir }, 'flume-shop-orders', a.pid!)).toEqual([b.pid]);
    expect(tableHolders({ servicesDir }, 'flume-shop-refunds', null)).toEqual([]);
  });
});
