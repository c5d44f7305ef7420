/**
 * Where each acknowledged event's CPU goes (issue 48), in one run with every default: one
 * file_roll agent (file channel), the real nginx + Lua gateway, the local Redis. The load is wrk
 * (C, its own process: a node generator would take one of the cores measured), BENCH_CLIENTS
 * keep-alive clients posting one event per request for BENCH_SECONDS, in phases run in turn
 * BENCH_ROUNDS times (figures are medians):
 *   - the floor: the gateway's nginx answering by itself (GET /healthz, `return 200`);
 *   - straight to the agent (Flume's HTTP source: the hop the gateway saves nobody);
 *   - through the gateway, every default (group commit, rate limit, per-address limits, fair share).
 * For each: acknowledged events/s and per core, CPU microseconds per event for nginx (master and
 * workers), the agent's JVM, Redis, this process (the API, idle here) and the rest of the machine
 * (wrk and the kernel's share outside those), the file channel's fsyncs (fsync/fdatasync calls
 * counted by perf where it may trace, else n/a) and the disk's flushes (/proc/diskstats), and
 * events per fsync. Beside them the disk's own fsync floor: one writer appending 64 bytes and
 * calling fdatasync in a loop, in the agent's directory. Every acknowledged event is counted at the
 * sink afterwards.
 * Run: npm run bench:datapath   (BENCH_SECONDS=10 BENCH_CLIENTS=100 BENCH_ROUNDS=3)
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { agentPaths } from '../src/store/paths.js';
import { INTAKE_KEY_HEADER } from '../src/agents/route-table.js';
import { agentOf, routePort, sinkLines } from '../test/helpers/flume.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { REDIS_URL, startHarness } from '../test/helpers/harness.js';
import { freePort, until } from '../test/helpers/wait.js';
import { cpuSeconds, writeResult } from './lib.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CORES = availableParallelism();
const run = promisify(execFile);

interface Load { requests: number; durationUs: number; status: number; connect: number; read: number; write: number; timeout: number; p50Us: number; p99Us: number }
interface Sample { name: string; tag: string; rps: number; acked: number; refused: number; p50: number; p99: number; cpu: Record<string, number>; fsyncs: number | null; flushes: number | null; wall: number; agentRequests: number }

/** wrk against `url` (POST `body` when given, else GET), its done() line parsed. */
/** `auth`: the gateway's Authorization value, or the agent's intake key ({ intakeKey }) straight to it. */
async function wrk(url: string, body: string | null, auth: string | { intakeKey: string } | null): Promise<Load> {
  const args = ['-t', String(Math.min(2, CORES)), '-c', String(CLIENTS), '-d', `${SECONDS}s`, '--timeout', '10s', '-s', join(PROJECT_ROOT, 'bench', 'wrk-request.lua'), url];
  const { stdout } = await run('wrk', args, { env: { PATH: process.env.PATH ?? '', BENCH_BODY: body ?? '', BENCH_AUTH: typeof auth === 'string' ? auth : '', BENCH_INTAKE_KEY: auth && typeof auth === 'object' ? auth.intakeKey : '' }, maxBuffer: 16 * 1024 * 1024 });
  const line = stdout.split('\n').find((l) => l.startsWith('{"requests"'));
  if (!line) throw new Error(`wrk printed no summary: ${stdout}`);
  return JSON.parse(line) as Load;
}

/** The machine's busy CPU seconds (all cores: everything but idle and iowait), from /proc/stat. */
function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - f[3]! - f[4]!) / 100;
}
/** A process and its children (nginx: the master and its workers). */
function withChildren(pid: number): number[] {
  const kids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === pid;
    } catch {
      return false;
    }
  });
  return [pid, ...kids.map(Number)];
}
/** The agent's HTTP source: requests it took so far (Flume's AppendBatchAcceptedCount, from its metrics port). */
async function agentRequests(metricsPort: number): Promise<number> {
  const m = (await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).json()) as Record<string, Record<string, string>>;
  return Number(m['SOURCE.r1']?.AppendBatchAcceptedCount ?? 0);
}
const cpuOf = (pids: number[]) => pids.reduce((s, p) => s + (existsSync(`/proc/${p}`) ? cpuSeconds(p) : 0), 0);

/** The block device under `dir` (the whole disk, not a partition): its flush requests so far. */
function diskFlushes(dir: string): () => number | null {
  const dev = statSync(dir).dev;
  const sys = `/sys/dev/block/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`;
  if (!existsSync(sys)) return () => null;
  const real = realpathSync(sys);
  const name = basename(existsSync(join(real, 'partition')) ? dirname(real) : real);
  return () => {
    const f = readFileSync('/proc/diskstats', 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).find((x) => x[2] === name);
    return f && f.length >= 20 ? Number(f[18]) : null; // flush requests completed (kernel 5.5+)
  };
}

