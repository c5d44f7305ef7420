/**
 * Restores a backup (npm run -s backup) onto a fresh installation:
 *   npm run -s restore -- FILE [--max-bytes N]      (FILE '-': the archive on stdin)
 * An archive is data from elsewhere, trusted for nothing but what it may hold. Before anything
 * is written, it refuses an installation that already has agents or ingestion tokens, and the
 * whole archive when: an entry is one a backup does not write, or larger than a backup writes it
 * (src/store/backup-contents.ts); it unpacks to more than --max-bytes (default 64 GiB) or than
 * the disk has free; an agent's spec is not one a create takes here, or any file a restore reads
 * does not parse as the service reads it (src/cli/restore-plan.ts); the settings file has a key
 * or value the service refuses; an agent's ports are taken here. Then: each agent's metadata,
 * spec and revisions go back to services/, its flume.conf and supervisord program rendered again
 * for this host from its checked spec (never copied from the archive), with the desired state it
 * had; the secrets, ingestion tokens, revoked control tokens, pending webhooks to URLs this
 * installation sends to, and the audit trail go back to var/ (this installation's own audit
 * lines follow the restored ones); channels when the backup has them. The settings file is
 * restored when this installation has none (else it is written beside it as <file>.restored).
 * Redis is told its copy is stale, so the API fills it again from the disk. With supervisord
 * running, the API and event listener restart (they read the secrets), the gateway reloads, and
 * supervisord loads the programs: what ran runs.
 * Run by root, it restores as the state's owner (root only opens FILE).
 */
import { appendFile, cp, mkdir, mkdtemp, readFile, readdir, rm, statfs } from 'node:fs/promises';
import { closeSync, createReadStream, createWriteStream, existsSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { archiveProblems, MANIFEST_ENTRY, manifestSchema, parseTarListing, SETTINGS_ENTRY, STATE_FILES } from '../store/backup-contents.js';
import { type Config } from '../config.js';
import { PROJECT_ROOT } from '../config-kinds.js';
import { loadConfig, settingsFile } from '../config-load.js';
import { flumeConfFor, programFor } from '../agents/launch.js';
import { canBind } from '../agents/port-allocator.js';
import { createRedis } from '../redis/client.js';
import { makeKeys } from '../redis/keys.js';
import { programName } from '../resources/table.js';
import { AgentStore } from '../store/agent-store.js';
import { writeAtomic } from '../store/files.js';
import { RevisionStore } from '../store/revisions.js';
import { actAsStateOwner, stateOwner, type Owner } from '../store/state-owner.js';
import { liveSupervisord } from '../supervisor/strays.js';
import { planRestore } from './restore-plan.js';

const usage = 'usage: npm run -s restore -- FILE [--max-bytes N] [--yes]   (FILE - reads the archive from stdin)';
class UsageError extends Error {}

/** The largest archive restored unless --max-bytes says otherwise: 64 GiB unpacked (channels included). */
const DEFAULT_MAX_BYTES = 64 * 1024 ** 3;
/** What the disk must keep free beyond what the archive unpacks to. */
const DISK_MARGIN_BYTES = 512 * 1024 ** 2;

async function fresh(cfg: Config, store: AgentStore): Promise<string[]> {
  const problems: string[] = [];
  const have = new Set([...(await store.programFiles()), ...(await store.servicePrograms())]);
  if (have.size) problems.push(`it has ${have.size} agent(s) (${[...have].slice(0, 3).join(', ')}${have.size > 3 ? ', ...' : ''})`);
  const tokens = (await readdir(join(cfg.varDir, 'tokens')).catch(() => [] as string[])).filter((f) => f.endsWith('.json'));
  if (tokens.length) problems.push(`it has ${tokens.length} ingestion token(s) in var/tokens/`);
  return problems;
}

/** Copies the archive (a file or stdin) into `to`, refusing one larger than `max` compressed bytes. */
async function take(from: NodeJS.ReadableStream, to: string, max: number): Promise<void> {
  let n = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      done(n > max ? new UsageError(`the archive is over ${max} bytes (--max-bytes). Nothing was restored.`) : null, chunk);
    },
  });
  await pipeline(from, cap, createWriteStream(to, { mode: 0o600 }));
}

/**
 * Run by root: the restore itself runs as the state's owner (src/store/state-owner.ts), which
 * reads the archive from this process on its stdin; only the archive's path is opened as root.
 */
