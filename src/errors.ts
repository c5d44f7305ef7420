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

/** One error: its stable code, the one HTTP status it answers with, where it is answered (the API, the gateway or both) and, where a retry makes sense, Retry-After seconds. */
interface CatalogueEntry {
  code: number;
  status: number;
  at: 'api' | 'gateway' | 'both';
  retryAfter?: number;
}

/**
 * The catalogue: every error by name. Statuses, codes and Retry-After come from here for the
 * API's answers, the OpenAPI document (src/http/contract.ts) and the gateway's Lua.
 */
export const ERRORS = {
  INVALID_JSON: { code: 10001, status: 400, at: 'api' },
  MISSING_FIELD: { code: 10002, status: 400, at: 'api' },
  INVALID_NAME: { code: 10010, status: 400, at: 'api' },
  INVALID_REQUEST: { code: 10011, status: 400, at: 'both' },
  CONFIG_REJECTED: { code: 10012, status: 422, at: 'api' },
  SINK_UNAVAILABLE: { code: 10013, status: 422, at: 'api' },
  /** A config change did not accept events; the previous revision was restored. */
  CONFIG_REVERTED: { code: 10014, status: 422, at: 'api' },
  URI_TOO_LONG: { code: 10015, status: 414, at: 'api' },
  /** The Host header is not one this API answers for (API_ALLOWED_HOSTS): DNS rebinding. */
  MISDIRECTED_REQUEST: { code: 10016, status: 421, at: 'api' },
  /** The request (its headers, or its body) did not arrive within API_HEADERS_TIMEOUT_MS / API_REQUEST_TIMEOUT_MS. */
  REQUEST_TIMEOUT: { code: 10017, status: 408, at: 'api' },
  /** The request's headers are over the server's limit (16 KiB). */
  HEADERS_TOO_LARGE: { code: 10018, status: 431, at: 'api' },
  UNAUTHORIZED: { code: 10020, status: 401, at: 'api' },
  /** The gateway: an unknown or revoked ingestion token. */
  TOKEN_INVALID: { code: 10021, status: 401, at: 'gateway' },
  /** The gateway: no ingestion token. */
  TOKEN_MISSING: { code: 10022, status: 401, at: 'gateway' },
  /** The gateway: an ingestion token past its expiry or its grace after a rotation. */
  TOKEN_EXPIRED: { code: 10023, status: 401, at: 'gateway' },
  FORBIDDEN: { code: 10030, status: 403, at: 'api' },
  /** The gateway: the ingestion token is not scoped to the table. */
  TOKEN_SCOPE: { code: 10031, status: 403, at: 'gateway' },
  NOT_FOUND: { code: 10040, status: 404, at: 'both' },
  AGENT_NOT_FOUND: { code: 10041, status: 404, at: 'api' },
  TOKEN_USER_NOT_FOUND: { code: 10042, status: 404, at: 'api' },
  /** The gateway: no agent for the table. */
  TABLE_NOT_FOUND: { code: 10043, status: 404, at: 'gateway' },
  REVISION_NOT_FOUND: { code: 10044, status: 404, at: 'api' },
  OPERATION_NOT_FOUND: { code: 10045, status: 404, at: 'api' },
  INCIDENT_NOT_FOUND: { code: 10046, status: 404, at: 'api' },
  /** No host of that id in the cluster. */
  NODE_NOT_FOUND: { code: 10047, status: 404, at: 'api' },
  /** No trace of that request id for the table (never committed here, or older than GATEWAY_TRACE_SECONDS). */
  TRACE_NOT_FOUND: { code: 10048, status: 404, at: 'api' },
  METHOD_NOT_ALLOWED: { code: 10050, status: 405, at: 'both' },
  /** The same code the gateway answers for an ingest body over its limit. */
  BODY_TOO_LARGE: { code: 10060, status: 413, at: 'both' },
  /** The gateway: not a JSON array of Flume events (or the agent refused the body). */
  BAD_EVENTS: { code: 10061, status: 400, at: 'gateway' },
  /** The gateway: an event carries a header that steers the sink (topic, key). */
  RESERVED_HEADER: { code: 10062, status: 400, at: 'gateway' },
  /** The gateway: more events in one request than the table's transactionCapacity (or GATEWAY_MAX_EVENTS). */
  TOO_MANY_EVENTS: { code: 10063, status: 413, at: 'gateway' },
  /** The gateway: over the per-token rate (or too many invalid tokens from one address). */
  RATE_LIMITED: { code: 10064, status: 429, at: 'gateway', retryAfter: 1 },
  /** One control token holds API_MAX_STREAMS_PER_TOKEN open streams already. */
  TOO_MANY_STREAMS: { code: 10065, status: 429, at: 'api', retryAfter: 5 },
  /** The gateway: the client's address has GATEWAY_CONNECTIONS_PER_ADDRESS ingest requests in progress already. */
  TOO_MANY_CONNECTIONS: { code: 10066, status: 429, at: 'gateway', retryAfter: 1 },
  /** The gateway: an event larger than the table's sink can ever deliver (the Kafka producer's max.request.size). */
  EVENT_TOO_LARGE: { code: 10067, status: 413, at: 'gateway' },
  AGENT_EXISTS: { code: 10090, status: 409, at: 'api' },
  BUSY: { code: 10091, status: 409, at: 'api', retryAfter: 2 },
  PORT_CONFLICT: { code: 10092, status: 409, at: 'api' },
  NO_FREE_PORT: { code: 10093, status: 503, at: 'api' },
  /** A JVM that supervisord does not run holds the table's config and channel. */
  AGENT_HELD: { code: 10094, status: 409, at: 'api' },
  /** If-Match named a revision that is no longer the desired one: read again, then change. */
  PRECONDITION_FAILED: { code: 10095, status: 412, at: 'api' },
  /** CONFIG_REQUIRE_IF_MATCH is on and a config change came without If-Match. */
  PRECONDITION_REQUIRED: { code: 10096, status: 428, at: 'api' },
  /** An Idempotency-Key already used for another request (method, path or body differ). */
  IDEMPOTENCY_KEY_REUSED: { code: 10097, status: 422, at: 'api' },
  /** The first request with this Idempotency-Key has not answered yet. */
  IDEMPOTENCY_IN_PROGRESS: { code: 10098, status: 409, at: 'api', retryAfter: 2 },
  /** The operation cannot be cancelled: it is done, or it is one table's call. */
  OPERATION_NOT_CANCELLABLE: { code: 10099, status: 409, at: 'api' },
  AGENT_START_FAILED: { code: 10100, status: 502, at: 'api' },
  SUPERVISOR_UNAVAILABLE: { code: 10101, status: 503, at: 'api' },
  SUPERVISOR_FAULT: { code: 10102, status: 502, at: 'api' },
  REDIS_UNAVAILABLE: { code: 10103, status: 503, at: 'both', retryAfter: 1 },
  NOT_READY: { code: 10104, status: 503, at: 'api' },
  /** The gateway: the table's agent did not answer on its port. */
  AGENT_UNREACHABLE: { code: 10105, status: 502, at: 'gateway', retryAfter: 5 },
  /** The gateway: the table exists but its agent is not running (no route). */
  AGENT_DOWN: { code: 10106, status: 503, at: 'both', retryAfter: 5 },
  /** The gateway: an operator paused the table's intake. */
  AGENT_PAUSED: { code: 10107, status: 503, at: 'gateway', retryAfter: 30 },
  /** The gateway: Redis lost its data and the service has not refilled it yet; an unknown token may be valid. */
  REDIS_RESTORING: { code: 10108, status: 503, at: 'gateway', retryAfter: 2 },
  /** The gateway: the agent refused the batch (its channel is full). Was 10107, shared with AGENT_PAUSED, before. */
  CHANNEL_FULL: { code: 10109, status: 503, at: 'gateway', retryAfter: 5 },
  /** Many hosts: etcd does not answer (no quorum, or unreachable); a mutation changed nothing. */
  CLUSTER_UNAVAILABLE: { code: 10110, status: 503, at: 'api' },
  /** A cluster-only operation on a single host (ETCD_ENDPOINTS is empty). */
  NOT_CLUSTERED: { code: 10111, status: 409, at: 'api' },
  /** Many hosts: the host asked for (?node=) is not alive or not active, or none has room. */
  NODE_UNAVAILABLE: { code: 10112, status: 409, at: 'api' },
  /** Many hosts, the gateway: the host that runs the table is not alive (its presence lapsed). */
  NODE_DOWN: { code: 10114, status: 503, at: 'gateway', retryAfter: 5 },
  /** Many hosts, the gateway: this host lost touch with etcd (its lease is not renewed) and stopped intake, so no two hosts take one table's events. */
  NODE_FENCED: { code: 10115, status: 503, at: 'gateway', retryAfter: 5 },
  /** Many hosts: a move from a host that is not alive would leave its channel's events there until it returns; say abandonChannel: true to accept that. */
  CHANNEL_STRANDED: { code: 10116, status: 409, at: 'api' },
  /** A fleet apply with prune: the table's channel still held events after drainSeconds; nothing was deleted. */
  NOT_DRAINED: { code: 10117, status: 409, at: 'api' },
  /** An agent's log levels cannot be read or set now: it is not running, or its JVM was started before it served them. */
  LOGGERS_UNAVAILABLE: { code: 10118, status: 409, at: 'api' },
  /** The gateway: events that do not meet their table's schema (policy reject); details.invalid lists each event's place, field path and problem. */
  SCHEMA_MISMATCH: { code: 10119, status: 422, at: 'gateway' },
  /** The gateway: the db is over its quota (events or bytes, per second or per day); Retry-After says when it fits again. */
  QUOTA_EXCEEDED: { code: 10068, status: 429, at: 'gateway', retryAfter: 1 },
  /** The gateway: saturated, and the db has more than its share of the requests in flight. */
  OVER_FAIR_SHARE: { code: 10069, status: 429, at: 'gateway', retryAfter: 1 },
  INTERNAL: { code: 10500, status: 500, at: 'both' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorName = keyof typeof ERRORS;

/** Each error's code, by name. */
export const ErrorCodes = Object.fromEntries(Object.entries(ERRORS).map(([name, e]) => [name, e.code])) as {
  readonly [K in ErrorName]: (typeof ERRORS)[K]['code'];
};

type GatewayErrorName = { [K in ErrorName]: (typeof ERRORS)[K]['at'] extends 'api' ? never : K }[ErrorName];

/** How the gateway answers each of its errors: HTTP status and, where a retry makes sense, Retry-After seconds. */
export const GATEWAY_ERRORS = Object.fromEntries(
  Object.entries(ERRORS as Record<string, CatalogueEntry>)
    .filter(([, e]) => e.at !== 'api')
    .map(([name, e]) => [name, { status: e.status, ...(e.retryAfter === undefined ? {} : { retryAfter: e.retryAfter }) }]),
) as Record<GatewayErrorName, { status: number; retryAfter?: number }>;

/** The names of the errors that answer with `status` where `at` says (the API or the gateway). */
export function errorNamesFor(status: number, at: 'api' | 'gateway'): ErrorName[] {
  return (Object.keys(ERRORS) as ErrorName[]).filter((n) => {
    const e: CatalogueEntry = ERRORS[n];
    return e.status === status && (e.at === 'both' || e.at === at);
  });
}

/** Seconds to wait before retrying this error, when the catalogue says. */
export const retryAfterFor = (name: string): number | undefined => (ERRORS as Record<string, CatalogueEntry>)[name]?.retryAfter;

/** An error of the catalogue, with its code and status. */
export function appError(name: ErrorName, message: string, details?: Record<string, unknown>): AppError {
  const e = ERRORS[name];
  return new AppError(e.code, name, e.status, message, details);
}
const make = appError;

export const missingField = (message: string) => make('MISSING_FIELD', message);
export const unauthorized = (message: string) => make('UNAUTHORIZED', message);
export const forbidden = (message: string) => make('FORBIDDEN', message);
export const tokenUserNotFound = (username: string) =>
  make('TOKEN_USER_NOT_FOUND', `no ingestion token for user ${username}`);
export const invalidName = (message: string) => make('INVALID_NAME', message);
export const invalidRequest = (message: string) => make('INVALID_REQUEST', message);
export const invalidJson = (message: string) => make('INVALID_JSON', message);
export const bodyTooLarge = (message: string) => make('BODY_TOO_LARGE', message);
export const uriTooLong = (message: string) => make('URI_TOO_LONG', message);
export const configRejected = (message: string) => make('CONFIG_REJECTED', message);
export const configReverted = (message: string, details: Record<string, unknown>) => make('CONFIG_REVERTED', message, details);
export const revisionNotFound = (message: string) => make('REVISION_NOT_FOUND', message);
export const operationNotFound = (id: string) => make('OPERATION_NOT_FOUND', `no operation ${id} (operations are kept 24 h)`);
export const incidentNotFound = (id: string) => make('INCIDENT_NOT_FOUND', `no incident ${id} among this agent's last 100`);
export const sinkUnavailable = (message: string) => make('SINK_UNAVAILABLE', message);
export const routeNotFound = (message: string) => make('NOT_FOUND', message);
export const agentNotFound = (program: string) =>
  make('AGENT_NOT_FOUND', `no agent for this table (${program}); create it first`);
export const methodNotAllowed = (allowed: string) =>
  make('METHOD_NOT_ALLOWED', `use ${allowed} for this endpoint`, { allow: allowed });
export const agentExists = (program: string, differences?: Array<{ field: string; existing: unknown; requested: unknown }>) =>
  make('AGENT_EXISTS', differences?.length
      ? `an agent already exists for this table (${program}) with another spec: ${differences.map((d) => d.field).join(', ')} differ${differences.length === 1 ? 's' : ''}; PUT /v1/api/:db/:table or .../config changes it`
      : `an agent already exists for this table (${program})`,
    differences ? { differences } : undefined,
  );
export const preconditionFailed = (program: string, current: number, header: 'if-match' | 'if-none-match' = 'if-match') =>
  make(
    'PRECONDITION_FAILED',
    header === 'if-match'
      ? `${program} is at revision ${current} (ETag "${current}"), which If-Match does not name: someone changed it meanwhile (or the tag is not this config's); read it again (GET .../config) and send its ETag`
      : `${program} exists at revision ${current} (ETag "${current}"), which If-None-Match excludes: nothing was changed`,
    { revision: current, etag: `"${current}"` },
  );
export const nothingToMatch = (program: string) =>
  make('PRECONDITION_FAILED', `no agent for this table (${program}) to match If-Match: leave If-Match out to create it`, { revision: null });
export const preconditionRequired = (program: string) =>
  make('PRECONDITION_REQUIRED', `a change to ${program}'s config needs If-Match with the ETag of GET .../config (CONFIG_REQUIRE_IF_MATCH is on)`);
export const idempotencyKeyReused = () =>
  make('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for another request (method, path or body differ): use a new key for a new request');
export const idempotencyInProgress = () =>
  make('IDEMPOTENCY_IN_PROGRESS', 'the first request with this Idempotency-Key is still running; retry with the same key to get its answer');
export const operationNotCancellable = (id: string, why: string) => make('OPERATION_NOT_CANCELLABLE', `operation ${id} cannot be cancelled: ${why}`);
export const busy = (program: string, holder?: { operation: string; since: string } | null, retryAfter?: number) =>
  Object.assign(make('BUSY', holder
      ? `${program} is busy: ${holder.operation} in progress since ${holder.since}; retry when it finishes`
      : `another operation on ${program} is in progress; retry when it finishes`,
    holder ? { operation: holder.operation, since: holder.since } : undefined,
  ), { retryAfter });
export const portConflict = (port: number) =>
  make('PORT_CONFLICT', `the agent's port ${port} is held by another process; free it or delete and re-create the agent`);
export const tableHeld = (program: string, pids: number[]) =>
  make('AGENT_HELD', `${program} is already run by pid ${pids.join(', ')}, outside supervisord (left by a supervisord that died?): run the README's first command again, which stops it cleanly, or stop it yourself`,
    { pids },
  );
export const noFreePort = (range: [number, number], skipped?: [number, number] | null) =>
  make('NO_FREE_PORT', `no free port left in ${range[0]}-${range[1]}${skipped ? ` (${skipped[0]}-${skipped[1]} is skipped: the kernel's ephemeral range, see PORT_RANGE in docs/operations.md)` : ''}`,
  );
export const agentStartFailed = (message: string, details?: Record<string, unknown>) =>
  make('AGENT_START_FAILED', message, details);
export const supervisorUnavailable = (message: string) => make('SUPERVISOR_UNAVAILABLE', message);
export const supervisorFault = (message: string, details?: Record<string, unknown>) =>
  make('SUPERVISOR_FAULT', message, details);
export const misdirected = (host: string) =>
  make('MISDIRECTED_REQUEST', `this API does not answer for Host ${host.slice(0, 100)}; add it to API_ALLOWED_HOSTS if it is yours`);
export const tooManyStreams = (max: number) =>
  make('TOO_MANY_STREAMS', `this token holds ${max} open streams already (API_MAX_STREAMS_PER_TOKEN): close one first`);

/** Any failure as an AppError: ours as it is, anything else 500 INTERNAL saying no more than where to look. */
export function asAppError(err: unknown, where = 'the service log'): AppError {
  return err instanceof AppError ? err : withCause(make('INTERNAL', `internal error; see ${where}`), err);
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
export const redisUnavailable = (message: string, cause?: unknown) => withCause(make('REDIS_UNAVAILABLE', message), cause);
export const nodeNotFound = (id: string) => make('NODE_NOT_FOUND', `no host ${id} in the cluster`);
export const traceNotFound = (program: string, requestId: string, keptSeconds: number) =>
  make('TRACE_NOT_FOUND', `no trace of request ${requestId} for ${program}: traces are kept ${keptSeconds} s (GATEWAY_TRACE_SECONDS), on the host whose agent committed the request, for requests it committed within GATEWAY_TRACE_PER_SECOND`,
  );
export const clusterUnavailable = (message: string, details?: Record<string, unknown>) => make('CLUSTER_UNAVAILABLE', message, details);
export const notClustered = (message: string) => make('NOT_CLUSTERED', message);
export const nodeUnavailable = (message: string) => make('NODE_UNAVAILABLE', message);
export const loggersUnavailable = (message: string) => make('LOGGERS_UNAVAILABLE', message);
export const channelStranded = (message: string, details: Record<string, unknown>) => make('CHANNEL_STRANDED', message, details);
