/**
 * Many hosts, measured: three hosts as network namespaces (test/helpers/netns.ts), a three-member
 * etcd, the whole stack per host as scripts/up.sh brings it up. Each figure beside a baseline
 * measured in the same run:
 *   1. ingest into a table on h3 through h1's gateway (one hop) vs through h3's own (local):
 *      req/s and p99, autocannon inside the sender's host, one event per request;
 *   2. GET /v1/api/services with 30 tables over the 3 hosts, 10 clients back to back and 10
 *      pollers each every 100 ms, vs GET /healthz of the same API under the same (the floor): p99;
 *   3. a state change on h3 (stop, start) seen by h1's API, from h3's answer: median and max;
 *   4. create through a non-owner API (h1, ?node=h3) vs through the owner's (h3), alternating:
 *      median create-to-accepting.
 * Run: npm run bench:cluster   (as root: it creates network namespaces; about 3 min)
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { Installation } from '../test/helpers/installation.js';
import { NetnsCluster } from '../test/helpers/netns.js';
import { until } from '../test/helpers/wait.js';
import { f1, writeResult } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cluster = new NetnsCluster(3);
const hosts = new Map<number, Installation>();
const api = (i: number) => `http://${cluster.address(i)}:8001`;

/** Paced pollers (bench/pollers.ts) run inside host `from`: each sends one request every `everyMs`. */
function pollers(from: number, url: string, token: string, n: number, everyMs: number) {
  const r = cluster.run(from, join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx'), [join(PROJECT_ROOT, 'bench', 'pollers.ts'), url, token, String(n), String(everyMs), String(SECONDS)], { timeoutMs: (SECONDS + 30) * 1000 });
  return JSON.parse(r.stdout) as { rps: number; p50: number; p99: number; errors: number };
}

/** autocannon run inside host `from` (its own process there). */
function autocannon(from: number, url: string, opts: { connections: number; token: string; body?: string }) {
  const args = ['-j', '-c', String(opts.connections), '-d', String(SECONDS), '-H', `authorization=Bearer ${opts.token}`];
  if (opts.body) args.push('-m', 'POST', '-H', 'content-type=application/json', '-b', opts.body);
  const r = cluster.run(from, join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'), [...args, url], { timeoutMs: (SECONDS + 30) * 1000 });
  const j = JSON.parse(r.stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
  return { rps: j.requests.average, p50: j.latency.p50, p99: j.latency.p99, bad: j.non2xx + j.errors };
}

try {
  await cluster.create();
  await cluster.startEtcd();
  const keys = { 'jwt-secret': randomBytes(48).toString('base64url'), 'token-hash-key': randomBytes(48).toString('base64url') };
  for (const i of cluster.hosts()) {
    const h = new Installation(
      {
        NODE_ID: `h${i}`, NODE_ADDRESS: cluster.address(i), ...cluster.etcdSettings, API_HOST: '0.0.0.0', GATEWAY_HOST: '0.0.0.0',
        API_ALLOWED_HOSTS: cluster.hosts().map((x) => cluster.address(x)).join(','), AGENT_HEAP: '256m', LOG_LEVEL: 'warn',
      },
      { netns: cluster.ns(i) },
    );
    mkdirSync(h.varDir, { recursive: true });
    for (const [file, key] of Object.entries(keys)) writeFileSync(join(h.varDir, file), `${key}\n`, { mode: 0o600 });
    hosts.set(i, h);
  }
  await Promise.all([...hosts.values()].map((h) => h.up()));
  const admin = hosts.get(1)!.token('--role', 'admin', '--ttl', '1h');
  await until(async () => ((await cluster.http(1, 'GET', `${api(1)}/v1/api/nodes`, { token: admin })).body.nodes as unknown[] | undefined)?.length ?? 0, (n) => n === 3, 30_000, 200);
  const machine = (await import('node:os')).availableParallelism();
  console.log(`3 hosts (network namespaces) on one ${machine}-core machine, etcd 3.4 x3, ${SECONDS} s per load`);

  // 1. Ingest through one hop vs local.
  const created = await cluster.http(3, 'POST', `${api(3)}/v1/api/bench/events/create?node=h3`, { token: admin, body: { channel: { capacity: 10_000_000 } } });
  if (created.status !== 201) throw new Error(created.text);
  const tok = (await cluster.http(2, 'POST', `${api(2)}/v1/api/token`, { token: admin, body: { username: 'bench' } })).body.token as string;
  const event = JSON.stringify([{ headers: {}, body: 'bench-event' }]);
  const ingest = (via: number) => autocannon(via, 'http://127.0.0.1:8080/ingest/bench/events', { connections: 20, token: tok, body: event });
  await until(async () => (await cluster.http(1, 'POST', 'http://127.0.0.1:8080/ingest/bench/events', { token: tok, body: [{ body: 'warm' }] })).status, (s) => s === 200, 15_000, 100);
  ingest(3); // warm-up: the JIT, the page cache
  const local1 = ingest(3);
  const hop = ingest(1);
  const local2 = ingest(3);
  const localRps = (local1.rps + local2.rps) / 2;
  console.log(`\n1. ingest, 20 senders, one event per request, into a table on h3:`);
  console.log(`   through h3's own gateway (local):   ${f1(local1.rps)} / ${f1(local2.rps)} req/s, p99 ${local1.p99} / ${local2.p99} ms (before / after)`);
  console.log(`   through h1's gateway (one hop):     ${f1(hop.rps)} req/s, p99 ${hop.p99} ms, not 200: ${hop.bad}; ratio ${(hop.rps / localRps).toFixed(2)}x of local`);

  // 2. The listing across hosts vs the floor.
  const lim = 5;
  const tables = Array.from({ length: 30 }, (_, k) => `t${k}`);
  for (let k = 0; k < tables.length; k += lim) {
    await Promise.all(
      tables.slice(k, k + lim).map(async (t) => {
        const r = await cluster.http(1 + (k % 3), 'POST', `${api(1 + (k % 3))}/v1/api/bench/${t}/create?start=false`, { token: admin, body: { sink: 'logger' } });
        if (r.status !== 201) throw new Error(r.text);
      }),
    );
  }
  await until(async () => ((await cluster.http(1, 'GET', `${api(1)}/v1/api/services?db=bench`, { token: admin })).body.agents as unknown[]).length, (n) => n === 31, 15_000, 100);
  const floor = autocannon(1, 'http://127.0.0.1:8001/healthz', { connections: 10, token: admin });
  const services = autocannon(1, 'http://127.0.0.1:8001/v1/api/services', { connections: 10, token: admin });
  console.log(`\n2. GET /v1/api/services, 31 tables over 3 hosts (30 stopped), 10 clients back to back, at h1:`);
  console.log(`   floor GET /healthz:  ${f1(floor.rps)} req/s, p99 ${floor.p99} ms`);
  console.log(`   /v1/api/services:    ${f1(services.rps)} req/s, p99 ${services.p99} ms; p99 ${(services.p99 / Math.max(1, floor.p99)).toFixed(2)}x the floor's`);
  const floorPolled = pollers(1, 'http://127.0.0.1:8001/healthz', admin, 10, 100);
  const servicesPolled = pollers(1, 'http://127.0.0.1:8001/v1/api/services', admin, 10, 100);
  console.log(`   10 pollers, each every 100 ms (dashboards): /healthz p50 ${f1(floorPolled.p50)} ms, p99 ${f1(floorPolled.p99)} ms; /v1/api/services p50 ${f1(servicesPolled.p50)} ms, p99 ${f1(servicesPolled.p99)} ms: ${(servicesPolled.p99 / floorPolled.p99).toFixed(2)}x the floor's p99`);

  // 3. A state change on h3 seen by h1.
  const seen: number[] = [];
  for (let k = 0; k < 6; k++) {
    const op = k % 2 === 0 ? 'stop' : 'start';
    const want = op === 'stop' ? 'STOPPED' : 'RUNNING';
    const r = await cluster.http(3, 'POST', `${api(3)}/v1/api/bench/events/${op}`, { token: admin });
    if (r.status !== 200) throw new Error(r.text);
    const answered = Date.now();
    // A start answers at accepting, RUNNING follows after supervisord's startsecs: measured from when h3 itself says so.
    const at3 = op === 'stop' ? answered : (await until(async () => ({ s: (await cluster.http(3, 'GET', `${api(3)}/v1/api/bench/events/status`, { token: admin })).body.state, t: Date.now() }), (x) => x.s === want, 20_000, 10)).t;
    const at1 = (await until(async () => ({ s: (await cluster.http(1, 'GET', `${api(1)}/v1/api/bench/events/status`, { token: admin })).body.state, t: Date.now() }), (x) => x.s === want, 10_000, 10)).t;
    seen.push(Math.max(0, at1 - at3));
  }
  console.log(`\n3. a state change on h3 seen by h1's API (6 changes): median ${median(seen)} ms, max ${Math.max(...seen)} ms (includes ~15 ms per poll through curl)`);

  // 4. Create through a non-owner API vs the owner's.
  const viaOther: number[] = [];
  const viaOwner: number[] = [];
  for (let k = 0; k < 4; k++) {
    for (const [from, into] of [[1, viaOther], [3, viaOwner]] as const) {
      const t0 = Date.now();
      const r = await cluster.http(from, 'POST', `${api(from)}/v1/api/bench/c${from}x${k}/create?node=h3`, { token: admin, body: { sink: 'logger' } });
      if (r.status !== 201) throw new Error(r.text);
      into.push(Date.now() - t0);
    }
  }
  console.log(`\n4. create to accepting on h3, 4 each, alternating: through h3's API median ${median(viaOwner)} ms; through h1's ${median(viaOther)} ms; ratio ${(median(viaOther) / median(viaOwner)).toFixed(2)}x`);

  await writeResult('cluster-ingest', {
    title: 'Ingest into a table on h3, 20 senders, one event per request',
    unit: 'req/s',
    baseline: { label: "through h3's own gateway (mean of before and after)", value: localRps },
    rows: [{ label: "through h1's gateway (one hop to h3's)", value: hop.rps }],
    command: 'npm run bench:cluster',
  });
  await writeResult('cluster-create', {
    title: 'Create to accepting on h3 (median of 4)',
    unit: 'ms',
    baseline: { label: "through h3's own API", value: median(viaOwner) },
    rows: [{ label: "through h1's API (etcd, then h3 acts)", value: median(viaOther) }],
    command: 'npm run bench:cluster',
  });
} finally {
  await Promise.all([...hosts.values()].map((h) => h.destroy()));
  await cluster.destroy();
}
