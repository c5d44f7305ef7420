import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { busy } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';

// KEYS[1] lock key; ARGV[1] token. Deletes the lock only if we still hold it. Returns 1 or 0.
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * One operation per table at a time, across every API process sharing the Redis.
 * A second caller does not wait: it gets 409 BUSY at once. The lock expires after `ttlMs`
 * so a crashed process cannot hold a table forever.
 */
export class TableLock {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly ttlMs: number,
  ) {}

  async run<T>(program: string, fn: () => Promise<T>): Promise<T> {
    const key = this.keys.lock(program);
    const token = randomUUID();
    const ok = await redisCall(() => this.redis.set(key, token, 'PX', this.ttlMs, 'NX'));
    if (ok !== 'OK') throw busy(program);
    try {
      return await fn();
    } finally {
      await this.redis.eval(UNLOCK, 1, key, token).catch(() => undefined);
    }
  }
}
