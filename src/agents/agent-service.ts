import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AppError, agentExists, agentNotFound, nodeNotFound, notClustered, portConflict, tableHeld } from '../errors.js';
import type { Created, Lifecycle } from './lifecycle.js';
import type { HostParts } from './host-parts.js';
import { tableHolders } from '../supervisor/strays.js';
import { StartQueue } from './start-queue.js';
import type { FleetModel } from '../fleet/fleet-model.js';
import type { AgentStatus, DeleteResult } from '../resources/agent-status.js';
import { infoOrNull, type SupervisorDriver } from '../supervisor/driver.js';
import { revisionOf, type AgentMeta, type AgentStore } from '../store/agent-store.js';
import { queuedEvents } from '../flume/checkpoint.js';
import { programName, type TableRef } from '../resources/table.js';
import { PortAllocator, canBind } from './port-allocator.js';
import { programFor } from './launch.js';
import { logSize, waitReady } from './readiness.js';
import { assertSinkAvailable } from './sink-catalog.js';
import type { RouteTable } from './route-table.js';
import { resolveSpec, specDifferences, type AgentSpec } from '../resources/agent-spec.js';
import type { TableLock } from './table-lock.js';
import type { StandIns } from './stand-in.js';
import { layDown, writeFlumeConf, type Handover } from './agent-files.js';
import { stopHung } from './hung-stop.js';

/**
 * The agent lifecycle: create, start, stop, restart, delete; status and list read the fleet.
 *
 * Guarantees:
 * - One operation per table at a time (TableLock): a concurrent one gets 409 BUSY. The agent's
 *   metadata is read inside the lock, so a start racing a delete cannot bring the agent back.
 * - create/start/restart return once the agent accepts connections, or fail and undo all they
 *   did: a failed create leaves no port, file, route or program behind.
 * - stop, restart and delete never remove channel data that still holds events unless asked.
 * - The program's autostart is the desired state, so a restarted supervisord brings back
 *   exactly the agents that should run.
 * - Every operation updates the fleet model for its agent before it answers.
 * - Every JVM start (create, start, restart, and the bulk, config and healing paths that call
 *   them) runs through the host's StartQueue: at most AGENT_START_CONCURRENCY at once, in order;
 *   a waiting table shows `queue` in its status. Stops, status and listings never wait.
 */
export class AgentService implements Lifecycle {
  private readonly cfg: Config;
  private readonly store: AgentStore;
  private readonly routes: RouteTable;
  private readonly lock: TableLock;
  private readonly driver: SupervisorDriver;
  private readonly ports: PortAllocator;

  constructor(
    parts: HostParts,
    private readonly fleet: FleetModel,
    private readonly log: Logger,
    /** Every JVM start waits its turn here (at most AGENT_START_CONCURRENCY at once). */
    private readonly startQueue: StartQueue = new StartQueue(Number.MAX_SAFE_INTEGER),
    /** Restarts behind a stand-in (no refusal window); null: always in place. */
    private readonly standIns: StandIns | null = null,
  ) {
    ({ cfg: this.cfg, store: this.store, routes: this.routes, lock: this.lock, driver: this.driver, ports: this.ports } = parts);
  }

