/**
 * A lost host, measured (issue 24): three hosts as network namespaces with a three-member etcd
 * (test/helpers/cluster-stack.ts), lease TTL BENCH_TTL (3 s). Each figure beside the bound it is
 * measured against, from the same run, ROUNDS (3) times:
 *   1. kill -9 of every process in a host (its etcd member too) -> `node_lost` raised: against
 *      the lease TTL;
 *   2. a planned move (the old host alive) -> the table accepting on the new host, while a sender
 *      posts through a third host's gateway: time, and events acknowledged / delivered /
 *      duplicated / refused across it; against a create on that host (the floor: a move is a create);
 *   3. kill -9 of a host -> a table with automatic failover (failoverAfterSeconds = TTL) accepting
 *      on another host, then the host brought back and its old channel drained: time, and events
 *      acknowledged / delivered / duplicated; against TTL + failoverAfterSeconds + a create.
 * Run: npm run bench:cluster-loss   (as root: it creates network namespaces; about 4 min)
 */
import { ClusterStack } from '../test/helpers/cluster-stack.js';
import { until } from '../test/helpers/wait.js';
import { writeResult } from './lib.js';

const TTL = Number(process.env.BENCH_TTL ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const stack = new ClusterStack({ ttlSeconds: TTL, waitMs: 60_000, extra: { LOG_LEVEL: 'warn' } });
const { cluster } = stack;
const api = (i: number) => stack.api(i);
const gw = 'http://127.0.0.1:8080';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let token = '';

async function call(from: number, method: string, path: string, body?: unknown) {
  const r = await cluster.http(from, method, `${api(from)}${path}`, { token: stack.admin, body, timeoutS: 120 });
  if (r.status >= 300) throw new Error(`${method} ${path} through h${from}: ${r.status} ${r.text}`);
  return r.body;
}

/** Posts 5 events at a time through host `via`'s gateway until stopped. */
function sender(table: string, via: number) {
  const acked: string[] = [];
  let refused = 0;
  let stop = false;
  let n = 0;
  const done = (async () => {
    while (!stop) {
      const body = Array.from({ length: 5 }, (_, k) => ({ body: `${table}-${n}-${k}` }));
      n++;
      const r = await cluster.http(via, 'POST', `${gw}/ingest/bench/${table}`, { token, body, timeoutS: 10 });
      if (r.status === 200) acked.push(...body.map((b) => b.body));
      else refused++;
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  return { acked, get refused() { return refused; }, stop: async () => { stop = true; await done; } };
}

const deliveredOn = (table: string) => cluster.hosts().flatMap((i) => stack.host(i).delivered(`flume-bench-${table}`));
async function accounting(table: string, acked: string[]) {
  const got = await until(async () => deliveredOn(table), (g) => { const have = new Set(g); return acked.every((a) => have.has(a)); }, 120_000, 500);
  const have = new Set(got);
  return { acked: acked.length, delivered: have.size, duplicated: got.length - have.size, lost: acked.filter((a) => !have.has(a)).length };
}
const accepting = (table: string, via: number, not?: string) =>
  until(async () => (await cluster.http(via, 'GET', `${api(via)}/v1/api/bench/${table}/status`, { token: stack.admin })).body, (b) => b.accepting === true && (!not || b.node !== not), 120_000, 50);

try {
  await stack.up();
  token = String((await call(1, 'POST', '/v1/api/token', { username: 'bench-sender', scope: ['bench'] })).token);
  const spec = { sink: 'file_roll', options: { rollInterval: 0, batchSize: 1 } };
  const lost: number[] = [];
  const moves: number[] = [];
  const creates: number[] = [];
  const failovers: number[] = [];
  const moveEvents: Array<Awaited<ReturnType<typeof accounting>>> = [];
  const failEvents: Array<Awaited<ReturnType<typeof accounting>>> = [];
  let moveRefused = 0;

  for (let round = 0; round < ROUNDS; round++) {
    // 2. A planned move h2 -> h3 while h1's gateway takes events; the floor: a create on h3.
    const t0 = Date.now();
    await call(1, 'POST', `/v1/api/bench/floor${round}/create?node=h3`, spec);
    creates.push(Date.now() - t0);
    await call(1, 'POST', `/v1/api/bench/move${round}/create?node=h2`, spec);
    await until(() => cluster.http(1, 'POST', `${gw}/ingest/bench/move${round}`, { token, body: [{ body: 'warm' }] }), (x) => x.status === 200, 10_000, 50);
    const s = sender(`move${round}`, 1);
    await new Promise((res) => setTimeout(res, 1000));
    const m0 = Date.now();
    await call(1, 'POST', `/v1/api/bench/move${round}/move`, { to: 'h3' });
    await accepting(`move${round}`, 1, 'h2');
    moves.push(Date.now() - m0);
    await new Promise((res) => setTimeout(res, 1000));
    await s.stop();
    moveRefused += s.refused;
    await until(async () => stack.host(2).states()[`flume-bench-move${round}`] ?? 'gone', (st) => st === 'gone', 60_000, 250);
    moveEvents.push(await accounting(`move${round}`, ['warm', ...s.acked]));

    // 1 and 3. h3 killed -9 with a table that fails over after TTL seconds, while h1 sends to it.
    await call(1, 'POST', `/v1/api/bench/auto${round}/create?node=h3`, { ...spec, failoverAfterSeconds: TTL });
    await until(() => cluster.http(1, 'POST', `${gw}/ingest/bench/auto${round}`, { token, body: [{ body: 'warm' }] }), (x) => x.status === 200, 10_000, 50);
    const a = sender(`auto${round}`, 1);
    await new Promise((res) => setTimeout(res, 1000));
    const k0 = Date.now();
    await cluster.killHost(3);
    const incidents = await until(async () => (await cluster.http(1, 'GET', `${api(1)}/v1/api/nodes/h3/incidents`, { token: stack.admin })).body.incidents as Array<{ type: string; at: string }>, (l) => l[0]?.type !== 'node_back' && l.some((i) => i.type === 'node_lost' && Date.parse(i.at) >= k0), 60_000, 50);
    lost.push(Date.parse(incidents.find((i) => i.type === 'node_lost')!.at) - k0);
    await accepting(`auto${round}`, 1, 'h3');
    failovers.push(Date.now() - k0);
    await new Promise((res) => setTimeout(res, 1000));
    await a.stop();
    await cluster.restartEtcd(3);
    await stack.host(3).up();
    await until(async () => stack.host(3).states()[`flume-bench-auto${round}`] ?? 'gone', (st) => st === 'gone', 120_000, 250);
    failEvents.push(await accounting(`auto${round}`, ['warm', ...a.acked]));
    console.log(`round ${round + 1}: node_lost ${lost.at(-1)} ms, move ${moves.at(-1)} ms (create ${creates.at(-1)} ms), failover ${failovers.at(-1)} ms`);
  }

  const sum = (xs: Array<{ acked: number; delivered: number; duplicated: number; lost: number }>) =>
    xs.reduce((t, x) => ({ acked: t.acked + x.acked, delivered: t.delivered + x.delivered, duplicated: t.duplicated + x.duplicated, lost: t.lost + x.lost }), { acked: 0, delivered: 0, duplicated: 0, lost: 0 });
  const mv = sum(moveEvents);
  const fo = sum(failEvents);
  console.log(`\n3 hosts (network namespaces), etcd 3.4 x3, lease TTL ${TTL} s, ${ROUNDS} rounds`);
  console.log(`1. kill -9 of a host -> node_lost: median ${median(lost)} ms, max ${Math.max(...lost)} ms; the lease TTL: ${TTL * 1000} ms (${(median(lost) / (TTL * 1000)).toFixed(2)}x)`);
  console.log(`2. planned move -> accepting on the new host: median ${median(moves)} ms; a create there (the floor): ${median(creates)} ms (${(median(moves) / median(creates)).toFixed(2)}x)`);
  console.log(`   events across the moves: ${mv.acked} acknowledged, ${mv.delivered} delivered, ${mv.duplicated} duplicated, ${mv.lost} lost; ${moveRefused} requests refused`);
  console.log(`3. kill -9 -> accepting elsewhere by automatic failover (failoverAfterSeconds ${TTL}): median ${median(failovers)} ms; bound TTL + failoverAfterSeconds + a create: ${TTL * 2000 + median(creates)} ms`);
  console.log(`   events across the failovers (old channels drained when the host returned): ${fo.acked} acknowledged, ${fo.delivered} delivered, ${fo.duplicated} duplicated, ${fo.lost} lost`);

  await writeResult('cluster-loss', {
    title: `A lost host and moves, lease TTL ${TTL} s (medians of ${ROUNDS})`,
    unit: 'ms',
    baseline: { label: 'the lease TTL', value: TTL * 1000 },
    rows: [
      { label: 'kill -9 -> node_lost', value: median(lost) },
      { label: 'planned move -> accepting on the new host', value: median(moves) },
      { label: 'a create on that host (the floor of a move)', value: median(creates) },
      { label: `kill -9 -> accepting elsewhere (failover after ${TTL} s)`, value: median(failovers) },
    ],
    command: 'npm run bench:cluster-loss',
  });
} finally {
  await stack.down();
}
