import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError, busy } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';

// KEYS[1] lock key; ARGV[1] the holder's value. Deletes the lock only if we still hold it. 1 or 0.
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

// KEYS[1] lock key; ARGV[1] the holder's value; ARGV[2] lease ms. Extends the lease only if we
// still hold it. Returns 1, or 0 when the lock is gone or someone else's.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * The service's own brief housekeeping of a table (src/recovery/reconciler.ts: a route that
 * follows readiness, a half-created agent tidied): a caller's operation waits for it rather than
 * being refused for work it did not ask for.
 */
const HOUSEKEEPING = 'reconcile';
/** The longest a caller waits for housekeeping before it is told BUSY like any other holder. */
export const HOUSEKEEPING_WAIT_MS = 15_000;
const HOUSEKEEPING_POLL_MS = 100;

/** Who holds a table, as a 409 BUSY tells it. */
export interface LockHolder {
  operation: string;
  since: string;
  host: string;
  pid: number;
}

export interface TableLockOptions {
  /** How long a lock outlives its holder: a crashed process blocks the table at most this long. */
  leaseMs: number;
  /** The longest an operation may hold a table: past it the lease is no longer extended. */
  maxHoldMs: number;
  /** How long an operation waits for the service's housekeeping of the table (HOUSEKEEPING_WAIT_MS). */
  housekeepingWaitMs?: number;
}

/**
 * One operation per table at a time, across every API process sharing the Redis.
 *
 * Guarantees:
 * - a second caller does not wait: it gets 409 BUSY at once, naming the operation that holds
 *   the table and since when; except behind the service's own housekeeping, which is short: an
 *   operation waits for it (`housekeepingWaitMs` at most), another housekeeping pass does not;
 * - the lock is a short lease (`leaseMs`) that its holder extends while the operation runs, so
 *   an operation may run as long as it needs (a slow JVM start), yet a process that died (kill
 *   -9) stops blocking the table within one lease;
 * - an operation that hangs past `maxHoldMs` stops extending its lease and so loses the lock;
 * - release deletes the lock only if this holder still has it (a value check in Lua).
 */
export class TableLock {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly opts: TableLockOptions,
    private readonly log?: Logger,
  ) {}

  async run<T>(program: string, operation: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(program, operation);
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  /** Takes the table (409 BUSY if held) and returns its release; prefer run() for one table. */
  async acquire(program: string, operation: string): Promise<() => Promise<void>> {
    const deadline = Date.now() + (this.opts.housekeepingWaitMs ?? HOUSEKEEPING_WAIT_MS);
    for (;;) {
      try {
        return await this.take(program, operation);
      } catch (err) {
        const behindHousekeeping = err instanceof AppError && err.details?.operation === HOUSEKEEPING && operation !== HOUSEKEEPING;
        if (!behindHousekeeping || Date.now() > deadline) throw err;
        await sleep(HOUSEKEEPING_POLL_MS);
      }
    }
  }

  private async take(program: string, operation: string): Promise<() => Promise<void>> {
    const key = this.keys.lock(program);
    const holder: LockHolder & { id: string } = { id: randomUUID(), operation, since: new Date().toISOString(), host: hostname(), pid: process.pid };
    const value = JSON.stringify(holder);
    const take = () => redisCall(() => this.redis.set(key, value, 'PX', this.opts.leaseMs, 'NX'));
    let ok = await take();
    // Held a moment ago but free now (its operation ended between the two calls): take it, once.
    const held = ok === 'OK' ? null : await this.holder(program);
    if (ok !== 'OK' && held === null) ok = await take();
    if (ok !== 'OK') {
      // Retry-After: what is left of the holder's lease (it renews it while it works; a dead holder's ends then).
      const left = await this.redis.pttl(key).catch(() => -1);
      throw busy(program, held ?? (await this.holder(program)), left > 0 ? Math.max(1, Math.ceil(left / 1000)) : 1);
    }
    const until = Date.now() + this.opts.maxHoldMs;
    const renew = setInterval(() => {
      if (Date.now() > until) {
        clearInterval(renew);
        this.log?.error({ program, operation }, 'operation exceeded its deadline; its table lock is no longer extended');
        return;
      }
      this.redis.eval(RENEW, 1, key, value, this.opts.leaseMs).catch(() => undefined);
    }, Math.max(200, Math.floor(this.opts.leaseMs / 3)));
    renew.unref();
    return async () => {
      clearInterval(renew);
      await this.redis.eval(UNLOCK, 1, key, value).catch(() => undefined);
    };
  }

  /** Who holds the table now; null if nobody (or the lock expired meanwhile). */
  async holder(program: string): Promise<LockHolder | null> {
    const raw = await this.redis.get(this.keys.lock(program)).catch(() => null);
    if (!raw) return null;
    try {
      const { operation, since, host, pid } = JSON.parse(raw) as LockHolder;
      return { operation, since, host, pid };
    } catch {
      return { operation: 'unknown', since: '', host: '', pid: 0 };
    }
  }

  /** True while an operation holds the table. */
  async busy(program: string): Promise<boolean> {
    return (await redisCall(() => this.redis.exists(this.keys.lock(program)))) === 1;
  }
}
