import { describe, expect, it } from 'vitest';
import { MAX_RETRY_SECONDS, STALLED_RETRY_SECONDS, channelRetryAfter } from '../../src/agents/retry-hints.js';
import type { AgentStatus } from '../../src/resources/agent-status.js';

const at = (fill: number, outPerSecond: number | null, capacity = 100_000): Pick<AgentStatus, 'metrics' | 'rates'> => ({
  metrics: {
    eventsReceived: 0, eventsAccepted: 0, eventsDrained: 0, channelSize: (capacity * fill) / 100, channelCapacity: capacity, channelFillPercent: fill,
    sinkConnectionFailures: 0, sinkWriteFailures: 0, channelOpen: true, lastEventAt: null, lastEventAgeSeconds: null, oldestEventAgeSeconds: null, channelFullInSeconds: null,
  },
  rates: outPerSecond === null ? null : { inPerSecond: 0, outPerSecond },
});

describe("a full channel's Retry-After", () => {
  it('is the time the sink needs to free a hundredth of the channel at its drain rate, within 1 s and 5 min', () => {
    expect(channelRetryAfter(at(100, 100))).toBe(10); // 1,000 events at 100/s
    expect(channelRetryAfter(at(95, 5000))).toBe(1);
    expect(channelRetryAfter(at(100, 1))).toBe(MAX_RETRY_SECONDS);
  });

  it('is a minute while nothing drains, and none below 90 % (a batch over transactionCapacity, not a full channel)', () => {
    expect(channelRetryAfter(at(100, 0))).toBe(STALLED_RETRY_SECONDS);
    expect(channelRetryAfter(at(100, null))).toBe(STALLED_RETRY_SECONDS);
    expect(channelRetryAfter(at(89, 0))).toBeNull();
    expect(channelRetryAfter({ metrics: null, rates: null })).toBeNull();
  });
});
