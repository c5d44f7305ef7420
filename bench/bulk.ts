/**
 * Bulk operations on N real agents (default 50), in one run, each beside its baselines:
 *   - stop all: POST /v1/api/bulk/stop (one operation) against the original design's way, one
 *     `supervisorctl stop NAME` process per agent (8 at a time), and against N concurrent
 *     single-table POST .../stop calls;
 *   - restart all: POST /v1/api/bulk/restart against one `supervisorctl restart NAME` per agent
 *     (8 at a time).
 * Every agent is started again (bulk start) between rounds; each round ends when every agent
 * is stopped (or accepting again) as the API observes it.
 * Run: npm run bench:bulk   (BENCH_AGENTS=N, BENCH_CONCURRENCY=C for the bulk calls, default N)
 */
import { execFile } from 'node:child_process';
import { cpus } from 'node:os';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import { startHarness } from '../test/helpers/harness.js';
import { until } from '../test/helpers/wait.js';
import { writeResult } from './lib.js';

const run = promisify(execFile);
const N = Number(process.env.BENCH_AGENTS ?? 50);
const C = Number(process.env.BENCH_CONCURRENCY ?? N);
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const h = await startHarness({ PORT_RANGE: '24000-24999', AGENT_HEAP: '96m' });
const tables = Array.from({ length: N }, (_, i) => `t${i}`);
const programs = tables.map((t) => `flume-bulk-${t}`);

async function operation(op: string, concurrency: number): Promise<{ ms: number; counts: Record<string, number> }> {
  const t0 = performance.now();
  const r = await h.inject({ method: 'POST', url: `/v1/api/bulk/${op}`, payload: { db: 'bulk', concurrency } });
  if (r.statusCode !== 202) throw new Error(r.body);
  const id = r.json().operation.id as string;
  const done = await until(
    async () => (await h.inject({ method: 'GET', url: `/v1/api/operations/${id}` })).json().operation,
    (o: { state: string; counts: Record<string, number> }) => o.state === 'done',
    600_000,
    20,
  );
  return { ms: performance.now() - t0, counts: done.counts };
}

const allStopped = async () => {
  const infos = await h.driver.infoAll();
  return programs.every((p) => infos.find((i) => i.name === p)?.state === 'STOPPED');
};
async function ctlEach(verb: string): Promise<number> {
  const t0 = performance.now();
  const limit = pLimit(8);
  await Promise.all(programs.map((p) => limit(() => run('supervisorctl', ['-s', `unix://${h.supervisord.socket}`, verb, p]))));
  return performance.now() - t0;
}
async function startAll(): Promise<void> {
  const r = await operation('start', 8);
  if (r.counts.failed) throw new Error(`start failed: ${JSON.stringify(r.counts)}`);
}

try {
  const t0 = performance.now();
  const limit = pLimit(10);
  await Promise.all(
    tables.map((t) =>
      limit(async () => {
        const r = await h.inject({ method: 'POST', url: `/v1/api/bulk/${t}/create`, payload: { sink: 'logger' } });
        if (r.statusCode !== 201) throw new Error(r.body);
      }),
    ),
  );
  console.log(`machine: ${cpus().length} cores; ${N} agents (logger sink, -Xmx96m) created 10 at a time in ${s(performance.now() - t0)}`);

  const bulkStop = await operation('stop', C);
  if (!(await allStopped())) throw new Error('bulk stop left agents running');
  await startAll();
  const ctlStop = await ctlEach('stop');
  if (!(await allStopped())) throw new Error('supervisorctl stop left agents running');
  await startAll();
  const t1 = performance.now();
  await Promise.all(tables.map((t) => h.inject({ method: 'POST', url: `/v1/api/bulk/${t}/stop` })));
  const singleStops = performance.now() - t1;
  await startAll();

  const bulkRestart = await operation('restart', C);
  const ctlRestart = await ctlEach('restart');
  // Wait until every agent accepts again before the numbers are final.
  await until(async () => { await h.fleet.refresh(); return h.agents.list({ db: 'bulk' }); }, (l) => l.every((a) => a.accepting), 300_000, 200);

  console.log(`stop ${N} agents:`);
  console.log(`  bulk stop (concurrency ${C}): ${s(bulkStop.ms)} (${JSON.stringify(bulkStop.counts)})`);
  console.log(`  baseline, one supervisorctl stop per agent, 8 at a time: ${s(ctlStop)}; ratio ${(ctlStop / bulkStop.ms).toFixed(1)}x`);
  console.log(`  baseline, ${N} concurrent POST .../stop: ${s(singleStops)}; ratio ${(singleStops / bulkStop.ms).toFixed(1)}x`);
  console.log(`restart ${N} agents (to accepting):`);
  console.log(`  bulk restart (concurrency ${C}): ${s(bulkRestart.ms)} (${JSON.stringify(bulkRestart.counts)})`);
  console.log(`  baseline, one supervisorctl restart per agent, 8 at a time (returns past startsecs, not at accepting): ${s(ctlRestart)}; ratio ${(ctlRestart / bulkRestart.ms).toFixed(1)}x`);
  await writeResult('bulk', {
    title: `Stopping ${N} agents`,
    unit: 's',
    baseline: { label: 'one supervisorctl stop per agent, 8 at a time', value: ctlStop / 1000 },
    rows: [
      { label: `bulk stop (concurrency ${C})`, value: bulkStop.ms / 1000 },
      { label: `${N} concurrent POST .../stop`, value: singleStops / 1000 },
    ],
    command: 'npm run bench:bulk',
  });
} finally {
  await h.close();
}
