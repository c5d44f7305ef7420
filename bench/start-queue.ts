/**
 * Creates that never thrash: BENCH_AGENTS creates fired 4, 10, 25 and 50 at a time at the API
 * (its own process, dist/server.js, under its own supervisord, default settings: the start
 * queue lets AGENT_START_CONCURRENCY JVMs start at once), each total set beside
 *   - the floor: BENCH_AGENTS x the CPU one JVM takes to start when it starts alone, spread
 *     over every core (no way of starting them is faster), measured first in the same run;
 *   - the best of the four;
 *   - the same creates with a queue of twice the cores (or the cores, if the default was
 *     changed), and without the queue
 *     (AGENT_START_CONCURRENCY=256, as before it), at 10 at a time, in the same run.
 * For each: CPU seconds per JVM start, the CPU the API and supervisord used, how busy the host
 * was, the first create's answer time, and how many failed.
 * Between rounds every agent is deleted (bulk) and its JVM is gone.
 * Run: npm run bench:start-queue   (BENCH_AGENTS=100 BENCH_LEVELS=4,10,25,50; BENCH_COMPARE=0 skips the
 * comparison rounds (another queue size, no queue); about 12 GB of RAM, 14 min)
 */
import { readFileSync } from 'node:fs';
import pLimit from 'p-limit';
import { loadConfig } from '../src/config-load.js';
import { pidAlive } from '../test/helpers/flume.js';
import { freePort, until } from '../test/helpers/wait.js';
import { cpuSeconds, f1, run, startApi, benchStack, writeResult } from './lib.js';

const N = Number(process.env.BENCH_AGENTS ?? 100);
const LEVELS = (process.env.BENCH_LEVELS ?? '4,10,25,50').split(',').map(Number);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const stack = await benchStack('bench-queue');
const { supervisord } = stack;
const base = { ...stack.env, PORT_RANGE: '14000-14999' };
let api: Awaited<ReturnType<typeof startApi>> | null = null;

interface Round {
  name: string;
  seconds: number;
  firstAnswerMs: number;
  cpuPerStart: number;
  /** The same JVMs' CPU seconds read the moment each create answered (its start alone, not what it did after). */
  cpuAtAnswer: number;
  failed: number;
  failures: string[];
  /** CPU seconds the API process, supervisord and the whole host used during the round. */
  apiCpu: number;
  supervisordCpu: number;
  hostCpu: number;
}

/** CPU seconds (all cores, user + system) the host has used since boot, from /proc/stat. */
function hostCpuSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / 100; // user nice system irq softirq steal
}

