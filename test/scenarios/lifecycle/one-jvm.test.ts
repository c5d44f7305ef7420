import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../../src/store/paths.js';
import { startHarness, type Harness } from '../../helpers/harness.js';
import { portRange } from '../../helpers/ports.js';
import { stopChild } from '../../helpers/process.js';
import { until } from '../../helpers/wait.js';

// One JVM per table, always: a JVM that supervisord does not run (as a supervisord that died
// leaves one) keeps the table's port and channel; a start beside it is refused, and says why.
let h: Harness;
let stray: ChildProcess | null = null;
beforeAll(async () => {
  h = await startHarness({ PORT_RANGE: await portRange() });
});
afterAll(async () => {
  await stopChild(stray, 'SIGKILL', 5000);
  await h?.close();
});

/** The agent's own command line, from its supervisord program (as supervisord splits it). */
function commandOf(program: string): string[] {
  const line = readFileSync(agentPaths(h.config, program).programFile, 'utf8').split('\n').find((l) => l.startsWith('command='))!;
  return [...line.slice('command='.length).matchAll(/"([^"]*)"|(\S+)/g)].map((m) => (m[1] ?? m[2]!).replace(/%%/g, '%'));
}

describe('one JVM per table', () => {
  it('refuses to start a table whose JVM runs outside supervisord, naming its pid; starts once it is gone', async () => {
    expect((await h.inject({ method: 'POST', url: '/v1/api/solo/events/create', payload: { sink: 'logger' } })).statusCode).toBe(201);
    expect((await h.inject({ method: 'POST', url: '/v1/api/solo/events/stop' })).statusCode).toBe(200);
    const [bin, ...args] = commandOf('flume-solo-events');
    stray = spawn(bin!, args, { stdio: 'ignore' });
    const pid = stray.pid!;
    await until(() => readFileSync(`/proc/${pid}/cmdline`, 'utf8'), (c) => c.includes('flume.conf'), 10_000);

    const r = await h.inject({ method: 'POST', url: '/v1/api/solo/events/start' });
    expect(r.statusCode).toBe(409);
    expect(r.json()).toMatchObject({ error: 'AGENT_HELD', details: { pids: [pid] } });
    expect(r.json().message).toContain(`pid ${pid}`);
    const st = (await h.inject({ method: 'GET', url: '/v1/api/solo/events/status?fresh=true' })).json();
    expect(st).toMatchObject({ desired: 'stopped', state: 'STOPPED' });

    await stopChild(stray, 'SIGTERM', 30_000);
    stray = null;
    const started = await h.inject({ method: 'POST', url: '/v1/api/solo/events/start' });
    expect(started.statusCode, started.body).toBe(200);
    expect(started.json()).toMatchObject({ accepting: true, desired: 'running' });
  });
});
