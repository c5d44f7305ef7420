/**
 * Every etcd key the cluster uses, under ETCD_PREFIX (`<e>` below). docs/cluster.md documents them.
 *
 *   <e>nodes/<id>/presence   JSON Presence, bound to the host's lease: present while it lives
 *   <e>nodes/<id>/state      active | draining | decommissioned, no lease: the operator's word
 */
export interface ClusterKeys {
  nodes(): string;
  presence(id: string): string;
  nodeState(id: string): string;
  /** The node id and kind of a key under nodes(), or null. */
  parseNodeKey(key: string): { id: string; kind: 'presence' | 'state' } | null;
}

export function makeClusterKeys(prefix: string): ClusterKeys {
  const nodes = `${prefix}nodes/`;
  return {
    nodes: () => nodes,
    presence: (id) => `${nodes}${id}/presence`,
    nodeState: (id) => `${nodes}${id}/state`,
    parseNodeKey: (key) => {
      const m = key.startsWith(nodes) ? /^([^/]+)\/(presence|state)$/.exec(key.slice(nodes.length)) : null;
      return m ? { id: m[1]!, kind: m[2] as 'presence' | 'state' } : null;
    },
  };
}
