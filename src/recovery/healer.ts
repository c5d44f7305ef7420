import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import type { TableLock } from '../agents/table-lock.js';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import type { FleetModel } from '../fleet/fleet-model.js';
import type { IncidentService } from '../incidents/incident-service.js';
import { periodic, type Periodic } from '../periodic.js';
import type { Keys } from '../redis/keys.js';
import type { AgentStatus } from '../resources/agent-status.js';
import type { TableRef } from '../resources/table.js';
import { nextGrace, problemOf, trackSink, type Problem, type SinkTrack } from './heal-policy.js';

/**
 * How long a problem must last, and then be seen again by a fresh look, before it is one:
 * supervisord notices a JVM that died on its 1 s tick, and the model's supervisord state can be
 * a refresh old while its probe is new (a stop under way closes the source first).
 */
export const CONFIRM_MS = 2000;

/** One spell of trouble of one process of an agent. */
interface Episode {
  problem: Problem;
  pid: number;
  /** When it was first seen (ms). */
  seenAt: number;
  /** Confirmed by a fresh look: a problem, with its incident and its clock. */
  open: boolean;
  /** When the service restarts it (ms), or null: it does not (restarted already, or it gave up). */
  restartAt: number | null;
  /** An incident was raised for it (so its end is told too). */
  raised: boolean;
}

/**
 * Agents that heal: an agent that supervisord says RUNNING but whose source does not accept
 * events (past starting), or whose sink has failed every write for HEAL_SINK_FAILING_SECONDS
 * while events waited, gets an incident once that lasted CONFIRM_MS and a fresh look saw it
 * too (a JVM that died, a stop under way, are not problems), and, unless it recovers
 * within HEAL_GRACE_SECONDS, a restart by the service (a JVM that hangs is killed if it has not
 * gone 5 s after SIGTERM). Each further restart within CRASH_LOOP_WINDOW_SECONDS waits twice as
 * long; after HEAL_RESTARTS of them the service gives up (an incident says so) until the agent is
 * healthy again. Its end, however it came, is a `recovered` incident.
 *
 * Guarantees: it reads only the fleet model between ticks; a restart is preceded by a fresh look
 * at the agent and made under the table's lock (a table busy with an operation is left to it);
 * across API processes sharing the Redis each incident and each restart happens once; agents
 * that only drain (another host owns their table), that should be stopped, or that wait in the
 * start queue are never touched.
 */
export class Healer {
  private job: Periodic | null = null;
  private readonly episodes = new Map<string, Episode>();
  private readonly tracks = new Map<string, SinkTrack>();
  /** When the service restarted each agent (ms), within the window. */
  private readonly restarts = new Map<string, number[]>();

  constructor(
    private readonly cfg: Config,
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly fleet: FleetModel,
    private readonly agents: AgentService,
    private readonly lock: TableLock,
    private readonly incidents: IncidentService,
    /** Tables another host owns now (many hosts): their agents here only drain. */
    private readonly elsewhere: (ref: TableRef) => boolean,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.job ??= periodic('healer', this.cfg.FLEET_REFRESH_MS, () => this.tick(), this.log);
  }

  async stop(): Promise<void> {
    await this.job?.stop();
    this.job = null;
  }

  /** One look at every agent the fleet model knows. */
  async tick(): Promise<void> {
    const now = Date.now();
    const seen = new Set<string>();
    for (const s of this.fleet.list()) {
      seen.add(s.program);
      if (this.elsewhere(s)) continue;
      const track = trackSink(this.tracks.get(s.program) ?? null, s, now);
      if (track) this.tracks.set(s.program, track);
      else this.tracks.delete(s.program);
      const found = problemOf(s, track, now, { sinkFailingSeconds: this.cfg.HEAL_SINK_FAILING_SECONDS });
      const ep = this.episodes.get(s.program);
      if (!found) {
        if (ep) await this.settle(s, ep);
        continue;
      }
      if (!ep || ep.pid !== s.pid || ep.problem !== found.problem) {
        this.episodes.set(s.program, { problem: found.problem, pid: s.pid!, seenAt: now, open: false, restartAt: null, raised: false });
      } else if (!ep.open) {
        if (now - ep.seenAt >= CONFIRM_MS) await this.confirm(s, ep);
      } else if (ep.restartAt !== null && now >= ep.restartAt) {
        await this.restart(s, ep);
      }
    }
    for (const program of this.episodes.keys()) if (!seen.has(program)) this.episodes.delete(program);
    for (const program of this.tracks.keys()) if (!seen.has(program)) this.tracks.delete(program);
  }

  private recentRestarts(program: string, now: number): number[] {
    const windowMs = this.cfg.CRASH_LOOP_WINDOW_SECONDS * 1000;
    const recent = (this.restarts.get(program) ?? []).filter((t) => now - t < windowMs);
    this.restarts.set(program, recent);
    return recent;
  }

