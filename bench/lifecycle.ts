/**
 * Lifecycle benchmark, on real parts, every number next to a baseline run in the same go:
 *   1. create -> accepting events, against a bare JVM started by hand on the same config; with
 *      the agents' JVM settings (AGENT_JVM_OPTIONS defaults + the class-data archive) and again
 *      with the JVM's own defaults (G1, C2, no archive: the settings before #13);
 *   2. one status call, against the original design's `supervisorctl status NAME` per call;
 *   3. listing N agents in one call;
 *   4. one agent's resident memory.
 * Run: npm run bench   (BENCH_AGENTS=N to change the number of agents, default 5)
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOG4J_CONFIG } from '../src/agents/render.js';
import { agentPaths } from '../src/agents/paths.js';
import { canBind } from '../src/agents/port-allocator.js';
import { acceptsConnections } from '../src/agents/port-allocator.js';
import { startHarness } from '../test/helpers/harness.js';

const N = Number(process.env.BENCH_AGENTS ?? 5);
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rssMiB = (pid: number) => Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024;

// The settings before #13, as a second fleet measured in the same run.
const untuned = await startHarness({ PORT_RANGE: '23000-23499', AGENT_HEAP: '256m', AGENT_JVM_OPTIONS: '-XX:+UseG1GC', AGENT_CDS_ARCHIVE: '/nonexistent' });
const before: number[] = [];
const beforeRss: number[] = [];
try {
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    const r = await untuned.inject({ method: 'POST', url: `/v1/api/bench/u${i}/create` });
    if (r.statusCode !== 201) throw new Error(r.body);
    before.push(ms(t0));
  }
  await sleep(10_000); // idle
  for (const a of (await untuned.inject({ method: 'GET', url: '/v1/api/services' })).json().agents as Array<{ pid: number }>) beforeRss.push(rssMiB(a.pid));
} finally {
  await untuned.close();
}

const h = await startHarness({ PORT_RANGE: '24000-24999', AGENT_HEAP: '256m' });
try {
  // 1. create -> accepting, ours and a bare JVM, alternating
  const ours: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < N; i++) {
    let t0 = process.hrtime.bigint();
    const r = await h.inject({ method: 'POST', url: `/v1/api/bench/t${i}/create` });
    if (r.statusCode !== 201) throw new Error(r.body);
    ours.push(ms(t0));

    const paths = agentPaths(h.config, `flume-bench-t${i}`);
    let port = 24900 + i;
    while (!(await canBind(port))) port++;
    const conf = join(h.config.STATE_DIR, `bare-${i}.conf`);
    writeFileSync(
      conf,
      readFileSync(paths.flumeConf, 'utf8')
        .replace(/(r1\.port = )\d+/, `$1${port}`)
        .replace(/\/channel\//g, '/bare-channel/')
        .replace(/\/out$/m, '/bare-out'),
    );
    t0 = process.hrtime.bigint();
    const jvm = spawn(
      h.config.JAVA_BIN,
      ['-Xmx256m', `-Dlog4j.configurationFile=${LOG4J_CONFIG}`, '-cp', join(h.config.FLUME_LIB_DIR, '*'), 'org.apache.flume.node.Application', '-n', 'a1', '-f', conf, '--no-reload-conf'],
      { stdio: 'ignore' },
    );
    while (!(await acceptsConnections(port, '127.0.0.1', 200))) await sleep(20);
    bare.push(ms(t0));
    jvm.kill('SIGTERM');
    await new Promise((res) => jvm.once('exit', res));
  }

  // 2. status: our XML-RPC path vs one supervisorctl process per call (the original)
  const program = 'flume-bench-t0';
  const reps = 50;
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) await h.inject({ method: 'GET', url: '/v1/api/bench/t0/status' });
  const statusOurs = ms(t0) / reps;
  t0 = process.hrtime.bigint();
  for (let i = 0; i < 10; i++) {
    try {
      execFileSync('supervisorctl', ['-s', `unix://${h.supervisord.socket}`, 'status', program], { stdio: 'ignore' });
    } catch {
      /* exit 3 for a stopped program is fine */
    }
  }
  const statusCtl = ms(t0) / 10;

  // 3. list (median of 20 calls)
  const listTimes: number[] = [];
  let list = await h.inject({ method: 'GET', url: '/v1/api/services' });
  for (let i = 0; i < 20; i++) {
    t0 = process.hrtime.bigint();
    list = await h.inject({ method: 'GET', url: '/v1/api/services' });
    listTimes.push(ms(t0));
  }
  const listMs = median(listTimes);
  const agents = (list.json() as { agents: Array<{ pid: number }> }).agents;

  // 4. memory, idle: RSS, and PSS (shared pages, such as the class-data archive, split among the processes that map them)
  await sleep(5_000);
  const rss = agents.map((a) => rssMiB(a.pid));
  const pss = agents.map((a) => Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${a.pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) / 1024);

  const f = (x: number) => x.toFixed(1);
  console.log(`agents: ${N}, machine: ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`);
  console.log(`create -> accepting: median ${f(median(ours))} ms (all: ${ours.map(f).join(', ')})`);
  console.log(`  the same with the JVM's own defaults (G1, C2, no archive; before #13): median ${f(median(before))} ms; ratio before/now = ${(median(before) / median(ours)).toFixed(2)}`);
  console.log(`  baseline, bare JVM to accepting: median ${f(median(bare))} ms; ratio ours/bare = ${(median(ours) / median(bare)).toFixed(2)}`);
  console.log(`status call: ${f(statusOurs * 1000)} us over XML-RPC (incl. port probe); supervisorctl status: ${f(statusCtl)} ms; ratio ctl/ours = ${(statusCtl / statusOurs).toFixed(0)}x`);
  console.log(`list of ${agents.length} agents in one call: median ${f(listMs)} ms over 20 calls`);
  console.log(`agent RSS (-Xmx256m, idle): median ${f(median(rss))} MiB (all: ${rss.map(f).join(', ')}); PSS median ${f(median(pss))} MiB`);
  console.log(`  with the JVM's own defaults (before #13): RSS median ${f(median(beforeRss))} MiB (all: ${beforeRss.map(f).join(', ')})`);
} finally {
  await h.close();
}
