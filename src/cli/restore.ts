/**
 * Restores a backup (npm run -s backup) onto a fresh installation:
 *   npm run -s restore -- FILE
 * Refuses an installation that already has agents or ingestion tokens, and any archive holding
 * an entry a backup does not write (src/store/backup-contents.ts), before anything is written. Then:
 * the agents' specs and metadata go back to services/, their supervisord programs are rendered
 * again for this host (paths, Flume jars, JVM options) with the desired state they had; the
 * secrets, ingestion tokens, revoked control tokens, pending webhooks and the audit trail go
 * back to var/ (this installation's own audit lines follow the restored ones); channels when
 * the backup has them. The settings file is restored when this installation has none (else it
 * is written beside it as <file>.restored). Redis is told its copy is stale, so the API fills it
 * again from the disk. With supervisord running, the API and event listener restart (they read
 * the secrets), the gateway reloads, and supervisord loads the programs: what ran runs.
 */
import { appendFile, chown, cp, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { existsSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { allowedEntry, MANIFEST_ENTRY, manifestSchema, SETTINGS_ENTRY, STATE_DIRS, STATE_FILES } from '../store/backup-contents.js';
import { loadConfig, PROJECT_ROOT, settingsFile, type Config } from '../config.js';
import { programFor } from '../agents/launch.js';
import { canBind } from '../agents/port-allocator.js';
import { createRedis } from '../redis/client.js';
import { makeKeys } from '../redis/keys.js';
import { programName } from '../resources/table.js';
import { AgentStore } from '../store/agent-store.js';
import { liveSupervisord } from '../supervisor/strays.js';

const usage = 'usage: npm run -s restore -- FILE';
class UsageError extends Error {}

/** Every entry of the archive, refused whole when one is not a plain file or directory a backup writes. */
async function checkedEntries(file: string): Promise<void> {
  const { stdout } = await execa('tar', ['-tvzf', file]).catch((e: Error) => {
    throw new UsageError(`${file} is not a readable .tar.gz (${e.message.split('\n').slice(-1)[0]})`);
  });
  const bad: string[] = [];
  for (const line of stdout.split('\n').filter(Boolean)) {
    const type = line[0];
    // GNU tar -tv: "drwxr-x--- root/root 0 2026-12-02 18:00 ./services/" (the name is the last field; names have no spaces)
    const name = line.split(/\s+/).slice(5).join(' ');
    if ((type !== '-' && type !== 'd') || !allowedEntry(name)) bad.push(name);
  }
  if (bad.length) throw new UsageError(`${file} holds entries a backup never writes (nothing was restored): ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ', ...' : ''}`);
}

async function ownerOf(dir: string): Promise<{ uid: number; gid: number }> {
  const s = await stat(dir);
  return { uid: s.uid, gid: s.gid };
}

async function chownTree(path: string, o: { uid: number; gid: number }): Promise<void> {
  if (!existsSync(path)) return;
  await chown(path, o.uid, o.gid);
  if (lstatSync(path).isDirectory()) for (const e of await readdir(path)) await chownTree(join(path, e), o);
}

async function fresh(cfg: Config, store: AgentStore): Promise<string[]> {
  const problems: string[] = [];
  const have = new Set([...(await store.programFiles()), ...(await store.servicePrograms())]);
  if (have.size) problems.push(`it has ${have.size} agent(s) (${[...have].slice(0, 3).join(', ')}${have.size > 3 ? ', ...' : ''})`);
  const tokens = (await readdir(join(cfg.varDir, 'tokens')).catch(() => [] as string[])).filter((f) => f.endsWith('.json'));
  if (tokens.length) problems.push(`it has ${tokens.length} ingestion token(s) in var/tokens/`);
  return problems;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(usage);
  const file = resolve(positionals[0]!);
  if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
  const cfg = loadConfig();
  const store = new AgentStore(cfg);
  const problems = await fresh(cfg, store);
  if (problems.length) throw new UsageError(`restore goes onto a fresh installation, and this one is not: ${problems.join('; ')}. Nothing was restored.`);
  await checkedEntries(file);
  // Reached before anything is written: the restore ends by telling Redis its copy is stale.
  const redis = createRedis(cfg.REDIS_URL, cfg.REDIS_TLS_CA_FILE);
  redis.on('error', () => undefined);
  await redis.connect().catch((e: Error) => {
    throw new UsageError(`Redis at REDIS_URL does not answer (${e.message}): start the service first (bash scripts/up.sh). Nothing was restored.`);
  });

  const stage = await mkdtemp(join(tmpdir(), 'flume-restore-'));
  try {
    await execa('tar', ['-xzf', file, '-C', stage, '--no-same-owner', '--no-same-permissions']);
    let manifestText: string;
    try {
      manifestText = await readFile(join(stage, MANIFEST_ENTRY), 'utf8');
    } catch {
      throw new UsageError(`${file} has no ${MANIFEST_ENTRY}: not a flume-service backup`);
    }
    const parsed = manifestSchema.safeParse(JSON.parse(manifestText));
    if (!parsed.success) throw new UsageError(`${file}: ${MANIFEST_ENTRY} is not one this version reads: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const manifest = parsed.data;
    for (const a of manifest.agents) {
      if (programName(a) !== a.program) throw new UsageError(`${file}: agent ${a.program} does not match its db/table`);
      if (!existsSync(join(stage, 'services', a.program, 'agent.json'))) throw new UsageError(`${file}: agent ${a.program} has no services/${a.program}/agent.json`);
    }
    // Each agent keeps its ports (its Flume config binds them): they must be free here.
    const taken: string[] = [];
    for (const a of manifest.agents) {
      const meta = JSON.parse(await readFile(join(stage, 'services', a.program, 'agent.json'), 'utf8')) as { port: number; metricsPort: number };
      for (const port of [meta.port, meta.metricsPort]) if (!(await canBind(port))) taken.push(`${port} (${a.program})`);
    }
    if (taken.length) {
      throw new UsageError(
        `ports the backup's agents own are in use on this host: ${taken.join(', ')}. Restore onto another host, or stop what holds them ` +
          '(the installation the backup came from, on this host?). Nothing was restored.',
      );
    }
    const owner = await ownerOf(cfg.varDir);
    const asRoot = process.getuid?.() === 0;

    // The installation's own audit lines (this restore's host may have some) follow the restored ones.
    const ownAudit = await readFile(join(cfg.varDir, 'audit.log'), 'utf8').catch(() => '');
    for (const f of [...STATE_FILES, ...STATE_DIRS]) {
      const from = join(stage, f);
      if (!existsSync(from)) continue;
      await rm(join(cfg.STATE_DIR, f), { recursive: true, force: true });
      await cp(from, join(cfg.STATE_DIR, f), { recursive: true, preserveTimestamps: true });
      if (asRoot) await chownTree(join(cfg.STATE_DIR, f), owner);
    }
    if (ownAudit) await appendFile(join(cfg.varDir, 'audit.log'), ownAudit);

    for (const a of manifest.agents) {
      const paths = store.paths(a.program);
      await cp(join(stage, 'services', a.program), paths.serviceDir, { recursive: true, preserveTimestamps: true });
      if (a.channel && existsSync(join(stage, 'var', a.program, 'channel'))) {
        await rm(paths.channelDir, { recursive: true, force: true });
        await cp(join(stage, 'var', a.program, 'channel'), paths.channelDir, { recursive: true, preserveTimestamps: true });
      }
      await mkdir(paths.varDir, { recursive: true, mode: 0o750 });
      const meta = await store.readMeta(a.program);
      if (!meta) throw new Error(`services/${a.program}/agent.json is not readable after the copy`);
      await store.writeProgram(a.program, programFor(cfg, meta, a.desired === 'running'));
      if (asRoot) for (const p of [paths.serviceDir, paths.varDir, paths.programFile]) await chownTree(p, owner);
    }

    let settingsNote = '';
    if (manifest.settings) {
      const target = settingsFile();
      const dest = existsSync(target) ? `${target}.restored` : target;
      await cp(join(stage, SETTINGS_ENTRY), dest);
      settingsNote = dest === target ? `, settings (${target})` : `; the backup's settings are in ${dest} (this installation has its own ${target}: compare them, then bash scripts/apply-settings.sh)`;
    }

    // Redis's copy (tokens, routes, audit stream) is stale: the API refills it from the disk.
    await redis.del(makeKeys(cfg.REDIS_KEY_PREFIX).epoch());

    const summary = `restored ${manifest.agents.length} agent(s) (${manifest.agents.filter((a) => a.desired === 'running').length} to run, ${manifest.agents.filter((a) => a.channel).length} with channel), ${manifest.tokens} ingestion token(s), audit, secrets${settingsNote}`;
    if (liveSupervisord(cfg.varDir)) {
      const ctl = (...args: string[]) => execa('supervisorctl', ['-c', join(PROJECT_ROOT, 'supervisor.conf'), ...args], { reject: false });
      // Rendered as the service's user when root runs this (its files stay that user's).
      await execa(process.execPath, [join(PROJECT_ROOT, 'dist', 'cli', 'gateway-config.js')], asRoot && owner.uid !== 0 ? { uid: owner.uid, gid: owner.gid } : {});
      const steps = [['update'], ['restart', 'api', 'agent-events'], ['signal', 'HUP', 'gateway']];
      let failed = false;
      for (const step of steps) {
        const r = await ctl(...step);
        if (r.exitCode !== 0) {
          console.error(`restore: supervisorctl ${step.join(' ')}: ${(r.stdout + r.stderr).trim()}`);
          failed = true;
        }
      }
      if (failed) {
        console.log(`${summary}\nthe files are in place, but supervisord did not take them all (above): see var/log/supervisord.log, then bash scripts/up.sh`);
        return 1;
      }
      console.log(`${summary}\nthe API and event listener restarted, the gateway reloaded, supervisord loaded the agents (the ones that ran start now)`);
    } else {
      console.log(`${summary}\nsupervisord does not run here: bash scripts/up.sh starts the service, and the agents that ran`);
    }
    return 0;
  } finally {
    redis.disconnect();
    await rm(stage, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`restore: ${e.message}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
