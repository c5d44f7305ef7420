import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { SupervisorFaultError, type SupervisorDriver } from '../../src/supervisor/driver.js';
import { CtlSupervisorDriver } from '../../src/supervisor/ctl-driver.js';
import { XmlRpcSupervisorDriver } from '../../src/supervisor/xmlrpc-driver.js';
import { tempDir } from '../helpers/harness.js';
import { TestSupervisord } from '../helpers/supervisord.js';
import { until } from '../helpers/wait.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const transports: Array<[string, (socket: string) => SupervisorDriver]> = [
  ['xmlrpc', (s) => new XmlRpcSupervisorDriver(s)],
  ['supervisorctl', (s) => new CtlSupervisorDriver(['supervisorctl'], s)],
];

// One contract, two transports, a real supervisord each: they cannot drift apart.
describe.each(transports)('SupervisorDriver contract over %s', (_name, make) => {
  let sup: TestSupervisord;
  let driver: SupervisorDriver;
  let dir: string;
  const program = (name: string, command: string, autostart: boolean, startsecs = 1) =>
    writeFileSync(
      join(dir, 'conf.d', `${name}.conf`),
      `[program:${name}]\ncommand=${command}\nautostart=${autostart}\nstartsecs=${startsecs}\nstartretries=0\nautorestart=false\nstopwaitsecs=5\n`,
    );

  beforeAll(async () => {
    dir = tempDir('contract');
    sup = new TestSupervisord(dir);
    await sup.start();
    driver = make(sup.socket);
  });
  afterAll(async () => {
    await driver.close();
    await sup.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers ping', async () => {
    await expect(driver.ping()).resolves.toBeUndefined();
  });

  it('adds a program on update, autostart decides that it runs, and a second update is a no-op', async () => {
    program('sleeper', '/bin/sleep 600', true);
    expect(await driver.update('sleeper')).toBe('added');
    expect(await driver.update('sleeper')).toBe('unchanged');
    const info = await until(() => driver.info('sleeper'), (i) => i.state === 'RUNNING', 5000);
    expect(info.state).toBe('RUNNING');
    expect(info.pid).toBeGreaterThan(0);
    expect(alive(info.pid)).toBe(true);
    const all = await driver.infoAll();
    expect(all.map((p) => p.name)).toContain('sleeper');
  });

  it('stops and waits until the process is gone; stopping again is fine', async () => {
    const { pid } = await driver.info('sleeper');
    await driver.stop('sleeper');
    expect((await driver.info('sleeper')).state).toBe('STOPPED');
    expect(alive(pid)).toBe(false);
    await expect(driver.stop('sleeper')).resolves.toBeUndefined();
  });

  it('starts past startsecs; starting again is fine', async () => {
    await driver.start('sleeper');
    const info = await driver.info('sleeper');
    expect(info.state).toBe('RUNNING');
    expect(info.now - info.start).toBeGreaterThanOrEqual(1);
    await expect(driver.start('sleeper')).resolves.toBeUndefined();
  });

  it('applies a changed program: the old process is stopped, the new config is loaded', async () => {
    const { pid } = await driver.info('sleeper');
    program('sleeper', '/bin/sleep 601', false);
    expect(await driver.update('sleeper')).toBe('changed');
    expect(alive(pid)).toBe(false);
    expect((await driver.info('sleeper')).state).toBe('STOPPED');
  });

  it('reports a program that cannot start as a fault', async () => {
    program('crasher', '/bin/false', false, 1);
    expect(await driver.update('crasher')).toBe('added');
    const err = await driver.start('crasher').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SupervisorFaultError);
    expect(['SPAWN_ERROR', 'ABNORMAL_TERMINATION']).toContain((err as SupervisorFaultError).fault);
    expect(['FATAL', 'BACKOFF', 'EXITED']).toContain((await driver.info('crasher')).state);
  });

  it('removes a program whose file is gone, and then does not know it', async () => {
    rmSync(join(dir, 'conf.d', 'sleeper.conf'));
    expect(await driver.update('sleeper')).toBe('removed');
    const err = await driver.info('sleeper').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SupervisorFaultError);
    expect((err as SupervisorFaultError).fault).toBe('BAD_NAME');
    expect((err as SupervisorFaultError).statusCode).toBe(404);
  });

  it('updates asked at once, each right after its own file is written, all add their program', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `many${i}`);
    const results: Array<Promise<string>> = [];
    // The first update's re-read is under way while the later files are written.
    for (const n of names) {
      program(n, '/bin/sleep 600', true);
      results.push(driver.update(n));
    }
    expect(await Promise.all(results)).toEqual(names.map(() => 'added'));
    const running = await until(() => driver.infoAll(), (all) => names.every((n) => all.find((p) => p.name === n)?.state === 'RUNNING'), 10_000);
    expect(names.filter((n) => running.find((p) => p.name === n)?.state !== 'RUNNING')).toEqual([]);
    for (const n of names) rmSync(join(dir, 'conf.d', `${n}.conf`));
    expect(await Promise.all(names.map((n) => driver.update(n)))).toEqual(names.map(() => 'removed'));
  });

  it('stages an update: nothing is added until its apply, which adds the program though another re-read came between', async () => {
    program('staged', '/bin/sleep 600', true);
    const apply = await driver.stage('staged');
    // Staged, not applied: supervisord does not run it (a start waiting its turn spawns no JVM).
    const before = await driver.info('staged').catch((e: unknown) => e);
    expect((before as SupervisorFaultError).fault).toBe('BAD_NAME');
    program('between', '/bin/sleep 600', false);
    expect(await driver.update('between')).toBe('added');
    expect(await apply()).toBe('added');
    const info = await until(() => driver.info('staged'), (i) => i.state === 'RUNNING', 5000);
    expect(info.state).toBe('RUNNING');
    for (const n of ['staged', 'between']) rmSync(join(dir, 'conf.d', `${n}.conf`));
    expect(await Promise.all(['staged', 'between'].map((n) => driver.update(n)))).toEqual(['removed', 'removed']);
  });

  it('says SUPERVISOR_UNAVAILABLE (503) when supervisord is not there', async () => {
    const gone = make(join(dir, 'nothing-here.sock'));
    const err = await gone.ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).error).toBe('SUPERVISOR_UNAVAILABLE');
    expect((err as AppError).statusCode).toBe(503);
    await gone.close();
  });
});

describe('XmlRpcSupervisorDriver', () => {
  it('shares re-reads between updates asked at once: supervisord parses every program file on each', async () => {
    const dir = tempDir('reread');
    const sup = new TestSupervisord(dir);
    await sup.start();
    const driver = new XmlRpcSupervisorDriver(sup.socket);
    let rereads = 0;
    const call = driver.call.bind(driver);
    driver.call = (method, ...params) => {
      if (method === 'supervisor.reloadConfig') rereads++;
      return call(method, ...params);
    };
    try {
      const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
      for (const n of names) writeFileSync(join(dir, 'conf.d', `${n}.conf`), `[program:${n}]\ncommand=/bin/sleep 600\nautostart=false\n`);
      expect(await Promise.all(names.map((n) => driver.update(n)))).toEqual(names.map(() => 'added'));
      // The first asked alone; the 19 that came while it ran share the one after it.
      expect(rereads).toBe(2);
      expect(await driver.update('p0')).toBe('unchanged');
      expect(rereads).toBe(3);
    } finally {
      await driver.close();
      await sup.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