async function asOwner(owner: Owner, file: string, args: string[]): Promise<number> {
  const fd = openSync(file, 'r');
  try {
    const child = spawn(process.execPath, [process.argv[1]!, '-', ...args], { uid: owner.uid, gid: owner.gid, stdio: [fd, 'inherit', 'inherit'] });
    return await new Promise<number>((done, fail) => {
      child.once('error', fail);
      child.once('close', (code) => done(code ?? 1));
    });
  } finally {
    closeSync(fd);
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { help: { type: 'boolean', short: 'h' }, 'max-bytes': { type: 'string' } } });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(usage);
  const maxBytes = values['max-bytes'] === undefined ? DEFAULT_MAX_BYTES : Number(values['max-bytes']);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1024) throw new UsageError(`--max-bytes must be a number of bytes (at least 1024)\n${usage}`);
  const fromStdin = positionals[0] === '-';
  const file = fromStdin ? '-' : resolve(positionals[0]!);
  if (!fromStdin && !existsSync(file)) throw new UsageError(`${file}: no such file`);
  const owner = process.getuid?.() === 0 ? stateOwner(PROJECT_ROOT) : null;
  if (owner && !fromStdin) return asOwner(owner, file, values['max-bytes'] === undefined ? [] : ['--max-bytes', String(maxBytes)]);
  actAsStateOwner(PROJECT_ROOT);

  const cfg = loadConfig();
  const store = new AgentStore(cfg);
  const problems = await fresh(cfg, store);
  if (problems.length) throw new UsageError(`restore goes onto a fresh installation, and this one is not: ${problems.join('; ')}. Nothing was restored.`);

  const stage = await mkdtemp(join(tmpdir(), 'flume-restore-'));
  let redis: ReturnType<typeof createRedis> | null = null;
  try {
    const archive = join(stage, 'archive.tar.gz');
    await take(fromStdin ? process.stdin : createReadStream(file), archive, maxBytes);
    const name = fromStdin ? 'the archive' : file;
    const { stdout } = await execa('tar', ['-tvzf', archive]).catch((e: Error) => {
      throw new UsageError(`${name} is not a readable .tar.gz (${e.message.split('\n').slice(-1)[0]})`);
    });
    const entries = parseTarListing(stdout);
    const refused = archiveProblems(entries, { auditMaxBytes: cfg.AUDIT_LOG_MAX_BYTES, maxTotal: maxBytes });
    if (refused.length) throw new UsageError(`${name}: ${refused.join('; ')}. Nothing was restored.`);
    const unpacked = entries.reduce((n, e) => n + (e.type === '-' ? e.size : 0), 0);
    const disk = await statfs(cfg.STATE_DIR);
    const free = Math.min(disk.bavail * disk.bsize, (await statfs(stage)).bavail * disk.bsize);
    if (unpacked + DISK_MARGIN_BYTES > free) throw new UsageError(`${name} unpacks to ${unpacked} bytes and the disk has ${free} free (keeping ${DISK_MARGIN_BYTES} spare). Nothing was restored.`);

    // Reached before anything is written: the restore ends by telling Redis its copy is stale.
    redis = createRedis(cfg.REDIS_URL, cfg.REDIS_TLS_CA_FILE);
    redis.on('error', () => undefined);
    await redis.connect().catch((e: Error) => {
      throw new UsageError(`Redis at REDIS_URL does not answer (${e.message}): start the service first (bash scripts/up.sh). Nothing was restored.`);
    });

    const x = join(stage, 'x');
    await mkdir(x, { mode: 0o700 });
    await execa('tar', ['-xzf', archive, '-C', x, '--no-same-owner', '--no-same-permissions']);
    await rm(archive, { force: true });
    let manifestText: string;
    try {
      manifestText = await readFile(join(x, MANIFEST_ENTRY), 'utf8');
    } catch {
      throw new UsageError(`${name} has no ${MANIFEST_ENTRY}: not a flume-service backup`);
    }
    let manifestJson: unknown;
    try {
      manifestJson = JSON.parse(manifestText);
    } catch {
      throw new UsageError(`${name}: ${MANIFEST_ENTRY} is not JSON`);
    }
    const parsed = manifestSchema.safeParse(manifestJson);
    if (!parsed.success) throw new UsageError(`${name}: ${MANIFEST_ENTRY} is not one this version reads: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const manifest = parsed.data;
    for (const a of manifest.agents) {
      if (programName(a) !== a.program) throw new UsageError(`${name}: agent ${a.program} does not match its db/table`);
    }
    const { plan, problems: bad } = await planRestore(x, manifest, cfg);
    if (bad.length) throw new UsageError(`${name}: ${bad.slice(0, 10).join('; ')}${bad.length > 10 ? `; and ${bad.length - 10} more` : ''}. Nothing was restored.`);
    // Each agent keeps its ports (its Flume config binds them): they must be free here.
    const taken: string[] = [];
    for (const a of plan.agents) {
      for (const port of [a.meta.port, a.meta.metricsPort]) if (!(await canBind(port))) taken.push(`${port} (${a.meta.program})`);
    }
    if (taken.length) {
      throw new UsageError(
        `ports the backup's agents own are in use on this host: ${taken.join(', ')}. Restore onto another host, or stop what holds them ` +
          '(the installation the backup came from, on this host?). Nothing was restored.',
      );
    }

    // Everything checked: now written, as the state's owner (this process, run by root or not).
    const ownAudit = await readFile(join(cfg.varDir, 'audit.log'), 'utf8').catch(() => '');
    for (const f of [...STATE_FILES, 'var/tokens', 'var/revoked-control-tokens.json']) {
      const from = join(x, f);
      if (!existsSync(from)) continue;
      await rm(join(cfg.STATE_DIR, f), { recursive: true, force: true });
      await cp(from, join(cfg.STATE_DIR, f), { recursive: true, preserveTimestamps: true });
    }
    if (plan.webhooks.length) {
      await mkdir(join(cfg.varDir, 'webhooks'), { recursive: true, mode: 0o700 });
      for (const w of plan.webhooks) await cp(join(x, 'var/webhooks', w), join(cfg.varDir, 'webhooks', w), { preserveTimestamps: true });
    }
    if (ownAudit) await appendFile(join(cfg.varDir, 'audit.log'), ownAudit);

    for (const a of plan.agents) {
      const paths = store.paths(a.meta.program);
      // Rendered here from the checked spec, as a create renders it: nothing of the archive's services/ is copied.
      await mkdir(paths.serviceDir, { recursive: true, mode: 0o750 });
      await writeAtomic(paths.flumeConf, flumeConfFor(cfg, a.meta, paths));
      const revisions = new RevisionStore(paths.revisionsDir, cfg.CONFIG_REVISIONS_KEPT);
      for (const r of a.revisions) await revisions.write(r);
      await store.writeMeta(a.meta);
      if (a.channel && existsSync(join(x, 'var', a.meta.program, 'channel'))) {
        await rm(paths.channelDir, { recursive: true, force: true });
        await cp(join(x, 'var', a.meta.program, 'channel'), paths.channelDir, { recursive: true, preserveTimestamps: true });
      }
      await mkdir(paths.varDir, { recursive: true, mode: 0o750 });
      await store.writeProgram(a.meta.program, programFor(cfg, a.meta, a.desired === 'running'));
    }

    let settingsNote = '';
    if (manifest.settings) {
      const target = settingsFile();
      const dest = existsSync(target) ? `${target}.restored` : target;
      await cp(join(x, SETTINGS_ENTRY), dest);
      settingsNote = dest === target ? `, settings (${target})` : `; the backup's settings are in ${dest} (this installation has its own ${target}: compare them, then bash scripts/apply-settings.sh)`;
    }
    if (plan.webhooksDropped) settingsNote += `; ${plan.webhooksDropped} pending webhook(s) to URLs this installation does not send to were dropped`;

    // Redis's copy (tokens, routes, audit stream) is stale: the API refills it from the disk.
    await redis.del(makeKeys(cfg.REDIS_KEY_PREFIX).epoch());

    const summary = `restored ${plan.agents.length} agent(s) (${plan.agents.filter((a) => a.desired === 'running').length} to run, ${plan.agents.filter((a) => a.channel).length} with channel), ${manifest.tokens} ingestion token(s), audit, secrets${settingsNote}`;
    if (liveSupervisord(cfg.varDir)) {
      const ctl = (...args: string[]) => execa('supervisorctl', ['-c', join(PROJECT_ROOT, 'supervisor.conf'), ...args], { reject: false });
      await execa(process.execPath, [join(PROJECT_ROOT, 'dist', 'cli', 'gateway-config.js')]);
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
    redis?.disconnect();
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
