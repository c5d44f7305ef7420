import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { periodic } from '../src/periodic.js';
import { until } from './helpers/wait.js';

/** A job that takes `ms`, yielding to the event loop all along (as real I/O-bound work does). */
async function slowWork(ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) await new Promise((r) => setImmediate(r));
}

describe('periodic jobs', () => {
  it('never overlap themselves, even when a run takes longer than the interval', async () => {
    let active = 0;
    let most = 0;
    let runs = 0;
    const job = periodic(
      'slow',
      5,
      async () => {
        active++;
        most = Math.max(most, active);
        await slowWork(40);
        active--;
        runs++;
      },
      pino({ level: 'silent' }),
    );
    // runNow while a run is under way joins it instead of starting another.
    await Promise.all([job.runNow(), job.runNow(), job.runNow()]);
    await until(() => runs, (n) => n >= 4, 10_000);
    await job.stop();
    const after = runs;
    expect(most).toBe(1);
    expect(runs).toBeGreaterThanOrEqual(4);
    // Stopped means stopped. Evidence: a twin job on the same interval, started now, runs three
    // times, and the stopped one not once meanwhile.
    let twin = 0;
    const clock = periodic('twin', 5, async () => void twin++, pino({ level: 'silent' }));
    await until(() => twin, (n) => n >= 3, 10_000);
    await clock.stop();
    expect(twin).toBeGreaterThanOrEqual(3);
    expect(runs).toBe(after);
  });

  it('keeps running after a failed run', async () => {
    let runs = 0;
    const job = periodic('flaky', 5, async () => {
      runs++;
      if (runs === 1) throw new Error('first run fails');
    }, pino({ level: 'silent' }));
    await job.runNow();
    await until(() => runs, (n) => n >= 3, 10_000);
    await job.stop();
    expect(runs).toBeGreaterThanOrEqual(3);
  });

  it('logs a run of failures once when it begins and once when it ends, with how many failed', async () => {
    const lines: Array<{ level: number; msg: string; failedRuns?: number }> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    let runs = 0;
    const job = periodic('etcd-bound', 1, async () => {
      runs++;
      if (runs <= 50) throw new Error('etcdserver: no leader');
    }, log);
    await until(() => runs, (n) => n >= 55, 10_000, 5);
    await job.stop();
    expect(lines.map((l) => l.msg)).toEqual(['etcd-bound failed (logged again when it works, or each minute it keeps failing)', 'etcd-bound works again']);
    expect(lines[1]!.failedRuns).toBe(50);
  });
});