try {
  const cores = Number((await run('nproc')).stdout.trim());
  const queueDefault = loadConfig({}).AGENT_START_CONCURRENCY;

  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${api!.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${api!.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };
  const agents = async (db: string) => (await call('GET', `/v1/api/services?db=${db}`)).json.agents as Array<{ pid: number | null }>;
  const deleteAll = async (db: string) => {
    const pids = (await agents(db)).map((a) => a.pid).filter((p): p is number => !!p);
    const r = await call('POST', '/v1/api/bulk/delete', { db, concurrency: 32 });
    if (r.status !== 202) throw new Error(`bulk delete: ${r.status} ${JSON.stringify(r.json)}`);
    const id = (r.json.operation as { id: string }).id;
    await until(() => call('GET', `/v1/api/operations/${id}`), (o) => (o.json.operation as { state: string }).state === 'done', 600_000, 200);
    await until(() => pids.filter(pidAlive).length, (n) => n === 0, 120_000, 200);
  };
  /** N creates, `c` at a time from the client; every create answered once its agent accepts. */
  const round = async (name: string, db: string, c: number): Promise<Round> => {
    const limit = pLimit(c);
    const failures: string[] = [];
    let first = 0;
    const atAnswer: number[] = [];
    const cpu0 = { api: cpuSeconds(api!.child.pid!), sup: cpuSeconds(supervisord.pid!), host: hostCpuSeconds() };
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        limit(async () => {
          const r = await call('POST', `/v1/api/${db}/t${i}/create`, { sink: 'logger' });
          if (!first) first = performance.now() - t0;
          if (r.status !== 201) failures.push(`${r.status} ${String(r.json.message).slice(0, 120)}`);
          else if (typeof r.json.pid === 'number') atAnswer.push(cpuSeconds(r.json.pid));
        }),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    const apiCpu = cpuSeconds(api!.child.pid!) - cpu0.api;
    const supervisordCpu = cpuSeconds(supervisord.pid!) - cpu0.sup;
    const hostCpu = hostCpuSeconds() - cpu0.host;
    const pids = (await agents(db)).map((a) => a.pid).filter((p): p is number => !!p);
    const cpu = pids.reduce((s, p) => s + cpuSeconds(p), 0);
    await deleteAll(db);
    return { name, seconds, firstAnswerMs: first, cpuPerStart: cpu / Math.max(1, pids.length), cpuAtAnswer: atAnswer.reduce((a, b) => a + b, 0) / Math.max(1, atAnswer.length), failed: failures.length, failures: failures.slice(0, 3), apiCpu, supervisordCpu, hostCpu };
  };

  // The floor: JVMs started alone, one after another; the CPU each took to accept events.
  api = await startApi(base, await freePort());
  const alone: number[] = [];
  const aloneMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = await call('POST', `/v1/api/alone/t${i}/create`, { sink: 'logger' });
    if (r.status !== 201) throw new Error(`create alone: ${r.status} ${JSON.stringify(r.json)}`);
    aloneMs.push(performance.now() - t0);
    alone.push(cpuSeconds(r.json.pid as number));
  }
  await deleteAll('alone');
  const perStart = median(alone);
  const floor = (N * perStart) / cores;

  const rounds: Round[] = [];
  for (const c of LEVELS) rounds.push(await round(`${c} at a time (queue: ${queueDefault})`, `q${c}`, c));
  await api.stop();
  // The queue's size against the default: as many starts as cores, and no queue at all.
  const others: Round[] = [];
  const compare = process.env.BENCH_COMPARE !== '0';
  if (compare) {
    const twice = cores * 2;
    const other = queueDefault === cores ? twice : cores;
    api = await startApi({ ...base, AGENT_START_CONCURRENCY: String(other) }, await freePort());
    others.push(await round(`10 at a time, queue of ${other} (AGENT_START_CONCURRENCY=${other}, ${other === cores ? 'the cores' : 'twice the cores'})`, 'qother', 10));
    await api.stop();
  }
  if (compare) {
    api = await startApi({ ...base, AGENT_START_CONCURRENCY: '256' }, await freePort());
    others.push(await round('10 at a time, no queue (AGENT_START_CONCURRENCY=256)', 'noqueue', 10));
    await api.stop();
  }
  api = null;

  const best = Math.min(...rounds.map((r) => r.seconds));
  console.log(`${N} creates (logger sink) on ${cores} cores; the API as its own process under supervisord, default settings (AGENT_START_CONCURRENCY=${queueDefault})`);
  console.log(`floor: one JVM started alone takes ${perStart.toFixed(2)} CPU s (median of 5; each create answered in median ${f1(median(aloneMs))} ms), so ${N} need at least ${f1(floor)} s on ${cores} cores`);
  console.log('| fired at once | total | vs floor | vs best | CPU s per JVM start (at its answer / at the round end) | API CPU s | supervisord CPU s | host busy | first answer | failed |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of [...rounds, ...others]) {
    console.log(
      `| ${r.name} | ${f1(r.seconds)} s | ${(r.seconds / floor).toFixed(2)}x | ${(r.seconds / best).toFixed(2)}x | ${r.cpuAtAnswer.toFixed(2)} / ${r.cpuPerStart.toFixed(2)} | ${f1(r.apiCpu)} | ${f1(r.supervisordCpu)} | ${((100 * r.hostCpu) / (r.seconds * cores)).toFixed(0)}% | ${f1(r.firstAnswerMs / 1000)} s | ${r.failed}${r.failures.length ? ` (${r.failures.join('; ')})` : ''} |`,
    );
  }
  await writeResult('start-queue', {
    title: `${N} creates fired N at a time on ${cores} cores: seconds until all accept events`,
    unit: 's',
    baseline: { label: `floor (${N} x one JVM's start CPU alone / ${cores} cores)`, value: Math.round(floor * 10) / 10 },
    rows: [...rounds, ...others].map((r) => ({ label: r.name.replace(/ \(AGENT_START_CONCURRENCY=\d+.*\)$/, '').replace(/ \(queue: \d+\)$/, `, queue of ${queueDefault}`), value: Math.round(r.seconds * 10) / 10 })),
    command: 'npm run bench:start-queue',
  });
} finally {
  await api?.stop();
  await stack.close();
}
