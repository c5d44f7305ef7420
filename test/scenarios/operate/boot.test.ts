import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/harness.js';
import { Installation } from '../../helpers/installation.js';
import { pidAlive } from '../../../src/supervisor/strays.js';
import { until } from '../../helpers/wait.js';

// Boot with the host and state outside the checkout. This machine's PID 1 is not systemd, so
// the unit is checked by systemd-analyze and its ExecStart is run as systemd runs it (in the
// foreground, its environment and working directory); a reboot is every process killed -9.
const installs: Installation[] = [];
async function install(env: Record<string, string> = {}): Promise<Installation> {
  const inst = await Installation.fresh(env);
  installs.push(inst);
  return inst;
}
afterAll(async () => {
  for (const i of installs) await i.destroy();
}, 180_000);

const call = (inst: Installation, token: string, method: string, path: string) => inst.call(token, method, path);
const running = (inst: Installation, token: string, table: string) =>
  until(() => call(inst, token, 'GET', `/v1/api/boot/${table}/status?fresh=true`), (r) => r.body.state === 'RUNNING' && r.body.accepting === true, 90_000, 500);

/** Every process of the installation and its supervisord killed -9 at once. */
async function powerCut(inst: Installation): Promise<void> {
  const sv = inst.supervisordPid();
  for (const pid of [...(sv ? [sv] : []), ...inst.processes().map((p) => p.pid)]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await until(() => inst.processes().length + (inst.supervisordPid() ? 1 : 0), (n) => n === 0, 15_000, 200);
}

/** The unit's [Service] as systemd reads it. */
function unitOf(inst: Installation): Record<string, string | string[]> {
  const r = spawnSync('bash', ['scripts/systemd-unit.sh'], { cwd: inst.dir, env: inst.procEnv, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const file = join(tempDir('unit'), 'flume-service.service');
  writeFileSync(file, r.stdout);
  const verify = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  expect(verify.status, verify.stdout + verify.stderr).toBe(0);
  // Repeated keys (Environment=) kept as a list, as systemd does.
  const service: Record<string, string | string[]> = {};
  const section = r.stdout.split('[Service]')[1]!.split('\n[')[0]!;
  for (const line of section.split('\n').filter((l) => /^[A-Za-z]+=/.test(l))) {
    const [k, v] = [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)];
    service[k] = k in service ? [service[k]!].flat().concat(v) : v;
  }
  return service;
}

/** What systemd does with the unit's ExecStart: its words, its Environment=, its WorkingDirectory. */
function execStart(inst: Installation, service: Record<string, string | string[]>): ChildProcess {
  const words = String(service.ExecStart).split(' ');
  const env = Object.fromEntries([service.Environment].flat().filter(Boolean).map((e) => String(e).split('=', 2) as [string, string]));
  return spawn(words[0]!, words.slice(1), { cwd: String(service.WorkingDirectory), env: { ...inst.procEnv, ...env }, stdio: 'ignore' });
}

describe('boot with the host', () => {
  let inst: Installation;
  let admin: string;
  beforeAll(async () => {
    inst = await install({ STATE_DIR: join(tempDir('state-home'), 'flume-service') });
    await inst.up();
    admin = inst.token('--role', 'admin', '--ttl', '1h');
  }, 180_000);

  it('keeps the state outside the checkout, which only links to it', () => {
    for (const item of ['conf.d', 'services', 'var']) {
      expect(lstatSync(join(inst.dir, item)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(inst.dir, item))).toBe(join(inst.stateDir, item));
    }
    expect(existsSync(join(inst.stateDir, 'var', 'jwt-secret'))).toBe(true);
  });

  it('the unit verifies; run as systemd runs it after a power cut, what should run runs and what was stopped stays stopped; its stop leaves nothing', async () => {
    const service = unitOf(inst);
    expect(service.ExecStart).toMatch(/\/bash .*\/scripts\/up\.sh --foreground$/);
    expect(service.KillMode).toBe('mixed');
    expect(Number(service.TimeoutStopSec)).toBeGreaterThan(30);
    expect(service.Restart).toBe('on-failure');
    expect([service.Environment].flat()).toContain(`STATE_DIR=${inst.stateDir}`);

    expect((await call(inst, admin, 'POST', '/v1/api/boot/runs/create')).status).toBe(201);
    expect((await call(inst, admin, 'POST', '/v1/api/boot/rests/create?start=false')).status).toBe(201);
    const before = await running(inst, admin, 'runs');

    await powerCut(inst);
    const boot = execStart(inst, service);
    const after = await running(inst, admin, 'runs');
    expect(after.body.pid).not.toBe(before.body.pid);
    // ExecStart became supervisord itself (exec), in the foreground: systemd's main process.
    expect(inst.supervisordPid()).toBe(boot.pid);
    const want = { api: 'RUNNING', gateway: 'RUNNING', 'flume-boot-runs': 'RUNNING', 'flume-boot-rests': 'STOPPED' };
    expect(await until(() => inst.states(), (s) => Object.entries(want).every(([k, v]) => s[k] === v), 30_000, 250)).toMatchObject(want);
    expect(inst.jvmsOf('flume-boot-rests')).toEqual([]);

    // A second ExecStart while it runs (Restart= racing an operator) starts no second supervisord.
    const second = spawnSync(String(service.ExecStart).split(' ')[0]!, String(service.ExecStart).split(' ').slice(1), { cwd: inst.dir, env: inst.procEnv, encoding: 'utf8', timeout: 120_000 });
    expect(second.status).toBe(1);
    expect(second.stdout + second.stderr).toContain('supervisord already runs');

    // systemctl stop: SIGTERM to the main process (KillMode=mixed): it stops everything itself.
    const jvm = inst.jvmsOf('flume-boot-runs')[0]!;
    process.kill(boot.pid!, 'SIGTERM');
    await until(() => pidAlive(boot.pid!), (alive) => !alive, 120_000, 200);
    expect(await until(() => inst.processes(), (p) => p.length === 0, 10_000, 200)).toEqual([]);
    expect(pidAlive(jvm)).toBe(false);
    // The agent was stopped, not killed: Flume's shutdown ran (it checkpointed the channel).
    expect(readFileSync(join(inst.varDir, 'flume-boot-runs', 'agent.log'), 'utf8')).toMatch(/Stopping|stopped/i);
    await inst.up();
  }, 300_000);

  it('a checkout cleaned of what git does not track (git clean -fdX) loses nothing: the next up.sh links the state again', async () => {
    expect(await inst.shutdown()).toEqual([]);
    for (const item of ['conf.d', 'services', 'var']) rmSync(join(inst.dir, item));
    await inst.up();
    expect(lstatSync(join(inst.dir, 'var')).isSymbolicLink()).toBe(true);
    await running(inst, admin, 'runs');
    const rests = await until(() => call(inst, admin, 'GET', '/v1/api/boot/rests/status'), (r) => r.status === 200, 30_000, 250);
    expect(rests.body, JSON.stringify(rests.body)).toMatchObject({ state: 'STOPPED', desired: 'stopped' });
  }, 240_000);
});

describe('moving the state out of the checkout', () => {
  it('moves conf.d, services, var and the settings of a stopped installation, and every agent runs from there', async () => {
    const inst = await install();
    await inst.up();
    const admin = inst.token('--role', 'admin', '--ttl', '1h');
    expect((await call(inst, admin, 'POST', '/v1/api/boot/moved/create')).status).toBe(201);
    await running(inst, admin, 'moved');
    writeFileSync(join(inst.dir, 'settings.env'), 'CONFIG_REVISIONS_KEPT=25\n');

    const target = join(tempDir('state-move'), 'state');
    // While supervisord runs from the checkout, nothing moves.
    inst.env.STATE_DIR = target;
    await expect(inst.up()).rejects.toThrow(/supervisorctl -c supervisor.conf shutdown first/);
    expect(lstatSync(join(inst.dir, 'services')).isDirectory()).toBe(true);

    delete inst.env.STATE_DIR;
    expect(await inst.shutdown()).toEqual([]);
    inst.env.STATE_DIR = target;
    const out = await inst.up();
    expect(out).toContain(`moved ${inst.dir}/var to ${target}/var`);
    expect(readlinkSync(join(inst.dir, 'settings.env'))).toBe(join(target, 'settings.env'));
    // The same agent, with the same token, runs from the new place: its command line names it.
    await running(inst, admin, 'moved');
    expect(readFileSync(join(target, 'conf.d', 'flume-boot-moved.conf'), 'utf8')).toContain(join(target, 'services', 'flume-boot-moved', 'flume.conf'));
    const jvm = inst.jvmsOf('flume-boot-moved')[0]!;
    expect(readFileSync(`/proc/${jvm}/cmdline`, 'utf8')).toContain(join(target, 'services', 'flume-boot-moved', 'flume.conf'));
  }, 300_000);
});
