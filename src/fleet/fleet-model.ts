import type { QueuePlace, StartQueue } from '../agents/start-queue.js';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { AgentMeta, AgentStore, Desired } from '../agents/agent-store.js';
import { assessHealth, type Health } from '../agents/health.js';
import { parseProgramName, type TableRef } from '../agents/names.js';
import { revisionPair, type RevisionPair } from '../agents/revisions.js';
import { RateWindow, processUsage, usableSpace, type HistoryPoint } from './samples.js';

const mib = (b: number) => Math.round(b / 1_048_576).toLocaleString('en-US');
import type { Config } from '../config.js';
import { probeSource, readFlumeMetrics, type FlumeCounters, type SourceProbe } from '../flume/client.js';
import { periodic, type Periodic } from '../periodic.js';
import { blockingReader } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import { infoOrNull, type ProcessInfo, type ProcessState, type SupervisorDriver } from '../supervisor/driver.js';

/** Flume's counters out of a status's metrics (without the ages the model adds). */
function countersOf(m: AgentMetrics): FlumeCounters {
  const { lastEventAt: _a, lastEventAgeSeconds: _b, ...c } = m;
  return c;
}

/** Nothing to watch closely: the channel is open and empty and no counter moved since the read before. */
function isQuiet(c: FlumeCounters, prev: FlumeCounters | null): boolean {
  return (
    prev !== null && c.channelOpen && c.channelSize === 0 && c.eventsReceived === prev.eventsReceived && c.eventsAccepted === prev.eventsAccepted &&
    c.eventsDrained === prev.eventsDrained && c.sinkWriteFailures === prev.sinkWriteFailures && c.sinkConnectionFailures === prev.sinkConnectionFailures
  );
}

/** supervisord's state, plus NOT_LOADED when the program file exists but supervisord lacks it. */
export type AgentState = ProcessState | 'NOT_LOADED';

export interface AgentMetrics extends FlumeCounters {
  lastEventAt: string | null;
  lastEventAgeSeconds: number | null;
}

export interface AgentStatus extends TableRef {
  program: string;
  sink: string;
  state: AgentState;
  /** What the operator asked for last: the program's autostart. */
  desired: Desired;
  pid: number | null;
  uptimeSeconds: number | null;
  /** When the running process started (stable across polls, unlike uptimeSeconds). */
  startedAt: string | null;
  /** Flume's HTTP source answered when this was observed. */
  accepting: boolean;
  health: Health;
  healthReason: string;
  /** Flume's counters while it runs; null when stopped or its metrics do not answer. */
  metrics: AgentMetrics | null;
  revision: RevisionPair;
  /** Events per second in (accepted) and out (drained) over the last minute; null until known. */
  rates: { inPerSecond: number; outPerSecond: number } | null;
  /** The JVM's resident memory and CPU (% of one core since the last observation); null when not running. */
  resources: { rssBytes: number; cpuPercent: number | null } | null;
  /** Free disk where the channel lives, and the minimum below which Flume refuses events. */
  disk: { usableBytes: number; minimumRequiredBytes: number } | null;
  /** Intake paused by an operator (the gateway answers 503 AGENT_PAUSED). */
  paused: boolean;
  /** The channel is empty; null when not known (the agent is not running). */
  drained: boolean | null;
  description: string;
  /** When all of the above was observed. */
  observedAt: string;
  /** Waiting for the host's start queue (create, start, restart); null when not waiting. */
  queue: QueuePlace | null;
}

/** A process state change of an agent, as streamed to dashboards. */
export interface StateChange extends TableRef {
  program: string;
  state: string;
  from: string;
  at: string;
}

interface Progress {
  accepted: number;
  acceptedAt: number | null;
  drained: number;
  drainedAt: number;
  failures: number;
  failedAt: number | null;
}

/** One agent as last observed. Time-dependent fields (uptime, ages) are filled in on read. */
interface View {
  meta: AgentMeta;
  /** mtimes of metadata and program file when read: a change makes the next refresh re-read. */
  fingerprint: string;
  /** When the observation began: an older observation never replaces a newer one. */
  stamp: number;
  status: AgentStatus;
  /** supervisord's view when observed (reused between full resyncs). */
  info: ProcessInfo | null;
  startedAtMs: number | null;
  progress: Progress | null;
  /** Public content without volatile fields: a change bumps the fleet's version. */
  digest: string;
  rates: RateWindow;
  cpu: { t: number; cpuSeconds: number; pid: number } | null;
  history: HistoryPoint[];
  historyAt: number;
  /** Since when the agent has been idle past its limit (the incident is raised once per period). */
  idleSince: number | null;
  /** When Flume's counters were last read, and whether they showed a quiet agent then. */
  countersAt: number;
  quiet: boolean;
}

