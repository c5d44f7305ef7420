import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import { AppError } from '../errors.js';
import type { FleetModel } from '../fleet/fleet-model.js';
import { probeSource } from '../flume/client.js';
import { periodic, type Periodic } from '../periodic.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import type { AgentMeta, AgentStore } from '../store/agent-store.js';
import type { AgentService } from '../agents/agent-service.js';
import { parseProgramName, programName } from '../resources/table.js';
import type { ReconcileReport, RestoreReport } from '../resources/restore.js';
import type { PortAllocator } from '../agents/port-allocator.js';
import { RouteTable } from '../agents/route-table.js';
import { routedTo } from '../agents/stand-in.js';
import type { TableLock } from '../agents/table-lock.js';
import type { HostParts } from '../agents/host-parts.js';

/**
 * A copy in Redis of something the disk keeps (ingestion tokens, the audit trail, revoked
 * control tokens): every one is restored the same way, by `restore()`.
 */
export interface Restorable {
  /** What it is, as the restore report and logs name it. */
  readonly part: string;
  /**
   * Copies what the disk holds back into Redis; `lost`: Redis lost its data (no marker).
   * Idempotent. Returns the names of what it put back.
   */
  restore(lost: boolean): Promise<string[]>;
}

/** How often the service checks whether Redis lost its data, and retries busy tables. */
const HEAL_CHECK_MS = 2000;
const ROUTE_SYNC_MS = 5000;

/**
 * Makes Redis and supervisord agree with the disk (conf.d/, services/, var/tokens/), which is
 * the truth, and keeps them agreeing:
 * - `restore()` (at start-up, on POST /v1/api/reconcile, and by itself after a Redis loss):
 *   ingestion tokens, port reservations, the tables set and routes back into Redis; debris of
 *   crashed operations removed (see `reconcile`).
 * - Redis loss is noticed through a marker key (`<p>epoch`) that `restore()` writes: checked
 *   every 2 s and whenever the Redis connection comes back; a missing marker means Redis lost
 *   its data, and the service restores everything by itself within seconds.
 * - Routes follow readiness (`syncRoutes`, every 5 s): present exactly while the agent should
 *   run and its source accepts connections.
 * Every change to a table is made under its lock; a busy table is retried on the next check.
 * Periodic jobs never overlap themselves.
 */
