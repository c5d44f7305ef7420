import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sinkLines, waitForLines } from '../../helpers/flume.js';
import { TestGateway, startSender } from '../../helpers/gateway.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { freePort, until } from '../../helpers/wait.js';
import { agentPaths } from '../../../src/store/paths.js';

// An agent whose JVM hangs (SIGSTOP: supervisord still says RUNNING, its port still takes
// connections, nothing answers), with a sender posting through the real gateway all along.
let h: Harness;
let gw: TestGateway;
let token: string;

beforeAll(async () => {
  h = await startHarness({
    PORT_RANGE: await portRange(),
    GATEWAY_PORT: String(await freePort()),
    FLEET_REFRESH_MS: '300',
    FLEET_QUIET_COUNTERS_MS: '0',
    HEAL_GRACE_SECONDS: '2',
  });
  gw = new TestGateway(h.config);
  await gw.start();
  const r = await h.inject({ method: 'POST', url: '/v1/api/heal/hung/create', payload: { sink: 'file_roll' } });
  expect(r.statusCode, r.body).toBe(201);
  token = (await h.inject({ method: 'POST', url: '/v1/api/token', payload: { username: 'sender', scope: ['heal'] } })).json().token as string;
});
afterAll(async () => {
  await gw?.stop();
  await h?.close();
});

describe('an agent that hangs while supervisord says RUNNING', () => {
  it('raises an incident at once, is restarted after the grace, and takes events again; nothing acknowledged is lost', async () => {
    const up = await until(() => h.status('heal', 'hung'), (s) => s.health === 'healthy', 30_000, 100);
    const sender = startSender(gw, 'heal', 'hung', token);
    const { answers } = sender;
    await until(async () => answers.filter((a) => a.status === 200).length, (n) => n >= 10, 30_000, 50);
    const stoppedAt = Date.now();
    process.kill(up.pid!, 'SIGSTOP');
    try {
      // At once: the incident names the hang and when the service steps in.
      const raised = await until(() => h.incidentsOf('heal', 'hung'), (l) => l.some((i) => i.type === 'unresponsive'), 20_000, 100);
      const unresponsive = raised.find((i) => i.type === 'unresponsive')!;
      expect(unresponsive).toMatchObject({ severity: 'critical', details: { pid: up.pid, restartInSeconds: 2, restartsInWindow: 0 } });
      expect(unresponsive.message).toMatch(/does not answer: the JVM hangs: the service restarts it in 2 s unless it recovers/);
      // After the grace: killed (it never answers SIGTERM) and started again, in a new process.
      const restarted = await until(() => h.incidentsOf('heal', 'hung'), (l) => l.some((i) => i.type === 'restarted'), 60_000, 100);
      const restartedAt = Date.now();
      expect(restarted.find((i) => i.type === 'restarted')).toMatchObject({ details: { problem: 'unresponsive', previousPid: up.pid } });
      const back = await until(() => h.status('heal', 'hung'), (s) => s.health === 'healthy', 30_000, 100);
      expect(back.pid).not.toBe(up.pid);
      expect(() => process.kill(up.pid!, 0)).toThrow(); // the hung JVM is gone, not left behind
      const recovered = await until(() => h.incidentsOf('heal', 'hung'), (l) => l[0]?.type === 'recovered', 20_000, 100);
      expect(recovered[0]!.message).toMatch(/accepts events again \(in a new process/);
      // Senders: refused only between the hang and the restart, 200 for all sent after it.
      await until(async () => answers.filter((a) => a.sentAt > restartedAt && a.status === 200).length, (n) => n >= 5, 30_000, 50);
      await sender.stop();
      const refused = answers.filter((a) => a.status !== 200);
      console.log(`hung agent, grace 2 s: ${refused.length} answers other than 200, the last ${Math.max(...refused.map((a) => a.at)) - stoppedAt} ms after the hang`);
      expect(answers.filter((a) => a.at < stoppedAt).every((a) => a.status === 200)).toBe(true);
      expect(answers.filter((a) => a.sentAt > restartedAt).every((a) => a.status === 200)).toBe(true);
      expect(answers.filter((a) => a.status !== 200).every((a) => [0, 502, 503, 504].includes(a.status))).toBe(true);
    } finally {
      try {
        process.kill(up.pid!, 'SIGCONT');
      } catch {
        // gone: the restart killed it
      }
      await sender.stop();
    }
    // Every acknowledged event reached the sink, the hang notwithstanding (the channel replayed).
    const acked = answers.filter((a) => a.status === 200).map((a) => a.body);
    const out = agentPaths(h.config, 'flume-heal-hung').outDir;
    await waitForLines(out, acked, 30_000);
    expect(acked.filter((b) => !sinkLines(out).includes(b))).toEqual([]);
  });
});
