import { z } from 'zod';
import { heapSize } from '../config-kinds.js';
import { AppError, configRejected, invalidRequest } from '../errors.js';
import { jvmOption, jvmSetProblems } from './jvm-options.js';
import type { TableRef } from './table.js';
import { tableSchemaSchema } from './event-schema.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.js';

/**
 * An agent's spec: what the operator asks for (sink, its options, the channel, the JVM), as the
 * create body and PUT/PATCH .../config take it, and as services/<program>/agent.json stores it.
 */

// A value that goes into a Java properties file as it is: no control characters (a newline
// would inject config lines), no backslash (an escape), no surrounding spaces, and no "$":
// Flume 1.11 resolves ${env:...}, ${sys:...} and ${...} in values, which would hand the agent's
// environment and system properties to whoever sets the option.
const propValue = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\s\\\x00-\x1f\x7f](?:[^\\\x00-\x1f\x7f]*[^\s\\\x00-\x1f\x7f])?$/, 'must be plain text: no control characters, backslashes or surrounding spaces')
  .refine((v) => !v.includes('$'), 'may not contain "$" (Flume would resolve ${...} lookups in it)');

const batchSize = z.number().int().min(1).max(100_000).default(100);

/** The file channel every agent gets; only sizes are tunable, directories are per table. */
export const channelSchema = z
  .object({
    capacity: z.number().int().min(1).max(100_000_000).default(1_000_000),
    transactionCapacity: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Flume's default is 500 MB; below this much free disk the channel refuses events. */
    minimumRequiredSpace: z.number().int().min(1_048_576).default(524_288_000),
  })
  .strict();
export type ChannelOptions = z.infer<typeof channelSchema>;

/** Each sink's options, strict: an unknown option is an error, never silently ignored. */
export const sinkSchemas = {
  file_roll: z
    .object({
      rollInterval: z.number().int().min(0).max(86_400).default(30),
      batchSize,
    })
    .strict(),
  hdfs: z
    .object({
      // Required: with a bare path Hadoop's client would fall back to file:/// (the local disk).
      nameNode: propValue.regex(/^hdfs:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/, 'must look like hdfs://host:port'),
      path: propValue
        .regex(/^\/\S*$/, 'must be an absolute path (the NameNode is its own option)')
        .default('/ingestion/{{db}}/{{table}}/%Y-%m-%d/%H'),
      // 1: files roll by the settings below even when fewer DataNodes live than the replication
      // factor (Flume's default then rolls a new file per batch).
      minBlockReplicas: z.number().int().min(1).max(10).default(1),
      filePrefix: propValue.regex(/^[\w.-]+$/).default('ing'),
      fileSuffix: propValue.regex(/^[\w.-]+$/).default('.json'),
      rollInterval: z.number().int().min(0).default(60),
      rollCount: z.number().int().min(0).default(8192),
      rollSize: z.number().int().min(0).default(1_024_000),
      batchSize,
    })
    .strict(),
  kafka: z
    .object({
      bootstrapServers: propValue.regex(/^[A-Za-z0-9.\-[\]]+:\d+(,[A-Za-z0-9.\-[\]]+:\d+)*$/, 'must be host:port[,host:port...]'),
      // {{db}} and {{table}} are replaced with the table's names.
      topic: propValue.regex(/^(?:[A-Za-z0-9._-]|\{\{(?:db|table)\}\})+$/, 'letters, digits, . _ - and {{db}}/{{table}}').default('{{db}}.{{table}}'),
      // all: the broker's replicas have each record, and the producer is idempotent (a retried
      // batch is written once); 1 or 0 trade that for latency.
      acks: z.enum(['0', '1', 'all']).default('all'),
      batchSize,
    })
    .strict(),
  logger: z
    .object({
      maxBytesToLog: z.number().int().min(1).max(65_536).default(256),
    })
    .strict(),
} as const;

export type SinkType = keyof typeof sinkSchemas;
export const SINK_TYPES = Object.keys(sinkSchemas) as [SinkType, ...SinkType[]];

// Options left out are parsed as {}: a sink with a required option then names it.
const noOptions = {};
const channel = channelSchema.prefault({}).describe('the file channel: sizes only, its directories are per table');
/** A table's own JVM settings: its heap, and options that replace AGENT_JVM_OPTIONS. */
export const jvmSchema = z
  .strictObject({
    heap: heapSize().optional(),
    options: z.array(jvmOption).max(40).optional(),
  })
  .optional()
  .describe("this table's JVM: heap (-Xmx, default AGENT_HEAP, at most AGENT_MAX_HEAP) and options from the accepted list (they replace AGENT_JVM_OPTIONS)");
