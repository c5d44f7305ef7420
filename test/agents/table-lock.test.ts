import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TableLock } from '../../src/agents/table-lock.js';
import { AppError } from '../../src/errors.js';
import { createRedis } from '../../src/redis/client.js';
import { makeKeys } from '../../src/redis/keys.js';
import { REDIS_URL, dropPrefix } from '../helpers/harness.js';

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: unknown) => (err instanceof AppError ? { error: err.error, status: err.statusCode, operation: err.details?.operation } : { error: String(err) }),
  );

describe('TableLock (real Redis)', () => {
  let redis: Redis;
  const keys = makeKeys(`test:${randomBytes(6).toString('hex')}:`);
  let lock: TableLock;
  beforeAll(async () => {
    redis = createRedis(REDIS_URL);
    await redis.connect();
    lock = new TableLock(redis, keys, { leaseMs: 3000, maxHoldMs: 60_000, housekeepingWaitMs: 1500 });
  });
  afterAll(async () => {
    await dropPrefix(redis, keys.prefix);
    redis.disconnect();
  });

  it("refuses a second operation at once with 409 BUSY naming the holder's operation", async () => {
    const release = await lock.acquire('flume-a-b', 'start');
    expect(await refusal(lock.acquire('flume-a-b', 'stop'))).toEqual({ error: 'BUSY', status: 409, operation: 'start' });
    await release();
    const again = await lock.acquire('flume-a-b', 'stop');
    await again();
  });

  it("makes an operation wait for the service's own reconcile of the table, then take it", async () => {
    const release = await lock.acquire('flume-a-c', 'reconcile');
    const order: string[] = [];
    const waiting = lock.run('flume-a-c', 'resume', async () => {
      order.push('resume');
    });
    setTimeout(() => {
      order.push('reconcile done');
      void release();
    }, 300);
    await waiting;
    expect(order).toEqual(['reconcile done', 'resume']);
    expect(await redis.exists(keys.lock('flume-a-c'))).toBe(0);
  });

  it('refuses a second reconcile at once, and an operation once the reconcile outlasts the wait', async () => {
    const release = await lock.acquire('flume-a-d', 'reconcile');
    try {
      expect(await refusal(lock.acquire('flume-a-d', 'reconcile'))).toEqual({ error: 'BUSY', status: 409, operation: 'reconcile' });
      const t0 = Date.now();
      expect(await refusal(lock.acquire('flume-a-d', 'stop'))).toEqual({ error: 'BUSY', status: 409, operation: 'reconcile' });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    } finally {
      await release();
    }
  });
});
