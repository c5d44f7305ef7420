/**
 * Two dbs sharing one host, on real parts: two file_roll agents (one table each, file channels),
 * real nginx + Lua gateway (2 workers, every default: group commit, the fair share), Redis with a
 * random prefix. A floods (BENCH_FLOOD keep-alive clients back to back, one event a request,
 * autocannon, its own process); B sends steadily (BENCH_B_SHARE of the host's capacity, paced by
 * autocannon -R, 50 clients). Phases, BENCH_SECONDS each, BENCH_ROUNDS times in turn, medians:
 *   capacity   A alone, flooding: what the host acknowledges (the baseline)
 *   B alone    B's rate and latency with nobody else
 *   A + B      both, the fair share on (GATEWAY_FAIR_SHARE_IN_FLIGHT, default)
 *   A + B off  both, the fair share off (0): what it buys
 * Every acknowledged event is counted at its sink against the 200s.
 * Run: npm run bench:tenants   (BENCH_SECONDS=15 BENCH_ROUNDS=3 BENCH_FLOOD=<10x A's share: 5x the mark>
 * BENCH_B_SHARE=0.2 BENCH_FAIR_SHARE=<another mark> BENCH_CURVE=16,64,256: A alone at each client count)
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { loadConfig } from '../src/config-load.js';
import { agentPaths } from '../src/store/paths.js';
import { sinkLines } from '../test/helpers/flume.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { startHarness } from '../test/helpers/harness.js';
import { freePort, until } from '../test/helpers/wait.js';
import { writeResult } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** A's clients; by default ten times its share of the requests in flight (two dbs: half the mark each). */
const FLOOD_GIVEN = process.env.BENCH_FLOOD ? Number(process.env.BENCH_FLOOD) : null;
let FLOOD = 0;
const B_SHARE = Number(process.env.BENCH_B_SHARE ?? 0.2);
/** B's clients: enough that its pace, not its latency, sets its rate. */
const B_CLIENTS = 50;
const run = promisify(execFile);

interface Load {
  tag: string;
  /** 200s a second. */
  rps: number;
  /** Requests a second answered at all (200s and refusals). */
  tried: number;
  p50: number;
  p99: number;
  acked: number;
  refused: number;
  failed: number;
}

