import { describe, expect, it } from 'vitest';
import { parseSample, parseTraceValue, takenBy } from '../../src/traces/trace-store.js';

// The same cases as test/gateway/lua/sink_ack_spec.lua ("taken"): the API tells by when, the
// gateway answers by the same rule.
const s = (at: number, start: number, take: number) => ({ at, start, take });

describe('takenBy', () => {
  it('is the first sample whose takes pass what was replayed and put up to the request', () => {
    const mark = { start: 1, need: 25, seen: 3 };
    expect(takenBy(mark, [s(10, 1, 3), s(20, 1, 24), s(30, 1, 25), s(40, 1, 99)])).toBe(30);
    expect(takenBy(mark, [s(10, 1, 24)])).toBeNull();
    expect(takenBy(mark, [])).toBeNull();
  });
  it('after a restart, waits for what was left: the new JVM counts from 0', () => {
    expect(takenBy({ start: 1, need: 100, seen: 40 }, [s(10, 1, 70), s(20, 2, 29), s(30, 2, 30)])).toBe(30);
  });
  it('counts every restart it sees, and never answers early for one it missed', () => {
    // Unseen: the old JVM took 5 more before it died; the new one's 10 takes cover the 10 left.
    expect(takenBy({ start: 1, need: 100, seen: 90 }, [s(10, 2, 10)])).toBe(10);
    expect(takenBy({ start: 1, need: 100, seen: 90 }, [s(10, 2, 4), s(20, 3, 5), s(30, 3, 6)])).toBe(30);
    expect(takenBy({ start: 1, need: 100, seen: 90 }, [s(10, 2, 4), s(20, 3, 5)])).toBeNull();
  });
});

describe('parseSample', () => {
  it('reads what the gateway writes and nothing else', () => {
    expect(parseSample('1700000000123:1699999999000:42')).toEqual({ at: 1700000000123, start: 1699999999000, take: 42 });
    for (const bad of ['', '1:2', 'a:b:c', '1:2:3:4', '-1:2:3']) expect(parseSample(bad)).toBeNull();
  });
});

describe('parseTraceValue', () => {
  it('reads what the gateway writes: with the mark and t2, with the mark only, with neither', () => {
    expect(parseTraceValue('1000,1004,3,sink,900,12,5,1019')).toEqual({ acceptedAt: 1000, committedAt: 1004, events: 3, ack: 'sink', mark: { start: 900, need: 12, seen: 5 }, takenAt: 1019 });
    expect(parseTraceValue('1000,1004,1,channel,900,12,5,')).toMatchObject({ mark: { start: 900, need: 12, seen: 5 }, takenAt: null });
    expect(parseTraceValue('1000,1004,1,sink,,,,')).toMatchObject({ ack: 'sink', mark: null, takenAt: null });
  });
  it('believes nothing else', () => {
    for (const bad of ['', '1,2,3', '1000,1004,1,disk,,,,', '1000,1004,1,sink,900,,5,', 'a,1004,1,sink,,,,', '1000,1004,1,sink,,,,x', '1000,1004,1,sink,,,,,']) {
      expect(parseTraceValue(bad), bad).toBeNull();
    }
  });
});
