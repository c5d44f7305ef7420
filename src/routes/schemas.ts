import { z } from 'zod';
import type { DeleteResult } from '../agents/agent-service.js';
import type { RestoreReport } from '../agents/reconciler.js';
import type { AgentStatus } from '../fleet/fleet-model.js';
import type { Incident } from '../incidents/incident-service.js';
import type { TokenListing, TokenSetResult } from '../tokens/token-service.js';

/**
 * The response shapes the routes declare. Each route's definition (params, query, body and
 * these) validates, serializes and documents it: /openapi.json and /docs are generated from it.
 * The assertions at the end keep each shape equal to the type the code returns.
 */

/** Every error answer, whatever raised it (a route, validation, the router, auth). */
export const errorSchema = z
  .object({
    code: z.number().int().describe('stable error code, listed in docs/api.md'),
    error: z.string().describe('UPPER_SNAKE name of the code'),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .describe('error');

/** The error answers a route can give, by status. */
export const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, errorSchema]));

/** A success body: code 0, a message, and the route's fields. */
export const ok = <T extends z.ZodRawShape>(shape: T) => z.object({ code: z.literal(0), message: z.string(), ...shape });

export const countersSchema = z.object({
  eventsReceived: z.number(),
  eventsAccepted: z.number(),
  eventsDrained: z.number(),
  channelSize: z.number(),
  channelCapacity: z.number(),
  channelFillPercent: z.number(),
  sinkConnectionFailures: z.number(),
  sinkWriteFailures: z.number(),
  channelOpen: z.boolean().describe('false: Flume could not open the file channel and refuses every event'),
  lastEventAt: z.string().nullable(),
  lastEventAgeSeconds: z.number().nullable(),
});

export const statusSchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  sink: z.string(),
  state: z.enum(['STOPPED', 'STARTING', 'RUNNING', 'BACKOFF', 'STOPPING', 'EXITED', 'FATAL', 'UNKNOWN', 'NOT_LOADED']),
  desired: z.enum(['running', 'stopped']),
  pid: z.number().nullable(),
  uptimeSeconds: z.number().nullable(),
  startedAt: z.string().nullable(),
  accepting: z.boolean().describe("Flume's HTTP source answered when observed"),
  health: z.enum(['healthy', 'starting', 'degraded', 'down', 'stopped']),
  healthReason: z.string(),
  metrics: countersSchema.nullable(),
  revision: z.object({
    desired: z.number().describe('the config revision the operator wants (GET .../config)'),
    running: z.number().nullable().describe('the revision the running agent started with; null when not running'),
  }),
  rates: z.object({ inPerSecond: z.number(), outPerSecond: z.number() }).nullable().describe('events per second in and out over the last minute'),
  resources: z.object({ rssBytes: z.number(), cpuPercent: z.number().nullable() }).nullable().describe("the JVM's resident memory and CPU (% of one core)"),
  disk: z.object({ usableBytes: z.number(), minimumRequiredBytes: z.number() }).nullable().describe("usable space where the channel lives; Flume refuses events below minimumRequiredBytes"),
  paused: z.boolean().describe('intake paused: the gateway answers 503 AGENT_PAUSED, the agent drains its channel'),
  drained: z.boolean().nullable().describe('the channel is empty (null: not known, the agent is not running)'),
  description: z.string(),
  observedAt: z.string().describe('when the fleet model observed this (every FLEET_REFRESH_MS); ?fresh=true observes it now'),
  queue: z
    .object({ position: z.number(), waiting: z.number(), concurrency: z.number() })
    .nullable()
    .describe("waiting for the host's start queue (at most AGENT_START_CONCURRENCY JVM starts at a time): its place; null when not waiting"),
});

/** One agent in the listing: ages, rates, memory and disk, which move all the time, are left out so ETags hold (status and history have them). */
export const listedSchema = statusSchema
  .omit({ uptimeSeconds: true, description: true, observedAt: true, rates: true, resources: true, disk: true })
  .extend({ metrics: countersSchema.omit({ lastEventAgeSeconds: true }).nullable() });

export const deleteSchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  channel: z.enum(['removed', 'kept']),
  queuedEvents: z.number().nullable(),
  keptPath: z.string().nullable(),
});

export const restoreSchema = z.object({
  agents: z.number(),
  removedPrograms: z.array(z.string()),
  removedHalfCreated: z.array(z.string()),
  releasedPorts: z.array(z.number()),
  removedRoutes: z.array(z.string()),
  conflicts: z.array(z.string()),
  routesChanged: z.array(z.string()),
  skippedBusy: z.array(z.string()),
  tokensRestored: z.array(z.string()),
});

const scope = z.union([z.array(z.string()), z.literal('*')]);
export const tokenSetSchema = z.object({
  username: z.string(),
  token: z.string().optional().describe('only when generated: shown this once'),
  scope,
  expiresAt: z.string().nullable(),
  previousValidUntil: z.string().nullable(),
});

export const tokenListingSchema = z.object({
  username: z.string(),
  scope,
  createdAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  previousValidUntil: z.string().nullable(),
});

export const incidentSchema = z.object({
  id: z.string(),
  at: z.string(),
  db: z.string(),
  table: z.string(),
  program: z.string(),
  type: z.enum(['unexpected_exit', 'backoff', 'fatal', 'crash_loop', 'not_running', 'recovered', 'config_reverted', 'idle']),
  severity: z.enum(['critical', 'warning', 'info']),
  message: z.string(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  exitCode: z.number().nullable().describe("the JVM's exit code (null: killed by a signal, or not known)"),
  signal: z.string().nullable().describe('the signal that killed it, e.g. SIGKILL'),
  logTail: z.array(z.string()).describe("the agent's last log lines when it was raised; empty for callers whose role may not read logs (viewers) and in webhooks"),
  suggestedAction: z.string(),
  acknowledged: z.object({ by: z.string(), at: z.string() }).nullable(),
  webhooks: z.array(
    z.object({
      host: z.string().describe("the webhook URL's host: the whole URL is never shown"),
      outcome: z.enum(['pending', 'delivered', 'refused', 'failed']),
      status: z.number().nullable(),
      attempts: z.number(),
      at: z.string().nullable(),
    }),
  ),
});

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const same = <A, B>(x: Same<A, B>) => x;
same<z.infer<typeof statusSchema>, AgentStatus>(true);
same<z.infer<typeof deleteSchema>, DeleteResult>(true);
same<z.infer<typeof restoreSchema>, RestoreReport>(true);
same<z.infer<typeof tokenSetSchema>, TokenSetResult>(true);
same<z.infer<typeof tokenListingSchema>, TokenListing>(true);
same<z.infer<typeof incidentSchema>, Incident>(true);

/** What the docs say about who may call a route. */
export const access = (permission: 'none' | 'read' | 'operate' | 'admin') =>
  permission === 'none'
    ? { description: 'Open: no token.', security: [] }
    : { description: `Needs a control token (Authorization: Bearer <JWT>) whose role grants "${permission}".` };
