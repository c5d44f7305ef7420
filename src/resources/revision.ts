import { z } from 'zod';
import { agentSpecSchema, fieldIssueSchema } from './agent-spec.js';
import { revisionPairSchema } from './agent-status.js';

/** An agent's config as a resource: its revisions, the view of the desired one, and a change's answer. */

/**
 * What became of a revision:
 * - applied: the agent ran it and accepted events (or it is the creation spec);
 * - stored: written while the agent was stopped; it runs at the next start;
 * - reverted: the agent did not accept events with it; the previous revision runs again;
 * - superseded is not kept: the newest applied or stored revision is the desired one.
 */
export const revisionOutcomeSchema = z.enum(['applied', 'stored', 'reverted']);
export type RevisionOutcome = z.infer<typeof revisionOutcomeSchema>;

export const revisionSchema = z.object({
  revision: z.number(),
  spec: agentSpecSchema,
  createdAt: z.string(),
  by: z.string().describe("the control token's subject ('service' for the creation of an older agent)"),
  reason: z.enum(['create', 'put', 'patch', 'rollback']),
  from: z.number().nullable().describe('a rollback: the revision it copied'),
  outcome: revisionOutcomeSchema,
  error: z.string().nullable().describe('why it was reverted (the start failure)'),
});
export type Revision = z.infer<typeof revisionSchema>;

export const configViewSchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  revision: revisionPairSchema,
  spec: agentSpecSchema,
  flumeConf: z.string().describe('the rendered flume.conf of the desired revision, as the agent reads it'),
});
export type ConfigView = z.infer<typeof configViewSchema>;

export const configChangeSchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  outcome: z
    .enum(['dry_run', 'unchanged', 'applied', 'stored'])
    .describe('dry_run: nothing written, this is what would change; unchanged: equal to the desired spec, nothing done (a dry run too); applied: the agent restarted with it and accepts events; stored: the agent is stopped and runs it at its next start'),
  revision: z.number().describe('the new revision (a dry run: the number it would get)'),
  previousRevision: z.number(),
  spec: agentSpecSchema,
  diff: z.string().describe('unified diff of the rendered flume.conf'),
  fields: z.array(fieldIssueSchema).describe('per-field problems: empty here (a bad field answers 400/422 with details.fields)'),
});
export type ConfigChange = z.infer<typeof configChangeSchema>;

/** How a change reads its body: the whole spec, or a JSON Merge Patch (RFC 7396) over it. */
export type ChangeMode = 'put' | 'patch';
