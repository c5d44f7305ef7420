/**
 * A hundred real agents on one host, as a user runs them: the API as its own process
 * (dist/server.js) under its own supervisord, the real nginx + Lua gateway, default settings.
 *   1. create BENCH_AGENTS agents, BENCH_CONCURRENCY at a time, each answered once it accepts;
 *      then one event through the gateway into every one of them;
 *   2. idle: each agent's RSS and PSS, the agents' and the API's CPU over 30 s, the API's RSS;
 *   3. GET /services under 10 pollers, back to back and paced, beside the floor (GET /healthz)
 *      in the same run;
 *   4. stop all at once (POST /v1/api/bulk/stop {"all":true}) and start all again, each until
 *      the operation is done; every JVM gone, then every agent accepting an event again;
 *   5. how many agents this machine could hold, from the figures above.
 * Run: npm run bench:hundred   (BENCH_AGENTS=100 BENCH_CONCURRENCY=4; needs about 8 GB of RAM)
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pLimit from 'p-limit';
import { loadConfig } from '../src/config-load.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { pidAlive } from '../test/helpers/flume.js';
import { REDIS_URL, dropPrefix, tempDir } from '../test/helpers/harness.js';
import { TestSupervisord } from '../test/helpers/supervisord.js';
import { freePort, until } from '../test/helpers/wait.js';
import { autocannon, cpuSeconds, f1, pacedPollers, pssMiB, rssMiB, run, startApi, type Load } from './lib.js';

const N = Number(process.env.BENCH_AGENTS ?? 100);
const C = Number(process.env.BENCH_CONCURRENCY ?? 4);
const IDLE_SECONDS = 30;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const meminfo = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024;

const dir = tempDir('bench-hundred');
const prefix = `bench:${randomBytes(4).toString('hex')}:`;
const supervisord = new TestSupervisord(dir, { redisUrl: REDIS_URL, prefix });
const redis = new Redis(REDIS_URL);
let api: Awaited<ReturnType<typeof startApi>> | null = null;
let gw: TestGateway | null = null;
try {
  const memAvailableBefore = meminfo('MemAvailable');
  await supervisord.start();
  const env = { STATE_DIR: dir, REDIS_URL, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'warn', AGENT_READY_TIMEOUT_MS: '240000', PORT_RANGE: '14000-14999', GATEWAY_PORT: String(await freePort()), GATEWAY_RATE_LIMIT: '0' };
  api = await startApi(env, await freePort());
  gw = new TestGateway(loadConfig(env));
  await gw.start();
  const { base } = api;
  const auth = { authorization: `Bearer ${api.token}`, 'content-type': 'application/json' };
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };
  const sender = (await call('POST', '/v1/api/token', { username: 'bench' })).json.token as string;
  const tables = Array.from({ length: N }, (_, i) => `t${i}`);
  /** One event through the gateway into every table; how many were accepted (200). */
  const everyAccepts = async (tag: string) => {
    const limit = pLimit(16);
    const answers = await Promise.all(
      tables.map((t) =>
        limit(async () => {
          const r = await fetch(`${gw!.url}/ingest/fleet/${t}`, { method: 'POST', headers: { authorization: `Bearer ${sender}` }, body: JSON.stringify([{ body: `${tag}-${t}` }]) });
          await r.arrayBuffer();
          return r.status;
        }),
      ),
    );
    return answers.filter((s) => s === 200).length;
  };
  const agents = async () => (await call('GET', '/v1/api/services?db=fleet')).json.agents as Array<{ table: string; pid: number | null; accepting: boolean; state: string }>;
  /** A bulk operation, from the request to its last table's outcome. */
  const bulk = async (op: string) => {
    const t0 = performance.now();
    const r = await call('POST', `/v1/api/bulk/${op}`, { db: 'fleet', concurrency: 16 });
    if (r.status !== 202) throw new Error(`bulk ${op}: ${r.status} ${JSON.stringify(r.json)}`);
    const id = (r.json.operation as { id: string }).id;
    const done = await until(() => call('GET', `/v1/api/operations/${id}`), (o) => (o.json.operation as { state: string }).state === 'done', 600_000, 100);
    return { seconds: (performance.now() - t0) / 1000, counts: (done.json.operation as { counts: Record<string, number> }).counts };
  };

  // 1. Create, each answered once it accepts events.
  const createMs: number[] = [];
  const limit = pLimit(C);
  let t0 = performance.now();
  await Promise.all(
    tables.map((t) =>
      limit(async () => {
        const s = performance.now();
        const r = await call('POST', `/v1/api/fleet/${t}/create`);
        if (r.status !== 201) throw new Error(`create ${t}: ${r.status} ${JSON.stringify(r.json)}`);
        createMs.push(performance.now() - s);
      }),
    ),
  );
  const createSeconds = (performance.now() - t0) / 1000;
  const accepted = await everyAccepts('created');
  const cores = Number((await run('nproc')).stdout.trim());
  // The floor for starting them: the CPU the JVMs themselves used so far, spread over every core.
  const cpuOf = async () => (await agents()).reduce((sum, a) => sum + (a.pid ? cpuSeconds(a.pid) : 0), 0);
  const createCpu = await cpuOf();
  console.log(`machine: ${cores} cores, ${f1(meminfo('MemTotal') / 1024)} GiB RAM (${f1(memAvailableBefore / 1024)} GiB available before the agents); Redis, supervisord, nginx, the API and the load on the same host`);
  console.log(`\n1. ${N} agents created, ${C} at a time: ${f1(createSeconds)} s in all (${f1((createSeconds * 1000) / N)} ms per agent); each create answered in median ${f1(median(createMs))} ms, max ${f1(Math.max(...createMs))} ms`);
  console.log(`   the JVMs used ${f1(createCpu)} CPU seconds to start (and take one event): on ${cores} cores no way of starting them takes less than ${f1(createCpu / cores)} s (${f1(createSeconds / (createCpu / cores))}x that floor)`);
  console.log(`   then one event through the gateway into each: ${accepted} of ${N} accepted`);

  // 2. Idle footprint.
  await sleep(10_000);
  const pids = (await agents()).map((a) => a.pid!).filter(Boolean);
  const rss = pids.map(rssMiB);
  const pss = pids.map(pssMiB);
  const agentCpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
  const apiCpu0 = cpuSeconds(api.child.pid!);
  await sleep(IDLE_SECONDS * 1000);
  const agentsIdle = ((pids.reduce((s, p) => s + cpuSeconds(p), 0) - agentCpu0) / IDLE_SECONDS) * 100;
  const apiIdle = ((cpuSeconds(api.child.pid!) - apiCpu0) / IDLE_SECONDS) * 100;
  const pssPerAgent = pss.reduce((a, b) => a + b, 0) / pss.length;
  console.log(`\n2. idle, ${pids.length} agents: RSS per agent median ${f1(median(rss))} MiB (max ${f1(Math.max(...rss))}); PSS per agent (shared pages split: what each really costs) mean ${f1(pssPerAgent)} MiB, ${f1((pssPerAgent * pids.length) / 1024)} GiB for all`);
  console.log(`   CPU over ${IDLE_SECONDS} s: all agents ${f1(agentsIdle)} % of one core (${(agentsIdle / pids.length).toFixed(2)} % each); the API ${f1(apiIdle)} %, RSS ${f1(rssMiB(api.child.pid!))} MiB`);

  // 3. The fleet listing under 10 pollers.
  const line = (name: string, l: Load) => console.log(`   ${name.padEnd(48)} ${f1(l.rps).padStart(8)} req/s  p50 ${f1(l.p50).padStart(5)} ms  p99 ${f1(l.p99).padStart(6)} ms${l.errors || l.non2xx ? `  (errors ${l.errors}, non-2xx ${l.non2xx})` : ''}`);
  console.log(`\n3. ${N} agents, 10 pollers, 10 s each:`);
  line('floor: GET /healthz, 10 back-to-back', await autocannon(`${base}/healthz`, api.token, 10));
  line(`GET /v1/api/services (${N} agents), 10 back-to-back`, await autocannon(`${base}/v1/api/services`, api.token, 10));
  line(`GET /v1/api/services, 10 pollers each every 100 ms`, await pacedPollers(`${base}/v1/api/services`, api.token, 10, 100));

  // 4. Stop all at once, start all again.
  const stop = await bulk('stop');
  const gone = await until(() => pids.filter(pidAlive).length, (n) => n === 0, 60_000, 200);
  const start = await bulk('start');
  const startCpu = await cpuOf();
  const up = (await agents()).filter((a) => a.accepting).length;
  const again = await everyAccepts('restarted');
  console.log(`\n4. stop all ${N} at once: ${f1(stop.seconds)} s (${JSON.stringify(stop.counts)}); JVMs still running afterwards: ${gone}`);
  console.log(`   start all ${N} again: ${f1(start.seconds)} s (${JSON.stringify(start.counts)}); the JVMs' own CPU ${f1(startCpu)} s, so the floor on ${cores} cores is ${f1(startCpu / cores)} s (${f1(start.seconds / (startCpu / cores))}x); accepting: ${up}; one more event each: ${again} of ${N} accepted`);

  // 5. How many this machine could hold: memory (PSS, keeping 2 GiB for the rest), idle CPU
  // (agents idle on at most half the cores), ports (two per agent in PORT_RANGE's 1000).
  const byMemory = Math.floor((memAvailableBefore - 2048) / pssPerAgent);
  const byCpu = Math.floor((cores * 50) / (agentsIdle / pids.length));
  const hold = Math.min(byMemory, byCpu, 500);
  console.log(`\n5. this machine could hold about ${hold} agents: memory ${byMemory} (${f1(memAvailableBefore / 1024)} GiB available less 2 GiB, at ${f1(pssPerAgent)} MiB each), idle CPU ${byCpu} (half of ${cores} cores), ports 500 (PORT_RANGE 14000-14999, two each)`);
  console.log(`   and starting them: ${f1((createSeconds * 1000) / N)} ms per agent at ${C} at a time, so ${N} took ${f1(createSeconds)} s and ${hold} would take about ${f1((createSeconds * hold) / N)} s`);
} finally {
  await gw?.stop();
  await api?.stop();
  await supervisord.stop();
  await dropPrefix(redis, prefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
}