/** History: a point every 10 s, the last hour. */
export const HISTORY_INTERVAL_MS = 10_000;
const HISTORY_POINTS = 360;

/** An agent that received nothing for longer than its idle limit. */
export interface IdleEvent extends TableRef {
  program: string;
  idleMinutes: number;
  lastEventAt: string | null;
}

const UP: readonly AgentState[] = ['RUNNING', 'STARTING'];
/** Every how many refreshes supervisord's full process list is read again. */
const RESYNC_EVERY = 5;

/**
 * The live view of every agent, kept in the API so that no status request fans out to agents.
 *
 * Sources: the disk (services/ metadata and the program's autostart), supervisord (each
 * PROCESS_STATE event from the event-listener stream applied at once, and getAllProcessInfo
 * every 5th refresh for whatever events were lost), a probe of each running agent's source and
 * Flume's counters. A refresh runs every FLEET_REFRESH_MS in the background, never overlapping
 * itself.
 *
 * Guarantees:
 * - reads (`status`, `list`, `version`) touch nothing outside this process;
 * - every status carries `observedAt`; after a refresh, every agent is at least that fresh;
 * - an observation never replaces a newer one (a lifecycle operation's own observation is not
 *   overwritten by a refresh that began before it), and a forgotten (deleted) agent is not
 *   brought back by a refresh that began before the delete;
 * - `version` changes exactly when some agent's public content (not its ages) changed.
 * Events: 'state' (StateChange) for every supervisord state change of an agent.
 */
export class FleetModel extends EventEmitter {
  private readonly views = new Map<string, View>();
  private readonly forgotten = new Map<string, number>();
  private refresher: Periodic | null = null;
  private reader: Redis | null = null;
  private running = false;
  private lastRefresh = 0;
  private readonly limit = pLimit(8);
  /** Bumped whenever an agent's public content changes: the key of response caches. */
  version = 0;
  /** Completed refreshes since start (tests wait on it instead of on time). */
  refreshes = 0;

  constructor(
    private readonly cfg: Config,
    private readonly store: AgentStore,
    private readonly driver: SupervisorDriver,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly log: Logger,
    /** The host's start queue: a table waiting in it says so (queue, health starting). */
    private readonly startQueue?: StartQueue,
  ) {
    super();
    this.setMaxListeners(0);
    // A move in the waiting line changes what the listing shows.
    startQueue?.on('change', () => this.version++);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.reader = blockingReader(this.redis);
    void this.followEvents();
    this.refresher = periodic('fleet refresh', this.cfg.FLEET_REFRESH_MS, () => this.refreshAll(), this.log);
    await this.refresher.runNow();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.reader?.disconnect();
    this.reader = null;
    await this.refresher?.stop();
  }

  /** When the last full refresh began (every agent's view is at least this fresh). */
  get observedAt(): string {
    return new Date(this.lastRefresh || Date.now()).toISOString();
  }

  /** The metadata of every agent the model knows (read from disk by its refresh). */
  metas(): AgentMeta[] {
    return [...this.views.values()].map((v) => v.meta);
  }

  /** The last observed status of an agent; undefined if the model does not know it. */
  status(program: string): AgentStatus | undefined {
    const v = this.views.get(program);
    return v && this.withAges(v);
  }

  list(filter: { db?: string; state?: string } = {}): AgentStatus[] {
    const wanted = filter.state?.toUpperCase();
    const out: AgentStatus[] = [];
    for (const v of this.views.values()) {
      if (filter.db && v.meta.db !== filter.db) continue;
      if (wanted && v.status.state !== wanted) continue;
      out.push(this.withAges(v));
    }
    return out.sort((a, b) => a.program.localeCompare(b.program));
  }

