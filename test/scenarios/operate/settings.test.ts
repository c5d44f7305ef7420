import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, settingsAndEnvironment } from '../../../src/config-load.js';
import { tempDir } from '../../helpers/harness.js';
import { Installation } from '../../helpers/installation.js';
import { until } from '../../helpers/wait.js';

// A setting changed in the settings file reaches the API without an outage for the agents: the
// README's installation, its own supervisord, a real agent whose pid must not change.
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

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => inst.call(admin, method, path, body, headers);
const apply = () => spawnSync('bash', ['scripts/apply-settings.sh'], { cwd: inst.dir, encoding: 'utf8', env: { ...process.env, ...inst.env, SERVICE_USER: 'root' } });

describe('settings from a file', () => {
  it('applies a changed setting by restarting the API only: every agent keeps its pid', async () => {
    expect((await call('POST', '/v1/api/set/orders/create', { sink: 'logger' })).status).toBe(201);
    // Without the setting a change needs no If-Match (it restarts the agent: a new pid, recorded after).
    expect((await call('PATCH', '/v1/api/set/orders/config', { options: { maxBytesToLog: 100 } })).status).toBe(200);
    const before = await until(() => call('GET', '/v1/api/set/orders/status?fresh=true'), (r) => r.body.state === 'RUNNING', 60_000, 250);
    const apiPid = inst.supervisorctl('pid', 'api').trim();

    writeFileSync(join(inst.dir, 'settings.env'), '# edited by an operator\nCONFIG_REQUIRE_IF_MATCH=true\n');
    const r = apply();
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('agents untouched');
    // The API came back with the setting: a change without If-Match is now 428.
    const refused = await until(() => call('PATCH', '/v1/api/set/orders/config', { options: { maxBytesToLog: 101 } }), (x) => x.status !== 0 && x.status !== 503, 60_000, 250);
    expect(refused.status, JSON.stringify(refused.body)).toBe(428);
    expect(inst.supervisorctl('pid', 'api').trim()).not.toBe(apiPid);
    const after = await call('GET', '/v1/api/set/orders/status?fresh=true');
    expect(after.body.pid).toBe(before.body.pid);
    expect(after.body.accepting).toBe(true);
  }, 180_000);

  it('refuses a bad file before restarting anything, naming the setting', async () => {
    const apiPid = inst.supervisorctl('pid', 'api').trim();
    writeFileSync(join(inst.dir, 'settings.env'), 'GATEWAY_RATE_LIMT=5\n');
    const typo = apply();
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain('unknown setting(s) GATEWAY_RATE_LIMT');
    writeFileSync(join(inst.dir, 'settings.env'), 'API_MAX_STREAMS_PER_TOKEN=lots\n');
    const bad = apply();
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('API_MAX_STREAMS_PER_TOKEN');
    expect(inst.supervisorctl('pid', 'api').trim()).toBe(apiPid);
    expect((await call('GET', '/readyz')).status).toBe(200);
  }, 60_000);

  it('puts the environment over the file, and names an unreadable SETTINGS_FILE', () => {
    const dir = tempDir('settings');
    const file = join(dir, 'settings.env');
    writeFileSync(file, 'GATEWAY_RATE_LIMIT=7\nLOCK_LEASE_MS=9000\n');
    const merged = settingsAndEnvironment({ SETTINGS_FILE: file, LOCK_LEASE_MS: '5000' });
    expect(loadConfig(merged)).toMatchObject({ GATEWAY_RATE_LIMIT: 7, LOCK_LEASE_MS: 5000 });
    expect(() => settingsAndEnvironment({ SETTINGS_FILE: join(dir, 'nope.env') })).toThrow(/SETTINGS_FILE: cannot read/);
  });
});
