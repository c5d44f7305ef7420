import { EventEmitter } from 'node:events';
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { periodic, type Periodic } from '../periodic.js';
import { FENCE_SHARE } from './lease.js';
import type { ClusterKeys } from './keys.js';
import type { Membership } from './membership.js';

/**
 * The others free the post once the coordinator's heartbeat is older than this share of the TTL
 * (by their clocks, from when they saw it), after it stepped down at FENCE_SHARE (2/3) by its own.
 */
export const TAKE_OVER_SHARE = 0.8;

/** How often a host looks at who coordinates (and claims the post when it is free). */
export const COORDINATOR_CHECK_MS = 500;

/**
 * One host does the cluster's duties (src/placement/host-loss.ts): the one whose id the key
 * `<e>coordinator` holds, created only where absent and bound to that host's lease.
 *
 * Guarantees: a host leads only while the key holds its id under its current lease, its lease
 * is not fenced and its own heartbeat succeeded within 2/3 of the TTL (by its monotonic clock);
 * otherwise it stops leading at once (`leading` is judged at each read), before the key can
 * lapse and before the others, who judge it by the same heartbeat, free the post (at
 * TAKE_OVER_SHARE of the TTL). So two hosts never lead at once
 * (clocks that run at similar rates assumed). A coordinator that dies
 * loses the key with its lease (the TTL); another host claims it as soon as its watch sees the
 * key go (COORDINATOR_CHECK_MS at the latest).
 * A clean stop gives the post up at once (the lease is revoked). Events: 'change' (leading).
 */
export class Coordinator extends EventEmitter {
  private job: Periodic | null = null;
  private elected = false;

  /** This host leads now: elected, and still fit at this instant (read by every duty before it acts). */
  get leading(): boolean {
    return this.elected && this.fit;
  }

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: ClusterKeys,
    private readonly membership: Membership,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    super();
    membership.onFencing(async (fenced) => {
      if (fenced) this.set(false, this.membership.coordinator);
    });
  }

  start(): void {
    this.job = periodic('coordinator election', COORDINATOR_CHECK_MS, () => this.check(), this.log);
    // The post going free (its holder's lease lapsed, or it resigned) is claimed at once.
    void this.etcd
      .watch()
      .key(this.keys.coordinator())
      .create()
      .then((w) => {
        if (!this.job) return void w.cancel();
        this.watcher = w;
        w.on('delete', () => void this.job?.runNow());
        w.on('error', () => undefined); // the periodic check carries on
      }, () => undefined);
  }

  async stop(): Promise<void> {
    const job = this.job;
    this.job = null;
    await job?.stop();
    await this.watcher?.cancel().catch(() => undefined);
    this.set(false, null);
  }

  private watcher: Watcher | null = null;

  /** Whether this host may lead now: its lease is renewed and its heartbeat is fresh (2/3 of the TTL). */
  private get fit(): boolean {
    return !this.membership.fenced && this.membership.heartbeatAgeSeconds < this.ttlSeconds * FENCE_SHARE;
  }

  private async check(): Promise<void> {
    const self = this.membership.id;
    if (!this.fit) return this.set(false, this.membership.coordinator);
    const key = this.keys.coordinator();
    let kv = (await this.etcd.get(key).exec()).kvs[0];
    const holder = kv?.value.toString() ?? null;
    // The holder's heartbeat is older than TAKE_OVER_SHARE of the TTL: it stepped down at 2/3 of
    // it (or is dead), and its key may outlive it (etcd extends every lease when its own leader
    // changes): free the post.
    const age = holder === null ? null : this.membership.heartbeatAgeOf(holder);
    if (kv && holder !== self && (age === null || age > this.ttlSeconds * TAKE_OVER_SHARE)) {
      const r = await this.etcd.if(key, 'Mod', '==', Number(kv.mod_revision)).then(this.etcd.delete().key(key)).commit();
      if (r.succeeded) {
        this.log.warn({ coordinator: holder }, 'the coordinator stopped its heartbeat: its post is free');
        kv = undefined;
      }
    }
    if (!kv) {
      const won = this.fit && (await this.membership.claim(key, self));
      return this.set(won, won ? self : null);
    }
    const mine = holder === self && String(kv.lease) === this.membership.leaseId();
    this.set(mine && this.fit, holder);
  }

  private set(leading: boolean, holder: string | null): void {
    // This host is the coordinator only while it leads (its key under an older lease is not it).
    this.membership.coordinator = leading ? this.membership.id : holder === this.membership.id ? null : holder;
    if (leading === this.elected) return;
    this.elected = leading;
    this.log.info({ node: this.membership.id }, leading ? 'elected coordinator: this host does the cluster duties' : 'no longer the coordinator');
    this.emit('change', leading);
  }
}
