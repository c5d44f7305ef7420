import type { TableOutcome } from '../resources/operation.js';
import type { TableRef } from '../resources/table.js';

/** What a dry run of a table's change says: null when the table has no agent. */
export interface Preview {
  outcome: 'dry_run' | 'unchanged';
  revision: number;
  previousRevision: number;
  diff: string;
}

/**
 * One table's calls, made by a many-table operation (the fleet apply) exactly as the caller
 * would make them one by one: the same token, so the same authorization, audit trail, locks,
 * reverts and, with many hosts, the same forwarding to the host that runs the table.
 */
export interface TableCalls {
  /** The desired spec (a create body that makes the table as it is). */
  spec(ref: TableRef): Promise<Record<string, unknown>>;
  preview(ref: TableRef, body: unknown): Promise<Preview | null>;
  upsert(ref: TableRef, body: unknown): Promise<TableOutcome>;
  /** Pauses intake, waits until the channel is empty (or the agent is not running), deletes; on a failure, intake is resumed. */
  drainAndDelete(ref: TableRef, drainMs: number): Promise<TableOutcome>;
}
