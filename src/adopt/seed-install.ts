import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseIni } from 'ini';
import { queuedEvents } from '../flume/checkpoint.js';
import { NAME_PATTERN, programName } from '../resources/table.js';

/**
 * An installation of the original design (a Flask service writing supervisor programs and Flume
 * configs, ports in Redis; test/fixtures/seed-install/README.md), read as it is: nothing here
 * writes, starts or stops anything. Every value is the old installation's, hence untrusted: names
 * are checked against our own patterns, ports and numbers parsed, paths must be absolute and
 * under the installation's root, and what does not fit is a problem named, never guessed.
 */

/** One table of the old installation, as its files and Redis say. */
export interface SeedTable {
  /** The old program's name, `<db>_<table>`. */
  service: string;
  db: string;
  table: string;
  /** Ours, for the same table. */
  program: string;
  /** The port its Flume config listens on (what its senders reach). */
  port: number;
  /** The port its Redis key says (the gateway's map), null when it has none. */
  portInRedis: number | null;
  checkpointDir: string;
  dataDirs: string[];
  /** Events its channel held at its last checkpoint (null: not known). */
  eventsAtCheckpoint: number | null;
  /** What differs from what one would expect, said (nothing that stops a take-over). */
  notes: string[];
  /** Flume's properties of its agent a1, keys without the `a1.` prefix. */
  properties: Record<string, string>;
}

export interface SeedInstall {
  root: string;
  tables: SeedTable[];
  /** What cannot be taken over as it is, each naming its file or key. */
  problems: string[];
}

/** What Redis answers: only GET is needed (the seed's keys are `<db>_<table>` -> port). */
export interface SeedRedis {
  get(key: string): Promise<string | null>;
}

const SERVICE = /^[a-z0-9][a-z0-9_]{0,96}$/;
const name = NAME_PATTERN;

/** Flume's properties file: `key = value` lines, # comments; only `a1.` keys are kept. */
export function flumeProperties(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('!')) continue;
    const m = /^a1\.([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

/** db and table from the service name; the HDFS path (/ingestion/<db>/<table>/) decides where a name with several `_` splits. */
export function tableOf(service: string, props: Record<string, string>): { db: string; table: string } | string {
  const fromPath = /^\/ingestion\/([a-z0-9_]+)\/([a-z0-9_]+)\//.exec(props['sinks.k1.hdfs.path'] ?? '');
  if (fromPath && `${fromPath[1]}_${fromPath[2]}` === service && name.test(fromPath[1]!) && name.test(fromPath[2]!)) return { db: fromPath[1]!, table: fromPath[2]! };
  const splits = [...service.matchAll(/_/g)].map((m) => m.index).map((i) => ({ db: service.slice(0, i), table: service.slice(i + 1) })).filter((s) => name.test(s.db) && name.test(s.table));
  if (splits.length === 1) return splits[0]!;
  return splits.length === 0 ? `${service} is not <db>_<table>` : `${service} could be ${splits.map((s) => `${s.db}.${s.table}`).join(' or ')}: its config does not say which`;
}

const within = (root: string, p: string) => p.startsWith(`${root.replace(/\/+$/, '')}/`) && !p.split('/').includes('..');

/** Reads the installation under `root` (its conf.d/ and services/) and the ports its Redis holds. */
export async function readSeedInstall(root: string, redis: SeedRedis): Promise<SeedInstall> {
  const problems: string[] = [];
  const tables: SeedTable[] = [];
  const files = (await readdir(join(root, 'conf.d')).catch(() => null)) ?? [];
  if (!files.length) problems.push(`${join(root, 'conf.d')}: no programs (is ${root} the old service's root?)`);
  for (const file of files.filter((f) => f.endsWith('.conf')).sort()) {
    const where = join(root, 'conf.d', file);
    const ini = parseIni(await readFile(where, 'utf8')) as Record<string, Record<string, string>>;
    for (const [section, program] of Object.entries(ini)) {
      const service = section.startsWith('program:') ? section.slice('program:'.length) : null;
      if (service === null) continue;
      // `ini` nests a section whose name has a dot: not a table's program either.
      if (!SERVICE.test(service) || typeof program.command !== 'string') {
        problems.push(`${where}: program ${service.slice(0, 100)} is not a table's (<db>_<table>)`);
        continue;
      }
      const confPath = /--conf-file\s+(\S+)/.exec(program.command)?.[1] ?? join(root, 'services', service, 'flume.conf');
      if (!within(root, confPath)) {
        problems.push(`${where}: its Flume config ${confPath} is outside ${root}`);
        continue;
      }
      const text = await readFile(confPath, 'utf8').catch(() => null);
      if (text === null) {
        problems.push(`${where}: its Flume config ${confPath} cannot be read`);
        continue;
      }
      const props = flumeProperties(text);
      const ref = tableOf(service, props);
      if (typeof ref === 'string') {
        problems.push(`${where}: ${ref}`);
        continue;
      }
      const port = Number(props['sources.r1.port']);
      if (props['sources.r1.type'] !== 'http' || !Number.isInteger(port) || port < 1 || port > 65535) {
        problems.push(`${confPath}: no HTTP source with a port (a1.sources.r1)`);
        continue;
      }
      const checkpointDir = props['channels.c1.checkpointDir'] ?? '';
      const dataDirs = (props['channels.c1.dataDirs'] ?? '').split(',').map((d) => d.trim()).filter(Boolean);
      if (props['channels.c1.type'] !== 'file' || !checkpointDir || !dataDirs.length || ![checkpointDir, ...dataDirs].every((d) => within(root, d))) {
        problems.push(`${confPath}: its channel is not a file channel with its directories under ${root}`);
        continue;
      }
      const inRedis = await redis.get(service);
      const portInRedis = inRedis !== null && /^\d{1,5}$/.test(inRedis) ? Number(inRedis) : null;
      const notes = portInRedis === port ? [] : [`Redis maps ${service} to ${inRedis === null ? 'nothing' : `port ${inRedis.slice(0, 20)}`}, its config listens on ${port}: ${port} is what runs, and is kept`];
      tables.push({ service, ...ref, program: programName(ref), port, portInRedis, checkpointDir, dataDirs, eventsAtCheckpoint: await queuedEvents(checkpointDir), notes, properties: props });
    }
  }
  return { root, tables, problems };
}
