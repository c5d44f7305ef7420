import type { AgentSpec } from '../resources/agent-spec.js';
import type { TableRef } from '../resources/table.js';
import type { AgentPaths } from '../store/paths.js';
import { fill, template } from '../templates.js';

/** The Kafka sink that keeps poison aside (flume/launcher/), and Flume's own where the launcher's jar is missing. */
export const KAFKA_SINKS = { quarantining: 'flumeservice.KafkaTableSink', flume: 'org.apache.flume.sink.kafka.KafkaSink' } as const;

/**
 * Where the launcher's jar is there: the sink runs in a group of one under
 * flumeservice.PromptSinkProcessor, which looks at an empty channel again after 10 ms instead of
 * Flume's idle back-off of 1-5 s (a sender waiting for the sink's acknowledgement would wait that).
 */
const PROMPT_SINK_GROUP = [
  '# The sink looks at an empty channel again after 10 ms, not after Flume\'s 1-5 s idle back-off,',
  '# while the source takes events (the "wake" interceptor tells it); idle, it sleeps until they come.',
  'a1.sinkgroups = g1',
  'a1.sinkgroups.g1.sinks = k1',
  'a1.sinkgroups.g1.processor.type = flumeservice.PromptSinkProcessor',
  'a1.sources.r1.interceptors.wake.type = flumeservice.SinkWakeup$Builder',
].join('\n');

/**
 * The source's handler: Flume's JSONHandler, behind the agent's intake key where the launcher's
 * jar is there (flumeservice.IntakeKeyHandler: only a request with X-Flume-Intake-Key, which the
 * gateway sends, puts events in the channel; any other local process is answered 400).
 */
function handler(keyed: boolean, paths: AgentPaths): string {
  if (!keyed) return 'org.apache.flume.source.http.JSONHandler';
  return ['flumeservice.IntakeKeyHandler', `a1.sources.r1.handler.keyFile = ${paths.controlKeyFile}`].join('\n');
}

/** What a flume.conf may use: the launcher's classes (its jar is there), the intake key (AGENT_INTAKE_KEY, with the launcher). */
export interface AgentConfigParts {
  launcher: boolean;
  intakeKey: boolean;
}

/**
 * The table's flume.conf: templates/agent.properties with the sink's block (templates/sinks/).
 * `launcher`: the launcher's jar is there, so the Kafka sink keeps never-deliverable events in
 * paths.quarantineDir (else Flume's own Kafka sink, which retries them for ever) and the sink runs
 * under PromptSinkProcessor; `intakeKey`: the source takes events only with the agent's key.
 */
export function renderAgentConfig(table: TableRef, spec: AgentSpec, port: number, paths: AgentPaths, { launcher, intakeKey }: AgentConfigParts): string {
  const sinkBlock = fill(template(`sinks/${spec.sink}.properties`), {
    ...spec.options,
    outDir: paths.outDir,
    quarantineDir: paths.quarantineDir,
    kafkaSinkType: launcher ? KAFKA_SINKS.quarantining : KAFKA_SINKS.flume,
    // Kafka's idempotent producer needs acks=all (kafka-clients refuses it with fewer).
    idempotence: spec.options.acks === 'all' ? 'true' : 'false',
  });
  return fill(template('agent.properties'), {
    ...table,
    ...spec.channel,
    sinkType: spec.sink,
    port,
    checkpointDir: paths.checkpointDir,
    dataDir: paths.dataDir,
    sinkBlock,
    sinkGroup: launcher ? PROMPT_SINK_GROUP : '',
    interceptors: launcher ? 'ts wake' : 'ts',
    handler: handler(intakeKey, paths),
  });
}
