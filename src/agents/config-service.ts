import { readFile } from 'node:fs/promises';
import { createTwoFilesPatch } from 'diff';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AppError, agentNotFound, configReverted, preconditionFailed, revisionNotFound } from '../errors.js';
import type { AgentService } from './agent-service.js';
import { revisionOf, type AgentMeta, type AgentStore } from '../store/agent-store.js';
import { writeAtomic } from '../store/files.js';
import { programName, type TableRef } from '../resources/table.js';
import { fails, type Precondition } from '../resources/precondition.js';
import { mergePatch } from '../resources/merge-patch.js';
import { keptRunning } from './stand-in.js';
import { flumeConfFor, programFor } from './launch.js';
import type { ChangeMode, ConfigChange, ConfigView, Revision } from '../resources/revision.js';
import { RevisionStore } from '../store/revisions.js';
import { checkSpec, specError, type AgentSpec } from '../resources/agent-spec.js';
import type { TableLock } from './table-lock.js';
import type { RouteTable } from './route-table.js';

/** The body that re-creates a spec: what PATCH merges into. */
const bodyOf = (spec: AgentSpec) => ({ sink: spec.sink, options: spec.options, channel: spec.channel, idleMinutes: spec.idleMinutes, failoverAfterSeconds: spec.failoverAfterSeconds, ack: spec.ack, jvm: spec.jvm, schema: spec.schema });

/** A change whose agent did not accept events: the previous revision runs again (or is restored on disk). */
export interface RevertedChange {
  program: string;
  message: string;
  revision: number;
  restoredRevision: number;
  restored: boolean;
  reason: string;
}

/**
 * An agent's config as a resource with a history: read it, preview a change (dry run: per-field
 * validation and a diff of flume.conf), apply it, go back to an earlier revision.
 *
 * Guarantees:
 * - every change runs under the table's lock, on the same port and the same channel;
 * - a running agent is restarted with the new revision and the answer comes once it accepts
 *   events; if it does not within the ready timeout (or Flume reports its channel or port
 *   failed), the previous revision is restored and started again, the answer is 422
 *   CONFIG_REVERTED, an incident `config_reverted` is raised, and the failed revision stays in
 *   the history marked `reverted`. The channel is never touched, so nothing accepted is lost;
 * - a stopped agent only gets its files rewritten (`stored`): the next start runs the revision;
 * - revisions only grow; the last CONFIG_REVISIONS_KEPT are kept, the desired one always.
 */
export class ConfigService {
  constructor(
    private readonly cfg: Config,
    private readonly store: AgentStore,
    private readonly lock: TableLock,
    private readonly agents: AgentService,
    /** Where a change only the gateway reads (schema, ack) is published without a restart. */
    private readonly routes: RouteTable,
    private readonly log: Logger,
    /** Told of every reverted change before its 422 answers (the incidents raise config_reverted). */
    private readonly onReverted: (e: RevertedChange) => Promise<void> = async () => undefined,
  ) {}

  revisionsOf(program: string): RevisionStore {
    return new RevisionStore(this.store.paths(program).revisionsDir, this.cfg.CONFIG_REVISIONS_KEPT);
  }

  async get(ref: TableRef): Promise<ConfigView> {
    const meta = await this.meta(programName(ref));
    return {
      db: meta.db,
      table: meta.table,
      program: meta.program,
      revision: (await this.agents.status(ref, true)).revision,
      spec: meta.spec,
      flumeConf: await readFile(this.store.paths(meta.program).flumeConf, 'utf8').catch(() => this.render(meta, meta.spec)),
    };
  }

  /** The desired spec and its revision, from disk (no observation). */
  async current(ref: TableRef): Promise<{ spec: AgentSpec; revision: number }> {
    const meta = await this.meta(programName(ref));
    return { spec: meta.spec, revision: revisionOf(meta) };
  }

  /** The history, oldest first (an agent created before revisions existed shows its spec as 1). */
  async history(ref: TableRef): Promise<Revision[]> {
    const meta = await this.meta(programName(ref));
    const revs = await this.revisionsOf(meta.program).list();
    return revs.length ? revs : [this.firstRevision(meta)];
  }

