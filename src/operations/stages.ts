import pLimit from 'p-limit';
import { failure } from '../agents/batch.js';
import type { TableOutcome, TableResult } from '../resources/operation.js';

/**
 * A staged run over tables: `act` on the first `canary` one at a time, then on the rest
 * `concurrency` at a time. The first failure halts it: a table whose turn comes after is left
 * as it is (outcome cancelled, saying why), as is every table once `cancelled()` names who asked.
 * Each table is settled exactly once. Resolves with why it halted (null: it did not).
 */
export async function inStages(
  pending: TableResult[],
  opts: { canary: number; concurrency: number; cancelled: () => { by: string } | null },
  act: (r: TableResult) => Promise<TableOutcome>,
  settle: (r: TableResult, outcome: TableOutcome) => void,
): Promise<string | null> {
  let halted: string | null = null;
  const turn = async (r: TableResult) => {
    const cancel = opts.cancelled();
    if (cancel) return settle(r, { outcome: 'cancelled', code: null, message: `cancelled by ${cancel.by} before its turn; nothing was done` });
    if (halted) return settle(r, { outcome: 'cancelled', code: null, message: `halted: ${halted}; nothing was done to it` });
    const outcome = await act(r).catch(failure);
    if (outcome.outcome === 'failed') halted ??= `${r.db}.${r.table} failed (${outcome.code ?? 'error'})`;
    settle(r, outcome);
  };
  for (const r of pending.slice(0, opts.canary)) await turn(r);
  const limit = pLimit(opts.concurrency);
  await Promise.all(pending.slice(opts.canary).map((r) => limit(() => turn(r))));
  return halted;
}
