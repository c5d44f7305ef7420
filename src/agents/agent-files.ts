import { existsSync } from 'node:fs';
import { chmod, mkdir, rm } from 'node:fs/promises';
import type { Config } from '../config.js';
import type { AgentSpec } from '../resources/agent-spec.js';
import { programName, type TableRef } from '../resources/table.js';
import type { AgentMeta, AgentStore } from '../store/agent-store.js';
import { writeAtomic } from '../store/files.js';
import { RevisionStore } from '../store/revisions.js';
import { renderAgentConfig } from './flume-config.js';
import { launcherJarPresent, programFor } from './launch.js';
import type { PortAllocator } from './port-allocator.js';

/**
 * A new agent's files, each step's undo pushed onto `undo` as it is done (the caller runs them
 * backwards when anything after fails): its two ports reserved, its directories (the log,
 * channel and output hold event data: not for other users), flume.conf, the first revision, its
 * metadata and its supervisor program (autostart = `start`). Returns the metadata.
 */
export async function layDown(
  parts: { cfg: Config; store: AgentStore; ports: PortAllocator },
  ref: TableRef,
  spec: AgentSpec,
  opts: { start: boolean; by: string },
  undo: Array<() => Promise<unknown>>,
  unloadProgram: (program: string) => Promise<void>,
): Promise<AgentMeta> {
  const { cfg, store, ports } = parts;
  const program = programName(ref);
  const paths = store.paths(program);
  const port = await ports.allocate(program);
  undo.push(() => ports.release(port, program));
  const metricsPort = await ports.allocate(program);
  undo.push(() => ports.release(metricsPort, program));
  if (!existsSync(paths.varDir)) undo.push(() => rm(paths.varDir, { recursive: true, force: true }));
  undo.push(() => store.removeServiceDir(program));
  for (const d of [paths.serviceDir, paths.checkpointDir, paths.dataDir, paths.outDir]) {
    await mkdir(d, { recursive: true });
  }
  await chmod(paths.varDir, 0o750);
  const createdAt = new Date().toISOString();
  const meta: AgentMeta = { ...ref, program, port, metricsPort, spec, createdAt, revision: 1, runningRevision: 1 };
  await writeAtomic(paths.flumeConf, renderAgentConfig(ref, spec, port, paths, launcherJarPresent(cfg)));
  await new RevisionStore(paths.revisionsDir, cfg.CONFIG_REVISIONS_KEPT).write({
    revision: 1, spec, createdAt, by: opts.by, reason: 'create', from: null, outcome: opts.start ? 'applied' : 'stored', error: null,
  });
  await store.writeMeta(meta);
  undo.push(() => unloadProgram(program));
  await store.writeProgram(meta.program, programFor(cfg, meta, opts.start));
  return meta;
}
