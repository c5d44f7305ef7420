import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/harness.js';
import { Installation } from '../../helpers/installation.js';
import { freePort, until } from '../../helpers/wait.js';

// Backup on one installation, restore onto a fresh one (each the README's own, with its own
// supervisord, Redis key prefix and ports): the same tables with their specs, revisions and
// desired states, the same ingestion and control tokens, the same audit trail; channels too.
const installs: Installation[] = [];
async function install(): Promise<Installation> {
  const inst = await Installation.fresh();
  installs.push(inst);
  await inst.up();
  return inst;
}

let a: Installation;
let admin: string;
let ingest: string;
let brokerless: number;
const out = tempDir('backups');

beforeAll(async () => {
  a = await install();
  admin = a.token('--role', 'admin', '--ttl', '1h', '--sub', 'ops');
  brokerless = await freePort();
}, 180_000);
afterAll(async () => {
  for (const i of installs) await i.destroy();
}, 180_000);

const call = (inst: Installation, method: string, path: string, body?: unknown, token = admin) => inst.call(token, method, path, body);
const send = (inst: Installation, table: string, events: string[], token = ingest) =>
  fetch(`${inst.gateway}/ingest/bk/${table}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(events.map((body) => ({ headers: {}, body }))),
  }).then((r) => r.status, () => 0);
const run = (inst: Installation, script: string, ...args: string[]) =>
  spawnSync(process.execPath, [`dist/cli/${script}.js`, ...args], { cwd: inst.dir, encoding: 'utf8', env: { ...process.env, ...inst.env, SERVICE_USER: 'root' }, timeout: 120_000 });
/** A copy of the archive `file`, unpacked, changed by `edit` (given the unpacked directory), packed again. */
function tampered(file: string, name: string, edit: (dir: string) => void): string {
  const dir = tempDir('tamper');
  expect(spawnSync('tar', ['-xzf', file, '-C', dir]).status).toBe(0);
  edit(dir);
  const to = join(out, name);
  expect(spawnSync('tar', ['-czf', to, '-C', dir, '.']).status).toBe(0);
  return to;
}
const status = (inst: Installation, table: string) => call(inst, 'GET', `/v1/api/bk/${table}/status?fresh=true`);

describe('backup and restore', () => {
  it('a backup restored onto a fresh installation has the same tables, tokens and audit; what ran runs', async () => {
    expect((await call(a, 'POST', '/v1/api/bk/kept/create', { sink: 'file_roll' })).status).toBe(201);
    expect((await call(a, 'POST', '/v1/api/bk/resting/create?start=false', { sink: 'logger' })).status).toBe(201);
    expect((await call(a, 'POST', '/v1/api/bk/held/create', { sink: 'kafka', options: { bootstrapServers: `127.0.0.1:${brokerless}` } })).status).toBe(201);
    expect((await call(a, 'PATCH', '/v1/api/bk/kept/config', { channel: { transactionCapacity: 500 } })).status).toBe(200);
    const tok = await call(a, 'POST', '/v1/api/token', { username: 'sender' });
    expect(tok.status).toBe(200);
    ingest = tok.body.token;
    await until(() => send(a, 'kept', ['before the backup']), (s) => s === 200, 60_000, 250);
    // The broker is not there: three events wait in held's channel.
    await until(() => send(a, 'held', ['one', 'two', 'three']), (s) => s === 200, 60_000, 250);
    await until(() => status(a, 'held'), (x) => x.body.metrics?.channelSize === 3, 60_000, 500);
    writeFileSync(join(a.dir, 'settings.env'), 'CONFIG_REVISIONS_KEPT=30\n');
    const auditA = (await call(a, 'GET', '/v1/api/audit?limit=100')).body.entries as Array<{ action: string; at: string }>;
    expect(auditA.length).toBeGreaterThanOrEqual(5);
    const specA = (await call(a, 'GET', '/v1/api/bk/kept')).body;

    const file = join(out, 'a.tar.gz');
    const r = run(a, 'backup', '--out', file);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 agent\(s\) \(2 running, channels not included\), 1 ingestion token/);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    // Restoring onto a host where the backup's agents still hold their ports is refused.
    const b = await install();
    const early = run(b, 'restore', file);
    expect(early.status).toBe(2);
    expect(early.stderr).toMatch(/ports the backup's agents own are in use on this host: \d+ \(flume-bk-/);
    expect(existsSync(join(b.dir, 'services', 'flume-bk-kept'))).toBe(false);

    // The old host is gone; the new one gets the backup.
    expect(await a.shutdown()).toEqual([]);
    const res = run(b, 'restore', file);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/restored 3 agent\(s\) \(2 to run/);
    // A's control token is good at B (same signing key), the tables are there as they were.
    const ready = await until(() => status(b, 'kept'), (x) => x.body.accepting === true && x.body.state === 'RUNNING', 90_000, 500);
    expect(ready.body.state).toBe('RUNNING');
    const specB = (await call(b, 'GET', '/v1/api/bk/kept')).body;
    expect(specB.spec).toEqual(specA.spec);
    expect(specB.revision).toBe(specA.revision);
    expect((await status(b, 'resting')).body).toMatchObject({ state: 'STOPPED', desired: 'stopped' });
    expect((await until(() => status(b, 'held'), (x) => x.body.state === 'RUNNING', 60_000, 500)).body.state).toBe('RUNNING');
    // B's own program file names B's paths, not A's.
    expect(readFileSync(join(b.dir, 'conf.d', 'flume-bk-kept.conf'), 'utf8')).toContain(join(b.dir, 'services'));
    expect(readFileSync(join(b.dir, 'conf.d', 'flume-bk-kept.conf'), 'utf8')).not.toContain(a.dir);
    // A's ingestion token sends through B's gateway; a made-up one does not.
    expect(await until(() => send(b, 'kept', ['after the restore']), (s) => s === 200, 60_000, 250)).toBe(200);
    expect(await send(b, 'kept', ['x'], 'not-a-token')).toBe(401);
    await until(() => b.delivered('flume-bk-kept'), (l) => l.includes('after the restore'), 30_000, 250);
    // The audit trail came along (B's own entries, the restore's calls, follow).
    const auditB = (await call(b, 'GET', '/v1/api/audit?limit=200')).body.entries as Array<{ action: string; at: string }>;
    for (const e of auditA) expect(auditB).toContainEqual(expect.objectContaining({ action: e.action, at: e.at }));
    expect(readFileSync(join(b.dir, 'settings.env'), 'utf8')).toContain('CONFIG_REVISIONS_KEPT=30');
    expect(await b.shutdown()).toEqual([]);
  }, 400_000);

  it('refuses to restore onto an installation that has tables, and an archive with entries a backup never writes, changing nothing', async () => {
    const file = join(out, 'a.tar.gz');
    const again = run(a, 'restore', file);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/fresh installation.*3 agent\(s\)/);

    const evil = tempDir('evil');
    writeFileSync(join(evil, 'backup.json'), '{}');
    writeFileSync(join(evil, 'supervisor.conf'), '[program:x]\ncommand=/bin/sh -c id\n');
    const bad = join(out, 'evil.tar.gz');
    expect(spawnSync('tar', ['-czf', bad, '-C', evil, '.']).status).toBe(0);
    const c = await install();
    const refused = run(c, 'restore', bad);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('entries a backup never writes');
    expect(refused.stderr).toContain('supervisor.conf');
    expect(readFileSync(join(c.dir, 'supervisor.conf'), 'utf8')).not.toContain('program:x');
    const notTar = join(out, 'not.tar.gz');
    writeFileSync(notTar, 'hello');
    expect(run(c, 'restore', notTar).status).toBe(2);

    // A spec edited into what a create refuses (a line of its own in the rendered flume.conf).
    const spec = tampered(file, 'spec.tar.gz', (d) => {
      const f = join(d, 'services/flume-bk-kept/agent.json');
      const meta = JSON.parse(readFileSync(f, 'utf8'));
      meta.spec.options.rollInterval = '5\na1.sources.r2.type = exec';
      writeFileSync(f, JSON.stringify(meta));
    });
    const specRefused = run(c, 'restore', spec);
    expect(specRefused.status, specRefused.stderr).toBe(2);
    expect(specRefused.stderr).toMatch(/agent flume-bk-kept: its spec is not one a create takes here: options\.rollInterval/);
    // A spec nested 50,000 levels deep (its event contract), in agent.json and in a revision:
    // refused by name, not a stack overflow.
    const deep = `${'{"items":'.repeat(50_000)}{}${'}'.repeat(50_000)}`;
    const nested = tampered(file, 'nested.tar.gz', (d) => {
      const f = join(d, 'services/flume-bk-kept/agent.json');
      const text = readFileSync(f, 'utf8');
      const edited = text.replace(/"spec":\s*\{/, `"spec":{"schema":{"body":${deep}},`);
      expect(edited).not.toBe(text);
      writeFileSync(f, edited);
    });
    const nestedRefused = run(c, 'restore', nested);
    expect(nestedRefused.status, nestedRefused.stderr).toBe(2);
    expect(nestedRefused.stderr).toMatch(/agent flume-bk-kept: services\/flume-bk-kept\/agent\.json cannot be read as JSON: nested more than 64 levels deep/);
    const nestedRevision = tampered(file, 'nested-revision.tar.gz', (d) => writeFileSync(join(d, 'services/flume-bk-kept/revisions/000001.json'), `{"revision":1,"spec":${deep}}`));
    const revisionRefused = run(c, 'restore', nestedRevision);
    expect(revisionRefused.status, revisionRefused.stderr).toBe(2);
    expect(revisionRefused.stderr).toMatch(/agent flume-bk-kept: revisions\/000001\.json cannot be read as JSON: nested more than 64 levels deep/);
    // A settings file that would run code where a script read it.
    const settings = tampered(file, 'settings.tar.gz', (d) => writeFileSync(join(d, 'settings.env'), "GATEWAY_HOST=127.0.0.1'+require('child_process').execSync('id')+'\n"));
    const settingsRefused = run(c, 'restore', settings);
    expect(settingsRefused.status).toBe(2);
    expect(settingsRefused.stderr).toContain('settings.env: GATEWAY_HOST: must be an IP address or a host name');
    // An audit file far larger than an audit file ever is (a few KiB packed).
    const big = tampered(file, 'big.tar.gz', (d) => expect(spawnSync('truncate', ['-s', '64M', join(d, 'var/audit.log.1')]).status).toBe(0));
    expect(statSync(big).size).toBeLessThan(1024 * 1024);
    const bigRefused = run(c, 'restore', big);
    expect(bigRefused.status).toBe(2);
    expect(bigRefused.stderr).toMatch(/larger than a backup writes them: var\/audit\.log\.1 \(67108864 bytes/);
    const capped = run(c, 'restore', file, '--max-bytes', '4096');
    expect(capped.status).toBe(2);
    expect(capped.stderr).toMatch(/over the 4096 this restore takes|over 4096 bytes/);
    expect(existsSync(join(c.dir, 'var', 'audit.log.1'))).toBe(false);
    expect(existsSync(join(c.dir, 'settings.env'))).toBe(false);
    // Still fresh: a real backup restores onto it afterwards (the next test).
    expect(existsSync(join(c.dir, 'services', 'flume-bk-kept'))).toBe(false);
  }, 180_000);

  it('with --channels: refused while an agent runs; after a stop, events waiting in a channel come along', async () => {
    await a.up();
    // A's channel kept the three events through its shutdown.
    await until(() => status(a, 'held'), (x) => x.body.metrics?.channelSize === 3, 90_000, 500);
    const refused = run(a, 'backup', '--channels', '--out', join(out, 'refused.tar.gz'));
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('flume-bk-held');
    expect(refused.stderr).toContain('flume-bk-kept');
    expect(existsSync(join(out, 'refused.tar.gz'))).toBe(false);

    for (const t of ['held', 'kept']) expect((await call(a, 'POST', `/v1/api/bk/${t}/stop`)).status).toBe(200);
    const file = join(out, 'channels.tar.gz');
    const r = run(a, 'backup', '--channels', '--out', file);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 agent\(s\) \(0 running, 3 channel\(s\)\)/);
    expect(await a.shutdown()).toEqual([]);

    // The archive's flume.conf edited to run a command: restore renders each agent's config from
    // its checked spec, so what the archive's flume.conf says never reaches an agent.
    const marker = join(tempDir('marker'), 'ran');
    const evil = tampered(file, 'exec.tar.gz', (d) => {
      const f = join(d, 'services/flume-bk-kept/flume.conf');
      const conf = readFileSync(f, 'utf8').replace(/^a1\.sources = r1$/m, 'a1.sources = r1 r2');
      writeFileSync(f, `${conf}\na1.sources.r2.type = exec\na1.sources.r2.command = touch ${marker}\na1.sources.r2.channels = c1\n`);
    });
    const c = installs[2]!;
    const res = run(c, 'restore', evil);
    expect(res.status, res.stderr).toBe(0);
    const restoredConf = readFileSync(join(c.dir, 'services', 'flume-bk-kept', 'flume.conf'), 'utf8');
    expect(restoredConf).not.toContain('exec');
    expect(restoredConf).toContain(join(c.dir, 'var', 'flume-bk-kept'));
    expect((await call(c, 'POST', '/v1/api/bk/kept/start')).status).toBe(200);
    await until(() => status(c, 'kept'), (x) => x.body.state === 'RUNNING' && x.body.accepting === true, 60_000, 500);
    expect(existsSync(marker)).toBe(false);
    expect((await call(c, 'POST', '/v1/api/bk/held/start')).status).toBe(200);
    // The three events the broker never took wait in the restored channel.
    const s = await until(() => status(c, 'held'), (x) => x.body.metrics?.channelSize !== undefined, 60_000, 500);
    expect(s.body.metrics.channelSize).toBe(3);
  }, 300_000);
});