  /**
   * Renders, reserves ports, writes and registers the agent; with `start` (the default) starts
   * it and answers once its source accepts events, else leaves it stopped (desired stopped).
   */
  async create(ref: TableRef, body: unknown, opts: { start?: boolean; by?: string; node?: string; handover?: Handover } = {}): Promise<Created> {
    if (opts.node !== undefined && opts.node !== this.cfg.NODE_ID) throw nodeNotFound(opts.node); // one host: the only node
    const start = opts.start ?? true;
    const spec = resolveSpec(body, ref, { defaultHeap: this.cfg.AGENT_HEAP, maxHeap: this.cfg.AGENT_MAX_HEAP });
    assertSinkAvailable(this.cfg, spec.sink);
    const program = programName(ref);
    const paths = this.store.paths(program);
    const log = this.log.child({ program });
    // The same create again (a client that timed out): its agent, from what is on disk, no lock taken.
    const done = await this.sameAsCreated(program, spec);
    if (done) return done;
    // A create of this table under way (the first try of a client that timed out): its outcome decides.
    return this.afterCreates(program, () => this.lock.run(program, 'create', async (): Promise<Created> => {
      if (this.store.hasMeta(program) || this.store.hasProgram(program)) {
        const existing = await this.store.readMeta(program);
        const differences = existing ? specDifferences(existing.spec, spec) : [{ field: '(spec)', existing: null, requested: spec }];
        if (differences.length) throw agentExists(program, differences);
        return { status: await this.observed(program), created: false };
      }
      const undo: Array<() => Promise<unknown>> = [];
      try {
        const meta = await layDown({ cfg: this.cfg, store: this.store, ports: this.ports }, ref, spec, { start, by: opts.by ?? 'service' }, undo, (p) => this.unloadProgram(p), opts.handover);
        const port = meta.port;
        // supervisord re-reads the file now; the group is added (with autostart, its JVM
        // spawned) once the start's turn comes. A stopped program starts no JVM: no turn to wait.
        const apply = await this.driver.stage(program);
        if (start) {
          await this.startQueue.run(program, async () => {
            const logFrom = await logSize(paths.logFile);
            await apply();
            await waitReady(this.driver, meta, paths.logFile, this.cfg.AGENT_READY_TIMEOUT_MS, logFrom);
          });
        } else {
          await apply();
        }
        if (start) await this.routes.publish(meta);
        log.info({ port, sink: spec.sink, started: start }, 'agent created');
        return { status: await this.observed(program), created: true };
      } catch (err) {
        log.warn({ err }, 'create failed; rolling back');
        for (const step of undo.reverse()) {
          await step().catch((e: unknown) => log.error({ err: e }, 'rollback step failed'));
        }
        this.fleet.forget(program);
        throw err;
      }
    }));
  }

  /**
   * The existing agent when its desired spec is `spec` and no operation holds the table (its
   * create is over, not rolling back); null otherwise: the create goes on and decides under the lock.
   */
  private async sameAsCreated(program: string, spec: AgentSpec): Promise<Created | null> {
    if (!this.store.hasMeta(program) || (await this.lock.busy(program))) return null;
    const existing = await this.store.readMeta(program);
    if (!existing || specDifferences(existing.spec, spec).length) return null;
    const status = await this.status(existing).catch(() => null);
    return status ? { status, created: false } : null;
  }

