import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Capacity, NodeState, NodeView, Presence } from '../resources/node.js';
import { periodic, type Periodic } from '../periodic.js';
import { CALL_DEADLINE_MS, createIfAbsent } from './etcd.js';
import { answerMsFor, OwnLease } from './lease.js';
import type { EtcdMembers } from './members.js';
import { Mirror } from './mirror.js';
import { FenceNotices } from './fence-notices.js';
import { applyRecord, type Known } from './known-hosts.js';
import type { ClusterKeys } from './keys.js';

/** How often a host writes its presence again (its heartbeat, with fresh capacity): three times per lease TTL, at most every 5 s. */
export const presenceEveryMs = (ttlSeconds: number) => Math.min(5000, (ttlSeconds * 1000) / 3);


/**
 * The hosts of the cluster, as etcd has them: the original design's persistent + ephemeral
 * pair (`003_*`), per host. Each host keeps a lease-bound presence (with what it measured of
 * itself) and a persistent membership state, `active` when it first joins.
 *
 * Guarantees: `nodes()` reads memory only (a mirror of `<e>nodes/` kept by a watch, read again
 * in full after any watch failure); a host's presence disappears within its lease TTL (plus
 * etcd's lessor tick) once it stops renewing, or at once when it stops cleanly (`stop` revokes
 * the lease); the state of a host is never changed by its presence coming or going.
 *
 * Another host is judged gone only when etcd's quorum side has not heard from it for the TTL:
 * its silence is counted up to the last moment this host's own view was shown complete (its own
 * heartbeat, written through a member that answers, came back through its watch). A watch whose
 * member went silent, or this host's own trouble reaching etcd, stops that clock instead of
 * making the others look dead; a watch that does not deliver this host's heartbeat within
 * `watchLagMs` is moved to another member.
 */
export class Membership {
  private readonly known = new Map<string, Known>();
  private lease: OwnLease | null = null;
  private mirror: Mirror | null = null;
  private refresher: Periodic | null = null;
  private readonly startedAt = new Date().toISOString();
  private readonly warned = new Set<string>();
  /** Bumped whenever a host comes, goes or changes state (not on each presence renewal). */
  version = 0;

  constructor(
    private readonly etcd: Etcd3,
    private readonly members: EtcdMembers,
    private readonly keys: ClusterKeys,
    private readonly self: { id: string; address: string; apiUrl: string; gatewayUrl: string; leaseTtlSeconds: number; keysDigest: string; fenceAfterSeconds?: number },
    private readonly measure: () => Promise<Capacity>,
    private readonly log: Logger,
  ) {
    this.notices = new FenceNotices(() => this.lease?.fenced ?? false, log);
  }

  get id(): string {
    return this.self.id;
  }

  /** Joins: state `active` unless one is set, the presence under a new lease, then the mirror. */
  async start(): Promise<void> {
    try {
      await this.join();
    } catch (err) {
      await this.stop(); // nothing half-joined stays behind: the next attempt starts clean
      throw err;
    }
  }

  private async join(): Promise<void> {
    // Presence before state: an active member without a presence was alive once, and is lost.
    await this.etcd.delete().key(this.keys.nodeLeft(this.self.id)).exec();
    this.lease = new OwnLease(this.members, this.self.leaseTtlSeconds, this.log);
    this.lease.on('fenced', () => this.notices.tell());
    this.lease.on('unfenced', () => {
      this.contactSince = Date.now();
      this.notices.tell();
    });
    this.contactSince = Date.now();
    await this.lease.ready(CALL_DEADLINE_MS);
    await this.announce();
    if (await createIfAbsent(this.etcd, this.keys.nodeState(this.self.id), 'active')) this.log.info({ node: this.self.id }, 'joined the cluster as a new member (active)');
    this.mirror = new Mirror(this.members, this.keys.nodes(), {
      reset: (entries) => {
        const seen = new Map<string, Known>();
        for (const [key, e] of entries) this.apply(seen, key, e.value, e.modRevision);
        const before = new Map(this.known);
        this.known.clear();
        for (const [id, k] of seen) {
          const b = before.get(id);
          // A presence written again since it was last seen: a heartbeat this host's watch missed.
          const beatMissed = k.presence && b?.presence && b.presenceRevision !== k.presenceRevision;
          this.known.set(id, {
            ...k,
            seenAt: k.presence ? (beatMissed ? Date.now() : (b?.seenAt ?? Date.now())) : null,
            goneAt: k.presence ? null : (b?.goneAt ?? (b?.presence ? Date.now() : null)),
            last: k.last ?? b?.last ?? null,
          });
        }
        this.version++;
      },
      put: (key, e) => this.apply(this.known, key, e.value, e.modRevision),
      delete: (key, revision) => this.apply(this.known, key, null, revision),
    }, this.log);
    await this.mirror.start();
    this.heartbeats = setInterval(() => this.watchHeartbeats(), 250);
    this.heartbeats.unref();
    this.refresher = periodic('node presence', presenceEveryMs(this.self.leaseTtlSeconds), () => this.announce(), this.log);
  }

