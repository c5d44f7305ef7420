import { EventEmitter } from 'node:events';
import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { probeSource, readFlumeMetrics, type SourceProbe } from '../flume/client.js';
import { periodic, type Periodic } from '../periodic.js';
import type { Subscription, SupervisorEvents } from '../redis/supervisor-events.js';
import { stableDigest, type AgentStatus, type Desired, type FlumeCounters, type QueuePlace, type StandInStatus, type StateChange } from '../resources/agent-status.js';
import type { IdleEvent, QuarantineGrew } from '../resources/incident.js';
import { revisionOf, type AgentMeta, type AgentStore } from '../store/agent-store.js';
import { quarantineCount } from '../store/quarantine.js';
import { UP_STATES, infoOrNull, type ProcessInfo, type SupervisorDriver } from '../supervisor/driver.js';
import { countersOf, isQuiet, observeStatus, type Progress } from './observe.js';
import { ChannelAges, RateWindow, listeningPorts, processUsage, usableSpace, type HistoryPoint } from './samples.js';

/** The host's start queue as the model sees it: where a table waits, and when the line moves. */
export interface WaitingLine {
  place(program: string): QueuePlace | null;
  on(event: 'change', listener: () => void): unknown;
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
  /** When the events still in the channel came in (the oldest waiting event's age). */
  ages: ChannelAges;
  /** When the oldest waiting event came in, at the latest (ms); null: none waits, or not known. */
  oldestAt: number | null;
  cpu: { t: number; cpuSeconds: number; pid: number } | null;
  history: HistoryPoint[];
  historyAt: number;
  /** Since when the agent has been idle past its limit (the incident is raised once per period). */
  idleSince: number | null;
  /** When Flume's counters were last read, and whether they showed a quiet agent then. */
  countersAt: number;
  quiet: boolean;
  /** The source's last probe timed out (a second one in a row is believed). */
  silent: boolean;
  /** The process whose source answered at least once (null: none yet): it is past starting. */
  answeredPid: number | null;
}

/** Seconds the oldest waiting event has waited: 0 when the channel is empty, null when not known. */
function oldestAge(c: FlumeCounters | null, oldestAt: number | null, now: number): number | null {
  if (!c) return null;
  if (c.channelSize === 0) return 0;
  return oldestAt === null ? null : Math.max(0, Math.round((now - oldestAt) / 1000));
}

/** Seconds until the channel is full at these rates; null when it is not filling. */
function fullIn(c: FlumeCounters, rates: AgentStatus['rates']): number | null {
  if (!rates || rates.inPerSecond <= rates.outPerSecond) return null;
  return Math.max(0, Math.round((c.channelCapacity - c.channelSize) / (rates.inPerSecond - rates.outPerSecond)));
}

