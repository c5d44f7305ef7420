import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PROJECT_ROOT } from '../../../src/config-kinds.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/harness.js';
import { Installation } from '../../helpers/installation.js';
import { until } from '../../helpers/wait.js';

// A root install runs the service as an unprivileged user, who owns the state (settings.env,
// var/). Whatever that user leaves there (a setting that is code, a link where root writes), the
// next command root runs does nothing as root: the README's install, as an attacker who has the
// service user's rights would try it.
const USER = 'flumesvctest';
let inst: Installation;
let stateDir: string;
const victims = tempDir('victims');
chmodSync(victims, 0o755);

const asUser = (...cmd: string[]) => spawnSync('runuser', ['-u', USER, '--', ...cmd], { encoding: 'utf8' });
const upAgain = () => spawnSync('bash', ['scripts/up.sh'], { cwd: inst.dir, env: inst.procEnv, encoding: 'utf8', timeout: 300_000 });
const uidOf = (pid: string) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

// The installation links the checkout's node_modules, src, templates and flume/: the service's
// user must be able to traverse to them. A checkout in a private directory (CI clones into a
// mktemp -d) gets o+x on those directories for the test's length, and back after.
const opened: Array<[string, number]> = [];
function letOthersTraverse(dir: string): void {
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    const mode = statSync(d).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o001);
      opened.push([d, mode]);
    }
  }
}

beforeAll(async () => {
  letOthersTraverse(PROJECT_ROOT);
  const home = tempDir('svc-state');
  chmodSync(home, 0o755);
  stateDir = join(home, 'state');
  inst = await Installation.fresh({ SERVICE_USER: USER, STATE_DIR: stateDir });
  chmodSync(inst.dir, 0o755);
  await inst.up();
}, 300_000);
afterAll(async () => {
  await inst?.destroy();
  spawnSync('userdel', [USER]);
  for (const [d, mode] of opened.reverse()) chmodSync(d, mode);
}, 180_000);

describe('a root install and its service user', () => {
  it('runs the service as that user, who owns the state; root still mints tokens that work', async () => {
    const uid = Number(spawnSync('id', ['-u', USER], { encoding: 'utf8' }).stdout.trim());
    expect(uid).toBeGreaterThan(0);
    expect(uidOf(inst.supervisorctl('pid', 'api').trim())).toBe(uid);
    for (const d of ['', 'var', 'conf.d', 'services']) expect(lstatSync(join(stateDir, d)).uid).toBe(uid);
    const admin = inst.token('--role', 'admin', '--ttl', '1h');
    expect((await inst.call(admin, 'GET', '/v1/api/services')).status).toBe(200);
  });

  it("never has root follow a link the service user planted: a token minted by root leaves the link's target as it was", () => {
    const victim = join(victims, 'secret-looking');
    writeFileSync(victim, 'x'.repeat(48), { mode: 0o644 });
    chmodSync(victim, 0o644);
    const secret = join(stateDir, 'var', 'jwt-secret');
    const kept = readFileSync(secret, 'utf8');
    expect(asUser('rm', '-f', secret).status).toBe(0);
    expect(asUser('ln', '-s', victim, secret).status).toBe(0);
    try {
      const r = spawnSync(process.execPath, ['dist/cli/token.js', '--role', 'admin'], { cwd: inst.dir, env: inst.procEnv, encoding: 'utf8' });
      // Run as the service user, the tool may read what that user may read, and change nothing else.
      expect(statSync(victim).mode & 0o777).toBe(0o644);
      expect(statSync(victim).uid).toBe(0);
      expect(r.status, r.stdout).toBe(2);
    } finally {
      rmSync(secret, { force: true });
      writeFileSync(secret, kept, { mode: 0o600 });
      spawnSync('chown', [USER, secret]);
    }
  });

  it("refuses a setting that is code before anything runs, and writes the state's files as the service user", () => {
    const marker = join(victims, 'ran-as-root');
    // The checkout's record of its state, replaced by a link to a file of root's.
    const record = join(stateDir, '.checkout');
    const other = join(victims, 'roots-file');
    writeFileSync(other, 'root wrote this\n');
    expect(asUser('rm', '-f', record).status).toBe(0);
    expect(asUser('ln', '-s', other, record).status).toBe(0);
    const settings = join(stateDir, 'settings.env');
    const payload = `GATEWAY_HOST=127.0.0.1'+require('child_process').execSync('id>${marker}')+'\n`;
    expect(spawnSync('runuser', ['-u', USER, '--', 'tee', settings], { input: payload }).status).toBe(0);
    const refused = upAgain();
    expect(refused.status, refused.stdout + refused.stderr).toBe(2);
    expect(refused.stdout + refused.stderr).toContain('GATEWAY_HOST: must be an IP address or a host name');
    expect(refused.stdout).not.toContain('flume-service is up');
    expect(existsSync(marker)).toBe(false);
    // The link was replaced by the service user's own file; root's file is as it was.
    expect(readFileSync(other, 'utf8')).toBe('root wrote this\n');
    expect(lstatSync(record).isSymbolicLink()).toBe(false);
    expect(readFileSync(record, 'utf8').trim()).toBe(inst.dir);

    // A var/ that became a link elsewhere: refused, nothing chowned there.
    expect(asUser('rm', '-f', settings).status).toBe(0);
    const elsewhere = join(victims, 'elsewhere');
    mkdirSync(elsewhere);
    expect(asUser('mv', join(stateDir, 'var'), join(stateDir, 'var.real')).status).toBe(0);
    expect(asUser('ln', '-s', elsewhere, join(stateDir, 'var')).status).toBe(0);
    try {
      const linked = upAgain();
      expect(linked.status).toBe(2);
      expect(linked.stdout).toContain(`${join(stateDir, 'var')} is a symbolic link`);
      expect(statSync(elsewhere).uid).toBe(0);
    } finally {
      expect(asUser('rm', join(stateDir, 'var')).status).toBe(0);
      expect(asUser('mv', join(stateDir, 'var.real'), join(stateDir, 'var')).status).toBe(0);
    }
    expect(readlinkSync(join(inst.dir, 'var'))).toBe(join(stateDir, 'var'));
  }, 300_000);

  it('comes up again once the state is sound', async () => {
    const r = upAgain();
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const admin = inst.token('--role', 'admin', '--ttl', '1h');
    await until(() => inst.call(admin, 'GET', '/readyz'), (x) => x.status === 200, 60_000, 250);
  }, 300_000);
});
