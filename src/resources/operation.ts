import { z } from 'zod';
import { AGENT_STATES, healthSchema } from './agent-status.js';
import { NAME_PATTERN } from './table.js';

/** A bulk operation over many agents, its selector and each table's result; one table's operation still under way. */

/** Many hosts: a table's operation its owner has not finished within the wait (202). */
export const pendingSchema = z.object({
  node: z.string().describe('the host carrying it out'),
  op: z.string(),
  generation: z.number().describe("the table's operation number: GET .../status shows its outcome once done"),
  since: z.string(),
});
export type Pending = z.infer<typeof pendingSchema>;

export const BULK_OPS = ['start', 'stop', 'restart', 'pause', 'resume', 'delete'] as const;
export type BulkOp = (typeof BULK_OPS)[number];
export type FleetOp = 'apply';
/** One table's long call made with `Prefer: respond-async`: its operation records the answer. */
export const TABLE_OPS = ['create', 'upsert', 'start', 'stop', 'restart', 'delete', 'move', 'config', 'rollback'] as const;
export type TableOp = (typeof TABLE_OPS)[number];
export const OPERATION_OPS = [...new Set([...BULK_OPS, ...TABLE_OPS, 'apply' as const])] as [BulkOp | TableOp | FleetOp, ...Array<BulkOp | TableOp | FleetOp>];

const name = NAME_PATTERN.source.slice(1, -1);

/** Which agents a bulk operation acts on: every given criterion must hold (at least one given). */
export const selectorBodySchema = z.strictObject({
  db: z.string().regex(NAME_PATTERN, 'db must be a valid db name').optional(),
  tables: z.array(z.string().regex(new RegExp(`^${name}\\.${name}$`), 'each table is "db.table"')).min(1).max(1000).optional(),
  health: z.array(healthSchema).min(1).optional(),
  state: z.array(z.enum(AGENT_STATES)).min(1).optional(),
  all: z.literal(true).optional().describe('every agent the token may see; must be said explicitly'),
  concurrency: z.number().int().min(1).max(64).default(8).describe('tables handled at once'),
});
export const selectorSchema = selectorBodySchema.omit({ concurrency: true });
export type Selector = z.infer<typeof selectorSchema>;

/** One table's result in a batch: applied, failed (with the error), or skipped (nothing to do). */
export const tableOutcomeSchema = z.object({
  outcome: z.enum(['applied', 'failed', 'skipped', 'cancelled']).describe('cancelled: its turn had not come when the operation was cancelled; nothing was done to it'),
  code: z.string().nullable().describe("a failure's error name (BUSY, AGENT_START_FAILED, ...)"),
  message: z.string(),
});
export type TableOutcome = z.infer<typeof tableOutcomeSchema>;

export const tableResultSchema = tableOutcomeSchema.extend({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  outcome: z.enum(['pending', 'applied', 'failed', 'skipped', 'cancelled']).describe('pending until its outcome is known'),
});
export type TableResult = z.infer<typeof tableResultSchema>;

export const operationSchema = z.object({
  id: z.string(),
  kind: z.enum(['bulk', 'table', 'fleet']).describe("bulk: POST /v1/api/bulk/<op>; table: one table's call made with Prefer: respond-async; fleet: PUT /v1/api/fleet"),
  op: z.enum(OPERATION_OPS),
  by: z.string(),
  selector: selectorSchema,
  concurrency: z.number(),
  state: z.enum(['running', 'done', 'cancelled', 'halted']).describe('cancelled: done after a cancel; halted: a fleet apply stopped at its first failure. The tables whose turn had not come are "cancelled"'),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  total: z.number(),
  counts: z.object({ applied: z.number(), failed: z.number(), skipped: z.number(), pending: z.number(), cancelled: z.number() }),
  results: z.array(tableResultSchema),
  answer: z
    .object({ status: z.number(), body: z.record(z.string(), z.unknown()) })
    .nullable()
    .describe('a table operation: the answer the call would have given without Prefer: respond-async (null until done)'),
  cancel: z.object({ by: z.string(), at: z.string() }).nullable().describe('who asked to cancel it, and when'),
  dbs: z.array(z.string()).nullable().describe('the dbs it can act on; null: every db. A token limited to some dbs sees only operations within them'),
});
export type Operation = z.infer<typeof operationSchema>;

export const operationListQuerySchema = z.strictObject({
  kind: z.enum(['bulk', 'table', 'fleet']).optional(),
  op: z.enum(OPERATION_OPS).optional(),
  state: z.enum(['running', 'done', 'cancelled', 'halted']).optional(),
  db: z.string().regex(NAME_PATTERN, 'db must be a valid db name').optional().describe('operations that reach this db'),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().regex(/^\d{1,16}-\d{1,10}$/, 'cursor is the nextCursor of the previous page').optional().describe("the previous page's nextCursor"),
});
export type OperationListQuery = z.infer<typeof operationListQuerySchema>;
