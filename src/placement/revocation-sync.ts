import type { Etcd3 } from 'etcd3';
import type { EtcdMembers } from '../cluster/members.js';
import type { Logger } from 'pino';
import type { ControlTokenRevocations } from '../auth/revocations.js';
import { etcdCall } from '../cluster/cluster.js';
import { Mirror } from '../cluster/mirror.js';
import type { ClusterKeys } from '../cluster/keys.js';

/**
 * Revoked control tokens across hosts: a revocation through one host's API is written to etcd
 * (`<e>revoked/<jti>`, under a lease that ends when the token would have expired anyway) and
 * every host holds it within one watch event. Guarantees: at its first full read a host offers
 * the revocations it holds that etcd lacks; a revocation etcd does not take answers 503
 * CLUSTER_UNAVAILABLE (it holds on this host already).
 */
export class RevocationSync {
  private readonly mirror: Mirror;

  constructor(
    private readonly etcd: Etcd3,
    members: EtcdMembers,
    private readonly keys: ClusterKeys,
    private readonly revocations: ControlTokenRevocations,
    private readonly log: Logger,
  ) {
    this.mirror = new Mirror(members, keys.revoked(), {
      reset: (entries) => {
        for (const [key, e] of entries) this.take(key, e.value);
        for (const [jti, until] of revocations.all()) if (!entries.has(keys.revoked() + jti)) void this.offer(jti, until).catch(() => undefined);
      },
      put: (key, e) => this.take(key, e.value),
      delete: () => undefined,
    }, log);
    revocations.onChange((jti, until) => this.offer(jti, until));
  }

  start(): Promise<void> {
    return this.mirror.start();
  }

  stop(): Promise<void> {
    return this.mirror.stop();
  }

  private async offer(jti: string, until: number): Promise<void> {
    const ttl = Math.max(5, Math.ceil(until - Date.now() / 1000) + 60);
    await etcdCall(async () => {
      const lease = this.etcd.lease(ttl, { autoKeepAlive: false });
      await lease.put(this.keys.revoked() + jti).value(String(until)).exec();
      lease.release();
    });
  }

  private take(key: string, value: string): void {
    const jti = key.slice(this.keys.revoked().length);
    const until = Number(value);
    if (!jti || !Number.isFinite(until)) return;
    void this.revocations.learn(jti, until).catch((err: Error) => this.log.warn({ jti, err: err.message }, 'could not hold a revocation from etcd'));
  }
}
