import { join } from 'node:path';
import type { Config } from '../config.js';

/** A restart's stand-in (src/agents/stand-in.ts) is a program of its own: `<program>-standin`. */
export const STAND_IN_SUFFIX = '-standin';
export const standInProgram = (program: string) => `${program}${STAND_IN_SUFFIX}`;

/** Where one agent's files live. Every path is unique to the program, hence to (db, table). */
export interface AgentPaths {
  /** conf.d/<program>.conf: the supervisor program, included by supervisor.conf. */
  programFile: string;
  /** services/<program>/: generated config and metadata. */
  serviceDir: string;
  flumeConf: string;
  metaFile: string;
  /** services/<program>/control.key (0600): what the API presents to the agent's JVM to set its log levels. */
  controlKeyFile: string;
  /** services/<program>/loggers.json: the saved log levels its JVM sets as it starts. */
  savedLoggersFile: string;
  /** services/<program>/revisions/: the config history (RevisionStore). */
  revisionsDir: string;
  /** var/<program>/: runtime data that outlives stop, restart and (unless empty) delete. */
  varDir: string;
  channelDir: string;
  checkpointDir: string;
  dataDir: string;
  outDir: string;
  /** var/<program>/quarantine/: events the sink can never deliver, kept aside (the Kafka sink). */
  quarantineDir: string;
  logFile: string;
}

export function agentPaths(cfg: Pick<Config, 'confDir' | 'servicesDir' | 'varDir'>, program: string): AgentPaths {
  const serviceDir = join(cfg.servicesDir, program);
  const varDir = join(cfg.varDir, program);
  const channelDir = join(varDir, 'channel');
  return {
    programFile: join(cfg.confDir, `${program}.conf`),
    serviceDir,
    flumeConf: join(serviceDir, 'flume.conf'),
    metaFile: join(serviceDir, 'agent.json'),
    revisionsDir: join(serviceDir, 'revisions'),
    controlKeyFile: join(serviceDir, 'control.key'),
    savedLoggersFile: join(serviceDir, 'loggers.json'),
    varDir,
    channelDir,
    checkpointDir: join(channelDir, 'checkpoint'),
    dataDir: join(channelDir, 'data'),
    outDir: join(varDir, 'out'),
    quarantineDir: join(varDir, 'quarantine'),
    logFile: join(varDir, 'agent.log'),
  };
}
