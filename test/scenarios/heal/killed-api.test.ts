import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths, standInProgram } from '../../../src/store/paths.js';
import { type Config } from '../../../src/config.js';
import { PROJECT_ROOT } from '../../../src/config-kinds.js';
import { loadConfig } from '../../../src/config-load.js';
import { makeKeys } from '../../../src/redis/keys.js';
import { XmlRpcSupervisorDriver } from '../../../src/supervisor/xmlrpc-driver.js';
import { javaProcessesMentioning } from '../../helpers/flume.js';
import { REDIS_URL, dropPrefix, tempDir } from '../../helpers/harness.js';
import { TestSupervisord } from '../../helpers/supervisord.js';
import { freePort, until } from '../../helpers/wait.js';
import { portRange } from '../../helpers/ports.js';

// The API as it runs in production: a process under supervisord, which restarts it when it dies.
const SECRET = randomBytes(24).toString('hex');
const prefix = `test:${randomBytes(6).toString('hex')}:`;
const keys = makeKeys(prefix);
let dir: string;
let sup: TestSupervisord;
let driver: XmlRpcSupervisorDriver;
let redis: Redis;
let base: string;
let token: string;
let config: Config;

async function request(method: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(120_000) });
    return { status: r.status, body: (await r.json().catch(() => ({}))) as Record<string, unknown> };
  } catch {
    return { status: 0, body: {} }; // the API is down (killed, or restarting)
  }
}
const call = async (method: string, path: string) => (await request(method, path)).status;

/** No JVM without a program, no program without metadata, no reservation or route without an agent. */
async function orphans(): Promise<string[]> {
  const found: string[] = [];
  const programs = readdirSync(config.confDir).filter((f) => f.endsWith('.conf')).map((f) => f.slice(0, -5));
  const metas = readdirSync(config.servicesDir).filter((p) => existsSync(agentPaths(config, p).metaFile));
  for (const p of programs) if (!metas.includes(p)) found.push(`program without metadata: ${p}`);
  for (const p of metas) if (!programs.includes(p)) found.push(`metadata without program: ${p}`);
  const loaded = (await driver.infoAll()).map((i) => i.name).filter((n) => n.startsWith('flume-'));
  for (const p of loaded) if (!programs.includes(p)) found.push(`supervisord runs a program with no file: ${p}`);
  for (const p of readdirSync(config.servicesDir).concat(readdirSync(config.varDir).filter((d) => d.startsWith('flume-')))) {
    if (!loaded.includes(p) && javaProcessesMentioning(agentPaths(config, p).flumeConf).length) found.push(`JVM without a program: ${p}`);
  }
  const owners = new Set(Object.values(await redis.hgetall(keys.ports())));
  for (const o of owners) if (!metas.includes(o)) found.push(`port reserved for no agent: ${o}`);
  for (const k of await redis.keys(`${prefix}route:*`)) {
    const [db, table] = k.slice(`${prefix}route:`.length).split(':');
    if (!metas.includes(`flume-${db}-${table}`)) found.push(`route without agent: ${db}.${table}`);
  }
  return found;
}

