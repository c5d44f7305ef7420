import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import type { AgentStore } from '../agents/agent-store.js';
import { parseProgramName } from '../agents/names.js';
import type { TableLock } from '../agents/table-lock.js';
import type { Config } from '../config.js';
import type { IdleEvent } from '../fleet/fleet-model.js';
import { periodic, type Periodic } from '../periodic.js';
import { blockingReader } from '../redis/client.js';
import type { Keys } from '../redis/keys.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import { logTail } from '../agents/agent-store.js';
import { incidentNotFound } from '../errors.js';
import { lastExit, suggestAction, type ExitCause } from './explain.js';
import { deliverWebhooks, webhookHost, type WebhookDelivery } from './webhooks.js';

// KEYS[1] the list; ARGV: index, the entry as read, the new entry. Replaces it only if unchanged.
const REPLACE_IF_SAME = `
if redis.call('LINDEX', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('LSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end
return 0`;
const LOG_TAIL_LINES = 20;

export type IncidentType = 'unexpected_exit' | 'backoff' | 'fatal' | 'crash_loop' | 'not_running' | 'recovered' | 'config_reverted' | 'idle';

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
  /** How the agent's JVM ended (exits, crash loops), from supervisord's log: null when not known. */
  exitCode: number | null;
  signal: string | null;
  /** The agent's last log lines when the incident was raised. */
  logTail: string[];
  suggestedAction: string;
  acknowledged: { by: string; at: string } | null;
  /** Each webhook URL's delivery outcome (pending until known). */
  webhooks: WebhookDelivery[];
}

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

const SEVERITY: Record<IncidentType, Incident['severity']> = {
  unexpected_exit: 'critical',
  backoff: 'warning',
  fatal: 'critical',
  crash_loop: 'critical',
  not_running: 'critical',
  recovered: 'info',
  config_reverted: 'warning',
  idle: 'warning',
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
  /** Open crash loops: exits within the window are folded into this incident. */
  private readonly loops = new Map<string, { id: string; lastExitAt: number; exits: number }>();
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
    private readonly webhookSecret = '',
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
      const cause = await lastExit(this.supervisordLog, program);
      if (await this.fold(program, cause)) return;
      const how = cause.signal ? `killed by ${cause.signal}` : cause.exitCode !== null ? `exit code ${cause.exitCode}` : 'cause unknown';
      await this.raise(program, 'unexpected_exit', `the agent exited unexpectedly (${how}; pid ${e.pid ?? '?'}, was ${e.from_state ?? '?'}); supervisord restarts it`, {
        pid: Number(e.pid) || null,
        fromState: e.from_state ?? null,
      }, cause);
      await this.noteExit(program, cause);
    } else if (state === 'BACKOFF') {
      const cause = await lastExit(this.supervisordLog, program);
      if (await this.fold(program, cause)) return;
      await this.raise(program, 'backoff', 'the agent exited while starting; supervisord is retrying', { fromState: e.from_state ?? null }, cause);
      await this.noteExit(program, cause);
    } else if (state === 'FATAL') {
      await this.onFatal(program);
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
    const updated = await this.update(program, loop.id, (i) => ({
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
    }, await lastExit(this.supervisordLog, program));
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
    if (retry) {
      // Back from FATAL by a retry: whatever loop led there is over.
      clearTimeout(retry.timer);
      this.loops.delete(program);
    }
    this.retries.delete(program);
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
        if (info.state === 'FATAL' && !this.retries.has(info.name)) await this.onFatal(info.name);
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

  /** Raises an incident found elsewhere (a config change that was reverted). */
  async report(program: string, type: 'config_reverted', message: string, details: Incident['details']): Promise<Incident> {
    return this.raise(program, type, message, details);
  }

  /** The newest incidents across these agents, newest first (one round trip). */
  async recent(programs: string[], limit: number): Promise<Incident[]> {
    if (!programs.length) return [];
    const tx = this.redis.pipeline();
    for (const p of programs) tx.lrange(this.keys.incidents(p), 0, limit - 1);
    const all: Incident[] = [];
    for (const [, items] of (await tx.exec()) ?? []) for (const s of (items as string[] | null) ?? []) all.push(JSON.parse(s) as Incident);
    return all.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0)).slice(0, limit);
  }

  /** Incidents of these agents from the last 24 h that need someone (not info) and nobody acknowledged. */
  async unacknowledged(programs: string[]): Promise<number> {
    if (!programs.length) return 0;
    const tx = this.redis.pipeline();
    for (const p of programs) tx.lrange(this.keys.incidents(p), 0, HISTORY_LENGTH - 1);
    const since = Date.now() - 86_400_000;
    let n = 0;
    for (const [, items] of (await tx.exec()) ?? []) {
      for (const s of (items as string[] | null) ?? []) {
        const i = JSON.parse(s) as Incident;
        if (Date.parse(i.at) < since) break; // newest first
        if (i.severity !== 'info' && !i.acknowledged) n++;
      }
    }
    return n;
  }

  /** Marks an incident acknowledged (who, when); 404 if the agent has no such incident. */
  async acknowledge(program: string, id: string, by: string): Promise<Incident> {
    const updated = await this.update(program, id, (i) => (i.acknowledged ? i : { ...i, acknowledged: { by, at: new Date().toISOString() } }));
    if (!updated) throw incidentNotFound(id);
    this.emit('incident', updated);
    return updated;
  }

  /** Rewrites one stored incident (compare-and-set, retried); null if it is not (or no longer) kept. */
  private async update(program: string, id: string, change: (i: Incident) => Incident): Promise<Incident | null> {
    const key = this.keys.incidents(program);
    for (let attempt = 0; attempt < 5; attempt++) {
      const items = await this.redis.lrange(key, 0, HISTORY_LENGTH - 1);
      const index = items.findIndex((s) => s.includes(`"id":"${id}"`));
      if (index < 0) return null;
      const next = change(JSON.parse(items[index]!) as Incident);
      if ((await this.redis.eval(REPLACE_IF_SAME, 1, key, index, items[index]!, JSON.stringify(next))) === 1) return next;
    }
    return null;
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
      suggestedAction:
        type === 'recovered'
          ? 'Nothing: it runs again.'
          : type === 'idle'
            ? 'Check the senders of this table. For planned quiet periods pause the table (POST .../pause) or change idleMinutes (PATCH .../config).'
          : type === 'config_reverted'
            ? 'Read details.reason and the log tail, fix the change (PUT .../config?dryRun=true to preview), and apply it again.'
            : type === 'not_running'
              ? 'Read the log tail (GET .../logs) and start the agent (POST .../start); stop it if it should not run.'
              : suggestAction(exit, tail, type === 'crash_loop' ? 'loop' : type === 'fatal' ? 'fatal' : 'exit'),
      acknowledged: null,
      webhooks: this.cfg.WEBHOOK_URLS.map((url) => ({ host: webhookHost(url), outcome: 'pending' as const, status: null, attempts: 0, at: null })),
    };
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
    if (this.cfg.WEBHOOK_URLS.length) {
      // Receivers are outside the service: they get what a viewer gets, no log tail (it holds event data).
      void deliverWebhooks(this.cfg.WEBHOOK_URLS, withoutLogTail(incident), { retries: this.cfg.WEBHOOK_RETRIES, secret: this.webhookSecret }, log).then((webhooks) =>
        this.update(program, incident.id, (i) => ({ ...i, webhooks })).catch((err: unknown) => log.warn({ err }, 'could not record the webhook outcome')),
      );
    }
    return incident;
  }
}
