import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { AppError } from '../errors.js';
import { readFlumeMetrics } from '../flume/client.js';
import { queuedEvents } from '../flume/checkpoint.js';
import { periodic, type Periodic } from '../periodic.js';
import { parseProgramName } from '../resources/table.js';
import { revisionOf, type AgentMeta, type StandInRecord } from '../store/agent-store.js';
import { writeAtomic } from '../store/files.js';
import { agentPaths, STAND_IN_SUFFIX, standInProgram } from '../store/paths.js';
import type { StandInPhase } from '../resources/agent-status.js';
import { infoOrNull, UP_STATES } from '../supervisor/driver.js';
import type { HostParts } from './host-parts.js';
import { flumeConfFor, programFor } from './launch.js';
import { logSize, waitReady } from './readiness.js';
import type { StartQueue } from './start-queue.js';

/**
 * Stand-ins: restarts and config changes with no refusal window.
 *
 * A change that needs a new JVM (restart, a config change, the healer's restart, a bulk restart)
 * first starts a stand-in beside the running agent: the same table's agent with the new
 * revision, on its own two ports and its own channel (`flume-<db>-<table>-standin`, its files
 * under services/ and var/ by that name; a file_roll sink writes into the table's own out/).
 * Once it accepts events the table's route points to it in one step (every gateway worker drops
 * its cached route at once), the agent is restarted on its own port and channel (the events it
 * held replay into its sink), and once it accepts again the route points back to it. The
 * stand-in then takes no new events: it drains what it took into the sink and is removed.
 *
 * Guarantees:
 * - A stand-in that does not accept events within the ready timeout is removed (it never took
 *   an event) and the change fails with the running agent untouched (`details.keptRunning`).
 * - One stand-in per table at a time: a change while one still drains makes it serve again.
 * - A stand-in is removed only after it was stopped with an empty channel (its checkpoint says
 *   so); one that still holds events is started again until it drained. Its record on disk
 *   (services/<stand-in>/agent.json) outlives an API that dies mid-change: whichever API runs
 *   next finishes the switch back (the route returns to the agent once it accepts) and drains it.
 * - Used only where it helps: an agent that runs, accepts and is routed here (not paused, not
 *   fenced, not a table another host takes), with room for a second JVM.
 */

/** After the route moved, how long requests already on their way to the old address get to finish. */
export const SWITCH_SETTLE_MS = 400;
/** How often stand-ins that only drain are looked at. */
export const STAND_IN_CHECK_MS = 1000;

/** Whether a route value sends events to 127.0.0.1:<port> (whatever its transaction capacity). */
export function routedTo(route: string | null | undefined, port: number): boolean {
  return typeof route === 'string' && (route === `127.0.0.1:${port}` || route.startsWith(`127.0.0.1:${port} `));
}

/** Thrown when a change could not start its stand-in: the running agent was not touched. */
export function keptRunning(err: unknown): boolean {
  return err instanceof AppError && err.details?.keptRunning === true;
}

/** The channel holds no event: its checkpoint says 0, or it never wrote one nor any data. */
async function channelEmpty(checkpointDir: string, dataDir: string): Promise<boolean> {
  const queued = await queuedEvents(checkpointDir);
  if (queued !== null) return queued === 0;
  return (await readdir(dataDir).catch(() => [] as string[])).length === 0;
}

export class StandIns {
  private job: Periodic | null = null;
  /** Programs whose stand-in was logged as left serving (said once). */
  private readonly told = new Set<string>();

  constructor(
    private readonly parts: HostParts,
    private readonly startQueue: StartQueue,
    /** Whether the host has memory for one more JVM like this agent's (the capacity check). */
    private readonly roomFor: (meta: AgentMeta) => Promise<boolean>,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.job = periodic('stand-ins', STAND_IN_CHECK_MS, () => this.tidy(), this.log);
  }

  async stop(): Promise<void> {
    await this.job?.stop();
  }

  /** The table's stand-in record, or null. */
  private read(program: string): Promise<StandInRecord | null> {
    return this.parts.store.readStandIn(program);
  }

