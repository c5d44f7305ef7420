import { call, type Connection } from './client.js';

/** An operation as GET /v1/api/operations/:id answers it (the fields flumectl shows). */
export interface OperationView {
  id: string;
  state: string;
  total: number;
  counts: Record<string, number>;
  results: Array<{ db: string; table: string; outcome: string; code: string | null; message: string }>;
}

/** Polls an operation until it is no longer running, telling progress on stderr (unless quiet). */
export async function follow(c: Connection, started: OperationView, label: string, quiet: boolean): Promise<OperationView> {
  let o = started;
  let shown = -1;
  while (o.state === 'running') {
    const done = o.total - (o.counts.pending ?? 0);
    if (done !== shown && !quiet) process.stderr.write(`${label}: ${done}/${o.total} done\n`);
    shown = done;
    await new Promise((r) => setTimeout(r, 500));
    o = (await call(c, 'GET', `/v1/api/operations/${o.id}`)).body.operation as OperationView;
  }
  return o;
}

/** One line of counts, then a line per table that failed (or was cancelled, when asked). */
export function summary(label: string, o: OperationView, withCancelled = false): string {
  const n = (k: string) => o.counts[k] ?? 0;
  const shown = o.results.filter((x) => x.outcome === 'failed' || (withCancelled && x.outcome === 'cancelled'));
  return [
    `${label} of ${o.total} agent(s): ${n('applied')} applied, ${n('skipped')} skipped, ${n('failed')} failed${n('cancelled') ? `, ${n('cancelled')} cancelled` : ''}${o.state === 'halted' ? ' (halted)' : ''}`,
    ...shown.slice(0, 20).map((x) => `  ${x.db}.${x.table}: ${x.outcome === 'failed' ? `${String(x.code)} ` : ''}${x.message}`),
    ...(shown.length > 20 ? [`  ... and ${shown.length - 20} more (--json shows all)`] : []),
  ].join('\n');
}
