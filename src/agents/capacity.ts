import { availableParallelism, freemem, loadavg, totalmem } from 'node:os';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import { usableSpace } from '../fleet/samples.js';
import type { FleetModel } from '../fleet/fleet-model.js';
import type { Capacity } from '../resources/node.js';
import type { PortAllocator } from './port-allocator.js';

/** Memory the kernel says can be had without swapping (MemAvailable), else free memory. */
async function memAvailable(): Promise<number> {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(await readFile('/proc/meminfo', 'utf8').catch(() => ''));
  return m ? Number(m[1]) * 1024 : freemem();
}

/** What this host can still take: agents, CPU, memory, the channels' disk, ports. */
export async function measureCapacity(cfg: Config, fleet: FleetModel, ports: PortAllocator): Promise<Capacity> {
  return {
    agents: fleet.metas().length,
    cpuCores: availableParallelism(),
    loadAverage: Math.round(loadavg()[0]! * 100) / 100,
    memTotalBytes: totalmem(),
    memAvailableBytes: await memAvailable(),
    diskFreeBytes: await usableSpace(cfg.varDir),
    freePorts: await ports.free().catch(() => 0),
  };
}

/**
 * Whether the host has memory for one more JVM like this one (a restart's stand-in): what the
 * kernel can give without swapping covers its resident memory now (at least its heap's worth
 * when not known), plus a quarter for the start, with 256 MiB left over for everything else.
 */
export async function roomForAnotherJvm(rssBytes: number | null, heapBytes: number): Promise<boolean> {
  const needed = Math.max(rssBytes ?? 0, heapBytes / 2, 64 * 1_048_576) * 1.25;
  return (await memAvailable()) >= needed + 256 * 1_048_576;
}