  /** Probes one agent live (disk, supervisord, source, counters), updates the model, returns it. */
  async observe(program: string): Promise<AgentStatus | null> {
    const stamp = Date.now();
    const meta = await this.store.readMeta(program);
    if (!meta) {
      this.forget(program);
      return null;
    }
    const [fingerprint, desired, info] = await Promise.all([this.store.fingerprint(program), this.store.desired(program), infoOrNull(this.driver, program)]);
    const v = await this.observeAgent(meta, fingerprint, desired, info, stamp, true);
    return v ? this.withAges(v) : this.status(program) ?? null;
  }

  /** An agent's history, oldest first (a point every 10 s, the last hour); undefined if unknown. */
  history(program: string): HistoryPoint[] | undefined {
    return this.views.get(program)?.history.slice();
  }

  /** Drops an agent (deleted); a refresh that began earlier will not bring it back. */
  forget(program: string): void {
    this.forgotten.set(program, Date.now());
    if (this.views.delete(program)) this.version++;
  }

  /** One pass over every agent now; joins the background refresh if one is under way. */
  async refresh(): Promise<void> {
    await (this.refresher ? this.refresher.runNow() : this.refreshAll());
  }

  private async refreshAll(): Promise<void> {
    const stamp = Date.now();
    const programs = await this.store.servicePrograms();
    // supervisord's states arrive as events; the full list (decoded synchronously: ~16 ms for
    // 100 programs) is read every RESYNC_EVERY-th refresh, and for agents the model lacks.
    const resync = this.refreshes % RESYNC_EVERY === 0 || programs.some((p) => !this.views.has(p));
    const infos = resync ? new Map((await this.driver.infoAll()).map((i) => [i.name, i])) : null;
    const present = new Set(programs);
    for (const program of this.views.keys()) {
      if (!present.has(program)) this.forget(program);
    }
    await Promise.all(
      programs.map((program) =>
        this.limit(async () => {
          const fingerprint = await this.store.fingerprint(program);
          const known = this.views.get(program);
          const fresh = known && known.fingerprint === fingerprint;
          const meta = fresh ? known.meta : await this.store.readMeta(program);
          if (!meta) return; // being created, or half-created debris for the reconciler
          const desired = fresh ? known.status.desired : await this.store.desired(program);
          const last = known?.info;
          const info = infos ? (infos.get(program) ?? null) : last ? { ...last, now: Math.floor(Date.now() / 1000) } : null;
          await this.observeAgent(meta, fingerprint, desired, info, stamp, false);
        }),
      ),
    );
    this.lastRefresh = stamp;
    this.refreshes++;
    // Tombstones only need to outlive the refreshes that began before them.
    for (const [p, at] of this.forgotten) if (at < stamp) this.forgotten.delete(p);
  }

  // --- internals ----------------------------------------------------------------------------

