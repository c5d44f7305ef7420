import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseIni } from 'ini';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AppError, agentExists, agentNotFound, agentStartFailed, portConflict, sinkUnavailable } from '../errors.js';
import { redisCall } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import { SupervisorFaultError, type ProcessInfo, type ProcessState, type SupervisorDriver } from '../supervisor/driver.js';
import { queuedEvents } from './channel-state.js';
import { parseProgramName, programName, type TableRef } from './names.js';
import { agentPaths, type AgentPaths } from './paths.js';
import { PortAllocator, canBind } from './port-allocator.js';
import { assessHealth, readFlumeMetrics, type FlumeCounters, type Health } from './health.js';
import { probeSource } from './probe.js';
import { renderAgentConfig, renderProgram, resolveSpec } from './render.js';
import type { AgentSpec } from './sinks.js';
import { TableLock } from './table-lock.js';

/** services/<program>/agent.json: what the agent was created with. */
export interface AgentMeta extends TableRef {
  program: string;
  port: number;
  /** Flume's metrics server: JSON counters for health. */
  metricsPort: number;
  spec: AgentSpec;
  createdAt: string;
}

/** supervisord's state, plus NOT_LOADED when the program file exists but supervisord lacks it. */
export type AgentState = ProcessState | 'NOT_LOADED';

export interface AgentStatus extends TableRef {
  program: string;
  sink: string;
  state: AgentState;
  /** What the operator asked for last: the program's autostart. */
  desired: 'running' | 'stopped';
  pid: number | null;
  uptimeSeconds: number | null;
  /** When the running process started (stable across polls, unlike uptimeSeconds). */
  startedAt: string | null;
  /** Flume's HTTP source answered just now. */
  accepting: boolean;
  health: Health;
  healthReason: string;
  /** Flume's counters while it runs; null when stopped or its metrics do not answer. */
  metrics: (FlumeCounters & { lastEventAt: string | null; lastEventAgeSeconds: number | null }) | null;
  description: string;
}

export interface ReconcileReport {
  agents: number;
  removedPrograms: string[];
  removedHalfCreated: string[];
  releasedPorts: number[];
  removedRoutes: string[];
  conflicts: string[];
  routesChanged: string[];
}

export interface DeleteResult extends TableRef {
  program: string;
  /** removed: the channel was empty, or force. kept: it holds events (or its state is unknown). */
  channel: 'removed' | 'kept';
  queuedEvents: number | null;
  /** Where kept data stays; a later create of the same table picks the channel up again. */
  keptPath: string | null;
}

const FAILED_STATES: readonly ProcessState[] = ['FATAL', 'EXITED', 'BACKOFF'];
const COUNTERS_TTL_MS = 1000;

async function writeAtomic(file: string, text: string): Promise<void> {
  // A dot-prefixed temp name never matches supervisor.conf's conf.d/*.conf include.
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

async function logTail(file: string, lines = 15): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines);
  } catch {
    return [];
  }
}

/**
 * The agent lifecycle: create, start, stop, restart, status, delete, list.
 *
 * Guarantees:
 * - One operation per table at a time (TableLock): a concurrent one gets 409 BUSY.
 * - create/start/restart return once the agent accepts connections, or fail and undo all they
 *   did: a failed create leaves no port, file, route or program behind.
 * - stop, restart and delete never remove channel data that still holds events unless asked.
 * - The program's autostart is the desired state, so a restarted supervisord brings back
 *   exactly the agents that should run.
 */
export class AgentService {
  private readonly lock: TableLock;
  /** Flume's counters per agent, shared by polls within COUNTERS_TTL_MS (a read costs ~4 ms). */
  private readonly countersCache = new Map<string, { at: number; value: Promise<FlumeCounters | null> }>();
  /** When each agent last accepted and drained events, as seen by status reads. */
  private readonly progress = new Map<string, { accepted: number; acceptedAt: number | null; drained: number; drainedAt: number }>();

  constructor(
    private readonly cfg: Config,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly driver: SupervisorDriver,
    readonly ports: PortAllocator,
    private readonly log: Logger,
  ) {
    this.lock = new TableLock(redis, keys, cfg.AGENT_READY_TIMEOUT_MS + 120_000);
  }

