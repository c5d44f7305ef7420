import type { Logger } from 'pino';
import type { AgentService } from '../agents/agent-service.js';
import type { Lifecycle } from '../agents/lifecycle.js';
import type { EtcdCluster } from '../cluster/cluster.js';
import { makeClusterKeys } from '../cluster/keys.js';
import type { Config } from '../config.js';
import { ClusterLifecycle } from './cluster-lifecycle.js';
import { TableOwner } from './owner.js';
import { TablesView } from './tables-view.js';

/** Tables across hosts: the view of etcd's tables, this host's owner side, and the lifecycle the routes call. */
export function clusterLifecycle(cfg: Config, cluster: EtcdCluster, agents: AgentService, log: Logger): Lifecycle {
  const keys = makeClusterKeys(cfg.ETCD_PREFIX);
  const view = new TablesView(cluster.etcd, keys, log);
  const owner = new TableOwner(cluster.etcd, keys, view, cfg.NODE_ID, agents, log);
  cluster.onJoin.push(async () => {
    await view.start();
    owner.start();
  });
  cluster.onLeave.push(async () => {
    await owner.stop();
    await view.stop();
  });
  return new ClusterLifecycle(cfg, cluster, keys, view, agents);
}
