/**
 * One consistent backup of this installation's state in a .tar.gz (0600: it holds the secrets):
 *   npm run -s backup -- [--out FILE|-] [--channels]
 * Run by root, it reads the state as the state's owner (root only writes FILE).
 * What it holds: src/store/backup-contents.ts. --channels adds the file channels of agents that do
 * not run (stopped, or never started); an agent that runs makes it refuse, naming it, since a
 * channel copied while its JVM writes it is not consistent: stop those first (a paused agent
 * whose channel drained holds nothing worth copying), or back up without --channels.
 * Restore it onto a fresh installation with `npm run -s restore -- FILE`.
 */
import { cp, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { closeSync, existsSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { BACKUP_FORMAT, MANIFEST_ENTRY, SETTINGS_ENTRY, STATE_DIRS, STATE_FILES, type Manifest } from '../store/backup-contents.js';
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig, settingsFile } from '../config-load.js';
import { actAsStateOwner, stateOwner, type Owner } from '../store/state-owner.js';
import { AgentStore } from '../store/agent-store.js';
import { readBuildInfo } from '../store/build-info.js';
import { processesOf } from '../supervisor/strays.js';

const usage = 'usage: npm run -s backup -- [--out FILE|-] [--channels]   (--out -: the archive on stdout)';

/**
 * Run by root: the backup itself runs as the state's owner (src/store/state-owner.ts) and hands
 * the archive to this process, which alone writes FILE (a path of root's choosing).
 */
async function asOwner(owner: Owner, out: string, channels: boolean): Promise<number> {
  const partial = `${out}.partial`;
  const fd = openSync(partial, 'w', 0o600);
  try {
    const child = spawn(process.execPath, [process.argv[1]!, '--out', '-', ...(channels ? ['--channels'] : [])], { uid: owner.uid, gid: owner.gid, stdio: ['ignore', fd, 'pipe'] });
    let said = '';
    child.stderr!.on('data', (d: Buffer) => (said += d.toString()));
    const code = await new Promise<number>((done, fail) => {
      child.once('error', fail);
      child.once('close', (c) => done(c ?? 1));
    });
    if (code !== 0) {
      process.stderr.write(said);
      await rm(partial, { force: true });
      return code;
    }
    await rename(partial, out);
    const size = (await stat(out)).size;
    console.log(`backup written: ${out} (${(size / 1024).toFixed(0)} KiB): ${said.trim().replace(/^backup: /, '')}`);
    return 0;
  } finally {
    closeSync(fd);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, channels: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const toStdout = values.out === '-';
  const out = toStdout ? '-' : resolve(values.out ?? `flume-service-backup-${hostname()}-${stamp}.tar.gz`);
  if (!toStdout && !existsSync(dirname(out))) throw new UsageError(`--out: directory ${dirname(out)} does not exist`);
  const owner = process.getuid?.() === 0 ? stateOwner(PROJECT_ROOT) : null;
  if (owner && !toStdout) return asOwner(owner, out, values.channels);
  actAsStateOwner(PROJECT_ROOT);
  const cfg = loadConfig();
  const store = new AgentStore(cfg);

  // An agent counts when both its files are there (a create that crashed half-way is left out,
  // as the reconciler would remove it).
  const onDisk = new Set(await store.programFiles());
  const metas = (await store.allMetas()).filter((m) => onDisk.has(m.program)).sort((a, b) => a.program.localeCompare(b.program));
  const running = new Set(processesOf(cfg).filter((p) => p.kind === 'agent' && p.program).map((p) => p.program!));
  if (values.channels) {
    const busy = metas.filter((m) => running.has(m.program)).map((m) => m.program);
    if (busy.length) {
      throw new UsageError(
        `--channels: these agents run, and a channel copied while its JVM writes it is not consistent: ${busy.join(', ')}\n` +
          '  stop them first (POST /v1/api/<db>/<table>/stop, or a bulk stop), or back up without --channels',
      );
    }
  }

  const stage = await mkdtemp(join(tmpdir(), 'flume-backup-'));
  try {
    const agents: Manifest['agents'] = [];
    for (const m of metas) {
      await cp(store.paths(m.program).serviceDir, join(stage, 'services', m.program), { recursive: true, preserveTimestamps: true });
      const channelDir = store.paths(m.program).channelDir;
      const channel = values.channels && existsSync(channelDir);
      if (channel) await cp(channelDir, join(stage, 'var', m.program, 'channel'), { recursive: true, preserveTimestamps: true });
      agents.push({ program: m.program, db: m.db, table: m.table, desired: await store.desired(m.program), channel });
    }
    for (const f of STATE_FILES) {
      const from = join(cfg.STATE_DIR, f);
      if (existsSync(from)) await cp(from, join(stage, f), { preserveTimestamps: true });
    }
    for (const d of STATE_DIRS) {
      const from = join(cfg.STATE_DIR, d);
      if (existsSync(from)) await cp(from, join(stage, d), { recursive: true, preserveTimestamps: true });
    }
    const settings = settingsFile();
    if (existsSync(settings)) await cp(settings, join(stage, SETTINGS_ENTRY));
    const tokens = existsSync(join(stage, 'var/tokens')) ? (await readdir(join(stage, 'var/tokens'))).filter((f) => f.endsWith('.json')).length : 0;
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      createdAt: new Date().toISOString(),
      version: readBuildInfo(cfg.FLUME_LIB_DIR).version,
      host: hostname(),
      agents,
      tokens,
      auditFiles: STATE_FILES.filter((f) => f.startsWith('var/audit.log') && existsSync(join(stage, f))).length,
      settings: existsSync(join(stage, SETTINGS_ENTRY)),
    };
    await writeFile(join(stage, MANIFEST_ENTRY), `${JSON.stringify(manifest, null, 2)}\n`);
    const withChannels = agents.filter((a) => a.channel).length;
    const what =
      `${agents.length} agent(s) (${agents.filter((a) => a.desired === 'running').length} running` +
      `${values.channels ? `, ${withChannels} channel(s)` : ', channels not included'}), ${tokens} ingestion token(s), audit (${manifest.auditFiles} file(s)), secrets${manifest.settings ? ', settings' : ''}`;
    if (toStdout) {
      await execa('tar', ['-czf', '-', '-C', stage, '.'], { stdout: 'inherit' });
      console.error(`backup: ${what}`);
      return 0;
    }
    // Written beside its final name, then renamed: a backup that failed half-way is never taken for one.
    const partial = `${out}.partial`;
    const umask = process.umask(0o077);
    try {
      await execa('tar', ['-czf', partial, '-C', stage, '.']);
    } finally {
      process.umask(umask);
    }
    await rename(partial, out);
    const size = (await stat(out)).size;
    console.log(`backup written: ${out} (${(size / 1024).toFixed(0)} KiB): ${what}`);
    return 0;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

class UsageError extends Error {}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`backup: ${e.message}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
