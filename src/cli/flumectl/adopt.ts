import { spawnSync } from 'node:child_process';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { portListening } from '../../flume/client.js';
import { pidAlive } from '../../supervisor/strays.js';
import { queuedEvents } from '../../flume/checkpoint.js';
import { readSeedInstall } from '../../adopt/seed-install.js';
import { seedSpec } from '../../adopt/seed-spec.js';
import { configSchema } from '../../config.js';
import { CliError, EXIT, call, type Connection } from './client.js';
import { table } from './format.js';

export interface AdoptFlags {
  from?: string;
  'seed-redis'?: string;
  'name-node'?: string;
  apply?: boolean;
  tables?: string;
  'seed-supervisorctl'?: string;
  json?: boolean;
}

/**
 * flumectl adopt --from DIR: what taking over an installation of the original design would do,
 * table by table (its port kept, its channel's events, our spec for it, what is not carried
 * over), read from its files and its Redis without changing either. Exit 4 when a table cannot
 * be taken over as it is.
 */
export async function adoptPlan(c: Connection, f: AdoptFlags, out: (s: string) => void): Promise<number> {
  if (!f.from || !f.from.startsWith('/')) throw new CliError(EXIT.USAGE, 'adopt needs --from /path/to/service (the old service\'s root: its conf.d/ and services/)');
  const url = f['seed-redis'] ?? 'redis://127.0.0.1:6379/0';
  if (!/^rediss?:\/\/[^\s]+$/.test(url)) throw new CliError(EXIT.USAGE, `--seed-redis must be redis://host:port/db, not ${url}`);
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, enableOfflineQueue: false });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new CliError(EXIT.UNREACHABLE, `cannot reach the old installation's Redis at ${url}: ${(err as Error).message}`);
  }
  let install;
  try {
    install = await readSeedInstall(f.from.replace(/\/+$/, ''), { get: (k) => redis.get(k) });
  } finally {
    redis.disconnect();
  }
  const limits = { defaultHeap: configSchema.shape.AGENT_HEAP.parse(undefined), maxHeap: configSchema.shape.AGENT_MAX_HEAP.parse(undefined) };
  const tables = await Promise.all(
    install.tables.map(async (t) => {
      const s = seedSpec(t, { nameNode: f['name-node'], limits });
      const ours = await call(c, 'GET', `/v1/api/${t.db}/${t.table}/status`, { ok: [404] });
      const action = ours.status === 200 ? 'already ours: left alone' : s.spec ? 'take over' : 'cannot: see its problems';
      return { ...t, properties: undefined, spec: s.spec, notes: [...t.notes, ...s.notes], problems: s.problems, action };
    }),
  );
  const plan = { root: install.root, tables, problems: install.problems };
  const blocked = install.problems.length > 0 || tables.some((t) => t.spec === null && !t.action.startsWith('already'));
  if (f.apply) return cutOver(c, f, install.root, tables.filter((t) => t.action === 'take over' && (!f.tables || f.tables.split(',').includes(`${t.db}.${t.table}`))), out);
  if (f.json) {
    out(JSON.stringify(plan, null, 2));
    return blocked ? EXIT.PARTIAL : EXIT.OK;
  }
  const lines = [
    `${install.root}: ${tables.length} table(s)`,
    table([
      ['TABLE', 'FROM', 'PORT', 'EVENTS', 'SINK', 'ACTION'],
      ...tables.map((t) => [`${t.db}.${t.table}`, t.service, String(t.port), t.eventsAtCheckpoint === null ? '?' : String(t.eventsAtCheckpoint), String(t.spec?.sink ?? '-'), t.action]),
    ]),
  ];
  for (const t of tables) for (const x of [...t.problems.map((p) => `problem: ${p}`), ...t.notes]) lines.push(`  ${t.db}.${t.table}: ${x}`);
  for (const p of install.problems) lines.push(`problem: ${p}`);
  lines.push('nothing was changed (this is the plan)');
  out(lines.join('\n'));
  return blocked ? EXIT.PARTIAL : EXIT.OK;
}

type Planned = { service: string; db: string; table: string; program: string; port: number; checkpointDir: string; dataDirs: string[]; spec: Record<string, unknown> | null };

/**
 * The take-over, one table at a time: the old program stopped (its channel checkpointed), ours
 * created on its port with its channel moved in and started, then the old program removed from
 * the old supervisord. Should ours not come up, the API has put the channel back and the old
 * program is started again (the way back), and nothing after it is touched (exit 4).
 */
async function cutOver(c: Connection, f: AdoptFlags, root: string, tables: Planned[], out: (s: string) => void): Promise<number> {
  const ctl = (f['seed-supervisorctl'] ?? 'supervisorctl').split(' ').filter(Boolean);
  const old = (...args: string[]) => {
    const r = spawnSync(ctl[0]!, [...ctl.slice(1), '-c', join(root, 'supervisor.conf'), ...args], { encoding: 'utf8', timeout: 120_000 });
    return { ok: r.status === 0, said: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || String(r.error ?? '') };
  };
  let done = 0;
  for (const t of tables) {
    const name = `${t.db}.${t.table}`;
    if (t.dataDirs.length !== 1) {
      out(`${name}: its channel has ${t.dataDirs.length} data directories; adopt moves one: left as it is`);
      return EXIT.PARTIAL;
    }
    // The old JVM gone, not only its port closed (Flume closes the source first, then checkpoints
    // the channel): ours must never run beside it. Its pid as the old supervisord knows it.
    const pid = Number(old('pid', t.service).said) || 0;
    const stopped = old('stop', t.service);
    const running = async () => (await portListening(t.port)) || (pid > 0 && pidAlive(pid));
    for (let i = 0; i < 120 && (await running()); i++) await new Promise((r) => setTimeout(r, 500));
    if (await running()) {
      out(`${name}: the old program did not stop (${stopped.said}); left as it is`);
      return EXIT.PARTIAL;
    }
    const events = await queuedEvents(t.checkpointDir);
    try {
      await call(c, 'POST', `/v1/api/${t.db}/${t.table}/adopt`, { body: { spec: t.spec, port: t.port, checkpointDir: t.checkpointDir, dataDir: t.dataDirs[0] } });
    } catch (err) {
      const back = old('start', t.service);
      out(`${name}: not taken over: ${(err as Error).message}; the old program ${back.ok ? 'runs again' : `did not start again: ${back.said}`}`);
      out(`${done} of ${tables.length} table(s) taken over; halted`);
      return EXIT.PARTIAL;
    }
    // The old supervisord forgets the program (it would start it again at its next start).
    await rename(join(root, 'conf.d', `${t.service}.conf`), join(root, 'conf.d', `${t.service}.conf.adopted`));
    old('reread');
    old('update');
    done++;
    out(`${name}: taken over on port ${t.port} as ${t.program}${events === null ? '' : `, ${events} event(s) handed over in its channel`}`);
  }
  out(`${done} of ${tables.length} table(s) taken over`);
  return EXIT.OK;
}
