import pLimit from 'p-limit';
import type { Lifecycle } from '../agents/lifecycle.js';
import { forbidden, invalidRequest } from '../errors.js';
import type { TableCalls } from './table-calls.js';
import type { JvmLimits } from '../resources/agent-spec.js';
import { checkFleet, composeFleet, type FleetDocument, type FleetPlan, type FleetPlanEntry, type FleetQuery } from '../resources/fleet.js';
import type { Operation, TableResult } from '../resources/operation.js';
import { programName, type TableRef } from '../resources/table.js';
import type { OperationService } from './operation-service.js';

const refOf = (key: string): TableRef => {
  const [db = '', table = ''] = key.split('.');
  return { db, table };
};
const ORDER: Record<FleetPlanEntry['action'], number> = { change: 0, create: 1, delete: 2, absent: 3, unchanged: 4 };

/**
 * Fleet as code: a document of the desired tables made so, as one staged operation.
 *
 * Guarantees:
 * - the whole document is checked first (every table's spec as its create would check it, every
 *   profile it names, every db within the token and the `db` asked): one bad table refuses it
 *   all, 400/422 naming each field under its table, and nothing changes;
 * - a table whose spec is the desired one already is not touched (applying a set twice restarts
 *   no agent);
 * - each table is changed by the same call an operator would make (PUT /v1/api/:db/:table, as
 *   the caller), so a change that does not come up is reverted by itself (422 CONFIG_REVERTED);
 *   the canary tables go first, one at a time, and the first failure halts the rest untouched;
 * - tables absent from the set are deleted only with prune, each drained first (intake paused
 *   until its channel is empty); a delete keeps a channel that still holds events.
 */
export class FleetApply {
  constructor(
    private readonly agents: Lifecycle,
    private readonly operations: OperationService,
    private readonly limits: JvmLimits,
  ) {}

  /** What applying `doc` would do, table by table (nothing is changed). */
  async plan(doc: FleetDocument, q: Pick<FleetQuery, 'db' | 'prune'>, dbs: string[] | undefined, calls: TableCalls): Promise<{ plan: FleetPlan; bodies: Map<string, Record<string, unknown>> }> {
    const bodies = composeFleet(doc);
    for (const key of bodies.keys()) {
      const { db } = refOf(key);
      if (q.db && db !== q.db) throw invalidRequest(`${key} is not of db ${q.db}, the set this apply is about`);
      if (dbs && !dbs.includes(db)) throw forbidden(`this token is limited to db ${dbs.join(', ')}; ${key} is outside it`);
    }
    checkFleet(bodies, this.limits);
    const limit = pLimit(8);
    const declared = await Promise.all(
      [...bodies].map(([key, body]) =>
        limit(async (): Promise<FleetPlanEntry> => {
          const ref = refOf(key);
          const p = await calls.preview(ref, body);
          const action = p === null ? 'create' : p.outcome === 'unchanged' ? 'unchanged' : 'change';
          return { ...ref, program: programName(ref), action, revision: p?.previousRevision ?? null, diff: action === 'change' ? p!.diff : null };
        }),
      ),
    );
    const absent = this.agents
      .list(q.db ? { db: q.db } : undefined)
      .filter((s) => (!dbs || dbs.includes(s.db)) && !bodies.has(`${s.db}.${s.table}`))
      .map((s): FleetPlanEntry => ({ db: s.db, table: s.table, program: s.program, action: q.prune ? 'delete' : 'absent', revision: s.revision.desired, diff: null }));
    const entries = [...declared, ...absent].sort((a, b) => ORDER[a.action] - ORDER[b.action] || a.program.localeCompare(b.program));
    const counts = { create: 0, change: 0, unchanged: 0, absent: 0, delete: 0 };
    for (const e of entries) counts[e.action]++;
    return { plan: { entries, counts }, bodies };
  }

  /** Plans, then applies the plan as one staged operation (the canary first); resolves once it is recorded. */
  async apply(doc: FleetDocument, q: FleetQuery, by: string, dbs: string[] | undefined, calls: TableCalls): Promise<{ operation: Operation; plan: FleetPlan }> {
    const { plan, bodies } = await this.plan(doc, q, dbs, calls);
    const results: TableResult[] = plan.entries.map((e) => {
      const todo = e.action === 'create' || e.action === 'change' || e.action === 'delete';
      const why = e.action === 'unchanged' ? `unchanged: revision ${e.revision} is this spec` : e.action === 'absent' ? 'absent from the set: kept (prune=true deletes it)' : '';
      return { db: e.db, table: e.table, program: e.program, outcome: todo ? 'pending' : 'skipped', code: null, message: why };
    });
    const actionOf = new Map(plan.entries.map((e) => [e.program, e.action]));
    const reach = q.db ? [q.db] : dbs ? [...dbs].sort() : null;
    const operation = await this.operations.beginStaged(
      'apply',
      results,
      { canary: q.canary, concurrency: q.concurrency, by, selector: q.db ? { db: q.db } : { all: true }, dbs: reach },
      async (r) =>
        actionOf.get(r.program) === 'delete' ? calls.drainAndDelete(r, q.drainSeconds * 1000) : calls.upsert(r, bodies.get(`${r.db}.${r.table}`)),
    );
    return { operation, plan };
  }
}
