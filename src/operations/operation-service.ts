import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { Lifecycle } from '../agents/lifecycle.js';
import { failure, type AgentBatch } from '../agents/batch.js';
import { type BulkOp, type Operation, type OperationListQuery, type Selector, type TableOp, type TableOutcome, type TableResult } from '../resources/operation.js';
import type { TableRef } from '../resources/table.js';
import { asAppError, errorBody, invalidRequest, operationNotCancellable, operationNotFound } from '../errors.js';
import { StillRunning } from '../agents/lifecycle.js';
import type { AgentState, AgentStatus } from '../resources/agent-status.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import { nothingToDo, operationVisible, reachOf } from './selection.js';
import { inStages } from './stages.js';

/** A table's outcome as the event stream tells it ("event: operation"). */
export interface OperationProgress extends TableResult {
  id: string;
  op: Operation['op'];
  done: number;
  total: number;
  state: Operation['state'];
  /** The operation's reach (Operation.dbs): who may see its closing event, which names no table. */
  dbs: string[] | null;
}

const KEEP_SECONDS = 86_400;

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
    const operation = await this.open({ kind: 'bulk', op, by, selector, concurrency, results, dbs: reachOf(selector, dbs) });
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
      if (r?.outcome === 'pending') this.settle(o, r, outcome);
    };
    const log = this.log.child({ operation: o.id, op: o.op });
    log.info({ total: o.total, pending: pending.length, by: o.by }, 'bulk operation started');
    const nodeOf = new Map(this.agents.list().map((s) => [s.program, s.node]));
    const here = pending.filter((r) => (nodeOf.get(r.program) ?? this.node) === this.node);
    const elsewhere = pending.filter((r) => (nodeOf.get(r.program) ?? this.node) !== this.node);
    const limit = pLimit(o.concurrency);
    const oneByOne = (refs: TableResult[]) =>
      Promise.all(
        refs.map((ref) =>
          limit(async () => {
            // Cancelled: a table whose turn has not come is left as it is.
            if (o.cancel) return done(ref, { outcome: 'cancelled', code: null, message: `cancelled by ${o.cancel.by} before its turn; nothing was done` });
            done(ref, await this.one(o.op as BulkOp, ref, o.by));
          }),
        ),
      );
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
    await this.close(o, 'done');
    log.info({ counts: o.counts }, 'bulk operation done');
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

  /**
   * A staged operation (fleet apply): `act` runs on each pending table, the first `canary` of
   * them one at a time, then the rest `concurrency` at a time. The first failure halts it:
   * tables whose turn has not come are left as they are (outcome cancelled) and the operation
   * ends `halted`. Tables already skipped (nothing to do) stay skipped.
   */
  async beginStaged(
    op: 'apply',
    results: TableResult[],
    opts: { canary: number; concurrency: number; by: string; selector: Selector; dbs: string[] | null },
    act: (r: TableResult) => Promise<TableOutcome>,
  ): Promise<Operation> {
    const o = await this.open({ kind: 'fleet', op, by: opts.by, selector: opts.selector, concurrency: opts.concurrency, results, dbs: opts.dbs });
    void this.runStaged(o, opts.canary, act);
    return o;
  }

  private async runStaged(o: Operation, canary: number, act: (r: TableResult) => Promise<TableOutcome>): Promise<void> {
    const log = this.log.child({ operation: o.id, op: o.op });
    const pending = o.results.filter((r) => r.outcome === 'pending');
    log.info({ total: o.total, pending: pending.length, canary, by: o.by }, 'staged operation started');
    const halted = await inStages(pending, { canary, concurrency: o.concurrency, cancelled: () => o.cancel }, act, (r, outcome) => this.settle(o, r, outcome));
    await this.close(o, halted ? 'halted' : 'done');
    log.info({ counts: o.counts, halted }, 'staged operation done');
  }

  /** One table's outcome: counted, streamed, saved. */
  private settle(o: Operation, r: TableResult, outcome: TableOutcome): void {
    Object.assign(r, outcome);
    this.count(o);
    this.emit('operation', { ...r, id: o.id, op: o.op, done: o.total - o.counts.pending, total: o.total, state: o.state, dbs: o.dbs } satisfies OperationProgress);
    void this.save(o);
  }

  /** The end of a many-table operation (cancelled when asked): saved, streamed; the record stays in Redis for a day, this process forgets it after a minute. */
  private async close(o: Operation, state: 'done' | 'halted'): Promise<void> {
    o.state = o.cancel ? 'cancelled' : state;
    o.finishedAt = new Date().toISOString();
    await this.save(o);
    this.emit('operation', { id: o.id, op: o.op, db: '', table: '', program: '', outcome: 'applied', code: null, message: o.state, done: o.total, total: o.total, state: o.state, dbs: o.dbs } satisfies OperationProgress);
    setTimeout(() => this.ops.delete(o.id), 60_000).unref();
  }

  /**
   * One table's long call made with `Prefer: respond-async`: recorded as an operation of one
   * table at once, `fn` run in the background; its answer (what the call would have said) is
   * the operation's `answer` once done. `fn` answers the success body; an error becomes the
   * error body it would have been.
   */
  async track(op: TableOp, ref: TableRef, by: string, fn: () => Promise<{ status: number; body: Record<string, unknown> }>): Promise<Operation> {
    const program = `flume-${ref.db}-${ref.table}`;
    const o: Operation = {
      id: randomUUID(),
      kind: 'table',
      op,
      by,
      selector: { tables: [`${ref.db}.${ref.table}`] },
      concurrency: 1,
      state: 'running',
      createdAt: new Date().toISOString(),
      finishedAt: null,
      total: 1,
      counts: { applied: 0, failed: 0, skipped: 0, pending: 1, cancelled: 0 },
      results: [{ db: ref.db, table: ref.table, program, outcome: 'pending', code: null, message: '' }],
      dbs: [ref.db],
      answer: null,
      cancel: null,
    };
    this.ops.set(o.id, o);
    await this.save(o);
    void (async () => {
      let outcome: TableOutcome;
      try {
        o.answer = await fn();
        outcome = { outcome: 'applied', code: null, message: String(o.answer.body.message ?? op) };
      } catch (err) {
        if (err instanceof StillRunning) {
          const p = err.pending;
          const message = `${p.op} under way on ${p.node} (operation ${p.generation}); GET .../status for its outcome`;
          o.answer = { status: 202, body: { code: 0, message, pending: p } };
          outcome = { outcome: 'applied', code: null, message };
        } else {
          outcome = failure(err);
          const failed = asAppError(err);
          o.answer = { status: failed.statusCode, body: errorBody(failed) };
          if (failed !== err) this.log.error({ err, operation: o.id }, 'a table operation failed');
        }
      }
      Object.assign(o.results[0]!, outcome);
      this.count(o);
      o.state = 'done';
      o.finishedAt = new Date().toISOString();
      await this.save(o);
      this.emit('operation', { ...o.results[0]!, id: o.id, op: o.op, done: 1, total: 1, state: o.state, dbs: o.dbs } satisfies OperationProgress);
      setTimeout(() => this.ops.delete(o.id), 60_000).unref();
    })();
    return o;
  }

  /**
   * Asks a running bulk operation to stop: tables whose turn has not come are left alone
   * (outcome cancelled); those under way finish. A local stop or restart batch is under way
   * for every table at once, so only another host's tables can still be cancelled there.
   */
  async cancel(id: string, by: string): Promise<Operation> {
    const o = this.ops.get(id);
    if (!o) {
      const stored = await this.get(id);
      throw operationNotCancellable(id, stored.state !== 'running' ? `it is ${stored.state}` : 'it runs in another API process (ask the host that started it)');
    }
    if (o.kind === 'table') throw operationNotCancellable(id, "it is one table's call, which runs to its end (its answer is kept)");
    if (o.state !== 'running') throw operationNotCancellable(id, `it is ${o.state}`);
    o.cancel ??= { by, at: new Date().toISOString() };
    await this.save(o);
    return o;
  }

  /** Newest first, filtered, a page at a time: `nextCursor` continues where this page ended (null: no more). */
  async list(q: OperationListQuery, dbs: string[] | undefined): Promise<{ operations: Operation[]; nextCursor: string | null }> {
    const out: Operation[] = [];
    let end = q.cursor ? `(${q.cursor}` : '+';
    let last: string | null = null;
    for (let scanned = 0; scanned < 20_000; ) {
      const batch = await redisCall(() => this.redis.xrevrange(this.keys.operations(), end, '-', 'COUNT', 200));
      if (!batch.length) return { operations: out, nextCursor: null };
      scanned += batch.length;
      const raws = await redisCall(() => this.redis.mget(...batch.map(([, f]) => this.keys.operation(f[1] ?? ''))));
      for (let i = 0; i < batch.length; i++) {
        const [streamId] = batch[i]!;
        const raw = raws[i];
        end = `(${streamId}`;
        if (!raw) continue;
        const o = this.ops.get((JSON.parse(raw) as Operation).id) ?? (JSON.parse(raw) as Operation);
        if (!operationVisible(o.dbs, dbs)) continue;
        if ((q.kind && (o.kind ?? 'bulk') !== q.kind) || (q.op && o.op !== q.op) || (q.state && o.state !== q.state)) continue;
        if (q.db && o.dbs && !o.dbs.includes(q.db)) continue;
        out.push(o);
        last = streamId;
        if (out.length === q.limit) return { operations: out, nextCursor: last };
      }
    }
    return { operations: out, nextCursor: last };
  }

  /** A new running operation over `results`, counted, kept and saved. */
  private async open(f: Pick<Operation, 'kind' | 'op' | 'by' | 'selector' | 'concurrency' | 'results' | 'dbs'>): Promise<Operation> {
    const o: Operation = {
      id: randomUUID(),
      ...f,
      state: 'running',
      createdAt: new Date().toISOString(),
      finishedAt: null,
      total: f.results.length,
      counts: { applied: 0, failed: 0, skipped: 0, pending: 0, cancelled: 0 },
      answer: null,
      cancel: null,
    };
    this.count(o);
    this.ops.set(o.id, o);
    await this.save(o);
    return o;
  }

  private count(o: Operation): void {
    const c = { applied: 0, failed: 0, skipped: 0, pending: 0, cancelled: 0 };
    for (const r of o.results) c[r.outcome]++;
    o.counts = c;
  }

  private readonly indexed = new Set<string>();

  /** The record (EX 24 h), and once its entry in the listing's stream (trimmed to 24 h). */
  private async save(o: Operation): Promise<void> {
    const first = !this.indexed.has(o.id);
    if (first) this.indexed.add(o.id);
    const pipe = this.redis.multi().set(this.keys.operation(o.id), JSON.stringify(o), 'EX', KEEP_SECONDS);
    if (first) pipe.xadd(this.keys.operations(), 'MINID', '~', String(Date.now() - KEEP_SECONDS * 1000), '*', 'id', o.id);
    await pipe.exec().catch((err: unknown) => this.log.warn({ err, operation: o.id }, 'could not save the operation'));
    if (o.state !== 'running') this.indexed.delete(o.id);
  }
}
