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
import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { freePort, until } from '../test/helpers/wait.js';
import { type Load, SECONDS, autocannon, cpuSeconds, f1, pacedPollers, rssMiB, run, startApi, supervisorctlLoad, benchStack, writeResult } from './lib.js';

const SMALL = 20;
const LARGE = Number(process.env.BENCH_AGENTS ?? 100);

const stack = await benchStack('bench-fleet');
const { supervisord } = stack;
let api: Awaited<ReturnType<typeof startApi>> | null = null;
try {
  const env = {
    ...stack.env,
    AGENT_HEAP: process.env.AGENT_HEAP ?? '96m',
    AGENT_READY_TIMEOUT_MS: '240000',
    PORT_RANGE: '12000-12999',
  };
  api = await startApi(env, await freePort());
  const { base, token } = api;
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
  await writeResult('fleet', {
    title: `Status reads with ${SMALL} agents, 50 back-to-back clients`,
    unit: 'req/s',
    baseline: { label: 'floor: GET /healthz', value: floor.rps },
    rows: [
      { label: 'GET .../status', value: status.rps },
      { label: `GET /services (${SMALL} agents)`, value: services.rps },
      { label: 'supervisorctl status NAME, 8 at once', value: ctl.rps },
    ],
    command: 'npm run bench:fleet',
  });

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
  const c0 = cpuSeconds(api.child.pid!);
  await sleep(30_000);
  const idle = ((cpuSeconds(api.child.pid!) - c0) / 30) * 100;
  console.log(`  API idle with ${LARGE} agents over 30 s: ${f1(idle)} % of one core, RSS ${f1(rssMiB(api.child.pid!))} MiB`);
} finally {
  await api?.stop();
  await stack.close();
}
