import type { Logger } from 'pino';

/** A background job that can be stopped, and awaited while it finishes its current run. */
export interface Periodic {
  /** Runs the job now (unless a run is under way, which it then waits for). */
  runNow(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Runs `job` every `intervalMs`, never overlapping itself: the next run is scheduled only once
 * the current one has finished, however long it took. A failed run is logged, not fatal.
 */
export function periodic(name: string, intervalMs: number, job: () => Promise<unknown>, log: Logger): Periodic {
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<void> | null = null;
  let stopped = false;
  const run = (): Promise<void> => {
    if (current) return current;
    if (timer) clearTimeout(timer);
    timer = null;
    current = (async () => {
      try {
        await job();
      } catch (err) {
        log.warn({ err, job: name }, `${name} failed`);
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