  /** Runs `fn`; while another create holds the table, waits for it (a start's ready timeout and queue at most) and tries again (TableLock itself waits out the service's reconcile). */
  private async afterCreates<T>(program: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.cfg.AGENT_READY_TIMEOUT_MS + 120_000;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const creating = err instanceof AppError && err.error === 'BUSY' && err.details?.operation === 'create';
        if (!creating || Date.now() > deadline) throw err;
        await sleep(250);
      }
    }
  }

  async start(ref: TableRef): Promise<AgentStatus> {
    const program = programName(ref);
    return this.lock.run(program, 'start', async () => {
      await this.startHeld(await this.loadMeta(program));
      return this.observed(program);
    });
  }

  async stop(ref: TableRef): Promise<AgentStatus> {
    const program = programName(ref);
    return this.lock.run(program, 'stop', async () => {
      const meta = await this.loadMeta(program);
      await this.routes.withdraw(meta);
      await this.driver.stop(program);
      await this.store.writeProgram(meta.program, programFor(this.cfg, meta, false));
      await this.driver.update(program);
      return this.observed(program);
    });
  }

  async restart(ref: TableRef): Promise<AgentStatus> {
    const program = programName(ref);
    return this.lock.run(program, 'restart', async () => {
      await this.restartHeld(await this.loadMeta(program));
      return this.observed(program);
    });
  }

  /** Pauses intake: the gateway answers 503 AGENT_PAUSED; the agent runs on and drains its channel. */
  async pause(ref: TableRef, by: string): Promise<AgentStatus> {
    return this.setPaused(ref, { since: new Date().toISOString(), by });
  }

  async resume(ref: TableRef): Promise<AgentStatus> {
    return this.setPaused(ref, null);
  }

  /**
   * The service's own restart of an agent that does not recover (src/recovery/healer.ts), under
   * the table's lock as 'heal'. `hung`: its JVM may not answer SIGTERM (a hang), so it is killed
   * if it has not gone HUNG_STOP_MS after the stop began; Flume's file channel replays what it held.
   */
  async heal(ref: TableRef, hung: boolean): Promise<AgentStatus> {
    const program = programName(ref);
    return this.lock.run(program, 'heal', async () => {
      await this.restartHeld(await this.loadMeta(program), hung);
      return this.observed(program);
    });
  }

  /**
   * Stop, then start with `meta` (same port, same channel), `meta` already on disk. A running,
   * routed agent restarts behind a stand-in (src/agents/stand-in.ts): senders are not refused
   * meanwhile, and a `meta` whose JVM does not accept events fails with the agent untouched
   * (`details.keptRunning`). Else in place: the route is withdrawn until it accepts again. The
   * caller holds the table's lock.
   */
  async restartHeld(meta: AgentMeta, hung = false): Promise<void> {
    const replace = async () => {
      await (hung ? stopHung(this.driver, meta.program) : this.driver.stop(meta.program));
      await this.startHeld(meta);
    };
    if (await this.standIns?.cover(meta, replace)) return;
    await this.routes.withdraw(meta);
    await replace();
  }

  /**
   * The agent's status from the fleet model (no call leaves the API), or observed live with
   * `fresh`. 404 if the table has no agent.
   */
  async status(ref: TableRef, fresh = false): Promise<AgentStatus> {
    const program = programName(ref);
    const known = fresh ? undefined : this.fleet.status(program);
    if (known) return known;
    // Not in the model yet (created by another API process a moment ago), or asked for fresh.
    const s = await this.fleet.observe(program);
    if (!s) throw agentNotFound(program);
    return s;
  }

  list(filter: { db?: string; state?: string } = {}): AgentStatus[] {
    return this.fleet.list(filter);
  }

  /** The fleet model's last status of one program (a map lookup; undefined if it has no agent here). */
  known(program: string): AgentStatus | undefined {
    return this.fleet.status(program);
  }

  listVersion(): string {
    return String(this.fleet.version);
  }

  async delete(ref: TableRef, force: boolean): Promise<DeleteResult> {
    const program = programName(ref);
    const paths = this.store.paths(program);
    return this.lock.run(program, 'delete', async () => {
      if (!this.store.hasMeta(program) && !this.store.hasProgram(program)) throw agentNotFound(program);
      const meta = await this.store.readMeta(program);
      await this.routes.withdraw(ref, true);
      await this.unloadProgram(program);
      const queued = await queuedEvents(paths.checkpointDir);
      const removeChannel = force || queued === 0;
      if (force) await rm(paths.varDir, { recursive: true, force: true });
      else if (removeChannel) await rm(paths.channelDir, { recursive: true, force: true });
      await this.store.removeServiceDir(program);
      if (meta) {
        await this.ports.release(meta.port, program);
        await this.ports.release(meta.metricsPort, program);
      }
      this.fleet.forget(program);
      this.log.info({ program, queued, force }, 'agent deleted');
      return { ...ref, program, channel: removeChannel ? 'removed' : 'kept', queuedEvents: queued, keptPath: force ? null : paths.varDir };
    });
  }

  /** One host: there is no other to move to. */
  async move(): Promise<never> {
    throw notClustered('this host runs alone (ETCD_ENDPOINTS is empty): there is no other host to move a table to');
  }

  /** Removes the program from disk and from supervisord (stopping it first). Idempotent. */
  async unloadProgram(program: string): Promise<void> {
    await this.store.removeProgramFile(program);
    await this.driver.update(program);
  }

  // --- internals ----------------------------------------------------------------------------

  /** Metadata of an existing agent; 404 if it has none. Call it inside the table's lock. */
  private async loadMeta(program: string): Promise<AgentMeta> {
    const meta = await this.store.readMeta(program);
    if (!meta) throw agentNotFound(program);
    return meta;
  }

  /** Observes the agent now (the fleet model updated), 404 if it has none. */
  async observed(program: string): Promise<AgentStatus> {
    const s = await this.fleet.observe(program);
    if (!s) throw agentNotFound(program);
    return s;
  }

  private async setPaused(ref: TableRef, paused: AgentMeta['paused']): Promise<AgentStatus> {
    const program = programName(ref);
    return this.lock.run(program, paused ? 'pause' : 'resume', async () => {
      const meta = await this.loadMeta(program);
      if (Boolean(meta.paused) !== Boolean(paused)) {
        const next = { ...meta, paused };
        await this.store.writeMeta(next);
        // A published route changes its value at once (the gateway drops its cached entry).
        if ((await this.routes.values([meta]))[0]) await this.routes.publish(next);
        this.log.info({ program, paused: Boolean(paused) }, paused ? 'intake paused' : 'intake resumed');
      }
      return this.observed(program);
    });
  }

  /**
   * Starts the agent with `meta` and waits until it accepts events; on failure stops it and
   * restores the desired state it had. The caller holds the table's lock.
   */
  async startHeld(meta: AgentMeta): Promise<void> {
    const info = await infoOrNull(this.driver, meta.program);
    if (info && (info.state === 'RUNNING' || info.state === 'STARTING')) {
      if ((await this.store.desired(meta.program)) === 'running') {
        await waitReady(this.driver, meta, this.store.paths(meta.program).logFile, this.cfg.AGENT_READY_TIMEOUT_MS);
        await this.routes.publish(meta);
        return;
      }
      await this.driver.stop(meta.program);
    }
    // One JVM per table: one that supervisord does not run (left by a supervisord that died)
    // would keep the port and the channel, and a second would never accept events.
    const foreign = tableHolders(this.cfg, meta.program, null);
    if (foreign.length) throw tableHeld(meta.program, foreign);
    // The port is the table's for life: it must still be ours in Redis and free on the host.
    for (const port of [meta.port, meta.metricsPort]) {
      if (!(await this.ports.reserve(port, meta.program)) || !(await canBind(port))) throw portConflict(port);
    }
    const wasDesired = await this.store.desired(meta.program);
    try {
      // flume.conf follows the spec and this host's settings at every start; supervisord re-reads
      // the program before the turn; the JVM start waits its turn, its ready timeout with it.
      await writeFlumeConf(this.cfg, meta, this.store.paths(meta.program));
      await this.store.writeProgram(meta.program, programFor(this.cfg, meta, true));
      const apply = await this.driver.stage(meta.program);
      await this.startQueue.run(meta.program, async () => {
        // Where this start's log lines begin: driver.start returns only past startsecs (3 s),
        // when Flume has long written why it failed.
        const logFile = this.store.paths(meta.program).logFile;
        const logFrom = await logSize(logFile);
        const applied = await apply();
        // autostart starts an added or changed group; an unchanged one needs an explicit start.
        if (applied === 'unchanged') await this.driver.start(meta.program);
        await waitReady(this.driver, meta, logFile, this.cfg.AGENT_READY_TIMEOUT_MS, logFrom);
      });
      if (meta.runningRevision !== revisionOf(meta)) await this.store.writeMeta({ ...meta, runningRevision: revisionOf(meta) });
      await this.routes.publish(meta);
    } catch (err) {
      await this.driver.stop(meta.program).catch(() => undefined);
      await this.store.writeProgram(meta.program, programFor(this.cfg, meta, wasDesired === 'running')).catch(() => undefined);
      await this.driver.update(meta.program).catch(() => undefined);
      throw err;
    }
  }
}
