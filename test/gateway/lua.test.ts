import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ROUTE_VALUE, RouteTable, maxEventBytes } from '../../src/agents/route-table.js';
import { PROJECT_ROOT } from '../../src/config-kinds.js';
import { gatewayErrorsLua, gatewayRoutesLua } from '../../src/gateway/render.js';

// The gateway's pure Lua (templates/gateway/lua/flume_gateway/: events, token, route, cache
// entries, exposition), run by busted (Debian's lua-busted) on the specs in test/gateway/lua/,
// with the generated modules the gateway gets at set-up and route values the API really writes.
const dir = mkdtempSync(join(tmpdir(), 'flume-lua-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const meta = (sink: string, transactionCapacity: number, ack?: 'sink') =>
  ({ port: 20123, metricsPort: 20124, paused: null, spec: { sink, channel: { transactionCapacity }, ...(ack ? { ack } : {}) } }) as unknown as Parameters<typeof RouteTable.valueOf>[0];
const lua = (s: string) => JSON.stringify(s);
const INTAKE_KEY = 'Zr0_7-QmC1xw9v2KpA4sD6fG8hJ0kL3nB5mV7cX9zQw'; // 32 random bytes, base64url // a JSON string is a Lua string for these values

describe('the gateway Lua, unit by unit', () => {
  it('passes its busted specs', async () => {
    const found = await execa('busted', ['--version'], { reject: false });
    if (found.failed) throw new Error('busted is missing: run NEED_LUA_TESTS=1 bash scripts/setup.sh (installs Debian\'s lua-busted)');
    writeFileSync(join(dir, 'flume_routes.lua'), gatewayRoutesLua());
    writeFileSync(join(dir, 'flume_errors.lua'), gatewayErrorsLua());
    const values = {
      file: RouteTable.valueOf(meta('file_roll', 4000), null),
      kafka: RouteTable.valueOf(meta('kafka', 1000), null),
      kafkaSink: RouteTable.valueOf(meta('kafka', 1000, 'sink'), null),
      fileSink: RouteTable.valueOf(meta('file_roll', 4000, 'sink'), null),
      fileKeyed: RouteTable.valueOf(meta('file_roll', 4000, 'sink'), INTAKE_KEY),
      fileBadKey: RouteTable.valueOf(meta('file_roll', 4000), 'short key\nx'),
      intakeKey: INTAKE_KEY,
      via: RouteTable.viaValue({ host: '10.9.0.2', port: 8081 }),
      paused: ROUTE_VALUE.paused,
      fenced: ROUTE_VALUE.fenced,
      nodeDown: ROUTE_VALUE.nodeDown,
    };
    const rows = Object.entries(values).map(([k, v]) => `  ${k} = ${lua(v)},`);
    rows.push(`  kafkaMaxEvent = ${maxEventBytes({ sink: 'kafka' })},`);
    writeFileSync(join(dir, 'route_values.lua'), ['return {', ...rows, '}', ''].join('\n'));

    const lpath = [join(dir, '?.lua'), join(PROJECT_ROOT, 'templates', 'gateway', 'lua', '?.lua')].join(';');
    const run = await execa('busted', ['--lpath', lpath, '--output', 'TAP', '--pattern', '_spec', join(PROJECT_ROOT, 'test', 'gateway', 'lua')], {
      reject: false,
      cwd: dir,
    });
    const failed = run.stdout.split('\n').filter((l) => l.startsWith('not ok'));
    expect(failed, run.stdout + run.stderr).toEqual([]);
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    const passed = run.stdout.split('\n').filter((l) => l.startsWith('ok ')).length;
    expect(passed).toBeGreaterThan(30);
  });
});
