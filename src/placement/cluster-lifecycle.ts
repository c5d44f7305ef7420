import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { AgentService } from '../agents/agent-service.js';
import { StillRunning, type Created, type Lifecycle } from '../agents/lifecycle.js';
import { etcdCall, type EtcdCluster } from '../cluster/cluster.js';
import type { ClusterKeys } from '../cluster/keys.js';
import type { Config } from '../config.js';
import { AppError, asAppError, errorBody, agentExists, agentNotFound, busy, channelStranded, clusterUnavailable, nodeUnavailable } from '../errors.js';
import type { DrainResult, MoveResult, StrandedChannel } from '../resources/move.js';
import pLimit from 'p-limit';
import { checkSpec, resolveSpec, specDifferences, type AgentSpec, type SpecDifference } from '../resources/agent-spec.js';
import type { AgentStatus, DeleteResult } from '../resources/agent-status.js';
import { programName, type TableRef } from '../resources/table.js';
import { chooseNode } from './choose.js';
import type { DesiredRecord, StatusRecord, TableOp } from './records.js';
import { holder, type TableEntry, type TablesView } from './tables-view.js';
import { settleWrite } from './settle.js';

/**
 * The lifecycle with many hosts: any host's API answers for any table.
 *
 * A create places the table (`?node=`, or the alive, active host with the most headroom) and
 * makes it owned in one transaction (create revision 0), so the same table created through two
 * APIs at once gives one 201 and one 409. Every operation is written to etcd as the table's
 * `desired` (a new generation, compared against the one read: one operation at a time, a second
 * gets 409 BUSY) and answered once the owner wrote its outcome for that request; past the
 * wait (CLUSTER_WAIT_MS) a 202: the operation goes on (StillRunning). Reads come from memory: the
 * local fleet model for tables this host owns, the owners' published statuses for the others.
 *
 * A write etcd may or may not have taken (`settle`) is never answered "nothing changed" unless
 * it can no longer apply.
 */
export class ClusterLifecycle implements Lifecycle {
  private readonly waiting = new Map<string, (r: StatusRecord) => void>();

  constructor(
    private readonly cfg: Config,
    private readonly cluster: EtcdCluster,
    private readonly keys: ClusterKeys,
    private readonly view: TablesView,
    private readonly local: AgentService,
    /** Resolves once this host's routes follow what etcd says now (RemoteRoutes.settle). */
    private readonly settled: () => Promise<void> = async () => undefined,
  ) {
    view.on('change', (e: TableEntry, part: string) => {
      if (part !== 'status' || !e.status) return;
      this.waiting.get(e.status.requestId)?.(e.status);
    });
  }

  private get etcd(): Etcd3 {
    return this.cluster.etcd;
  }

  /** How long an operation waits for its owner: a start's ready timeout, plus a start queue's wait. */
  private get deadlineMs(): number {
    return this.cfg.CLUSTER_WAIT_MS ?? this.cfg.AGENT_READY_TIMEOUT_MS + 60_000;
  }

  async create(ref: TableRef, body: unknown, opts: { start?: boolean; by?: string; node?: string } = {}): Promise<Created> {
    // Checked here too, so a bad body is a 400/422 from the host asked, before anything is placed.
    const spec = resolveSpec(body, ref, this.limits);
    // The same create again (a client that timed out, or whose API died, retrying through any
    // host): the first one's outcome, not an error.
    const again = await this.sameCreate(ref, spec, opts.node);
    if (again && !Array.isArray(again)) return { status: again, created: false };
    const node = chooseNode(await this.cluster.list(), opts.node, this.ownedCounts());
    const desired = this.desired('create', 1, opts.by, { body: body ?? {}, start: opts.start ?? true });
    const ownerKey = this.keys.table(ref.db, ref.table, 'owner');
    const r = await this.truly(ref, desired, node, null, () =>
      this.etcd
        .if(ownerKey, 'Create', '==', 0)
        .then(this.etcd.put(ownerKey).value(node), this.etcd.put(this.keys.table(ref.db, ref.table, 'desired')).value(JSON.stringify(desired)))
        .commit(),
    );
    if (!r.succeeded) {
      const retried = await this.sameCreate(ref, spec, opts.node, 1000);
      if (retried && !Array.isArray(retried)) return { status: retried, created: false };
      throw agentExists(programName(ref), retried ?? undefined);
    }
    return { status: (await this.outcome(ref, desired, node)).status!, created: true };
  }

