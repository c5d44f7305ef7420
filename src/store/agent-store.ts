import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Desired } from '../resources/agent-status.js';
import { chmod, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { parse as parseIni } from 'ini';
import type { Config } from '../config.js';
import { writeAtomic } from './files.js';
import { parseProgramName, type TableRef } from '../resources/table.js';
import { agentPaths, standInProgram, type AgentPaths } from './paths.js';
import { standInPhaseSchema, type StandInPhase } from '../resources/agent-status.js';
import type { AgentSpec } from '../resources/agent-spec.js';
import { savedLoggersSchema } from '../resources/loggers.js';

/** services/<program>/agent.json: what the agent was created with. */
export interface AgentMeta extends TableRef {
  program: string;
  port: number;
  /** Flume's metrics server: JSON counters for health. */
  metricsPort: number;
  spec: AgentSpec;
  createdAt: string;
  /** The desired config revision: its spec is `spec` and flume.conf (1 when absent: older agents). */
  revision?: number;
  /** The revision the agent last started with (equal to `revision` except during a change). */
  runningRevision?: number;
  /** Set while paused: the gateway answers 503 AGENT_PAUSED, the agent keeps draining. */
  paused?: { since: string; by: string } | null;
}

/** services/<program>-standin/agent.json: a restart's stand-in (src/agents/stand-in.ts), whose and how far. */
export interface StandInRecord extends AgentMeta {
  standInOf: string;
  phase: StandInPhase;
  /** When the phase began. */
  since: string;
}

/** The desired revision of an agent (older agents have revision 1). */
export const revisionOf = (m: AgentMeta) => m.revision ?? 1;

export type { Desired };

/** The last lines of a log file; [] if it cannot be read. */
/**
 * A log line as answers, incidents and streams show it. The JVM echoes an option it refuses
 * ("Unrecognized option: <text>"), and the text of a refused option may have come from a file
 * (-XX:VMOptionsFile, @argfiles): such a line is withheld, whatever put it there.
 */
export function shownLogLine(line: string): string {
  return /^(Unrecognized (VM )?option|Improperly specified VM option|Error: Could not find or load main class|Error: Unable to access jarfile|Missing \+\/- setting for VM option|Error: VM option)/i.test(line)
    ? '[a JVM option the JVM refused: its text is withheld]'
    : line;
}

export async function logTail(file: string, lines = 15): Promise<string[]> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).map(shownLogLine);
  } catch {
    return [];
  }
}

/** What a log file gained after byte `from` (at most its last `maxBytes`); '' if unreadable. */
export async function logSince(file: string, from: number, maxBytes = 65_536): Promise<string> {
  let fh;
  try {
    fh = await open(file, 'r');
    const size = (await fh.stat()).size;
    const start = Math.max(from, size - maxBytes);
    if (size <= start) return '';
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    await fh?.close();
  }
}

/**
 * The agents on disk, which is the truth: services/<program>/agent.json (metadata) and
 * conf.d/<program>.conf (the supervisord program, whose autostart is the operator's desired
 * state). Metadata is written before the program on create and removed after it on delete,
 * so a program file without metadata is always debris.
 *
 * Guarantees: every write is atomic (temp file + rename). Reads never throw for a missing or
 * unreadable agent: they answer null / 'stopped' / leave it out, and callers decide.
 */
export class AgentStore {
  constructor(private readonly cfg: Config) {}

  paths(program: string): AgentPaths {
    return agentPaths(this.cfg, program);
  }

  async readMeta(program: string): Promise<AgentMeta | null> {
    try {
      return JSON.parse(await readFile(this.paths(program).metaFile, 'utf8')) as AgentMeta;
    } catch {
      return null;
    }
  }

  async writeMeta(meta: AgentMeta): Promise<void> {
    await writeAtomic(this.paths(meta.program).metaFile, `${JSON.stringify(meta, null, 2)}\n`);
  }

  /** The table's restart stand-in, or null (none, or a record that does not read as one). */
  async readStandIn(program: string): Promise<StandInRecord | null> {
    if (!existsSync(this.paths(standInProgram(program)).metaFile)) return null;
    const r = (await this.readMeta(standInProgram(program))) as Partial<StandInRecord> | null;
    return r && r.standInOf === program && standInPhaseSchema.safeParse(r.phase).success && typeof r.since === 'string' ? (r as StandInRecord) : null;
  }

  hasMeta(program: string): boolean {
    return existsSync(this.paths(program).metaFile);
  }

