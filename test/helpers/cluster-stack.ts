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

  async down(): Promise<void> {
    await Promise.all([...this.hosts.values()].map((h) => h.destroy()));
    await this.cluster.destroy();
  }
}
