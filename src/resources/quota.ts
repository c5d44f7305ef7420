import { z } from 'zod';
import { NAME_PATTERN } from './table.js';

/**
 * A db's quota: how much its senders may send through one host's gateway, per second (a sliding
 * second) and per UTC day. Any of the four; what is left out is not limited. Enforced by the
 * gateway of the host that runs each table (flume_gateway/tenants.lua): with many hosts a db may
 * take each host's quota on the tables that host runs (docs/gateway.md#fair-share-between-dbs).
 */
const rate = (what: string) => z.number().int().min(1).max(1_000_000_000_000).optional().describe(what);
export const quotaSchema = z
  .strictObject({
    eventsPerSecond: rate('events accepted per second (a sliding second), all of the db\'s tables together'),
    bytesPerSecond: rate('request body bytes accepted per second (a sliding second)'),
    eventsPerDay: rate('events accepted per UTC day'),
    bytesPerDay: rate('request body bytes accepted per UTC day'),
  })
  .refine((q) => Object.values(q).some((v) => v !== undefined), { message: 'give at least one of eventsPerSecond, bytesPerSecond, eventsPerDay, bytesPerDay' })
  .describe("a db's quota at each host's gateway");
export type Quota = z.infer<typeof quotaSchema>;

/** var/quotas.json: db -> quota. */
export const quotaFileSchema = z.record(z.string().regex(NAME_PATTERN), quotaSchema);

/** What the gateway reads: `eps=<n> bps=<n> epd=<n> bpd=<n>`, only those set (flume_gateway/tenants.lua parses it). */
export function quotaValue(q: Quota): string {
  const parts: Array<[string, number | undefined]> = [
    ['eps', q.eventsPerSecond],
    ['bps', q.bytesPerSecond],
    ['epd', q.eventsPerDay],
    ['bpd', q.bytesPerDay],
  ];
  return parts.flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])).join(' ');
}

/** A db's use of the gateway, as the gateway counts it (every host's gateway adds to it). */
export const usageSchema = z.object({
  eventsPerSecond: z.number().describe('events accepted per second over the last full minute'),
  bytesPerSecond: z.number().describe('request body bytes accepted per second over the last full minute'),
  refused: z.record(z.string(), z.number()).describe('requests refused in the last full minute, by reason: quota (over the quota), share (over its fair share while the gateway was saturated)'),
  minutes: z
    .array(z.object({ minute: z.string().describe('ISO time of the minute\'s start'), events: z.number(), bytes: z.number(), refused: z.number() }))
    .describe('the last minutes, oldest first (the current one, still counting, last)'),
});
export type Usage = z.infer<typeof usageSchema>;

export const dbQuotaSchema = z.object({
  db: z.string(),
  quota: quotaSchema.nullable().describe('null: none (only the fair share limits the db)'),
  usage: usageSchema,
});
export type DbQuota = z.infer<typeof dbQuotaSchema>;
