import { existsSync } from 'node:fs';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import type { Config } from '../config.js';
import type { AgentSpec } from '../resources/agent-spec.js';
import { programName, type TableRef } from '../resources/table.js';
import type { AgentMeta, AgentStore } from '../store/agent-store.js';
import { writeAtomic } from '../store/files.js';
import type { AgentPaths } from '../store/paths.js';
import { RevisionStore } from '../store/revisions.js';
import { flumeConfFor, programFor } from './launch.js';
import type { PortAllocator } from './port-allocator.js';
import { invalidRequest } from '../errors.js';

/** A table taken over from another installation: the port its senders reach, and its file channel's directories (moved into ours). */
export interface Handover {
  port: number;
  checkpointDir: string;
  dataDir: string;
}

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
  handover?: Handover,
): Promise<AgentMeta> {
  const { cfg, store, ports } = parts;
  const program = programName(ref);
  const paths = store.paths(program);
  let port: number;
  if (handover) {
    port = handover.port;
    if (!(await ports.reserve(port, program))) throw invalidRequest(`port ${port} is held by ${(await ports.holder(port)) ?? 'another agent'} here`);
  } else port = await ports.allocate(program);
  undo.push(() => ports.release(port, program));
  const metricsPort = await ports.allocate(program);
  undo.push(() => ports.release(metricsPort, program));
  if (!existsSync(paths.varDir)) undo.push(() => rm(paths.varDir, { recursive: true, force: true }));
  undo.push(() => store.removeServiceDir(program));
  for (const d of handover ? [paths.serviceDir, paths.channelDir, paths.outDir] : [paths.serviceDir, paths.checkpointDir, paths.dataDir, paths.outDir]) {
    await mkdir(d, { recursive: true });
  }
  if (handover) {
    // Moved, not copied: the events stay where they were written (one file system, checked before).
    for (const [from, to] of [[handover.checkpointDir, paths.checkpointDir], [handover.dataDir, paths.dataDir]] as const) {
      await rename(from, to);
      undo.push(() => rename(to, from));
    }
  }
  await chmod(paths.varDir, 0o750);
  const createdAt = new Date().toISOString();
  const meta: AgentMeta = { ...ref, program, port, metricsPort, spec, createdAt, revision: 1, runningRevision: 1 };
  await writeFlumeConf(cfg, meta, paths);
  await new RevisionStore(paths.revisionsDir, cfg.CONFIG_REVISIONS_KEPT).write({
    revision: 1, spec, createdAt, by: opts.by, reason: 'create', from: null, outcome: opts.start ? 'applied' : 'stored', error: null,
  });
  await store.writeMeta(meta);
  undo.push(() => unloadProgram(program));
  await store.writeProgram(meta.program, programFor(cfg, meta, opts.start));
  return meta;
}

/** The agent's flume.conf from its spec and this host's settings (AGENT_INTAKE_KEY, the launcher's classes). */
export async function writeFlumeConf(cfg: Config, meta: Pick<AgentMeta, 'db' | 'table' | 'spec' | 'port'>, paths: AgentPaths): Promise<void> {
  await writeAtomic(paths.flumeConf, flumeConfFor(cfg, meta, paths));
}
