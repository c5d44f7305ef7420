import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Installation } from '../../helpers/installation.js';
import { until } from '../../helpers/wait.js';

// A crashed supervisor leaves no orphans (issue 20): the whole stack as the README's first
// command runs it (scripts/up.sh, supervisor.conf), killed hard in the ways a host's bad day
// kills it, during ingest; then the first command again.

let inst: Installation;
/** Another installation on the same host: nothing done to the first may touch it. */
let other: Installation;
let admin: string;
let ingestToken: string;
const A = 'flume-crash-a'; // runs throughout
const B = 'flume-crash-b'; // stopped on purpose: must stay stopped

beforeAll(async () => {
  inst = await Installation.fresh();
  other = await Installation.fresh();
  await Promise.all([inst.up(), other.up()]);
  admin = inst.token('--role', 'admin', '--ttl', '1h');
  for (const t of ['a', 'b']) {
    const r = await call('POST', `/v1/api/crash/${t}/create`, { sink: 'file_roll', options: { rollInterval: 0, batchSize: 1 } });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
  expect((await call('POST', '/v1/api/crash/b/stop')).status).toBe(200);
  ingestToken = (await call('POST', '/v1/api/token', { username: 'crash-sender' })).body.token as string;
}, 180_000);
afterAll(async () => {
  await Promise.all([inst?.destroy(), other?.destroy()]);
}, 180_000);

const call = (method: string, path: string, body?: unknown) => inst.call(admin, method, path, body);

/** Senders posting one event at a time to table a, 4 at once; every event acknowledged is remembered. */
function startIngest() {
  const acked = new Set<string>();
  const statuses = new Map<string, number>();
  let n = 0;
  let running = true;
  let lastAckAt = 0;
  const sender = async () => {
    while (running) {
      const id = `ev-${n++}`;
      try {
        const r = await fetch(`${inst.gateway}/ingest/crash/a`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ingestToken}`, 'content-type': 'application/json' },
          body: JSON.stringify([{ body: id }]),
          signal: AbortSignal.timeout(10_000),
        });
        await r.arrayBuffer();
        statuses.set(String(r.status), (statuses.get(String(r.status)) ?? 0) + 1);
        if (r.status === 200) {
          acked.add(id);
          lastAckAt = Date.now();
        }
      } catch (e) {
        statuses.set('error', (statuses.get('error') ?? 0) + 1);
        // The gateway is not there (being restarted): wait until it listens again, 1 s at most.
        await until(() => listening(Number(inst.env.GATEWAY_PORT)), (up) => up, 1000, 50);
        void e;
      }
    }
  };
  const senders = Array.from({ length: 4 }, sender);
  return {
    acked,
    statuses,
    get lastAckAt() {
      return lastAckAt;
    },
    async stop() {
      running = false;
      await Promise.all(senders);
    },
  };
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

async function everyAckedDelivered(acked: Set<string>): Promise<string[]> {
  const missing = await until(
    () => {
      const got = new Set(inst.delivered(A));
      return [...acked].filter((id) => !got.has(id));
    },
    (m) => m.length === 0,
    60_000,
    500,
  );
  return missing;
}

describe('a crashed supervisor leaves no orphans', () => {
  it('supervisord killed -9 during ingest, then the first command: one JVM per table, the same token ingests, nothing acknowledged is lost', async () => {
    const ingest = startIngest();
    await until(() => ingest.acked.size, (n) => n >= 50, 30_000);
    const oldJvm = inst.jvmsOf(A);
    expect(oldJvm).toHaveLength(1);
    // The other installation's supervisord dies too: its orphans are its own business.
    const otherProcesses = other.processes().map((p) => p.pid);
    expect(otherProcesses.length).toBeGreaterThanOrEqual(3);
    process.kill(other.supervisordPid()!, 'SIGKILL');
    process.kill(inst.supervisordPid()!, 'SIGKILL');
    await until(() => inst.supervisordPid(), (p) => p === null, 5000);
    const before = ingest.acked.size;
    // The orphans go on serving meanwhile.
    await until(() => ingest.acked.size, (n) => n >= before + 20, 10_000);

    const restartAt = Date.now();
    const out = await inst.up();
    const upMs = Date.now() - restartAt;
    const afterUp = ingest.acked.size;
    await until(() => ingest.acked.size, (n) => n >= afterUp + 50, 60_000);
    const resumedMs = ingest.lastAckAt - restartAt;
    await ingest.stop();

    const want = { api: 'RUNNING', gateway: 'RUNNING', [A]: 'RUNNING', [B]: 'STOPPED' };
    expect(await until(() => inst.states(), (s) => Object.entries(want).every(([k, v]) => s[k] === v), 15_000)).toMatchObject(want);
    expect(inst.jvmsOf(A)).toHaveLength(1);
    expect(inst.jvmsOf(A)[0]).not.toBe(oldJvm[0]);
    expect(inst.jvmsOf(B)).toEqual([]);
    expect(inst.processes().filter((p) => p.kind === 'api')).toHaveLength(1);
    const status = await call('GET', '/v1/api/crash/a/status?fresh=true');
    expect(status.body).toMatchObject({ state: 'RUNNING', accepting: true, pid: inst.jvmsOf(A)[0] });
    expect(await everyAckedDelivered(ingest.acked)).toEqual([]);
    // Nothing of the other installation was touched.
    const otherNow = other.processes().map((p) => p.pid);
    expect(otherNow.filter((p) => otherProcesses.includes(p)).length).toBeGreaterThanOrEqual(2);
    expect((await fetch(`${other.api}/healthz`)).status).toBe(200);
    // The first command said what it stopped.
    expect(out).toMatch(/no live supervisord owns/);
    expect(out).toMatch(new RegExp(`agent ${A} \\(pid ${oldJvm[0]}\\): SIGTERM, exited`));
    console.log(
      `supervisord kill -9: up.sh again took ${upMs} ms; ingest answered 200 again ${resumedMs} ms after it began; ` +
        `${ingest.acked.size} events acknowledged, all ${ingest.acked.size} at the sink; answers: ${JSON.stringify(Object.fromEntries(ingest.statuses))}`,
    );
  }, 240_000);

  it("the gateway's master killed -9 during ingest: its workers leave, ingest resumes, one master", async () => {
    const ingest = startIngest();
    await until(() => ingest.acked.size, (n) => n >= 50, 30_000);
    const master = Number(inst.supervisorctl('pid', 'gateway').trim());
    expect(master).toBeGreaterThan(1);
    const workers = inst.processes().filter((p) => p.kind === 'gateway' && p.pid !== master).map((p) => p.pid);
    expect(workers.length).toBeGreaterThan(0);
    const killedAt = Date.now();
    process.kill(master, 'SIGKILL');
    // The old workers quit by themselves (they watch their master)...
    const left = await until(() => workers.filter((w) => inst.processes().some((p) => p.pid === w)), (l) => l.length === 0, 15_000, 100);
    expect(left).toEqual([]);
    const workersGoneMs = Date.now() - killedAt;
    // ...and supervisord's new master serves.
    const afterKill = ingest.acked.size;
    await until(() => ingest.acked.size, (n) => n >= afterKill + 50, 60_000);
    const resumedMs = ingest.lastAckAt - killedAt;
    await ingest.stop();
    const newMaster = Number(inst.supervisorctl('pid', 'gateway').trim());
    expect(newMaster).not.toBe(master);
    expect(await until(() => inst.states().gateway, (g) => g === 'RUNNING', 15_000)).toBe('RUNNING');
    const nginx = inst.processes().filter((p) => p.kind === 'gateway');
    expect(nginx.filter((p) => p.command.includes('master'))).toHaveLength(1);
    expect(await everyAckedDelivered(ingest.acked)).toEqual([]);
    console.log(`nginx master kill -9: old workers gone after ${workersGoneMs} ms, ingest answered 200 again after ${resumedMs} ms; ${ingest.acked.size} acknowledged, all at the sink`);
  }, 180_000);

  it('every process of the stack killed at once (a power cut), then the first command: what should run runs, what was stopped stays stopped', async () => {
    const ingest = startIngest();
    await until(() => ingest.acked.size, (n) => n >= 50, 30_000);
    const sv = inst.supervisordPid()!;
    const all = [sv, ...inst.processes().map((p) => p.pid)];
    for (const pid of all) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await until(() => inst.processes().length + (inst.supervisordPid() ? 1 : 0), (n) => n === 0, 10_000);
    await ingest.stop();
    const restartAt = Date.now();
    const out = await inst.up();
    expect(out).not.toMatch(/no live supervisord owns/);
    await until(async () => (await call('GET', '/v1/api/crash/a/status?fresh=true')).body.accepting, (a) => a === true, 60_000);
    const upMs = Date.now() - restartAt;
    const want = { api: 'RUNNING', gateway: 'RUNNING', [A]: 'RUNNING', [B]: 'STOPPED' };
    expect(await until(() => inst.states(), (s) => Object.entries(want).every(([k, v]) => s[k] === v), 15_000)).toMatchObject(want);
    expect(inst.jvmsOf(A)).toHaveLength(1);
    expect(inst.jvmsOf(B)).toEqual([]);
    // The file channel replays what was acknowledged before the cut.
    expect(await everyAckedDelivered(ingest.acked)).toEqual([]);
    const after = startIngest();
    await until(() => after.acked.size, (n) => n >= 20, 30_000);
    await after.stop();
    console.log(`power cut: ${ingest.acked.size} acknowledged before it, all at the sink after; up.sh to accepting ${upMs} ms`);
  }, 240_000);

  it('a shutdown leaves nothing running, and nothing listening on the gateway or API port', async () => {
    expect(await inst.shutdown()).toEqual([]);
    expect(await listening(Number(inst.env.GATEWAY_PORT))).toBe(false);
    expect(await listening(Number(inst.env.API_PORT))).toBe(false);
  }, 120_000);
});