  /** PUT (a whole create body) or PATCH (a merge patch over the desired spec). */
  async change(ref: TableRef, body: unknown, opts: { mode: ChangeMode; dryRun: boolean; by: string; precondition?: Precondition }): Promise<ConfigChange> {
    const program = programName(ref);
    const preview = async (meta: AgentMeta) => {
      const next = opts.mode === 'patch' ? mergePatch(bodyOf(meta.spec), body) : body;
      const c = checkSpec(next, ref, { defaultHeap: this.cfg.AGENT_HEAP, maxHeap: this.cfg.AGENT_MAX_HEAP });
      if (!c.ok) throw specError(c);
      return c.spec;
    };
    if (opts.dryRun) {
      const meta = this.checked(await this.meta(program), opts.precondition);
      const spec = await preview(meta);
      // The desired spec already: nothing would be written or restarted (as the change itself answers).
      if (JSON.stringify(spec) === JSON.stringify(meta.spec)) return this.describe(meta, spec, 'unchanged', revisionOf(meta));
      const number = Math.max(await this.revisionsOf(program).latestNumber(), revisionOf(meta)) + 1;
      return this.describe(meta, spec, 'dry_run', number);
    }
    return this.lock.run(program, 'config', async () => {
      const meta = this.checked(await this.meta(program), opts.precondition);
      return this.applyHeld(meta, await preview(meta), { reason: opts.mode, from: null, by: opts.by });
    });
  }

  /** Makes an earlier revision's spec the desired one again, as a new revision. */
  async rollback(ref: TableRef, revision: number | undefined, by: string, precondition?: Precondition): Promise<ConfigChange> {
    const program = programName(ref);
    return this.lock.run(program, 'config', async () => {
      const meta = this.checked(await this.meta(program), precondition);
      const history = await this.revisionsOf(program).list();
      const current = revisionOf(meta);
      // Default: the newest applied revision before the desired one.
      const target =
        revision === undefined
          ? history.filter((r) => r.revision < current && r.outcome !== 'reverted').at(-1)
          : history.find((r) => r.revision === revision);
      if (!target) {
        throw revisionNotFound(
          revision === undefined ? `${program} has no earlier good revision to go back to` : `${program} has no revision ${revision} (kept: ${history.map((r) => r.revision).join(', ') || 'none'})`,
        );
      }
      return this.applyHeld(meta, target.spec, { reason: 'rollback', from: target.revision, by });
    });
  }

  // --- internals ----------------------------------------------------------------------------

  /** 412 unless the desired revision meets If-Match and If-None-Match (checked under the table's lock). */
  private checked(meta: AgentMeta, precondition: Precondition | undefined): AgentMeta {
    const failed = precondition && fails(precondition, revisionOf(meta));
    if (failed) throw preconditionFailed(meta.program, revisionOf(meta), failed);
    return meta;
  }

