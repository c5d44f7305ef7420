import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { chooseNode, headroom } from '../../src/placement/choose.js';
import type { NodeView } from '../../src/resources/node.js';

const GiB = 1024 ** 3;
const node = (id: string, x: Partial<NodeView> = {}, mem = 8 * GiB, freePorts = 20_000): NodeView => ({
  id, state: 'active', alive: true, self: false, address: null, apiUrl: null, gatewayUrl: null, startedAt: null, lastSeenSecondsAgo: 1, sameKeys: true, leftAt: null, coordinator: false,
  capacity: { agents: 0, cpuCores: 2, loadAverage: 0, memTotalBytes: 16 * GiB, memAvailableBytes: mem, diskFreeBytes: 100 * GiB, freePorts }, ...x,
});
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as AppError).error;
  }
  return null;
};

describe('placement', () => {
  it('counts headroom by the scarcer of memory (52 MiB an agent) and ports (two an agent)', () => {
    expect(headroom(node('a', {}, 520 * 1024 ** 2))).toBe(10);
    expect(headroom(node('a', {}, 8 * GiB, 7))).toBe(3);
    expect(headroom(node('a', { capacity: null }))).toBe(0);
  });

  it('spreads tables: the host owning the fewest first, then the most headroom, then the id', () => {
    const nodes = [node('h1'), node('h2', {}, 16 * GiB), node('h3')];
    expect(chooseNode(nodes)).toBe('h2');
    expect(chooseNode(nodes, undefined, new Map([['h2', 1]]))).toBe('h1');
    expect(chooseNode(nodes, undefined, new Map([['h1', 1], ['h2', 1]]))).toBe('h3');
  });

  it('never places on a host that is gone, draining or full, and says why when none is left', () => {
    const nodes = [node('h1', { alive: false }), node('h2', { state: 'draining' }), node('h3', {}, 8 * GiB, 1), node('h4')];
    expect(chooseNode(nodes)).toBe('h4');
    expect(code(() => chooseNode(nodes.slice(0, 3)))).toBe('NODE_UNAVAILABLE');
  });

  it('takes a named host only if it is there, alive and active', () => {
    const nodes = [node('h1'), node('h2', { alive: false }), node('h3', { state: 'decommissioned' })];
    expect(chooseNode(nodes, 'h1')).toBe('h1');
    expect(code(() => chooseNode(nodes, 'h9'))).toBe('NODE_NOT_FOUND');
    expect(code(() => chooseNode(nodes, 'h2'))).toBe('NODE_UNAVAILABLE');
    expect(code(() => chooseNode(nodes, 'h3'))).toBe('NODE_UNAVAILABLE');
  });
});
