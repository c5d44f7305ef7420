import { describe, expect, it } from 'vitest';
import { assessHealth, FILL_DEGRADED_PERCENT, SINK_STALL_SECONDS, STARTUP_GRACE_SECONDS, type HealthInput } from '../../src/fleet/health.js';
import type { FlumeCounters } from '../../src/resources/agent-status.js';
import type { ProcessInfo, ProcessState } from '../../src/supervisor/driver.js';

const info = (state: ProcessState, uptime = 120): ProcessInfo => ({ name: 'flume-shop-orders', state, pid: 4711, start: 1_000, now: 1_000 + uptime, exitStatus: 0, spawnErr: '', description: 'pid 4711' });
const counters = (c: Partial<FlumeCounters> = {}): FlumeCounters => ({
  eventsReceived: 10, eventsAccepted: 10, eventsDrained: 10, channelSize: 0, channelCapacity: 1000, channelFillPercent: 0,
  sinkConnectionFailures: 0, sinkWriteFailures: 0, channelOpen: true, ...c,
});
const input = (x: Partial<HealthInput> = {}): HealthInput => ({
  desired: 'running', info: info('RUNNING'), probe: 'flume', port: 14000, counters: counters(), sinkStalledSeconds: null, sink: 'kafka', sinkFailingSeconds: null, ...x,
});
const health = (x: Partial<HealthInput>) => assessHealth(input(x));

describe('health', () => {
  it('is healthy only when running, accepting, the channel open and the sink draining', () => {
    expect(health({})).toEqual({ health: 'healthy', reason: 'running, accepting events, sink draining' });
  });

  it('follows the desired state first: stopped when asked and stopped, degraded when asked and still running', () => {
    expect(health({ desired: 'stopped', info: info('STOPPED'), probe: null, counters: null }).health).toBe('stopped');
    expect(health({ desired: 'stopped' })).toMatchObject({ health: 'degraded', reason: expect.stringContaining('asked to stop') });
  });

  it('is down when it should run and does not, saying what supervisord says', () => {
    expect(health({ info: info('BACKOFF'), probe: null })).toMatchObject({ health: 'down', reason: expect.stringContaining('BACKOFF') });
    expect(health({ info: info('FATAL'), probe: null })).toMatchObject({ health: 'down', reason: expect.stringContaining('FATAL') });
    expect(health({ info: null, probe: null, counters: null })).toMatchObject({ health: 'down', reason: expect.stringContaining('NOT_LOADED') });
  });

  it('never trusts RUNNING alone: a port held by another process is down at once, a closed one after the start-up grace', () => {
    expect(health({ probe: 'foreign', info: info('RUNNING', 1) })).toMatchObject({ health: 'down', reason: expect.stringContaining('held by another process') });
    expect(health({ probe: 'closed', info: info('RUNNING', STARTUP_GRACE_SECONDS - 1) }).health).toBe('starting');
    expect(health({ probe: 'closed', info: info('RUNNING', STARTUP_GRACE_SECONDS) })).toMatchObject({ health: 'down', reason: expect.stringContaining('does not accept connections') });
    expect(health({ probe: 'silent', info: info('RUNNING', STARTUP_GRACE_SECONDS) })).toMatchObject({ health: 'down', reason: expect.stringContaining('the JVM hangs') });
    expect(health({ info: info('STARTING', 1) }).health).toBe('starting');
    // A process whose source answered once is past starting: its silence is a hang, not start-up.
    expect(health({ probe: 'closed', info: info('RUNNING', 5), answeredBefore: true }).health).toBe('down');
    expect(health({ probe: 'silent', info: info('RUNNING', 5), answeredBefore: true }).health).toBe('down');
  });

  it("is down when Flume could not open the channel, although the source answers", () => {
    expect(health({ counters: counters({ channelOpen: false }) })).toMatchObject({ health: 'down', reason: expect.stringContaining('file channel') });
  });

  it('degrades on missing metrics, a filling channel, a failing or a stalled sink', () => {
    expect(health({ counters: null }).reason).toMatch(/metrics do not answer/);
    expect(health({ counters: counters({ channelFillPercent: FILL_DEGRADED_PERCENT }) }).reason).toBe('the channel is 80.0% full');
    expect(health({ counters: counters({ channelSize: 5, sinkWriteFailures: 3 }), sinkFailingSeconds: 4 }).reason).toBe(
      'the kafka sink fails to deliver (3 failed writes, the last 4 s ago): 5 events wait in the channel',
    );
    // Failures with nothing waiting are history, not a problem now.
    expect(health({ counters: counters({ sinkWriteFailures: 3 }), sinkFailingSeconds: 4 }).health).toBe('healthy');
    expect(health({ counters: counters({ channelSize: 7 }), sinkStalledSeconds: SINK_STALL_SECONDS - 1 }).health).toBe('healthy');
    expect(health({ counters: counters({ channelSize: 7 }), sinkStalledSeconds: SINK_STALL_SECONDS }).reason).toBe('the kafka sink has drained nothing for 60 s while 7 events wait');
  });
});
