/**
 * Status under dashboard load, in one run, every figure beside its baseline:
 *   - 20 real agents: 50 concurrent pollers at GET .../status and at GET /services, back to back
 *     (autocannon, its own process: throughput) and paced like dashboards (each every 50 ms:
 *     latency), against the original design's way, one `supervisorctl status NAME` process
 *     per call (8 at a time), for the same 10 s, and against the floor: GET /healthz;
 *   - 100 real agents: /services under 50 and 10 pollers, a /metrics scrape, the API's idle
 *     CPU and memory.
 * The API runs as its own process (dist/server.js) under its own supervisord in a temp dir;
 * the load comes from autocannon in another process.
 * Run: npm run bench:fleet   (BENCH_AGENTS=N for the large fleet, default 100; BENCH_SECONDS=10)
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pLimit from 'p-limit';
import { PROJECT_ROOT } from '../src/config.js';
import { REDIS_URL, dropPrefix, tempDir } from '../test/helpers/harness.js';
import { TestSupervisord } from '../test/helpers/supervisord.js';
import { freePort, until } from '../test/helpers/wait.js';

const run = promisify(execFile);
const SMALL = 20;
const LARGE = Number(process.env.BENCH_AGENTS ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const f1 = (x: number) => x.toFixed(1);

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/** autocannon in its own process: req/s and latency percentiles. */
async function autocannon(url: string, token: string, connections: number, seconds = SECONDS): Promise<Load> {
  const { stdout } = await run(
    join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'),
    ['-j', '-c', String(connections), '-d', String(seconds), '-H', `authorization=Bearer ${token}`, url],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const r = JSON.parse(stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; errors: number; non2xx: number };
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

/**
 * Dashboards as they poll: `pollers` clients (keep-alive), each sending one request every
 * `everyMs` from a random phase, for `seconds`. Latency of each answer, as the client sees it.
 */
async function pacedPollers(url: string, token: string, pollers: number, everyMs: number, seconds = SECONDS): Promise<Load> {
  const agent = new Agent({ keepAlive: true, maxSockets: pollers });
  const times: number[] = [];
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = httpRequest(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) errors++;
          times.push(performance.now() - t0);
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: pollers }, async () => {
      await sleep(Math.random() * everyMs);
      while (Date.now() < end) {
        const t0 = performance.now();
        await once();
        await sleep(Math.max(0, everyMs - (performance.now() - t0)));
      }
    }),
  );
  agent.destroy();
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((times.length * p) / 100))]!;
  return { rps: times.length / seconds, p50: pct(50), p99: pct(99), errors, non2xx: 0 };
}

/** The original way: one supervisorctl process per status call, `concurrency` at a time. */
async function supervisorctlLoad(socket: string, programs: string[], concurrency: number, seconds = SECONDS): Promise<Load> {
  const times: number[] = [];
  const until = Date.now() + seconds * 1000;
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const t0 = performance.now();
        await run('supervisorctl', ['-s', `unix://${socket}`, 'status', programs[i++ % programs.length]!]).catch(() => undefined);
        times.push(performance.now() - t0);
      }
    }),
  );
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((times.length * p) / 100))]!;
  return { rps: times.length / seconds, p50: pct(50), p99: pct(99), errors: 0, non2xx: 0 };
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
}
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

