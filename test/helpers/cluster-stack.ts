import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Installation } from './installation.js';
import { NetnsCluster } from './netns.js';

/**
 * Three hosts as network namespaces, each the whole stack as the README's first command brings
 * it up (its own Redis, supervisord, API, gateway), joined by a three-member etcd, every host
 * with the same keys. `down()` removes all of it.
 */
export class ClusterStack {
  readonly cluster: NetnsCluster;
  readonly hosts = new Map<number, Installation>();
  admin = '';
  viewer = '';

  constructor(
    readonly settings: { ttlSeconds: number; waitMs: number; extra?: Record<string, string> },
    size = 3,
  ) {
    this.cluster = new NetnsCluster(size);
  }

  /** Host i's API, at its cluster address. */
  api(i: number): string {
    return `http://${this.cluster.address(i)}:8001`;
  }

  host(i: number): Installation {
    return this.hosts.get(i)!;
  }

  async up(): Promise<void> {
    const { cluster } = this;
    await cluster.create();
    await cluster.startEtcd();
    for (const i of cluster.hosts()) {
      this.hosts.set(
        i,
        new Installation(
          {
            NODE_ID: `h${i}`,
            NODE_ADDRESS: cluster.address(i),
            ...cluster.etcdSettings,
            NODE_LEASE_TTL_SECONDS: String(this.settings.ttlSeconds),
            // Long enough for any operation on a busy machine; a test of a frozen owner waits it out.
            CLUSTER_WAIT_MS: String(this.settings.waitMs),
            API_HOST: '0.0.0.0',
            GATEWAY_HOST: '0.0.0.0',
            AGENT_HEAP: '128m',
            // The host-loss story reads each gateway's answers from its access log.
            GATEWAY_ACCESS_LOG: 'file',
            ...this.settings.extra,
          },
          { netns: cluster.ns(i) },
        ),
      );
    }
    // A cluster's hosts share the keys that sign control tokens and hash ingestion tokens.
    const keys = { 'jwt-secret': randomBytes(48).toString('base64url'), 'token-hash-key': randomBytes(48).toString('base64url') };
    for (const h of this.hosts.values()) {
      mkdirSync(h.varDir, { recursive: true });
      for (const [file, key] of Object.entries(keys)) writeFileSync(join(h.varDir, file), `${key}\n`, { mode: 0o600 });
    }
    await Promise.all([...this.hosts.values()].map((h) => h.up()));
    this.admin = this.host(1).token('--role', 'admin', '--ttl', '1h');
    this.viewer = this.host(1).token('--role', 'viewer', '--ttl', '1h');
  }

  /** GET /v1/api/nodes asked of host i (as admin), null unless it answered 200. */
  async nodes(i: number): Promise<Array<{ id: string; alive: boolean; self: boolean; state: string; coordinator: boolean; leftAt: string | null }> | null> {
    const r = await this.cluster.http(i, 'GET', `${this.api(i)}/v1/api/nodes`, { token: this.admin, timeoutS: 5 });
    return r.status === 200 ? (r.body.nodes as never) : null;
  }

  /** An ingestion token for `username` scoped to `dbs`, issued through host 1. */
  async ingestToken(username: string, dbs: string[]): Promise<string> {
    const t = await this.cluster.http(1, 'POST', `${this.api(1)}/v1/api/token`, { token: this.admin, body: { username, scope: dbs } });
    if (t.status !== 200) throw new Error(`could not issue a token: ${t.status} ${t.text}`);
    return t.body.token as string;
  }

  private senders = 0;

  /**
   * Sends batches of 5 events to db.table through host `via()`'s gateway (asked again for each
   * batch) until stopped, 50 ms apart; every acknowledged body is kept, every refusal counted by
   * status and error (the first of each kind printed).
   */
  sender(db: string, table: string, token: string, via: () => number) {
    const acked: string[] = [];
    const refused: Record<string, number> = {};
    let stop = false;
    let n = 0;
    const run = (this.senders++).toString(36);
    const done = (async () => {
      while (!stop) {
        const tag = `${table}-${run}-${n++}`;
        const body = Array.from({ length: 5 }, (_, k) => ({ body: `${tag}-${k}` }));
        const host = via();
        const r = await this.cluster.http(host, 'POST', `http://127.0.0.1:8080/ingest/${db}/${table}`, { token, body, timeoutS: 10 });
        if (r.status === 200) acked.push(...body.map((b) => b.body));
        else {
          const why = `${r.status} ${String(r.body.error ?? r.body.curl ?? '')}`;
          refused[why] = (refused[why] ?? 0) + 1;
          if (refused[why] === 1) console.log(`${table} via h${host} at ${new Date().toISOString()}: ${r.status} ${r.text}`);
        }
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    return {
      acked,
      refused,
      async stop() {
        stop = true;
        await done;
      },
    };
  }

  /** What the agents of db.table on these hosts wrote to their file_roll sinks. */
  delivered(db: string, table: string, on: number[]): string[] {
    return on.flatMap((i) => this.host(i).delivered(`flume-${db}-${table}`));
  }

  async down(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.destroy()));
    await this.cluster.destroy();
  }
}

/** The acknowledged bodies that are not among those delivered. */
export const missing = (acked: string[], got: string[]) => {
  const have = new Set(got);
  return acked.filter((a) => !have.has(a));
};
