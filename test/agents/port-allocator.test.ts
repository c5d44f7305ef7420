import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortAllocator, ephemeralPortRange } from '../../src/agents/port-allocator.js';
import { AppError } from '../../src/errors.js';
import { createRedis } from '../../src/redis/client.js';
import { makeKeys } from '../../src/redis/keys.js';
import { REDIS_URL, dropPrefix } from '../helpers/harness.js';

describe('PortAllocator (real Redis, real sockets)', () => {
  let redis: Redis;
  const keys = makeKeys(`test:${randomBytes(6).toString('hex')}:`);
  beforeAll(async () => {
    redis = createRedis(REDIS_URL);
    await redis.connect();
  });
  afterAll(async () => {
    await dropPrefix(redis, keys.prefix);
    redis.disconnect();
  });

  it('never hands the same port to two concurrent callers, across allocator instances', async () => {
    const a = new PortAllocator(redis, keys, [31000, 31199]);
    const b = new PortAllocator(redis, keys, [31000, 31199]);
    const ports = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).allocate(`owner-${i}`)),
    );
    expect(new Set(ports).size).toBe(60);
    const table = await redis.hgetall(keys.ports());
    expect(Object.keys(table)).toHaveLength(60);
    ports.forEach((p, i) => expect(table[String(p)]).toBe(`owner-${i}`));
  });

  it('skips a port something on the host already listens on', async () => {
    const srv: Server = createServer();
    await new Promise<void>((r) => srv.listen(31300, '127.0.0.1', r));
    try {
      const alloc = new PortAllocator(redis, keys, [31300, 31301]);
      expect(await alloc.allocate('x')).toBe(31301);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it('releases only for the owner, and reuses a released port', async () => {
    const alloc = new PortAllocator(redis, keys, [31400, 31400]);
    const port = await alloc.allocate('owner-a');
    await alloc.release(port, 'owner-b');
    expect(await alloc.holder(port)).toBe('owner-a');
    await alloc.release(port, 'owner-a');
    expect(await alloc.holder(port)).toBeNull();
    expect(await alloc.allocate('owner-c')).toBe(port);
  });

  it('says NO_FREE_PORT (503) when the range is used up', async () => {
    const alloc = new PortAllocator(redis, keys, [31500, 31500]);
    await alloc.allocate('first');
    const err = await alloc.allocate('second').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).error).toBe('NO_FREE_PORT');
    expect((err as AppError).statusCode).toBe(503);
  });
  it('never hands out a port of the kernel\'s ephemeral range, which an outgoing connection could take before the agent binds it', async () => {
    const alloc = new PortAllocator(redis, keys, [31600, 31609], async () => new Map(), [31601, 31608]);
    expect(alloc.usable()).toEqual({ count: 2, skipped: [31601, 31608] });
    const got = [await alloc.allocate('x'), await alloc.allocate('y')].sort();
    expect(got).toEqual([31600, 31609]);
    await expect(alloc.allocate('z')).rejects.toMatchObject({ error: 'NO_FREE_PORT', message: expect.stringContaining("31601-31608 is skipped: the kernel's ephemeral range") });
    expect(ephemeralPortRange('/proc/sys/net/ipv4/ip_local_port_range')).toEqual([expect.any(Number), expect.any(Number)]);
    expect(ephemeralPortRange('/nonexistent')).toBeNull();
  });
});