async function load(tag: string, url: string, token: string, connections: number, rate?: number): Promise<Load> {
  const body = JSON.stringify([{ headers: { src: 'bench' }, body: tag }]);
  const args = ['-j', '-c', String(connections), '-d', String(SECONDS), '-m', 'POST', '-H', 'content-type=application/json', '-H', `authorization=Bearer ${token}`, '-b', body];
  if (rate) args.push('-R', String(Math.round(rate)));
  const { stdout } = await run(join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'), [...args, url], { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as { '2xx': number; '4xx': number; non2xx: number; errors: number; timeouts: number; duration: number; latency: { p50: number; p99: number } };
  return { tag, rps: r['2xx'] / r.duration, tried: (r['2xx'] + r.non2xx) / r.duration, p50: r.latency.p50, p99: r.latency.p99, acked: r['2xx'], refused: r['4xx'], failed: r.non2xx - r['4xx'] + r.errors + r.timeouts };
}

const h = await startHarness({ PORT_RANGE: '27200-27299', GATEWAY_PORT: String(await freePort()), AGENT_HEAP: '512m' });
let gw: TestGateway | null = null;
try {
  for (const db of ['flood', 'steady']) {
    const c = await h.inject({ method: 'POST', url: `/v1/api/${db}/t/create`, payload: { channel: { capacity: 10_000_000 } } });
    if (c.statusCode !== 201) throw new Error(c.body);
  }
  const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json().token as string;
  const defaults = loadConfig({});
  const url = (db: string) => `http://${h.config.GATEWAY_HOST}:${h.config.GATEWAY_PORT}/ingest/${db}/t`;
  const withGateway = async <T>(fairShare: number, f: () => Promise<T>): Promise<T> => {
    // Every default but the per-address limits: here both dbs send from 127.0.0.1, where tenants
    // have addresses of their own (those limits' cost: bench/README.md).
    gw = new TestGateway({
      ...h.config,
      GATEWAY_RATE_LIMIT: defaults.GATEWAY_RATE_LIMIT,
      GATEWAY_BATCH_WINDOW_MS: defaults.GATEWAY_BATCH_WINDOW_MS,
      GATEWAY_FAIR_SHARE_WAIT_MS: defaults.GATEWAY_FAIR_SHARE_WAIT_MS,
      GATEWAY_CONNECTIONS_PER_ADDRESS: 0,
      GATEWAY_REQUESTS_PER_ADDRESS: 0,
      GATEWAY_FAIR_SHARE_IN_FLIGHT: fairShare,
    });
    await gw.start();
    try {
      return await f();
    } finally {
      await gw.stop();
      gw = null;
    }
  };
  // BENCH_FAIR_SHARE: another mark than the default, to see where it belongs.
  const on = Number(process.env.BENCH_FAIR_SHARE ?? defaults.GATEWAY_FAIR_SHARE_IN_FLIGHT);
  FLOOD = FLOOD_GIVEN ?? 5 * on;
  // JIT and page cache, both agents.
  await withGateway(on, () => Promise.all([load('warm-a', url('flood'), token, FLOOD), load('warm-b', url('steady'), token, FLOOD)]));

  // BENCH_CURVE=25,50,...: A alone at each number of clients, and the requests in flight then:
  // where more in flight stops adding throughput is where GATEWAY_FAIR_SHARE_IN_FLIGHT belongs.
  const curve = process.env.BENCH_CURVE ? process.env.BENCH_CURVE.split(',').map(Number) : [];
  for (const clients of curve) {
      const r = await withGateway(on, () => load(`curve${clients}`, url('flood'), token, clients));
      console.log(`A alone, ${String(clients).padStart(4)} clients: ${r.rps.toFixed(0).padStart(6)} acknowledged/s  p50 ${r.p50} ms  p99 ${r.p99} ms  in flight ~${((r.rps * r.p50) / 1000).toFixed(0)}`);
  }
  if (!curve.length) await compare(token, url, withGateway, on);
} finally {
  await (gw as TestGateway | null)?.stop();
  await h.close();
}

async function compare(token: string, url: (db: string) => string, withGateway: <T>(fairShare: number, f: () => Promise<T>) => Promise<T>, on: number): Promise<void> {
  const rows: Record<'capacity' | 'bAlone' | 'aBoth' | 'bBoth' | 'aOff' | 'bOff', Load[]> = { capacity: [], bAlone: [], aBoth: [], bBoth: [], aOff: [], bOff: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const capacity = await withGateway(on, () => load(`cap${round}`, url('flood'), token, FLOOD));
    rows.capacity.push(capacity);
    const bRate = capacity.rps * B_SHARE;
    rows.bAlone.push(await withGateway(on, () => load(`ba${round}`, url('steady'), token, B_CLIENTS, bRate)));
    const [aBoth, bBoth] = await withGateway(on, () => Promise.all([load(`ab${round}`, url('flood'), token, FLOOD), load(`bb${round}`, url('steady'), token, B_CLIENTS, bRate)]));
    rows.aBoth.push(aBoth);
    rows.bBoth.push(bBoth);
    const [aOff, bOff] = await withGateway(0, () => Promise.all([load(`ao${round}`, url('flood'), token, FLOOD), load(`bo${round}`, url('steady'), token, B_CLIENTS, bRate)]));
    rows.aOff.push(aOff);
    rows.bOff.push(bOff);
  }

  // Every acknowledged event must reach its sink.
  const lines = () => {
    const c = new Map<string, number>();
    for (const db of ['flood', 'steady']) for (const l of sinkLines(agentPaths(h.config, `flume-${db}-t`).outDir)) c.set(l, (c.get(l) ?? 0) + 1);
    return c;
  };
  const all = Object.values(rows).flat();
  const counted = await until(lines, (c) => all.every((r) => (c.get(r.tag) ?? 0) >= r.acked), 300_000, 1000);
  const lost = all.reduce((n, r) => n + Math.max(0, r.acked - (counted.get(r.tag) ?? 0)), 0);

  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const m = (k: keyof typeof rows, f: keyof Load) => med(rows[k].map((r) => r[f] as number));
  const cap = m('capacity', 'rps');
  const share = cap / 2;
  const x = (v: number) => v.toFixed(2);
  console.log(`2 dbs, one file_roll table each, 1 event a request, ${SECONDS} s a phase, ${ROUNDS} rounds (medians), A: ${FLOOD} clients back to back, B: ${Math.round(cap * B_SHARE)} req/s paced, ${(await run('nproc')).stdout.trim()} cores, GATEWAY_FAIR_SHARE_IN_FLIGHT=${on}`);
  console.log(`capacity (A alone)      ${cap.toFixed(0)} acknowledged/s   p99 ${m('capacity', 'p99')} ms   runs ${rows.capacity.map((r) => r.rps.toFixed(0)).join(', ')}`);
  console.log(`B alone                 ${m('bAlone', 'rps').toFixed(0)} acknowledged/s   p50 ${m('bAlone', 'p50')} ms   p99 ${m('bAlone', 'p99')} ms   refused ${rows.bAlone.reduce((n, r) => n + r.refused, 0)}`);
  for (const [label, a, b] of [['A + B, fair share on ', 'aBoth', 'bBoth'], ['A + B, fair share off', 'aOff', 'bOff']] as const) {
    const bRate = m(b, 'rps');
    const total = m(a, 'rps') + bRate;
    console.log(
      `${label}   B ${bRate.toFixed(0)}/s (${x(bRate / m('bAlone', 'rps'))}x alone), p50 ${m(b, 'p50')} ms, p99 ${m(b, 'p99')} ms (${x(m(b, 'p99') / m('bAlone', 'p99'))}x alone), refused ${rows[b].reduce((n, r) => n + r.refused, 0)}` +
        ` | A ${m(a, 'rps').toFixed(0)}/s acknowledged of ${m(a, 'tried').toFixed(0)}/s tried (${x(m(a, 'tried') / share)}x its share), refused ${rows[a].reduce((n, r) => n + r.refused, 0)} | host ${total.toFixed(0)}/s (${x(total / cap)}x capacity)`,
    );
  }
  console.log(`acknowledged ${all.reduce((n, r) => n + r.acked, 0)}, failed (not 2xx or 429) ${all.reduce((n, r) => n + r.failed, 0)}, lost ${lost}`);
  await writeResult('tenants', {
    title: `Two dbs on one host: B's acknowledged rate while A floods (${FLOOD} clients), 1 event a request`,
    unit: 'req/s',
    baseline: { label: `B alone (${ROUNDS} rounds, median)`, value: Math.round(m('bAlone', 'rps')) },
    rows: [
      { label: 'B while A floods, fair share on', value: Math.round(m('bBoth', 'rps')) },
      { label: 'B while A floods, fair share off', value: Math.round(m('bOff', 'rps')) },
    ],
    command: 'npm run bench:tenants',
  });
}
