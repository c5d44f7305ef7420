import { heapSize } from '../config.js';
import { jvmOption } from './jvm-options.js';
import { z } from 'zod';

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
      acks: z.enum(['0', '1', 'all']).default('1'),
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
/**
 * The create body: `sink` (file_roll when left out), that sink's `options`, and `channel`.
 * The route validates with it and /docs shows it; resolveSpec parses with it too.
 */
export const createBodySchema = z.preprocess(
  (b) => (b !== null && typeof b === 'object' && !Array.isArray(b) && !('sink' in b) ? { ...b, sink: 'file_roll' } : b),
  z.discriminatedUnion(
    'sink',
    [
      z.strictObject({ sink: z.literal('file_roll'), options: sinkSchemas.file_roll.prefault({}), channel, idleMinutes, jvm: jvmSchema }),
      z.strictObject({ sink: z.literal('hdfs'), options: sinkSchemas.hdfs.prefault(noOptions as z.input<typeof sinkSchemas.hdfs>), channel, idleMinutes, jvm: jvmSchema }),
      z.strictObject({ sink: z.literal('kafka'), options: sinkSchemas.kafka.prefault(noOptions as z.input<typeof sinkSchemas.kafka>), channel, idleMinutes, jvm: jvmSchema }),
      z.strictObject({ sink: z.literal('logger'), options: sinkSchemas.logger.prefault({}), channel, idleMinutes, jvm: jvmSchema }),
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

/** What an agent was created with: stored in services/<program>/agent.json. */
export interface AgentSpec {
  sink: SinkType;
  options: Record<string, string | number>;
  channel: ChannelOptions;
  /** No events for this long raises an "idle" incident; unset: never. */
  idleMinutes?: number;
  jvm?: { heap?: string; options?: string[] };
}
