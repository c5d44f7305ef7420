import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { etcdCall } from '../cluster/cluster.js';
import type { ClusterKeys } from '../cluster/keys.js';
import type { EtcdMembers } from '../cluster/members.js';
import { Mirror, type MirrorEntry } from '../cluster/mirror.js';
import { quotaSchema, type Quota } from '../resources/quota.js';
import { NAME_PATTERN } from '../resources/table.js';
import type { Quotas } from '../tenants/quotas.js';

/**
 * Each db's quota across hosts: etcd (`<e>quotas/<db>`) is the truth. A change through any host's
 * API is written to etcd first (a failure answers 503 CLUSTER_UNAVAILABLE and changes nothing)
 * and every host holds it within one watch event; at each full read a host replaces what it
 * holds with etcd's view. A record that is not a quota of a db name is skipped and logged.
 * Each host's gateway enforces the quota on what reaches it (docs/gateway.md).
 */
export class QuotaSync {
  private readonly mirror: Mirror;

  constructor(
    private readonly etcd: Etcd3,
    members: EtcdMembers,
    private readonly keys: ClusterKeys,
    private readonly quotas: Quotas,
    private readonly log: Logger,
  ) {
    this.mirror = new Mirror(
      members,
      keys.quotas(),
      {
        reset: (entries) => void this.hold(entries),
        put: (key, e) => void this.take(key, e.value),
        delete: (key) => void this.take(key, null),
      },
      log,
    );
    quotas.onChange((db, quota) => this.offer(db, quota));
  }

  start(): Promise<void> {
    return this.mirror.start();
  }

  stop(): Promise<void> {
    return this.mirror.stop();
  }

  private async offer(db: string, quota: Quota | null): Promise<void> {
    const key = this.keys.quotas() + db;
    await etcdCall(async () => {
      if (quota) await this.etcd.put(key).value(JSON.stringify(quota)).exec();
      else await this.etcd.delete().key(key).exec();
    });
  }

  /** A record's db and quota, or null when it is not one (an etcd record is untrusted input). */
  private read(key: string, value: string): { db: string; quota: Quota } | null {
    const db = key.slice(this.keys.quotas().length);
    if (!NAME_PATTERN.test(db)) return null;
    try {
      const q = quotaSchema.safeParse(JSON.parse(value));
      return q.success ? { db, quota: q.data } : null;
    } catch {
      return null;
    }
  }

  private async hold(entries: Map<string, MirrorEntry>): Promise<void> {
    const all = new Map<string, Quota>();
    for (const [key, e] of entries) {
      const r = this.read(key, e.value);
      if (r) all.set(r.db, r.quota);
      else this.log.warn({ key }, 'an etcd quota record that is not one: skipped');
    }
    await this.quotas.replaceAll(all).catch((err: Error) => this.log.warn({ err: err.message }, 'could not hold the quotas from etcd'));
  }

  private async take(key: string, value: string | null): Promise<void> {
    const db = key.slice(this.keys.quotas().length);
    if (value === null) {
      if (NAME_PATTERN.test(db)) await this.quotas.learn(db, null).catch((err: Error) => this.log.warn({ db, err: err.message }, 'could not drop a quota etcd dropped'));
      return;
    }
    const r = this.read(key, value);
    if (!r) {
      this.log.warn({ key }, 'an etcd quota record that is not one: skipped');
      return;
    }
    await this.quotas.learn(r.db, r.quota).catch((err: Error) => this.log.warn({ db, err: err.message }, 'could not hold a quota from etcd'));
  }
}
