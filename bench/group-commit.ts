/**
 * Group commit at the gateway against sending straight to the agent, in one run on real parts:
 * one file_roll agent (file channel: one fsync per Flume transaction), real nginx + Lua gateway
 * (2 workers), Redis with a random prefix. Each phase: BENCH_CLIENTS keep-alive clients
 * (autocannon, its own process) POST BENCH_REQUESTS one-event requests. Every phase's events
 * carry their own body, and the lines the sink wrote are counted against the 200s.
 * Phases: straight to the agent; the gateway with group commit off (window 0); the gateway with
 * each window in BENCH_WINDOWS (ms), the rate limit off; the gateway with the defaults a user
 * gets (window and GATEWAY_RATE_LIMIT); those defaults with the metrics listener, with TLS
 * (a throwaway certificate; keep-alive clients), and with both; then the defaults with each event's
 * body a small JSON order, the table first without and then with an event contract (its spec's
 * `schema`, checked per event by the gateway: the contract's cost, docs/gateway.md).
 * Every phase runs BENCH_ROUNDS times (default 3), in turn with the others; figures are medians.
 * Run: npm run bench:group-commit   (BENCH_REQUESTS=50000 BENCH_CLIENTS=100 BENCH_WINDOWS=1,2,5 BENCH_ROUNDS=3
 * BENCH_ONLY='straight,defaults' to run only the phases whose names hold one of those)
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { agentPaths } from '../src/store/paths.js';
import { type Config } from '../src/config.js';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { loadConfig } from '../src/config-load.js';
import { makeCertificates } from '../test/helpers/certs.js';
import { INTAKE_KEY_HEADER } from '../src/agents/route-table.js';
import { agentOf, routePort, sinkLines } from '../test/helpers/flume.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { startHarness } from '../test/helpers/harness.js';
import { freePort, until } from '../test/helpers/wait.js';
import { writeResult } from './lib.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 50_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 100);
const WINDOWS = (process.env.BENCH_WINDOWS ?? '2').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** BENCH_ONLY: comma-separated parts of phase names; only those phases run (default: all). */
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
const run = promisify(execFile);

interface Result {
  name: string;
  tag: string;
  /** What the sink writes for each of this run's events. */
  line: string;
  rps: number;
  p50: number;
  p99: number;
  acked: number;
  failed: number;
  atSink?: number;
}

/** A body the contract below takes: an order, tagged with the run. */
const order = (tag: string) => JSON.stringify({ id: 42, amount: 19.99, currency: 'EUR', items: [{ sku: 'A-1', qty: 2 }], tag });
const CONTRACT = {
  policy: 'reject',
  body: {
    type: 'object',
    required: ['id', 'amount', 'currency', 'items'],
    additionalProperties: false,
    properties: {
      id: { type: 'integer', minimum: 1 },
      amount: { type: 'number', exclusiveMinimum: 0 },
      currency: { enum: ['EUR', 'USD', 'GBP'] },
      items: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'object', required: ['sku', 'qty'], properties: { sku: { type: 'string', minLength: 1, maxLength: 64 }, qty: { type: 'integer', minimum: 1 } } } },
      tag: { type: 'string' },
    },
  },
  headers: { type: 'object', properties: { src: { type: 'string', minLength: 1 } } },
};

