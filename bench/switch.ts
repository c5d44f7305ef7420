/**
 * The refusal window of a change: what senders see while an operator restarts a table and changes
 * its config, in place (AGENT_STAND_IN=false, the way before stand-ins) against behind a stand-in
 * (the default), in one run on real parts: one file_roll agent, the real nginx + Lua gateway,
 * BENCH_SENDERS senders posting one event per request back to back (keep-alive), for each mode
 * BENCH_CHANGES restarts and as many config changes (channel capacity), BENCH_SETTLE_MS apart.
 * Baseline: the same senders with no change, in the same run. Every acknowledged event is
 * counted at the sink.
 * Run: npm run bench:switch
 */
import { agentPaths } from '../src/store/paths.js';
import { sinkLines } from '../test/helpers/flume.js';
import { TestGateway } from '../test/helpers/gateway.js';
import { startHarness, type Harness } from '../test/helpers/harness.js';
import { portRange } from '../test/helpers/ports.js';
import { freePort, until } from '../test/helpers/wait.js';
import { writeResult } from './lib.js';

const SENDERS = Number(process.env.BENCH_SENDERS ?? 8);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 3);
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 3000);
const STEADY_MS = Number(process.env.BENCH_STEADY_MS ?? 10_000);

interface Answer {
  status: number;
  sentAt: number;
  at: number;
  body: string;
}

/** Senders posting back to back until stopped; every answer kept. */
function senders(url: string, token: string, tag: string) {
  const answers: Answer[] = [];
  let on = true;
  const loops = Array.from({ length: SENDERS }, async (_, s) => {
    for (let n = 0; on; n++) {
      const body = `${tag}-${s}-${n}`;
      const sentAt = Date.now();
      let status = 0;
      try {
        // Node's fetch keeps connections alive between requests.
        const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify([{ headers: {}, body }]) });
        status = r.status;
        await r.arrayBuffer();
      } catch {
        status = 0;
      }
      answers.push({ status, sentAt, at: Date.now(), body });
      // A refused sender waits as a polite client does (Retry-After is longer; this keeps the window visible).
      if (status !== 200) await new Promise((res) => setTimeout(res, 50));
    }
  });
  return {
    answers,
    async stop() {
      on = false;
      await Promise.all(loops);
    },
  };
}

const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]! : 0);

/** The longest time within [from, to] in which no request that got 200 was answered. */
function longestGap(answers: Answer[], from: number, to: number): number {
  const oks = answers.filter((a) => a.status === 200 && a.at >= from && a.at <= to).map((a) => a.at).sort((a, b) => a - b);
  let gap = 0;
  let last = from;
  for (const t of oks) {
    gap = Math.max(gap, t - last);
    last = t;
  }
  return Math.max(gap, to - last);
}

interface ModeResult {
  mode: string;
  acked: number;
  refused: number;
  atSink: number;
  steadyRate: number;
  changeRate: number;
  steadyP99: number;
  changeP99: number;
  /** Per change: the longest stretch without a 200, ms. */
  windows: number[];
}

async function measure(mode: string, standIn: boolean): Promise<ModeResult> {
  let h: Harness | null = null;
  let gw: TestGateway | null = null;
  try {
    h = await startHarness({ PORT_RANGE: await portRange(), GATEWAY_PORT: String(await freePort()), AGENT_STAND_IN: String(standIn), GATEWAY_RATE_LIMIT: '0', LOG_LEVEL: 'warn' });
    gw = new TestGateway(h.config);
    await gw.start();
    const created = await h.inject({ method: 'POST', url: '/v1/api/bench/sw/create', payload: { sink: 'file_roll' } });
    if (created.statusCode !== 201) throw new Error(created.body);
    const token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'bench' } })).json().token as string;
    const send = senders(`http://${h.config.GATEWAY_HOST}:${h.config.GATEWAY_PORT}/ingest/bench/sw`, token, mode);
    await new Promise((res) => setTimeout(res, 2000)); // warm-up
    const steadyFrom = Date.now();
    await new Promise((res) => setTimeout(res, STEADY_MS));
    const steadyTo = Date.now();
    const windows: number[] = [];
    const changeFrom = Date.now();
    for (let i = 0; i < CHANGES * 2; i++) {
      const from = Date.now();
      const r =
        i % 2 === 0
          ? await h.inject({ method: 'POST', url: '/v1/api/bench/sw/restart' })
          : await h.inject({ method: 'PATCH', url: '/v1/api/bench/sw/config', payload: { channel: { capacity: 1_000_000 + i } } });
      if (r.statusCode !== 200) throw new Error(`change ${i}: ${r.statusCode} ${r.body}`);
      await new Promise((res) => setTimeout(res, SETTLE_MS));
      windows.push(longestGap(send.answers, from, Date.now()));
    }
    const changeTo = Date.now();
    await send.stop();
    const a = send.answers;
    const ok = a.filter((x) => x.status === 200);
    const within = (f: number, t: number) => ok.filter((x) => x.at >= f && x.at <= t);
    const out = agentPaths(h.config, 'flume-bench-sw').outDir;
    const bodies = new Set(ok.map((x) => x.body));
    const lines = await until(() => sinkLines(out).filter((l) => bodies.has(l)), (l) => new Set(l).size >= bodies.size, 120_000, 500);
    return {
      mode,
      acked: ok.length,
      refused: a.filter((x) => x.status !== 200 && x.status !== 429).length,
      atSink: new Set(lines).size,
      steadyRate: within(steadyFrom, steadyTo).length / ((steadyTo - steadyFrom) / 1000),
      changeRate: within(changeFrom, changeTo).length / ((changeTo - changeFrom) / 1000),
      steadyP99: pct(within(steadyFrom, steadyTo).map((x) => x.at - x.sentAt), 99),
      changeP99: pct(within(changeFrom, changeTo).map((x) => x.at - x.sentAt), 99),
      windows,
    };
  } finally {
    await gw?.stop();
    await h?.close();
  }
}

const results = [await measure('in place', false), await measure('stand-in', true)];
const f = (x: number) => x.toFixed(0);
console.log(`${SENDERS} senders through the gateway, one event per request; ${CHANGES} restarts and ${CHANGES} config changes per mode, ${SETTLE_MS} ms apart`);
for (const r of results) {
  console.log(
    `${r.mode.padEnd(9)} refused ${String(r.refused).padStart(5)}  acknowledged ${r.acked} (at the sink ${r.atSink}, lost ${r.acked - r.atSink})  ` +
      `longest without a 200 per change: ${r.windows.map(f).join(', ')} ms (max ${f(Math.max(...r.windows))})  ` +
      `events/s during changes ${f(r.changeRate)} = ${(r.changeRate / r.steadyRate).toFixed(2)}x steady (${f(r.steadyRate)})  p99 ${r.changeP99} ms vs steady ${r.steadyP99} ms (${(r.changeP99 / Math.max(1, r.steadyP99)).toFixed(2)}x)`,
  );
}
const [inPlace, standIn] = results as [ModeResult, ModeResult];
await writeResult('switch', {
  title: `The refusal window of a change: longest time without a 200 per restart or config change (${SENDERS} senders)`,
  unit: 'ms',
  baseline: { label: 'in place (AGENT_STAND_IN=false), max over the changes', value: Math.max(...inPlace.windows) },
  rows: [{ label: 'behind a stand-in (default), max over the changes', value: Math.max(...standIn.windows) }],
  command: 'npm run bench:switch',
});
