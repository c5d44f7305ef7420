import { z } from 'zod';
import { flagSchema } from '../flag.js';
import { mergePatch } from './merge-patch.js';
import { NAME_PATTERN } from './table.js';
import { SINK_TYPES, checkSpec, specError, type AgentSpec, type FieldIssue, type JvmLimits } from './agent-spec.js';

/**
 * Fleet as code: the desired set of tables in one document, with profiles (named spec fragments
 * tables refer to). A table's spec is its profiles merged in order (RFC 7396), then its own fields.
 */

const name = NAME_PATTERN.source.slice(1, -1);
export const TABLE_KEY = new RegExp(`^${name}\\.${name}$`);
const PROFILE_NAME = /^[a-z0-9][a-z0-9_-]{0,47}$/;

/** A part of a create body (the same fields; checked whole once merged). */
const fragment = {
  sink: z.enum(SINK_TYPES).optional(),
  options: z.record(z.string(), z.unknown()).optional(),
  channel: z.record(z.string(), z.unknown()).optional(),
  idleMinutes: z.number().optional(),
  failoverAfterSeconds: z.number().optional(),
  ack: z.enum(['channel', 'sink']).optional(),
  jvm: z.record(z.string(), z.unknown()).optional(),
};

export const fleetDocumentSchema = z
  .strictObject({
    profiles: z
      .record(z.string().regex(PROFILE_NAME, 'a profile name is lower case letters, digits, _ and -'), z.strictObject(fragment))
      .refine((p) => Object.keys(p).length <= 200, 'at most 200 profiles')
      .default({})
      .describe('named spec fragments: sink endpoints, channel sizes, JVM settings'),
    tables: z
      .record(z.string().regex(TABLE_KEY, 'each table is "db.table"'), z.strictObject({ ...fragment, profiles: z.array(z.string()).max(8).optional().describe('merged in order, before the table\'s own fields') }))
      .refine((t) => Object.keys(t).length <= 2000, 'at most 2000 tables')
      .describe('every table of the set, by "db.table": its spec (a create body), or the profiles it takes and what it changes'),
  })
  .describe('the desired set of tables: PUT /v1/api/fleet makes it so');
export type FleetDocument = z.infer<typeof fleetDocumentSchema>;

export const fleetQuerySchema = z.strictObject({
  dryRun: flagSchema.optional().describe('true: answer the plan (what would be created, changed with its diff, left alone, absent), change nothing'),
  db: z.string().regex(NAME_PATTERN, 'db must be a valid db name').optional().describe('the set is this db\'s tables: tables of other dbs in it are refused, and only this db\'s tables can be absent'),
  prune: flagSchema.optional().describe('true: tables absent from the set are drained (intake paused until the channel is empty) and deleted; never by default'),
  canary: z.coerce.number().int().min(0).max(100).default(1).describe('tables changed first, one at a time: the first that does not come up halts the apply (it is reverted), nothing else is touched'),
  concurrency: z.coerce.number().int().min(1).max(64).default(4).describe('tables changed at once after the canary'),
  drainSeconds: z.coerce.number().int().min(1).max(3600).default(300).describe('prune: how long a table may take to drain before its delete fails (it is resumed)'),
});
export type FleetQuery = z.infer<typeof fleetQuerySchema>;

export const FLEET_ACTIONS = ['create', 'change', 'unchanged', 'absent', 'delete'] as const;
export const fleetPlanEntrySchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  action: z.enum(FLEET_ACTIONS).describe('create: no agent yet; change: a new revision (diff); unchanged: nothing to do; absent: not in the set, kept (prune=true deletes it: delete)'),
  revision: z.number().nullable().describe('the desired revision now (null: none yet)'),
  diff: z.string().nullable().describe("a change: the unified diff of the table's flume.conf"),
});
export type FleetPlanEntry = z.infer<typeof fleetPlanEntrySchema>;

export const fleetPlanSchema = z.object({
  entries: z.array(fleetPlanEntrySchema).describe('creates and changes first, in the order they are applied (the canary first), then deletes, absent and unchanged tables'),
  counts: z.object({ create: z.number(), change: z.number(), unchanged: z.number(), absent: z.number(), delete: z.number() }),
});
export type FleetPlan = z.infer<typeof fleetPlanSchema>;

/** Each table's create body: its profiles merged in order, then its own fields. An unknown profile is 400. */
export function composeFleet(doc: FleetDocument): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const [key, entry] of Object.entries(doc.tables).sort(([a], [b]) => a.localeCompare(b))) {
    const { profiles = [], ...own } = entry;
    let body: unknown = {};
    for (const p of profiles) {
      const fragment = doc.profiles[p];
      if (!fragment) throw specError({ status: 400, fields: [{ field: `tables.${key}.profiles`, message: `no profile "${p}" in the document` }] });
      body = mergePatch(body, fragment);
    }
    out.set(key, mergePatch(body, own) as Record<string, unknown>);
  }
  return out;
}

/** Every table's spec checked as its create would be: all problems at once (each field named under its table), or the specs. */
export function checkFleet(bodies: Map<string, Record<string, unknown>>, limits: JvmLimits): Map<string, AgentSpec> {
  const specs = new Map<string, AgentSpec>();
  const fields: FieldIssue[] = [];
  let status: 400 | 422 = 422;
  for (const [key, body] of bodies) {
    const [db = '', table = ''] = key.split('.');
    const c = checkSpec(body, { db, table }, limits);
    if (c.ok) specs.set(key, c.spec);
    else {
      if (c.status === 400) status = 400;
      fields.push(...c.fields.slice(0, 10).map((f) => ({ field: `tables.${key}${f.field ? `.${f.field}` : ''}`, message: f.message })));
    }
  }
  if (fields.length) throw specError({ status, fields: fields.slice(0, 100) });
  return specs;
}
