import { describe, expect, it } from 'vitest';
import { RouteTable } from '../../src/agents/route-table.js';
import { routedTo } from '../../src/agents/stand-in.js';

describe('route values and stand-ins', () => {
  it('tells where a route sends events, whatever its transaction capacity', () => {
    expect(routedTo('127.0.0.1:14000 tx=100', 14000)).toBe(true);
    expect(routedTo('127.0.0.1:14000', 14000)).toBe(true);
    expect(routedTo('127.0.0.1:140001 tx=100', 14000)).toBe(false);
    for (const v of ['paused', 'fenced', 'nodedown', 'via 10.0.0.2:8080', null, undefined]) expect(routedTo(v, 14000)).toBe(false);
    expect(RouteTable.addressOf('127.0.0.1:14000 tx=100')).toEqual({ host: '127.0.0.1', port: 14000, intakeKey: null });
    expect(RouteTable.addressOf('127.0.0.1:14000 tx=100 max=1047552')).toEqual({ host: '127.0.0.1', port: 14000, intakeKey: null });
    const key = 'x'.repeat(43);
    expect(RouteTable.addressOf(`127.0.0.1:14000 tx=100 ack=sink k=${key} m=14001`)).toEqual({ host: '127.0.0.1', port: 14000, intakeKey: key });
    expect(routedTo(`127.0.0.1:14000 tx=100 k=${key} m=14001`, 14000)).toBe(true);
    expect(routedTo('127.0.0.1:14000 tx=100 max=1047552', 14000)).toBe(true);
    expect(RouteTable.addressOf('via 10.0.0.2:8080')).toBeNull();
    expect(RouteTable.addressOf('paused')).toBeNull();
  });
});
