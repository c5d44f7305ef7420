import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { AppError, invalidRequest } from '../../src/errors.js';
import { classifyRedisError, redisCall } from '../../src/redis/client.js';

const reply = (message: string) => new (ReplyError as unknown as new (m: string) => Error)(message);

describe('redisCall', () => {
  it('answers 503 REDIS_UNAVAILABLE when Redis does not answer, keeping the cause', async () => {
    const cause = new Error('Connection is closed.');
    const err = (await redisCall(() => Promise.reject(cause)).catch((e: unknown) => e)) as AppError;
    expect(err).toMatchObject({ statusCode: 503, error: 'REDIS_UNAVAILABLE', message: 'Redis did not answer: Connection is closed.' });
    expect(err.cause).toBe(cause);
  });

  it('counts the refusals that pass as transient, others as a fault (500) that says no more than their kind', async () => {
    for (const m of ['LOADING Redis is loading the dataset in memory', 'OOM command not allowed', 'NOAUTH Authentication required.', 'READONLY You can\'t write against a read only replica.']) {
      expect(classifyRedisError(reply(m))).toBe('transient');
    }
    const wrong = reply('WRONGTYPE Operation against a key holding the wrong kind of value');
    expect(classifyRedisError(wrong)).toBe('terminal');
    const err = (await redisCall(() => Promise.reject(wrong)).catch((e: unknown) => e)) as AppError;
    expect(err).toMatchObject({ statusCode: 500, error: 'INTERNAL' });
    expect(err.message).not.toContain('wrong kind');
    expect(err.cause).toBe(wrong);
  });

  it('lets errors of our own through as they are', async () => {
    const ours = invalidRequest('no');
    expect(classifyRedisError(ours)).toBe('ours');
    await expect(redisCall(() => Promise.reject(ours))).rejects.toBe(ours);
  });
});