  /** Tables per owner, as etcd has them now (placement's first criterion). */
  private ownedCounts(): Map<string, number> {
    const owned = new Map<string, number>();
    for (const e of this.view.all()) if (e.owner) owned.set(e.owner, (owned.get(e.owner) ?? 0) + 1);
    return owned;
  }

  private get limits() {
    return { defaultHeap: this.cfg.AGENT_HEAP, maxHeap: this.cfg.AGENT_MAX_HEAP };
  }

  /**
   * The table's agent if it was created (or is being created) with this same spec and, when
   * `node` is named, on that host: the outcome of that create, waited for if under way. Null
   * when there is no such create; the fields that differ for another spec (the caller answers
   * 409 AGENT_EXISTS). `waitMs`: how
   * long to wait for this host's view to show an owner etcd already has.
   */
  private async sameCreate(ref: TableRef, spec: AgentSpec, node: string | undefined, waitMs = 0): Promise<AgentStatus | SpecDifference[] | null> {
    const deadline = Date.now() + waitMs;
    let e = this.view.get(ref.db, ref.table);
    while (!e?.owner && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      e = this.view.get(ref.db, ref.table);
    }
    const d = e?.desired;
    if (!e?.owner || d?.op !== 'create' || (node !== undefined && node !== e.owner)) return null;
    const first = checkSpec(d.body, ref, this.limits);
    if (!first.ok) return null;
    const differences = specDifferences(first.spec, spec);
    if (differences.length) return differences;
    if (e.status?.requestId === d.requestId) {
      if (!e.status.ok || !e.status.status) return null;
      return this.status(ref);
    }
    return (await this.outcome(ref, d, e.owner)).status!;
  }

  start(ref: TableRef): Promise<AgentStatus> {
    return this.act(ref, 'start');
  }

  stop(ref: TableRef): Promise<AgentStatus> {
    return this.act(ref, 'stop');
  }

  restart(ref: TableRef): Promise<AgentStatus> {
    return this.act(ref, 'restart');
  }

  pause(ref: TableRef, by: string): Promise<AgentStatus> {
    return this.act(ref, 'pause', by);
  }

  resume(ref: TableRef): Promise<AgentStatus> {
    return this.act(ref, 'resume');
  }

  async delete(ref: TableRef, force: boolean): Promise<DeleteResult> {
    if (this.unregistered(ref)) return this.local.delete(ref, force);
    const e = this.owned(ref);
    const desired = this.desired('delete', (e.desired?.generation ?? 0) + 1, undefined, { force });
    await this.write(ref, e, desired);
    return (await this.outcome(ref, desired, e.owner!)).result!;
  }

  /**
   * Re-creates the table on another host (`to`, else where a new table would go) with the
   * config etcd holds, in one transaction with its ownership (a new epoch: whatever the old host
   * writes for it afterwards fails) and a stranded-channel record naming the old host. The old
   * host's agent keeps taking events until the new one accepts, then only drains its channel
   * into its sink and goes (src/placement/drainer.ts); a host that is away does so when it
   * returns, which `abandonChannel` must accept. A move the new host cannot carry out gives the
   * table back to the old one.
   */
  async move(ref: TableRef, opts: { to?: string; abandonChannel: boolean; by: string }): Promise<MoveResult> {
    const program = programName(ref);
    const e = this.owned(ref);
    const from = e.owner!;
    if (e.desired && e.status?.requestId !== e.desired.requestId) throw busy(program, { operation: e.desired.op, since: e.desired.at });
    if (opts.to === from) throw nodeUnavailable(`${program} is already on ${from}`);
    if (!e.spec) throw busy(program, null);
    const nodes = await this.cluster.list();
    const to = chooseNode(nodes.filter((n) => n.id !== from), opts.to, this.ownedCounts());
    const alive = nodes.find((n) => n.id === from)?.alive ?? false;
    const last = e.status?.node === from ? e.status : null;
    const events = last?.status?.metrics?.channelSize ?? null;
    const observedAt = last?.status?.observedAt ?? last?.at ?? null;
    if (!alive && !opts.abandonChannel) {
      throw channelStranded(
        `${from}, which runs ${program}, is not alive: its channel (${events ?? 'an unknown number of'} events when last observed, ${observedAt ?? 'never'}) would stay there until ${from} comes back. ` +
          `Move with "abandonChannel": true to re-create the table on ${to} with a fresh channel; ${from} drains the old one into its sink when it returns`,
        { node: from, to, events, observedAt },
      );
    }
    const stranded: StrandedChannel = { movedAt: new Date().toISOString(), to, hostAlive: alive, events, observedAt };
    const strandedAll = { ...e.stranded, [from]: stranded };
    // Moving back to a host that still drains the table: its channel is the table's again.
    delete strandedAll[to];
    // An away host may still take events until it fences (FENCE_AFTER_SECONDS): the new host
    // opens intake only once that has surely passed.
    const opensAt = alive ? Date.now() : this.cluster.membership.intakeStopsBy(from);
    const openAt = opensAt > Date.now() ? new Date(opensAt).toISOString() : null;
    const desired = this.desired('create', (e.desired?.generation ?? 0) + 1, opts.by, {
      body: e.spec.spec,
      start: last?.status ? last.status.desired === 'running' : true,
      movedFrom: from,
      ...(openAt ? { openAt } : {}),
    });
    const k = (part: 'owner' | 'desired' | 'stranded') => this.keys.table(ref.db, ref.table, part);
    const r = await this.truly(ref, desired, to, e, (desiredRevision) =>
      this.etcd
        .if(k('owner'), 'Mod', '==', e.epoch)
        .and(k('desired'), 'Mod', '==', desiredRevision)
        .then(this.etcd.put(k('owner')).value(to), this.etcd.put(k('desired')).value(JSON.stringify(desired)), this.etcd.put(k('stranded')).value(JSON.stringify(strandedAll)))
        .commit(),
    );
    if (!r.succeeded) throw busy(program, null);
    const record = await this.outcome(ref, desired, to);
    return { from, to, stranded, intakeOpensAt: openAt, status: record.status! };
  }