/** fsync and fdatasync calls machine-wide while `ms` pass, counted by perf's tracepoints (root); null if perf may not. */
function countFsyncs(ms: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn('perf', ['stat', '-x', ',', '-a', '-e', 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync', '--', 'sleep', String(ms / 1000)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', () => resolve(null));
    child.on('close', (code) => {
      const counts = err.split('\n').filter((l) => l.includes('syscalls:')).map((l) => Number(l.split(',')[0]));
      resolve(code === 0 && counts.length === 2 && counts.every(Number.isFinite) ? counts[0]! + counts[1]! : null);
    });
  });
}

/** The disk's own rate: one writer, 64-byte appends each followed by fdatasync, for `ms`. */
function fsyncFloor(dir: string, ms: number): number {
  const file = join(dir, '.fsync-floor');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64, 120);
  let n = 0;
  const end = performance.now() + ms;
  try {
    while (performance.now() < end) {
      writeSync(fd, chunk);
      fdatasyncSync(fd);
      n++;
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return n / (ms / 1000);
}

const h = await startHarness({ PORT_RANGE: '27200-27299', GATEWAY_PORT: String(await freePort()) });
const gw = new TestGateway(h.config);
const redis = new Redis(REDIS_URL);
try {
  // BENCH_JVM_OPTIONS: the agent's JVM options instead of AGENT_JVM_OPTIONS' (its spec's jvm.options).
  const jvm = process.env.BENCH_JVM_OPTIONS ? { jvm: { options: process.env.BENCH_JVM_OPTIONS.split(' ').filter(Boolean) } } : {};
  const created = await h.inject({ method: 'POST', url: '/v1/api/bench/dp/create', payload: jvm });
  if (created.statusCode !== 201) throw new Error(created.body);
  let agentPid = (created.json() as { pid: number }).pid;
  const metricsPort = Number(/ m=(\d+)/.exec((await h.redis.get(h.keys.route('bench', 'dp'))) ?? '')?.[1]);
  const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json().token as string;
  // BENCH_DATA_DIRS=N (an experiment, not a setting of the product): the agent's file channel
  // rewritten to N data directories (Flume then writes and fsyncs through N log writers).
  const dataDirs = Number(process.env.BENCH_DATA_DIRS ?? 1);
  if (dataDirs > 1) {
    const conf = agentPaths(h.config, 'flume-bench-dp').flumeConf;
    const ctl = (...a: string[]) => run('supervisorctl', ['-c', h.supervisord.configFile, ...a]);
    await ctl('stop', 'flume-bench-dp');
    const text = readFileSync(conf, 'utf8').replace(/^(a1\.channels\.c1\.dataDirs = )(.*)$/m, (_, k: string, d: string) => k + Array.from({ length: dataDirs }, (_x, i) => (i ? `${d}${i}` : d)).join(','));
    writeFileSync(conf, text);
    await ctl('start', 'flume-bench-dp');
    const agentPort = (await routePort(h.redis, h.keys, 'bench', 'dp'))!;
    const key = agentOf(h.config, 'bench', 'dp').key ?? '';
    await until(() => fetch(`http://127.0.0.1:${agentPort}/`, { method: 'POST', body: '[]', headers: { [INTAKE_KEY_HEADER]: key } }).then((r) => r.status, () => 0), (st) => st === 200, 60_000, 250);
  }
  const port = (await routePort(h.redis, h.keys, 'bench', 'dp'))!;
  if (dataDirs > 1) agentPid = Number((await run('supervisorctl', ['-c', h.supervisord.configFile, 'pid', 'flume-bench-dp'])).stdout.trim());
  await gw.start();
  const nginxPid = (gw as unknown as { child: { pid: number } }).child.pid;
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
  const paths = agentPaths(h.config, 'flume-bench-dp');
  const flushes = diskFlushes(paths.varDir);
  const body = (tag: string) => JSON.stringify([{ headers: { src: 'bench' }, body: tag }]);
  const phases = [
    { name: 'nginx answering by itself (/healthz)', url: `${gw.url}/healthz`, post: false, auth: null },
    { name: 'straight to the agent', url: `http://127.0.0.1:${port}/`, post: true, auth: { intakeKey: agentOf(h.config, 'bench', 'dp').key ?? '' } },
    { name: 'through the gateway, every default', url: `${gw.url}/ingest/bench/dp`, post: true, auth: `Bearer ${token}` },
  ];
  const floors: number[] = [];
  const samples: Sample[][] = phases.map(() => []);
  await wrk(phases[1]!.url, body('warm'), phases[1]!.auth); // JIT and page cache
  for (let round = 0; round < ROUNDS; round++) {
    floors.push(fsyncFloor(paths.varDir, 2000));
    for (const [i, p] of phases.entries()) {
      const tag = `p${i}r${round}`;
      const procs = { nginx: withChildren(nginxPid), agent: [agentPid], redis: [redisPid], 'API (this process)': [process.pid] };
      const before = Object.fromEntries(Object.entries(procs).map(([k, pids]) => [k, cpuOf(pids)]));
      const [busy0, flush0, req0, t0] = [machineBusy(), flushes(), await agentRequests(metricsPort), performance.now()];
      const [load, fsyncs] = await Promise.all([wrk(p.url, p.post ? body(tag) : null, p.auth), p.post ? countFsyncs(SECONDS * 1000) : Promise.resolve(null)]);
      const wall = (performance.now() - t0) / 1000;
      const cpu: Record<string, number> = {};
      for (const [k, pids] of Object.entries(procs)) cpu[k] = cpuOf(pids) - before[k]!;
      const [flush1, req1] = [flushes(), await agentRequests(metricsPort)];
      cpu['the rest (wrk, kernel)'] = Math.max(0, machineBusy() - busy0 - Object.values(cpu).reduce((a, b) => a + b, 0));
      const refused = load.status + load.connect + load.read + load.write + load.timeout;
      const acked = load.requests - load.status;
      samples[i]!.push({ name: p.name, tag, rps: acked / (load.durationUs / 1e6), acked, refused, p50: load.p50Us / 1000, p99: load.p99Us / 1000, cpu, fsyncs, flushes: flush0 === null || flush1 === null ? null : flush1 - flush0, wall, agentRequests: req1 - req0 });
    }
  }

  // Every acknowledged event reaches the sink.
  const posted = samples.slice(1).flat();
  const count = () => {
    const c = new Map<string, number>();
    for (const l of sinkLines(paths.outDir)) c.set(l, (c.get(l) ?? 0) + 1);
    return c;
  };
  const atSink = await until(count, (c) => posted.every((s) => (c.get(s.tag) ?? 0) >= s.acked), 300_000, 1000);
  const lost = posted.reduce((n, s) => n + Math.max(0, s.acked - (atSink.get(s.tag) ?? 0)), 0);

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const mid = samples.map((rs) => [...rs].sort((a, b) => a.rps - b.rps)[Math.floor(rs.length / 2)]!);
  const floor = median(floors);
  const [nginx, direct, gateway] = mid as [Sample, Sample, Sample];
  const f0 = (x: number) => Math.round(x).toLocaleString('en');
  console.log(`wrk, ${CLIENTS} keep-alive clients, ${SECONDS} s a run, one event per request, ${ROUNDS} rounds in turn (medians), ${CORES} cores`);
  console.log(`the disk's fsync floor (one writer, 64 B + fdatasync): ${f0(floor)}/s (runs ${floors.map(f0).join(', ')})`);
  for (const s of mid) {
    const perEvent = Object.entries(s.cpu).map(([k, v]) => `${k} ${f0((v / Math.max(1, s.acked)) * 1e6)}`).join(', ');
    const used = Object.values(s.cpu).reduce((a, b) => a + b, 0) / s.wall;
    console.log(`${s.name}: ${f0(s.rps)}/s (runs ${samples[mid.indexOf(s)]!.map((x) => f0(x.rps)).join(', ')}), ${f0(s.rps / CORES)} per core; p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms; refused ${s.refused}; CPU in use ${used.toFixed(2)} of ${CORES} cores`);
    console.log(`   CPU µs per answer: ${perEvent}`);
    if (s !== nginx) {
      const calls = s.fsyncs === null ? 'n/a (perf may not trace here)' : `${f0(s.fsyncs / s.wall)}/s, ${(s.acked / Math.max(1, s.fsyncs)).toFixed(1)} events per fsync`;
      console.log(`   the agent took ${f0(s.agentRequests / s.wall)} requests/s, ${(s.acked / Math.max(1, s.agentRequests)).toFixed(1)} events each`);
      console.log(`   fsync calls: ${calls}; disk flushes ${s.flushes === null ? 'n/a' : `${f0(s.flushes / s.wall)}/s (${(s.flushes / s.wall / floor).toFixed(2)}x the floor), ${(s.acked / Math.max(1, s.flushes)).toFixed(1)} events per flush`}`);
    }
  }
  console.log(`the gateway at ${(gateway.rps / nginx.rps).toFixed(3)}x nginx's own floor; ${(gateway.rps / direct.rps).toFixed(2)}x straight to the agent; every acknowledged event at the sink: ${lost === 0 ? 'yes' : `NO, ${lost} lost`}`);
  if (process.env.BENCH_JVM_OPTIONS || dataDirs > 1) console.log('(BENCH_JVM_OPTIONS or BENCH_DATA_DIRS: bench/results/datapath.json left as it was)');
  else await writeResult('datapath', {
    title: `The data path: acknowledged events/s, ${CLIENTS} clients, one event per request (wrk)`,
    unit: 'events/s',
    baseline: { label: 'nginx answering by itself (/healthz)', value: Math.round(nginx.rps) },
    rows: [{ label: 'straight to the agent', value: Math.round(direct.rps) }, { label: 'through the gateway, every default', value: Math.round(gateway.rps) }],
    command: 'npm run bench:datapath',
  });
  if (lost) process.exitCode = 1;
} finally {
  redis.disconnect();
  await gw.stop();
  await h.close();
}