/** History: a point every 10 s, the last hour. */
export const HISTORY_INTERVAL_MS = 10_000;
const HISTORY_POINTS = 360;

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
  private subscription: Subscription | null = null;
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
    private readonly events: SupervisorEvents,
    private readonly log: Logger,
    /** The host's start queue: a table waiting in it says so (queue, health starting). */
    private readonly startQueue?: WaitingLine,
  ) {
    super();
    this.setMaxListeners(0);
    // A move in the waiting line changes what the listing shows.
    startQueue?.on('change', () => this.version++);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    // supervisord's state changes, applied as they happen (a plain XREAD: every API sees all).
    this.subscription = this.events.follow((e) => this.onStateChange(e));
    this.refresher = periodic('fleet refresh', this.cfg.FLEET_REFRESH_MS, () => this.refreshAll(), this.log);
    await this.refresher.runNow();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.refresher?.stop();
    await this.subscription?.stop();
    this.subscription = null;
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
    const listening = await listeningPorts();
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
          await this.observeAgent(meta, fingerprint, desired, info, stamp, false, listening);
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
   * Observes one agent: its source probed and Flume's counters read, every time for a live
   * observation (`full`) or while events move. A quiet agent (nothing moved since the
   * read before) is asked again once FLEET_QUIET_COUNTERS_MS passed; until then its last counters
   * stand, and so does its probe while the same process runs and the kernel lists its source
   * port as listening (`listening`, read once per refresh): an idle JVM is not woken every refresh.
   */
  /** What status shows of the agent's restart stand-in (src/agents/stand-in.ts): a file's existence, read only when there. */
  private async standInOf(program: string): Promise<StandInStatus | null> {
    const r = await this.store.readStandIn(program);
    return r ? { phase: r.phase, revision: revisionOf(r), since: r.since } : null;
  }

  private async observeAgent(meta: AgentMeta, fingerprint: string, desired: Desired, info: ProcessInfo | null, stamp: number, full: boolean, listening: Set<number> | null = null): Promise<View | null> {
    const running = info !== null && UP_STATES.includes(info.state);
    const before = this.views.get(meta.program);
    const reuse =
      running && !full && before?.quiet === true && before.status.metrics !== null && before.status.pid === info.pid &&
      stamp - before.countersAt < this.cfg.FLEET_QUIET_COUNTERS_MS;
    const stillAccepting = reuse && before.status.accepting && listening?.has(meta.port) === true;
    const [probed, read] = await Promise.all([
      stillAccepting ? Promise.resolve<SourceProbe>('flume') : running ? probeSource(meta.port) : Promise.resolve<SourceProbe | null>(null),
      running && !reuse ? readFlumeMetrics(meta.metricsPort) : Promise.resolve<FlumeCounters | null>(null),
    ]);
    const known = this.views.get(meta.program);
    if ((known && known.stamp > stamp) || (this.forgotten.get(meta.program) ?? 0) > stamp) return null;
    const kept = reuse ? countersOf(before.status.metrics!) : null;
    const counters = read ?? kept;
    // One slow answer from the same process that answered before is not news (a busy source):
    // keep what it said. A second in a row while no event was accepted meanwhile is: it hangs.
    const taking = read !== null && known?.status.metrics != null && read.eventsAccepted > known.status.metrics.eventsAccepted;
    const probe = probed === 'silent' && known?.status.accepting && known.status.pid === info?.pid && (!known.silent || taking) ? 'flume' : probed;
    const usage = running && info.pid ? await processUsage(info.pid) : null;
    const usable = await usableSpace(this.store.paths(meta.program).channelDir);
    const now = Date.now();
    const rates = counters && known ? known.rates : new RateWindow();
    const ages = known?.ages ?? new ChannelAges();
    if (read) ages.add(now, read.eventsDrained, read.channelSize);
    const oldestAt = counters ? ages.oldestAt(counters.channelSize) : null;
    const pid = running ? info.pid : null;
    const answeredPid = probe === 'flume' ? pid : known?.answeredPid === pid ? pid : null;
    const { status, progress, idle } = observeStatus({
      node: this.cfg.NODE_ID, meta, desired, info, running, probe, counters, kept: kept !== null, usage, usable, known, rates, stamp, now,
      answeredBefore: pid !== null && known?.answeredPid === pid,
      spaceMarginBytes: this.cfg.CHANNEL_SPACE_MARGIN_BYTES,
      standIn: await this.standInOf(meta.program),
      quarantined: await quarantineCount(this.store.paths(meta.program).quarantineDir),
    });
    const rate = status.rates;
    const digest = stableDigest(status);
    const startedAtMs = status.startedAt === null ? null : Date.parse(status.startedAt);
    const history = known?.history ?? [];
    const historyAt = known?.historyAt ?? 0;
    const view: View = {
      meta, fingerprint, stamp, status, info, startedAtMs, progress, digest, rates, ages, oldestAt,
      cpu: usage && info ? { t: now, cpuSeconds: usage.cpuSeconds, pid: info.pid } : null,
      history, historyAt,
      idleSince: idle ? (known?.idleSince ?? now) : null,
      countersAt: read ? now : (known?.countersAt ?? 0),
      silent: probed === 'silent',
      answeredPid,
      quiet: read ? isQuiet(read, known?.status.metrics ?? null) : kept !== null,
    };
    if (now - historyAt >= HISTORY_INTERVAL_MS) {
      view.historyAt = now;
      history.push({ at: new Date(now).toISOString(), inPerSecond: rate?.inPerSecond ?? null, outPerSecond: rate?.outPerSecond ?? null, channelFillPercent: counters?.channelFillPercent ?? null, rssBytes: usage?.rssBytes ?? null, oldestEventAgeSeconds: oldestAge(counters, oldestAt, now) });
      if (history.length > HISTORY_POINTS) history.splice(0, history.length - HISTORY_POINTS);
    }
    // The quarantine grew (from what this process knew; at its start, from empty).
    const keptBefore = known?.status.quarantined ?? 0;
    if (status.quarantined > keptBefore) {
      this.emit('quarantined', { db: meta.db, table: meta.table, program: meta.program, count: status.quarantined, added: status.quarantined - keptBefore } satisfies QuarantineGrew);
    }
    if (idle && !known?.idleSince) {
      this.emit('idle', { db: meta.db, table: meta.table, program: meta.program, idleMinutes: meta.spec.idleMinutes!, lastEventAt: progress?.acceptedAt ? new Date(progress.acceptedAt).toISOString() : null } satisfies IdleEvent);
    }
    this.views.set(meta.program, view);
    if (known?.digest !== digest) this.version++;
    return view;
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
      metrics: s.metrics && {
        ...s.metrics,
        lastEventAgeSeconds: acceptedAt === null ? null : Math.round((now - acceptedAt) / 1000),
        oldestEventAgeSeconds: oldestAge(s.metrics, v.oldestAt, now),
        channelFullInSeconds: fullIn(s.metrics, s.rates),
      },
    };
  }

  /** A supervisord state change of an agent: told to listeners, and the agent observed at once. */
  private async onStateChange(e: { program: string; db: string; table: string; state: string; from: string; at: number }): Promise<void> {
    this.emit('state', { program: e.program, db: e.db, table: e.table, state: e.state, from: e.from, at: new Date(e.at).toISOString() } satisfies StateChange);
    await this.observe(e.program).catch((err: unknown) => this.log.warn({ err, program: e.program }, 'could not observe an agent after its state changed'));
  }
}
