/**
 * The original team's load (../shared/seeds/002_*: 10,000 single-event requests from 100
 * concurrent clients through nginx + uwsgi + Flask into Kafka, 49 s, 0 lost), on our path:
 * through the gateway into a kafka-sink agent, and in the same run straight to an agent.
 * Every acknowledged event is counted in its topic by a real consumer.
 * Run: npm run bench:kafka   (BENCH_REQUESTS=N, default 10000; BENCH_CLIENTS=N, default 100)
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { INTAKE_KEY_HEADER } from '../src/agents/route-table.js';
import { agentOf, routePort } from '../test/helpers/flume.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { startHarness } from '../test/helpers/harness.js';
import { TestKafka } from '../test/helpers/kafka.js';
import { freePort, until } from '../test/helpers/wait.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 10_000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 100);
const run = promisify(execFile);
const body = JSON.stringify([{ headers: { src: 'bench' }, body: 'order 42 paid' }]);

interface Result {
  seconds: number;
  rps: number;
  p99: number;
  acked: number;
  failed: number;
}

/** `header`: the gateway's Authorization, or the agent's intake key straight to it (autocannon's name=value). */
async function load(url: string, header: string | null): Promise<Result> {
  const t0 = performance.now();
  const { stdout } = await run(
    join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'),
    ['-j', '-c', String(CLIENTS), '-a', String(REQUESTS), '-m', 'POST', '-H', 'content-type=application/json', ...(header ? ['-H', header] : []), '-b', body, url],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const seconds = (performance.now() - t0) / 1000;
  const r = JSON.parse(stdout) as { '2xx': number; non2xx: number; errors: number; requests: { average: number }; latency: { p99: number } };
  return { seconds, rps: r['2xx'] / seconds, p99: r.latency.p99, acked: r['2xx'], failed: r.non2xx + r.errors };
}

const kafka = new TestKafka();
await kafka.start();
const h = await startHarness({ PORT_RANGE: '13000-13099', GATEWAY_PORT: String(await freePort()), AGENT_HEAP: '512m', GATEWAY_RATE_LIMIT: '0' });
const gw = new TestGateway(h.config);
try {
  await gw.start();
  for (const t of ['gateway', 'direct']) {
    const r = await h.inject({ method: 'POST', url: `/v1/api/load/${t}/create`, payload: { sink: 'kafka', options: { bootstrapServers: kafka.bootstrap, acks: 'all' } } });
    if (r.statusCode !== 201) throw new Error(r.body);
  }
  const token = ((await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json() as { token: string }).token;
  const port = (await routePort(h.redis, h.keys, 'load', 'direct'))!;

  const viaGateway = await load(`${gw.url}/ingest/load/gateway`, `authorization=Bearer ${token}`);
  const direct = await load(`http://127.0.0.1:${port}/`, `${INTAKE_KEY_HEADER}=${agentOf(h.config, 'load', 'direct').key ?? ''}`);
  const count = async (topic: string, expected: number) =>
    (await until(() => kafka.consume(topic), (l) => l.length >= expected, 120_000, 0)).length;
  const inGateway = await count('load.gateway', viaGateway.acked);
  const inDirect = await count('load.direct', direct.acked);

  const f = (x: number) => x.toFixed(1);
  console.log(`${REQUESTS} single-event requests, ${CLIENTS} concurrent clients, kafka sink (acks=all), file channel; ${(await run('nproc')).stdout.trim()} cores`);
  console.log(`  through the gateway: ${f(viaGateway.seconds)} s, ${f(viaGateway.rps)} req/s, p99 ${f(viaGateway.p99)} ms; acknowledged ${viaGateway.acked}, refused ${viaGateway.failed}, in the topic ${inGateway}`);
  console.log(`  straight to an agent: ${f(direct.seconds)} s, ${f(direct.rps)} req/s, p99 ${f(direct.p99)} ms; acknowledged ${direct.acked}, refused ${direct.failed}, in the topic ${inDirect}`);
  console.log(`  the original (002: nginx + uwsgi + Flask into Kafka): 49 s for 10000 requests from 100 clients, 0 lost`);
  console.log(`  lost (acknowledged but not in the topic): gateway ${Math.max(0, viaGateway.acked - inGateway)}, direct ${Math.max(0, direct.acked - inDirect)}`);
} finally {
  await gw.stop();
  await h.close();
  await kafka.destroy();
}
