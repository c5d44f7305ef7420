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
