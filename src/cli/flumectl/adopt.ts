import { Redis } from 'ioredis';
import { readSeedInstall } from '../../adopt/seed-install.js';
import { seedSpec } from '../../adopt/seed-spec.js';
import { configSchema } from '../../config.js';
import { CliError, EXIT, call, type Connection } from './client.js';
import { table } from './format.js';

export interface AdoptFlags {
  from?: string;
  'seed-redis'?: string;
  'name-node'?: string;
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
