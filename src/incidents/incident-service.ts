import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import { parseProgramName } from '../agents/names.js';
import type { Config } from '../config.js';
import type { Keys } from '../redis/keys.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import { deliverWebhooks } from './webhooks.js';

export type IncidentType = 'unexpected_exit' | 'backoff' | 'fatal' | 'crash_loop' | 'not_running' | 'recovered';

export interface Incident {
  id: string;
  at: string;
  db: string;
  table: string;
  program: string;
  type: IncidentType;
  severity: 'critical' | 'warning' | 'info';
  message: string;
  details: Record<string, string | number | boolean | null>;
}

/** A process state change of an agent, as streamed to dashboards. */
export interface StateChange {
  program: string;
  db: string;
  table: string;
  state: string;
  from: string;
  at: string;
}

const SEVERITY: Record<IncidentType, Incident['severity']> = {
  unexpected_exit: 'critical',
  backoff: 'warning',
  fatal: 'critical',
  crash_loop: 'critical',
  not_running: 'critical',
  recovered: 'info',
};
export const HISTORY_LENGTH = 100;

/**
 * Tells a crash from a deliberate stop: the desired state (the program's autostart) is the
 * intent, supervisord is the liveness. An exit, BACKOFF or FATAL while the agent should run
 * is an incident; an operator's stop is not. Tables busy with an operation are left to it.
 *
 * Events come pushed, from the event listener through the Redis stream; a resync every
 * RESYNC_INTERVAL_MS compares every agent again, since supervisord drops events when a
 * listener falls behind. Each incident is logged, kept (last 100 per agent, in Redis),
 * emitted to SSE subscribers and POSTed to WEBHOOK_URLS. An agent in FATAL that should run is
 * started again after FATAL_RETRY_BASE_SECONDS, doubling per attempt up to 10 minutes.
 */
export class IncidentService extends EventEmitter {
  private running = false;
  private reader: Redis | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private readonly open = new Set<string>();
  /** Non-running states seen by the last resync: reported only if the next one sees them too. */
  private suspects = new Map<string, string>();
  private readonly exits = new Map<string, number[]>();
  private readonly loopRaisedAt = new Map<string, number>();
  private readonly retries = new Map<string, { attempt: number; timer: NodeJS.Timeout }>();
  readonly counts = new Map<IncidentType, number>();

