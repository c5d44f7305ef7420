import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import type { AgentStore } from '../agents/agent-store.js';
import { parseProgramName } from '../agents/names.js';
import type { TableLock } from '../agents/table-lock.js';
import type { Config } from '../config.js';
import { periodic, type Periodic } from '../periodic.js';
import { blockingReader } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import { deliverWebhooks } from './webhooks.js';

export type IncidentType = 'unexpected_exit' | 'backoff' | 'fatal' | 'crash_loop' | 'not_running' | 'recovered' | 'config_reverted';

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

const SEVERITY: Record<IncidentType, Incident['severity']> = {
  unexpected_exit: 'critical',
  backoff: 'warning',
  fatal: 'critical',
  crash_loop: 'critical',
  not_running: 'critical',
  recovered: 'info',
  config_reverted: 'warning',
};
export const HISTORY_LENGTH = 100;
const GROUP = 'incidents';
/** A stream entry read by an API process that died unacknowledged is taken over after this. */
const CLAIM_IDLE_MS = 30_000;

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
  private reader: Redis | null = null;
  private resyncJob: Periodic | null = null;
  private consuming: Promise<void> | null = null;
  private readonly open = new Set<string>();
  /** Non-running states seen by the last resync: reported only if the next one sees them too. */
  private suspects = new Map<string, string>();
  private readonly exits = new Map<string, number[]>();
  private readonly loopRaisedAt = new Map<string, number>();
  private readonly retries = new Map<string, { attempt: number; timer: NodeJS.Timeout }>();
  readonly counts = new Map<IncidentType, number>();
  /** Completed resyncs (tests wait on it, not on time). */
  resyncs = 0;

  constructor(
    private readonly cfg: Config,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly driver: SupervisorDriver,
    private readonly store: AgentStore,
    private readonly lock: TableLock,
    private readonly agents: AgentService,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.reader = blockingReader(this.redis);
    this.consuming = this.consume();
    this.resyncJob = periodic('incident resync', this.cfg.RESYNC_INTERVAL_MS, () => this.resync(), this.log);
    await this.resyncJob.runNow();
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const r of this.retries.values()) clearTimeout(r.timer);
    this.retries.clear();
    this.reader?.disconnect();
    this.reader = null;
    await this.resyncJob?.stop();
    // A read queued while Redis was away is never settled by disconnect() (ioredis keeps it in
    // its offline queue with no connection to close): wait for the loop a bounded time only.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.consuming, new Promise((r) => (timer = setTimeout(r, 2500)))]);
    clearTimeout(timer);
  }

  async history(program: string): Promise<Incident[]> {
    return (await this.redis.lrange(this.keys.incidents(program), 0, HISTORY_LENGTH - 1)).map((s) => JSON.parse(s) as Incident);
  }

  private async ensureGroup(reader: Redis): Promise<void> {
    try {
      await reader.xgroup('CREATE', this.keys.supervisorEvents(), GROUP, '$', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
  }

  private async consume(): Promise<void> {
    const stream = this.keys.supervisorEvents();
    const consumer = this.cfg.INSTANCE_NAME;
    let backlog = true; // first what this consumer read before and did not acknowledge
    let grouped = false;
    let claimedAt = 0;
    while (this.running && this.reader) {
      const reader = this.reader;
      try {
        if (!grouped) {
          await this.ensureGroup(reader);
          grouped = true;
        }
        let entries: Array<[string, string[]]> = [];
        if (Date.now() - claimedAt > CLAIM_IDLE_MS / 2) {
          claimedAt = Date.now();
          const claimed = (await reader.xautoclaim(stream, GROUP, consumer, CLAIM_IDLE_MS, '0-0', 'COUNT', 100)) as [string, Array<[string, string[]] | null>];
          entries = (claimed[1] ?? []).filter((e): e is [string, string[]] => Array.isArray(e) && Array.isArray(e[1]));
        }
        if (!entries.length) {
          const res = (await reader.xreadgroup('GROUP', GROUP, consumer, 'COUNT', 100, 'BLOCK', 2000, 'STREAMS', stream, backlog ? '0' : '>')) as
            | Array<[string, Array<[string, string[]]>]>
            | null;
          entries = res?.[0]?.[1] ?? [];
          if (backlog && !entries.length) backlog = false;
        }
        for (const [id, fields] of entries) {
          const e: Record<string, string> = {};
          for (let i = 0; i + 1 < (fields?.length ?? 0); i += 2) e[fields[i]!] = fields[i + 1]!;
          await this.onEvent(e).catch((err: unknown) => this.log.warn({ err }, 'event handling failed'));
          await reader.xack(stream, GROUP, id);
        }
      } catch (err) {
        if (!this.running) return;
        // After a Redis loss the group is gone with the stream: create it again.
        if (String((err as Error).message).includes('NOGROUP')) grouped = false;
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
    if ((await this.store.desired(program)) !== 'running' || (await this.lock.busy(program))) return;

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
    if ((await this.store.desired(program)) !== 'running') {
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
        if (info.state === 'FATAL' && !this.retries.has(info.name)) await this.onFatal(info.name);
      }
    }
    this.suspects = suspects;
    this.resyncs++;
  }

  /** Raises an incident found elsewhere (a config change that was reverted). */
  async report(program: string, type: 'config_reverted', message: string, details: Incident['details']): Promise<Incident> {
    return this.raise(program, type, message, details);
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
