import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Config } from '../config.js';
import { FLUME_MAIN_CLASS, LAUNCHER, LOOPBACK_METRICS_CLASS } from '../config-kinds.js';
import { jvmOptionProblem, sizeBytes } from '../resources/jvm-options.js';
import type { TableRef } from '../resources/table.js';
import type { AgentMeta } from '../store/agent-store.js';
import { agentPaths, type AgentPaths } from '../store/paths.js';
import { flumeVersionIn } from '../store/build-info.js';
import { TEMPLATES_DIR, fill, template } from '../templates.js';
import type { AgentSpec } from '../resources/agent-spec.js';
import { renderAgentConfig, type AgentConfigParts } from './flume-config.js';

/** How an agent's JVM is run: its supervisord program (templates/program.conf). */

export const LOG4J_CONFIG = join(TEMPLATES_DIR, 'log4j2.xml');


export interface ProgramParams {
  program: string;
  javaBin: string;
  heap: string;
  /** Options between -Xmx and the service's own -D flags (the host's, or a table's from the accepted list). */
  jvmOptions: string[];
  classpath: string;
  autostart: boolean;
  /** Flume's metrics server (JSON counters); it binds every interface and has no bind option. */
  metricsPort: number;
  /** Our launcher (flume/launcher/: the channel started before the source, no 500 ms poll) or Flume's Application. */
  mainClass: string;
  /** Flume's metrics server: ours on 127.0.0.1 where the launcher's jar is there, else Flume's `http` (every interface). */
  monitoringType: string;
  /** The Flume version in FLUME_LIB_DIR, on the command line: a new one changes it (scripts/upgrade.sh restarts what changed). */
  flumeVersion: string;
}

// supervisord interpolates %(name)s in values: a literal % must be doubled.
const supervisorValue = (v: string | number | boolean) => String(v).replace(/%/g, '%%');

export function renderProgram(table: TableRef, p: ProgramParams, paths: AgentPaths): string {
  const values = {
    ...table,
    program: p.program,
    java: p.javaBin,
    heap: p.heap,
    jvmOptions: p.jvmOptions.map((o) => `"${o}"`).join(' '),
    log4jConfig: LOG4J_CONFIG,
    classpath: p.classpath,
    flumeConf: paths.flumeConf,
    serviceDir: paths.serviceDir,
    logFile: paths.logFile,
    autostart: p.autostart,
    metricsPort: p.metricsPort,
    mainClass: p.mainClass,
    monitoringType: p.monitoringType,
    flumeVersion: p.flumeVersion,
  };
  return fill(template('program.conf'), Object.fromEntries(Object.entries(values).map(([k, v]) => [k, supervisorValue(v)])));
}

const heapWithin = (heap: string, max: string) => ((sizeBytes(heap) ?? 0) > (sizeBytes(max) ?? 0) ? max : heap);

/** Whether agents run with the launcher's jar (flume/launcher/): our main class, metrics server and Kafka sink. */
export function launcherJarPresent(cfg: Pick<Config, 'FLUME_LIB_DIR'>): boolean {
  return existsSync(join(cfg.FLUME_LIB_DIR, LAUNCHER.jar));
}

/** What an agent's flume.conf may use here: the launcher's classes, and the intake key (which needs them). */
function agentConfigParts(cfg: Pick<Config, 'FLUME_LIB_DIR' | 'AGENT_INTAKE_KEY'>): AgentConfigParts {
  const launcher = launcherJarPresent(cfg);
  return { launcher, intakeKey: launcher && cfg.AGENT_INTAKE_KEY };
}

/** The agent's flume.conf text from its metadata (or `spec`, a change being tried) and the host's settings. */
export function flumeConfFor(cfg: Config, meta: Pick<AgentMeta, 'db' | 'table' | 'spec' | 'port'>, paths: AgentPaths, spec: AgentSpec = meta.spec): string {
  return renderAgentConfig(meta, spec, meta.port, paths, agentConfigParts(cfg));
}

/** The agent's program text from its metadata and the host's settings; `autostart` records the desired state. */
export function programFor(cfg: Config, meta: AgentMeta, autostart: boolean): string {
  const paths = agentPaths(cfg, meta.program);
  const launcherJar = launcherJarPresent(cfg);
  // Flume's jars first: the class-data archive was built with exactly that prefix.
  const classpath = [
    join(cfg.FLUME_LIB_DIR, '*'),
    meta.spec.sink === 'hdfs' ? join(cfg.FLUME_HDFS_LIB_DIR, '*') : '',
    paths.serviceDir,
    cfg.FLUME_EXTRA_CLASSPATH,
  ]
    .filter(Boolean)
    .join(':');
  return renderProgram(
    meta,
    {
      program: meta.program,
      javaBin: cfg.JAVA_BIN,
      // A table's heap stored before the ceiling existed is held to it.
      heap: meta.spec.jvm?.heap ? heapWithin(meta.spec.jvm.heap, cfg.AGENT_MAX_HEAP) : cfg.AGENT_HEAP,
      jvmOptions: [
        // -Xshare:auto: an archive that does not match (another JDK, new jars) is ignored, not fatal.
        // ArchiveRelocationMode=0: mapped where it was dumped, its pages stay clean and shared by
        // every agent (Debian's JDK 17 relocates by default, which writes to every page).
        // First, so that a table's own options can say otherwise.
        ...(cfg.AGENT_CDS_ARCHIVE && existsSync(cfg.AGENT_CDS_ARCHIVE)
          ? [`-XX:SharedArchiveFile=${cfg.AGENT_CDS_ARCHIVE}`, '-Xshare:auto', '-XX:+UnlockDiagnosticVMOptions', '-XX:ArchiveRelocationMode=0']
          : []),
        // A spec stored before the allow-list (an upgrade) keeps only the options on it.
        ...(meta.spec.jvm?.options?.filter((o) => jvmOptionProblem(o) === null) ?? cfg.AGENT_JVM_OPTIONS),
      ],
      classpath,
      autostart,
      metricsPort: meta.metricsPort,
      mainClass: cfg.AGENT_LAUNCHER === 'flume-service' && launcherJar ? LAUNCHER.mainClass : FLUME_MAIN_CLASS,
      // Whichever main class runs, the jar is on the class path (FLUME_LIB_DIR/*).
      monitoringType: launcherJar ? LOOPBACK_METRICS_CLASS : 'http',
      flumeVersion: flumeVersionIn(cfg.FLUME_LIB_DIR),
    },
    paths,
  );
}
