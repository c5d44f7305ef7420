import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Role } from '../../src/auth/roles.js';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { buildApp } from '../../src/app.js';
import type { AgentService } from '../../src/agents/agent-service.js';
import type { Reconciler } from '../../src/recovery/reconciler.js';
import type { FleetModel } from '../../src/fleet/fleet-model.js';
import type { IncidentService } from '../../src/incidents/incident-service.js';
import { type Config } from '../../src/config.js';
import { loadConfig } from '../../src/config-load.js';
import { createRedis } from '../../src/redis/client.js';
import { makeKeys, type Keys } from '../../src/redis/keys.js';
import type { SupervisorDriver } from '../../src/supervisor/driver.js';
import { createSupervisorDriver } from '../../src/supervisor/index.js';
import type { AgentStatus } from '../../src/resources/agent-status.js';
import type { Incident } from '../../src/resources/incident.js';
import { programName } from '../../src/resources/table.js';
import type { AgentMeta } from '../../src/store/agent-store.js';
import { agentPaths } from '../../src/store/paths.js';
import { TestSupervisord } from './supervisord.js';
import { until } from './wait.js';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `flume-svc-${tag}-`));
}

/** Deletes every key under a test's random prefix (never FLUSHALL a shared Redis). */
export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

export interface Harness {
  app: FastifyInstance;
  agents: AgentService;
  fleet: FleetModel;
  reconciler: Reconciler;
  incidents: IncidentService;
  config: Config;
  redis: Redis;
  keys: Keys;
  driver: SupervisorDriver;
  supervisord: TestSupervisord;
  /** A control-API token signed with the harness's secret. */
  tokenFor(role: Role, dbs?: string[], expiresIn?: string): string;
  /** app.inject with an admin token, unless the request sets its own authorization header. */
  inject(opts: InjectOptions): Promise<LightMyRequestResponse>;
  /** One call as an admin, or with `token` (null: none); `body` is sent as JSON. */
  api(method: Method, url: string, body?: unknown, token?: string | null): Promise<LightMyRequestResponse>;
  /** POST .../<op> of a table (create takes a body). */
  lifecycle(db: string, table: string, op: 'create' | 'start' | 'stop' | 'restart' | 'pause' | 'resume', body?: unknown): Promise<LightMyRequestResponse>;
  /** A table's status as the API answers it (`fresh`: observed now); throws unless 200. */
  status(db: string, table: string, opts?: { fresh?: boolean }): Promise<AgentStatus>;
  /** Polls the table's fresh status until `ok` holds (default: up to 60 s). */
  waitFor(db: string, table: string, ok: (s: AgentStatus) => boolean, timeoutMs?: number): Promise<AgentStatus>;
  /** A table's incidents, newest first. */
  incidentsOf(db: string, table: string): Promise<Incident[]>;
  /** The agent's metadata on disk (services/<program>/agent.json). */
  meta(db: string, table: string): AgentMeta;
  close(): Promise<void>;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * The whole service on real parts: a temp state dir, its own supervisord, Redis under a random
 * prefix, real Flume agents. `env` overrides settings (e.g. PORT_RANGE per test file).
 */
export async function startHarness(env: Record<string, string> = {}, prepare?: (stateDir: string) => void): Promise<Harness> {
  const dir = tempDir('svc');
  prepare?.(dir);
  const config = loadConfig({
    STATE_DIR: dir,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${randomBytes(6).toString('hex')}:`,
    AGENT_HEAP: '128m',
    AGENT_READY_TIMEOUT_MS: '120000',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const supervisord = new TestSupervisord(dir, { redisUrl: config.REDIS_URL, prefix: config.REDIS_KEY_PREFIX, tlsCaFile: config.REDIS_TLS_CA_FILE });
  await supervisord.start();
  const redis = createRedis(config.REDIS_URL, config.REDIS_TLS_CA_FILE);
  await redis.connect();
  const driver = createSupervisorDriver(config);
  const log = pino({ level: config.LOG_LEVEL });
  const { app, agents, fleet, reconciler, incidents, start } = buildApp({ config, log, redis, driver });
  await app.ready();
  await start();
  const tokenFor = (role: Role, dbs?: string[], expiresIn = '1h') =>
    app.jwt.sign({ sub: `test-${role}`, role, jti: randomUUID(), ...(dbs ? { dbs } : {}) }, { expiresIn });
  const admin = tokenFor('admin');
  const api: Harness['api'] = (method, url, body, token = admin) =>
    app.inject({
      method,
      url,
      headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  const status: Harness['status'] = async (db, table, opts = {}) => {
    const r = await api('GET', `/v1/api/${db}/${table}/status${opts.fresh ? '?fresh=true' : ''}`);
    if (r.statusCode !== 200) throw new Error(`status of ${db}.${table}: ${r.statusCode} ${r.body}`);
    return r.json() as AgentStatus;
  };
  return {
    tokenFor,
    inject: (opts) =>
      app.inject({ ...opts, headers: { authorization: `Bearer ${admin}`, ...(opts.headers ?? {}) } }),
    api,
    lifecycle: (db, table, op, body) => api('POST', `/v1/api/${db}/${table}/${op}`, body),
    status,
    waitFor: (db, table, ok, timeoutMs = 60_000) => until(() => status(db, table, { fresh: true }), ok, timeoutMs, 200),
    incidentsOf: async (db, table) => ((await api('GET', `/v1/api/${db}/${table}/incidents`)).json() as { incidents: Incident[] }).incidents,
    meta: (db, table) => JSON.parse(readFileSync(agentPaths(config, programName({ db, table })).metaFile, 'utf8')) as AgentMeta,
    app,
    agents,
    fleet,
    reconciler,
    incidents,
    config,
    redis,
    keys: makeKeys(config.REDIS_KEY_PREFIX),
    driver,
    supervisord,
    async close() {
      await app.close();
      await supervisord.stop();
      await driver.close();
      await dropPrefix(redis, config.REDIS_KEY_PREFIX);
      redis.disconnect();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
