import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { type Config } from '../config.js';
import { SYSTEM_CA_FILE } from '../config-kinds.js';
import { AppError, clusterUnavailable, nodeNotFound, notClustered } from '../errors.js';
import type { Capacity, NodeState, NodeView } from '../resources/node.js';
import { createEtcd, nothingApplied, RecordSeal, sealKey, type EtcdAccess } from './etcd.js';
import { makeClusterKeys } from './keys.js';
import { EtcdMembers } from './members.js';
import { Membership } from './membership.js';

/** The hosts as the API shows them: one (this) on a single host, every member with etcd. */
export interface Nodes {
  readonly clustered: boolean;
  list(): Promise<NodeView[]>;
  /** The operator's word on a host's membership; 404 NODE_NOT_FOUND, 409 NOT_CLUSTERED, 503 CLUSTER_UNAVAILABLE. */
  setState(id: string, state: NodeState): Promise<NodeView>;
  /** `member`: what joins with this host (many hosts; one host has nothing to join). */
  start(member?: MemberParts): Promise<void>;
  stop(): Promise<void>;
}

/** What builds on the membership (src/placement/): started once this host joined, stopped before it leaves. */
export interface MemberParts {
  join(): Promise<void>;
  leave(): Promise<void>;
}

const NOTHING_MORE: MemberParts = { join: async () => undefined, leave: async () => undefined };

/**
 * Runs an etcd call, turning its failures into 503 CLUSTER_UNAVAILABLE. A call refused before
 * any member took it (`nothingApplied`) changed nothing; any other failure (a deadline, "request
 * timed out", "leader changed") may still be applied once etcd recovers, and says so. (A table's
 * lifecycle settles which instead: src/placement/cluster-lifecycle.ts.)
 */
export async function etcdCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    // An answer of the service's own (404, 409, ...) reached through etcd is that answer, not etcd's failure.
    if (err instanceof AppError) throw err;
    const m = (err as Error).message;
    if (nothingApplied(err)) throw clusterUnavailable(`etcd has no quorum or cannot be reached (${m}): nothing changed`);
    throw clusterUnavailable(`etcd did not confirm the change (${m}): it may still be applied once etcd recovers; read the status before retrying`);
  }
}

/** 16 hex digits of SHA-256 over both keys: equal on hosts that share them, and says nothing of them. */
export const keysDigest = (k: { jwtSecret: string; tokenHashKey: string }) =>
  createHash('sha256').update(`flume-service cluster keys\n${k.jwtSecret}\n${k.tokenHashKey}`).digest('hex').slice(0, 16);

/** How this host reaches etcd, from its settings (the files were checked readable by loadConfig). */
export function etcdAccess(cfg: Config, seal?: RecordSeal): EtcdAccess {
  const https = cfg.ETCD_ENDPOINTS.every((e) => e.startsWith('https://'));
  return {
    endpoints: cfg.ETCD_ENDPOINTS,
    ...(https ? { ca: readFileSync(cfg.ETCD_CA_FILE ?? SYSTEM_CA_FILE) } : {}),
    ...(cfg.ETCD_CERT_FILE && cfg.ETCD_KEY_FILE ? { cert: readFileSync(cfg.ETCD_CERT_FILE), key: readFileSync(cfg.ETCD_KEY_FILE) } : {}),
    ...(cfg.ETCD_USERNAME && cfg.ETCD_PASSWORD_FILE ? { user: { username: cfg.ETCD_USERNAME, password: readFileSync(cfg.ETCD_PASSWORD_FILE, 'utf8').trim() } } : {}),
    ...(seal ? { seal } : {}),
  };
}

const urls = (cfg: Config, host: string) => ({ apiUrl: `http://${host}:${cfg.API_PORT}`, gatewayUrl: `http://${host}:${cfg.GATEWAY_PORT}` });

/** A single host: no etcd, itself the only node, always active. */
export class SingleHost implements Nodes {
  readonly clustered = false;
  private readonly startedAt = new Date().toISOString();
  constructor(
    private readonly cfg: Config,
    private readonly measure: () => Promise<Capacity>,
  ) {}

