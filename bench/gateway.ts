/**
 * Gateway throughput against going straight to the agent, measured in one run on real parts:
 * one file_roll agent, real nginx + Lua gateway with its default settings (group commit, 2 ms
 * window: bench/group-commit.ts compares windows), Redis with a random prefix.
 * Each phase: C concurrent keep-alive clients POST one-event batches for D seconds.
 * Also what a loaded agent sustains with the default agent JVM settings (C1 only, SerialGC)
 * against one with the JVM's own (G1, C2), straight to each, and their RSS afterwards.
 * Run: npx tsx bench/gateway.ts   (BENCH_SECONDS=10 BENCH_CONCURRENCY=32 to change)
 */
import { Agent, request } from 'node:http';
import { startHarness } from '../test/helpers/harness.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { INTAKE_KEY_HEADER } from '../src/agents/route-table.js';
import { agentOf, routePort } from '../test/helpers/flume.js';
import { freePort } from '../test/helpers/wait.js';
import { writeResult } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const C = Number(process.env.BENCH_CONCURRENCY ?? 32);
const body = JSON.stringify([{ headers: { k: 'v' }, body: 'benchmark event' }]);

async function load(port: number, path: string, headers: Record<string, string>) {
  const agent = new Agent({ keepAlive: true, maxSockets: C });
  const deadline = Date.now() + SECONDS * 1000;
  const counts = { ok: 0, failed: 0 };
  const lat: number[] = [];
  const one = () =>
    new Promise<number>((resolve) => {
      const t0 = process.hrtime.bigint();
      const req = request(
        { host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
        (res) => {
          res.resume();
          res.on('end', () => {
            lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
            resolve(res.statusCode ?? 0);
          });
        },
      );
      req.on('error', () => resolve(0));
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (Date.now() < deadline) ((await one()) === 200 ? counts.ok++ : counts.failed++);
    }),
  );
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { rps: counts.ok / SECONDS, failed: counts.failed, p50: lat[Math.floor(lat.length / 2)] ?? 0, p99: lat[Math.floor(lat.length * 0.99)] ?? 0 };
}

const h = await startHarness({ PORT_RANGE: '27000-27099', GATEWAY_PORT: String(await freePort()), AGENT_HEAP: '512m', GATEWAY_RATE_LIMIT: '0' });
const gw = new TestGateway(h.config);
try {
  await gw.start();
  const created = await h.inject({ method: 'POST', url: '/v1/api/bench/events/create', payload: { channel: { capacity: 10_000_000 } } });
  if (created.statusCode !== 201) throw new Error(created.body);
  const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json().token as string;
  const port = (await routePort(h.redis, h.keys, 'bench', 'events'))!;
  // Straight to the agent as the gateway goes: with its intake key.
  const keyOf = (table: string): Record<string, string> => ({ [INTAKE_KEY_HEADER]: agentOf(h.config, 'bench', table).key ?? '' });

  await load(port, '/', keyOf('events')); // warm-up: JIT and page cache
  const direct = await load(port, '/', keyOf('events'));
  const viaGateway = await load(h.config.GATEWAY_PORT, '/ingest/bench/events', { authorization: `Bearer ${token}` });
  const direct2 = await load(port, '/', keyOf('events'));
  const f = (x: number) => x.toFixed(1);
  console.log(`${C} clients x ${SECONDS} s, one event per request, file_roll agent, 2 nginx workers`);
  for (const [name, r] of [['direct to agent', direct], ['through gateway', viaGateway], ['direct again', direct2]] as const) {
    console.log(`${name.padEnd(16)} ${f(r.rps)} req/s  p50 ${f(r.p50)} ms  p99 ${f(r.p99)} ms  non-200: ${r.failed}`);
  }
  const base = (direct.rps + direct2.rps) / 2;
  console.log(`gateway / direct = ${(viaGateway.rps / base).toFixed(2)}`);
  await writeResult('gateway', {
    title: `Ingest through the gateway, ${C} clients, one event per request`,
    unit: 'req/s',
    baseline: { label: 'straight to the agent (mean of before and after)', value: base },
    rows: [{ label: 'through the gateway (token check, route, proxy)', value: viaGateway.rps }],
    command: 'npm run bench (bench/gateway.ts)',
  });

  const jvmDefaults = await h.inject({ method: 'POST', url: '/v1/api/bench/c2/create', payload: { channel: { capacity: 10_000_000 }, jvm: { options: ['-XX:+UseG1GC', '-XX:TieredStopAtLevel=4'] } } });
  if (jvmDefaults.statusCode !== 201) throw new Error(jvmDefaults.body);
  const port2 = (await routePort(h.redis, h.keys, 'bench', 'c2'))!;
  await load(port2, '/', keyOf('c2')); // warm-up
  const tuned = await load(port, '/', keyOf('events'));
  const untuned = await load(port2, '/', keyOf('c2'));
  const rss = async (t: string) => {
    const s = (await h.inject({ method: 'GET', url: `/v1/api/bench/${t}/status?fresh=true` })).json();
    return (s.resources?.rssBytes ?? 0) / 1_048_576;
  };
  console.log(`loaded agent, straight to it (-Xmx512m): default settings (SerialGC, C1) ${f(tuned.rps)} req/s p99 ${f(tuned.p99)} ms, RSS ${f(await rss('events'))} MiB;`);
  console.log(`  the JVM's own (G1, C2): ${f(untuned.rps)} req/s p99 ${f(untuned.p99)} ms, RSS ${f(await rss('c2'))} MiB; ratio ${(tuned.rps / untuned.rps).toFixed(2)}`);
} finally {
  await gw.stop();
  await h.close();
}