export class Reconciler {
  /** Tables the last reconcile left alone because an operation held them. */
  private pendingBusy: string[] = [];
  private jobs: Periodic[] = [];
  private readonly onReady = () => void this.jobs[0]?.runNow();
  /** Times the service restored Redis by itself after noticing it had lost its data. */
  heals = 0;
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    host: HostParts,
    private readonly fleet: FleetModel,
    private readonly agents: AgentService,
    /** Restored before the agents' own keys, in this order. */
    private readonly parts: Restorable[],
    private readonly log: Logger,
  ) {
    ({ store: this.store, routes: this.routes, lock: this.lock, driver: this.driver, ports: this.ports } = host);
  }

  private readonly store: AgentStore;
  private readonly routes: RouteTable;
  private readonly lock: TableLock;
  private readonly driver: SupervisorDriver;
  private readonly ports: PortAllocator;

  /** Starts the Redis-loss check and the route sync. Call after a first successful restore(). */
  start(): void {
    if (this.jobs.length) return;
    this.jobs = [
      periodic('redis-loss check', HEAL_CHECK_MS, () => this.check(), this.log),
      periodic('route sync', ROUTE_SYNC_MS, () => this.syncRoutes(), this.log),
    ];
    this.redis.on('ready', this.onReady);
  }

  async stop(): Promise<void> {
    this.redis.off('ready', this.onReady);
    await Promise.all(this.jobs.map((j) => j.stop()));
    this.jobs = [];
  }

  /** Everything back from disk, then the marker that says Redis holds it. */
  async restore(): Promise<RestoreReport> {
    const lost = (await redisCall(() => this.redis.exists(this.keys.epoch()))) === 0;
    const restored = new Map<string, string[]>();
    for (const p of this.parts) restored.set(p.part, await p.restore(lost));
    const report = await this.reconcile();
    await redisCall(() => this.redis.set(this.keys.epoch(), randomUUID(), 'NX'));
    return { ...report, tokensRestored: restored.get('tokens') ?? [] };
  }

  /** Restores if Redis lost its data (no marker); retries tables a restore found busy. */
  async check(): Promise<void> {
    const marker = await redisCall(() => this.redis.get(this.keys.epoch()));
    if (marker === null) {
      this.log.warn('Redis has lost its data (its marker is gone): restoring tokens, ports, tables and routes from disk');
      const report = await this.restore();
      this.heals++;
      this.log.warn({ ...report }, 'restored Redis from disk');
      return;
    }
    // Finish what a dead operation left, once its table is free (its lease ran out).
    for (const program of this.pendingBusy) {
      if (!(await this.lock.busy(program))) {
        await this.reconcile();
        return;
      }
    }
  }

  /**
   * - a program file without services/ metadata, or a supervisord agent without a program
   *   file: removed from supervisord (and disk);
   * - services/ metadata without a program file: removed, its ports released (var/ is kept);
   * - port reservations, table entries and routes nobody owns: removed;
   * - reservations and table entries of every agent: restored; routes follow readiness.
   * Tables busy with an operation are left alone. Idempotent: a second run reports nothing.
   */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      agents: 0,
      removedPrograms: [],
      removedHalfCreated: [],
      releasedPorts: [],
      removedRoutes: [],
      conflicts: [],
      routesChanged: [],
      skippedBusy: [],
    };
    const onDisk = new Set(await this.store.programFiles());
    const metas = await this.store.allMetas();
    const withMeta = new Set(metas.map((m) => m.program));
    const loaded = (await this.driver.infoAll()).map((i) => i.name).filter((p) => parseProgramName(p));

    for (const program of new Set([...onDisk, ...loaded])) {
      if (withMeta.has(program) && onDisk.has(program)) continue;
      await this.unlessBusy(program, report, async () => {
        if (this.store.hasMeta(program) && this.store.hasProgram(program)) return;
        await this.agents.unloadProgram(program);
        report.removedPrograms.push(program);
        this.log.warn({ program }, 'reconcile: removed an agent program that has no metadata or no program file');
      });
    }
    for (const meta of metas) {
      if (onDisk.has(meta.program)) continue;
      await this.unlessBusy(meta.program, report, async () => {
        if (this.store.hasProgram(meta.program) || !this.store.hasMeta(meta.program)) return;
        await this.routes.withdraw(meta, true);
        await this.store.removeServiceDir(meta.program);
        await this.ports.release(meta.port, meta.program);
        await this.ports.release(meta.metricsPort, meta.program);
        this.fleet.forget(meta.program);
        report.removedHalfCreated.push(meta.program);
        this.log.warn({ program: meta.program }, 'reconcile: removed a half-created agent (metadata without program); var/ kept');
      });
    }

    // Agents with both files (the half-created ones removed above had no program file).
    const live = metas.filter((m) => onDisk.has(m.program));
    report.agents = live.length;
    const owned = new Map<string, string>();
    for (const meta of live) {
      for (const port of [meta.port, meta.metricsPort]) {
        owned.set(String(port), meta.program);
        if (!(await this.ports.reserve(port, meta.program))) {
          report.conflicts.push(meta.program);
          this.log.error({ program: meta.program, port }, 'reconcile: port is reserved by another program');
        }
      }
    }
    // The stand-ins of restarts (src/agents/stand-in.ts) hold theirs too.
    for (const [port, program] of await this.store.ownedPorts()) if (!owned.has(String(port))) owned.set(String(port), program);
    const reservations = await redisCall(() => this.redis.hgetall(this.keys.ports()));
    for (const [port, owner] of Object.entries(reservations)) {
      // A reservation of a table being created right now has no metadata yet: skip busy ones.
      if (owned.get(port) === owner) continue;
      if (await this.lock.busy(owner)) {
        report.skippedBusy.push(owner);
        continue;
      }
      await this.ports.release(Number(port), owner);
      report.releasedPorts.push(Number(port));
      this.log.warn({ port, owner }, 'reconcile: released a port reservation nobody owns');
    }
    const tables = new Set(live.map((m) => `${m.db}:${m.table}`));
    // Tables other hosts run have routes here too (through their gateways): not debris.
    for (const t of this.routes.placement.foreign()) tables.add(t);
    await this.routes.remember(live);
    for (const ref of await this.routes.tables()) {
      if (tables.has(`${ref.db}:${ref.table}`)) continue;
      const program = programName(ref);
      if (await this.lock.busy(program)) {
        report.skippedBusy.push(program);
        continue;
      }
      await this.routes.withdraw(ref, true);
      report.removedRoutes.push(`${ref.db}:${ref.table}`);
      this.log.warn({ table: `${ref.db}:${ref.table}` }, 'reconcile: removed the route of a table that has no agent');
    }
    report.routesChanged = await this.syncRoutes(true, report);
    report.skippedBusy = [...new Set(report.skippedBusy)];
    this.pendingBusy = report.skippedBusy;
    return report;
  }

  /**
   * Makes every route follow readiness. Candidates come from the fleet model (or, with `live`,
   * from the disk and probing every agent now); each change is re-checked live under the
   * table's lock. Returns the tables whose route changed.
   */
  async syncRoutes(live = false, report?: ReconcileReport): Promise<string[]> {
    const changed: string[] = [];
    // Fenced (many hosts, etcd out of reach): the routes stay `fenced` until the lease is renewed.
    if (this.routes.fenced) return changed;
    // A table another host took over (a move) is routed there: its agent here only drains.
    const metas = (live ? await this.store.allMetas() : this.fleet.metas()).filter((m) => !this.routes.elsewhere(m));
    const routed = await this.routes.values(metas);
    const limit = pLimit(16);
    // The route a table should have now: its value (port or paused) while it should run and
    // accepts events, else none.
    const wantedNow = async (m: AgentMeta) =>
      (await this.store.desired(m.program)) === 'running' && (await probeSource(m.port)) === 'flume' ? this.routes.valueFor(m) : null;
    const wanted = await Promise.all(
      metas.map((m, i) =>
        limit(async () => {
          if (live) return wantedNow(m);
          const s = this.fleet.status(m.program);
          return s ? (s.desired === 'running' && s.accepting ? this.routes.valueFor(m) : null) : routed[i]!;
        }),
      ),
    );
    for (const [i, m] of metas.entries()) {
      if (wanted[i] === routed[i]) continue;
      await this.unlessBusy(m.program, report, async () => {
        if (!this.store.hasProgram(m.program)) return;
        // Metadata read again under the lock: a pause may have changed it since.
        const meta = (await this.store.readMeta(m.program)) ?? m;
        const want = await wantedNow(meta);
        const [has] = await this.routes.values([meta]);
        if (want === has) return;
        // A restart's stand-in that takes the events while the agent does not: its route stays.
        if (!want && (await this.standInServes(meta.program, has))) return;
        if (want) await this.routes.publish(meta);
        else await this.routes.withdraw(meta);
        changed.push(meta.program);
        this.log.info({ program: meta.program, route: want ? 'published' : 'withdrawn' }, 'route follows readiness');
      });
    }
    return changed;
  }

  /** Whether `route` points to the table's restart stand-in (src/agents/stand-in.ts). */
  private async standInServes(program: string, route: string | null | undefined): Promise<boolean> {
    const standIn = await this.store.readStandIn(program);
    return standIn !== null && routedTo(route, standIn.port);
  }

  /** Runs fn under the table's lock; a table busy with an operation is left to it (and noted). */
  private async unlessBusy(program: string, report: ReconcileReport | undefined, fn: () => Promise<void>): Promise<void> {
    try {
      await this.lock.run(program, 'reconcile', fn);
    } catch (err) {
      if (!(err instanceof AppError && err.error === 'BUSY')) throw err;
      report?.skippedBusy.push(program);
    }
  }
}

