import { z } from 'zod';
import { agentSpecSchema } from '../resources/agent-spec.js';
import { deleteSchema, statusSchema } from '../resources/agent-status.js';
import { strandedChannelSchema } from '../resources/move.js';

/**
 * What etcd holds of a table (src/cluster/keys.ts): the operation last asked of it (`desired`)
 * and what its owner made of it (`status`). Every write of `desired` bumps the generation and
 * carries a new request id; the owner answers that request id once, in `status`, and keeps
 * the status it observes there afterwards.
 */

export const TABLE_OPS = ['create', 'start', 'stop', 'restart', 'pause', 'resume', 'delete'] as const;
export type TableOp = (typeof TABLE_OPS)[number];

export const desiredSchema = z.object({
  op: z.enum(TABLE_OPS),
  generation: z.number().int().min(1),
  requestId: z.string(),
  by: z.string(),
  at: z.string(),
  /** create: the body as the caller sent it (the owner checks it again), and whether to start. */
  body: z.unknown().optional(),
  start: z.boolean().optional(),
  /** delete: remove the channel even if it holds events. */
  force: z.boolean().optional(),
  /** create by a move: the host the table came from. */
  movedFrom: z.string().optional(),
  /** create by a move off a host that is away: intake opens on the new host only from then (that host may still take events until it fences). */
  openAt: z.string().optional(),
});
export type DesiredRecord = z.infer<typeof desiredSchema>;

export const opErrorSchema = z.object({
  statusCode: z.number(),
  code: z.number(),
  error: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type OpError = z.infer<typeof opErrorSchema>;

export const statusRecordSchema = z.object({
  node: z.string(),
  /** The generation and request the owner last answered. */
  generation: z.number().int(),
  requestId: z.string(),
  ok: z.boolean(),
  error: opErrorSchema.nullable(),
  /** delete: what became of the channel. */
  result: deleteSchema.nullable(),
  /** The agent's status as its owner last observed it; null once deleted (or never created). */
  status: statusSchema.nullable(),
  at: z.string(),
});
export type StatusRecord = z.infer<typeof statusRecordSchema>;

/** A table's desired config as its owner's disk has it: written whenever its revision moves. */
export const specRecordSchema = z.object({ revision: z.number().int(), spec: agentSpecSchema, at: z.string() });
export type SpecRecord = z.infer<typeof specRecordSchema>;

/** By host, the channels moves left on hosts that no longer own the table, until drained. */
export const strandedSchema = z.record(z.string(), strandedChannelSchema);
export type Stranded = z.infer<typeof strandedSchema>;
