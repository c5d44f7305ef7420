import type { Config } from '../config.js';
import { CtlSupervisorDriver } from './ctl-driver.js';
import type { SupervisorDriver } from './driver.js';
import { XmlRpcSupervisorDriver } from './xmlrpc-driver.js';

export function createSupervisorDriver(cfg: Config): SupervisorDriver {
  return cfg.SUPERVISOR_TRANSPORT === 'supervisorctl'
    ? new CtlSupervisorDriver(cfg.SUPERVISORCTL_COMMAND.split(/\s+/).filter(Boolean), cfg.supervisorSocket)
    : new XmlRpcSupervisorDriver(cfg.supervisorSocket);
}