  private async applyHeld(meta: AgentMeta, spec: AgentSpec, how: { reason: Revision['reason']; from: number | null; by: string }): Promise<ConfigChange> {
    const revisions = this.revisionsOf(meta.program);
    const previous = revisionOf(meta);
    if (JSON.stringify(spec) === JSON.stringify(meta.spec)) return this.describe(meta, spec, 'unchanged', previous);
    // An agent from before revisions existed: its creation spec becomes revision 1 first.
    if ((await revisions.latestNumber()) === 0) await revisions.write(this.firstRevision(meta));
    const number = (await revisions.latestNumber()) + 1;
    const change = await this.describe(meta, spec, 'applied', number);
    const running = (await this.store.desired(meta.program)) === 'running';
    const rev: Revision = { revision: number, spec, createdAt: new Date().toISOString(), by: how.by, reason: how.reason, from: how.from, outcome: running ? 'applied' : 'stored', error: null };
    const next: AgentMeta = { ...meta, spec, revision: number, runningRevision: meta.runningRevision ?? previous };
    const log = this.log.child({ program: meta.program, revision: number });
    await revisions.write(rev);
    await this.writeAgentFiles(next);
    if (!running) {
      await revisions.prune(number);
      log.info({ from: previous }, 'config stored; the agent runs it at its next start');
      return { ...change, outcome: 'stored' };
    }
    if (this.sameAgent(meta, next)) {
      // Only the gateway or the service reads what changed (the contract, ack, idle, failover):
      // the JVM runs this revision already, and a published route takes the change at once.
      await this.store.writeMeta({ ...next, runningRevision: number });
      if ((await this.routes.values([meta]))[0]) await this.routes.publish(next);
      await revisions.prune(number);
      await this.agents.status(meta, true);
      log.info({ from: previous, reason: how.reason }, 'config applied without a restart (the agent runs the same config)');
      return change;
    }
    try {
      await this.agents.restartHeld(next);
    } catch (err) {
      const reason = err instanceof AppError ? err.message : String(err);
      log.warn({ err }, 'the new config did not accept events; reverting');
      await revisions.write({ ...rev, outcome: 'reverted', error: reason });
      await this.writeAgentFiles(meta);
      let restored = true;
      try {
        // A new revision that failed beside the running agent (its stand-in) left that agent as it was.
        if (!keptRunning(err)) await this.agents.restartHeld(meta);
      } catch (err2) {
        restored = false;
        log.error({ err: err2 }, 'the previous config did not start again either');
      }
      const message = `revision ${number} of ${meta.program} did not accept events; ${restored ? `revision ${previous} runs again` : `revision ${previous} is restored on disk but did not start`}`;
      await this.agents.status(meta, true).catch(() => undefined);
      await this.onReverted({ program: meta.program, message, revision: number, restoredRevision: previous, restored, reason }).catch((e: unknown) => log.warn({ err: e }, 'could not report the reverted change'));
      throw configReverted(message, {
        revision: number,
        restoredRevision: previous,
        restored,
        reason,
        logTail: err instanceof AppError ? (err.details?.logTail ?? []) : [],
      });
    }
    await revisions.prune(number);
    await this.agents.status(meta, true); // the fleet model sees the new revision at once
    log.info({ from: previous, reason: how.reason }, 'config applied');
    return change;
  }

  /** Whether two metas run the very same agent: its flume.conf and its supervisor program alike. */
  private sameAgent(a: AgentMeta, b: AgentMeta): boolean {
    return this.render(a, a.spec) === this.render(b, b.spec) && programFor(this.cfg, a, true) === programFor(this.cfg, b, true);
  }

  /** flume.conf, agent.json and the program (its class path follows the sink), atomically each. */
  private async writeAgentFiles(meta: AgentMeta): Promise<void> {
    await writeAtomic(this.store.paths(meta.program).flumeConf, this.render(meta, meta.spec));
    await this.store.writeMeta(meta);
    await this.store.writeProgram(meta.program, programFor(this.cfg, meta, (await this.store.desired(meta.program)) === 'running'));
  }

  private render(meta: AgentMeta, spec: AgentSpec): string {
    return flumeConfFor(this.cfg, meta, this.store.paths(meta.program), spec);
  }

  private async describe(meta: AgentMeta, spec: AgentSpec, outcome: ConfigChange['outcome'], revision: number): Promise<ConfigChange> {
    const before = await readFile(this.store.paths(meta.program).flumeConf, 'utf8').catch(() => this.render(meta, meta.spec));
    const diff = createTwoFilesPatch(`flume.conf (revision ${revisionOf(meta)})`, `flume.conf (revision ${revision})`, before, this.render(meta, spec), '', '', { context: 1 });
    return { db: meta.db, table: meta.table, program: meta.program, outcome, revision, previousRevision: revisionOf(meta), spec, diff, fields: [] };
  }

  private firstRevision(meta: AgentMeta): Revision {
    return { revision: 1, spec: meta.spec, createdAt: meta.createdAt, by: 'service', reason: 'create', from: null, outcome: 'applied', error: null };
  }

  private async meta(program: string): Promise<AgentMeta> {
    const meta = await this.store.readMeta(program);
    if (!meta) throw agentNotFound(program);
    return meta;
  }
}