  /**
   * Runs `replace` (which stops the agent and starts it with `next` (on disk already), publishing its route once it
   * accepts) while a stand-in running `next` takes the table's events. Returns false, having done
   * nothing, where a stand-in does not apply (the caller restarts in place). Throws the stand-in's
   * start failure with `details.keptRunning` (the agent untouched), or `replace`'s failure (the
   * stand-in then keeps serving until the agent accepts again). The caller holds the table's lock.
   */
  async cover(next: AgentMeta, replace: () => Promise<void>): Promise<boolean> {
    const { cfg, routes, lock } = this.parts;
    if (!cfg.AGENT_STAND_IN || routes.fenced || routes.elsewhere(next) || next.paused) return false;
    const [route] = await routes.values([next]);
    const existing = await this.read(next.program);
    // A stand-in helps where the agent runs and should take events (routed to it, or not
    // routed only because its source stopped accepting: the healer's case), or where a stand-in
    // already serves. An agent that is down starts as fast by itself.
    const info = await infoOrNull(this.parts.driver, next.program);
    const up = info !== null && UP_STATES.includes(info.state) && (await this.parts.store.desired(next.program)) === 'running';
    const serving = existing !== null && routedTo(route, existing.port);
    if (!serving && !(up && (route === null || routedTo(route, next.port)))) return false;
    const log = this.log.child({ program: next.program });
    let release: (() => Promise<void>) | null = null;
    for (const deadline = Date.now() + 15_000; !release; ) {
      try {
        release = await lock.acquire(standInProgram(next.program), 'switch');
      } catch (err) {
        if (!(err instanceof AppError && err.error === 'BUSY') || Date.now() > deadline) {
          log.warn({ err }, 'the stand-in of this table is busy: restarting in place');
          return false;
        }
        await sleep(100);
      }
    }
    try {
      let standIn = await this.read(next.program);
      if (!standIn && !(await this.roomFor(next))) {
        log.warn('not enough memory for a second JVM of this table: restarting in place (senders are refused while it starts)');
        return false;
      }
      standIn = standIn ? await this.serveAgain(standIn) : await this.launch(next);
      // The route moves in one step; requests already on their way to the agent finish first.
      await routes.publish(standIn);
      await this.setPhase(standIn, 'serving');
      await sleep(SWITCH_SETTLE_MS);
      await replace();
      // replace published the agent's route: the stand-in takes no new events from now on.
      await this.setPhase(standIn, 'draining');
      log.info({ revision: revisionOf(next) }, 'the agent accepts again: its stand-in drains and goes');
      return true;
    } finally {
      await release();
    }
  }

  /** A stand-in that still drains serves again (it accepts: its source was never closed). */
  private async serveAgain(r: StandInRecord): Promise<StandInRecord> {
    const info = await infoOrNull(this.parts.driver, r.program);
    if (!info || !UP_STATES.includes(info.state)) await this.parts.driver.start(r.program);
    await waitReady(this.parts.driver, r, agentPaths(this.parts.cfg, r.program).logFile, this.parts.cfg.AGENT_READY_TIMEOUT_MS);
    return r;
  }

  /** Starts a stand-in running `next` and waits until it accepts; on failure removes it and throws with keptRunning. */
  private async launch(next: AgentMeta): Promise<StandInRecord> {
    const { cfg, store, driver, ports } = this.parts;
    const program = standInProgram(next.program);
    const paths = agentPaths(cfg, program);
    const log = this.log.child({ program: next.program });
    const allocated: number[] = [];
    try {
      for (let i = 0; i < 2; i++) allocated.push(await ports.allocate(program));
      const [port, metricsPort] = allocated as [number, number];
      const r: StandInRecord = {
        ...next,
        program,
        port,
        metricsPort,
        paused: null,
        standInOf: next.program,
        phase: 'starting',
        since: new Date().toISOString(),
      };
      for (const d of [paths.serviceDir, paths.checkpointDir, paths.dataDir]) await mkdir(d, { recursive: true });
      await chmod(paths.varDir, 0o750);
      // A file_roll sink writes where the table's own output is.
      const out = agentPaths(cfg, next.program).outDir;
      await mkdir(out, { recursive: true });
      await writeAtomic(paths.flumeConf, flumeConfFor(cfg, { ...next, port }, { ...paths, outDir: out, quarantineDir: agentPaths(cfg, next.program).quarantineDir }));
      await store.writeMeta(r);
      await store.writeProgram(program, programFor(cfg, r, true));
      const apply = await driver.stage(program);
      await this.startQueue.run(next.program, async () => {
        const logFrom = await logSize(paths.logFile);
        await apply();
        await waitReady(driver, r, paths.logFile, cfg.AGENT_READY_TIMEOUT_MS, logFrom);
      });
      log.info({ revision: revisionOf(next) }, 'stand-in accepts events beside the agent');
      return r;
    } catch (err) {
      log.warn({ err }, 'the stand-in did not start: the running agent is left as it was');
      await this.remove(program, allocated).catch((e: unknown) => log.error({ err: e }, 'could not remove the stand-in that did not start'));
      if (err instanceof AppError) {
        throw new AppError(err.code, err.error, err.statusCode, `${err.message}; the running agent was not touched and serves on`, { ...err.details, keptRunning: true });
      }
      throw err;
    }
  }

  private async setPhase(r: StandInRecord, phase: StandInPhase): Promise<void> {
    Object.assign(r, { phase, since: new Date().toISOString() });
    await this.parts.store.writeMeta(r);
  }

  /** Unloads a stand-in and removes its files and ports. Its channel must be empty (or never used). */
  private async remove(program: string, ports: number[]): Promise<void> {
    const { store, driver } = this.parts;
    const paths = agentPaths(this.parts.cfg, program);
    await store.removeProgramFile(program);
    await driver.update(program);
    await rm(paths.varDir, { recursive: true, force: true });
    await rm(paths.serviceDir, { recursive: true, force: true });
    for (const p of ports) await this.parts.ports.release(p, program);
  }