  async list(): Promise<NodeView[]> {
    return [
      {
        id: this.cfg.NODE_ID, state: 'active', alive: true, self: true, address: this.cfg.NODE_ADDRESS, ...urls(this.cfg, this.cfg.NODE_ADDRESS),
        startedAt: this.startedAt, lastSeenSecondsAgo: 0, capacity: await this.measure(), sameKeys: true, leftAt: null, coordinator: true,
      },
    ];
  }

  async setState(): Promise<NodeView> {
    throw notClustered('this host runs alone (ETCD_ENDPOINTS is empty): it is always active');
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}

/** Many hosts on etcd (ETCD_ENDPOINTS): this host's membership and every other's. */
export class EtcdCluster implements Nodes {
  readonly clustered = true;
  readonly etcd: Etcd3;
  /** One client per member, for what must never wait on a lost one (src/cluster/members.ts). */
  readonly members: EtcdMembers;
  readonly membership: Membership;
  /** Records without a valid seal are not believed (src/cluster/etcd.ts RecordSeal). */
  readonly seal: RecordSeal;
  private refusedLogged = 0;

  constructor(
    cfg: Config,
    measure: () => Promise<Capacity>,
    /** The keys every host must share (control-token signing, ingestion-token hashing). */
    keys: { jwtSecret: string; tokenHashKey: string },
    private readonly log: Logger,
  ) {
    this.seal = new RecordSeal(sealKey(keys.jwtSecret), cfg.ETCD_PREFIX, (key) => this.refusedRecord(key));
    const access = etcdAccess(cfg, this.seal);
    this.members = new EtcdMembers(access);
    this.etcd = this.members.pooled;
    this.membership = new Membership(
      this.etcd,
      this.members,
      makeClusterKeys(cfg.ETCD_PREFIX),
      {
        id: cfg.NODE_ID, address: cfg.NODE_ADDRESS, ...urls(cfg, cfg.NODE_ADDRESS), leaseTtlSeconds: cfg.NODE_LEASE_TTL_SECONDS, keysDigest: keysDigest(keys),
        ...(cfg.FENCE_AFTER_SECONDS === undefined ? {} : { fenceAfterSeconds: cfg.FENCE_AFTER_SECONDS }),
      },
      measure,
      log,
    );
  }

  async list(): Promise<NodeView[]> {
    return this.membership.nodes();
  }

  /** A record etcd holds that no host sealed: written by something that is not a host of this cluster (logged at most once a minute). */
  private refusedRecord(key: string): void {
    const now = Date.now();
    if (now - this.refusedLogged < 60_000) return;
    this.refusedLogged = now;
    this.log.error({ key, refusedSoFar: this.seal.refused }, 'etcd holds a record no host of this cluster sealed (written by something other than a host, or by a version before seals): it is not believed');
  }

  async setState(id: string, state: NodeState): Promise<NodeView> {
    if (!this.membership.nodes().some((n) => n.id === id)) throw nodeNotFound(id);
    await etcdCall(() => this.membership.setState(id, state));
    const view = this.membership.nodes().find((n) => n.id === id)!;
    return { ...view, state };
  }

  /**
   * Joins in the background, retrying every second: a host without etcd still serves its own
   * tables. `member` joins with this host (after the membership, retried with it) and leaves
   * before it.
   */
  async start(member: MemberParts = NOTHING_MORE): Promise<void> {
    if (this.joining) return;
    this.member = member;
    this.joining = (async () => {
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          await this.membership.start();
          await this.member.join();
          this.joined = true;
          return;
        } catch (err) {
          if (attempt === 1 || attempt % 30 === 0) this.log.warn({ err: (err as Error).message, attempt }, 'could not join the cluster (etcd); retrying');
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.joining;
    await this.member.leave().catch(() => undefined);
    await this.membership.stop().catch(() => undefined);
    this.members.close();
  }

  private member: MemberParts = NOTHING_MORE;
  private joining: Promise<void> | null = null;
  private stopped = false;
  /** This host is a member (its presence is in etcd). */
  joined = false;
}