  /** Leaves cleanly: says so (`left`), then the presence goes at once (the state stays). */
  async stop(): Promise<void> {
    if (this.heartbeats) clearInterval(this.heartbeats);
    await this.refresher?.stop();
    await this.mirror?.stop();
    if (this.lease && !this.lease.fenced) {
      await this.etcd.put(this.keys.nodeLeft(this.self.id)).value(new Date().toISOString()).exec().catch((err: Error) => this.log.warn({ err: err.message }, 'could not say in etcd that this host leaves cleanly'));
    }
    await this.lease?.close();
    this.refresher = null;
    this.mirror = null;
    this.lease = null;
  }

  /** `f` is told when this host's lease becomes fenced (true) and renewed again (false), in turn with the others. */
  onFencing(f: (fenced: boolean) => Promise<void>): void {
    this.notices.subscribe(f);
  }
  private readonly notices: FenceNotices;

  /**
   * Creates `key` bound to this host's lease if it does not exist (a claim: it goes with the
   * lease, and is not put again after a re-grant). True if this call created it.
   */
  async claim(key: string, value: string): Promise<boolean> {
    if (!this.lease || this.lease.fenced) return false;
    return this.lease.claim(key, value);
  }

  /** This host's lease id now (null: not joined, or between leases). */
  leaseId(): string | null {
    return this.lease?.id ?? null;
  }

  /** The host doing the cluster duties, as the coordinator election last saw it (src/cluster/coordinator.ts). */
  coordinator: string | null = null;

  /**
   * Since when this host has been out of touch with etcd (its last lease renewal), while it is
   * fenced: what it reads of the cluster may be stale from then on. Null while in touch.
   */
  get staleSince(): string | null {
    if (!this.lease?.fenced) return null;
    return new Date(Date.now() - this.lease.ageSeconds * 1000).toISOString();
  }

  /** Seconds since this host's last successful lease renewal (Infinity: not joined). */
  get leaseAgeSeconds(): number {
    return this.lease?.ageSeconds ?? Infinity;
  }

  /** Whether this host may act for the cluster now (its lease is renewed). */
  get fenced(): boolean {
    return this.lease?.fenced ?? true;
  }

