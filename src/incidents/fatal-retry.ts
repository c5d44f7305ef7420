import type { Logger } from 'pino';

/**
 * Starts again an agent that supervisord gave up on (FATAL) while it should run: after
 * `baseSeconds`, doubling per attempt up to 10 minutes, until it runs or is no longer wanted.
 * It is handed what it needs: whether the table should run, a start, supervisord's state, and
 * `raise` (the 'fatal' incident of each attempt).
 *
 * Guarantees: at most one timer per agent (a new FATAL replaces the old timer); `clear` on
 * RUNNING ends the series; `stop` clears every timer; timers never keep the process alive.
 */
export class FatalRetry {
  private readonly retries = new Map<string, { attempt: number; timer: NodeJS.Timeout }>();
  private stopped = false;

  constructor(
    private readonly baseSeconds: number,
    private readonly deps: {
      shouldRun: (program: string) => Promise<boolean>;
      start: (program: string) => Promise<void>;
      isFatal: (program: string) => Promise<boolean>;
      raise: (program: string, attempt: number, delaySeconds: number) => Promise<void>;
    },
    private readonly log: Logger,
  ) {}

  /** The agent went FATAL while it should run: schedules the next attempt and raises it. */
  async onFatal(program: string): Promise<void> {
    const { attempt, delay } = this.schedule(program);
    await this.deps.raise(program, attempt, delay);
  }

  private schedule(program: string): { attempt: number; delay: number } {
    const prev = this.retries.get(program);
    const attempt = (prev?.attempt ?? 0) + 1;
    const delay = Math.min(600, this.baseSeconds * 2 ** (attempt - 1));
    if (prev) clearTimeout(prev.timer);
    const timer = setTimeout(() => void this.retry(program), delay * 1000);
    timer.unref();
    this.retries.set(program, { attempt, timer });
    return { attempt, delay };
  }

  has(program: string): boolean {
    return this.retries.has(program);
  }

  /** The agent runs again: ends its series. Returns whether a retry series was open. */
  clear(program: string): boolean {
    const r = this.retries.get(program);
    if (r) clearTimeout(r.timer);
    return this.retries.delete(program);
  }

  stop(): void {
    this.stopped = true;
    for (const r of this.retries.values()) clearTimeout(r.timer);
    this.retries.clear();
  }

  private async retry(program: string): Promise<void> {
    if (this.stopped) return;
    if (!(await this.deps.shouldRun(program))) {
      this.retries.delete(program);
      return;
    }
    try {
      await this.deps.start(program);
      this.log.info({ program }, 'restarted an agent that was FATAL');
    } catch (err) {
      // A failed start ends in FATAL again, and that event schedules the next attempt.
      this.log.warn({ program, err: (err as Error).message }, 'retry of a FATAL agent failed');
      if (!(await this.deps.isFatal(program))) await this.onFatal(program);
    }
  }
}
