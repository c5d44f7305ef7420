import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import type { ClusterKeys } from '../cluster/keys.js';
import { AppError, asAppError, errorBody } from '../errors.js';
import { periodic, type Periodic } from '../periodic.js';
import { stableDigest, type AgentStatus, type DeleteResult } from '../resources/agent-status.js';
import { programName } from '../resources/table.js';
import type { DesiredRecord, StatusRecord } from './records.js';
import type { TableEntry, TablesView } from './tables-view.js';

/** How often the owner compares its tables' statuses with what it last wrote to etcd. */
export const STATUS_PUBLISH_MS = 250;

/**
 * The owner's side: runs on its host what etcd asks of the tables it owns, and writes back what
 * it did and what it observes.
 *
 * Guarantees:
 * - each request (`desired.requestId`) is carried out at most once per process and answered
 *   once in `status`; one table's operations run one at a time, in generation order; a request
 *   left unanswered by a host that died is carried out when it comes back (its view is read
 *   again in full at start);
 * - every write is conditional on this host still owning the table (its owner key, as of the
 *   epoch it acted for): a host that lost a table writes nothing for it;
 * - a create that failed leaves no owner behind (the table can be created again, anywhere);
 *   a delete removes the owner and desired keys once the agent is gone;
 * - a status change of an owned table reaches etcd within STATUS_PUBLISH_MS (plus the write).
 */
