import pLimit from 'p-limit';
import type { Config } from '../config.js';
import { AppError, agentNotFound } from '../errors.js';
import type { TableOutcome } from '../resources/operation.js';
import { programName, type TableRef } from '../resources/table.js';
import type { AgentMeta, AgentStore } from '../store/agent-store.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import type { AgentService } from './agent-service.js';
import { programFor } from './launch.js';
import type { RouteTable } from './route-table.js';
import type { TableLock } from './table-lock.js';
import type { HostParts } from './host-parts.js';

/** Hears each table's outcome as soon as it is known. */
export type OutcomeSink = (ref: TableRef, o: TableOutcome) => void;

/** A failed table's outcome: the error's stable name (BUSY, AGENT_START_FAILED, ...) and message. */
export const failure = (err: unknown): TableOutcome => ({
  outcome: 'failed',
  code: err instanceof AppError ? err.error : 'INTERNAL',
  message: err instanceof Error ? err.message : String(err),
});

/** fn, run at most once (later calls get the first call's promise). */
const once = <T>(fn: () => Promise<T>) => {
  let p: Promise<T> | null = null;
  return () => (p ??= fn());
};

/**
 * Lifecycle over many tables at once, cheaper than one call per table: one supervisord re-read
 * for a batch of stops, all stops before any start.
 *
 * Guarantees: every table's lock is held while it is acted on (a busy table is reported failed,
 * BUSY, and left alone); one table's failure never stops the others; each table's outcome is
 * reported exactly once.
 */
export class AgentBatch {
  private readonly cfg: Config;
  private readonly store: AgentStore;
  private readonly routes: RouteTable;
  private readonly lock: TableLock;
  private readonly driver: SupervisorDriver;

  constructor(
    parts: HostParts,
    private readonly agents: AgentService,
  ) {
    ({ cfg: this.cfg, store: this.store, routes: this.routes, lock: this.lock, driver: this.driver } = parts);
  }

  /**
   * Stops many agents as one batch: every table's lock, routes withdrawn, program files
   * written stopped, one supervisord re-read, then the processes stopped `concurrency` at a
   * time (each checkpoints its channel).
   */
  async stopMany(refs: TableRef[], concurrency: number, done: OutcomeSink): Promise<void> {
    const held = await this.holdMany(refs, 'stop', done);
    try {
      await Promise.all(held.map(({ meta }) => this.routes.withdraw(meta)));
      await Promise.all(held.map(({ meta }) => this.store.writeProgram(meta.program, programFor(this.cfg, meta, false))));
      const results = await this.driver.updateMany(held.map((h) => h.meta.program), concurrency);
      await Promise.all(
        held.map(async ({ meta }) => {
          const r = results.get(meta.program);
          if (r instanceof Error) done(meta, failure(r));
          else done(meta, { outcome: 'applied', code: null, message: `${meta.program}: ${(await this.agents.observed(meta.program)).state}` });
        }),
      );
    } finally {
      await Promise.all(held.map((h) => h.release()));
    }
  }

  /**
   * Restarts many agents, `concurrency` at a time, each as one restart is (behind a stand-in
   * where it runs: its senders are not refused); each table's lock is released as soon as its
   * own restart ended.
   */
  async restartMany(refs: TableRef[], concurrency: number, done: OutcomeSink): Promise<void> {
    const held = (await this.holdMany(refs, 'restart', done)).map((h) => ({ ...h, release: once(h.release) }));
    try {
      const limit = pLimit(Math.max(1, concurrency));
      await Promise.all(
        held.map(({ meta, release }) =>
          limit(async () => {
            try {
              await this.agents.restartHeld(meta);
              done(meta, { outcome: 'applied', code: null, message: `${meta.program}: ${(await this.agents.observed(meta.program)).state}` });
            } catch (e) {
              done(meta, failure(e));
            } finally {
              await release();
            }
          }),
        ),
      );
    } finally {
      await Promise.all(held.map((h) => h.release()));
    }
  }

  /** Takes each table's lock and reads its metadata; a busy or unknown table is reported failed. */
  private async holdMany(refs: TableRef[], operation: string, done: OutcomeSink) {
    const held: Array<{ meta: AgentMeta; release: () => Promise<void> }> = [];
    await Promise.all(
      refs.map(async (ref) => {
        const program = programName(ref);
        try {
          const release = await this.lock.acquire(program, operation);
          const meta = await this.store.readMeta(program);
          if (meta) return held.push({ meta, release });
          await release();
          done(ref, failure(agentNotFound(program)));
        } catch (err) {
          done(ref, failure(err));
        }
      }),
    );
    return held;
  }
}
