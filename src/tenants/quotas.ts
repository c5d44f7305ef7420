import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import { quotaFileSchema, quotaSchema, quotaValue, type Quota } from '../resources/quota.js';
import { readJsonFileSync, writeAtomic } from '../store/files.js';

/**
 * Each db's quota at the gateway (src/resources/quota.ts). The file (var/quotas.json, 0600) is the
 * truth on a host, Redis's `<p>quotas` the gateway's copy; with many hosts etcd is the truth and
 * every host holds what it says (src/placement/quota-sync.ts, through `learn`).
 *
 * Guarantees: a change is on disk before Redis, and the gateway drops its cached quota of that db
 * at once (`quota:<db>` on the invalidate channel); `restore` puts the file back into Redis after
 * Redis lost its data (and removes what the file does not hold). A file that does not parse is
 * logged and left as it is until the next change, and no quota holds meanwhile.
 */
export class Quotas {
  readonly part = 'quotas';
  private readonly held = new Map<string, Quota>();
  private readonly changed: Array<(db: string, quota: Quota | null) => Promise<void>> = [];

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly file: string,
    private readonly log: Logger,
  ) {
    for (const [db, q] of Object.entries(readJsonFileSync(file, quotaFileSchema, log, 'the quotas: none holds until one is set again') ?? {})) this.held.set(db, q);
  }

  get(db: string): Quota | null {
    return this.held.get(db) ?? null;
  }

  all(): Map<string, Quota> {
    return new Map(this.held);
  }

  /** `f` is told of every change made through this host (with many hosts: how etcd hears of it). Called before the change holds here. */
  onChange(f: (db: string, quota: Quota | null) => Promise<void>): void {
    this.changed.push(f);
  }

  /** Sets (or with null removes) a db's quota; every listener first (etcd: its failure changes nothing). */
  async set(db: string, quota: Quota | null): Promise<void> {
    const q = quota === null ? null : quotaSchema.parse(quota);
    for (const f of this.changed) await f(db, q);
    await this.learn(db, q);
    this.log.info({ db, quota: q }, q ? 'quota set' : 'quota removed');
  }

  /** Holds a quota decided elsewhere (etcd): on disk, in Redis, the gateway told. */
  async learn(db: string, quota: Quota | null): Promise<void> {
    const had = this.held.get(db);
    if (JSON.stringify(had ?? null) === JSON.stringify(quota)) return;
    if (quota) this.held.set(db, quota);
    else this.held.delete(db);
    await writeAtomic(this.file, JSON.stringify(Object.fromEntries(this.held), null, 2), 0o600);
    const tx = this.redis.multi();
    if (quota) tx.hset(this.keys.quotas(), db, quotaValue(quota));
    else tx.hdel(this.keys.quotas(), db);
    await redisCall(() => tx.publish(this.keys.invalidateChannel(), `quota:${db}`).exec());
  }

  /** Replaces every quota with `all` (etcd's whole view, after a start or a resync). */
  async replaceAll(all: Map<string, Quota>): Promise<void> {
    for (const db of [...this.held.keys()]) if (!all.has(db)) await this.learn(db, null);
    for (const [db, q] of all) await this.learn(db, q);
  }

  /** Restorable: the file back into Redis, and nothing else there. Returns the dbs written. */
  async restore(): Promise<string[]> {
    const tx = this.redis.multi().del(this.keys.quotas());
    if (this.held.size) tx.hset(this.keys.quotas(), Object.fromEntries([...this.held].map(([db, q]) => [db, quotaValue(q)])));
    // (Any kind the gateway does not know drops every cached entry: all are looked up again.)
    await redisCall(() => tx.publish(this.keys.invalidateChannel(), 'all:quotas').exec());
    return [...this.held.keys()];
  }
}
