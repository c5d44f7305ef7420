/**
 * Every etcd key the cluster uses, under ETCD_PREFIX (`<e>` below). docs/cluster.md documents them.
 *
 *   <e>nodes/<id>/presence   JSON Presence, bound to the host's lease: present while it lives
 *   <e>nodes/<id>/state      active | draining | decommissioned, no lease: the operator's word
 *   <e>tables/<db>/<table>/owner    the host that runs the table (its create revision: the table's epoch)
 *   <e>tables/<db>/<table>/desired  JSON: the last operation asked of it, with a generation and a request id
 *   <e>tables/<db>/<table>/status   JSON: what its owner did of that generation, and the status it saw
 *   <e>tables/<db>/<table>/spec     JSON: its desired config revision and spec, as its owner's disk has it
 *   <e>tokens/<username>            JSON: the user's ingestion-token records (hashes only), or a tombstone once revoked
 *   <e>revoked/<jti>                unix time a revoked control token expires (etcd drops it then: a lease)
 */
export interface ClusterKeys {
  nodes(): string;
  presence(id: string): string;
  nodeState(id: string): string;
  revoked(): string;
  tokens(): string;
  token(username: string): string;
  tables(): string;
  table(db: string, table: string, part: TablePart): string;
  /** The table and part of a key under tables(), or null. */
  parseTableKey(key: string): { db: string; table: string; part: TablePart } | null;
  /** The node id and kind of a key under nodes(), or null. */
  parseNodeKey(key: string): { id: string; kind: 'presence' | 'state' } | null;
}

export type TablePart = 'owner' | 'desired' | 'status' | 'spec';

export function makeClusterKeys(prefix: string): ClusterKeys {
  const nodes = `${prefix}nodes/`;
  const tables = `${prefix}tables/`;
  const tokens = `${prefix}tokens/`;
  return {
    revoked: () => `${prefix}revoked/`,
    tokens: () => tokens,
    token: (username) => `${tokens}${username}`,
    tables: () => tables,
    table: (db, table, part) => `${tables}${db}/${table}/${part}`,
    parseTableKey: (key) => {
      const m = key.startsWith(tables) ? /^([^/]+)\/([^/]+)\/(owner|desired|status|spec)$/.exec(key.slice(tables.length)) : null;
      return m ? { db: m[1]!, table: m[2]!, part: m[3] as TablePart } : null;
    },
    nodes: () => nodes,
    presence: (id) => `${nodes}${id}/presence`,
    nodeState: (id) => `${nodes}${id}/state`,
    parseNodeKey: (key) => {
      const m = key.startsWith(nodes) ? /^([^/]+)\/(presence|state)$/.exec(key.slice(nodes.length)) : null;
      return m ? { id: m[1]!, kind: m[2] as 'presence' | 'state' } : null;
    },
  };
}
