import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { EtcdLeaseInvalidError, GRPCDeadlineExceededError, castGrpcError, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { EtcdMembers } from './members.js';

/** A lease is fenced once this share of its TTL passed without a successful renewal. */
export const FENCE_SHARE = 2 / 3;

/** How long one member is given to answer a renewal, a grant or a heartbeat: a sixth of the TTL, within 0.3-2 s. */
export const answerMsFor = (ttlSeconds: number) => Math.min(2000, Math.max(300, (ttlSeconds * 1000) / 6));

/**
 * How often the lease is renewed: a sixth of the TTL (the Go client's third, halved), so that
 * after the last renewal before etcd loses its leader, the 1-2 s etcd takes to elect another
 * rarely outlasts the 2/3 of the TTL after which this host fences itself.
 */
export const renewEveryMs = (ttlSeconds: number) => (ttlSeconds * 1000) / 6;

/** Sends one keepalive for `id` on a member and returns the TTL etcd gave back (0: etcd no longer has the lease). */
async function keepaliveOnce(client: Etcd3, id: string, deadline: Date): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive({ deadline });
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      stream.end(); // etcd ends the call on our end of it: no deadline error follows
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settle();
      reject(new GRPCDeadlineExceededError('the lease renewal got no answer in time'));
    }, Math.max(0, deadline.getTime() - Date.now()));
    stream.on('data', (res) => {
      if (settled) return;
      settle();
      resolve(Number(res.TTL));
    });
    stream.on('error', (err) => {
      if (settled) return;
      settle();
      reject(castGrpcError(err));
    });
    stream.write({ ID: id });
  });
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)).unref());

/**
 * A lease this process holds, with keys bound to it, renewed by its own loop: every TTL/6 a
 * keepalive goes to the member that answered last, with a short deadline (answerMsFor), and to
 * the next member at once when that one does not answer. So a member cut off from the others
 * (or from this host) costs one short wait, never the lease.
 *
 * Events: 'renewed' (a keepalive or grant succeeded), 'fenced' (none for FENCE_SHARE x TTL: act
 * as if the keys were gone), 'unfenced' (renewed again after that), 'regranted' (a new lease
 * after a loss, with the keys put again).
 *
 * Guarantees: `fenced` is judged by this process's monotonic clock, before etcd can have let the
 * lease lapse; a lease etcd no longer has is replaced and its keys put again; failures are
 * retried with backoff and jitter and logged once when they begin (and each minute they last)
 * and once when they end, with how many attempts failed.
 */
export class OwnLease extends EventEmitter {
  private leaseId: string | null = null;
  private keysDue = false;
  private everGranted = false;
  private lastSuccess = performance.now();
  private fencedNow = false;
  private readonly keys = new Map<string, string>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private readonly loop: Promise<void>;
  private wake: (() => void) | null = null;
  private trouble: { since: number; attempts: number; loggedAt: number } | null = null;
  private readonly answerMs: number;

  constructor(
    private readonly members: EtcdMembers,
    readonly ttlSeconds: number,
    private readonly log: Logger,
  ) {
    super();
    this.answerMs = answerMsFor(ttlSeconds);
    this.timer = setInterval(() => this.check(), 250);
    this.timer.unref();
    this.loop = this.run();
  }

  /** Whether this process may act on what its lease stands for. */
  get fenced(): boolean {
    return this.fencedNow;
  }

  /** Seconds since the last successful keepalive (or grant). */
  get ageSeconds(): number {
    return (performance.now() - this.lastSuccess) / 1000;
  }

  /** The lease's id (decimal, as etcd3 gives it); null while there is none. */
  get id(): string | null {
    return this.leaseId;
  }

  /** Waits for the first grant; throws if none came within `ms` (the lease keeps trying until closed). */
  async ready(ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (this.leaseId === null) {
      if (this.closed || performance.now() > until) throw new Error(`etcd granted no lease within ${ms} ms`);
      await pause(50);
    }
  }

  /** Puts `key` bound to the lease (put again after a re-grant); the revision etcd gave it. */
  async put(key: string, value: string): Promise<number> {
    this.keys.set(key, value);
    return this.putOnce(key, value);
  }

  /** Creates `key` bound to the lease only if it does not exist; not put again after a re-grant. */
  async claim(key: string, value: string): Promise<boolean> {
    const id = this.leaseId;
    if (id === null) return false;
    // The pooled client: a transaction must not run twice.
    const etcd = this.members.pooled;
    const r = await etcd.if(key, 'Create', '==', 0).then(etcd.put(key).value(value).lease(id)).commit();
    return r.succeeded;
  }

