import { z } from 'zod';

/**
 * An agent's status: what the fleet model observed of it (spec = desired, status = observed).
 * The schema is the definition; the types are inferred from it, and the routes answer with it.
 */

/** How an agent is doing, from the operator's side (see docs/operations.md, Health). */
export const HEALTHS = ['healthy', 'starting', 'degraded', 'down', 'stopped'] as const;
export const healthSchema = z.enum(HEALTHS);
export type Health = z.infer<typeof healthSchema>;

/** supervisord's process states (supervisor/states.py), plus NOT_LOADED: the program file exists but supervisord lacks it. */
export const AGENT_STATES = ['STOPPED', 'STARTING', 'RUNNING', 'BACKOFF', 'STOPPING', 'EXITED', 'FATAL', 'UNKNOWN', 'NOT_LOADED'] as const;
export const agentStateSchema = z.enum(AGENT_STATES);
export type AgentState = z.infer<typeof agentStateSchema>;

/** What the operator asked for last: the program's autostart. */
export const desiredSchema = z.enum(['running', 'stopped']);
export type Desired = z.infer<typeof desiredSchema>;

/** Flume's counters for one agent (source r1, channel c1, sink k1 of our template). */
export const flumeCountersSchema = z.object({
  eventsReceived: z.number(),
  eventsAccepted: z.number(),
  eventsDrained: z.number(),
  channelSize: z.number(),
  channelCapacity: z.number(),
  channelFillPercent: z.number(),
  sinkConnectionFailures: z.number(),
  sinkWriteFailures: z.number().describe('batches the sink failed to write (EventWriteFail): the Kafka broker or HDFS is away'),
  channelOpen: z.boolean().describe('false: Flume could not open the file channel and refuses every event'),
});
export type FlumeCounters = z.infer<typeof flumeCountersSchema>;

export const countersSchema = flumeCountersSchema.extend({
  lastEventAt: z.string().nullable(),
  lastEventAgeSeconds: z.number().nullable(),
  oldestEventAgeSeconds: z
    .number()
    .nullable()
    .default(null)
    .describe('seconds the oldest event still in the channel has waited for the sink: 0 when none waits, null when not known (at least this long: up to a refresh more)'),
  channelFullInSeconds: z.number().nullable().default(null).describe("at the last minute's rates in and out, seconds until the channel is full; null when it is not filling"),
});
export type AgentMetrics = z.infer<typeof countersSchema>;

export const revisionPairSchema = z.object({
  desired: z.number().describe('the config revision the operator wants (GET .../config)'),
  running: z.number().nullable().describe('the revision the running agent started with; null when not running'),
});
export type RevisionPair = z.infer<typeof revisionPairSchema>;

/** Where one table stands in the host's start queue: its place among those waiting (1 = next). */
export const queuePlaceSchema = z.object({
  position: z.number(),
  waiting: z.number(),
  concurrency: z.number().describe('starts the host runs at once (AGENT_START_CONCURRENCY)'),
});
export type QueuePlace = z.infer<typeof queuePlaceSchema>;

export const standInPhaseSchema = z.enum(['starting', 'serving', 'draining']);
export type StandInPhase = z.infer<typeof standInPhaseSchema>;

/** What a table's status shows of its stand-in. */
export const standInStatusSchema = z
  .object({
    phase: standInPhaseSchema.describe('starting beside the agent; serving (the route points to it); draining (takes no events, empties its channel into the sink, then goes)'),
    revision: z.number().describe('the config revision it runs'),
    since: z.string().describe('when the phase began'),
  })
  .describe('a second JVM of the table while a restart or config change runs, so that senders are never refused');
export type StandInStatus = z.infer<typeof standInStatusSchema>;

