import { EventEmitter } from 'node:events';
import type { QueuePlace } from '../resources/agent-status.js';

export type { QueuePlace };

/**
 * The host's JVM starts, at most `concurrency` at a time, the rest in arrival order: every
 * start of an agent (create, start, restart, bulk, config changes, the service's own restarts)
 * runs its start phase through it, so callers' concurrency never decides how many JVMs fight
 * over the cores.
 *
 * Guarantees: FIFO; a slot is handed straight to the next waiter (no newcomer overtakes one
 * that waits); a start that throws frees its slot; nothing but starts waits here (stops, status
 * and listings never do). Emits 'change' whenever the waiting line moves.
 */
export class StartQueue extends EventEmitter {
  private running = 0;
  private readonly line: Array<{ program: string; go: () => void }> = [];

  constructor(readonly concurrency: number) {
    super();
    this.setMaxListeners(0);
  }

  /** Runs `start` once a slot is free; its own time (the readiness deadline) begins then. */
  async run<T>(program: string, start: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency && this.line.length === 0) {
      this.running++;
    } else {
      await new Promise<void>((go) => {
        this.line.push({ program, go });
        this.emit('change');
      });
    }
    try {
      return await start();
    } finally {
      const next = this.line.shift();
      if (next) {
        next.go(); // the slot passes on: `running` stays as it is
        this.emit('change');
      } else {
        this.running--;
      }
    }
  }

  /** The table's place while it waits; null when it is not waiting (starting, or not queued at all). */
  place(program: string): QueuePlace | null {
    const i = this.line.findIndex((w) => w.program === program);
    return i < 0 ? null : { position: i + 1, waiting: this.line.length, concurrency: this.concurrency };
  }

  get stats(): { starting: number; waiting: number; concurrency: number } {
    return { starting: this.running, waiting: this.line.length, concurrency: this.concurrency };
  }
}
