import type { AgentState, AgentStatus } from '../resources/agent-status.js';
import type { BulkOp, Selector } from '../resources/operation.js';

/** What a bulk operation's selector reaches, and who may see an operation. */

/** Whether a caller limited to `dbs` (undefined: every db) may see an operation that reaches `reach`. */
export function operationVisible(reach: string[] | null | undefined, dbs: string[] | undefined): boolean {
  return !dbs || (!!reach && reach.every((d) => dbs.includes(d)));
}

/** The dbs a selector (and a caller's dbs) can reach: the intersection of what each names; null: every db. */
export function reachOf(selector: Selector, dbs: string[] | undefined): string[] | null {
  const limits = [selector.db ? [selector.db] : null, selector.tables ? selector.tables.map((t) => t.split('.')[0]!) : null, dbs ?? null].filter(
    (l): l is string[] => l !== null,
  );
  if (!limits.length) return null;
  return [...new Set(limits[0])].filter((d) => limits.every((l) => l.includes(d))).sort();
}
const UP: readonly AgentState[] = ['RUNNING', 'STARTING', 'BACKOFF'];

/** Why a table needs nothing from `op`, or null when it does. */
export function nothingToDo(op: BulkOp, s: AgentStatus): string | null {
  if (op === 'start' && s.desired === 'running' && s.accepting) return 'already running and accepting';
  if (op === 'stop' && s.desired === 'stopped' && !UP.includes(s.state)) return 'already stopped';
  if (op === 'pause' && s.paused) return 'already paused';
  if (op === 'resume' && !s.paused) return 'not paused';
  return null;
}