const idleMinutes = z
  .number()
  .min(0.1)
  .max(10_080)
  .optional()
  .describe('raise an "idle" incident (and turn degraded) when no event arrived for this many minutes while the agent should receive');
const failoverAfterSeconds = z
  .number()
  .int()
  .min(1)
  .max(86_400)
  .optional()
  .describe('many hosts: once its host has been lost this long (never less than the lease TTL), the coordinator moves the table to another host by itself, with a fresh channel; the old one drains when that host returns. Unset: only an operator moves it');
const ack = z
  .enum(['channel', 'sink'])
  .optional()
  .describe("what the gateway answers a sender on when it does not say (Prefer: ack=...): channel (the default: 200 once the events are committed to the agent's file channel) or sink (200 once the sink has them, else 202 after 10 s; docs/gateway.md)");
const schema = tableSchemaSchema.optional();
/**
 * The create body: `sink` (file_roll when left out), that sink's `options`, and `channel`.
 * The route validates with it and /docs shows it; resolveSpec parses with it too.
 */
export const createBodySchema = z.preprocess(
  (b) => (b !== null && typeof b === 'object' && !Array.isArray(b) && !('sink' in b) ? { ...b, sink: 'file_roll' } : b),
  z.discriminatedUnion(
    'sink',
    [
      z.strictObject({ sink: z.literal('file_roll'), options: sinkSchemas.file_roll.prefault({}), channel, idleMinutes, failoverAfterSeconds, ack, jvm: jvmSchema, schema }),
      z.strictObject({ sink: z.literal('hdfs'), options: sinkSchemas.hdfs.prefault(noOptions as z.input<typeof sinkSchemas.hdfs>), channel, idleMinutes, failoverAfterSeconds, ack, jvm: jvmSchema, schema }),
      z.strictObject({ sink: z.literal('kafka'), options: sinkSchemas.kafka.prefault(noOptions as z.input<typeof sinkSchemas.kafka>), channel, idleMinutes, failoverAfterSeconds, ack, jvm: jvmSchema, schema }),
      z.strictObject({ sink: z.literal('logger'), options: sinkSchemas.logger.prefault({}), channel, idleMinutes, failoverAfterSeconds, ack, jvm: jvmSchema, schema }),
    ],
    {
      error: (iss) =>
        iss.code === 'invalid_union'
          ? `sink must be one of ${SINK_TYPES.join(', ')}`
          : 'the body must be a JSON object: {"sink"?, "options"?, "channel"?}',
    },
  ),
);
export type CreateBody = z.input<typeof createBodySchema>;

/** What an agent was created with (complete and checked): stored in services/<program>/agent.json. */
export const agentSpecSchema = z.object({
  sink: z.enum(SINK_TYPES),
  options: z.record(z.string(), z.union([z.string(), z.number()])),
  channel: z.object({ capacity: z.number(), transactionCapacity: z.number(), minimumRequiredSpace: z.number() }),
  idleMinutes: z.number().optional().describe('no events for this long raises an "idle" incident; unset: never'),
  failoverAfterSeconds: z.number().optional().describe('many hosts: moved by the coordinator once its host has been lost this long; unset: never'),
  ack: z.enum(['channel', 'sink']).optional().describe('what the gateway answers a sender on when it does not say: channel when unset'),
  jvm: z.object({ heap: z.string().optional(), options: z.array(z.string()).optional() }).optional(),
  schema: tableSchemaSchema.optional().describe("the table's event contract, checked at the gateway; unset: any event"),
});
export type AgentSpec = z.infer<typeof agentSpecSchema>;

/** One field's problem, as dry-runs and 400/422 answers list them (details.fields). */
export const fieldIssueSchema = z.object({ field: z.string(), message: z.string() });
export type FieldIssue = z.infer<typeof fieldIssueSchema>;

function zodIssues(err: z.ZodError): FieldIssue[] {
  return err.issues.map((i) => {
    const field = i.path.join('.') || 'body';
    return { field, message: i.code === 'unrecognized_keys' ? `unknown ${i.path.length ? 'option' : 'field'}(s) ${i.keys.join(', ')}` : i.message };
  });
}

const joined = (issues: FieldIssue[]) => issues.map((i) => (i.field === 'body' ? i.message : `${i.field}: ${i.message}`)).join('; ');

