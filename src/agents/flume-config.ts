import type { AgentSpec } from '../resources/agent-spec.js';
import type { TableRef } from '../resources/table.js';
import type { AgentPaths } from '../store/paths.js';
import { fill, template } from '../templates.js';

/** The table's flume.conf: templates/agent.properties with the sink's block (templates/sinks/). */
export function renderAgentConfig(table: TableRef, spec: AgentSpec, port: number, paths: AgentPaths): string {
  const sinkBlock = fill(template(`sinks/${spec.sink}.properties`), { ...spec.options, outDir: paths.outDir });
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
