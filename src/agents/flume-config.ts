import type { AgentSpec } from '../resources/agent-spec.js';
import type { TableRef } from '../resources/table.js';
import type { AgentPaths } from '../store/paths.js';
import { fill, template } from '../templates.js';

/** The Kafka sink that keeps poison aside (flume/launcher/), and Flume's own where the launcher's jar is missing. */
export const KAFKA_SINKS = { quarantining: 'flumeservice.KafkaTableSink', flume: 'org.apache.flume.sink.kafka.KafkaSink' } as const;

/**
 * The table's flume.conf: templates/agent.properties with the sink's block (templates/sinks/).
 * `quarantine`: the launcher's jar is there, so the Kafka sink keeps never-deliverable events in
 * paths.quarantineDir (else Flume's own Kafka sink, which retries them for ever).
 */
export function renderAgentConfig(table: TableRef, spec: AgentSpec, port: number, paths: AgentPaths, quarantine: boolean): string {
  const sinkBlock = fill(template(`sinks/${spec.sink}.properties`), {
    ...spec.options,
    outDir: paths.outDir,
    quarantineDir: paths.quarantineDir,
    kafkaSinkType: quarantine ? KAFKA_SINKS.quarantining : KAFKA_SINKS.flume,
  });
  return fill(template('agent.properties'), {
    ...table,
    ...spec.channel,
    sinkType: spec.sink,
    port,
    checkpointDir: paths.checkpointDir,
    dataDir: paths.dataDir,
    sinkBlock,
  });
}
