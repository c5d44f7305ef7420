import type { Logger } from 'pino';

/** A background job that can be stopped, and awaited while it finishes its current run. */
export interface Periodic {
  /** Runs the job now (unless a run is under way, which it then waits for). */
  runNow(): Promise<void>;
  stop(): Promise<void>;
}

/** While runs keep failing, how often the failure is logged again (with the count so far). */
export const FAILING_LOG_EVERY_MS = 60_000;

/**
 * Runs `job` every `intervalMs`, never overlapping itself: the next run is scheduled only once
 * the current one has finished, however long it took. A failed run is not fatal, and failures
 * are logged once per episode: the first (with its error), again each FAILING_LOG_EVERY_MS they
 * last (with how many), and once when a run works again.
 */
export function periodic(name: string, intervalMs: number, job: () => Promise<unknown>, log: Logger): Periodic {
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<void> | null = null;
  let stopped = false;
  let failing: { since: number; runs: number; loggedAt: number } | null = null;
  const run = (): Promise<void> => {
    if (current) return current;
    if (timer) clearTimeout(timer);
    timer = null;
    current = (async () => {
      try {
        await job();
        if (failing) log.info({ job: name, failedRuns: failing.runs, forSeconds: Math.round((Date.now() - failing.since) / 1000) }, `${name} works again`);
        failing = null;
      } catch (err) {
        const now = Date.now();
        if (!failing) {
          failing = { since: now, runs: 0, loggedAt: now };
          log.warn({ err, job: name }, `${name} failed (logged again when it works, or each minute it keeps failing)`);
        } else if (now - failing.loggedAt >= FAILING_LOG_EVERY_MS) {
          failing.loggedAt = now;
          log.warn({ err, job: name, failedRuns: failing.runs + 1, forSeconds: Math.round((now - failing.since) / 1000) }, `${name} still fails`);
        }
        failing.runs++;
      } finally {
        current = null;
        if (!stopped) {
          timer = setTimeout(() => void run(), intervalMs);
          timer.unref();
        }
      }
    })();
    return current;
  };
  timer = setTimeout(() => void run(), intervalMs);
  timer.unref();
  return {
    runNow: run,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await current;
    },
  };
}
