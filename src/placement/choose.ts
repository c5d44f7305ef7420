import { nodeNotFound, nodeUnavailable } from '../errors.js';
import type { NodeView } from '../resources/node.js';

/** What one idle agent costs a host, measured (bench/hundred.ts): ~52 MiB PSS, two ports. */
export const AGENT_COST = { memBytes: 52 * 1024 * 1024, ports: 2 };

/** How many more agents a host can take: the least of what its memory and its ports allow. */
export function headroom(n: NodeView): number {
  const c = n.capacity;
  if (!c) return 0;
  return Math.min(Math.floor(c.memAvailableBytes / AGENT_COST.memBytes), Math.floor(c.freePorts / AGENT_COST.ports));
}

/**
 * The host a new table goes to: `wanted` when named (it must be alive and active), else among
 * the alive, active hosts with room, the one that owns the fewest tables (etcd's count, current
 * at once, unlike the measured capacity), then the one with the most headroom, then by id.
 */
export function chooseNode(nodes: NodeView[], wanted?: string, owned: ReadonlyMap<string, number> = new Map()): string {
  if (wanted) {
    const n = nodes.find((x) => x.id === wanted);
    if (!n) throw nodeNotFound(wanted);
    if (!n.alive) throw nodeUnavailable(`host ${wanted} is not alive (its presence lapsed ${n.lastSeenSecondsAgo ?? '?'} s ago): pick another or leave ?node= out`);
    if (n.state !== 'active') throw nodeUnavailable(`host ${wanted} is ${n.state}: it takes no new tables`);
    return n.id;
  }
  const candidates = nodes.filter((n) => n.alive && n.state === 'active' && headroom(n) > 0);
  if (!candidates.length) throw nodeUnavailable('no alive, active host has room for another agent');
  const count = (n: NodeView) => owned.get(n.id) ?? 0;
  candidates.sort((a, b) => count(a) - count(b) || headroom(b) - headroom(a) || a.id.localeCompare(b.id));
  return candidates[0]!.id;
}