  async create(ref: TableRef, body: unknown): Promise<AgentStatus> {
    const spec = resolveSpec(body, ref);
    this.checkSinkAvailable(spec);
    const program = programName(ref);
    const paths = agentPaths(this.cfg, program);
    const log = this.log.child({ program });
    return this.lock.run(program, async () => {
      if (existsSync(paths.metaFile) || existsSync(paths.programFile)) throw agentExists(program);
      const undo: Array<() => Promise<unknown>> = [];
      try {
        const port = await this.ports.allocate(program);
        undo.push(() => this.ports.release(port, program));
        const metricsPort = await this.ports.allocate(program);
        undo.push(() => this.ports.release(metricsPort, program));
        if (!existsSync(paths.varDir)) undo.push(() => rm(paths.varDir, { recursive: true, force: true }));
        undo.push(() => rm(paths.serviceDir, { recursive: true, force: true }));
        for (const d of [paths.serviceDir, paths.checkpointDir, paths.dataDir, paths.outDir]) {
          await mkdir(d, { recursive: true });
        }
        const meta: AgentMeta = { ...ref, program, port, metricsPort, spec, createdAt: new Date().toISOString() };
        await writeAtomic(paths.flumeConf, renderAgentConfig(ref, spec, port, paths));
        await writeAtomic(paths.metaFile, `${JSON.stringify(meta, null, 2)}\n`);
        undo.push(() => this.unloadProgram(program, paths));
        await this.writeProgram(meta, paths, true);
        await this.driver.update(program);
        await this.waitReady(meta, paths);
        await this.publishRoute(meta);
        log.info({ port, sink: spec.sink }, 'agent created');
        return this.statusOf(meta, paths);
      } catch (err) {
        log.warn({ err }, 'create failed; rolling back');
        for (const step of undo.reverse()) {
          await step().catch((e: unknown) => log.error({ err: e }, 'rollback step failed'));
        }
        throw err;
      }
    });
  }

  async start(ref: TableRef): Promise<AgentStatus> {
    const { meta, paths } = await this.load(ref);
    return this.lock.run(meta.program, async () => {
      await this.startLocked(meta, paths);
      return this.statusOf(meta, paths);
    });
  }

  async stop(ref: TableRef): Promise<AgentStatus> {
    const { meta, paths } = await this.load(ref);
    return this.lock.run(meta.program, async () => {
      await this.stopLocked(meta, paths);
      return this.statusOf(meta, paths);
    });
  }

  async restart(ref: TableRef): Promise<AgentStatus> {
    const { meta, paths } = await this.load(ref);
    return this.lock.run(meta.program, async () => {
      await this.withdrawRoute(meta);
      await this.driver.stop(meta.program);
      await this.startLocked(meta, paths);
      return this.statusOf(meta, paths);
    });
  }

  async status(ref: TableRef): Promise<AgentStatus> {
    const { meta, paths } = await this.load(ref);
    return this.statusOf(meta, paths);
  }

  async delete(ref: TableRef, force: boolean): Promise<DeleteResult> {
    const program = programName(ref);
    const paths = agentPaths(this.cfg, program);
    if (!existsSync(paths.metaFile) && !existsSync(paths.programFile)) throw agentNotFound(program);
    return this.lock.run(program, async () => {
      const meta = await this.readMeta(paths).catch(() => null);
      await this.withdrawRoute(ref, true);
      await this.unloadProgram(program, paths);
      const queued = await queuedEvents(paths.checkpointDir);
      const removeChannel = force || queued === 0;
      if (force) await rm(paths.varDir, { recursive: true, force: true });
      else if (removeChannel) await rm(paths.channelDir, { recursive: true, force: true });
      await rm(paths.serviceDir, { recursive: true, force: true });
      if (meta) {
        await this.ports.release(meta.port, program);
        await this.ports.release(meta.metricsPort, program);
      }
      this.progress.delete(program);
      this.countersCache.delete(program);
      this.log.info({ program, queued, force }, 'agent deleted');
      return {
        ...ref,
        program,
        channel: removeChannel ? 'removed' : 'kept',
        queuedEvents: queued,
        keptPath: force ? null : paths.varDir,
      };
    });
  }

