import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FatalRetry } from '../../src/incidents/fatal-retry.js';

const log = pino({ level: 'silent' });

describe('FatalRetry', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const make = (over: Partial<{ shouldRun: boolean; startFails: boolean; fatal: boolean }> = {}) => {
    const calls = { starts: 0, raised: [] as Array<[number, number]> };
    const retry = new FatalRetry(5, {
      shouldRun: async () => over.shouldRun ?? true,
      start: async () => {
        calls.starts++;
        if (over.startFails) throw new Error('spawn error');
      },
      isFatal: async () => over.fatal ?? false,
      raise: async (_p, attempt, delay) => void calls.raised.push([attempt, delay]),
    }, log);
    return { retry, calls };
  };

  it('doubles the wait per attempt, up to ten minutes', async () => {
    const { retry, calls } = make();
    for (let i = 0; i < 9; i++) await retry.onFatal('flume-a-b');
    expect(calls.raised.map(([, d]) => d)).toEqual([5, 10, 20, 40, 80, 160, 320, 600, 600]);
    expect(calls.raised.map(([a]) => a)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('keeps one timer per agent: the start comes once, after the latest wait', async () => {
    const { retry, calls } = make();
    await retry.onFatal('flume-a-b');
    await retry.onFatal('flume-a-b');
    await vi.advanceTimersByTimeAsync(9_999);
    expect(calls.starts).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls.starts).toBe(1);
  });

  it('ends the series when the agent runs again, or is no longer wanted, or on stop', async () => {
    const running = make();
    await running.retry.onFatal('flume-a-b');
    expect(running.retry.clear('flume-a-b')).toBe(true);
    expect(running.retry.clear('flume-a-b')).toBe(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(running.calls.starts).toBe(0);

    const unwanted = make({ shouldRun: false });
    await unwanted.retry.onFatal('flume-a-b');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(unwanted.calls.starts).toBe(0);
    expect(unwanted.retry.has('flume-a-b')).toBe(false);

    const stopped = make();
    await stopped.retry.onFatal('flume-a-b');
    stopped.retry.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(stopped.calls.starts).toBe(0);
  });

  it('schedules the next attempt itself when a start fails without a FATAL event', async () => {
    const { retry, calls } = make({ startFails: true, fatal: false });
    await retry.onFatal('flume-a-b');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(calls.starts).toBe(1);
    expect(calls.raised).toEqual([[1, 5], [2, 10]]);
  });
});
