import type { Etcd3 } from 'etcd3';
import type { EtcdMembers } from '../cluster/members.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import { etcdCall } from '../cluster/cluster.js';
import { Mirror } from '../cluster/mirror.js';
import type { ClusterKeys } from '../cluster/keys.js';
import { savedUserSchema, type SavedUser } from '../tokens/token-files.js';
import type { TokenService } from '../tokens/token-service.js';

/** A user's records in etcd, or a tombstone: a revocation stays known to a host that was away. */
const entrySchema = z.union([z.object({ saved: savedUserSchema }), z.object({ revoked: z.literal(true), at: z.string() })]);

/**
 * Ingestion tokens across hosts: every change made through one host's API is written to etcd
 * (`<e>tokens/<username>`), and every host applies every change to its own Redis and disk, so
 * a token set or revoked anywhere holds at every gateway (one watch event plus one Redis
 * transaction; the gateways' caches are invalidated with it).
 *
 * Guarantees: a revocation is kept as a tombstone, never as a missing key, so a host that comes
 * back never brings a revoked token back; at its first full read a host that joins with tokens
 * of its own (a single host becoming a cluster) offers each one etcd lacks, without overwriting
 * one etcd has; a change that etcd does not take answers 503 CLUSTER_UNAVAILABLE (it holds on
 * this host already).
 */
export class TokenSync {
  private readonly mirror: Mirror;

  constructor(
    private readonly etcd: Etcd3,
    members: EtcdMembers,
    private readonly keys: ClusterKeys,
    private readonly tokens: TokenService,
    private readonly log: Logger,
  ) {
    this.mirror = new Mirror(members, keys.tokens(), {
      // One at a time, in etcd's order.
      reset: (entries) => this.then(() => this.reset(new Map([...entries].map(([k, e]) => [k, e.value])))),
      put: (key, e) => this.then(() => this.take(key, e.value)),
      delete: () => undefined,
    }, log);
    tokens.onChange((username, saved) => this.offer(username, saved));
  }

  private chain: Promise<void> = Promise.resolve();
  private then(f: () => Promise<void>): void {
    this.chain = this.chain.then(f, f);
  }

  start(): Promise<void> {
    return this.mirror.start();
  }

  stop(): Promise<void> {
    return this.mirror.stop();
  }

  private async offer(username: string, saved: SavedUser | null): Promise<void> {
    const value = JSON.stringify(saved ? { saved } : { revoked: true, at: new Date().toISOString() });
    await etcdCall(() => this.etcd.put(this.keys.token(username)).value(value).exec());
  }

  private async take(key: string, value: string): Promise<void> {
    const username = key.slice(this.keys.tokens().length);
    try {
      const e = entrySchema.parse(JSON.parse(value));
      await this.tokens.apply(username, 'saved' in e ? e.saved : null);
    } catch (err) {
      this.log.warn({ username, err: (err as Error).message }, 'could not take a token record from etcd');
    }
  }

  private async reset(entries: Map<string, string>): Promise<void> {
    for (const [key, value] of entries) await this.take(key, value);
    for (const saved of await this.tokens.saved().catch(() => [] as SavedUser[])) {
      const key = this.keys.token(saved.username);
      if (entries.has(key)) continue;
      await this.etcd
        .if(key, 'Create', '==', 0)
        .then(this.etcd.put(key).value(JSON.stringify({ saved })))
        .commit()
        .catch((err: Error) => this.log.warn({ username: saved.username, err: err.message }, 'could not offer a token record to etcd'));
    }
  }
}
