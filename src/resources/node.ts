import { z } from 'zod';
import { severitySchema } from './incident.js';

/** A host of the cluster: its persistent membership state and what its presence says (docs/cluster.md). */

/**
 * active: takes new tables; draining: keeps its tables, takes no new ones; decommissioned: has
 * left for good. Kept in etcd without a lease: a crash does not change it.
 */
export const NODE_STATES = ['active', 'draining', 'decommissioned'] as const;
export const nodeStateSchema = z.enum(NODE_STATES);
export type NodeState = z.infer<typeof nodeStateSchema>;

/** What a host measured of itself: how much more it can hold. */
export const capacitySchema = z.object({
  agents: z.number().describe('agents on this host'),
  cpuCores: z.number(),
  loadAverage: z.number().describe('1-minute load average'),
  memTotalBytes: z.number(),
  memAvailableBytes: z.number(),
  diskFreeBytes: z.number().nullable().describe('free where the channels live'),
  freePorts: z.number().describe('agent ports left in PORT_RANGE (two per agent)'),
});
export type Capacity = z.infer<typeof capacitySchema>;

/** A host's presence, bound to its lease: gone within the lease TTL once the host stops renewing. */
export const presenceSchema = z.object({
  id: z.string(),
  address: z.string(),
  apiUrl: z.string(),
  gatewayUrl: z.string(),
  startedAt: z.string(),
  renewedAt: z.string(),
  capacity: capacitySchema,
  /** A digest of the keys every host must share (JWT_SECRET, TOKEN_HASH_KEY): never the keys. */
  keysDigest: z.string(),
  /** How long it keeps intake once out of touch with etcd (FENCE_AFTER_SECONDS; absent: 2/3 of its TTL). */
  fenceAfterSeconds: z.number().optional(),
});
export type Presence = z.infer<typeof presenceSchema>;

export const nodeSchema = z.object({
  id: z.string(),
  state: nodeStateSchema,
  /** Its presence is in etcd (its lease is alive). */
  alive: z.boolean().describe('its lease-bound presence is in etcd'),
  self: z.boolean().describe('the host that answered'),
  address: z.string().nullable(),
  apiUrl: z.string().nullable(),
  gatewayUrl: z.string().nullable(),
  startedAt: z.string().nullable(),
  lastSeenSecondsAgo: z.number().nullable().describe("seconds since its presence last changed, by the answering host's clock (the own host: since its last lease renewal)"),
  capacity: capacitySchema.nullable(),
  sameKeys: z
    .boolean()
    .nullable()
    .describe("it signs control tokens and hashes ingestion tokens with the same keys as the answering host (a host that does not cannot check the others' tokens); null: not known"),
  leftAt: z.string().nullable().describe('when it last stopped cleanly (its API shut down and gave its lease back): its absence is expected; null while it runs, or when it went without a word (a crash, a cut)'),
  coordinator: z.boolean().describe('it does the cluster duties now (one at a time, elected through etcd)'),
});
export type NodeView = z.infer<typeof nodeSchema>;

/** Something that happened to a host (many hosts): raised once by the coordinator, kept in etcd. */
export const NODE_INCIDENT_TYPES = ['node_lost', 'node_down', 'node_back'] as const;
export const nodeIncidentSchema = z.object({
  id: z.string(),
  at: z.string(),
  node: z.string(),
  type: z.enum(NODE_INCIDENT_TYPES).describe('node_lost: an active host went without a word (its lease lapsed); node_down: one of its tables, per table; node_back: it is alive again'),
  severity: severitySchema,
  message: z.string(),
  db: z.string().nullable(),
  table: z.string().nullable(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  suggestedAction: z.string(),
  raisedBy: z.string().describe('the coordinator that raised it'),
  acknowledged: z.object({ by: z.string(), at: z.string() }).nullable(),
});
export type NodeIncident = z.infer<typeof nodeIncidentSchema>;