  /** Stops renewing and revokes the lease (its keys go at once). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.wake?.();
    await this.loop;
    const id = this.leaseId;
    this.leaseId = null;
    if (id !== null) await this.members.first(this.answerMs, (c, deadline) => c.leaseClient.leaseRevoke({ ID: id }, { deadline })).catch(() => undefined);
  }

  private async putOnce(key: string, value: string): Promise<number> {
    const id = this.leaseId;
    if (id === null) throw new EtcdLeaseInvalidError('none yet');
    const r = await this.members.first(this.answerMs, (c, deadline) => c.put(key).value(value).lease(id).options({ deadline }).exec());
    return Number(r.header.revision);
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      const began = performance.now();
      try {
        if (this.leaseId === null) {
          const granted = await this.members.first(this.answerMs, (c, deadline) => c.leaseClient.leaseGrant({ TTL: this.ttlSeconds }, { deadline }));
          if (this.closed) {
            await this.members.first(this.answerMs, (c, deadline) => c.leaseClient.leaseRevoke({ ID: granted.ID }, { deadline })).catch(() => undefined);
            return;
          }
          this.leaseId = granted.ID;
          this.keysDue = this.everGranted;
          this.everGranted = true;
          this.renewed();
        } else if (this.keysDue) {
          for (const [k, v] of this.keys) await this.putOnce(k, v);
          this.keysDue = false;
          this.emit('regranted');
        } else {
          const ttl = await this.members.first(this.answerMs, (c, deadline) => keepaliveOnce(c, this.leaseId!, deadline));
          if (ttl <= 0) throw new EtcdLeaseInvalidError(this.leaseId);
          this.renewed();
        }
        this.recovered();
        if (!this.keysDue) await this.sleep(renewEveryMs(this.ttlSeconds) - (performance.now() - began));
      } catch (err) {
        if (this.closed) return;
        if (err instanceof EtcdLeaseInvalidError && this.leaseId !== null) {
          this.log.warn({ ttlSeconds: this.ttlSeconds }, 'etcd no longer has the lease (it lapsed): taking a new one and putting its keys again');
          this.leaseId = null;
          this.fence();
          continue;
        }
        await this.sleep(this.failed(err as Error));
      }
    }
  }

  /** Counts a failed attempt (logged when trouble begins and each minute it lasts); the pause before the next. */
  private failed(err: Error): number {
    const now = performance.now();
    if (!this.trouble) {
      this.trouble = { since: now, attempts: 0, loggedAt: now };
      this.log.warn({ err: err.message }, 'no etcd member renews the lease: retrying (logged again when it ends)');
    } else if (now - this.trouble.loggedAt > 60_000) {
      this.trouble.loggedAt = now;
      this.log.warn({ err: err.message, attempts: this.trouble.attempts + 1, forSeconds: Math.round((now - this.trouble.since) / 1000) }, 'still no etcd member renews the lease');
    }
    this.trouble.attempts++;
    // 100 ms doubling to 1 s, with jitter: quick while a member is merely cut off, calm while etcd has no quorum.
    const base = Math.min(1000, 100 * 2 ** Math.min(this.trouble.attempts - 1, 4));
    return base / 2 + Math.random() * (base / 2);
  }

  private recovered(): void {
    if (!this.trouble) return;
    this.log.info({ failedAttempts: this.trouble.attempts, forSeconds: Math.round((performance.now() - this.trouble.since) / 100) / 10 }, 'an etcd member renews the lease again');
    this.trouble = null;
  }

  private sleep(ms: number): Promise<void> {
    return Promise.race([pause(ms), new Promise<void>((r) => (this.wake = r))]);
  }

  private renewed(): void {
    this.lastSuccess = performance.now();
    if (this.fencedNow) {
      this.fencedNow = false;
      this.log.info('the etcd lease is renewed again');
      this.emit('unfenced');
    }
    this.emit('renewed');
  }

  private check(): void {
    if (!this.fencedNow && this.ageSeconds > this.ttlSeconds * FENCE_SHARE) this.fence();
  }

  private fence(): void {
    if (this.fencedNow) return;
    this.fencedNow = true;
    this.log.warn({ sinceRenewalSeconds: Math.round(this.ageSeconds * 10) / 10, ttlSeconds: this.ttlSeconds }, 'the etcd lease is not being renewed: fenced');
    this.emit('fenced');
  }
}