  hasProgram(program: string): boolean {
    return existsSync(this.paths(program).programFile);
  }

  /** Programs that have a services/ directory (metadata may still be missing or unreadable). */
  async servicePrograms(): Promise<string[]> {
    return (await readdir(this.cfg.servicesDir).catch(() => [] as string[])).filter((n) => parseProgramName(n));
  }

  /** Programs that have a conf.d/ program file. */
  async programFiles(): Promise<string[]> {
    return (await readdir(this.cfg.confDir).catch(() => [] as string[]))
      .filter((f) => f.endsWith('.conf'))
      .map((f) => f.slice(0, -'.conf'.length))
      .filter((p) => parseProgramName(p));
  }

  /** Every agent with readable metadata. */
  async allMetas(): Promise<AgentMeta[]> {
    const metas = await Promise.all((await this.servicePrograms()).map((p) => this.readMeta(p)));
    return metas.filter((m): m is AgentMeta => m !== null);
  }

  /** Every port an agent on disk owns (source and metrics): never to be handed to another. */
  async ownedPorts(): Promise<Map<number, string>> {
    const owned = new Map<number, string>();
    // Every program with metadata: agents, and the stand-ins of their restarts (src/agents/stand-in.ts).
    const names = await readdir(this.cfg.servicesDir).catch(() => [] as string[]);
    const metas = (await Promise.all(names.map(async (n) => ({ n, m: await this.readMeta(n) })))).flatMap(({ n, m }) => (m?.program === n ? [m] : []));
    for (const m of metas) {
      owned.set(m.port, m.program);
      owned.set(m.metricsPort, m.program);
    }
    return owned;
  }

  /** The operator's last word: the program's autostart ('stopped' if it has no program file). */
  async desired(program: string): Promise<Desired> {
    try {
      const ini = parseIni(await readFile(this.paths(program).programFile, 'utf8'));
      const section = Object.values(ini)[0] as Record<string, unknown> | undefined;
      return section?.autostart === true || section?.autostart === 'true' ? 'running' : 'stopped';
    } catch {
      return 'stopped';
    }
  }

  /** mtimes of the metadata and program file, to tell a changed agent from an unchanged one. */
  async fingerprint(program: string): Promise<string> {
    const p = this.paths(program);
    const [m, c] = await Promise.all([stat(p.metaFile).catch(() => null), stat(p.programFile).catch(() => null)]);
    return `${m?.mtimeMs ?? 0}:${c?.mtimeMs ?? 0}`;
  }

  /** Writes the supervisord program (its text comes from agents/launch.ts). */
  async writeProgram(program: string, text: string): Promise<void> {
    const paths = this.paths(program);
    await writeAtomic(paths.programFile, text);
    // The JVM reads its control key as it starts: every start writes the program first.
    if (existsSync(paths.serviceDir) && !existsSync(paths.controlKeyFile)) await writeAtomic(paths.controlKeyFile, randomBytes(32).toString('base64url'), 0o600);
    // Agents created before var/<program>/ was kept private become so at their next write.
    await chmod(paths.varDir, 0o750).catch(() => undefined);
  }

  /** The key the agent's JVM asks for on /loggers (null: none yet, the agent has not been started since). */
  async controlKey(program: string): Promise<string | null> {
    return (await readFile(this.paths(program).controlKeyFile, 'utf8').catch(() => null))?.trim() ?? null;
  }

  /** The saved log levels (services/<program>/loggers.json), {} when none. */
  async savedLoggers(program: string): Promise<Record<string, string>> {
    const text = await readFile(this.paths(program).savedLoggersFile, 'utf8').catch(() => null);
    try {
      const parsed = savedLoggersSchema.safeParse(text === null ? {} : JSON.parse(text));
      return parsed.success ? parsed.data : {};
    } catch {
      return {};
    }
  }

  async writeSavedLoggers(program: string, levels: Record<string, string>): Promise<void> {
    const file = this.paths(program).savedLoggersFile;
    if (Object.keys(levels).length === 0) await rm(file, { force: true });
    else await writeAtomic(file, `${JSON.stringify(levels, null, 2)}\n`, 0o640);
  }

  async removeProgramFile(program: string): Promise<void> {
    await rm(this.paths(program).programFile, { force: true });
  }

  /** Removes services/<program>/ (config and metadata); var/ is the caller's decision. */
  async removeServiceDir(program: string): Promise<void> {
    await rm(this.paths(program).serviceDir, { recursive: true, force: true });
  }
}
