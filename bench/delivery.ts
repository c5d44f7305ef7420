/**
 * Delivery a sender can choose (issue 44), against a real Kafka broker (test/servers/kafka):
 * 1. what waiting for the sink costs: requests into a kafka-sink table (acks=all) through the
 *    gateway, with `Prefer: ack=sink` and without, in turn (BENCH_ROUNDS, default 3), at
 *    BENCH_CLIENTS concurrent clients (default 10) for BENCH_SECONDS each, and one request after
 *    another (one client, 300 requests: a quiet table); p50/p99 and req/s, medians of the rounds;
 * 2. duplicates: BENCH_SENDERS senders (default 8) posting one event a request while the agent's
 *    JVM is killed -9 BENCH_KILLS times (default 10), into a table with the producer the template
 *    had before (acks=1, not idempotent) and one with today's (acks=all, idempotent); every
 *    acknowledged event looked for in the topic, duplicates counted by eventId, and producer-retry
 *    duplicates (two copies in batches of one producer id) from the broker's log.
 * Run: npm run bench:delivery
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { agentPaths } from '../src/store/paths.js';
import { TestGateway, ingest } from '../test/helpers/gateway.js';
import { startHarness } from '../test/helpers/harness.js';
import { TestKafka } from '../test/helpers/kafka.js';
import { freePort, until } from '../test/helpers/wait.js';
import { SECONDS, f1, run, writeResult } from './lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 10);
const SENDERS = Number(process.env.BENCH_SENDERS ?? 8);
const KILLS = Number(process.env.BENCH_KILLS ?? 10);
const body = JSON.stringify([{ body: 'order 42 paid' }]);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Latency {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
}

async function load(url: string, token: string, headers: string[], clients: number, bound: string[]): Promise<Latency> {
  const { stdout } = await run(
    join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'),
    ['-j', '-c', String(clients), ...bound, '-m', 'POST', '-H', 'content-type=application/json', '-H', `authorization=Bearer ${token}`, ...headers.flatMap((h) => ['-H', h]), '-b', body, url],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const r = JSON.parse(stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx + r.errors };
}

const kafka = new TestKafka();
await kafka.start();
const h = await startHarness({ PORT_RANGE: '13100-13199', GATEWAY_PORT: String(await freePort()), AGENT_HEAP: '256m', GATEWAY_RATE_LIMIT: '0' });
const gw = new TestGateway(h.config);
try {
  await gw.start();
  const token = ((await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json() as { token: string }).token;
  const create = async (table: string, options: object) => {
    const r = await h.inject({ method: 'POST', url: `/v1/api/load/${table}/create`, payload: { sink: 'kafka', options: { bootstrapServers: kafka.bootstrap, ...options } } });
    if (r.statusCode !== 201) throw new Error(r.body);
  };
  const cores = (await run('nproc')).stdout.trim();

  // 1. Latency.
  await create('latency', { acks: 'all' });
  const url = `${gw.url}/ingest/load/latency`;
  const kinds = { channel: [] as string[], sink: ['prefer=ack=sink'] };
  const busy: Record<string, Latency[]> = { channel: [], sink: [] };
  const quiet: Record<string, Latency[]> = { channel: [], sink: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const [kind, headers] of Object.entries(kinds)) {
      busy[kind]!.push(await load(url, token, headers, CLIENTS, ['-d', String(SECONDS)]));
      quiet[kind]!.push(await load(url, token, headers, 1, ['-a', '300']));
    }
  }
  const med = (ls: Latency[]) => ({ rps: median(ls.map((l) => l.rps)), p50: median(ls.map((l) => l.p50)), p99: median(ls.map((l) => l.p99)), non2xx: ls.reduce((n, l) => n + l.non2xx, 0) });
  const [bc, bs, qc, qs] = [med(busy.channel!), med(busy.sink!), med(quiet.channel!), med(quiet.sink!)];
  console.log(`kafka sink (acks=all), file channel, ${cores} cores; medians of ${ROUNDS} rounds`);
  console.log(`  ${CLIENTS} clients for ${SECONDS} s: default ${f1(bc.rps)} req/s, p50 ${bc.p50} ms, p99 ${bc.p99} ms; ack=sink ${f1(bs.rps)} req/s, p50 ${bs.p50} ms, p99 ${bs.p99} ms (added p50 ${bs.p50 - bc.p50} ms, p99 ${bs.p99 - bc.p99} ms; answers other than 200: ${bc.non2xx}, ${bs.non2xx})`);
  console.log(`  one request after another: default p50 ${qc.p50} ms, p99 ${qc.p99} ms; ack=sink p50 ${qs.p50} ms, p99 ${qs.p99} ms (added p50 ${qs.p50 - qc.p50} ms, p99 ${qs.p99 - qc.p99} ms)`);

  // 2. Duplicates across kill -9 of the agent.
  const crash = async (table: string, acks: '1' | 'all') => {
    await create(table, { acks, batchSize: 100 });
    const conf = readFileSync(agentPaths(h.config, `flume-load-${table}`).flumeConf, 'utf8');
    const idempotent = /enable\.idempotence = true/.test(conf);
    const acked: string[] = [];
    let on = true;
    const senders = Array.from({ length: SENDERS }, (_, c) =>
      (async () => {
        for (let i = 0; on; i++) {
          const b = `${table}-${c}-${i}`;
          const r = await ingest(gw, 'load', table, token, [{ body: b }]).catch(() => null);
          if (r?.status === 200) acked.push(b);
        }
      })(),
    );
    const status = () => h.status('load', table, { fresh: true });
    for (let k = 0; k < KILLS; k++) {
      const before = acked.length;
      await until(async () => acked.length, (n) => n >= before + 200, 60_000, 20);
      const { pid } = await status();
      process.kill(pid!, 'SIGKILL');
      await until(status, (st) => st.accepting && st.pid !== pid, 120_000, 250);
    }
    on = false;
    await Promise.all(senders);
    const topic = `load.${table}`;
    const records = await until(() => kafka.consume(topic, 3000), (l) => { const got = new Set(l.map((x) => x.value)); return acked.every((b) => got.has(b)); }, 180_000, 0);
    const got = new Set(records.map((x) => x.value));
    const lost = acked.filter((b) => !got.has(b)).length;
    const ids = new Set(records.map((x) => x.headers.eventId));
    const stored = await kafka.stored(topic);
    const producersOf = new Map<string, number[]>();
    for (const r of stored) producersOf.set(r.value, [...(producersOf.get(r.value) ?? []), r.producerId]);
    const retry = idempotent ? [...producersOf.values()].reduce((n, p) => n + (p.length - new Set(p).size), 0) : null;
    return { acks, idempotent, acked: acked.length, records: records.length, duplicates: records.length - ids.size, retry, lost };
  };
  const before = await crash('before', '1');
  const after = await crash('after', 'all');
  for (const c of [before, after]) {
    console.log(
      `  kill -9 x${KILLS} under load, acks=${c.acks} (${c.idempotent ? 'idempotent' : 'not idempotent'}): ${c.acked} acknowledged, ${c.records} records, ${c.duplicates} duplicates by eventId, producer-retry duplicates ${c.retry ?? 'cannot be told (no producer id without idempotence)'}, lost ${c.lost}`,
    );
  }

  await writeResult('delivery', {
    title: `Waiting for the sink: latency into Kafka (acks=all), ${CLIENTS} clients and one at a time`,
    unit: 'ms',
    baseline: { label: `default (committed to the channel), ${CLIENTS} clients, p50`, value: bc.p50 },
    rows: [
      { label: `default, ${CLIENTS} clients, p99`, value: bc.p99 },
      { label: `ack=sink, ${CLIENTS} clients, p50`, value: bs.p50 },
      { label: `ack=sink, ${CLIENTS} clients, p99`, value: bs.p99 },
      { label: 'default, one at a time, p50', value: qc.p50 },
      { label: 'default, one at a time, p99', value: qc.p99 },
      { label: 'ack=sink, one at a time, p50', value: qs.p50 },
      { label: 'ack=sink, one at a time, p99', value: qs.p99 },
    ],
    command: 'npm run bench:delivery',
  });
} finally {
  await gw.stop();
  await h.close();
  await kafka.destroy();
}
