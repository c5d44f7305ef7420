import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import type { ClusterKeys } from '../cluster/keys.js';
import { AppError } from '../errors.js';
import { periodic, type Periodic } from '../periodic.js';
import type { AgentStatus } from '../resources/agent-status.js';
import { programName } from '../resources/table.js';
import { holder, type TableEntry, type TablesView } from './tables-view.js';

/** How often the agents of tables this host no longer owns are looked at. */
export const DRAIN_CHECK_MS = 2000;

/**
 * Drain-only agents: the agents this host runs for tables another host took over (a move, or
 * a host that comes back to find its tables moved). Such an agent takes no events (the route
 * is the new owner's, RouteTable.elsewhere), runs until Flume's file channel has replayed into
 * its sink (it is started if it is not running), is removed once empty, and then this host's
 * entry in the table's stranded record is cleared.
 *
 * Guarantees: an agent is removed only after it reported an empty channel while running, and
 * its removal keeps the channel should an event have slipped in meanwhile (then the stranded
 * record stays and the log says where); one table at a time; nothing here writes a route; a
 * table busy with another operation is left for the next look.
 */
export class Drainer {
  private job: Periodic | null = null;
  private readonly told = new Set<string>();

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: ClusterKeys,
    private readonly view: TablesView,
    private readonly node: string,
    private readonly agents: AgentService,
    /** Whether this host has the agent on disk (its metadata): a stranded entry without one is stale. */
    private readonly hasAgent: (program: string) => boolean,
    /** Called after an agent went: the remote routes put the table's route back at once. */
    private readonly removed: () => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.job = periodic('drain-only agents', DRAIN_CHECK_MS, () => this.check(), this.log);
  }

  async stop(): Promise<void> {
    await this.job?.stop();
  }

  /** Whether this host's agent of the table only drains (another host takes its events). */
  drainOnly(e: TableEntry | undefined): boolean {
    if (!e || e.owner === this.node) return false;
    const h = holder(e);
    return h !== this.node && (h !== null || e.stranded[this.node] !== undefined);
  }

  private async check(): Promise<void> {
    for (const s of this.agents.list()) {
      const e = this.view.get(s.db, s.table);
      if (!this.drainOnly(e)) continue;
      await this.drain(s, e!).catch((err: unknown) => this.log.warn({ err, program: s.program }, 'draining a handed-over agent failed; retrying'));
    }
    // An entry naming this host for an agent it no longer has (removed, then the clear failed).
    for (const e of this.view.all()) {
      if (e.stranded[this.node] && !this.hasAgent(programName(e)) && holder(e) !== this.node) await this.clearStranded(e.db, e.table);
    }
  }

  private async drain(s: AgentStatus, e: TableEntry): Promise<void> {
    const log = this.log.child({ program: s.program, owner: e.owner });
    const ref = { db: s.db, table: s.table };
    if (!this.told.has(s.program)) {
      this.told.add(s.program);
      log.warn({ state: s.state, events: s.metrics?.channelSize ?? null }, 'another host takes this table now: this agent only drains its channel into its sink, then goes');
    }
    if (s.state === 'RUNNING' && s.drained === true) {
      const r = await this.agents.delete(ref, false).catch((err: unknown) => {
        if (err instanceof AppError && err.error === 'BUSY') return null;
        throw err;
      });
      if (!r) return;
      this.removed();
      this.told.delete(s.program);
      if (r.channel === 'kept') {
        log.error({ queuedEvents: r.queuedEvents, keptPath: r.keptPath }, 'events reached the channel while the drained agent was removed: the channel is kept; create the table here again to deliver them');
        return;
      }
      log.info('drained into its sink and removed');
      await this.clearStranded(s.db, s.table);
      return;
    }
    // Stopped, crashed, or never started since this host came back: run it so its channel replays.
    if (!['RUNNING', 'STARTING', 'BACKOFF'].includes(s.state)) {
      log.info({ state: s.state }, 'starting the agent to drain its channel');
      await this.agents.start(ref).catch((err: unknown) => {
        if (!(err instanceof AppError && err.error === 'BUSY')) throw err;
      });
    }
  }

  /** Removes this host's entry from the table's stranded record (compare-and-set, retried). */
  private async clearStranded(db: string, table: string): Promise<void> {
    const key = this.keys.table(db, table, 'stranded');
    for (let attempt = 0; attempt < 10; attempt++) {
      const e = this.view.get(db, table);
      if (!e?.stranded[this.node]) return;
      const rest = { ...e.stranded };
      delete rest[this.node];
      const r = await this.etcd
        .if(key, 'Mod', '==', e.strandedRevision)
        .then(Object.keys(rest).length ? this.etcd.put(key).value(JSON.stringify(rest)) : this.etcd.delete().key(key))
        .commit();
      if (r.succeeded) return;
      await sleep(200); // the view catches up with the write that won
    }
  }
}