const dir = tempDir('bench-fleet');
const prefix = `bench:${randomBytes(4).toString('hex')}:`;
const supervisord = new TestSupervisord(dir, { redisUrl: REDIS_URL, prefix });
let api: ChildProcess | null = null;
const redis = new Redis(REDIS_URL);
try {
  await supervisord.start();
  const port = await freePort();
  const env = {
    ...process.env,
    STATE_DIR: dir,
    API_PORT: String(port),
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    AGENT_HEAP: process.env.AGENT_HEAP ?? '96m',
    AGENT_READY_TIMEOUT_MS: '240000',
    PORT_RANGE: '12000-12999',
  };
  api = spawn('node', [join(PROJECT_ROOT, 'dist', 'server.js')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const ready = await until(() => fetch(`${base}/readyz`).then((r) => r.ok, () => false), (ok) => ok, 30_000);
  if (!ready) throw new Error('the API did not become ready');
  const token = (await run('node', [join(PROJECT_ROOT, 'dist', 'cli', 'token.js'), '--role', 'admin'], { env })).stdout.trim();
  const auth = { authorization: `Bearer ${token}` };
  const create = async (i: number) => {
    const r = await fetch(`${base}/v1/api/bench/t${i}/create`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"sink":"logger"}' });
    if (r.status !== 201) throw new Error(`create t${i}: ${r.status} ${await r.text()}`);
  };
  const allHealthy = async (n: number) => {
    const ok = await until(
      async () => ((await (await fetch(`${base}/v1/api/services`, { headers: auth })).json()) as { agents: Array<{ health: string }> }).agents,
      (a) => a.length === n && a.every((x) => x.health === 'healthy'),
      300_000,
      1000,
    );
    if (ok.filter((x) => x.health === 'healthy').length !== n) throw new Error(`not all ${n} agents became healthy`);
  };
  const limit = pLimit(5);
  let t0 = Date.now();
  await Promise.all(Array.from({ length: SMALL }, (_, i) => limit(() => create(i))));
  await allHealthy(SMALL);
  console.log(`machine: ${(await run('nproc')).stdout.trim()} cores; ${SMALL} agents created and healthy in ${f1((Date.now() - t0) / 1000)} s`);

  const line = (name: string, l: Load) =>
    console.log(`  ${name.padEnd(44)} ${f1(l.rps).padStart(8)} req/s  p50 ${f1(l.p50).padStart(6)} ms  p99 ${f1(l.p99).padStart(7)} ms${l.errors || l.non2xx ? `  (errors ${l.errors}, non-2xx ${l.non2xx})` : ''}`);
  console.log(`\n${SMALL} agents, ${SECONDS} s each; "back-to-back": every poller sends its next request as soon as the last one answered:`);
  const floor = await autocannon(`${base}/healthz`, token, 50);
  line('floor: GET /healthz (no auth, no work), 50 back-to-back', floor);
  const status = await autocannon(`${base}/v1/api/bench/t0/status`, token, 50);
  line('GET .../status, 50 back-to-back', status);
  const services = await autocannon(`${base}/v1/api/services`, token, 50);
  line(`GET /services (${SMALL} agents), 50 back-to-back`, services);
  line('GET .../status, 50 pollers, each every 50 ms', await pacedPollers(`${base}/v1/api/bench/t0/status`, token, 50, 50));
  line(`GET /services (${SMALL} agents), 50 pollers, each every 50 ms`, await pacedPollers(`${base}/v1/api/services`, token, 50, 50));
  const programs = Array.from({ length: SMALL }, (_, i) => `flume-bench-t${i}`);
  const ctl = await supervisorctlLoad(supervisord.socket, programs, 8);
  line('baseline: supervisorctl status NAME, 8 at once', ctl);
  console.log(`  ratio status/baseline: ${f1(status.rps / ctl.rps)}x throughput; /services/baseline: ${f1(services.rps / ctl.rps)}x`);

  t0 = Date.now();
  await Promise.all(Array.from({ length: LARGE - SMALL }, (_, i) => limit(() => create(SMALL + i))));
  await allHealthy(LARGE);
  console.log(`\n${LARGE} agents (created and healthy ${f1((Date.now() - t0) / 1000)} s later):`);
  line('floor: GET /healthz, 50 back-to-back', await autocannon(`${base}/healthz`, token, 50));
  line(`GET /services (${LARGE} agents), 50 back-to-back`, await autocannon(`${base}/v1/api/services`, token, 50));
  line(`GET /services (${LARGE} agents), 10 back-to-back`, await autocannon(`${base}/v1/api/services`, token, 10));
  line(`GET /services (${LARGE} agents), 50 pollers, each every 50 ms`, await pacedPollers(`${base}/v1/api/services`, token, 50, 50));
  line(`GET .../status (${LARGE} agents), 50 back-to-back`, await autocannon(`${base}/v1/api/bench/t0/status`, token, 50));
  line(`GET .../status (${LARGE} agents), 50 pollers, each every 50 ms`, await pacedPollers(`${base}/v1/api/bench/t0/status`, token, 50, 50));
  const scrapes: number[] = [];
  for (let i = 0; i < 20; i++) {
    const s = performance.now();
    const r = await fetch(`${base}/metrics`);
    await r.text();
    scrapes.push(performance.now() - s);
  }
  scrapes.sort((a, b) => a - b);
  console.log(`  GET /metrics (${LARGE} agents), 20 scrapes one at a time: median ${f1(scrapes[10]!)} ms, max ${f1(scrapes[19]!)} ms`);
  const ctl100 = await supervisorctlLoad(supervisord.socket, Array.from({ length: LARGE }, (_, i) => `flume-bench-t${i}`), 8);
  line(`baseline: supervisorctl status NAME, 8 at once`, ctl100);

  // Idle: no requests, the fleet model refreshing every FLEET_REFRESH_MS in the background.
  await sleep(5000);
  const c0 = cpuSeconds(api.pid!);
  await sleep(30_000);
  const idle = ((cpuSeconds(api.pid!) - c0) / 30) * 100;
  console.log(`  API idle with ${LARGE} agents over 30 s: ${f1(idle)} % of one core, RSS ${f1(rssMiB(api.pid!))} MiB`);
} finally {
  if (api && api.exitCode === null) {
    const exited = new Promise((r) => api!.once('exit', r));
    api.kill('SIGTERM');
    await exited;
  }
  await supervisord.stop();
  await dropPrefix(redis, prefix);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
}
