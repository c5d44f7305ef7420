import { z } from 'zod';
import { zodToJsonSchema } from 'zod-to-json-schema';
import type { DeleteResult } from '../agents/agent-service.js';
import type { ReconcileReport } from '../agents/reconciler.js';
import type { AgentStatus } from '../fleet/fleet-model.js';
import { tableParamsSchema } from '../agents/names.js';
import { createBodySchema, sinkSchemas } from '../agents/sinks.js';
import { deleteQuerySchema, listQuerySchema, statusQuerySchema } from '../routes/agents.js';
import { usernameParamSchema } from '../routes/tokens.js';
import { tokenRequestSchema, type TokenListing, type TokenSetResult } from '../tokens/token-service.js';

// Response shapes. The assertions under each keep them equal to the types the code returns.
const errorSchema = z.object({
  code: z.number().int().describe('stable error code, see the README'),
  error: z.string().describe('UPPER_SNAKE name'),
  message: z.string(),
  details: z.record(z.unknown()).optional(),
});
const ok = <T extends z.ZodRawShape>(shape: T) => z.object({ code: z.literal(0), message: z.string(), ...shape });

const countersSchema = z.object({
  eventsReceived: z.number(),
  eventsAccepted: z.number(),
  eventsDrained: z.number(),
  channelSize: z.number(),
  channelCapacity: z.number(),
  channelFillPercent: z.number(),
  sinkConnectionFailures: z.number(),
  sinkWriteFailures: z.number(),
  lastEventAt: z.string().nullable(),
  lastEventAgeSeconds: z.number().nullable(),
});
const statusSchema = z.object({
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
  description: z.string(),
  observedAt: z.string().describe('when the fleet model observed this (every FLEET_REFRESH_MS); ?fresh=true observes it now'),
});
const deleteSchema = z.object({
  db: z.string(),
  table: z.string(),
  program: z.string(),
  channel: z.enum(['removed', 'kept']),
  queuedEvents: z.number().nullable(),
  keptPath: z.string().nullable(),
});
const reconcileSchema = z.object({
  agents: z.number(),
  removedPrograms: z.array(z.string()),
  removedHalfCreated: z.array(z.string()),
  releasedPorts: z.array(z.number()),
  removedRoutes: z.array(z.string()),
  conflicts: z.array(z.string()),
  routesChanged: z.array(z.string()),
  skippedBusy: z.array(z.string()),
});
const tokenSetSchema = z.object({
  username: z.string(),
  token: z.string().optional().describe('only when generated: shown this once'),
  scope: z.union([z.array(z.string()), z.literal('*')]),
  expiresAt: z.string().nullable(),
  previousValidUntil: z.string().nullable(),
});
const tokenListingSchema = z.object({
  username: z.string(),
  scope: z.union([z.array(z.string()), z.literal('*')]),
  createdAt: z.string().nullable(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  previousValidUntil: z.string().nullable(),
});
const incidentSchema = z.object({
  id: z.string(),
  at: z.string(),
  db: z.string(),
  table: z.string(),
  program: z.string(),
  type: z.enum(['unexpected_exit', 'backoff', 'fatal', 'crash_loop', 'not_running', 'recovered']),
  severity: z.enum(['critical', 'warning', 'info']),
  message: z.string(),
  details: z.record(z.unknown()),
});

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const same = <A, B>(x: Same<A, B>) => x;
same<z.infer<typeof statusSchema>, AgentStatus>(true);
same<z.infer<typeof deleteSchema>, DeleteResult>(true);
same<z.infer<typeof reconcileSchema>, ReconcileReport>(true);
same<z.infer<typeof tokenSetSchema>, TokenSetResult>(true);
same<z.infer<typeof tokenListingSchema>, TokenListing>(true);

interface Operation {
  method: 'get' | 'post' | 'delete';
  path: string;
  summary: string;
  permission: 'none' | 'read' | 'operate' | 'admin';
  params?: z.ZodObject<z.ZodRawShape>;
  query?: z.ZodObject<z.ZodRawShape>;
  body?: z.ZodTypeAny;
  ok: [number, z.ZodTypeAny | null, string?];
  errors: number[];
}

const table = { params: tableParamsSchema };
// The create body as validated, with each sink's own option schema spelled out.
const createBodyDoc = createBodySchema.extend({
  options: z
    .union([sinkSchemas.file_roll, sinkSchemas.kafka, sinkSchemas.hdfs, sinkSchemas.logger])
    .optional()
    .describe('options of the chosen sink: file_roll, kafka, hdfs or logger, in that order above'),
});
const OPERATIONS: Operation[] = [
  { method: 'post', path: '/v1/api/{db}/{table}/create', summary: 'Create the table\'s agent and start it; returns once its source accepts events', permission: 'operate', ...table, body: createBodyDoc, ok: [201, ok(statusSchema.shape)], errors: [400, 401, 403, 409, 422, 502, 503] },
  { method: 'post', path: '/v1/api/{db}/{table}/start', summary: 'Start the agent on its port (idempotent)', permission: 'operate', ...table, ok: [200, ok(statusSchema.shape)], errors: [400, 401, 403, 404, 409, 502, 503] },
  { method: 'post', path: '/v1/api/{db}/{table}/stop', summary: 'Withdraw the route and stop the agent; port and channel are kept', permission: 'operate', ...table, ok: [200, ok(statusSchema.shape)], errors: [400, 401, 403, 404, 409, 503] },
  { method: 'post', path: '/v1/api/{db}/{table}/restart', summary: 'Stop and start, same port', permission: 'operate', ...table, ok: [200, ok(statusSchema.shape)], errors: [400, 401, 403, 404, 409, 502, 503] },
  { method: 'get', path: '/v1/api/{db}/{table}/status', summary: 'State, desired state, health, counters, from the fleet model; ?fresh=true probes the agent now', permission: 'read', ...table, query: statusQuerySchema, ok: [200, ok(statusSchema.shape)], errors: [400, 401, 403, 404, 503] },
  { method: 'get', path: '/v1/api/{db}/{table}/incidents', summary: 'The agent\'s last 100 incidents, newest first', permission: 'read', ...table, ok: [200, ok({ incidents: z.array(incidentSchema) })], errors: [400, 401, 403, 404] },
  { method: 'delete', path: '/v1/api/{db}/{table}', summary: 'Remove the agent; the channel stays unless empty or force', permission: 'operate', ...table, query: deleteQuerySchema, ok: [200, ok(deleteSchema.shape)], errors: [400, 401, 403, 404, 409, 503] },
  { method: 'get', path: '/v1/api/services', summary: 'Every agent, in one call; ETag / If-None-Match answers 304 when unchanged', permission: 'read', query: listQuerySchema, ok: [200, ok({ observedAt: z.string(), agents: z.array(statusSchema.omit({ uptimeSeconds: true, description: true, observedAt: true }).extend({ metrics: countersSchema.omit({ lastEventAgeSeconds: true }).nullable() })) })], errors: [400, 401, 403, 503] },
  { method: 'get', path: '/v1/api/events', summary: 'Server-sent events: "incident" and "state", JSON data', permission: 'read', ok: [200, null, 'text/event-stream'], errors: [401, 403] },
  { method: 'post', path: '/v1/api/reconcile', summary: 'Make Redis and supervisord agree with conf.d/ and services/', permission: 'admin', ok: [200, ok({ ...reconcileSchema.shape, tokensRestored: z.array(z.string()) })], errors: [401, 403, 503] },
  { method: 'post', path: '/v1/api/token', summary: 'Set (or generate) a user\'s ingestion token; the previous one stays valid for the grace period', permission: 'admin', body: tokenRequestSchema, ok: [200, ok(tokenSetSchema.shape)], errors: [400, 401, 403, 409, 503] },
  { method: 'get', path: '/v1/api/token', summary: 'Users with tokens: scope, expiry, last use (never secrets)', permission: 'admin', ok: [200, ok({ users: z.array(tokenListingSchema) })], errors: [401, 403, 503] },
  { method: 'delete', path: '/v1/api/token/{username}', summary: 'Revoke every token of the user, at once', permission: 'admin', params: usernameParamSchema, ok: [200, ok({ username: z.string() })], errors: [400, 401, 403, 404] },
  { method: 'get', path: '/healthz', summary: 'The process is up', permission: 'none', ok: [200, ok({})], errors: [] },
  { method: 'get', path: '/readyz', summary: 'Redis and supervisord answer and disk state is restored', permission: 'none', ok: [200, ok({ checks: z.record(z.string()) })], errors: [503] },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics', permission: 'none', ok: [200, null, 'text/plain'], errors: [] },
];

const json = (schema: z.ZodTypeAny) => {
  const { $schema: _s, ...rest } = zodToJsonSchema(schema, { target: 'openApi3', $refStrategy: 'none' }) as Record<string, unknown>;
  return rest;
};

function parameters(schema: z.ZodObject<z.ZodRawShape> | undefined, where: 'path' | 'query') {
  if (!schema) return [];
  return Object.entries(schema.shape).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || !(s as z.ZodTypeAny).isOptional(),
    schema: json(s as z.ZodTypeAny),
  }));
}

/** The OpenAPI 3 document, built from the zod schemas the routes validate with. */
export function buildOpenApi(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const [status, schema, type = 'application/json'] = op.ok;
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      summary: op.summary,
      description: op.permission === 'none' ? 'Open: no token.' : `Needs a control token whose role grants "${op.permission}".`,
      ...(op.permission === 'none' ? { security: [] } : {}),
      parameters: [...parameters(op.params, 'path'), ...parameters(op.query, 'query')],
      ...(op.body ? { requestBody: { required: op.path.endsWith('/token'), content: { 'application/json': { schema: json(op.body) } } } } : {}),
      responses: {
        [status]: { description: 'success', content: { [type]: { schema: schema ? json(schema) : { type: 'string' } } } },
        ...Object.fromEntries(op.errors.map((s) => [s, { description: 'error', content: { 'application/json': { schema: json(errorSchema) } } }])),
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'flume-service',
      version: '0.1.0',
      description: `REST control plane for per-table Apache Flume agents. Sink options per sink: ${Object.keys(sinkSchemas).join(', ')} (see options in the create body).`,
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
