import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { flagSetting } from './flag.js';
import { DEFAULT_JVM_OPTIONS, defaultMaxHeap, heapSize, HOST_JVM_OPTION, hostSetting, pathSetting, portRange, PROJECT_ROOT, SYSTEM_CA_FILE } from './config-kinds.js';

/**
 * Every setting the service reads, from the environment, in one place.
 * `process.env` is read nowhere else.
 */
export const configSchema = z.object({
  API_HOST: hostSetting().default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(0).max(65535).default(8001),
  /**
   * Host names (with or without a port) the API answers for, comma-separated; '*' answers any.
   * Anything else is 421: a page on another site that rebinds its DNS name to this address
   * cannot read the API. Loopback names are always included.
   */
  API_ALLOWED_HOSTS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean))
    .refine((hosts) => hosts.every((h) => h === '*' || /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/.test(h)), 'must be comma-separated host names or addresses, or *'),
  /** A request's headers must arrive within this long, and the whole request within API_REQUEST_TIMEOUT_MS (event streams then stay open). */
  API_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(10_000),
  API_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  /** Open event streams (GET /v1/api/events, logs?follow) one control token may hold. */
  API_MAX_STREAMS_PER_TOKEN: z.coerce.number().int().min(1).max(1000).default(10),
  /** A stream whose client leaves more than this unread is dropped. */
  API_STREAM_MAX_BUFFER_BYTES: z.coerce.number().int().min(16_384).default(1_048_576),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * The proxies in front of the API whose X-Forwarded-For is believed (the client's address in
   * the audit trail, refused-call counts and stream limits): empty (the default) believes none;
   * comma-separated addresses or CIDRs (e.g. 127.0.0.1,10.0.0.0/8).
   */
  TRUST_PROXY: z
    .string()
    .default('')
    .refine((v) => v === '' || v.split(',').every((p) => /^[0-9A-Fa-f:.]{2,45}(\/\d{1,3})?$/.test(p.trim())), 'must be empty or comma-separated addresses/CIDRs, e.g. 127.0.0.1,10.0.0.0/8')
    .transform((v): string[] | false => (v === '' ? false : v.split(',').map((p) => p.trim()))),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  /**
   * A file holding the Redis password (used when REDIS_URL names none): how the embedded Redis's
   * generated password reaches the API and the gateway without being in any environment.
   */
  REDIS_PASSWORD_FILE: pathSetting().optional(),
  /** rediss:// only: the PEM file of the CA that signed Redis's certificate (API, event listener and gateway); unset: the system's roots. */
  REDIS_TLS_CA_FILE: z.string().regex(/^\/[A-Za-z0-9_.\/-]+$/, 'must be an absolute path of letters, digits and _ . / -').optional(),
  REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9:_.-]{1,64}$/).default('flume:'),
  /** Holds conf.d/ (supervisor programs), services/ (agent files) and var/ (channels, outputs, sockets). */
  STATE_DIR: pathSetting().default(PROJECT_ROOT),
  SUPERVISOR_SOCKET: pathSetting().optional(),
  SUPERVISOR_TRANSPORT: z.enum(['xmlrpc', 'supervisorctl']).default('xmlrpc'),
  /** Words of the command that runs supervisorctl, split on spaces, e.g. "sudo -n supervisorctl". */
  SUPERVISORCTL_COMMAND: z
    .string()
    .default('supervisorctl')
    .refine((c) => c.split(' ').filter(Boolean).length > 0 && c.split(' ').filter(Boolean).every((w) => /^[A-Za-z0-9_.\/+@=-]+$/.test(w)), 'must be words of letters, digits and _ . / + @ = - separated by spaces'),
  PORT_RANGE: portRange.prefault('10000-60000'),
  JAVA_BIN: pathSetting().default('java'),
  FLUME_LIB_DIR: pathSetting().default(resolve(PROJECT_ROOT, 'flume', 'lib')),
  /** The hdfs sink's jars (Flume's HDFS sink, Hadoop's client): fetched by WITH_HDFS=1 scripts/up.sh. */
  FLUME_HDFS_LIB_DIR: pathSetting().default(resolve(PROJECT_ROOT, 'flume', 'hdfs', 'lib')),
  /** Extra class path entries for agents, ':'-separated. */
  FLUME_EXTRA_CLASSPATH: z
    .string()
    .default('')
    .refine((c) => c.split(':').filter(Boolean).every((e) => /^[A-Za-z0-9_.\/+@*-]+$/.test(e)), "must be ':'-separated paths of letters, digits and _ . / + @ - * (no spaces or quotes)"),
  AGENT_HEAP: heapSize().default('256m'),
  /** JVM options of every agent (a table's own `jvm.options` replace them), space-separated. */
  AGENT_JVM_OPTIONS: z
    .string()
    .default(DEFAULT_JVM_OPTIONS)
    .transform((s) => s.split(/\s+/).filter(Boolean))
    .refine((o) => o.every((x) => HOST_JVM_OPTION.test(x)), 'each option must be -XX:..., -Xss/-Xms/-Xmn<size>'),
  /** The largest heap a table may ask for (jvm.heap); default an eighth of the host's memory, 256m-4g. */
  AGENT_MAX_HEAP: heapSize().default(defaultMaxHeap),
  /**
   * How agents start: `flume-service` (flume/launcher/, built by the set-up: the channel opens
   * before the source starts, without Flume's 500 ms poll) or `flume` (Flume's own Application).
   * flume-service falls back to flume while its jar is not in FLUME_LIB_DIR.
   */
  AGENT_LAUNCHER: z.enum(['flume-service', 'flume']).default('flume-service'),
  /** The AppCDS archive agents share (scripts/build-cds.sh); used when the file exists, '' to never use one. */
  AGENT_CDS_ARCHIVE: z.union([z.literal(''), pathSetting()]).default(resolve(PROJECT_ROOT, 'flume', 'flume.jsa')),
  AGENT_READY_TIMEOUT_MS: z.coerce.number().int().min(1000).default(60000),
  /**
   * JVM starts the host runs at once; the others wait their turn in order (each one's ready
   * timeout begins when it starts). Default: the cores (at least 2). One JVM starting alone
   * keeps 1.2 cores busy, and bench/start-queue.ts measured one start per core shorter in
   * total and first to answer than twice as many (bench/README.md, "Starting many at once").
   */
  AGENT_START_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(() => Math.max(2, availableParallelism())),
  /**
   * true (default): a restart or config change of a running agent first starts a stand-in (a
   * second JVM with the new revision, its own port and channel) and moves the table's route to
   * it, so senders are never refused while the agent restarts (src/agents/stand-in.ts). false:
   * restarts in place (503 AGENT_DOWN for the seconds a JVM takes to start).
   */
  AGENT_STAND_IN: flagSetting(true),
  /**
   * true (default): an agent's source takes events only from the gateway (the header
   * X-Flume-Intake-Key with the agent's key, which its route holds): another local process that
   * finds its port is answered 400. false: any process on the host may post to an agent's port,
   * as in the original design (while senders or the original design's gateway still post to the
   * ports of adopted agents, docs/operations.md#coming-from-the-original-design). Takes effect at
   * each agent's next start.
   */
  AGENT_INTAKE_KEY: flagSetting(true),
  /** var/audit.log rotates at this size (5 files kept). */
  AUDIT_LOG_MAX_BYTES: z.coerce.number().int().min(1024).default(10 * 1024 * 1024),
  /** Config revisions kept per agent (services/<program>/revisions/); the oldest are pruned. */
  CONFIG_REVISIONS_KEPT: z.coerce.number().int().min(2).max(1000).default(20),
  /**
   * true: a config change (PUT/PATCH .../config, rollback, PUT /v1/api/:db/:table on an existing
   * agent) must carry If-Match with the revision it read (the ETag), else 428. false (default):
   * If-Match is checked when sent, and a change without it applies as before.
   */
  CONFIG_REQUIRE_IF_MATCH: flagSetting(false),
  /** How long an Idempotency-Key's answer is kept and replayed (kept in Redis: a Redis loss forgets it). */
  IDEMPOTENCY_WINDOW_SECONDS: z.coerce.number().int().min(60).max(7 * 86400).default(86400),
  /** Events kept for SSE clients that reconnect with Last-Event-ID (in Redis, per host). */
  API_EVENTS_REPLAY: z.coerce.number().int().min(100).max(1_000_000).default(10_000),
  /** A table lock outlives a crashed API process by at most this; its live holder extends it. */
  LOCK_LEASE_MS: z.coerce.number().int().min(1000).max(60000).default(6000),
  /** Signs control-API JWTs. Unset: generated once into var/jwt-secret (0600). */
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Keys ingestion-token hashes (HMAC). Unset: generated once into var/token-hash-key (0600). */
  TOKEN_HASH_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  /** How long a rotated-out ingestion token stays valid next to its successor. */
  TOKEN_GRACE_SECONDS: z.coerce.number().int().min(0).max(7 * 86400).default(300),
  GATEWAY_HOST: hostSetting().default('127.0.0.1'),
  GATEWAY_PORT: z.coerce.number().int().min(1).max(65535).default(8080),
  /**
   * TLS at the gateway: the PEM certificate (chain) and its key. Both set: GATEWAY_PORT speaks
   * HTTPS only (HTTP/1.1, keep-alive, TLS 1.2 and 1.3); unset: plain HTTP as before.
   */
  GATEWAY_TLS_CERT_FILE: z.string().regex(/^\/[A-Za-z0-9_.\/-]+$/, 'must be an absolute path of letters, digits and _ . / -').optional(),
  GATEWAY_TLS_KEY_FILE: z.string().regex(/^\/[A-Za-z0-9_.\/-]+$/, 'must be an absolute path of letters, digits and _ . / -').optional(),
  /**
   * The gateway's access log (a line per ingest request: GBs per hour at full rate): off (the
   * default); stdout: into var/log/gateway.log, which supervisord rotates by size; file:
   * var/log/gateway-access.log, not rotated by the service (for debugging; USR1 reopens it).
   */
  GATEWAY_ACCESS_LOG: z.enum(['off', 'stdout', 'file']).default('off'),
  /** The gateway's own Prometheus metrics (GET /metrics), on 127.0.0.1 at this port; 0 (the default): none. */
  GATEWAY_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** With TLS: also plain HTTP on this port, on 127.0.0.1 only (senders on the same host); 0: none. */
  GATEWAY_PLAIN_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  /** Largest ingest body the gateway accepts (nginx size syntax). */
  GATEWAY_MAX_BODY: z.string().regex(/^\d+[kKmM]?$/, 'must look like 1m or 512k').default('1m'),
  /** Comma-separated URLs that receive every incident as a JSON POST. */
  WEBHOOK_URLS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((u) => u.trim()).filter(Boolean))
    .refine((urls) => urls.every((u) => /^https?:\/\/\S+$/.test(u)), 'must be comma-separated http(s) URLs'),
  /** Attempts after the first, backing off from WEBHOOK_RETRY_BASE_MS (doubling, at most 10 min apart): 10 spans about 17 min. */
  WEBHOOK_RETRIES: z.coerce.number().int().min(0).max(30).default(10),
  WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(100).max(600_000).default(1000),
  /** Signs every webhook body (webhook-signature, X-Flume-Signature). Unset: generated once into var/webhook-secret (0600). */
  WEBHOOK_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** This many unexpected exits within CRASH_LOOP_WINDOW_SECONDS make a crash loop. */
  CRASH_LOOP_EXITS: z.coerce.number().int().min(2).default(3),
  CRASH_LOOP_WINDOW_SECONDS: z.coerce.number().int().min(10).default(300),
  /**
   * Agents that heal (src/recovery/healer.ts): a running agent whose source does not accept
   * events, or whose sink failed every write for HEAL_SINK_FAILING_SECONDS (0: never counts),
   * raises an incident at once and is restarted after HEAL_GRACE_SECONDS unless it recovers;
   * each further restart within CRASH_LOOP_WINDOW_SECONDS waits twice as long, and after
   * HEAL_RESTARTS of them (0: never restart) the service leaves it to an operator.
   */
  HEAL_GRACE_SECONDS: z.coerce.number().min(1).max(3600).default(30),
  HEAL_RESTARTS: z.coerce.number().int().min(0).max(20).default(3),
  HEAL_SINK_FAILING_SECONDS: z.coerce.number().int().min(0).max(86_400).default(600),
  /** An agent turns degraded when its channel's disk has less than minimumRequiredSpace plus this left. */
  CHANNEL_SPACE_MARGIN_BYTES: z.coerce.number().int().min(0).default(1024 ** 3),
  /** Full comparison of desired and actual state, for events supervisord dropped. */
  RESYNC_INTERVAL_MS: z.coerce.number().int().min(500).default(10000),
  /** How often the fleet model observes every agent (supervisord, source probe, counters). */
  FLEET_REFRESH_MS: z.coerce.number().int().min(200).max(60000).default(2000),
  /**
   * How often a quiet agent's Flume counters are read: one whose channel is empty and whose
   * counters did not move since the read before (each read costs the JVM ~6 ms of CPU).
   * Agents with events moving, and every status asked with ?fresh=true, are read every time.
   * 0: every refresh.
   */
  FLEET_QUIET_COUNTERS_MS: z.coerce.number().int().min(0).max(600000).default(10000),
  /** This API process's name among others sharing the Redis (its incident-stream consumer). */
  INSTANCE_NAME: z.string().regex(/^[A-Za-z0-9_.:@-]{1,100}$/).optional(),
  /** First wait before restarting an agent stuck in FATAL; doubles per attempt, up to 10 min. */
  FATAL_RETRY_BASE_SECONDS: z.coerce.number().min(0.5).default(10),
  /** How long the gateway caches a token or route lookup; changes invalidate it at once. */
  GATEWAY_CACHE_TTL_MS: z.coerce.number().int().min(0).max(60000).default(2000),
  /** While Redis does not answer, token and route lookups the gateway cached keep working this long (0: refuse at once). */
  GATEWAY_STALE_SECONDS: z.coerce.number().int().min(0).max(3600).default(60),
  /** Events one ingest request may carry; a table's transactionCapacity lowers it. Over it: 413 TOO_MANY_EVENTS. */
  GATEWAY_MAX_EVENTS: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  /**
   * Requests with an unknown token one client address may make per second; past it, until the
   * next second, only tokens the gateway already holds as valid get through (429 RATE_LIMITED).
   */
  GATEWAY_BAD_TOKEN_LIMIT: z.coerce.number().int().min(1).default(20),
  /**
   * Connection floods (one address opening thousands of connections that never finish a request):
   * a request's headers must arrive within GATEWAY_HEADER_TIMEOUT_SECONDS and each read of its body
   * within GATEWAY_BODY_TIMEOUT_SECONDS, or the connection is closed; each worker takes up to
   * GATEWAY_WORKER_CONNECTIONS (default: what the host's open-file limit allows, at most 65,536).
   */
  GATEWAY_HEADER_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(300).default(5),
  GATEWAY_BODY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(300).default(10),
  GATEWAY_WORKER_CONNECTIONS: z.coerce.number().int().min(256).max(1_048_576).optional(),
  /**
   * Ingest requests one client address may have in progress at once (0: no limit); over it: 429
   * TOO_MANY_CONNECTIONS. Behind a load balancer (every sender one address), raise it.
   */
  GATEWAY_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(0).max(1_000_000).default(512),
  /** Ingest requests per second one client address may make (a second's worth of burst; 0: no limit); over it: 429 RATE_LIMITED. */
  GATEWAY_REQUESTS_PER_ADDRESS: z.coerce.number().int().min(0).max(10_000_000).default(40_000),
  /**
   * Requests per second one ingestion token may make through the gateway (0: no limit); over it:
   * 429 with Retry-After. The default is twice what one table took with group commit
   * (bench/group-commit.ts: 9,900/s on 2 cores), so the limit stops a runaway sender, never the
   * throughput an agent can take.
   */
  GATEWAY_RATE_LIMIT: z.coerce.number().int().min(0).default(20_000),
  /**
   * Group commit: requests for one table that reach one gateway worker within this many ms go to
   * the agent as one Flume batch (one channel transaction, one fsync); each is answered only when
   * that batch committed. 0: every request goes on its own.
   */
  GATEWAY_BATCH_WINDOW_MS: z.coerce.number().min(0).max(100).default(2),
  /**
   * The fair share between dbs: while more ingest requests than this are in flight at the gateway
   * (all workers) and two dbs or more send, a db with its share of them in flight (this / the
   * dbs sending) waits GATEWAY_FAIR_SHARE_WAIT_MS for one to finish, then gets 429
   * OVER_FAIR_SHARE; a db below its share always gets in at once.
   * 0: no fair share (quotas still hold). docs/gateway.md#fair-share-between-dbs.
   */
  GATEWAY_FAIR_SHARE_IN_FLIGHT: z.coerce.number().int().min(0).max(1_000_000).default(128),
  /** How long a request of a db at its fair share waits for one of its own to finish before 429 OVER_FAIR_SHARE. */
  GATEWAY_FAIR_SHARE_WAIT_MS: z.coerce.number().int().min(0).max(10_000).default(500),
  /**
   * Request traces (GET /v1/api/:db/:table/trace/:requestId): how long the gateway keeps each in
   * Redis, and how many requests a second it traces at most (spread over its workers; past it a
   * request goes untraced and is counted). About 170 bytes of Redis a trace: the defaults hold at
   * most ~100 MB. 0 for either: no traces.
   */
  GATEWAY_TRACE_SECONDS: z.coerce.number().int().min(0).max(86_400).default(600),
  GATEWAY_TRACE_PER_SECOND: z.coerce.number().int().min(0).max(1_000_000).default(1000),
  /**
   * Many hosts (docs/cluster.md): etcd's client URLs, comma-separated. Empty (the default): one
   * host, no etcd. Every host of a cluster runs the same stack with the same ETCD_ENDPOINTS.
   */
  ETCD_ENDPOINTS: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((e) => e.trim()).filter(Boolean))
    .refine((l) => l.every((e) => /^https?:\/\/[A-Za-z0-9.-]+:\d{1,5}$/.test(e)), 'must be comma-separated http(s)://host:port URLs'),
  /**
   * Many hosts: how this host proves itself to etcd, which must be protected (docs/cluster.md):
   * https:// endpoints whose certificates ETCD_CA_FILE signed (default: the system's roots), and a
   * client certificate (ETCD_CERT_FILE, ETCD_KEY_FILE: etcd's --client-cert-auth) and/or a user
   * (ETCD_USERNAME, its password in ETCD_PASSWORD_FILE: etcd's `auth enable`).
   */
  ETCD_CA_FILE: pathSetting().optional(),
  ETCD_CERT_FILE: pathSetting().optional(),
  ETCD_KEY_FILE: pathSetting().optional(),
  ETCD_USERNAME: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'must be 1-64 letters, digits, _ . @ -').optional(),
  ETCD_PASSWORD_FILE: pathSetting().optional(),
  /**
   * true: many hosts on an etcd that anyone who reaches it may write (plain http, or no client
   * certificate or user). Without it such a cluster refuses to start: a writer of an unprotected
   * etcd can stop the cluster's tables (its records still cannot send tokens or events elsewhere).
   */
  ETCD_ALLOW_UNPROTECTED: flagSetting(false),
  /** This host's name in the cluster (default: the machine's host name): letters, digits, '-', '_', '.'. */
  NODE_ID: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, _ . - (starting with a letter or digit)').optional(),
  /** The address other hosts reach this host's API and gateway on (an IP or a DNS name); the API and the gateway must listen on it. */
  NODE_ADDRESS: z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, 'must be an IP address or a host name').default('127.0.0.1'),
  /** Where in etcd this cluster keeps its keys (several clusters may share one etcd). */
  ETCD_PREFIX: z.string().regex(/^\/[A-Za-z0-9_./-]{0,62}\/$/, 'must start and end with /').default('/flume-service/'),
  /** A host's presence lease: when it stops renewing, others see it gone within about this long (it fences itself at 2/3 of it). */
  NODE_LEASE_TTL_SECONDS: z.coerce.number().int().min(2).max(60).default(5),
  /**
   * Many hosts: how long a host out of touch with etcd keeps taking events for its own tables
   * (default: 2/3 of the TTL, when its lease fences). Longer rides out an etcd outage; a table
   * moved off such a host then opens on its new host only once this long has surely passed.
   */
  FENCE_AFTER_SECONDS: z.coerce.number().min(1).max(3600).optional(),
  /**
   * Many hosts: how long an API waits for a table's owner to carry out an operation before it
   * answers 202 with the operation under way (default: the ready timeout plus a minute).
   */
  CLUSTER_WAIT_MS: z.coerce.number().int().min(1000).max(3_600_000).optional(),
});

export type Config = z.infer<typeof configSchema> & {
  INSTANCE_NAME: string;
  NODE_ID: string;
  confDir: string;
  servicesDir: string;
  varDir: string;
  supervisorSocket: string;
};