/** `auth`: the gateway's caller (a token), or the agent's intake key straight to it. */
async function load(name: string, tag: string, url: string, auth: { token: string } | { intakeKey: string | null }, json = false): Promise<Result> {
  const header = 'token' in auth ? `authorization=Bearer ${auth.token}` : auth.intakeKey ? `${INTAKE_KEY_HEADER}=${auth.intakeKey}` : null;
  const line = json ? order(tag) : tag;
  const body = JSON.stringify([{ headers: { src: 'bench' }, body: line }]);
  const { stdout } = await run(
    join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'),
    ['-j', '-c', String(CLIENTS), '-a', String(REQUESTS), '-m', 'POST', '-H', 'content-type=application/json', ...(header ? ['-H', header] : []), '-b', body, url],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const r = JSON.parse(stdout) as { '2xx': number; non2xx: number; errors: number; timeouts: number; duration: number; latency: { p50: number; p99: number } };
  return { name, tag, line, rps: r['2xx'] / r.duration, p50: r.latency.p50, p99: r.latency.p99, acked: r['2xx'], failed: r.non2xx + r.errors + r.timeouts };
}

const h = await startHarness({ PORT_RANGE: '27100-27199', GATEWAY_PORT: String(await freePort()), AGENT_HEAP: '512m', GATEWAY_RATE_LIMIT: '0' });
let gw: TestGateway | null = null;
try {
  const created = await h.inject({ method: 'POST', url: '/v1/api/bench/gc/create', payload: { channel: { capacity: 10_000_000 } } });
  if (created.statusCode !== 201) throw new Error(created.body);
  const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json().token as string;
  const port = (await routePort(h.redis, h.keys, 'bench', 'gc'))!;
  const direct = `http://127.0.0.1:${port}/`;
  const intakeKey = agentOf(h.config, 'bench', 'gc').key;

  // Every phase is a gateway setting (null: straight to the agent). The phases run in turn,
  // ROUNDS times over, and each figure is the median of its rounds: a run's figures drift by
  // tens of percent as the JVM and the page cache warm, and rounds spread that drift over all.
  const defaults = loadConfig({});
  const byDefault = { GATEWAY_BATCH_WINDOW_MS: defaults.GATEWAY_BATCH_WINDOW_MS, GATEWAY_RATE_LIMIT: defaults.GATEWAY_RATE_LIMIT };
  const certs = makeCertificates(mkdtempSync(join(tmpdir(), 'bench-certs-')));
  const tls = { GATEWAY_TLS_CERT_FILE: certs.cert, GATEWAY_TLS_KEY_FILE: certs.key };
  const phases: Array<{ name: string; gateway: Partial<Config> | null; json?: boolean; contract?: boolean }> = [
    { name: 'straight to the agent', gateway: null },
    ...[0, ...WINDOWS].map((w) => ({ name: w ? `gateway, window ${w} ms` : 'gateway, group commit off', gateway: { GATEWAY_BATCH_WINDOW_MS: w } })),
    // What a user gets: every gateway setting at its default (window and per-token rate limit).
    { name: `gateway, defaults (limit ${defaults.GATEWAY_RATE_LIMIT}/s)`, gateway: byDefault },
    // The per-address limits (connections in progress, requests per second) off: what they cost.
    { name: 'gateway, defaults without traces', gateway: { ...byDefault, GATEWAY_TRACE_PER_SECOND: 0 } },
    { name: 'gateway, defaults without per-address limits', gateway: { ...byDefault, GATEWAY_CONNECTIONS_PER_ADDRESS: 0, GATEWAY_REQUESTS_PER_ADDRESS: 0 } },
    { name: 'gateway, defaults without the per-address request rate', gateway: { ...byDefault, GATEWAY_REQUESTS_PER_ADDRESS: 0 } },
    { name: 'gateway, defaults without the per-address connection limit', gateway: { ...byDefault, GATEWAY_CONNECTIONS_PER_ADDRESS: 0 } },
    // Production's extras on top: the metrics listener (a log phase per request), TLS
    // (keep-alive clients: one handshake per connection), and both.
    { name: 'gateway, defaults + metrics', gateway: { ...byDefault, GATEWAY_METRICS_PORT: await freePort() } },
    { name: 'gateway, defaults + TLS', gateway: { ...byDefault, ...tls } },
    { name: 'gateway, defaults + TLS + metrics', gateway: { ...byDefault, ...tls, GATEWAY_METRICS_PORT: await freePort() } },
    // The same JSON events, the table without and with a contract the gateway checks.
    { name: 'gateway, defaults, JSON orders', gateway: byDefault, json: true },
    { name: 'gateway, defaults, JSON orders + contract', gateway: byDefault, json: true, contract: true },
  ].filter((p) => !ONLY.length || ONLY.some((o) => p.name.includes(o)));
  await load('warm-up', 'warm', direct, { intakeKey }); // JIT and page cache
  const runs: Result[][] = phases.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, phase] of phases.entries()) {
      const tag = `p${i}r${round}`;
      if (!phase.gateway) {
        runs[i]!.push(await load(phase.name, tag, direct, { intakeKey }));
        continue;
      }
      // A contract is a config change the agent does not read: applied without a restart.
      const patched = await h.inject({ method: 'PATCH', url: '/v1/api/bench/gc/config', payload: { schema: phase.contract ? CONTRACT : null } });
      if (patched.statusCode !== 200) throw new Error(patched.body);
      gw = new TestGateway({ ...h.config, GATEWAY_RATE_LIMIT: 0, ...phase.gateway });
      await gw.start();
      const scheme = phase.gateway.GATEWAY_TLS_CERT_FILE ? 'https' : 'http';
      const result = await load(phase.name, tag, `${scheme}://${h.config.GATEWAY_HOST}:${h.config.GATEWAY_PORT}/ingest/bench/gc`, { token }, phase.json);
      if (phase.contract && result.acked === 0) throw new Error('the contract refused the bench orders: check CONTRACT against order()');
      runs[i]!.push(result);
      await gw.stop();
      gw = null;
    }
  }

  // Every acknowledged event must reach the sink: count each run's lines once the sink caught up.
  const out = agentPaths(h.config, 'flume-bench-gc').outDir;
  const counts = () => {
    const c = new Map<string, number>();
    for (const l of sinkLines(out)) c.set(l, (c.get(l) ?? 0) + 1);
    return c;
  };
  const all = runs.flat();
  const final = await until(counts, (c) => all.every((r) => (c.get(r.line) ?? 0) >= r.acked), 300_000, 1000);
  for (const r of all) r.atSink = final.get(r.line) ?? 0;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const results = runs.map((rs) => {
    const mid = [...rs].sort((a, b) => a.rps - b.rps)[Math.floor(rs.length / 2)]!;
    const sum = (k: 'acked' | 'failed' | 'atSink') => rs.reduce((n, r) => n + (r[k] ?? 0), 0);
    return { ...mid, rps: median(rs.map((r) => r.rps)), spread: rs.map((r) => Math.round(r.rps)), acked: sum('acked'), failed: sum('failed'), atSink: sum('atSink') };
  });

  const status = (await h.inject({ method: 'GET', url: '/v1/api/bench/gc/status?fresh=true' })).json() as { resources?: { rssBytes?: number } };
  const f = (x: number) => x.toFixed(1);
  const base = results[0]!.rps;
  console.log(`${REQUESTS} requests from ${CLIENTS} clients per run, ${ROUNDS} runs per phase (median), one event each, file_roll agent (file channel), 2 nginx workers, ${(await run('nproc')).stdout.trim()} cores`);
  for (const r of results) {
    console.log(
      `${r.name.padEnd(36)} ${f(r.rps).padStart(8)} req/s (${(r.rps / base).toFixed(2)}x direct; runs ${r.spread.join(', ')})  p50 ${r.p50} ms  p99 ${r.p99} ms  acknowledged ${r.acked}, refused ${r.failed}, at the sink ${r.atSink}, lost ${Math.max(0, r.acked - r.atSink!)}`,
    );
  }
  const withContract = results.find((r) => r.name.endsWith('+ contract'));
  const without = results.find((r) => r.name.endsWith('JSON orders'));
  if (withContract && without) console.log(`the contract's cost: ${(withContract.rps / without.rps).toFixed(2)}x the same JSON orders without it (p99 ${without.p99} -> ${withContract.p99} ms)`);
  // A run of some phases only is not the published figure.
  if (ONLY.length) console.log('(BENCH_ONLY: bench/results/group-commit.json left as it was)');
  else await writeResult('group-commit', {
    title: `Group commit at the gateway: ${REQUESTS} requests from ${CLIENTS} clients, one event each`,
    unit: 'req/s',
    baseline: { label: `straight to the agent (median of ${ROUNDS} runs)`, value: Math.round(base) },
    rows: results.slice(1).map((r) => ({ label: r.name, value: Math.round(r.rps) })),
    command: 'npm run bench:group-commit',
  });
  console.log(`the agent after all this (default JVM settings, -Xmx512m): RSS ${f((status.resources?.rssBytes ?? 0) / 1_048_576)} MiB`);
} finally {
  await gw?.stop();
  await h.close();
}