beforeAll(async () => {
  dir = tempDir('crash');
  const port = await freePort();
  const env = {
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    API_PORT: String(port),
    JWT_SECRET: SECRET,
    LOG_LEVEL: 'warn',
    PORT_RANGE: await portRange(),
    AGENT_HEAP: '128m',
    AGENT_READY_TIMEOUT_MS: '120000',
  };
  config = loadConfig({ ...env, STATE_DIR: dir });
  sup = new TestSupervisord(dir, { redisUrl: REDIS_URL, prefix }, env);
  await sup.start();
  driver = new XmlRpcSupervisorDriver(sup.socket);
  redis = new Redis(REDIS_URL);
  base = `http://127.0.0.1:${port}`;
  await until(() => fetch(`${base}/readyz`).then((r) => r.ok, () => false), (ok) => ok, 60_000);
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src', 'cli', 'token.ts'), '--role', 'admin'], {
    env: { ...process.env, ...env, STATE_DIR: dir },
    cwd: PROJECT_ROOT,
  });
  token = stdout.trim();
});
afterAll(async () => {
  await sup?.stop();
  await driver?.close();
  if (redis) {
    await dropPrefix(redis, prefix);
    redis.disconnect();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('kill -9 of the API in the middle of an operation', () => {
  // Each case: what the table needs first, the operation to interrupt, and a call that must be
  // accepted again once the dead process's lock is gone (any answer but 409 BUSY or no answer).
  const cases = [
    { op: 'create', setup: [], method: 'POST', path: 'create', after: 'start' },
    { op: 'stop', setup: ['create'], method: 'POST', path: 'stop', after: 'stop' },
    { op: 'restart', setup: ['create'], method: 'POST', path: 'restart', after: 'stop' },
    { op: 'delete', setup: ['create'], method: 'DELETE', path: '', after: 'start' },
  ] as const;

  for (const c of cases) {
    it(`during ${c.op}: the table is usable again within the lock's lease, and nothing is orphaned`, async () => {
      const table = `crash_${c.op}`;
      const url = `/v1/api/ops/${table}${c.path ? `/${c.path}` : ''}`;
      await until(() => fetch(`${base}/readyz`).then((r) => r.ok, () => false), (ok) => ok, 60_000);
      for (const s of c.setup) expect(await call('POST', `/v1/api/ops/${table}/${s}`)).toBe(201);

      const pending = call(c.method, url);
      const held = await until(() => redis.get(keys.lock(`flume-ops-${table}`)), (v) => v !== null && v.includes(`"${c.op}"`), 30_000, 10);
      expect(held).toContain(`"operation":"${c.op}"`);
      const api = await driver.info('api');
      process.kill(api.pid, 'SIGKILL');
      const crashedAt = Date.now();
      expect(await pending).toBe(0); // the caller got no answer

      // Nothing while the API restarts, then 409 while the dead process's lock lives, saying
      // whose it is; then usable.
      const after = c.after === 'start' ? `/v1/api/ops/${table}/start` : `/v1/api/ops/${table}/stop`;
      const first = await until(() => request('POST', after), (r) => r.status !== 0, 60_000, 100);
      if (first.status === 409) {
        expect(first.body).toMatchObject({ error: 'BUSY', details: { operation: c.op } });
        expect(String(first.body.message)).toContain(`${c.op} in progress since`);
      }
      // Measured to when the first accepted call was sent (a start then waits for its JVM).
      let sentAt = 0;
      const status = await until(
        () => {
          sentAt = Date.now();
          return call('POST', after);
        },
        (s) => s !== 0 && s !== 409,
        60_000,
        200,
      );
      const usableMs = sentAt - crashedAt;
      console.log(`kill -9 during ${c.op}: table usable again after ${usableMs} ms (answer ${status})`);
      expect([200, 404]).toContain(status);
      expect((await driver.info('api')).pid).not.toBe(api.pid);

      // The restarted API finishes what the dead one left: nothing orphaned.
      const left = await until(orphans, (o) => o.length === 0, 30_000, 500);
      expect(left).toEqual([]);
    });
  }

  it('during a restart whose stand-in takes the events: the next API moves the route back once the agent accepts, and the stand-in drains and goes', async () => {
    await until(() => fetch(`${base}/readyz`).then((r) => r.ok, () => false), (ok) => ok, 60_000);
    expect(await call('POST', '/v1/api/ops/crash_switch/create')).toBe(201);
    const meta = JSON.parse(readFileSync(agentPaths(config, 'flume-ops-crash_switch').metaFile, 'utf8')) as { port: number };
    const standIn = agentPaths(config, standInProgram('flume-ops-crash_switch'));
    const pending = call('POST', '/v1/api/ops/crash_switch/restart');
    // Killed while the route points to the stand-in.
    const phase = () => (existsSync(standIn.metaFile) ? (JSON.parse(readFileSync(standIn.metaFile, 'utf8')) as { phase: string; port: number }) : null);
    const serving = await until(phase, (p) => p?.phase === 'serving', 60_000, 10);
    expect(await redis.get(keys.route('ops', 'crash_switch'))).toMatch(new RegExp(`^127\\.0\\.0\\.1:${serving!.port} `));
    process.kill((await driver.info('api')).pid, 'SIGKILL');
    expect(await pending).toBe(0);
    // The next API: the route back on the agent's own port, the stand-in gone with its ports.
    const route = await until(() => redis.get(keys.route('ops', 'crash_switch')), (v) => v?.startsWith(`127.0.0.1:${meta.port} `) === true, 60_000, 200);
    expect(route).toMatch(new RegExp(`^127\\.0\\.0\\.1:${meta.port} `));
    await until(() => existsSync(standIn.serviceDir) || existsSync(standIn.programFile), (x) => !x, 60_000, 200);
    expect(Object.values(await redis.hgetall(keys.ports()))).not.toContain(standInProgram('flume-ops-crash_switch'));
    expect((await driver.infoAll()).map((i) => i.name)).not.toContain(standInProgram('flume-ops-crash_switch'));
    expect(await until(orphans, (o) => o.length === 0, 30_000, 500)).toEqual([]);
  });
});