  /** Every agent on disk with its status, from one getAllProcessInfo call. */
  async list(filter: { db?: string; state?: string } = {}): Promise<AgentStatus[]> {
    const infos = new Map((await this.driver.infoAll()).map((i) => [i.name, i]));
    const metas = await this.allMetas();
    const statuses = await Promise.all(
      metas
        .filter((m) => !filter.db || m.db === filter.db)
        .map((m) => this.statusOf(m, agentPaths(this.cfg, m.program), infos.get(m.program) ?? null)),
    );
    const wanted = filter.state?.toUpperCase();
    return statuses.filter((s) => !wanted || s.state === wanted);
  }

  /**
   * Makes Redis and supervisord agree with what is on disk (conf.d/ and services/), which is
   * the truth: Redis may have lost everything, a crash may have left half an operation.
   * - a program file without services/ metadata, or a supervisord agent without a program
   *   file: removed from supervisord (and disk);
   * - services/ metadata without a program file: removed, its ports released (var/ is kept);
   * - port reservations, table entries and routes nobody owns: removed;
   * - reservations and table entries of every agent: restored; routes follow readiness.
   * Tables busy with an operation are left alone. Idempotent: a second run reports nothing.
   */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { agents: 0, removedPrograms: [], removedHalfCreated: [], releasedPorts: [], removedRoutes: [], conflicts: [], routesChanged: [] };
    const onDisk = new Set(
      (await readdir(this.cfg.confDir).catch(() => [] as string[]))
        .filter((f) => f.endsWith('.conf'))
        .map((f) => f.slice(0, -'.conf'.length))
        .filter((p) => parseProgramName(p)),
    );
    const metas = await this.allMetas();
    const withMeta = new Set(metas.map((m) => m.program));
    const loaded = (await this.driver.infoAll()).map((i) => i.name).filter((p) => parseProgramName(p));

    for (const program of new Set([...onDisk, ...loaded])) {
      if (withMeta.has(program) && onDisk.has(program)) continue;
      await this.unlessBusy(program, async () => {
        const paths = agentPaths(this.cfg, program);
        if (existsSync(paths.metaFile) && existsSync(paths.programFile)) return;
        await this.unloadProgram(program, paths);
        report.removedPrograms.push(program);
        this.log.warn({ program }, 'reconcile: removed an agent program that has no metadata or no program file');
      });
    }
    for (const meta of metas) {
      if (onDisk.has(meta.program)) continue;
      await this.unlessBusy(meta.program, async () => {
        const paths = agentPaths(this.cfg, meta.program);
        if (existsSync(paths.programFile) || !existsSync(paths.metaFile)) return;
        await this.withdrawRoute(meta, true);
        await rm(paths.serviceDir, { recursive: true, force: true });
        await this.ports.release(meta.port, meta.program);
        await this.ports.release(meta.metricsPort, meta.program);
        withMeta.delete(meta.program);
        report.removedHalfCreated.push(meta.program);
        this.log.warn({ program: meta.program }, 'reconcile: removed a half-created agent (metadata without program); var/ kept');
      });
    }