  /**
   * A planned drain: the host becomes `draining` (it takes no new tables, and its presence
   * lapsing raises no alarm), then each table it owns moves to another host, `concurrency` at a
   * time. Answers with each table's outcome; the tables that did not move stay where they were.
   */
  async drain(node: string, opts: { abandonChannel: boolean; concurrency: number; by: string }): Promise<DrainResult> {
    await this.cluster.setState(node, 'draining');
    const tables = this.view.all().filter((e) => e.owner === node);
    const limit = pLimit(opts.concurrency);
    const moved = await Promise.all(
      tables.map((e) =>
        limit(async (): Promise<DrainResult['moved'][number]> => {
          try {
            const r = await this.move(e, { abandonChannel: opts.abandonChannel, by: opts.by });
            return { db: e.db, table: e.table, ok: true, to: r.to, error: null };
          } catch (err) {
            if (err instanceof StillRunning) return { db: e.db, table: e.table, ok: true, to: err.pending.node, error: null };
            const { code, error, message } = errorBody(asAppError(err));
            return { db: e.db, table: e.table, ok: false, to: null, error: { code, error, message } };
          }
        }),
      ),
    );
    return { node, state: 'draining', moved: moved.sort((a, b) => `${a.db}.${a.table}`.localeCompare(`${b.db}.${b.table}`)) };
  }

  async status(ref: TableRef, fresh = false): Promise<AgentStatus> {
    if (this.unregistered(ref)) return this.local.status(ref, fresh);
    const e = this.owned(ref);
    // During a move, the host it comes from answers until the new one has.
    const h = holder(e)!;
    if (h === this.cfg.NODE_ID) return this.local.status(ref, fresh);
    if (!e.status?.status) throw agentNotFound(programName(ref));
    return this.asSeen(e.status.status, h);
  }

  /** An owner's published status, as this host sees it: down while the owner's presence has lapsed. */
  private asSeen(s: AgentStatus, owner: string): AgentStatus {
    const n = this.cluster.membership.nodes().find((x) => x.id === owner);
    if (!n || n.alive) return s;
    return {
      ...s,
      accepting: false,
      health: 'down',
      healthReason: `its host ${owner} is not alive (its presence lapsed); last reported: ${s.state}, ${s.health}`,
    };
  }

