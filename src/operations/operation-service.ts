import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { Lifecycle } from '../agents/lifecycle.js';
import { failure, type AgentBatch } from '../agents/batch.js';
import { BULK_OPS, type BulkOp, type Operation, type Selector, type TableOutcome, type TableResult } from '../resources/operation.js';
import type { TableRef } from '../resources/table.js';
import { invalidRequest, operationNotFound } from '../errors.js';
import type { AgentState, AgentStatus } from '../resources/agent-status.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';

/** Whether a caller limited to `dbs` (undefined: every db) may see an operation that reaches `reach`. */
export function operationVisible(reach: string[] | null | undefined, dbs: string[] | undefined): boolean {
  return !dbs || (!!reach && reach.every((d) => dbs.includes(d)));
}

/** A table's outcome as the event stream tells it ("event: operation"). */
export interface OperationProgress extends TableResult {
  id: string;
  op: BulkOp;
  done: number;
  total: number;
  state: Operation['state'];
  /** The operation's reach (Operation.dbs): who may see its closing event, which names no table. */
  dbs: string[] | null;
}

const KEEP_SECONDS = 86_400;

/** The dbs a selector (and a caller's dbs) can reach: the intersection of what each names; null: every db. */
function reachOf(selector: Selector, dbs: string[] | undefined): string[] | null {
  const limits = [selector.db ? [selector.db] : null, selector.tables ? selector.tables.map((t) => t.split('.')[0]!) : null, dbs ?? null].filter(
    (l): l is string[] => l !== null,
  );
  if (!limits.length) return null;
  return [...new Set(limits[0])].filter((d) => limits.every((l) => l.includes(d))).sort();
}
const UP: readonly AgentState[] = ['RUNNING', 'STARTING', 'BACKOFF'];

/** Why a table needs nothing from `op`, or null when it does. */
function nothingToDo(op: BulkOp, s: AgentStatus): string | null {
  if (op === 'start' && s.desired === 'running' && s.accepting) return 'already running and accepting';
  if (op === 'stop' && s.desired === 'stopped' && !UP.includes(s.state)) return 'already stopped';
  if (op === 'pause' && s.paused) return 'already paused';
  if (op === 'resume' && !s.paused) return 'not paused';
  return null;
}

/**
 * Bulk operations: an operation acts on the agents a selector picks (from the fleet model),
 * `concurrency` tables at a time, in the background; its progress is readable by id (from any
 * API process: kept in Redis for 24 h) and streamed as "operation" events.
 *
 * Guarantees: each table is handled under its own lock exactly as the single-table call would
 * (a busy table fails with BUSY, it is not waited for); a table that needs nothing is skipped
 * and says why; one table's failure never stops the others. stop and restart are batched: one
 * supervisord re-read for all and every process signalled at once (within `concurrency`).
 */
export class OperationService extends EventEmitter {
  private readonly ops = new Map<string, Operation>();

  constructor(
    /** Every table's lifecycle: with many hosts, across them (a remote table's operation goes through etcd). */
    private readonly agents: Lifecycle,
    private readonly batch: AgentBatch,
    /** This host: its own tables are stopped and restarted as one batch. */
    private readonly node: string,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
  }

  /** Picks the agents and starts the operation; resolves once it is recorded (not when done). */
  async begin(op: BulkOp, selector: Selector, concurrency: number, by: string, dbs?: string[]): Promise<Operation> {
    if (!selector.all && !selector.db && !selector.tables && !selector.health && !selector.state) {
      throw invalidRequest('say which agents: db, tables, health, state, or "all": true');
    }
    const tables = selector.tables && new Set(selector.tables);
    const statuses = this.agents.list({ db: selector.db }).filter(
      (s) =>
        (!dbs || dbs.includes(s.db)) &&
        (!tables || tables.has(`${s.db}.${s.table}`)) &&
        (!selector.health || selector.health.includes(s.health)) &&
        (!selector.state || selector.state.includes(s.state)),
    );
    const results: TableResult[] = statuses.map((s) => {
      const why = nothingToDo(op, s);
      return { db: s.db, table: s.table, program: s.program, outcome: why ? 'skipped' : 'pending', code: null, message: why ?? '' };
    });
    // Named tables that have no agent (or are outside the token's dbs) are failures, not silence.
    for (const name of tables ?? []) {
      if (results.some((r) => `${r.db}.${r.table}` === name)) continue;
      const [db = '', table = ''] = name.split('.');
      results.push({ db, table, program: `flume-${db}-${table}`, outcome: 'failed', code: 'AGENT_NOT_FOUND', message: `no agent for ${name}${dbs ? ' within this token\'s dbs' : ''}` });
    }
    const operation: Operation = {
      id: randomUUID(),
      op,
      by,
      selector,
      concurrency,
      state: 'running',
      createdAt: new Date().toISOString(),
      finishedAt: null,
      total: results.length,
      counts: { applied: 0, failed: 0, skipped: 0, pending: 0 },
      results,
      dbs: reachOf(selector, dbs),
    };
    this.count(operation);
    this.ops.set(operation.id, operation);
    await this.save(operation);
    void this.run(operation);
    return operation;
  }

