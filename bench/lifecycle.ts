/**
 * Lifecycle benchmark, on real parts, every number next to a baseline run in the same go:
 *   0. each agent setting of #13 added to the one before, from the JVM's own defaults (G1, C2, no
 *      archive, Flume's Application) to ours: create -> accepting, idle RSS and PSS;
 *   1. create -> accepting events with the defaults, against a bare JVM started by hand on the
 *      same config (the JVM's own settings, Flume's Application);
 *   2. one status call, against the original design's `supervisorctl status NAME` per call;
 *   3. listing N agents in one call;
 *   4. one agent's resident memory.
 * Run: npx tsx bench/lifecycle.ts (part of npm run bench; BENCH_AGENTS=N agents per fleet, default 5)
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOG4J_CONFIG } from '../src/agents/launch.js';
import { agentPaths } from '../src/store/paths.js';
import { canBind } from '../src/agents/port-allocator.js';
import { acceptsConnections } from '../src/agents/port-allocator.js';
import { DEFAULT_JVM_OPTIONS } from '../src/config-kinds.js';
import { startHarness } from '../test/helpers/harness.js';
import { pssMiB, rssMiB, writeResult } from './lib.js';

const N = Number(process.env.BENCH_AGENTS ?? 5);
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Each setting of #13 added to the one before, as its own fleet of N agents in the same run: every
 * agent created (answered once it accepts events), then RSS and PSS after 10 s idle. The JVM
 * reads the last of repeated -XX options, so a table's options can turn the relocation back on.
 */
const RELOCATE = ['-XX:+UnlockDiagnosticVMOptions', '-XX:ArchiveRelocationMode=1'];
const steps: Array<{ name: string; env: Record<string, string>; options?: string[] }> = [
  { name: "before #13: the JVM's own (G1, C2), no archive, Flume's Application", env: { AGENT_JVM_OPTIONS: '-XX:+UseG1GC', AGENT_CDS_ARCHIVE: '', AGENT_LAUNCHER: 'flume' } },
  { name: '+ SerialGC, C1 only, 32m code cache, 512k stacks, -Xms16m', env: { AGENT_CDS_ARCHIVE: '', AGENT_LAUNCHER: 'flume' } },
  { name: "+ the class-data archive (relocated: Debian JDK 17's default)", env: { AGENT_LAUNCHER: 'flume' }, options: [...DEFAULT_JVM_OPTIONS.split(' '), ...RELOCATE] },
  { name: '+ the archive mapped where it was dumped', env: { AGENT_LAUNCHER: 'flume' } },
  { name: '+ our launcher (channel first, no 500 ms poll): the defaults', env: {} },
];
const stepResults: Array<{ name: string; create: number[]; rss: number[]; pss: number[] }> = [];
for (const [i, step] of steps.entries()) {
  const fleet = await startHarness({ PORT_RANGE: `${23000 + i * 100}-${23099 + i * 100}`, AGENT_HEAP: '256m', ...step.env });
  try {
    const create: number[] = [];
    for (let j = 0; j < N; j++) {
      const t0 = process.hrtime.bigint();
      const r = await fleet.inject({ method: 'POST', url: `/v1/api/bench/s${i}t${j}/create`, payload: step.options ? { jvm: { options: step.options } } : {} });
      if (r.statusCode !== 201) throw new Error(r.body);
      create.push(ms(t0));
    }
    await sleep(10_000); // idle
    const pids = ((await fleet.inject({ method: 'GET', url: '/v1/api/services' })).json().agents as Array<{ pid: number }>).map((a) => a.pid);
    stepResults.push({ name: step.name, create, rss: pids.map(rssMiB), pss: pids.map(pssMiB) });
  } finally {
    await fleet.close();
  }
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
  const pss = agents.map((a) => pssMiB(a.pid));

  const f = (x: number) => x.toFixed(1);
  console.log(`agents: ${N}, machine: ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`);
  console.log(`each setting added to the one before, ${N} agents each (-Xmx256m): create -> accepting median; idle RSS median; idle PSS median`);
  const first = stepResults[0]!;
  for (const r of stepResults) {
    console.log(`  ${r.name.padEnd(72)} ${f(median(r.create)).padStart(7)} ms (${(median(r.create) / median(first.create)).toFixed(2)}x)  RSS ${f(median(r.rss))} MiB  PSS ${f(median(r.pss))} MiB`);
  }
  console.log(`create -> accepting with the defaults, alternating with a bare JVM: median ${f(median(ours))} ms (all: ${ours.map(f).join(', ')})`);
  console.log(`  baseline, a bare \`java ... Application\` (the JVM's own settings) to accepting: median ${f(median(bare))} ms; ratio ours/bare = ${(median(ours) / median(bare)).toFixed(2)}`);
  await writeResult('lifecycle', {
    title: 'Create to accepting, each JVM setting added to the one before (median)',
    unit: 'ms',
    baseline: { label: 'a bare java ... Application', value: median(bare) },
    rows: [...stepResults.map((r) => ({ label: r.name, value: median(r.create) })), { label: 'the defaults (alternating with the bare JVM)', value: median(ours) }],
    command: 'npm run bench (bench/lifecycle.ts)',
  });
  console.log(`status call: ${f(statusOurs * 1000)} us over XML-RPC (incl. port probe); supervisorctl status: ${f(statusCtl)} ms; ratio ctl/ours = ${(statusCtl / statusOurs).toFixed(0)}x`);
  console.log(`list of ${agents.length} agents in one call: median ${f(listMs)} ms over 20 calls`);
  console.log(`agent RSS (-Xmx256m, idle, ${agents.length} agents): median ${f(median(rss))} MiB (all: ${rss.map(f).join(', ')}); PSS median ${f(median(pss))} MiB`);
} finally {
  await h.close();
}
