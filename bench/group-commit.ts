/**
 * Group commit at the gateway against sending straight to the agent, in one run on real parts:
 * one file_roll agent (file channel: one fsync per Flume transaction), real nginx + Lua gateway
 * (2 workers), Redis with a random prefix. Each phase: BENCH_CLIENTS keep-alive clients
 * (autocannon, its own process) POST BENCH_REQUESTS one-event requests. Every phase's events
 * carry their own body, and the lines the sink wrote are counted against the 200s.
 * Phases: straight to the agent; the gateway with group commit off (window 0); the gateway with
 * each window in BENCH_WINDOWS (ms), the rate limit off; the gateway with the defaults a user
 * gets (window and GATEWAY_RATE_LIMIT).
 * Run: npm run bench:group-commit   (BENCH_REQUESTS=50000 BENCH_CLIENTS=100 BENCH_WINDOWS=1,2,5)
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { agentPaths } from '../src/store/paths.js';
import { PROJECT_ROOT, loadConfig } from '../src/config.js';
import { routePort, sinkLines } from '../test/helpers/flume.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { startHarness } from '../test/helpers/harness.js';
import { freePort, until } from '../test/helpers/wait.js';
import { writeResult } from './lib.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 100);
const WINDOWS = (process.env.BENCH_WINDOWS ?? '2').split(',').map(Number);
const run = promisify(execFile);

interface Result {
  name: string;
  tag: string;
  rps: number;
  p50: number;
  p99: number;
  acked: number;
  failed: number;
  atSink?: number;
}

async function load(name: string, tag: string, url: string, token: string | null): Promise<Result> {
  const body = JSON.stringify([{ headers: { src: 'bench' }, body: tag }]);
  const { stdout } = await run(
    join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'),
    ['-j', '-c', String(CLIENTS), '-a', String(REQUESTS), '-m', 'POST', '-H', 'content-type=application/json', ...(token ? ['-H', `authorization=Bearer ${token}`] : []), '-b', body, url],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const r = JSON.parse(stdout) as { '2xx': number; non2xx: number; errors: number; timeouts: number; duration: number; latency: { p50: number; p99: number } };
  return { name, tag, rps: r['2xx'] / r.duration, p50: r.latency.p50, p99: r.latency.p99, acked: r['2xx'], failed: r.non2xx + r.errors + r.timeouts };
}

const h = await startHarness({ PORT_RANGE: '27100-27199', GATEWAY_PORT: String(await freePort()), AGENT_HEAP: '512m', GATEWAY_RATE_LIMIT: '0' });
let gw: TestGateway | null = null;
try {
  const created = await h.inject({ method: 'POST', url: '/v1/api/bench/gc/create', payload: { channel: { capacity: 10_000_000 } } });
  if (created.statusCode !== 201) throw new Error(created.body);
  const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json().token as string;
  const port = (await routePort(h.redis, h.keys, 'bench', 'gc'))!;
  const direct = `http://127.0.0.1:${port}/`;

  await load('warm-up', 'warm', direct, null); // JIT and page cache
  const results: Result[] = [await load('straight to the agent', 'direct', direct, null)];
  for (const window of [0, ...WINDOWS]) {
    gw = new TestGateway({ ...h.config, GATEWAY_BATCH_WINDOW_MS: window });
    await gw.start();
    const name = window ? `gateway, window ${window} ms` : 'gateway, group commit off';
    results.push(await load(name, `gw${window}`, `${gw.url}/ingest/bench/gc`, token));
    await gw.stop();
    gw = null;
  }
  // What a user gets: every gateway setting at its default (window and per-token rate limit).
  const defaults = loadConfig({});
  gw = new TestGateway({ ...h.config, GATEWAY_BATCH_WINDOW_MS: defaults.GATEWAY_BATCH_WINDOW_MS, GATEWAY_RATE_LIMIT: defaults.GATEWAY_RATE_LIMIT });
  await gw.start();
  results.push(await load(`gateway, defaults (limit ${defaults.GATEWAY_RATE_LIMIT}/s)`, 'gwdefault', `${gw.url}/ingest/bench/gc`, token));
  await gw.stop();
  gw = null;
  results.push(await load('straight to the agent again', 'direct2', direct, null));

  // Every acknowledged event must reach the sink: count each phase's lines once the sink caught up.
  const out = agentPaths(h.config, 'flume-bench-gc').outDir;
  const counts = () => {
    const c = new Map<string, number>();
    for (const l of sinkLines(out)) c.set(l, (c.get(l) ?? 0) + 1);
    return c;
  };
  const final = await until(counts, (c) => results.every((r) => (c.get(r.tag) ?? 0) >= r.acked), 300_000, 1000);
  for (const r of results) r.atSink = final.get(r.tag) ?? 0;

  const status = (await h.inject({ method: 'GET', url: '/v1/api/bench/gc/status?fresh=true' })).json() as { resources?: { rssBytes?: number } };
  const f = (x: number) => x.toFixed(1);
  const base = (results[0]!.rps + results.at(-1)!.rps) / 2;
  console.log(`${REQUESTS} requests from ${CLIENTS} clients, one event each, file_roll agent (file channel), 2 nginx workers, ${(await run('nproc')).stdout.trim()} cores`);
  for (const r of results) {
    console.log(
      `${r.name.padEnd(28)} ${f(r.rps).padStart(8)} req/s (${(r.rps / base).toFixed(2)}x direct)  p50 ${r.p50} ms  p99 ${r.p99} ms  acknowledged ${r.acked}, refused ${r.failed}, at the sink ${r.atSink}, lost ${Math.max(0, r.acked - r.atSink!)}`,
    );
  }
  await writeResult('group-commit', {
    title: `Group commit at the gateway: ${REQUESTS} requests from ${CLIENTS} clients, one event each`,
    unit: 'req/s',
    baseline: { label: 'straight to the agent (mean of first and last)', value: base },
    rows: results.map((r) => ({ label: r.name, value: r.rps })),
    command: 'npm run bench:group-commit',
  });
  console.log(`the agent after all this (default JVM settings, -Xmx512m): RSS ${f((status.resources?.rssBytes ?? 0) / 1_048_576)} MiB`);
} finally {
  await gw?.stop();
  await h.close();
}
