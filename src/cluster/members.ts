import { performance } from 'node:perf_hooks';
import { BrokenCircuitError, NoopPolicy, type IDefaultPolicyContext } from 'cockatiel';
import { GRPCDeadlineExceededError, isRecoverableError, type Etcd3 } from 'etcd3';
import { createEtcd, type EtcdAccess } from './etcd.js';

/** How long a member whose call failed is passed over before it is tried again (and how often it is asked whether it answers). */
export const MEMBER_REST_MS = 2000;

/**
 * The pooled client's policy for one member: a member shut out is passed over (unless every
 * member is); a call to it that fails for want of etcd shuts it out.
 */
class MemberGate extends NoopPolicy {
  constructor(
    private readonly members: EtcdMembers,
    private readonly endpoint: string,
  ) {
    super();
  }

  override async execute<T>(fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (this.members.shutOut(this.endpoint)) throw new BrokenCircuitError();
    try {
      return await super.execute(fn, signal);
    } catch (err) {
      if (err instanceof Error && isRecoverableError(err)) this.members.failedOn(this.endpoint);
      throw err;
    }
  }
}

/** One etcd member as this process reaches it: its own client, and how it answered lately. */
export interface Member {
  readonly endpoint: string;
  readonly client: Etcd3;
  /** When a call to it last failed / last succeeded (monotonic ms; -Infinity: never). */
  failedAt: number;
  answeredAt: number;
}

/**
 * The etcd members one by one, for what keeps this host alive in the cluster's eyes: the lease
 * renewal, the heartbeat and the watches. A pooled client picks a member at random and may sit
 * on one that was cut off until its call's deadline (3 s, the whole TTL of a small lease); here
 * each attempt gets a short deadline and the next member is tried at once, the member that
 * answered last first, one that failed lately last.
 *
 * It also builds the pooled client for everything else (`pooled`): a member whose last call
 * here failed is shut out of it (unless all are) until it answers again, so a
 * transaction is not sent to a member known to be silent; a member that failed is asked again
 * every MEMBER_REST_MS.
 *
 * Guarantees: `first` runs an idempotent call on one member after another until one answers,
 * each attempt bounded by its own deadline; a member that failed is passed over for
 * MEMBER_REST_MS unless every member failed.
 */
export class EtcdMembers {
  readonly all: Member[];
  /** The client for every other call: members at random, never one shut out (src/cluster/etcd.ts). */
  readonly pooled: Etcd3;
  private readonly prober: NodeJS.Timeout;

  constructor(access: EtcdAccess) {
    this.pooled = createEtcd(access, 'pooled', (endpoint) => new MemberGate(this, endpoint));
    this.all = access.endpoints.map((endpoint) => ({
      endpoint,
      client: createEtcd({ ...access, endpoints: [endpoint] }, 'single'),
      failedAt: -Infinity,
      answeredAt: -Infinity,
    }));
    this.prober = setInterval(() => void this.probe(), MEMBER_REST_MS);
    this.prober.unref();
  }

  /** Asks each member whose last call failed whether it answers now (a status call, with a leader). */
  private async probe(): Promise<void> {
    for (const m of this.all.filter((x) => x.failedAt > x.answeredAt)) {
      await m.client.maintenance.status({ deadline: new Date(Date.now() + MEMBER_REST_MS / 2) }).then(
        () => this.answered(m),
        () => this.failed(m),
      );
    }
  }

  /** Members best first: resting ones (failed within MEMBER_REST_MS) last; then the one that answered most recently. */
  ordered(): Member[] {
    const now = performance.now();
    const resting = (m: Member) => m.failedAt > m.answeredAt && now - m.failedAt < MEMBER_REST_MS;
    return [...this.all].sort((a, b) => Number(resting(a)) - Number(resting(b)) || b.answeredAt - a.answeredAt);
  }

  failed(m: Member): void {
    m.failedAt = performance.now();
  }

  answered(m: Member): void {
    m.answeredAt = performance.now();
  }

  /** A call through the pooled client to this member failed for want of etcd. */
  failedOn(endpoint: string): void {
    const m = this.all.find((x) => x.endpoint === endpoint);
    if (m) this.failed(m);
  }

  /** Whether the pooled client passes this member over: its last call failed, and some other member's did not. */
  shutOut(endpoint: string): boolean {
    const down = (m: Member) => m.failedAt > m.answeredAt;
    const m = this.all.find((x) => x.endpoint === endpoint);
    return m !== undefined && down(m) && this.all.some((x) => !down(x));
  }

  /**
   * Runs `call` on the best member with `deadline` (epoch ms: now + answerMs), then on the next
   * until one answers; throws the last failure. A refusal that is etcd's answer (no such lease,
   * permission denied) is thrown at once. Only for calls that may safely run twice.
   */
  async first<T>(answerMs: number, call: (client: Etcd3, deadline: Date, member: Member) => Promise<T>): Promise<T> {
    let last: unknown = new Error('no etcd member is configured');
    for (const m of this.ordered()) {
      try {
        // Our own timer too: a member's first call signs in first (its own deadline), and a call
        // on a connection that went silent may not honour its deadline at once.
        let timer: NodeJS.Timeout | undefined;
        const r = await Promise.race([
          call(m.client, new Date(Date.now() + answerMs), m),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new GRPCDeadlineExceededError(`etcd member ${m.endpoint} did not answer within ${answerMs} ms`)), answerMs + 50);
          }),
        ]).finally(() => clearTimeout(timer));
        this.answered(m);
        return r;
      } catch (err) {
        if (!(err instanceof Error) || !isRecoverableError(err)) throw err;
        this.failed(m);
        last = err;
      }
    }
    throw last;
  }

  close(): void {
    clearInterval(this.prober);
    this.pooled.close();
    for (const m of this.all) m.client.close();
  }
}