  /** Every host etcd knows, by id. */
  nodes(): NodeView[] {
    const now = Date.now();
    return [...this.known.entries()]
      .map(([id, k]): NodeView => {
        const self = id === this.self.id;
        // Alive: its presence is there and was renewed within the TTL, by this host's clock. The
        // heartbeat, not only the lease: etcd gives every lease a fresh TTL when its own leader
        // changes, so a host that died with etcd's leader would otherwise look alive for longer.
        const p = k.presence;
        const alive = p !== null && !this.stale(k, self);
        return {
          id,
          state: k.state ?? 'active',
          alive,
          self,
          address: p?.address ?? null,
          apiUrl: p?.apiUrl ?? null,
          gatewayUrl: p?.gatewayUrl ?? null,
          startedAt: p?.startedAt ?? null,
          lastSeenSecondsAgo: self && this.lease ? round(this.lease.ageSeconds) : k.seenAt === null ? null : round((now - k.seenAt) / 1000),
          capacity: p?.capacity ?? null,
          sameKeys: p ? p.keysDigest === this.self.keysDigest : null,
          leftAt: alive ? null : k.leftAt,
          coordinator: this.coordinator === id,
        };
      })
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  private stale(k: Known, self: boolean): boolean {
    const age = self ? null : this.heartbeatAge(k);
    return age !== null && age > this.self.leaseTtlSeconds;
  }

  /**
   * Seconds a host has been silent as far as this host can tell: from when its heartbeat was
   * seen (no earlier than when this host last regained touch with etcd: after it was cut off
   * itself, every other host gets a fresh TTL, as etcd gives every lease after a leader change)
   * to when this host's view was last shown complete (`currentAt`); null without a presence.
   */
  private heartbeatAge(k: Known): number | null {
    if (!k.presence || k.seenAt === null) return null;
    return Math.max(0, this.currentAt - Math.max(k.seenAt, this.contactSince)) / 1000;
  }

  /**
   * When (this host's clock) its view of the hosts was last shown complete: the start of its
   * latest heartbeat that came back through its watch. Everything etcd took before then, the
   * watch has delivered.
   */
  private currentAt = Date.now();
  /** The latest heartbeat not yet seen coming back through the watch. */
  private awaiting: { revision: number; began: number; since: number } | null = null;
  private lagging = false;

  /** How long this host's heartbeat may take to come back through its watch before the watch moves to another member. */
  get watchLagMs(): number {
    return Math.max(1000, 2 * answerMsFor(this.self.leaseTtlSeconds));
  }

  /** The heartbeat came back through the watch (its view is complete up to then), or the watch is moved. */
  private confirmView(): void {
    const a = this.awaiting;
    if (!a || !this.mirror) return;
    if (this.mirror.revision >= a.revision) {
      this.currentAt = Math.max(this.currentAt, a.began);
      this.awaiting = null;
      if (this.lagging) {
        this.lagging = false;
        this.log.info({ member: this.mirror.endpoint }, "the hosts' watch delivers again");
      }
    } else if (performance.now() - a.since > this.watchLagMs) {
      if (!this.lagging) this.log.warn({ member: this.mirror.endpoint, lagMs: this.watchLagMs }, "this host's heartbeat did not come back through its watch: watching through another etcd member");
      this.lagging = true;
      a.since = performance.now();
      this.mirror.switchMember();
    }
  }

  /**
   * Seconds since another host's heartbeat was seen, counted from no earlier than when this
   * host last regained touch with etcd; null if it has no presence.
   */
  heartbeatAgeOf(id: string): number | null {
    const k = this.known.get(id);
    return k ? this.heartbeatAge(k) : null;
  }

  /**
   * The earliest time, by this host's clock, another host that is away has surely stopped
   * taking events: its lease gone (or, if still there, within a TTL from now), plus how long it
   * keeps intake out of touch (its FENCE_AFTER_SECONDS) beyond the TTL, plus two seconds (it
   * fences one early, and a renewal it handled late may look a second later to it than it was).
   * Now, for a host that fences within its TTL (the default).
   */
  intakeStopsBy(id: string): number {
    const k = this.known.get(id);
    const ttl = this.self.leaseTtlSeconds * 1000;
    // Not seen yet by this process: the cluster's hosts share the setting, so its own.
    const fenceAfter = (k?.last?.fenceAfterSeconds ?? this.self.fenceAfterSeconds ?? 0) * 1000;
    if (fenceAfter <= ttl) return Date.now();
    const gone = k?.presence ? Date.now() + ttl : (k?.goneAt ?? Date.now());
    return gone + fenceAfter - ttl + 2000;
  }

  /** When this host last regained touch with etcd (its lease renewed after a fence, or joined). */
  private contactSince = Date.now();

  /** Bumps `version` when a host's heartbeat goes stale (no put of its presence for the TTL). */
  private watchHeartbeats(): void {
    this.confirmView();
    const stale = [...this.known.entries()].filter(([id, k]) => k.presence && this.stale(k, id === this.self.id)).map(([id]) => id).join();
    if (stale !== this.staleSeen) {
      this.staleSeen = stale;
      this.version++;
    }
  }

  private staleSeen = '';
  private heartbeats: NodeJS.Timeout | null = null;

  /** Sets a host's membership state (the operator's word; kept without a lease). */
  async setState(id: string, state: NodeState): Promise<void> {
    await this.etcd.put(this.keys.nodeState(id)).value(state).exec();
    this.log.info({ node: id, state }, 'membership state changed');
  }

  private async announce(): Promise<void> {
    if (!this.lease) return;
    const presence: Presence = {
      id: this.self.id,
      address: this.self.address,
      apiUrl: this.self.apiUrl,
      gatewayUrl: this.self.gatewayUrl,
      startedAt: this.startedAt,
      renewedAt: new Date().toISOString(),
      capacity: await this.measure(),
      keysDigest: this.self.keysDigest,
      ...(this.self.fenceAfterSeconds === undefined ? {} : { fenceAfterSeconds: this.self.fenceAfterSeconds }),
    };
    const began = Date.now();
    let revision: number;
    try {
      revision = await this.lease.put(this.keys.presence(this.self.id), JSON.stringify(presence));
    } catch (err) {
      this.beatFailed = true;
      throw err;
    }
    // Back after a heartbeat etcd did not take (an election): nobody's could be taken, so each
    // host gets a fresh TTL from now, as after this host was cut off itself.
    if (this.beatFailed) this.contactSince = Math.max(this.contactSince, began);
    this.beatFailed = false;
    this.heartbeatAt = performance.now();
    if (!this.awaiting || revision > this.awaiting.revision) this.awaiting = { revision, began, since: this.awaiting?.since ?? performance.now() };
  }

  /** When this host's heartbeat (a presence put) last succeeded, by its monotonic clock. */
  private heartbeatAt = 0;
  /** This host's last heartbeat failed: etcd took no write from it. */
  private beatFailed = false;

  /**
   * Seconds since this host's last successful heartbeat. The others judge it gone once theirs
   * is older than the TTL; the coordinator steps down well before that (src/cluster/coordinator.ts).
   */
  get heartbeatAgeSeconds(): number {
    return this.heartbeatAt === 0 ? Infinity : (performance.now() - this.heartbeatAt) / 1000;
  }

  private apply(into: Map<string, Known>, key: string, value: string | null, revision: number): void {
    const k = this.keys.parseNodeKey(key);
    if (!k) return;
    if (applyRecord(into, k.id, k.kind, value, revision)) this.version++;
    const presence = k.kind === 'presence' ? into.get(k.id)?.presence : null;
    if (presence && presence.keysDigest !== this.self.keysDigest && !this.warned.has(k.id)) {
      this.warned.add(k.id);
      this.log.error({ node: k.id }, "this host and that one sign and hash tokens with different keys: each refuses the other's tokens; give every host the same JWT_SECRET and TOKEN_HASH_KEY (docs/cluster.md)");
    }
  }
}

const round = (x: number) => Math.round(x * 10) / 10;
