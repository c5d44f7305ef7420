import type { Logger } from 'pino';
import { AppError, appError, agentNotFound } from '../errors.js';
import { programName, type TableRef } from '../resources/table.js';
import type { AgentStore } from '../store/agent-store.js';
import { listQuarantine, quarantineCount, quarantineFiles, readQuarantineFile, removeQuarantineFile, type QuarantinedEvent } from '../store/quarantine.js';
import { INTAKE_KEY_HEADER, RouteTable } from './route-table.js';
import type { TableLock } from './table-lock.js';

export interface QuarantinePage {
  count: number;
  events: Array<QuarantinedEvent & { file: string }>;
}

export interface ReplayResult {
  replayed: number;
  /** Files that do not parse as the sink wrote them: left where they are. */
  unreadable: number;
  to: TableRef;
}

/** How long one replayed batch may take the target's agent to commit. */
const POST_TIMEOUT_MS = 30_000;

/**
 * A table's quarantine as operators use it (src/store/quarantine.ts is the disk): read it, replay
 * it into the same table or another once the cause is fixed, or drop it. Replay and drop run
 * under the source table's lock (409 BUSY with another operation), so two replays never send
 * the same events; a file is removed only after every event in it was committed by the target's
 * agent (its channel), so a replay cut short sends the rest next time (at least once).
 */
export class QuarantineService {
  constructor(
    private readonly store: AgentStore,
    private readonly routes: RouteTable,
    private readonly lock: TableLock,
    private readonly log: Logger,
  ) {}

  private dir(ref: TableRef): string {
    return this.store.paths(programName(ref)).quarantineDir;
  }

  private async mustExist(ref: TableRef): Promise<void> {
    if (!this.store.hasMeta(programName(ref))) throw agentNotFound(programName(ref));
  }

  async list(ref: TableRef, offset: number, limit: number): Promise<QuarantinePage> {
    await this.mustExist(ref);
    const dir = this.dir(ref);
    return { count: await quarantineCount(dir), events: await listQuarantine(dir, offset, limit) };
  }

  /** Sends every quarantined event into `to`'s agent (default: the table itself), then removes it. */
  async replay(ref: TableRef, to: TableRef = ref): Promise<ReplayResult> {
    await this.mustExist(ref);
    const target = await this.store.readMeta(programName(to));
    if (!target) throw agentNotFound(programName(to));
    return this.lock.run(programName(ref), 'quarantine replay', async () => {
      const dir = this.dir(ref);
      let replayed = 0;
      let unreadable = 0;
      for (const file of await quarantineFiles(dir)) {
        const events = await readQuarantineFile(dir, file);
        if (!events) {
          unreadable++;
          continue;
        }
        const tx = target.spec.channel.transactionCapacity;
        for (let i = 0; i < events.length; i += tx) {
          await this.send(to, events.slice(i, i + tx));
        }
        await removeQuarantineFile(dir, file);
        replayed += events.length;
      }
      this.log.info({ program: programName(ref), to: programName(to), replayed, unreadable }, 'quarantine replayed');
      return { replayed, unreadable, to: { db: to.db, table: to.table } };
    });
  }

  /** Removes every quarantined event (the audit trail records who did). */
  async drop(ref: TableRef): Promise<{ dropped: number }> {
    await this.mustExist(ref);
    return this.lock.run(programName(ref), 'quarantine drop', async () => {
      const dir = this.dir(ref);
      let dropped = 0;
      for (const file of await quarantineFiles(dir)) {
        await removeQuarantineFile(dir, file);
        dropped += file.count;
      }
      this.log.warn({ program: programName(ref), dropped }, 'quarantine dropped');
      return { dropped };
    });
  }

  /** One batch into the agent that takes `to`'s events now (its route: the agent, or its stand-in). */
  private async send(to: TableRef, events: QuarantinedEvent[]): Promise<void> {
    const [route] = await this.routes.values([to]);
    const at = RouteTable.addressOf(route);
    if (!at) {
      throw appError('AGENT_DOWN', `${programName(to)} does not take events now (${route?.replace(/ k=[\w-]+/, ' k=…') ?? 'not running'}); nothing more was replayed, the rest stays in the quarantine`);
    }
    const body = JSON.stringify(events.map((e) => ({ headers: replayedHeaders(e.headers), body: e.body })));
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(at.intakeKey ? { [INTAKE_KEY_HEADER]: at.intakeKey } : {}) };
    const r = await fetch(`http://${at.host}:${at.port}/`, { method: 'POST', headers, body, signal: AbortSignal.timeout(POST_TIMEOUT_MS) }).catch(
      (err: unknown) => ({ status: 0, err }),
    );
    if (r.status !== 200) {
      throw appError('AGENT_DOWN', `${programName(to)}'s agent did not commit a replayed batch (${r.status || 'no answer'}); the rest stays in the quarantine`);
    }
  }
}

/**
 * A replayed event's headers: one the gateway marked as not meeting its table's contract
 * (`quarantine`, which the Kafka sink keeps aside) goes on flagged instead (`schemaDrift`), so the
 * operator's replay delivers it and downstream still sees why it was held.
 */
export function replayedHeaders(headers: Record<string, string>): Record<string, string> {
  const { quarantine: problem, ...rest } = headers;
  return problem === undefined ? headers : { ...rest, schemaDrift: problem };
}
