/**
 * What a retry costs, in one run, each figure beside the plain read of the same agent:
 *   - GET .../status (the baseline: the fleet model's answer) and GET /healthz (the floor);
 *   - a create sent again with the same spec (200 with the agent: the table lock, its
 *     agent.json read and a fresh observation of the agent);
 *   - a bulk call sent again with the same Idempotency-Key (the first answer from Redis);
 *   - GET /v1/api/:db/:table (status + spec from disk + links);
 *   - a config PATCH with a stale If-Match (412 under the table lock, nothing written).
 * 10 back-to-back clients (autocannon, its own process) for BENCH_SECONDS each, against the API
 * as its own process (dist/server.js) under its own supervisord, with one real agent.
 * Run: npm run bench:retry
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { freePort } from '../test/helpers/wait.js';
import { type Load, SECONDS, autocannon, f1, run, startApi, benchStack, writeResult } from './lib.js';

const CONNECTIONS = 10;

/** autocannon with a method, a body and headers. */
async function load(url: string, token: string, opts: { method: string; body?: string; headers?: Record<string, string> }): Promise<Load> {
  const args = ['-j', '-c', String(CONNECTIONS), '-d', String(SECONDS), '-m', opts.method, '-H', `authorization=Bearer ${token}`];
  for (const [k, v] of Object.entries({ ...(opts.body ? { 'content-type': 'application/json' } : {}), ...(opts.headers ?? {}) })) args.push('-H', `${k}=${v}`);
  if (opts.body) args.push('-b', opts.body);
  args.push(url);
  const { stdout } = await run(join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'), args, { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; errors: number; non2xx: number; statusCodeStats?: Record<string, { count: number }> };
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

const stack = await benchStack('bench-retry');
let api: Awaited<ReturnType<typeof startApi>> | null = null;
try {
  api = await startApi({ ...stack.env, AGENT_HEAP: '96m', PORT_RANGE: '13000-13099' }, await freePort());
  const { base, token } = api;
  const spec = '{"sink":"logger"}';
  const created = await fetch(`${base}/v1/api/bench/retry/create`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: spec });
  if (created.status !== 201) throw new Error(`create: ${created.status} ${await created.text()}`);
  const key = randomUUID();
  const bulk = JSON.stringify({ tables: ['bench.retry'] });
  const first = await fetch(`${base}/v1/api/bulk/resume`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': key }, body: bulk });
  if (first.status !== 202) throw new Error(`bulk: ${first.status}`);

  const line = (name: string, l: Load, expectedNon2xx = false) =>
    console.log(`  ${name.padEnd(52)} ${f1(l.rps).padStart(8)} req/s  p50 ${f1(l.p50).padStart(6)} ms  p99 ${f1(l.p99).padStart(7)} ms${l.errors || (!expectedNon2xx && l.non2xx) ? `  (errors ${l.errors}, non-2xx ${l.non2xx})` : ''}`);
  console.log(`one agent, ${CONNECTIONS} back-to-back clients, ${SECONDS} s each:`);
  const floor = await autocannon(`${base}/healthz`, token, CONNECTIONS);
  line('floor: GET /healthz', floor);
  const status = await autocannon(`${base}/v1/api/bench/retry/status`, token, CONNECTIONS);
  line('baseline: GET .../status', status);
  const agent = await autocannon(`${base}/v1/api/bench/retry`, token, CONNECTIONS);
  line('GET /v1/api/:db/:table', agent);
  const again = await load(`${base}/v1/api/bench/retry/create`, token, { method: 'POST', body: spec });
  line('POST .../create again, same spec (200)', again);
  const replay = await load(`${base}/v1/api/bulk/resume`, token, { method: 'POST', body: bulk, headers: { 'idempotency-key': key } });
  line('POST /bulk/resume again, same Idempotency-Key', replay);
  const stale = await load(`${base}/v1/api/bench/retry/config`, token, { method: 'PATCH', body: '{"options":{"maxBytesToLog":1}}', headers: { 'if-match': '"99"' } });
  line('PATCH .../config with a stale If-Match (412)', stale, true);
  if (stale.non2xx === 0) throw new Error('the stale If-Match was not refused');
  for (const [name, l] of [['agent', agent], ['create again', again], ['idempotent replay', replay], ['stale If-Match', stale]] as const) {
    console.log(`  ${name}: ${f1(l.rps / status.rps)}x the status read's throughput, ${f1(l.rps / floor.rps)}x the floor's`);
  }
  await writeResult('retry', {
    title: `What a retry costs: one agent, ${CONNECTIONS} back-to-back clients`,
    unit: 'req/s',
    baseline: { label: 'GET .../status', value: Math.round(status.rps) },
    rows: [
      { label: 'GET /healthz (floor)', value: Math.round(floor.rps) },
      { label: 'GET /v1/api/:db/:table', value: Math.round(agent.rps) },
      { label: 'create again, same spec', value: Math.round(again.rps) },
      { label: 'bulk again, same Idempotency-Key', value: Math.round(replay.rps) },
      { label: 'PATCH config, stale If-Match', value: Math.round(stale.rps) },
    ],
    command: 'npm run bench:retry',
  });
} finally {
  await api?.stop();
  await stack.close();
}
