import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROUTE_VALUE, RouteTable } from '../../src/agents/route-table.js';
import { gatewayRoutesLua } from '../../src/gateway/render.js';

// Lua patterns as the gateway uses them, read as JS regexps (only %d and literal text occur).
const asRegExp = (luaPattern: string) => new RegExp(luaPattern.replace(/%d/g, '\\d'));

describe('the route value shared with the gateway', () => {
  const meta = { port: 20123, metricsPort: 20124, paused: null, spec: { channel: { transactionCapacity: 4000 } } } as unknown as Parameters<typeof RouteTable.valueOf>[0];

  it('is read back by the patterns the Lua gets', () => {
    const value = RouteTable.valueOf(meta, null);
    const m = asRegExp(ROUTE_VALUE.address).exec(value);
    expect(m?.slice(1, 3)).toEqual(['127.0.0.1', '20123']);
    expect(asRegExp(ROUTE_VALUE.capacity).exec(m![3]!)?.[1]).toBe('4000');
    expect(RouteTable.valueOf({ ...meta, paused: { by: 'ops', since: 'now' } } as typeof meta, null)).toBe(ROUTE_VALUE.paused);
    const key = 'a'.repeat(43);
    const keyed = RouteTable.valueOf(meta, key);
    expect(RouteTable.addressOf(keyed)).toEqual({ host: '127.0.0.1', port: 20123, intakeKey: key });
    expect(RouteTable.addressOf(value)).toEqual({ host: '127.0.0.1', port: 20123, intakeKey: null });
  });

  it('is generated for the Lua, which types no pattern of its own', () => {
    const lua = gatewayRoutesLua();
    // (A newline is written as Lua's escape.)
    for (const [k, v] of Object.entries(ROUTE_VALUE)) expect(lua).toContain(`${k} = "${v.replaceAll('\n', '\\n')}"`);
    const gateway = readFileSync(new URL('../../templates/gateway/lua/flume_gateway/route.lua', import.meta.url), 'utf8')
      .split('\n')
      .filter((l) => !l.trim().startsWith('--'))
      .join('\n');
    expect(gateway).not.toMatch(/tx=\(%d\+\)|== "(paused|fenced|nodedown)"/);
    expect(gateway).toContain('ROUTE.address');
    expect(gateway).toContain('ROUTE.schemaAfter');
  });
});
