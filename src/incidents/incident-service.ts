import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import type { AgentStore } from '../store/agent-store.js';
import { parseProgramName } from '../resources/table.js';
import type { TableLock } from '../agents/table-lock.js';
import type { Config } from '../config.js';
import { SEVERITY, type IdleEvent, type Incident, type IncidentType, type QuarantineGrew } from '../resources/incident.js';
import { periodic, type Periodic } from '../periodic.js';
import type { Keys } from '../redis/keys.js';
import type { SupervisorEvent, SupervisorEvents, Subscription } from '../redis/supervisor-events.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import { logTail } from '../store/agent-store.js';
import { incidentNotFound } from '../errors.js';
import { lastExit, suggestAction, type ExitCause } from './explain.js';
import { FatalRetry } from './fatal-retry.js';
import { IncidentStore } from './incident-store.js';
import { webhookHost } from './webhooks.js';
import type { WebhookOutbox } from './webhook-outbox.js';
import type { WebhookDelivery } from '../resources/incident.js';

const LOG_TAIL_LINES = 20;

/** What to do, for the types whose advice does not depend on how the agent exited. */
const FIXED_ACTIONS: Partial<Record<IncidentType, string>> = {
  recovered: 'Nothing: it runs again.',
  idle: 'Check the senders of this table. For planned quiet periods pause the table (POST .../pause) or change idleMinutes (PATCH .../config).',
  config_reverted: 'Read details.reason and the log tail, fix the change (PUT .../config?dryRun=true to preview), and apply it again.',
  not_running: 'Read the log tail (GET .../logs) and start the agent (POST .../start); stop it if it should not run.',
  unresponsive:
    'Nothing if details.restartInSeconds is a number: the service restarts it then unless it recovers. Otherwise read the log tail (a JVM that hangs: GC, a deadlock; a port another process took) and restart it (POST .../restart).',
  sink_failing:
    'Check what the sink writes to (the Kafka broker, HDFS): the events wait in the channel and go once it takes them. The service restarts the agent after details.restartInSeconds.',
  restarted: 'Nothing if it runs again; if it keeps needing restarts, read the log tail before the service gives up.',
  quarantined:
    'Read why (GET .../quarantine): fix the cause (e.g. raise the topic\'s max.message.bytes), then replay them (POST .../quarantine/replay), or drop them (DELETE .../quarantine). The other events flow on meanwhile.',
};

/** Incidents raised by other parts of the service through report(). */
export type ReportedType = Extract<IncidentType, 'config_reverted' | 'unresponsive' | 'sink_failing' | 'restarted' | 'recovered'>;
const HEALER_TYPES: IncidentType[] = ['unresponsive', 'sink_failing', 'restarted'];

/** An incident as those who may not read logs see it: the log tail (it holds event data) left out. */
export function withoutLogTail(i: Incident): Incident {
  return { ...i, logTail: [] };
}

/**
 * An incident as a caller sees it: the log tail only for those who may operate (read logs);
 * webhooks as host + outcome (incidents stored before hosts were kept had the whole URL).
 */
export function incidentFor(i: Incident, mayReadLogs: boolean): Incident {
  const webhooks = i.webhooks.map((w) => {
    const legacy = w as WebhookDelivery & { url?: string };
    if (legacy.url === undefined) return w;
    const { url, ...rest } = legacy;
    return { ...rest, host: webhookHost(url) };
  });
  return { ...(mayReadLogs ? i : withoutLogTail(i)), webhooks };
}

/**
 * Tells a crash from a deliberate stop: the desired state (the program's autostart) is the
 * intent, supervisord is the liveness. An exit, BACKOFF or FATAL while the agent should run
 * is an incident; an operator's stop is not. Tables busy with an operation are left to it.
 *
 * Events come pushed, from the event listener through the Redis stream, read through a
 * consumer group: each event is handled by one API process, acknowledged once handled, and a
 * restarted API first handles what it had read but not acknowledged (an entry left pending by
 * a process that never came back is claimed after 30 s). A resync every RESYNC_INTERVAL_MS
 * compares every agent again, since supervisord drops events when a listener falls behind;
 * what it finds is raised once across API processes (an NX marker in Redis). Each incident is
 * logged, kept (last 100 per agent, in Redis), emitted to SSE subscribers and POSTed to
 * WEBHOOK_URLS. An agent in FATAL that should run is started again after
 * FATAL_RETRY_BASE_SECONDS, doubling per attempt up to 10 minutes.
 */
