import { z } from 'zod';
import { statusSchema } from './agent-status.js';

/** Many hosts: moving a table to another host, and the channel a move leaves behind (docs/cluster.md, Moving a table). */

const nodeId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'to must be a host id (letters, digits, _ . -)');

export const moveBodySchema = z.strictObject({
  to: nodeId.optional().describe('the host to move to (alive and active); left out: the one new tables would go to'),
  abandonChannel: z
    .boolean()
    .default(false)
    .describe('the host the table is on is not alive: re-create it elsewhere with a fresh channel; the old channel drains into its sink when that host comes back'),
});
export type MoveBody = z.input<typeof moveBodySchema>;

/** A channel left on a host that no longer owns its table, until that host drained it into its sink. */
export const strandedChannelSchema = z.object({
  movedAt: z.string().describe('when the table left the host'),
  to: z.string().describe('the host it went to'),
  hostAlive: z.boolean().describe('true: the host was alive and drains at once; false: it drains when it comes back'),
  events: z.number().nullable().describe('events in the channel as the old host last reported (null: not known)'),
  observedAt: z.string().nullable().describe('when it last reported them'),
});
export type StrandedChannel = z.infer<typeof strandedChannelSchema>;

export const moveResultSchema = z.object({
  from: z.string(),
  to: z.string(),
  stranded: strandedChannelSchema.describe("the old host's channel: drained into its own sink, then its agent removed"),
  intakeOpensAt: z.string().nullable().describe('when the new host starts taking events (null: at once): a host that is away may take events until it fences (FENCE_AFTER_SECONDS), and no two hosts take them at once'),
  status: statusSchema.describe('the agent on its new host'),
});
export type MoveResult = z.infer<typeof moveResultSchema>;

export const drainBodySchema = z.strictObject({
  abandonChannel: z.boolean().default(false).describe('the host is not alive: move its tables anyway, each channel drained when it comes back'),
  concurrency: z.number().int().min(1).max(16).default(2).describe('tables moved at once'),
});

/** One table of a drain: where it went, or why it did not. */
export const drainedTableSchema = z.object({
  db: z.string(),
  table: z.string(),
  ok: z.boolean(),
  to: z.string().nullable(),
  error: z.object({ code: z.number(), error: z.string(), message: z.string() }).nullable(),
});
export const drainResultSchema = z.object({
  node: z.string(),
  state: z.literal('draining'),
  moved: z.array(drainedTableSchema),
});
export type DrainResult = z.infer<typeof drainResultSchema>;
