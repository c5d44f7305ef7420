import { describe, expect, it } from 'vitest';
import { parseEvent } from '../../src/redis/supervisor-events.js';

// A stream entry as src/cli/event-listener.ts writes it: event, at, then supervisord's payload.
const entry = (o: Record<string, string>) => Object.entries(o).flat();

describe('the supervisor event stream', () => {
  it("reads an agent's state change once, typed", () => {
    const e = parseEvent(entry({ event: 'PROCESS_STATE_EXITED', at: '1800000000000', processname: 'flume-shop-orders', groupname: 'flume-shop-orders', from_state: 'RUNNING', expected: '0', pid: '4242' }));
    expect(e).toEqual({ db: 'shop', table: 'orders', program: 'flume-shop-orders', state: 'EXITED', from: 'RUNNING', pid: 4242, expected: false, at: 1_800_000_000_000 });
    expect(parseEvent(entry({ event: 'PROCESS_STATE_RUNNING', processname: 'flume-shop-orders', from_state: 'STARTING', pid: '1' }))).toMatchObject({ expected: null, state: 'RUNNING' });
  });

  it('passes over what is not an agent or not a state change', () => {
    expect(parseEvent(entry({ event: 'PROCESS_STATE_EXITED', processname: 'api' }))).toBeNull();
    expect(parseEvent(entry({ event: 'PROCESS_LOG_STDOUT', processname: 'flume-shop-orders' }))).toBeNull();
    expect(parseEvent(entry({ event: 'PROCESS_STATE_FATAL', processname: 'flume-Shop-orders' }))).toBeNull();
    expect(parseEvent([])).toBeNull();
  });
});