export type SpecCheck = { ok: true; spec: AgentSpec } | { ok: false; status: 400 | 422; fields: FieldIssue[] };

/** What a table's jvm is checked against: the heap it gets when it names none, and the ceiling. */
export interface JvmLimits {
  defaultHeap: string;
  maxHeap: string;
}

/**
 * Turns a create body into a complete, checked AgentSpec, or says what is wrong with each
 * field: 400 for an unknown sink, option or bad value; 422 for a combination Flume would accept
 * and then silently mangle (a sink dropped at start-up, a channel that cannot hold a single
 * transaction).
 */
export function checkSpec(body: unknown, table: TableRef, limits: JvmLimits): SpecCheck {
  // Whatever it came from (a fleet file, an archive): bounded before the recursive checks walk it.
  if (nestsDeeperThan(body)) return { ok: false, status: 400, fields: [{ field: 'body', message: `nested more than ${MAX_JSON_DEPTH} levels deep` }] };
  const parsed = createBodySchema.safeParse(body === undefined ? {} : body);
  if (!parsed.success) return { ok: false, status: 400, fields: zodIssues(parsed.error) };
  const { sink, channel, idleMinutes, failoverAfterSeconds, ack: answerOn, jvm, schema: contract } = parsed.data;
  const jvmProblems = jvmSetProblems(jvm, limits);
  if (jvmProblems.length) return { ok: false, status: 400, fields: jvmProblems };
  const options = Object.fromEntries(
    Object.entries(parsed.data.options).map(([k, v]) => [
      k,
      typeof v === 'string' ? v.replaceAll('{{db}}', table.db).replaceAll('{{table}}', table.table) : v,
    ]),
  ) as Record<string, string | number>;
  const fields: FieldIssue[] = [];
  const batch = Number(options.batchSize ?? 1);
  if (batch > channel.transactionCapacity) {
    fields.push({
      field: 'options.batchSize',
      message: `${batch} exceeds channel.transactionCapacity (${channel.transactionCapacity}): Flume would drop the sink at start-up and keep running`,
    });
  }
  if (channel.transactionCapacity > channel.capacity) {
    fields.push({ field: 'channel.transactionCapacity', message: `${channel.transactionCapacity} exceeds channel.capacity (${channel.capacity})` });
  }
  if (contract?.policy === 'quarantine' && sink !== 'kafka') {
    fields.push({ field: 'schema.policy', message: `quarantine keeps events aside in the table's quarantine, which only a kafka sink has; use reject or flag for a ${sink} sink` });
  }
  if (fields.length) return { ok: false, status: 422, fields };
  return { ok: true, spec: { sink, options, channel, ...(idleMinutes === undefined ? {} : { idleMinutes }), ...(failoverAfterSeconds === undefined ? {} : { failoverAfterSeconds }), ...(answerOn === 'sink' ? { ack: answerOn } : {}), ...(jvm === undefined ? {} : { jvm }), ...(contract === undefined ? {} : { schema: contract }) } };
}

/** A failed check as an error: 400 INVALID_REQUEST or 422 CONFIG_REJECTED, each field in details.fields. */
export function specError(c: { status: 400 | 422; fields: FieldIssue[] }): AppError {
  const err = c.status === 400 ? invalidRequest(joined(c.fields)) : configRejected(joined(c.fields));
  return new AppError(err.code, err.error, err.statusCode, err.message, { fields: c.fields });
}

/** checkSpec that throws specError. */
export function resolveSpec(body: unknown, table: TableRef, limits: JvmLimits): AgentSpec {
  const c = checkSpec(body, table, limits);
  if (c.ok) return c.spec;
  throw specError(c);
}

/** One field where two specs differ, as a 409 AGENT_EXISTS lists it (dotted path, e.g. "channel.capacity"). */
export interface SpecDifference {
  field: string;
  existing: unknown;
  requested: unknown;
}

/** Every leaf where `requested` differs from `existing` (key order never counts); empty: the same spec. */
export function specDifferences(existing: unknown, requested: unknown, at = ''): SpecDifference[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(existing) && isObj(requested)) {
    const keys = [...new Set([...Object.keys(existing), ...Object.keys(requested)])].sort();
    return keys.flatMap((k) => specDifferences(existing[k], requested[k], at ? `${at}.${k}` : k));
  }
  if (JSON.stringify(existing) === JSON.stringify(requested)) return [];
  return [{ field: at || '(spec)', existing: existing ?? null, requested: requested ?? null }];
}