  /** The agent as it is now, and its problem then (null: none, or another process). */
  private async lookAgain(s: AgentStatus, ep: Episode): Promise<{ problem: Problem; reason: string } | null> {
    const now = await this.agents.status(s, true).catch(() => null);
    if (!now || now.pid !== ep.pid) return null;
    const again = problemOf(now, this.tracks.get(s.program) ?? null, Date.now(), { sinkFailingSeconds: this.cfg.HEAL_SINK_FAILING_SECONDS });
    return again?.problem === ep.problem ? again : null;
  }

  /** A problem seen for CONFIRM_MS and again by a fresh look is one: its incident, and when the service steps in. */
  private async confirm(s: AgentStatus, ep: Episode): Promise<void> {
    if (await this.lock.busy(s.program)) return; // an operation under way explains it; look again next tick
    const found = await this.lookAgain(s, ep);
    if (!found) {
      this.episodes.delete(s.program);
      return;
    }
    const { problem, reason } = found;
    const now = Date.now();
    const made = this.recentRestarts(s.program, now).length;
    const grace = this.cfg.HEAL_RESTARTS === 0 ? null : nextGrace(made, this.cfg.HEAL_GRACE_SECONDS, this.cfg.HEAL_RESTARTS);
    ep.open = true;
    ep.restartAt = grace === null ? null : now + grace * 1000;
    const what = problem === 'unresponsive' ? `supervisord says RUNNING, but ${reason}` : reason;
    const then =
      this.cfg.HEAL_RESTARTS === 0
        ? 'the service does not restart agents (HEAL_RESTARTS=0)'
        : grace === null
          ? `the service restarted it ${made} times within ${this.cfg.CRASH_LOOP_WINDOW_SECONDS} s and leaves it now (HEAL_RESTARTS=${this.cfg.HEAL_RESTARTS})`
          : `the service restarts it in ${grace} s unless it recovers (restart ${made + 1} of at most ${this.cfg.HEAL_RESTARTS} within ${this.cfg.CRASH_LOOP_WINDOW_SECONDS} s)`;
    // Every API process looks: the first to mark this spell raises it.
    if (!(await this.once(`heal:${s.program}:${problem}:${s.pid}:${s.startedAt}`))) return;
    ep.raised = true;
    await this.incidents.report(s.program, problem, `${what}: ${then}`, {
      pid: s.pid,
      restartInSeconds: grace,
      restartsInWindow: made,
      healthReason: s.healthReason,
    });
  }

  /** No problem now: a spell ends once the agent runs and accepts again, or is stopped on purpose. */
  private async settle(s: AgentStatus, ep: Episode): Promise<void> {
    if (s.desired === 'stopped') {
      this.episodes.delete(s.program);
      return;
    }
    if (!ep.open) {
      this.episodes.delete(s.program); // a passing look, never confirmed
      return;
    }
    if (s.state !== 'RUNNING' || !s.accepting) return; // restarting, or starting: not over yet
    this.episodes.delete(s.program);
    if (!ep.raised) return;
    const how = s.pid === ep.pid ? 'by itself' : 'in a new process';
    await this.incidents.report(s.program, 'recovered', `the agent accepts events again (${how}, pid ${s.pid})${ep.problem === 'sink_failing' ? ' and its sink delivers' : ''}`, {
      problem: ep.problem,
      pid: s.pid,
    });
  }

  private async restart(s: AgentStatus, ep: Episode): Promise<void> {
    if (await this.lock.busy(s.program)) return; // an operator's operation decides; look again next tick
    // The model's view is up to a refresh old: look again before stepping in.
    const again = await this.lookAgain(s, ep);
    if (!again) return;
    ep.restartAt = null;
    if (!(await this.once(`heal-restart:${s.program}:${ep.pid}:${s.startedAt}`))) return;
    const at = Date.now();
    this.restarts.set(s.program, [...this.recentRestarts(s.program, at), at]);
    const log = this.log.child({ program: s.program });
    log.warn({ problem: ep.problem, pid: ep.pid, reason: again.reason }, 'restarting an agent that does not recover by itself');
    try {
      await this.agents.heal(s, ep.problem === 'unresponsive');
      const after = this.agents.known(s.program);
      await this.incidents.report(s.program, 'restarted', `restarted by the service (${again.reason}); it runs as pid ${after?.pid ?? '?'} now`, {
        problem: ep.problem,
        previousPid: ep.pid,
        pid: after?.pid ?? null,
        restartsInWindow: this.recentRestarts(s.program, Date.now()).length,
      });
    } catch (err) {
      // BUSY: an operation took the table meanwhile; anything else: the agent's start failed
      // (its own incidents follow); either way the next spell decides.
      if (!(err instanceof AppError && err.error === 'BUSY')) log.error({ err }, 'the restart of an agent that did not recover failed');
    }
  }

  private async once(id: string): Promise<boolean> {
    const r = await this.redis.set(this.keys.incidentOnce(id), '1', 'EX', 3600, 'NX').catch(() => 'OK');
    return r === 'OK';
  }
}