export class TableOwner {
  private readonly busy = new Map<string, Promise<void>>();
  private readonly answered = new Set<string>();
  private readonly published = new Map<string, string>();
  private readonly specRevision = new Map<string, number>();
  private publisher: Periodic | null = null;
  private readonly onChange = (e: TableEntry) => this.consider(e);
  private readonly onReset = () => {
    for (const e of this.view.all()) this.consider(e);
  };

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: ClusterKeys,
    private readonly view: TablesView,
    private readonly node: string,
    private readonly agents: AgentService,
    /** The table's spec as this host's disk has it (null: no agent). */
    private readonly specOf: (program: string) => Promise<{ revision: number; spec: unknown } | null>,
    private readonly log: Logger,
  ) {}

  /**
   * Puts the tables this host runs that etcd does not know (a single host joining a cluster)
   * into etcd as owned here, each in one transaction (only where no owner is set). A table etcd
   * gives to another host is logged: two hosts run it, an operator must delete one.
   */
  async register(): Promise<string[]> {
    const registered: string[] = [];
    for (const s of this.agents.list()) {
      const e = this.view.get(s.db, s.table);
      if (e?.owner === this.node) continue;
      if (e?.owner) {
        // Moved while this host was away (or handed on): the drainer empties its channel, then removes it.
        this.log.warn({ table: `${s.db}.${s.table}`, owner: e.owner }, 'this host runs a table etcd gives to another host now: draining its channel here, then removing it');
        continue;
      }
      const requestId = `registered-${this.node}`;
      const at = new Date().toISOString();
      const desired = { op: 'create', generation: 1, requestId, by: 'service', at, start: s.desired === 'running' };
      const status: StatusRecord = { node: this.node, generation: 1, requestId, ok: true, error: null, result: null, status: s, at };
      const ownerKey = this.keys.table(s.db, s.table, 'owner');
      const r = await this.etcd
        .if(ownerKey, 'Create', '==', 0)
        .then(
          this.etcd.put(ownerKey).value(this.node),
          this.etcd.put(this.keys.table(s.db, s.table, 'desired')).value(JSON.stringify(desired)),
          this.etcd.put(this.keys.table(s.db, s.table, 'status')).value(JSON.stringify(status)),
        )
        .commit();
      if (r.succeeded) registered.push(s.program);
    }
    if (registered.length) this.log.info({ tables: registered }, 'registered the tables this host runs in etcd');
    return registered;
  }

  start(): void {
    this.view.on('change', this.onChange);
    this.view.on('reset', this.onReset);
    this.onReset();
    this.publisher = periodic('table status publish', STATUS_PUBLISH_MS, () => this.publishStatuses(), this.log);
  }

  async stop(): Promise<void> {
    this.view.off('change', this.onChange);
    this.view.off('reset', this.onReset);
    await this.publisher?.stop();
    await Promise.allSettled([...this.busy.values()]);
  }

  private consider(e: TableEntry): void {
    const d = e.desired;
    if (e.owner !== this.node || !d || e.status?.requestId === d.requestId || this.answered.has(d.requestId)) return;
    const id = `${e.db}/${e.table}`;
    const before = this.busy.get(id) ?? Promise.resolve();
    const next = before.then(() => this.carryOut(e.db, e.table)).catch((err: unknown) => this.log.error({ err, table: id }, 'carrying out a table operation failed'));
    this.busy.set(id, next);
    void next.finally(() => {
      if (this.busy.get(id) === next) this.busy.delete(id);
    });
  }

  /** Carries out the newest unanswered request of a table this host owns. */
  private async carryOut(db: string, table: string): Promise<void> {
    const e = this.view.get(db, table);
    const d = e?.desired;
    if (!e || !d || e.owner !== this.node || e.status?.requestId === d.requestId || this.answered.has(d.requestId)) return;
    this.answered.add(d.requestId);
    const ref = { db, table };
    const log = this.log.child({ table: `${db}.${table}`, op: d.op, generation: d.generation });
    let status: AgentStatus | null = null;
    let result: DeleteResult | null = null;
    let error: StatusRecord['error'] = null;
    try {
      if (d.op === 'create') {
        try {
          status = (await this.agents.create(ref, d.body, { start: d.start ?? true, by: d.by })).status;
        } catch (err) {
          // Carried out before this host died, and asked again: the agent is there.
          if (!(err instanceof AppError && err.error === 'AGENT_EXISTS')) throw err;
          status = await this.agents.status(ref, true);
        }
      } else if (d.op === 'delete') {
        result = await this.agents.delete(ref, d.force ?? false);
      } else if (d.op === 'pause') {
        status = await this.agents.pause(ref, d.by);
      } else {
        status = await this.agents[d.op](ref);
      }
    } catch (err) {
      const a = err instanceof AppError ? err : null;
      const failed = asAppError(err, "the owner's log");
      error = { statusCode: failed.statusCode, ...errorBody(failed) };
      if (!a) log.error({ err }, 'the operation failed');
      status = await this.agents.status(ref, true).catch(() => null);
    }
    const record: StatusRecord = { node: this.node, generation: d.generation, requestId: d.requestId, ok: error === null, error, result, status, at: new Date().toISOString() };
    // A move this host could not carry out: the table goes back to where it came from, whole.
    if (d.op === 'create' && error && d.movedFrom) {
      const back = await this.retried(() => this.giveBack(e, d, record), log);
      return log.warn({ ok: false, to: d.movedFrom, given: back }, 'the move failed here: the table is given back');
    }
    const written = await this.retried(() => this.writeStatus(e, record), log);
    if (!written) return log.warn('no longer the owner: the outcome is not written');
    if (status) this.published.set(`${db}/${table}`, stableDigest(status));
    // Nothing of a table that failed to be created, or was deleted, stays owned.
    if ((d.op === 'create' && error) || (d.op === 'delete' && !error)) await this.retried(() => this.release(e), log);
    log.info({ ok: error === null }, 'carried out');
  }

  /** What was done is written even through a short etcd outage: retried for up to a minute. */
  private async retried<T>(fn: () => Promise<T>, log: Logger): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= 30) throw err;
        if (attempt === 1) log.warn({ err: (err as Error).message }, 'etcd did not take the outcome; retrying');
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  /** Writes the status record if this host still owns the table at the epoch it acted for. */
  private writeStatus(e: TableEntry, record: StatusRecord): Promise<boolean> {
    return this.writeOwned(e, 'status', JSON.stringify(record));
  }

  /** Writes one of the table's keys if this host still owns it at the epoch it acted for. */
  private async writeOwned(e: TableEntry, part: 'status' | 'spec', value: string): Promise<boolean> {
    const ownerKey = this.keys.table(e.db, e.table, 'owner');
    const r = await this.etcd
      .if(ownerKey, 'Value', '==', this.node)
      .and(ownerKey, 'Mod', '==', e.epoch)
      .then(this.etcd.put(this.keys.table(e.db, e.table, part)).value(value))
      .commit();
    return r.succeeded;
  }

  /**
   * Hands a table whose move failed here back to the host it came from, in one transaction: the
   * owner again, its stranded entry gone, this failure as the move's answer, and a start or stop
   * (as it was) for it to carry out, which its agent, never stopped, already is.
   */
  private async giveBack(e: TableEntry, d: DesiredRecord, record: StatusRecord): Promise<boolean> {
    const from = d.movedFrom!;
    const k = (part: 'owner' | 'desired' | 'status' | 'stranded') => this.keys.table(e.db, e.table, part);
    const stranded = { ...e.stranded };
    delete stranded[from];
    const again: DesiredRecord = { op: d.start === false ? 'stop' : 'start', generation: d.generation + 1, requestId: randomUUID(), by: 'service (a failed move, given back)', at: new Date().toISOString() };
    const r = await this.etcd
      .if(k('owner'), 'Value', '==', this.node)
      .and(k('owner'), 'Mod', '==', e.epoch)
      .then(
        this.etcd.put(k('owner')).value(from),
        this.etcd.put(k('status')).value(JSON.stringify(record)),
        this.etcd.put(k('desired')).value(JSON.stringify(again)),
        Object.keys(stranded).length ? this.etcd.put(k('stranded')).value(JSON.stringify(stranded)) : this.etcd.delete().key(k('stranded')),
      )
      .commit();
    return r.succeeded;
  }

  private async release(e: TableEntry): Promise<void> {
    const ownerKey = this.keys.table(e.db, e.table, 'owner');
    await this.etcd
      .if(ownerKey, 'Value', '==', this.node)
      .and(ownerKey, 'Mod', '==', e.epoch)
      .then(this.etcd.delete().key(ownerKey), this.etcd.delete().key(this.keys.table(e.db, e.table, 'desired')), this.etcd.delete().key(this.keys.table(e.db, e.table, 'spec')))
      .commit();
  }

  /**
   * Writes the status of each owned table whose public content changed since it was last
   * written, and its spec whenever its desired revision moved (so etcd holds every table's
   * config, whatever becomes of this host's disk).
   */
  private async publishStatuses(): Promise<void> {
    for (const e of this.view.all()) {
      if (e.owner !== this.node || !e.status || this.busy.has(`${e.db}/${e.table}`)) continue;
      const s = this.agents.known(programName(e));
      if (!s) continue;
      const digest = stableDigest(s);
      const id = `${e.db}/${e.table}`;
      if (this.specRevision.get(id) !== s.revision.desired) {
        const spec = await this.specOf(s.program).catch(() => null);
        if (spec && (await this.writeOwned(e, 'spec', JSON.stringify({ ...spec, at: new Date().toISOString() })).catch(() => false))) this.specRevision.set(id, spec.revision);
      }
      if (this.published.get(id) === digest) continue;
      if (await this.writeStatus(e, { ...e.status, status: s, at: new Date().toISOString() }).catch(() => false)) this.published.set(id, digest);
    }
  }
}