export class IncidentService extends EventEmitter {
  private running = false;
  private subscription: Subscription | null = null;
  private resyncJob: Periodic | null = null;
  private readonly open = new Set<string>();
  /** Non-running states seen by the last resync: reported only if the next one sees them too. */
  private suspects = new Map<string, string>();
  private readonly exits = new Map<string, number[]>();
  /** Open crash loops: exits within the window are folded into this incident. */
  private readonly loops = new Map<string, { id: string; lastExitAt: number; exits: number }>();
  private readonly fatal: FatalRetry;
  /** Where incidents are kept (reads go straight to it). */
  readonly stored: IncidentStore;
  readonly counts = new Map<IncidentType, number>();
  /** Completed resyncs (tests wait on it, not on time). */
  resyncs = 0;

  constructor(
    private readonly cfg: Config,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly events: SupervisorEvents,
    private readonly driver: SupervisorDriver,
    private readonly store: AgentStore,
    private readonly lock: TableLock,
    private readonly agents: AgentService,
    private readonly log: Logger,
    /** WEBHOOK_URLS: every incident is handed to it (kept on disk until delivered). */
    private readonly outbox: WebhookOutbox | null = null,
  ) {
    super();
    this.setMaxListeners(0);
    this.stored = new IncidentStore(redis, keys);
    this.fatal = new FatalRetry(
      cfg.FATAL_RETRY_BASE_SECONDS,
      {
        shouldRun: async (program) => this.running && (await this.store.desired(program)) === 'running',
        start: async (program) => void (await this.agents.start(parseProgramName(program)!)),
        isFatal: async (program) => (await this.driver.info(program).catch(() => null))?.state === 'FATAL',
        raise: async (program, attempt, delay) =>
          void (await this.raise(program, 'fatal', `supervisord gave up on the agent (FATAL) while it should run; retrying in ${delay} s (attempt ${attempt})`, {
            retryInSeconds: delay,
            attempt,
          }, await lastExit(this.supervisordLog, program))),
      },
      log,
    );
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.outbox?.start();
    this.subscription = this.events.consume('incidents', this.cfg.INSTANCE_NAME, (e) => this.onEvent(e));
    this.resyncJob = periodic('incident resync', this.cfg.RESYNC_INTERVAL_MS, () => this.resync(), this.log);
    await this.resyncJob.runNow();
  }

