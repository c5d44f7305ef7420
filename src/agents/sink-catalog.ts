import { readdirSync } from 'node:fs';
import { z } from 'zod';
import type { Config } from '../config.js';
import { sinkUnavailable } from '../errors.js';
import { SINK_TYPES, sinkSchemas, type SinkType } from '../resources/agent-spec.js';

const DESCRIPTIONS: Record<SinkType, string> = {
  file_roll: "Files rolled every rollInterval seconds under var/<program>/out/ (Flume's file_roll sink)",
  hdfs: 'Files on HDFS under path, rolled by interval, count or size (Flume HDFS sink, Hadoop 3.3 client)',
  kafka: "Records to a Kafka topic per table; the sender's name is a record header (Flume Kafka sink)",
  logger: "Each event into the agent's log (Flume's logger sink): for trying things out",
};

// The jar each sink's class lives in, looked for in its directory.
const JARS: Record<SinkType, Array<{ dir: (c: Config) => string; jar: RegExp }>> = {
  file_roll: [{ dir: (c) => c.FLUME_LIB_DIR, jar: /^flume-ng-core-.*\.jar$/ }],
  logger: [{ dir: (c) => c.FLUME_LIB_DIR, jar: /^flume-ng-core-.*\.jar$/ }],
  kafka: [
    { dir: (c) => c.FLUME_LIB_DIR, jar: /^flume-ng-kafka-sink-.*\.jar$/ },
    { dir: (c) => c.FLUME_LIB_DIR, jar: /^kafka-clients-.*\.jar$/ },
  ],
  hdfs: [
    { dir: (c) => c.FLUME_HDFS_LIB_DIR, jar: /^flume-hdfs-sink-.*\.jar$/ },
    { dir: (c) => c.FLUME_HDFS_LIB_DIR, jar: /^hadoop-client-api-.*\.jar$/ },
  ],
};

const listing = (dir: string) => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

/** 503 SINK_UNAVAILABLE when agents with this sink cannot run here (its jars are missing). */
export function assertSinkAvailable(cfg: Config, sink: SinkType): void {
  const missing = sinkUnavailableReason(cfg, sink);
  if (missing) throw sinkUnavailable(missing);
}

/** Why agents with this sink cannot run here (its jars are missing), or null if they can. */
export function sinkUnavailableReason(cfg: Config, sink: SinkType): string | null {
  const missing = JARS[sink].filter(({ dir, jar }) => !listing(dir(cfg)).some((f) => jar.test(f)));
  if (!missing.length) return null;
  if (sink === 'hdfs' && /hadoop-(common|client)/.test(cfg.FLUME_EXTRA_CLASSPATH)) return null;
  if (sink === 'hdfs') {
    return `the hdfs sink's jars are not installed: run WITH_HDFS=1 bash scripts/up.sh (fetches them into ${cfg.FLUME_HDFS_LIB_DIR}), or put Hadoop's client jars on FLUME_EXTRA_CLASSPATH`;
  }
  return `Flume's jars are not installed in ${cfg.FLUME_LIB_DIR}: run bash scripts/setup.sh`;
}

export interface SinkInfo {
  name: SinkType;
  description: string;
  /** Its jars are present: agents with it can start here. */
  available: boolean;
  unavailableReason: string | null;
  /** The options, as JSON Schema (what the create body's `options` takes), defaults included. */
  options: Record<string, unknown>;
}

/** Every sink: what it does, whether it can run here, and its options with their defaults. */
export function sinkCatalog(cfg: Config): SinkInfo[] {
  return SINK_TYPES.map((name) => {
    const reason = sinkUnavailableReason(cfg, name);
    const { $schema: _s, ...options } = z.toJSONSchema(sinkSchemas[name], { io: 'input' }) as Record<string, unknown>;
    return { name, description: DESCRIPTIONS[name], available: reason === null, unavailableReason: reason, options };
  });
}