    const live = (await this.allMetas()).filter((m) => onDisk.has(m.program));
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
    const reservations = await redisCall(() => this.redis.hgetall(this.keys.ports()));
    for (const [port, owner] of Object.entries(reservations)) {
      // A reservation of a table being created right now has no metadata yet: skip busy ones.
      if (owned.get(port) === owner || (await this.busy(owner))) continue;
      await this.ports.release(Number(port), owner);
      report.releasedPorts.push(Number(port));
      this.log.warn({ port, owner }, 'reconcile: released a port reservation nobody owns');
    }
    const tables = new Set(live.map((m) => `${m.db}:${m.table}`));
    if (live.length) await redisCall(() => this.redis.sadd(this.keys.tables(), ...tables));
    for (const entry of await redisCall(() => this.redis.smembers(this.keys.tables()))) {
      if (tables.has(entry)) continue;
      const [db = '', table = ''] = entry.split(':');
      if (await this.busy(programName({ db, table }))) continue;
      await this.withdrawRoute({ db, table }, true);
      report.removedRoutes.push(entry);
      this.log.warn({ table: entry }, 'reconcile: removed the route of a table that has no agent');
    }
    report.routesChanged = await this.syncRoutes();
    return report;
  }

  /**
   * Makes every route follow readiness: present exactly while the agent should run and its
   * source accepts connections. Changes are made under the table's lock; a table busy with an
   * operation is left to that operation. Returns the tables whose route changed.
   */
  async syncRoutes(): Promise<string[]> {
    const changed: string[] = [];
    for (const meta of await this.allMetas()) {
      const paths = agentPaths(this.cfg, meta.program);
      const wanted = async () =>
        (await this.desired(paths)) === 'running' && (await probeSource(meta.port)) === 'flume';
      const has = async () => (await redisCall(() => this.redis.exists(this.keys.route(meta.db, meta.table)))) === 1;
      if ((await wanted()) === (await has())) continue;
      await this.unlessBusy(meta.program, async () => {
        const want = await wanted();
        if (want === (await has())) return;
        if (want) await this.publishRoute(meta);
        else await this.withdrawRoute(meta);
        changed.push(meta.program);
        this.log.info({ program: meta.program, route: want ? 'published' : 'withdrawn' }, 'route follows readiness');
      });
    }
    return changed;
  }

  /** The operator's last word for a program: its autostart ('stopped' if it has no file). */
  async desiredState(program: string): Promise<'running' | 'stopped'> {
    return this.desired(agentPaths(this.cfg, program));
  }

  /** True while an operation holds the table's lock. */
  async busy(program: string): Promise<boolean> {
    return (await redisCall(() => this.redis.exists(this.keys.lock(program)))) === 1;
  }

  // --- internals ----------------------------------------------------------------------------

  /** Runs fn under the table's lock; a table busy with an operation is left to it. */
  private async unlessBusy(program: string, fn: () => Promise<void>): Promise<void> {
    try {
      await this.lock.run(program, fn);
    } catch (err) {
      if (!(err instanceof AppError && err.error === 'BUSY')) throw err;
    }
  }

  private checkSinkAvailable(spec: AgentSpec): void {
    if (spec.sink === 'hdfs' && !/hadoop-(common|client)/.test(this.cfg.FLUME_EXTRA_CLASSPATH)) {
      throw sinkUnavailable(
        'the hdfs sink needs Hadoop client jars: put them on FLUME_EXTRA_CLASSPATH (e.g. /opt/hadoop/share/hadoop/common/*:...)',
      );
    }
  }

  private async load(ref: TableRef): Promise<{ meta: AgentMeta; paths: AgentPaths }> {
    const program = programName(ref);
    const paths = agentPaths(this.cfg, program);
    if (!existsSync(paths.metaFile)) throw agentNotFound(program);
    return { meta: await this.readMeta(paths), paths };
  }

  private async readMeta(paths: AgentPaths): Promise<AgentMeta> {
    return JSON.parse(await readFile(paths.metaFile, 'utf8')) as AgentMeta;
  }

  private async allMetas(): Promise<AgentMeta[]> {
    const names = await readdir(this.cfg.servicesDir).catch(() => [] as string[]);
    const metas = await Promise.all(
      names
        .filter((n) => parseProgramName(n))
        .map((n) => this.readMeta(agentPaths(this.cfg, n)).catch(() => null)),
    );
    return metas.filter((m): m is AgentMeta => m !== null);
  }

  private classpath(paths: AgentPaths): string {
    return [paths.serviceDir, join(this.cfg.FLUME_LIB_DIR, '*'), this.cfg.FLUME_EXTRA_CLASSPATH]
      .filter(Boolean)
      .join(':');
  }

  private async writeProgram(meta: AgentMeta, paths: AgentPaths, autostart: boolean): Promise<void> {
    const text = renderProgram(
      meta,
      {
        program: meta.program,
        javaBin: this.cfg.JAVA_BIN,
        heap: this.cfg.AGENT_HEAP,
        classpath: this.classpath(paths),
        autostart,
        metricsPort: meta.metricsPort,
      },
      paths,
    );
    await writeAtomic(paths.programFile, text);
  }

  private async desired(paths: AgentPaths): Promise<'running' | 'stopped'> {
    try {
      const ini = parseIni(await readFile(paths.programFile, 'utf8'));
      const section = Object.values(ini)[0] as Record<string, unknown> | undefined;
      return section?.autostart === true || section?.autostart === 'true' ? 'running' : 'stopped';
    } catch {
      return 'stopped';
    }
  }

  /** Removes the program from disk and from supervisord (stopping it first). Idempotent. */
  private async unloadProgram(program: string, paths: AgentPaths): Promise<void> {
    await rm(paths.programFile, { force: true });
    await this.driver.update(program);
  }

  private async startLocked(meta: AgentMeta, paths: AgentPaths): Promise<void> {
    const info = await this.infoOrNull(meta.program);
    if (info && (info.state === 'RUNNING' || info.state === 'STARTING')) {
      if ((await this.desired(paths)) === 'running') {
        await this.waitReady(meta, paths);
        await this.publishRoute(meta);
        return;
      }
      await this.driver.stop(meta.program);
    }
    // The port is the table's for life: it must still be ours in Redis and free on the host.
    for (const port of [meta.port, meta.metricsPort]) {
      if (!(await this.ports.reserve(port, meta.program)) || !(await canBind(port))) throw portConflict(port);
    }
    const wasDesired = await this.desired(paths);
    try {
      await this.writeProgram(meta, paths, true);
      const applied = await this.driver.update(meta.program);
      // autostart starts an added or changed group; an unchanged one needs an explicit start.
      if (applied === 'unchanged') await this.driver.start(meta.program);
      await this.waitReady(meta, paths);
      await this.publishRoute(meta);
    } catch (err) {
      await this.driver.stop(meta.program).catch(() => undefined);
      await this.writeProgram(meta, paths, wasDesired === 'running').catch(() => undefined);
      await this.driver.update(meta.program).catch(() => undefined);
      throw err;
    }
  }

  private async stopLocked(meta: AgentMeta, paths: AgentPaths): Promise<void> {
    await this.withdrawRoute(meta);
    await this.driver.stop(meta.program);
    await this.writeProgram(meta, paths, false);
    await this.driver.update(meta.program);
  }

  private async infoOrNull(program: string): Promise<ProcessInfo | null> {
    try {
      return await this.driver.info(program);
    } catch (err) {
      if (err instanceof SupervisorFaultError && err.fault === 'BAD_NAME') return null;
      throw err;
    }
  }

  /** Waits until the process is up in supervisord and its HTTP source accepts connections. */
  private async waitReady(meta: AgentMeta, paths: AgentPaths): Promise<void> {
    const deadline = Date.now() + this.cfg.AGENT_READY_TIMEOUT_MS;
    let last: ProcessInfo | null = null;
    while (Date.now() < deadline) {
      last = await this.infoOrNull(meta.program);
      if (last && FAILED_STATES.includes(last.state)) break;
      // Accepting is the readiness that matters; supervisord's RUNNING only follows startsecs
      // (3 s) later, so STARTING with an accepting source counts as started.
      const up = last?.state === 'RUNNING' || last?.state === 'STARTING';
      if (up && (await probeSource(meta.port)) === 'flume') return;
      await sleep(100);
    }
    const state = last?.state ?? 'NOT_LOADED';
    const why = FAILED_STATES.includes(state as ProcessState)
      ? `the agent went ${state}${last?.description ? ` (${last.description})` : ''}`
      : `the agent did not accept connections within ${this.cfg.AGENT_READY_TIMEOUT_MS} ms (state ${state})`;
    throw agentStartFailed(`${meta.program} did not start: ${why}`, {
      state,
      logTail: await logTail(paths.logFile),
    });
  }

  /** Route and table membership together, and the gateway's cache entry dropped at once. */
  private async publishRoute(meta: AgentMeta): Promise<void> {
    const { db, table } = meta;
    await redisCall(() =>
      this.redis
        .multi()
        .set(this.keys.route(db, table), `127.0.0.1:${meta.port}`)
        .sadd(this.keys.tables(), `${db}:${table}`)
        .publish(this.keys.invalidateChannel(), `route:${db}:${table}`)
        .exec(),
    );
  }

  /** Withdraws the route; `forget` also drops the table from the set (delete). */
  private async withdrawRoute(meta: TableRef, forget = false): Promise<void> {
    const { db, table } = meta;
    const tx = this.redis.multi().del(this.keys.route(db, table));
    if (forget) tx.srem(this.keys.tables(), `${db}:${table}`);
    await redisCall(() => tx.publish(this.keys.invalidateChannel(), `route:${db}:${table}`).exec());
  }

  private async statusOf(meta: AgentMeta, paths: AgentPaths, known?: ProcessInfo | null): Promise<AgentStatus> {
    const info = known === undefined ? await this.infoOrNull(meta.program) : known;
    const running = info?.state === 'RUNNING' || info?.state === 'STARTING';
    const [desired, probe, counters] = await Promise.all([
      this.desired(paths),
      running ? probeSource(meta.port) : Promise.resolve(null),
      running ? this.counters(meta) : Promise.resolve(null),
    ]);
    const { lastEventAt, lastEventAgeSeconds, sinkStalledSeconds } = this.trackProgress(meta.program, counters);
    const { health, reason } = assessHealth({ desired, info, probe, port: meta.port, counters, sinkStalledSeconds });
    return {
      db: meta.db,
      table: meta.table,
      program: meta.program,
      sink: meta.spec.sink,
      state: info?.state ?? 'NOT_LOADED',
      desired,
      pid: running && info?.pid ? info.pid : null,
      uptimeSeconds: running && info?.start ? Math.max(0, info.now - info.start) : null,
      startedAt: running && info?.start ? new Date(info.start * 1000).toISOString() : null,
      accepting: probe === 'flume',
      health,
      healthReason: reason,
      metrics: counters ? { ...counters, lastEventAt, lastEventAgeSeconds } : null,
      description: info?.description ?? 'supervisord has not loaded this program',
    };
  }

  private counters(meta: AgentMeta): Promise<FlumeCounters | null> {
    const hit = this.countersCache.get(meta.program);
    if (hit && Date.now() - hit.at < COUNTERS_TTL_MS) return hit.value;
    const value = readFlumeMetrics(meta.metricsPort);
    this.countersCache.set(meta.program, { at: Date.now(), value });
    return value;
  }

  /** Turns counters into ages: when events last arrived, and how long the sink has stalled. */
  private trackProgress(program: string, c: FlumeCounters | null) {
    if (!c) return { lastEventAt: null, lastEventAgeSeconds: null, sinkStalledSeconds: null };
    const now = Date.now();
    const prev = this.progress.get(program);
    // Counters restart at 0 with the JVM: a drop is a new process, not a negative rate.
    const fresh = !prev || c.eventsAccepted < prev.accepted || c.eventsDrained < prev.drained;
    const p = fresh
      ? { accepted: c.eventsAccepted, acceptedAt: c.eventsAccepted > 0 ? now : null, drained: c.eventsDrained, drainedAt: now }
      : { ...prev };
    if (c.eventsAccepted > p.accepted) Object.assign(p, { accepted: c.eventsAccepted, acceptedAt: now });
    if (c.eventsDrained > p.drained || c.channelSize === 0) Object.assign(p, { drained: c.eventsDrained, drainedAt: now });
    this.progress.set(program, p);
    return {
      lastEventAt: p.acceptedAt === null ? null : new Date(p.acceptedAt).toISOString(),
      lastEventAgeSeconds: p.acceptedAt === null ? null : Math.round((now - p.acceptedAt) / 1000),
      sinkStalledSeconds: c.channelSize > 0 ? Math.round((now - p.drainedAt) / 1000) : null,
    };
  }
}
