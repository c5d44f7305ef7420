/** What the benchmarks share: load generators, a process's CPU and memory, the API as its own process. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../src/config-kinds.js';
import { Redis } from 'ioredis';
import { REDIS_URL, dropPrefix, tempDir } from '../test/helpers/harness.js';
import { TestSupervisord } from '../test/helpers/supervisord.js';
import { until } from '../test/helpers/wait.js';

export const run = promisify(execFile);
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
export const f1 = (x: number) => x.toFixed(1);

export interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/** autocannon in its own process: req/s and latency percentiles. */
export async function autocannon(url: string, token: string, connections: number, seconds = SECONDS): Promise<Load> {
  const { stdout } = await run(
    join(PROJECT_ROOT, 'node_modules', '.bin', 'autocannon'),
    ['-j', '-c', String(connections), '-d', String(seconds), '-H', `authorization=Bearer ${token}`, url],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const r = JSON.parse(stdout) as { requests: { average: number }; latency: { p50: number; p99: number }; errors: number; non2xx: number };
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

/**
 * Dashboards as they poll: `pollers` clients (keep-alive), each sending one request every
 * `everyMs` from a random phase, for `seconds`. Latency of each answer, as the client sees it.
 */
export async function pacedPollers(url: string, token: string, pollers: number, everyMs: number, seconds = SECONDS): Promise<Load> {
  const agent = new Agent({ keepAlive: true, maxSockets: pollers });
  const times: number[] = [];
  let errors = 0;
  const end = Date.now() + seconds * 1000;
  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = httpRequest(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) errors++;
          times.push(performance.now() - t0);
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: pollers }, async () => {
      await sleep(Math.random() * everyMs);
      while (Date.now() < end) {
        const t0 = performance.now();
        await once();
        await sleep(Math.max(0, everyMs - (performance.now() - t0)));
      }
    }),
  );
  agent.destroy();
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((times.length * p) / 100))]!;
  return { rps: times.length / seconds, p50: pct(50), p99: pct(99), errors, non2xx: 0 };
}

/** The original way: one supervisorctl process per status call, `concurrency` at a time. */
export async function supervisorctlLoad(socket: string, programs: string[], concurrency: number, seconds = SECONDS): Promise<Load> {
  const times: number[] = [];
  const until = Date.now() + seconds * 1000;
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const t0 = performance.now();
        await run('supervisorctl', ['-s', `unix://${socket}`, 'status', programs[i++ % programs.length]!]).catch(() => undefined);
        times.push(performance.now() - t0);
      }
    }),
  );
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((times.length * p) / 100))]!;
  return { rps: times.length / seconds, p50: pct(50), p99: pct(99), errors: 0, non2xx: 0 };
}

/** CPU seconds (user + system) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100/s)
}
export const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;


/** A process's proportional set size (shared pages split among the processes that map them), MiB. */
export const pssMiB = (pid: number) => Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) / 1024;

/** The API as production runs it (dist/server.js, its own process) on `env`; resolves once /readyz answers. */
export async function startApi(env: Record<string, string | undefined>, port: number): Promise<{ child: ChildProcess; base: string; token: string; stop(): Promise<void> }> {
  const child = spawn('node', [join(PROJECT_ROOT, 'dist', 'server.js')], { env: { ...process.env, ...env, API_PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${port}`;
  const ready = await until(() => fetch(`${base}/readyz`).then((r) => r.ok, () => false), (ok) => ok, 30_000);
  if (!ready) throw new Error('the API did not become ready');
  const token = (await run('node', [join(PROJECT_ROOT, 'dist', 'cli', 'token.js'), '--role', 'admin'], { env: { ...process.env, ...env } })).stdout.trim();
  return {
    child,
    base,
    token,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** One figure's rows beside its baseline, as bench/plot.ts draws them (bench/results/<name>.json). */
export interface Result {
  title: string;
  unit: string;
  /** The figure each row is set against, measured in the same run. */
  baseline: { label: string; value: number };
  rows: Array<{ label: string; value: number }>;
  /** When and where it was measured. */
  at: string;
  machine: string;
  command: string;
}

/** Writes bench/results/<name>.json; `npm run bench:plot` draws every result as an SVG beside it. */
export async function writeResult(name: string, r: Omit<Result, 'at' | 'machine'>): Promise<void> {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const { availableParallelism, totalmem } = await import('node:os');
  const dir = join(PROJECT_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const machine = `${availableParallelism()} cores, ${Math.round(totalmem() / 1024 ** 3)} GB`;
  await writeFile(join(dir, `${name}.json`), `${JSON.stringify({ ...r, at: new Date().toISOString(), machine }, null, 2)}\n`);
}

/**
 * Where a benchmark's API runs: its own supervisord in a temp dir and the local Redis under a
 * random prefix. `env` is the API's settings for them (add PORT_RANGE and the rest); `close`
 * stops supervisord (and every agent under it), drops the prefix's keys and removes the dir.
 */
export async function benchStack(name: string): Promise<{
  dir: string;
  prefix: string;
  supervisord: TestSupervisord;
  redis: Redis;
  env: Record<string, string>;
  close(): Promise<void>;
}> {
  const dir = tempDir(name);
  const prefix = `bench:${randomBytes(4).toString('hex')}:`;
  const supervisord = new TestSupervisord(dir, { redisUrl: REDIS_URL, prefix });
  const redis = new Redis(REDIS_URL);
  const close = async () => {
    await supervisord.stop();
    await dropPrefix(redis, prefix);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await supervisord.start();
  } catch (err) {
    await close();
    throw err;
  }
  return { dir, prefix, supervisord, redis, env: { STATE_DIR: dir, REDIS_URL, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'warn' }, close };
}