  /** An operation by id: this process's own, or another's from Redis. */
  async get(id: string): Promise<Operation> {
    const own = this.ops.get(id);
    if (own) return own;
    const raw = await redisCall(() => this.redis.get(this.keys.operation(id)));
    if (!raw) throw operationNotFound(id);
    return JSON.parse(raw) as Operation;
  }

  private async run(o: Operation): Promise<void> {
    const pending = o.results.filter((r) => r.outcome === 'pending');
    const done = (ref: TableRef, outcome: TableOutcome) => {
      const r = o.results.find((x) => x.db === ref.db && x.table === ref.table);
      if (!r || r.outcome !== 'pending') return;
      Object.assign(r, outcome);
      this.count(o);
      this.emit('operation', { ...r, id: o.id, op: o.op, done: o.total - o.counts.pending, total: o.total, state: o.state, dbs: o.dbs } satisfies OperationProgress);
      void this.save(o);
    };
    const log = this.log.child({ operation: o.id, op: o.op });
    log.info({ total: o.total, pending: pending.length, by: o.by }, 'bulk operation started');
    const nodeOf = new Map(this.agents.list().map((s) => [s.program, s.node]));
    const here = pending.filter((r) => (nodeOf.get(r.program) ?? this.node) === this.node);
    const elsewhere = pending.filter((r) => (nodeOf.get(r.program) ?? this.node) !== this.node);
    const limit = pLimit(o.concurrency);
    const oneByOne = (refs: TableResult[]) => Promise.all(refs.map((ref) => limit(() => this.one(o.op, ref, o.by).then((x) => done(ref, x)))));
    try {
      // Another host's tables: each through its owner, `concurrency` at a time.
      const remote = oneByOne(elsewhere);
      if (o.op === 'stop') await this.batch.stopMany(here, o.concurrency, done);
      else if (o.op === 'restart') await this.batch.restartMany(here, o.concurrency, done);
      else await oneByOne(here);
      await remote;
    } catch (err) {
      log.error({ err }, 'bulk operation failed');
      for (const r of o.results) if (r.outcome === 'pending') done(r, failure(err));
    }
    o.state = 'done';
    o.finishedAt = new Date().toISOString();
    await this.save(o);
    this.emit('operation', { id: o.id, op: o.op, db: '', table: '', program: '', outcome: 'applied', code: null, message: 'done', done: o.total, total: o.total, state: 'done', dbs: o.dbs } satisfies OperationProgress);
    log.info({ counts: o.counts }, 'bulk operation done');
    // The record stays in Redis for a day; this process forgets it after a minute.
    setTimeout(() => this.ops.delete(o.id), 60_000).unref();
  }

  private async one(op: BulkOp, ref: TableRef, by: string): Promise<TableOutcome> {
    try {
      if (op === 'delete') {
        const d = await this.agents.delete(ref, false);
        return { outcome: 'applied', code: null, message: `${d.program}: deleted, channel data ${d.channel}` };
      }
      const s = op === 'pause' ? await this.agents.pause(ref, by) : await this.agents[op as 'start' | 'stop' | 'restart' | 'resume'](ref);
      return { outcome: 'applied', code: null, message: `${s.program}: ${op === 'pause' || op === 'resume' ? (s.paused ? 'paused' : 'intake open') : s.state}` };
    } catch (err) {
      return failure(err);
    }
  }

  private count(o: Operation): void {
    const c = { applied: 0, failed: 0, skipped: 0, pending: 0 };
    for (const r of o.results) c[r.outcome]++;
    o.counts = c;
  }

  private async save(o: Operation): Promise<void> {
    await this.redis.set(this.keys.operation(o.id), JSON.stringify(o), 'EX', KEEP_SECONDS).catch((err: unknown) => this.log.warn({ err, operation: o.id }, 'could not save the operation'));
  }
}