  /**
   * Observes one agent. Its source is probed every time; Flume's counters are read every time
   * too (`full`, or while events move), except for a quiet agent, whose counters are read again
   * once FLEET_QUIET_COUNTERS_MS passed: until then the last ones stand (nothing moved).
   */
  private async observeAgent(meta: AgentMeta, fingerprint: string, desired: Desired, info: ProcessInfo | null, stamp: number, full: boolean): Promise<View | null> {
    const running = info !== null && UP.includes(info.state);
    const before = this.views.get(meta.program);
    const reuse =
      running && !full && before?.quiet === true && before.status.metrics !== null && before.status.pid === info.pid &&
      stamp - before.countersAt < this.cfg.FLEET_QUIET_COUNTERS_MS;
    const [probed, read] = await Promise.all([
      running ? probeSource(meta.port) : Promise.resolve<SourceProbe | null>(null),
      running && !reuse ? readFlumeMetrics(meta.metricsPort) : Promise.resolve<FlumeCounters | null>(null),
    ]);
    const known = this.views.get(meta.program);
    if ((known && known.stamp > stamp) || (this.forgotten.get(meta.program) ?? 0) > stamp) return null;
    const kept = reuse ? countersOf(before.status.metrics!) : null;
    const counters = read ?? kept;
    // One slow answer from the same process that answered before is not news: keep what it said.
    const probe = probed === 'silent' && known?.status.accepting && known.status.pid === info?.pid ? 'flume' : probed;
    const now = Date.now();
    const progress = kept ? (known?.progress ?? null) : this.track(known?.progress ?? null, counters, now);
    const sinkStalledSeconds = counters && counters.channelSize > 0 && progress ? Math.round((now - progress.drainedAt) / 1000) : null;
    const failing = progress?.failedAt != null && progress.failedAt >= progress.drainedAt;
    const sinkFailingSeconds = failing ? Math.round((now - progress.failedAt!) / 1000) : null;
    const usage = running && info.pid ? await processUsage(info.pid) : null;
    const usable = await usableSpace(this.store.paths(meta.program).channelDir);
    const rates = counters && known ? known.rates : new RateWindow();
    const rate = kept ? (known?.status.rates ?? null) : counters ? rates.add(now, counters.eventsAccepted, counters.eventsDrained) : null;
    const prevCpu = known?.cpu;
    const cpuPercent =
      usage && prevCpu && prevCpu.pid === info?.pid && now > prevCpu.t ? Math.round(((usage.cpuSeconds - prevCpu.cpuSeconds) / ((now - prevCpu.t) / 1000)) * 1000) / 10 : null;
    const required = meta.spec.channel.minimumRequiredSpace;
    // Idle: accepting and should receive, but nothing arrived for longer than the table's limit.
    const idleLimitMs = meta.spec.idleMinutes ? meta.spec.idleMinutes * 60_000 : null;
    const quietSince = progress?.acceptedAt ?? (running && info.start ? info.start * 1000 : null);
    const idle = idleLimitMs !== null && !meta.paused && desired === 'running' && probe === 'flume' && quietSince !== null && now - quietSince > idleLimitMs;
    const assessed = assessHealth({ desired, info, probe, port: meta.port, counters, sinkStalledSeconds, sink: meta.spec.sink, sinkFailingSeconds });
    let { health } = assessed;
    if (health === 'healthy' && usable !== null && usable < required + this.cfg.CHANNEL_SPACE_MARGIN_BYTES) {
      health = 'degraded';
      assessed.reason = `the channel's disk has ${mib(usable)} MiB usable; Flume refuses every event below ${mib(required)} MiB (minimumRequiredSpace): free space before it does`;
    } else if (health === 'healthy' && idle) {
      health = 'degraded';
      assessed.reason = `no events for ${Math.round((now - quietSince!) / 60_000)} min (idle limit ${meta.spec.idleMinutes} min)`;
    }
    const drainText = counters ? (counters.channelSize ? `${counters.channelSize} events left to drain` : 'channel drained') : assessed.reason;
    const reason = meta.paused ? `intake paused by ${meta.paused.by} since ${meta.paused.since}; ${health === 'healthy' ? drainText : assessed.reason}` : assessed.reason;
    const startedAtMs = running && info.start ? info.start * 1000 : null;
    const status: AgentStatus = {
      db: meta.db,
      table: meta.table,
      program: meta.program,
      sink: meta.spec.sink,
      state: info?.state ?? 'NOT_LOADED',
      desired,
      pid: running && info.pid ? info.pid : null,
      uptimeSeconds: null,
      startedAt: startedAtMs === null ? null : new Date(startedAtMs).toISOString(),
      accepting: probe === 'flume',
      health,
      healthReason: reason,
      metrics: counters
        ? { ...counters, lastEventAt: progress?.acceptedAt ? new Date(progress.acceptedAt).toISOString() : null, lastEventAgeSeconds: null }
        : null,
      revision: revisionPair(meta, running),
      rates: rate,
      resources: usage ? { rssBytes: usage.rssBytes, cpuPercent } : null,
      disk: usable === null ? null : { usableBytes: usable, minimumRequiredBytes: required },
      paused: Boolean(meta.paused),
      drained: counters ? counters.channelSize === 0 : null,
      description: info?.description ?? 'supervisord has not loaded this program',
      observedAt: new Date(stamp).toISOString(),
      queue: null,
    };
    // Rates, memory, CPU and free disk move all the time: left out of the digest (and of the
    // listing), so an unchanged fleet keeps its version and its ETags.
    const { description: _d, observedAt: _o, rates: _r, resources: _u, disk: _k, queue: _q, ...stable } = status;
    const digest = JSON.stringify(stable);
    const history = known?.history ?? [];
    const historyAt = known?.historyAt ?? 0;
    const view: View = {
      meta, fingerprint, stamp, status, info, startedAtMs, progress, digest, rates,
      cpu: usage && info ? { t: now, cpuSeconds: usage.cpuSeconds, pid: info.pid } : null,
      history, historyAt,
      idleSince: idle ? (known?.idleSince ?? now) : null,
      countersAt: read ? now : (known?.countersAt ?? 0),
      quiet: read ? isQuiet(read, known?.status.metrics ?? null) : kept !== null,
    };
    if (now - historyAt >= HISTORY_INTERVAL_MS) {
      view.historyAt = now;
      history.push({ at: new Date(now).toISOString(), inPerSecond: rate?.inPerSecond ?? null, outPerSecond: rate?.outPerSecond ?? null, channelFillPercent: counters?.channelFillPercent ?? null, rssBytes: usage?.rssBytes ?? null });
      if (history.length > HISTORY_POINTS) history.splice(0, history.length - HISTORY_POINTS);
    }
    if (idle && !known?.idleSince) {
      this.emit('idle', { db: meta.db, table: meta.table, program: meta.program, idleMinutes: meta.spec.idleMinutes!, lastEventAt: progress?.acceptedAt ? new Date(progress.acceptedAt).toISOString() : null } satisfies IdleEvent);
    }
    this.views.set(meta.program, view);
    if (known?.digest !== digest) this.version++;
    return view;
  }