  list(filter: { db?: string; state?: string } = {}): AgentStatus[] {
    const wanted = filter.state?.toUpperCase();
    // An agent here that only drains a table another host took over is not this host's to list.
    const mine = this.local.list(filter).filter((s) => {
      const e = this.view.get(s.db, s.table);
      return !e || !e.owner || holder(e) === this.cfg.NODE_ID;
    });
    const mineNames = new Set(mine.map((s) => s.program));
    const others = this.view
      .all()
      .filter((e) => e.owner && holder(e) !== this.cfg.NODE_ID && e.status?.status && !mineNames.has(e.status.status.program))
      .map((e) => this.asSeen(e.status!.status!, holder(e)!))
      .filter((s) => (!filter.db || s.db === filter.db) && (!wanted || s.state === wanted));
    return [...mine, ...others].sort((a, b) => a.program.localeCompare(b.program));
  }

  listVersion(): string {
    return `${this.local.listVersion()}:${this.view.version}:${this.cluster.membership.version}`;
  }

  /**
   * A table this host runs that etcd does not know (created before the host joined a cluster,
   * or while it could not reach etcd): acted on here, as on one host.
   */
  private unregistered(ref: TableRef): boolean {
    return !this.view.get(ref.db, ref.table)?.owner && this.local.known(programName(ref)) !== undefined;
  }

  private owned(ref: TableRef): TableEntry {
    const e = this.view.get(ref.db, ref.table);
    if (!e?.owner) throw agentNotFound(programName(ref));
    return e;
  }

  private desired(op: TableOp, generation: number, by: string | undefined, extra: Partial<DesiredRecord> = {}): DesiredRecord {
    return { op, generation, requestId: randomUUID(), by: by ?? 'unknown', at: new Date().toISOString(), ...extra };
  }

  private async act(ref: TableRef, op: 'start' | 'stop' | 'restart' | 'pause' | 'resume', by?: string): Promise<AgentStatus> {
    if (this.unregistered(ref)) return op === 'pause' ? this.local.pause(ref, by ?? 'unknown') : this.local[op](ref);
    const e = this.owned(ref);
    const desired = this.desired(op, (e.desired?.generation ?? 0) + 1, by);
    await this.write(ref, e, desired);
    return (await this.outcome(ref, desired, e.owner!)).status!;
  }

  /** Writes `desired` if no other operation was written since `e` was read (else 409 BUSY). */
  private async write(ref: TableRef, e: TableEntry, desired: DesiredRecord): Promise<void> {
    const desiredKey = this.keys.table(ref.db, ref.table, 'desired');
    const ownerKey = this.keys.table(ref.db, ref.table, 'owner');
    const pending = e.desired && e.status?.requestId !== e.desired.requestId;
    if (pending) throw busy(programName(ref), { operation: e.desired!.op, since: e.desired!.at });
    const r = await this.truly(ref, desired, e.owner!, e, (desiredRevision) =>
      this.etcd
        .if(desiredKey, 'Mod', '==', desiredRevision)
        .and(ownerKey, 'Mod', '==', e.epoch)
        .then(this.etcd.put(desiredKey).value(JSON.stringify(desired)))
        .commit(),
    );
    if (!r.succeeded) throw busy(programName(ref), null);
  }

  /** Runs `txn` and, where etcd failed, answers truly (settle.ts). */
  private truly(ref: TableRef, desired: DesiredRecord, node: string, e: TableEntry | null, txn: (desiredRevision: number) => Promise<{ succeeded: boolean }>): Promise<{ succeeded: boolean }> {
    return settleWrite(this.etcd, this.keys.table(ref.db, ref.table, 'desired'), desired, node, e, txn);
  }

  /** Waits for the owner's answer to `desired`; its error is this call's error. */
  private async outcome(ref: TableRef, desired: DesiredRecord, owner: string): Promise<StatusRecord> {
    const answered = this.view.get(ref.db, ref.table)?.status;
    const record =
      answered?.requestId === desired.requestId
        ? answered
        : await new Promise<StatusRecord | null>((resolve) => {
            const timer = setTimeout(() => {
              this.waiting.delete(desired.requestId);
              resolve(null);
            }, this.deadlineMs);
            this.waiting.set(desired.requestId, (r) => {
              clearTimeout(timer);
              this.waiting.delete(desired.requestId);
              resolve(r);
            });
          });
    // Past the wait the operation goes on; the caller hears so (202) and reads the outcome later.
    if (!record) throw new StillRunning({ node: owner, op: desired.op, generation: desired.generation, since: desired.at });
    if (record.error) {
      const x = record.error;
      throw new AppError(x.code, x.error, x.statusCode, x.message, { ...(x.details ?? {}), node: record.node });
    }
    // A sender that goes by the answer finds this host's gateway routing already.
    await this.settled().catch(() => undefined);
    return record;
  }
}
