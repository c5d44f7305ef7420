import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { nodeStateSchema, presenceSchema, type Capacity, type NodeState, type NodeView, type Presence } from '../resources/node.js';
import { periodic, type Periodic } from '../periodic.js';
import { createIfAbsent, Mirror, OwnLease } from './etcd.js';
import type { ClusterKeys } from './keys.js';

/** How often a host writes its presence again (fresh capacity): a few times per lease TTL. */
export const PRESENCE_EVERY_MS = 5000;

interface Known {
  state: NodeState | null;
  presence: Presence | null;
  /** When this process last saw the presence change (its own clock). */
  seenAt: number | null;
}

/**
 * The hosts of the cluster, as etcd has them: the original design's persistent + ephemeral
 * pair (`003_*`), per host. Each host keeps a lease-bound presence (with what it measured of
 * itself) and a persistent membership state, `active` when it first joins.
 *
 * Guarantees: `nodes()` reads memory only (a mirror of `<e>nodes/` kept by a watch, read again
 * in full after any watch failure); a host's presence disappears within its lease TTL (plus
 * etcd's lessor tick) once it stops renewing, or at once when it stops cleanly (`stop` revokes
 * the lease); the state of a host is never changed by its presence coming or going.
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
    private readonly keys: ClusterKeys,
    private readonly self: { id: string; address: string; apiUrl: string; gatewayUrl: string; leaseTtlSeconds: number; keysDigest: string },
    private readonly measure: () => Promise<Capacity>,
    private readonly log: Logger,
  ) {}

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
    if (await createIfAbsent(this.etcd, this.keys.nodeState(this.self.id), 'active')) this.log.info({ node: this.self.id }, 'joined the cluster as a new member (active)');
    this.lease = new OwnLease(this.etcd, this.self.leaseTtlSeconds, this.log);
    this.lease.on('fenced', () => this.tellFencing(true));
    this.lease.on('unfenced', () => this.tellFencing(false));
    await this.announce();
    this.mirror = new Mirror(this.etcd, this.keys.nodes(), {
      reset: (entries) => {
        const seen = new Map<string, Known>();
        for (const [key, e] of entries) this.apply(seen, key, e.value);
        const before = new Map(this.known);
        this.known.clear();
        for (const [id, k] of seen) this.known.set(id, { ...k, seenAt: k.presence ? (before.get(id)?.seenAt ?? Date.now()) : null });
        this.version++;
      },
      put: (key, e) => this.apply(this.known, key, e.value),
      delete: (key) => this.apply(this.known, key, null),
    }, this.log);
    await this.mirror.start();
    this.refresher = periodic('node presence', PRESENCE_EVERY_MS, () => this.announce(), this.log);
  }

  /** Leaves cleanly: the presence goes at once (the state stays). */
  async stop(): Promise<void> {
    await this.refresher?.stop();
    await this.mirror?.stop();
    await this.lease?.close();
    this.refresher = null;
    this.mirror = null;
    this.lease = null;
  }

  /** Told when this host's lease becomes fenced (true) and renewed again (false). */
  readonly fencing: Array<(fenced: boolean) => Promise<void>> = [];

  private fenceChain: Promise<void> = Promise.resolve();
  private told: boolean | null = null;

  /**
   * One change at a time, each acting on the lease's state when its turn comes (a fence and an
   * unfence in quick succession end in the state the lease is in, never in the other).
   */
  private tellFencing(_changed: boolean): void {
    this.fenceChain = this.fenceChain.then(async () => {
      const fenced = this.lease?.fenced ?? false;
      if (fenced === this.told) return;
      this.told = fenced;
      for (const f of this.fencing) await f(fenced).catch((err: Error) => this.log.error({ err: err.message, fenced }, 'could not follow the fence'));
      // The lease may have moved on meanwhile: follow it.
      if ((this.lease?.fenced ?? false) !== fenced) this.tellFencing(!fenced);
    });
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
        const p = k.presence;
        return {
          id,
          state: k.state ?? 'active',
          alive: p !== null,
          self,
          address: p?.address ?? null,
          apiUrl: p?.apiUrl ?? null,
          gatewayUrl: p?.gatewayUrl ?? null,
          startedAt: p?.startedAt ?? null,
          lastSeenSecondsAgo: self && this.lease ? round(this.lease.ageSeconds) : k.seenAt === null ? null : round((now - k.seenAt) / 1000),
          capacity: p?.capacity ?? null,
          sameKeys: p ? p.keysDigest === this.self.keysDigest : null,
        };
      })
      .sort((a, b) => a.id.localeCompare(b.id));
  }

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
    };
    await this.lease.put(this.keys.presence(this.self.id), JSON.stringify(presence));
  }

  private apply(into: Map<string, Known>, key: string, value: string | null): void {
    const k = this.keys.parseNodeKey(key);
    if (!k) return;
    const wasAlive = into.get(k.id)?.presence != null;
    const wasState = into.get(k.id)?.state ?? null;
    const cur = into.get(k.id) ?? { state: null, presence: null, seenAt: null };
    if (k.kind === 'state') {
      const s = value === null ? null : nodeStateSchema.safeParse(value);
      cur.state = s?.success ? s.data : null;
    } else {
      const p = value === null ? null : safeJson(value);
      const parsed = p === null ? null : presenceSchema.safeParse(p);
      cur.presence = parsed?.success ? parsed.data : null;
      if (cur.presence && cur.presence.keysDigest !== this.self.keysDigest && !this.warned.has(k.id)) {
        this.warned.add(k.id);
        this.log.error({ node: k.id }, "this host and that one sign and hash tokens with different keys: each refuses the other's tokens; give every host the same JWT_SECRET and TOKEN_HASH_KEY (docs/cluster.md)");
      }
      cur.seenAt = cur.presence ? Date.now() : null;
    }
    if (cur.state === null && cur.presence === null) into.delete(k.id);
    else into.set(k.id, cur);
    if (wasAlive !== (cur.presence !== null) || wasState !== cur.state) this.version++;
  }
}

const round = (x: number) => Math.round(x * 10) / 10;
const safeJson = (s: string): unknown => {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
};
