/**
 * Every Redis key and channel the service and the gateway use, built from one configurable
 * prefix. This is the schema docs/architecture.md documents; the gateway reads route, tables and token.
 *
 *   <p>ports               HASH   port -> program that holds it (the reservation table)
 *   <p>route:<db>:<table>  STRING "127.0.0.1:<port> tx=<transactionCapacity>" (or "paused": 503
 *                                 AGENT_PAUSED), present while the agent accepts events; the
 *                                 format is ROUTE_VALUE in agents/route-table.ts, generated for the Lua
 *   <p>tables              SET    "<db>:<table>" of every table that has an agent
 *   <p>lock:<program>      STRING owner token, PX ttl: one operation per table at a time
 *   <p>token:<hash>        HASH   user, scope, exp, graceUntil, lastUsed: one ingestion token,
 *                                 keyed by the token's keyed hash (HMAC, see token-service); never the token
 *   <p>user:<username>     HASH   current, previous (token hashes), previousUntil, scope, exp,
 *                                 createdAt
 *   <p>users               SET    usernames that have a token
 *   <p>supervisor-events   STREAM supervisord PROCESS_STATE events, from the event listener
 *   <p>incidents:<program> LIST   newest first, the last 100 incidents of an agent
 *   <p>epoch               STRING a marker written when Redis was (re)filled from disk; gone
 *                                 means Redis lost its data and the service restores it
 *   <p>incident-once:<id>  STRING NX marker: an incident found by a resync is raised once
 *                                 across API processes
 *   <p>revoked-control-tokens HASH jti -> unix time its JWT expires: revoked control tokens
 *                                 (a copy of var/revoked-control-tokens.json)
 *   <p>operation:<id>      STRING JSON of an operation (bulk, or one table's async call) and its
 *                                 per-table outcomes, EX 24 h
 *   <p>operations          STREAM one entry per operation (field id), trimmed to 24 h: the
 *                                 listing's order and cursor
 *   <p>idempotency:<sub>:<key> STRING JSON of the first answer to an Idempotency-Key (or
 *                                 "pending"), EX IDEMPOTENCY_WINDOW_SECONDS
 *   <p>events              STREAM the event stream's events (incident, state, operation),
 *                                 capped at API_EVENTS_REPLAY: Last-Event-ID replays from it
 *   <p>audit               STREAM the audit trail, capped (a copy of var/audit.log's newest entries)
 *   <p>audit-refused       STREAM refused calls (401/403), one record per address, subject, db,
 *                                 status and minute; capped, Redis only
 *   <p>traces:<db>:<table>:<minute> HASH request id -> "t0,t1,events,ack,start,need,seen,t2": the
 *                                 requests the table's agent committed that minute (of t0, ms / 60000),
 *                                 EX GATEWAY_TRACE_SECONDS + 60, written by the gateway
 *                                 (templates/gateway/lua/flume_gateway/trace.lua)
 *   <p>trace-takes:<db>:<table> ZSET "<ms>:<start>:<takes>" by ms: the channel's take count as
 *                                 the gateway sampled it (GATEWAY_TRACE_SECONDS): when a traced request was taken
 *   <p>quotas              HASH   db -> "eps=<n> bps=<n> epd=<n> bpd=<n>" (those set): each db's
 *                                 quota at the gateway (a copy of var/quotas.json; src/tenants/quotas.ts)
 *   <p>usage:<minute>      HASH   "<db>\t<e|b|quota|share>" -> events, bytes accepted and requests
 *                                 refused that minute (epoch s / 60), added to by every gateway worker
 *                                 every second (flume_gateway/tenants.lua), EX 3900
 *   <p>invalidate          PUBSUB "token:<hash>" | "route:<db>:<table>" | "quota:<db>": the gateway
 *                                 drops that entry from its cache at once
 */
export interface Keys {
  readonly prefix: string;
  ports(): string;
  route(db: string, table: string): string;
  tables(): string;
  lock(program: string): string;
  token(hash: string): string;
  user(username: string): string;
  users(): string;
  invalidateChannel(): string;
  supervisorEvents(): string;
  incidents(program: string): string;
  epoch(): string;
  incidentOnce(id: string): string;
  /** Hash `<db>:<table>` -> seconds: the Retry-After the gateway gives with a table's CHANNEL_FULL. */
  retryAfter(): string;
  revokedControlTokens(): string;
  operation(id: string): string;
  operations(): string;
  idempotency(subject: string, key: string): string;
  events(): string;
  audit(): string;
  auditRefused(): string;
  /** The traces of one table's requests whose t0 fell in one minute (epoch ms / 60000). */
  traces(db: string, table: string, minute: number): string;
  traceTakes(db: string, table: string): string;
  quotas(): string;
  /** What the gateway counted for each db in one minute (epoch s / 60). */
  usage(minute: number): string;
}

export function makeKeys(prefix: string): Keys {
  return {
    prefix,
    ports: () => `${prefix}ports`,
    route: (db, table) => `${prefix}route:${db}:${table}`,
    tables: () => `${prefix}tables`,
    lock: (program) => `${prefix}lock:${program}`,
    token: (hash) => `${prefix}token:${hash}`,
    user: (username) => `${prefix}user:${username}`,
    users: () => `${prefix}users`,
    invalidateChannel: () => `${prefix}invalidate`,
    supervisorEvents: () => `${prefix}supervisor-events`,
    incidents: (program) => `${prefix}incidents:${program}`,
    epoch: () => `${prefix}epoch`,
    incidentOnce: (id) => `${prefix}incident-once:${id}`,
    retryAfter: () => `${prefix}retry-after`,
    revokedControlTokens: () => `${prefix}revoked-control-tokens`,
    operation: (id) => `${prefix}operation:${id}`,
    operations: () => `${prefix}operations`,
    idempotency: (subject, key) => `${prefix}idempotency:${subject}:${key}`,
    events: () => `${prefix}events`,
    audit: () => `${prefix}audit`,
    auditRefused: () => `${prefix}audit-refused`,
    traces: (db, table, minute) => `${prefix}traces:${db}:${table}:${minute}`,
    traceTakes: (db, table) => `${prefix}trace-takes:${db}:${table}`,
    quotas: () => `${prefix}quotas`,
    usage: (minute) => `${prefix}usage:${minute}`,
  };
}
