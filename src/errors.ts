/**
 * Every error the API and the gateway answer with, one code per error. `code` and `error` are
 * stable: clients and docs/api.md rely on them; the gateway's Lua and nginx.conf get theirs from
 * GATEWAY_ERRORS below, rendered at set-up (src/gateway/render.ts), never typed by hand.
 * Foreign errors (supervisor faults, Redis, file system) are translated into these at the
 * transport boundary.
 */
export class AppError extends Error {
  /** Seconds to wait before a retry (Retry-After), when this error knows better than its status's default. */
  retryAfter?: number;

  constructor(
    readonly code: number,
    readonly error: string,
    readonly statusCode: number,
    message: string,
    readonly details?: Record<string, unknown>,
    /** What caused it (kept for the log: the error handler logs a 5xx with its cause, never sends it). */
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const ErrorCodes = {
  INVALID_JSON: 10001,
  MISSING_FIELD: 10002,
  INVALID_NAME: 10010,
  INVALID_REQUEST: 10011,
  CONFIG_REJECTED: 10012,
  SINK_UNAVAILABLE: 10013,
  /** A config change did not accept events; the previous revision was restored. */
  CONFIG_REVERTED: 10014,
  URI_TOO_LONG: 10015,
  /** The Host header is not one this API answers for (API_ALLOWED_HOSTS): DNS rebinding. */
  MISDIRECTED_REQUEST: 10016,
  UNAUTHORIZED: 10020,
  /** The gateway: an unknown or revoked ingestion token. */
  TOKEN_INVALID: 10021,
  /** The gateway: no ingestion token. */
  TOKEN_MISSING: 10022,
  /** The gateway: an ingestion token past its expiry or its grace after a rotation. */
  TOKEN_EXPIRED: 10023,
  FORBIDDEN: 10030,
  /** The gateway: the ingestion token is not scoped to the table. */
  TOKEN_SCOPE: 10031,
  NOT_FOUND: 10040,
  AGENT_NOT_FOUND: 10041,
  TOKEN_USER_NOT_FOUND: 10042,
  /** The gateway: no agent for the table. */
  TABLE_NOT_FOUND: 10043,
  REVISION_NOT_FOUND: 10044,
  OPERATION_NOT_FOUND: 10045,
  INCIDENT_NOT_FOUND: 10046,
  /** No host of that id in the cluster. */
  NODE_NOT_FOUND: 10047,
  /** No trace of that request id for the table (never committed here, or older than GATEWAY_TRACE_SECONDS). */
  TRACE_NOT_FOUND: 10048,
  METHOD_NOT_ALLOWED: 10050,
  /** The same code the gateway answers for an ingest body over its limit. */
  BODY_TOO_LARGE: 10060,
  /** The gateway: not a JSON array of Flume events (or the agent refused the body). */
  BAD_EVENTS: 10061,
  /** The gateway: an event carries a header that steers the sink (topic, key). */
  RESERVED_HEADER: 10062,
  /** The gateway: more events in one request than the table's transactionCapacity (or GATEWAY_MAX_EVENTS). */
  TOO_MANY_EVENTS: 10063,
  /** The gateway: over the per-token rate (or too many invalid tokens from one address). */
  RATE_LIMITED: 10064,
  /** One control token holds API_MAX_STREAMS_PER_TOKEN open streams already. */
  TOO_MANY_STREAMS: 10065,
  /** The gateway: the client's address has GATEWAY_CONNECTIONS_PER_ADDRESS ingest requests in progress already. */
  TOO_MANY_CONNECTIONS: 10066,
  /** The gateway: an event larger than the table's sink can ever deliver (the Kafka producer's max.request.size). */
  EVENT_TOO_LARGE: 10067,
  AGENT_EXISTS: 10090,
  BUSY: 10091,
  PORT_CONFLICT: 10092,
  NO_FREE_PORT: 10093,
  /** A JVM that supervisord does not run holds the table's config and channel. */
  AGENT_HELD: 10094,
  /** If-Match named a revision that is no longer the desired one: read again, then change. */
  PRECONDITION_FAILED: 10095,
  /** CONFIG_REQUIRE_IF_MATCH is on and a config change came without If-Match. */
  PRECONDITION_REQUIRED: 10096,
  /** An Idempotency-Key already used for another request (method, path or body differ). */
  IDEMPOTENCY_KEY_REUSED: 10097,
  /** The first request with this Idempotency-Key has not answered yet. */
  IDEMPOTENCY_IN_PROGRESS: 10098,
  /** The operation cannot be cancelled: it is done, or it is not a bulk operation. */
  OPERATION_NOT_CANCELLABLE: 10099,
  AGENT_START_FAILED: 10100,
  SUPERVISOR_UNAVAILABLE: 10101,
  SUPERVISOR_FAULT: 10102,
  REDIS_UNAVAILABLE: 10103,
  NOT_READY: 10104,
  /** The gateway: the table's agent did not answer on its port. */
  AGENT_UNREACHABLE: 10105,
  /** The gateway: the table exists but its agent is not running (no route). */
  AGENT_DOWN: 10106,
  /** The gateway: an operator paused the table's intake. */
  AGENT_PAUSED: 10107,
  /** The gateway: Redis lost its data and the service has not refilled it yet; an unknown token may be valid. */
  REDIS_RESTORING: 10108,
  /** The gateway: the agent refused the batch (its channel is full). Was 10107, shared with AGENT_PAUSED, before. */
  CHANNEL_FULL: 10109,
  /** Many hosts: etcd does not answer (no quorum, or unreachable); a mutation changed nothing. */
  CLUSTER_UNAVAILABLE: 10110,
  /** A cluster-only operation on a single host (ETCD_ENDPOINTS is empty). */
  NOT_CLUSTERED: 10111,
  /** Many hosts: the host asked for (?node=) is not alive or not active, or none has room. */
  NODE_UNAVAILABLE: 10112,
  /** Many hosts, the gateway: the host that runs the table is not alive (its presence lapsed). */
  NODE_DOWN: 10114,
  /** Many hosts, the gateway: this host lost touch with etcd (its lease is not renewed) and stopped intake, so no two hosts take one table's events. */
  NODE_FENCED: 10115,
  /** Many hosts: a move from a host that is not alive would leave its channel's events there until it returns; say abandonChannel: true to accept that. */
  CHANNEL_STRANDED: 10116,
  INTERNAL: 10500,
} as const;

/** How the gateway answers each of its errors: HTTP status and, where a retry makes sense, Retry-After seconds. */
export const GATEWAY_ERRORS = {
  TOKEN_MISSING: { status: 401 },
  TOKEN_INVALID: { status: 401 },
  TOKEN_EXPIRED: { status: 401 },
  TOKEN_SCOPE: { status: 403 },
  NOT_FOUND: { status: 404 },
  TABLE_NOT_FOUND: { status: 404 },
  METHOD_NOT_ALLOWED: { status: 405 },
  BAD_EVENTS: { status: 400 },
  RESERVED_HEADER: { status: 400 },
  INVALID_REQUEST: { status: 400 },
  BODY_TOO_LARGE: { status: 413 },
  TOO_MANY_EVENTS: { status: 413 },
  EVENT_TOO_LARGE: { status: 413 },
  RATE_LIMITED: { status: 429, retryAfter: 1 },
  TOO_MANY_CONNECTIONS: { status: 429, retryAfter: 1 },
  INTERNAL: { status: 500 },
  AGENT_UNREACHABLE: { status: 502, retryAfter: 5 },
  AGENT_DOWN: { status: 503, retryAfter: 5 },
  AGENT_PAUSED: { status: 503, retryAfter: 30 },
  CHANNEL_FULL: { status: 503, retryAfter: 5 },
  REDIS_UNAVAILABLE: { status: 503, retryAfter: 1 },
  REDIS_RESTORING: { status: 503, retryAfter: 2 },
  NODE_DOWN: { status: 503, retryAfter: 5 },
  NODE_FENCED: { status: 503, retryAfter: 5 },
} as const satisfies Partial<Record<keyof typeof ErrorCodes, { status: number; retryAfter?: number }>>;

type Name = keyof typeof ErrorCodes;

function make(name: Name, status: number, message: string, details?: Record<string, unknown>) {
  return new AppError(ErrorCodes[name], name, status, message, details);
}

export const missingField = (message: string) => make('MISSING_FIELD', 400, message);
export const unauthorized = (message: string) => make('UNAUTHORIZED', 401, message);
export const forbidden = (message: string) => make('FORBIDDEN', 403, message);
export const tokenUserNotFound = (username: string) =>
  make('TOKEN_USER_NOT_FOUND', 404, `no ingestion token for user ${username}`);
export const invalidName = (message: string) => make('INVALID_NAME', 400, message);
export const invalidRequest = (message: string) => make('INVALID_REQUEST', 400, message);
export const invalidJson = (message: string) => make('INVALID_JSON', 400, message);
export const bodyTooLarge = (message: string) => make('BODY_TOO_LARGE', 413, message);
export const uriTooLong = (message: string) => make('URI_TOO_LONG', 414, message);
export const configRejected = (message: string) => make('CONFIG_REJECTED', 422, message);
export const configReverted = (message: string, details: Record<string, unknown>) => make('CONFIG_REVERTED', 422, message, details);
export const revisionNotFound = (message: string) => make('REVISION_NOT_FOUND', 404, message);
export const operationNotFound = (id: string) => make('OPERATION_NOT_FOUND', 404, `no operation ${id} (operations are kept 24 h)`);
export const incidentNotFound = (id: string) => make('INCIDENT_NOT_FOUND', 404, `no incident ${id} among this agent's last 100`);
export const sinkUnavailable = (message: string) => make('SINK_UNAVAILABLE', 422, message);
export const routeNotFound = (message: string) => make('NOT_FOUND', 404, message);
export const agentNotFound = (program: string) =>
  make('AGENT_NOT_FOUND', 404, `no agent for this table (${program}); create it first`);
export const methodNotAllowed = (allowed: string) =>
  make('METHOD_NOT_ALLOWED', 405, `use ${allowed} for this endpoint`, { allow: allowed });
export const agentExists = (program: string, differences?: Array<{ field: string; existing: unknown; requested: unknown }>) =>
  make(
    'AGENT_EXISTS',
    409,
    differences?.length
      ? `an agent already exists for this table (${program}) with another spec: ${differences.map((d) => d.field).join(', ')} differ${differences.length === 1 ? 's' : ''}; PUT /v1/api/:db/:table or .../config changes it`
      : `an agent already exists for this table (${program})`,
    differences ? { differences } : undefined,
  );
export const preconditionFailed = (program: string, current: number, given: string) =>
  make('PRECONDITION_FAILED', 412, `${program} is at revision ${current}, not ${given.slice(0, 40)}: someone changed it meanwhile; read it again (GET .../config) and send its ETag`, { revision: current, etag: `"${current}"` });
export const nothingToMatch = (program: string) =>
  make('PRECONDITION_FAILED', 412, `no agent for this table (${program}) to match If-Match: leave If-Match out to create it`, { revision: null });
export const preconditionRequired = (program: string) =>
  make('PRECONDITION_REQUIRED', 428, `a change to ${program}'s config needs If-Match with the ETag of GET .../config (CONFIG_REQUIRE_IF_MATCH is on)`);
export const idempotencyKeyReused = () =>
  make('IDEMPOTENCY_KEY_REUSED', 422, 'this Idempotency-Key was used for another request (method, path or body differ): use a new key for a new request');
export const idempotencyInProgress = () =>
  Object.assign(make('IDEMPOTENCY_IN_PROGRESS', 409, 'the first request with this Idempotency-Key is still running; retry with the same key to get its answer'), { retryAfter: 2 });
export const operationNotCancellable = (id: string, why: string) => make('OPERATION_NOT_CANCELLABLE', 409, `operation ${id} cannot be cancelled: ${why}`);
export const busy = (program: string, holder?: { operation: string; since: string } | null, retryAfter?: number) =>
  Object.assign(make(
    'BUSY',
    409,
    holder
      ? `${program} is busy: ${holder.operation} in progress since ${holder.since}; retry when it finishes`
      : `another operation on ${program} is in progress; retry when it finishes`,
    holder ? { operation: holder.operation, since: holder.since } : undefined,
  ), { retryAfter });
export const portConflict = (port: number) =>
  make('PORT_CONFLICT', 409, `the agent's port ${port} is held by another process; free it or delete and re-create the agent`);
export const tableHeld = (program: string, pids: number[]) =>
  make(
    'AGENT_HELD',
    409,
    `${program} is already run by pid ${pids.join(', ')}, outside supervisord (left by a supervisord that died?): run the README's first command again, which stops it cleanly, or stop it yourself`,
    { pids },
  );
export const noFreePort = (range: [number, number], skipped?: [number, number] | null) =>
  make(
    'NO_FREE_PORT',
    503,
    `no free port left in ${range[0]}-${range[1]}${skipped ? ` (${skipped[0]}-${skipped[1]} is skipped: the kernel's ephemeral range, see PORT_RANGE in docs/operations.md)` : ''}`,
  );
export const agentStartFailed = (message: string, details?: Record<string, unknown>) =>
  make('AGENT_START_FAILED', 502, message, details);
export const supervisorUnavailable = (message: string) => make('SUPERVISOR_UNAVAILABLE', 503, message);
export const supervisorFault = (message: string, details?: Record<string, unknown>) =>
  make('SUPERVISOR_FAULT', 502, message, details);
export const misdirected = (host: string) =>
  make('MISDIRECTED_REQUEST', 421, `this API does not answer for Host ${host.slice(0, 100)}; add it to API_ALLOWED_HOSTS if it is yours`);
export const tooManyStreams = (max: number) =>
  retryingAfter(make('TOO_MANY_STREAMS', 429, `this token holds ${max} open streams already (API_MAX_STREAMS_PER_TOKEN): close one first`), 5);

/** The error with its own Retry-After (seconds), which the error handler sends. */
function retryingAfter(err: AppError, seconds: number): AppError {
  err.retryAfter = seconds;
  return err;
}

/** Any failure as an AppError: ours as it is, anything else 500 INTERNAL saying no more than where to look. */
export function asAppError(err: unknown, where = 'the service log'): AppError {
  return err instanceof AppError ? err : withCause(new AppError(ErrorCodes.INTERNAL, 'INTERNAL', 500, `internal error; see ${where}`), err);
}

/** The one shape of an error body: {code, error, message[, details]} (the handler adds requestId). */
export function errorBody(err: AppError): { code: number; error: string; message: string; details?: Record<string, unknown> } {
  return { code: err.code, error: err.error, message: err.message, ...(err.details ? { details: err.details } : {}) };
}
/** The error, with what caused it kept for the log. */
export function withCause(err: AppError, cause: unknown): AppError {
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, enumerable: false, configurable: true, writable: true });
  return err;
}
export const redisUnavailable = (message: string, cause?: unknown) => withCause(make('REDIS_UNAVAILABLE', 503, message), cause);
export const nodeNotFound = (id: string) => make('NODE_NOT_FOUND', 404, `no host ${id} in the cluster`);
export const traceNotFound = (program: string, requestId: string, keptSeconds: number) =>
  make(
    'TRACE_NOT_FOUND',
    404,
    `no trace of request ${requestId} for ${program}: traces are kept ${keptSeconds} s (GATEWAY_TRACE_SECONDS), on the host whose agent committed the request, for requests it committed within GATEWAY_TRACE_PER_SECOND`,
  );
export const clusterUnavailable = (message: string, details?: Record<string, unknown>) => make('CLUSTER_UNAVAILABLE', 503, message, details);
export const notClustered = (message: string) => make('NOT_CLUSTERED', 409, message);
export const nodeUnavailable = (message: string) => make('NODE_UNAVAILABLE', 409, message);
export const channelStranded = (message: string, details: Record<string, unknown>) => make('CHANNEL_STRANDED', 409, message, details);
