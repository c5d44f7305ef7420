import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/harness.js';
import { Installation } from '../../helpers/installation.js';
import { until } from '../../helpers/wait.js';

// scripts/upgrade.sh on a running installation whose agents' command line changes (here by a
// host JVM option; a new Flume or a new template does the same), and one agent whose flume.conf
// an earlier build wrote (its source open to any local process): the API restarts, the agents
// whose command line or flume.conf changed restart a few at a time, the others keep their pids,
// and nothing a sender was told was accepted is lost.
let inst: Installation;
let admin: string;

beforeAll(async () => {
  inst = await Installation.fresh();
  await inst.up();
  admin = inst.token('--role', 'admin', '--ttl', '1h');
}, 180_000);
afterAll(async () => {
  await inst?.destroy();
}, 120_000);

const call = (method: string, path: string, body?: unknown) => inst.call(admin, method, path, body);
const running = (table: string) => until(() => call('GET', `/v1/api/up/${table}/status?fresh=true`), (r) => r.body.state === 'RUNNING' && r.body.accepting === true, 90_000, 250);
const upgrade = (...args: string[]) => spawnSync('bash', ['scripts/upgrade.sh', ...args], { cwd: inst.dir, env: inst.procEnv, encoding: 'utf8', timeout: 300_000 });
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

describe('upgrade', () => {
  it('restarts only the agents whose command line or flume.conf changed, one batch at a time, losing no accepted event', async () => {
    expect((await call('POST', '/v1/api/up/plain/create', { sink: 'file_roll' })).status).toBe(201);
    expect((await call('POST', '/v1/api/up/second/create', { sink: 'file_roll' })).status).toBe(201);
    expect((await call('POST', '/v1/api/up/own/create', { sink: 'logger', jvm: { options: ['-XX:+UseSerialGC', '-Xss512k'] } })).status).toBe(201);
    expect((await call('POST', '/v1/api/up/rest/create?start=false', { sink: 'logger' })).status).toBe(201);
    // An agent an earlier build started: its source takes events from any local process (no intake key).
    expect((await call('POST', '/v1/api/up/early/create', { sink: 'logger' })).status).toBe(201);
    const earlyConf = join(inst.stateDir, 'services', 'flume-up-early', 'flume.conf');
    writeFileSync(earlyConf, readFileSync(earlyConf, 'utf8').replace(/^a1\.sources\.r1\.handler = flumeservice\.IntakeKeyHandler\n.*\n/m, 'a1.sources.r1.handler = org.apache.flume.source.http.JSONHandler\n'));
    expect(inst.supervisorctl('restart', 'flume-up-early')).toMatch(/started/);
    const earlyPort = (JSON.parse(readFileSync(join(inst.stateDir, 'services', 'flume-up-early', 'agent.json'), 'utf8')) as { port: number }).port;
    const keyless = () => fetch(`http://127.0.0.1:${earlyPort}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"headers":{},"body":"keyless"}]' }).then((r) => r.status, () => 0);
    expect(await until(keyless, (st) => st === 200, 60_000, 250)).toBe(200);
    const pids = Object.fromEntries(await Promise.all(['plain', 'second', 'own'].map(async (t) => [t, (await running(t)).body.pid as number])));
    const apiPid = inst.supervisorctl('pid', 'api').trim();
    const gatewayPid = inst.supervisorctl('pid', 'gateway').trim();
    const tok = await call('POST', '/v1/api/token', { username: 'sender' });
    expect(tok.status).toBe(200);

    // A sender posts all through the upgrade, retrying what is not acknowledged.
    const acked: string[] = [];
    let sending = true;
    const sender = (async () => {
      for (let i = 0; sending; i++) {
        const body = `event-${i}`;
        const post = () =>
          fetch(`${inst.gateway}/ingest/up/plain`, {
            method: 'POST',
            headers: { authorization: `Bearer ${tok.body.token}`, 'content-type': 'application/json' },
            body: JSON.stringify([{ headers: {}, body }]),
          }).then((r) => r.status, () => 0);
        if ((await until(post, (s) => s === 200 || !sending, 600_000, 100)) !== 200) return;
        acked.push(body);
      }
    })();
    await until(() => acked.length, (n) => n >= 20, 30_000, 100);

    writeFileSync(join(inst.dir, 'settings.env'), 'AGENT_JVM_OPTIONS=-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss384k\n');
    const r = upgrade('--concurrency', '1');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('agents: 3 to restart (their command line or flume.conf changed), 1 stopped ones given the new program, 1 unchanged (not restarted)');
    // One at a time: a batch per agent.
    expect(r.stdout.match(/restarting up\.\w+$/gm)?.sort()).toEqual(['restarting up.early', 'restarting up.plain', 'restarting up.second']);
    // The earlier build's agent takes events only from the gateway now.
    await running('early');
    expect(await keyless()).toBe(400);
    expect(r.stdout).toMatch(/-> 0\.\d+\.\d+ \(Flume 1\.11\.0\)/);

    for (const t of ['plain', 'second']) {
      const s = await running(t);
      expect(s.body.pid).not.toBe(pids[t]);
      expect(cmdline(s.body.pid)).toContain('-Xss384k');
    }
    const own = await running('own');
    expect(own.body.pid).toBe(pids.own);
    expect((await call('GET', '/v1/api/up/rest/status')).body).toMatchObject({ state: 'STOPPED', desired: 'stopped' });
    expect(readFileSync(join(inst.dir, 'conf.d', 'flume-up-rest.conf'), 'utf8')).toContain('-Xss384k');
    expect(inst.supervisorctl('pid', 'api').trim()).not.toBe(apiPid);
    expect(inst.supervisorctl('pid', 'gateway').trim()).toBe(gatewayPid);

    const during = acked.length;
    await until(() => acked.length, (n) => n >= during + 20, 30_000, 100);
    sending = false;
    await sender;
    const delivered = await until(() => new Set(inst.delivered('flume-up-plain')), (d) => acked.every((a) => d.has(a)), 60_000, 250);
    expect(acked.filter((a) => !delivered.has(a))).toEqual([]);

    // Run again: nothing left to restart.
    const plainPid = (await running('plain')).body.pid;
    const again = upgrade();
    expect(again.status, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain('agents: 0 to restart');
    expect((await running('plain')).body.pid).toBe(plainPid);
  }, 400_000);

  it('refuses a setting this build does not accept, restarting nothing', async () => {
    const apiPid = inst.supervisorctl('pid', 'api').trim();
    writeFileSync(join(inst.dir, 'settings.env'), 'AGENT_JVM_OPTIONS=-cp /tmp\n');
    const r = upgrade();
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toContain('AGENT_JVM_OPTIONS');
    expect(inst.supervisorctl('pid', 'api').trim()).toBe(apiPid);
    // A setting that is code where a script would have pasted it into a program's text.
    const marker = join(tempDir('marker'), 'ran');
    writeFileSync(join(inst.dir, 'settings.env'), `API_HOST=127.0.0.1'+require('child_process').execSync('id>${marker}')+'\n`);
    const code = upgrade();
    expect(code.status).toBe(2);
    expect(code.stdout + code.stderr).toContain('API_HOST: must be an IP address or a host name');
    expect(existsSync(marker)).toBe(false);
    expect(inst.supervisorctl('pid', 'api').trim()).toBe(apiPid);
    writeFileSync(join(inst.dir, 'settings.env'), '');
  }, 120_000);
});