  /** Every stand-in record on disk. */
  private async all(): Promise<StandInRecord[]> {
    const names = (await readdir(this.parts.cfg.servicesDir).catch(() => [] as string[])).filter(
      (n) => n.endsWith(STAND_IN_SUFFIX) && parseProgramName(n.slice(0, -STAND_IN_SUFFIX.length)),
    );
    const records = await Promise.all(names.map((n) => this.read(n.slice(0, -STAND_IN_SUFFIX.length))));
    return records.filter((r): r is StandInRecord => r !== null);
  }

  /**
   * Looks at each stand-in no change is using: one whose change ended (or whose API died) is
   * switched back once the agent accepts, and one that no longer serves drains and goes.
   */
  private async tidy(): Promise<void> {
    for (const r of await this.all()) {
      await this.tidyOne(r).catch((err: unknown) => {
        if (!(err instanceof AppError && err.error === 'BUSY')) this.log.warn({ err, program: r.standInOf }, 'tidying a stand-in failed; retrying');
      });
    }
  }

  private async tidyOne(r: StandInRecord): Promise<void> {
    const { lock } = this.parts;
    if (await lock.busy(standInProgram(r.standInOf))) return; // a change uses it
    if (r.phase !== 'draining') {
      // Left by a change that ended without switching back (the agent did not start, or the API died).
      await lock.run(r.standInOf, 'standin', () => lock.run(r.program, 'tidy', () => this.settle(r)));
      return;
    }
    await lock.run(r.program, 'drain', () => this.drain(r));
  }

  /** A stand-in a change left: the route goes back to the agent once it accepts; else it serves on. */
  private async settle(r0: StandInRecord): Promise<void> {
    const { routes, store } = this.parts;
    const r = await this.read(r0.standInOf);
    if (!r || r.phase === 'draining') return;
    const meta = await store.readMeta(r.standInOf);
    const [route] = await routes.values([r]);
    if (!routedTo(route, r.port)) {
      await this.setPhase(r, 'draining');
      return;
    }
    const info = meta ? await infoOrNull(this.parts.driver, meta.program) : null;
    const accepting = meta !== null && info !== null && UP_STATES.includes(info.state) && (await readFlumeMetrics(meta.metricsPort))?.channelOpen === true;
    if (meta && accepting && !meta.paused && (await store.desired(meta.program)) === 'running') {
      await routes.publish(meta);
      await this.setPhase(r, 'draining');
      this.told.delete(r.standInOf);
      this.log.info({ program: r.standInOf }, 'the agent accepts again: the route is back on it, its stand-in drains and goes');
      return;
    }
    if (!this.told.has(r.standInOf)) {
      this.told.add(r.standInOf);
      this.log.warn({ program: r.standInOf }, 'the agent does not accept events: its stand-in takes them until it does (restart the table, or the healer does)');
    }
    // A change that died between stopping the agent and starting it again left it stopped.
    if (meta && !meta.paused && (await store.desired(meta.program)) === 'running' && info && ['STOPPED', 'EXITED', 'FATAL'].includes(info.state)) {
      this.log.info({ program: r.standInOf, state: info.state }, 'starting the agent its stand-in stands in for');
      await this.parts.driver.start(meta.program).catch((err: unknown) => this.log.warn({ err, program: r.standInOf }, 'the agent did not start; its stand-in serves on'));
    }
  }

  /** A draining stand-in: stopped and removed once its channel is empty, else (re)started to drain. */
  private async drain(r0: StandInRecord): Promise<void> {
    const { cfg, driver } = this.parts;
    const r = await this.read(r0.standInOf);
    if (!r || r.phase !== 'draining') return;
    const paths = agentPaths(cfg, r.program);
    // A gateway that missed the route's change uses its cached route at most this long.
    if (Date.now() - Date.parse(r.since) < cfg.GATEWAY_CACHE_TTL_MS + SWITCH_SETTLE_MS) return;
    const info = await infoOrNull(driver, r.program);
    if (!info || !UP_STATES.includes(info.state)) {
      if (await channelEmpty(paths.checkpointDir, paths.dataDir)) return this.retire(r);
      await driver.start(r.program).catch((err: unknown) => this.log.warn({ err, program: r.standInOf }, 'could not start the stand-in to drain its channel'));
      return;
    }
    const counters = await readFlumeMetrics(r.metricsPort);
    if (!counters || !counters.channelOpen || counters.channelSize > 0) return;
    await driver.stop(r.program);
    // An event that came in after the look above is in the checkpoint: it drains first.
    if (!(await channelEmpty(paths.checkpointDir, paths.dataDir))) {
      await driver.start(r.program);
      return;
    }
    await this.retire(r);
  }

  private async retire(r: StandInRecord): Promise<void> {
    await this.remove(r.program, [r.port, r.metricsPort]);
    this.log.info({ program: r.standInOf }, 'the stand-in drained into the sink and is gone');
  }
}