export const statusSchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  node: z.string().describe('the host that runs it (NODE_ID; with many hosts, its owner)'),
  sink: z.string(),
  state: agentStateSchema,
  desired: desiredSchema,
  pid: z.number().nullable(),
  uptimeSeconds: z.number().nullable(),
  startedAt: z.string().nullable().describe('when the running process started (stable across polls, unlike uptimeSeconds)'),
  accepting: z.boolean().describe("Flume's HTTP source answered when observed"),
  health: healthSchema,
  healthReason: z.string(),
  metrics: countersSchema.nullable().describe("Flume's counters while it runs; null when stopped or its metrics do not answer"),
  revision: revisionPairSchema,
  rates: z.object({ inPerSecond: z.number(), outPerSecond: z.number() }).nullable().describe('events per second in and out over the last minute'),
  resources: z.object({ rssBytes: z.number(), cpuPercent: z.number().nullable() }).nullable().describe("the JVM's resident memory and CPU (% of one core)"),
  disk: z.object({ usableBytes: z.number(), minimumRequiredBytes: z.number() }).nullable().describe('usable space where the channel lives; Flume refuses events below minimumRequiredBytes'),
  paused: z.boolean().describe('intake paused: the gateway answers 503 AGENT_PAUSED, the agent drains its channel'),
  drained: z.boolean().nullable().describe('the channel is empty (null: not known, the agent is not running)'),
  description: z.string(),
  observedAt: z.string().describe('when the fleet model observed this (every FLEET_REFRESH_MS); ?fresh=true observes it now'),
  queue: queuePlaceSchema
    .nullable()
    .describe("waiting for the host's start queue (at most AGENT_START_CONCURRENCY JVM starts at a time): its place; null when not waiting"),
  standIn: standInStatusSchema.nullable().default(null).describe('null unless a restart or config change runs, or its stand-in still drains'),
  quarantined: z.number().default(0).describe('events the sink can never deliver, kept aside (GET .../quarantine); the other events flow on'),
});
export type AgentStatus = z.infer<typeof statusSchema>;

/**
 * The fields that move all the time (ages, rates, memory, CPU, free disk, the queue's place):
 * left out of the fleet's version (so an unchanged fleet keeps its ETags) and of the listing.
 */
export const VOLATILE_FIELDS = ['uptimeSeconds', 'description', 'observedAt', 'rates', 'resources', 'disk', 'queue'] as const;
const omitted = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((k) => [k, true])) as { [P in K]: true };

/** The counters' ages, which move all the time: left out of the listing too. */
const METRIC_AGES = ['lastEventAgeSeconds', 'oldestEventAgeSeconds', 'channelFullInSeconds'] as const;
/** The listing shows the queue's place (a dashboard sorts by it), not the rest of the volatile fields. */
const LISTING_LEAVES_OUT = VOLATILE_FIELDS.filter((f): f is Exclude<(typeof VOLATILE_FIELDS)[number], 'queue'> => f !== 'queue');

const without = <T extends object, K extends keyof T>(o: T, keys: readonly K[]): Omit<T, K> => {
  const copy = { ...o };
  for (const k of keys) delete copy[k];
  return copy;
};

/** One agent in the listing: the volatile fields and the ages left out (status and history have them). */
export const listedSchema = statusSchema
  .omit(omitted(LISTING_LEAVES_OUT))
  .extend({ metrics: countersSchema.omit(omitted(METRIC_AGES)).nullable() });
export type ListedAgent = z.infer<typeof listedSchema>;

/** A status as the listing shows it. */
export function listed(s: AgentStatus): ListedAgent {
  const a = without(s, LISTING_LEAVES_OUT);
  return { ...a, metrics: a.metrics && without(a.metrics, METRIC_AGES) };
}

/** What is public and stable of a status: a change of it bumps the fleet's version. */
export function stableDigest(s: AgentStatus): string {
  return JSON.stringify(without(s, VOLATILE_FIELDS));
}

/** A process state change of an agent, as streamed to dashboards. */
export const stateChangeSchema = z.object({ db: z.string(), table: z.string(), program: z.string(), state: z.string(), from: z.string(), at: z.string() });
export type StateChange = z.infer<typeof stateChangeSchema>;

/** What a delete answers: whether the channel went with the agent. */
export const deleteSchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  channel: z.enum(['removed', 'kept']),
  queuedEvents: z.number().nullable(),
  keptPath: z.string().nullable(),
});
export type DeleteResult = z.infer<typeof deleteSchema>;
