import type { Config } from '../config.js';
import type { AgentStore } from '../store/agent-store.js';
import type { SupervisorDriver } from '../supervisor/driver.js';
import type { PortAllocator } from './port-allocator.js';
import type { RouteTable } from './route-table.js';
import type { TableLock } from './table-lock.js';

/** What acting on this host's agents needs: its settings, its disk, routes, locks, supervisord and ports. */
export interface HostParts {
  cfg: Config;
  store: AgentStore;
  routes: RouteTable;
  lock: TableLock;
  driver: SupervisorDriver;
  ports: PortAllocator;
}