  /** A webhook delivery's progress, into the incident's `webhooks` (the entry of that URL's host). */
  async recordDelivery(program: string, id: string, d: WebhookDelivery): Promise<void> {
    await this.stored.update(program, id, (i) => {
      const at = i.webhooks.findIndex((w) => w.host === d.host && (w.outcome === 'pending' || w.outcome === d.outcome));
      const webhooks = [...i.webhooks];
      if (at >= 0) webhooks[at] = d;
      else webhooks.push(d);
      return { ...i, webhooks };
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.outbox?.stop();
    this.fatal.stop();
    await this.resyncJob?.stop();
    await this.subscription?.stop();
    this.subscription = null;
  }

  /** One PROCESS_STATE_* event from supervisord. */
  private async onEvent(e: SupervisorEvent): Promise<void> {
    const { program, state } = e;
    if ((await this.store.desired(program)) !== 'running' || (await this.lock.busy(program))) return;

    if (state === 'EXITED' && e.expected === false) {
      const cause = await lastExit(this.supervisordLog, program);
      if (await this.fold(program, cause)) return;
      const how = cause.signal ? `killed by ${cause.signal}` : cause.exitCode !== null ? `exit code ${cause.exitCode}` : 'cause unknown';
      await this.raise(program, 'unexpected_exit', `the agent exited unexpectedly (${how}; pid ${e.pid ?? '?'}, was ${e.from || '?'}); supervisord restarts it`, {
        pid: e.pid,
        fromState: e.from || null,
      }, cause);
      await this.noteExit(program, cause);
    } else if (state === 'BACKOFF') {
      const cause = await lastExit(this.supervisordLog, program);
      if (await this.fold(program, cause)) return;
      await this.raise(program, 'backoff', 'the agent exited while starting; supervisord is retrying', { fromState: e.from || null }, cause);
      await this.noteExit(program, cause);
    } else if (state === 'FATAL') {
      await this.fatal.onFatal(program);
    } else if (state === 'RUNNING') {
      await this.onRunning(program);
    }
  }

  private get supervisordLog(): string {
    return `${this.cfg.varDir}/log/supervisord.log`;
  }

  /** A crash loop stays open until no exit came for a whole window. */
  private openLoop(program: string): { id: string; lastExitAt: number; exits: number } | null {
    const loop = this.loops.get(program);
    if (!loop) return null;
    if (Date.now() - loop.lastExitAt < this.cfg.CRASH_LOOP_WINDOW_SECONDS * 1000) return loop;
    this.loops.delete(program);
    return null;
  }

  /** While a crash loop is open, an exit updates it (count, cause, log tail) instead of raising its own. */
  private async fold(program: string, cause: ExitCause): Promise<boolean> {
    const loop = this.openLoop(program);
    if (!loop) return false;
    loop.exits++;
    loop.lastExitAt = Date.now();
    const tail = await logTail(this.store.paths(program).logFile, LOG_TAIL_LINES);
    const updated = await this.stored.update(program, loop.id, (i) => ({
      ...i,
      ...cause,
      logTail: tail,
      suggestedAction: suggestAction(cause, tail, 'loop'),
      message: `${loop.exits} unexpected exits, the last at ${new Date(loop.lastExitAt).toISOString()}: the agent is crash-looping`,
      details: { ...i.details, exits: loop.exits, lastExitAt: new Date(loop.lastExitAt).toISOString() },
    }));
    if (updated) this.emit('incident', updated);
    return true;
  }

  private async noteExit(program: string, cause: ExitCause): Promise<void> {
    const now = Date.now();
    const windowMs = this.cfg.CRASH_LOOP_WINDOW_SECONDS * 1000;
    const recent = [...(this.exits.get(program) ?? []), now].filter((t) => now - t < windowMs);
    this.exits.set(program, recent);
    if (recent.length >= this.cfg.CRASH_LOOP_EXITS) {
      this.exits.delete(program);
      const incident = await this.raise(program, 'crash_loop', `${recent.length} unexpected exits in ${this.cfg.CRASH_LOOP_WINDOW_SECONDS} s: the agent is crash-looping`, {
        exits: recent.length,
        windowSeconds: this.cfg.CRASH_LOOP_WINDOW_SECONDS,
        lastExitAt: new Date(now).toISOString(),
      }, cause);
      this.loops.set(program, { id: incident.id, lastExitAt: now, exits: recent.length });
    }
  }

  private async onRunning(program: string): Promise<void> {
    // Back from FATAL by a retry: whatever loop led there is over.
    if (this.fatal.clear(program)) this.loops.delete(program);
    // Between the exits of a crash loop the agent runs for a while: not a recovery yet.
    if (this.open.has(program) && !this.openLoop(program)) {
      await this.raise(program, 'recovered', 'the agent runs again', {});
    }
  }

  /**
   * Compares every agent's desired and actual state: catches what events missed. A state
   * must persist across two resyncs before it is reported, so a crash that supervisord is
   * already restarting, or whose event is still on its way, is not reported twice.
   */
  async resync(): Promise<void> {
    const infos = await this.driver.infoAll();
    const suspects = new Map<string, string>();
    for (const info of infos) {
      const ref = parseProgramName(info.name);
      if (!ref || (await this.lock.busy(info.name))) continue;
      if ((await this.store.desired(info.name)) !== 'running') {
        this.open.delete(info.name);
        continue;
      }
      if (info.state === 'RUNNING') {
        await this.onRunning(info.name);
      } else if (['EXITED', 'FATAL', 'STOPPED', 'BACKOFF', 'UNKNOWN'].includes(info.state) && !this.open.has(info.name)) {
        if (this.suspects.get(info.name) !== info.state) {
          suspects.set(info.name, info.state);
          continue;
        }
        // Every API process resyncs: the first to mark this observation raises it.
        const once = await this.redis.set(this.keys.incidentOnce(`${info.name}:${info.state}:${info.start}`), '1', 'EX', 3600, 'NX');
        if (once !== 'OK') continue;
        await this.raise(info.name, 'not_running', `should run, but supervisord says ${info.state} (found by resync)`, { state: info.state });
        if (info.state === 'FATAL' && !this.fatal.has(info.name)) await this.fatal.onFatal(info.name);
      }
    }
    this.suspects = suspects;
    this.resyncs++;
  }

  /** A table that received nothing for longer than its idle limit: raised once per quiet period, across API processes. */
  async reportIdle(e: IdleEvent): Promise<void> {
    const once = await this.redis.set(this.keys.incidentOnce(`idle:${e.program}:${e.lastEventAt ?? 'never'}`), '1', 'EX', 86_400, 'NX').catch(() => null);
    if (once !== 'OK') return;
    await this.raise(e.program, 'idle', `no events for ${e.idleMinutes} min${e.lastEventAt ? ` (the last at ${e.lastEventAt})` : ' since the agent started'}`, {
      idleMinutes: e.idleMinutes,
      lastEventAt: e.lastEventAt,
    });
  }

  /** Raises `quarantined` once per growth of a table's quarantine (across API processes). */
  async reportQuarantined(e: QuarantineGrew): Promise<void> {
    const once = await this.redis.set(this.keys.incidentOnce(`quarantined:${e.program}:${e.count}`), '1', 'EX', 86_400, 'NX').catch(() => null);
    if (once !== 'OK') return;
    await this.raise(e.program, 'quarantined', `${e.added} event(s) the sink can never deliver were kept aside in the quarantine (${e.count} in all); the other events flow on`, {
      count: e.count,
      added: e.added,
    });
  }

  /**
   * Raises an incident found elsewhere: a config change that was reverted, or the healer's
   * (an agent that runs but does not work, its restart, its recovery).
   */
  async report(program: string, type: ReportedType, message: string, details: Incident['details']): Promise<Incident> {
    return this.raise(program, type, message, details);
  }

  /** Marks an incident acknowledged (who, when); 404 if the agent has no such incident. */
  async acknowledge(program: string, id: string, by: string): Promise<Incident> {
    const updated = await this.stored.update(program, id, (i) => (i.acknowledged ? i : { ...i, acknowledged: { by, at: new Date().toISOString() } }));
    if (!updated) throw incidentNotFound(id);
    this.emit('incident', updated);
    return updated;
  }

  private async raise(program: string, type: IncidentType, message: string, details: Incident['details'], cause?: ExitCause): Promise<Incident> {
    const ref = parseProgramName(program)!;
    const tail = type === 'recovered' ? [] : await logTail(this.store.paths(program).logFile, LOG_TAIL_LINES);
    const exit = cause ?? { exitCode: null, signal: null };
    const incident: Incident = {
      id: randomUUID(),
      at: new Date().toISOString(),
      ...ref,
      program,
      type,
      severity: SEVERITY[type],
      message,
      details,
      ...exit,
      logTail: tail,
      suggestedAction: FIXED_ACTIONS[type] ?? suggestAction(exit, tail, type === 'crash_loop' ? 'loop' : type === 'fatal' ? 'fatal' : 'exit'),
      acknowledged: null,
      webhooks: this.cfg.WEBHOOK_URLS.map((url) => ({ host: webhookHost(url), outcome: 'pending' as const, status: null, attempts: 0, at: null })),
    };
    // The healer's incidents are about a process that runs: a RUNNING state ends none of them
    // (the healer tells their end itself).
    if (type === 'recovered') this.open.delete(program);
    else if (!HEALER_TYPES.includes(type)) this.open.add(program);
    this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
    const log = this.log.child({ program });
    if (incident.severity === 'info') log.info({ incident }, message);
    else log.warn({ incident }, message);
    await this.stored
      .push(incident)
      .catch((err: unknown) => log.error({ err }, 'could not store the incident'));
    this.emit('incident', incident);
    // Receivers are outside the service: they get what a viewer gets, no log tail (it holds event data).
    await this.outbox?.send(incident.id, withoutLogTail(incident), program).catch((err: unknown) => log.error({ err }, 'could not keep the incident for its webhooks'));
    return incident;
  }
}
