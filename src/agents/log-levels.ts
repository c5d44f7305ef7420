import { agentNotFound, loggersUnavailable } from '../errors.js';
import { agentLoggers } from '../flume/loggers.js';
import type { Loggers } from '../resources/loggers.js';
import { programName, type TableRef } from '../resources/table.js';
import type { AgentStore } from '../store/agent-store.js';

/**
 * An agent's log levels at run time, as Kafka Connect's admin/loggers: read from and set in its
 * running JVM (in memory: a restart forgets them), or saved in its files (loggers.json), which
 * the JVM sets as it starts.
 *
 * Guarantees: a level is set only through the JVM's own check of the control key (never by
 * writing the agent's log4j configuration); a save is on disk before it answers; a level the
 * running JVM could not take is an error (409 LOGGERS_UNAVAILABLE), unless it was saved, when the
 * answer says it applies at the next start.
 */
export class LogLevels {
  constructor(private readonly store: AgentStore) {}

  private async meta(ref: TableRef) {
    const program = programName(ref);
    const meta = await this.store.readMeta(program);
    if (!meta) throw agentNotFound(program);
    return meta;
  }

  private async running(ref: TableRef, set?: { name: string; level: string }): Promise<Record<string, string> | string> {
    const meta = await this.meta(ref);
    const key = await this.store.controlKey(meta.program);
    if (!key) return 'it has not been started since log levels were served: restart it';
    const a = await agentLoggers(meta.metricsPort, key, set);
    if (a.ok) return a.levels;
    return a.why === 'down' ? 'it is not running' : a.why === 'unsupported' ? 'its JVM was started without the service\'s launcher or before log levels were served: restart it' : `its JVM refused: ${a.detail}`;
  }

  async get(ref: TableRef): Promise<Loggers> {
    const meta = await this.meta(ref);
    const levels = await this.running(ref);
    return { loggers: typeof levels === 'string' ? null : levels, saved: await this.store.savedLoggers(meta.program) };
  }

  async set(ref: TableRef, name: string, change: { level: string; save: boolean }): Promise<Loggers & { message: string }> {
    const meta = await this.meta(ref);
    let saved = await this.store.savedLoggers(meta.program);
    if (change.save) {
      saved = { ...saved, [name]: change.level };
      await this.store.writeSavedLoggers(meta.program, saved);
    }
    const levels = await this.running(ref, { name, level: change.level });
    if (typeof levels === 'string') {
      if (!change.save) throw loggersUnavailable(`cannot set ${name} on ${meta.program}: ${levels}`);
      return { loggers: null, saved, message: `${name} = ${change.level} saved; it applies when ${meta.program} next starts (${levels})` };
    }
    return { loggers: levels, saved, message: `${name} = ${change.level} on ${meta.program}${change.save ? ', saved' : ' until it restarts'}` };
  }

  /** Forgets a saved level (the running JVM keeps its level until it restarts). */
  async unsave(ref: TableRef, name: string): Promise<Loggers & { message: string }> {
    const meta = await this.meta(ref);
    const { [name]: was, ...rest } = await this.store.savedLoggers(meta.program);
    await this.store.writeSavedLoggers(meta.program, rest);
    const levels = await this.running(ref);
    return { loggers: typeof levels === 'string' ? null : levels, saved: rest, message: was ? `${name} no longer saved; the running agent keeps its level until it restarts` : `${name} was not saved` };
  }
}
