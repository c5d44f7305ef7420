/**
 * Every etcd key the cluster uses, under ETCD_PREFIX (`<e>` below). docs/cluster.md documents them.
 * Each value is stored sealed by the hosts' key (src/cluster/etcd.ts, RecordSeal): what follows
 * is the value inside the seal.
 *
 *   <e>nodes/<id>/presence   JSON Presence, bound to the host's lease: present while it lives
 *   <e>nodes/<id>/state      active | draining | decommissioned, no lease: the operator's word
 *   <e>nodes/<id>/left       when the host last stopped cleanly (deleted when it joins): its absence is expected
 *   <e>tables/<db>/<table>/owner    the host that runs the table (its mod revision: the table's epoch; a move is a new epoch)
 *   <e>tables/<db>/<table>/desired  JSON: the last operation asked of it, with a generation and a request id
 *   <e>tables/<db>/<table>/status   JSON: what its owner did of that generation, and the status it saw
 *   <e>tables/<db>/<table>/spec     JSON: its desired config revision and spec, as its owner's disk has it
 *   <e>tables/<db>/<table>/stranded JSON: by host, the channels a move left on hosts that no longer own the table, until drained
 *   <e>coordinator                  the id of the host doing the cluster's duties, bound to its lease
 *   <e>incidents/<node>/<id>        JSON NodeIncident: node_lost, node_down (one per table), node_back
 *   <e>tokens/<username>            JSON: the user's ingestion-token records (hashes only), or a tombstone once revoked
 *   <e>revoked/<jti>                unix time a revoked control token expires (etcd drops it then: a lease)
 *   <e>quotas/<db>                  JSON Quota: the db's quota at every host's gateway
 */
export interface ClusterKeys {
  nodes(): string;
  coordinator(): string;
  incidents(node?: string): string;
  presence(id: string): string;
  nodeState(id: string): string;
  nodeLeft(id: string): string;
  revoked(): string;
  quotas(): string;
  tokens(): string;
  token(username: string): string;
  tables(): string;
  table(db: string, table: string, part: TablePart): string;
  /** The table and part of a key under tables(), or null. */
  parseTableKey(key: string): { db: string; table: string; part: TablePart } | null;
  /** The node id and kind of a key under nodes(), or null. */
  parseNodeKey(key: string): { id: string; kind: NodePart } | null;
}

export type NodePart = 'presence' | 'state' | 'left';
export type TablePart = 'owner' | 'desired' | 'status' | 'spec' | 'stranded';

export function makeClusterKeys(prefix: string): ClusterKeys {
  const nodes = `${prefix}nodes/`;
  const tables = `${prefix}tables/`;
  const tokens = `${prefix}tokens/`;
  return {
    revoked: () => `${prefix}revoked/`,
    quotas: () => `${prefix}quotas/`,
    coordinator: () => `${prefix}coordinator`,
    incidents: (node) => (node ? `${prefix}incidents/${node}/` : `${prefix}incidents/`),
    tokens: () => tokens,
    token: (username) => `${tokens}${username}`,
    tables: () => tables,
    table: (db, table, part) => `${tables}${db}/${table}/${part}`,
    parseTableKey: (key) => {
      const m = key.startsWith(tables) ? /^([^/]+)\/([^/]+)\/(owner|desired|status|spec|stranded)$/.exec(key.slice(tables.length)) : null;
      return m ? { db: m[1]!, table: m[2]!, part: m[3] as TablePart } : null;
    },
    nodes: () => nodes,
    presence: (id) => `${nodes}${id}/presence`,
    nodeState: (id) => `${nodes}${id}/state`,
    nodeLeft: (id) => `${nodes}${id}/left`,
    parseNodeKey: (key) => {
      const m = key.startsWith(nodes) ? /^([^/]+)\/(presence|state|left)$/.exec(key.slice(nodes.length)) : null;
      return m ? { id: m[1]!, kind: m[2] as NodePart } : null;
    },
  };
}