  constructor(
    private readonly cfg: Config,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly driver: SupervisorDriver,
    private readonly agents: AgentService,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.reader = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
    this.reader.on('error', () => undefined);
    void this.consume();
    this.resyncTimer = setInterval(() => void this.resync().catch((err: unknown) => this.log.warn({ err }, 'resync failed')), this.cfg.RESYNC_INTERVAL_MS);
    this.resyncTimer.unref();
    await this.resync().catch((err: unknown) => this.log.warn({ err }, 'first resync failed'));
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const r of this.retries.values()) clearTimeout(r.timer);
    this.retries.clear();
    this.reader?.disconnect();
    this.reader = null;
  }

  async history(program: string): Promise<Incident[]> {
    return (await this.redis.lrange(this.keys.incidents(program), 0, HISTORY_LENGTH - 1)).map((s) => JSON.parse(s) as Incident);
  }

  private async consume(): Promise<void> {
    let last = '$';
    while (this.running && this.reader) {
      try {
        const res = await this.reader.xread('BLOCK', 2000, 'STREAMS', this.keys.supervisorEvents(), last);
        for (const [, entries] of res ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            const e: Record<string, string> = {};
            for (let i = 0; i + 1 < fields.length; i += 2) e[fields[i]!] = fields[i + 1]!;
            await this.onEvent(e).catch((err: unknown) => this.log.warn({ err }, 'event handling failed'));
          }
        }
      } catch (err) {
        if (!this.running) return;
        this.log.warn({ err: (err as Error).message }, 'reading supervisor events failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /** One PROCESS_STATE_* event from supervisord. */
  private async onEvent(e: Record<string, string>): Promise<void> {
    const program = e.processname ?? '';
    const ref = parseProgramName(program);
    if (!ref || !e.event?.startsWith('PROCESS_STATE_')) return;
    const state = e.event.slice('PROCESS_STATE_'.length);
    this.emit('state', { program, ...ref, state, from: e.from_state ?? '', at: new Date(Number(e.at) || Date.now()).toISOString() } satisfies StateChange);
    if ((await this.agents.desiredState(program)) !== 'running' || (await this.agents.busy(program))) return;

    if (state === 'EXITED' && e.expected === '0') {
      await this.raise(program, 'unexpected_exit', `the agent exited unexpectedly (pid ${e.pid ?? '?'}, was ${e.from_state ?? '?'}); supervisord restarts it`, {
        pid: Number(e.pid) || null,
        fromState: e.from_state ?? null,
      });
      await this.noteExit(program);
    } else if (state === 'BACKOFF') {
      await this.raise(program, 'backoff', 'the agent exited while starting; supervisord is retrying', { fromState: e.from_state ?? null });
      await this.noteExit(program);
    } else if (state === 'FATAL') {
      await this.onFatal(program);
    } else if (state === 'RUNNING') {
      await this.onRunning(program);
    }
  }

  private async noteExit(program: string): Promise<void> {
    const now = Date.now();
    const windowMs = this.cfg.CRASH_LOOP_WINDOW_SECONDS * 1000;
    const recent = [...(this.exits.get(program) ?? []), now].filter((t) => now - t < windowMs);
    this.exits.set(program, recent);
    const raised = this.loopRaisedAt.get(program) ?? 0;
    if (recent.length >= this.cfg.CRASH_LOOP_EXITS && now - raised > windowMs) {
      this.loopRaisedAt.set(program, now);
      await this.raise(program, 'crash_loop', `${recent.length} unexpected exits in ${this.cfg.CRASH_LOOP_WINDOW_SECONDS} s: the agent is crash-looping`, {
        exits: recent.length,
        windowSeconds: this.cfg.CRASH_LOOP_WINDOW_SECONDS,
      });
    }
  }

  private async onFatal(program: string): Promise<void> {
    const attempt = (this.retries.get(program)?.attempt ?? 0) + 1;
    const delay = Math.min(600, this.cfg.FATAL_RETRY_BASE_SECONDS * 2 ** (attempt - 1));
    const prev = this.retries.get(program);
    if (prev) clearTimeout(prev.timer);
    const timer = setTimeout(() => void this.retryStart(program), delay * 1000);
    timer.unref();
    this.retries.set(program, { attempt, timer });
    await this.raise(program, 'fatal', `supervisord gave up on the agent (FATAL) while it should run; retrying in ${delay} s (attempt ${attempt})`, {
      retryInSeconds: delay,
      attempt,
    });
  }

  private async retryStart(program: string): Promise<void> {
    const ref = parseProgramName(program);
    if (!ref || !this.running) return;
    if ((await this.agents.desiredState(program)) !== 'running') {
      this.retries.delete(program);
      return;
    }
    try {
      await this.agents.start(ref);
      this.log.info({ program }, 'restarted an agent that was FATAL');
    } catch (err) {
      // A failed start ends in FATAL again, and that event schedules the next attempt.
      this.log.warn({ program, err: (err as Error).message }, 'retry of a FATAL agent failed');
      const info = await this.driver.info(program).catch(() => null);
      if (info?.state !== 'FATAL') await this.onFatal(program);
    }
  }

  private async onRunning(program: string): Promise<void> {
    const retry = this.retries.get(program);
    if (retry) clearTimeout(retry.timer);
    this.retries.delete(program);
    if (this.open.has(program)) {
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
      if (!ref || (await this.agents.busy(info.name))) continue;
      if ((await this.agents.desiredState(info.name)) !== 'running') {
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
        await this.raise(info.name, 'not_running', `should run, but supervisord says ${info.state} (found by resync)`, { state: info.state });
        if (info.state === 'FATAL' && !this.retries.has(info.name)) await this.onFatal(info.name);
      }
    }
    this.suspects = suspects;
  }

  private async raise(program: string, type: IncidentType, message: string, details: Incident['details']): Promise<Incident> {
    const ref = parseProgramName(program)!;
    const incident: Incident = { id: randomUUID(), at: new Date().toISOString(), ...ref, program, type, severity: SEVERITY[type], message, details };
    if (type === 'recovered') this.open.delete(program);
    else this.open.add(program);
    this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
    const log = this.log.child({ program });
    if (incident.severity === 'info') log.info({ incident }, message);
    else log.warn({ incident }, message);
    await this.redis
      .multi()
      .lpush(this.keys.incidents(program), JSON.stringify(incident))
      .ltrim(this.keys.incidents(program), 0, HISTORY_LENGTH - 1)
      .exec()
      .catch((err: unknown) => log.error({ err }, 'could not store the incident'));
    this.emit('incident', incident);
    if (this.cfg.WEBHOOK_URLS.length) void deliverWebhooks(this.cfg.WEBHOOK_URLS, incident, this.cfg.WEBHOOK_RETRIES, log);
    return incident;
  }
}