  /** Turns counters into ages: when events last arrived, and when the sink last drained. */
  private track(prev: Progress | null, c: FlumeCounters | null, now: number): Progress | null {
    if (!c) return prev;
    // Counters restart at 0 with the JVM: a drop is a new process, not a negative rate.
    const fresh = !prev || c.eventsAccepted < prev.accepted || c.eventsDrained < prev.drained || c.sinkWriteFailures < prev.failures;
    const p: Progress = fresh
      ? {
          accepted: c.eventsAccepted,
          acceptedAt: c.eventsAccepted > 0 ? now : null,
          drained: c.eventsDrained,
          drainedAt: now,
          failures: c.sinkWriteFailures,
          failedAt: null,
        }
      : { ...prev };
    if (c.eventsAccepted > p.accepted) Object.assign(p, { accepted: c.eventsAccepted, acceptedAt: now });
    if (c.eventsDrained > p.drained || c.channelSize === 0) Object.assign(p, { drained: c.eventsDrained, drainedAt: now });
    if (c.sinkWriteFailures > p.failures) Object.assign(p, { failures: c.sinkWriteFailures, failedAt: now });
    return p;
  }

  private withAges(v: View): AgentStatus {
    const now = Date.now();
    const s = v.status;
    const acceptedAt = v.progress?.acceptedAt ?? null;
    const queue = this.startQueue?.place(s.program) ?? null;
    return {
      ...s,
      ...(queue
        ? {
            queue,
            health: 'starting' as const,
            healthReason: `queued to start: ${queue.position} of ${queue.waiting} waiting (the host starts ${queue.concurrency} JVMs at a time, AGENT_START_CONCURRENCY)`,
          }
        : {}),
      uptimeSeconds: v.startedAtMs === null ? null : Math.max(0, Math.round((now - v.startedAtMs) / 1000)),
      metrics: s.metrics && { ...s.metrics, lastEventAgeSeconds: acceptedAt === null ? null : Math.round((now - acceptedAt) / 1000) },
    };
  }

  /** Applies supervisord's state changes as they happen (a plain XREAD: every API sees all). */
  private async followEvents(): Promise<void> {
    let last = '$';
    while (this.running && this.reader) {
      try {
        const res = await this.reader.xread('BLOCK', 2000, 'STREAMS', this.keys.supervisorEvents(), last);
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            const e: Record<string, string> = {};
            for (let i = 0; i + 1 < fields.length; i += 2) e[fields[i]!] = fields[i + 1]!;
            const program = e.processname ?? '';
            const ref = parseProgramName(program);
            if (!ref || !e.event?.startsWith('PROCESS_STATE_')) continue;
            const state = e.event.slice('PROCESS_STATE_'.length);
            this.emit('state', { program, ...ref, state, from: e.from_state ?? '', at: new Date(Number(e.at) || Date.now()).toISOString() } satisfies StateChange);
            await this.observe(program).catch((err: unknown) => this.log.warn({ err, program }, 'could not observe an agent after its state changed'));
          }
        }
      } catch (err) {
        if (!this.running) return;
        this.log.warn({ err: (err as Error).message }, 'reading supervisor events failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}
